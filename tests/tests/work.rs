//! Counted work spawned by an axum handler, over a real connection: the
//! answer goes out at once, the work keeps the drain open, and the deadline
//! aborts it and names it in the report.

use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use http::StatusCode;
use tower_drain::{Drain, DrainSignal};
use tower_drain_tests::{get_req, http1, serve_axum, text, within, Gate};

/// `POST /save`: answers at once, and saves in the background (until the
/// gate opens), as counted work; `503` once the drain has tripped.
fn app(signal: DrainSignal, gate: Gate) -> Router {
    Router::new()
        .route(
            "/save",
            post(
                |State((signal, gate)): State<(DrainSignal, Gate)>| async move {
                    match signal.spawn_named("save the answer", async move { gate.pass().await }) {
                        Ok(_) => (StatusCode::ACCEPTED, "saving"),
                        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
                    }
                },
            ),
        )
        .with_state((signal, gate))
}

fn save(addr: std::net::SocketAddr) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    let mut req = get_req(addr, "/save");
    *req.method_mut() = http::Method::POST;
    req
}

#[tokio::test]
async fn work_a_handler_spawns_keeps_the_drain_open_and_is_named_when_cut() {
    let drain = Drain::new();
    let gate = Gate::new();
    // The work is counted by the signal, not by the layer: the route needs
    // no DrainLayer to keep the drain open.
    let (addr, server) =
        serve_axum(app(drain.signal(), gate.clone()), std::future::pending()).await;
    let client = http1();

    // Two saves: the answers go out at once, the work runs on.
    for _ in 0..2 {
        let res = within("the answer", client.request(save(addr)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(drain.in_flight(), 2);

    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_millis(300)).await }
    });
    while !drain.is_tripped() {
        tokio::task::yield_now().await;
    }
    // After the trip no work starts.
    let late = within("the late answer", client.request(save(addr)))
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(late.into_body()).await.unwrap(), "shutting down");
    // One save finishes; the other is still running at the deadline.
    gate.open(1);
    let report = within("shutdown", shutdown).await.unwrap();
    assert_eq!(
        (report.in_flight_at_trip(), report.completed(), report.cut()),
        (2, 1, 1),
        "{report}"
    );
    assert_eq!(report.cut_work(), ["save the answer"]);
    assert_eq!(drain.in_flight(), 0);
    server.abort();
}
