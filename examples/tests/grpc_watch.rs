//! An open `tonic-health` Watch stream, outside the drain, does not hold a
//! `grpc-chat` process past its drain: the server drops it once the drain is
//! over and its close timeout has run out, and the report counts it.

mod common;

use std::time::Duration;

use common::Process;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_health_watch_does_not_hold_the_exit() {
    let (server, addr) = Process::example(
        env!("CARGO_BIN_EXE_grpc-chat"),
        &[("ADDR", "127.0.0.1:0"), ("DRAIN_DEADLINE_SECS", "30")],
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "chat.Chat".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let serving = watch.message().await.unwrap().unwrap();
    assert_eq!(serving.status, 1, "SERVING");

    server.sigterm();
    // NOT_SERVING at the trip, then the stream is dropped with its connection.
    let not_serving = watch.message().await.unwrap().unwrap();
    assert_eq!(not_serving.status, 2, "NOT_SERVING");
    let (status, took, report) = tokio::task::spawn_blocking(move || server.exit())
        .await
        .unwrap();
    assert!(status.success(), "{report}");
    assert!(
        report.contains("1 open at trip, 0 closed gracefully, 1 closed hard"),
        "{report}"
    );
    // A bound that catches a hang: the drain deadline is 30 s, and nothing
    // counted was in flight.
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(watch.message().await.is_err(), "the stream was dropped");
}
