//! A client that never reads its response: the shutdown still ends, bounded,
//! and accounts for the request.
//!
//! Once the socket is full, hyper stops polling the response body, so the
//! deadline's wake-up cannot reach it to cut it: the report counts it as
//! `unfinished` (or `cut`, had the body been polled once more). Cutting such a
//! connection takes the server dropping it, after the drain (as
//! `tower_drain::serve` does: `tests/serve.rs`); here it is axum's server.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tower_drain::Drain;
use tower_drain_tests::{flood, listen, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_never_holds_the_shutdown_and_is_accounted_for() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let server = tokio::spawn({
        let app = flood().layer(drain.layer());
        async move { axum::serve(listener, app).await }
    });

    // A client that sends its request and never reads a byte.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /flood HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    within("admitted", async {
        while drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Give the socket buffers time to fill (there is nothing to await: the
    // server simply stops writing). Either outcome below is checked.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let report = within("shutdown", drain.shutdown(Duration::from_millis(200))).await;
    assert!(report.deadline_reached());
    assert_eq!(report.in_flight_at_trip(), 1);
    assert_eq!(report.cut() + report.unfinished(), 1, "{report}");
    assert_eq!(report.completed(), 0);
    assert!(!report.is_clean());

    // The connection goes when the client does, and the count with it.
    drop(client);
    within("drained once the client is gone", drain.drained()).await;
    assert_eq!(drain.in_flight(), 0);
    server.abort();
}
