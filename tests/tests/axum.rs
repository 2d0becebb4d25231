//! A real axum server on 127.0.0.1 with `.layer(drain.layer())`, driven by a
//! real HTTP/1.1 client.

use std::pin::pin;
use std::time::Duration;

use futures_util::FutureExt;
use http::header::{CONNECTION, RETRY_AFTER};
use http::StatusCode;
use tower_drain::Drain;
use tower_drain_tests::{app, full_stream, get_req, http1, serve_axum, text, within, Gate};

const STREAMS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_finish_and_drained_waits_for_the_last_body() {
    let drain = Drain::new();
    let gate = Gate::new();
    let app = app(gate.clone()).layer(drain.layer());
    let (addr, server) = serve_axum(app, drain.drained()).await;
    let client = http1();

    // Every stream has its headers and first chunk out: admitted, in flight.
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let res = within("stream headers", client.request(get_req(addr, "/stream")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        streams.push(tokio::spawn(text(res.into_body())));
    }
    assert_eq!(drain.in_flight(), STREAMS);

    drain.trip();
    for path in ["/hello", "/stream"] {
        let res = within("rejection", client.request(get_req(addr, path)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(res.headers()[RETRY_AFTER], "5");
        assert_eq!(res.headers()[CONNECTION], "close");
    }

    // All streams but one finish, whole; the drain waits for the last body.
    let last = streams.pop().unwrap();
    gate.open(STREAMS - 1);
    for stream in streams {
        let body = within("stream body", stream).await.unwrap().unwrap();
        assert_eq!(body, full_stream());
    }
    assert_eq!(drain.in_flight(), 1);
    let mut drained = pin!(drain.drained());
    assert!(
        drained.as_mut().now_or_never().is_none(),
        "one body still open"
    );

    gate.open(1);
    assert_eq!(
        within("last body", last).await.unwrap().unwrap(),
        full_stream()
    );
    within("drained", drained).await;
    assert_eq!(drain.in_flight(), 0);
    within("server exit", server).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_report_matches_what_the_clients_saw() {
    let drain = Drain::new();
    let gate = Gate::new();
    let app = app(gate.clone()).layer(drain.layer());
    let (addr, _server) = serve_axum(app, std::future::pending()).await;
    let client = http1();

    let mut streams = Vec::new();
    for _ in 0..3 {
        let res = within("stream", client.request(get_req(addr, "/stream")))
            .await
            .unwrap();
        streams.push(tokio::spawn(text(res.into_body())));
    }
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_secs(30)).await }
    });
    within("trip", drain.signal().tripped()).await;

    let mut rejected = 0;
    for _ in 0..4 {
        let res = within("rejection", client.request(get_req(addr, "/hello")))
            .await
            .unwrap();
        rejected += usize::from(res.status() == StatusCode::SERVICE_UNAVAILABLE);
    }
    gate.open(3);
    let mut completed = 0;
    for stream in streams {
        completed += usize::from(within("stream", stream).await.unwrap().unwrap() == full_stream());
    }

    let report = within("shutdown", shutdown).await.unwrap();
    assert_eq!((rejected, completed), (4, 3));
    assert_eq!(report.in_flight_at_trip(), 3);
    assert_eq!(report.completed(), completed);
    assert_eq!(report.refused(), rejected);
    assert_eq!(report.cut(), 0);
    assert!(report.is_clean() && !report.deadline_reached());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_cuts_a_stream_that_never_ends() {
    let drain = Drain::new();
    let app = app(Gate::new()).layer(drain.layer());
    let (addr, _server) = serve_axum(app, std::future::pending()).await;
    let client = http1();

    let res = within("headers", client.request(get_req(addr, "/forever")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let reader = tokio::spawn(text(res.into_body()));

    let report = within("shutdown", drain.shutdown(Duration::from_millis(200))).await;
    assert!(report.deadline_reached());
    assert_eq!(
        (
            report.in_flight_at_trip(),
            report.cut(),
            report.unfinished()
        ),
        (1, 1, 0)
    );
    assert!(
        within("client", reader).await.unwrap().is_err(),
        "the client sees the cut, not a silently short body"
    );
    assert_eq!(drain.in_flight(), 0);
}
