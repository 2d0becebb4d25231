//! Fault injection: whatever goes wrong with a request, the count comes back
//! and the drain finishes. Every test ends with `in_flight() == 0` and
//! `drained()` resolved, within a bound.
//!
//! Elsewhere: a client disconnecting mid-body (`hyper.rs`,
//! `a_client_gone_mid_body_releases_the_count`), a client that never
//! reads (`slow_reader.rs`), trips from many threads and the admit/trip race
//! under threads (`tower-drain/tests/stress.rs`), and the same paths as
//! unit tests with `tower-test` (`tower-drain/src/layer/service.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use http::StatusCode;
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use tower_drain::Drain;
use tower_drain_tests::{app, get_req, http1, listen, serve_hyper, within, Gate};

/// Ends a test: the drain trips, drains, and nothing is left.
async fn assert_drains(drain: &Drain) {
    drain.trip();
    within("drained", drain.drained()).await;
    assert_eq!(drain.in_flight(), 0);
}

fn faulty() -> Router {
    Router::new()
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler bug");
                }
                "unreachable"
            }),
        )
        .route(
            "/broken",
            get(|| async {
                // Two chunks, then (once they are on the wire) the body fails.
                let chunks = stream::unfold(0, |i| async move {
                    let item = match i {
                        0 => Ok(Bytes::from_static(b"one\n")),
                        1 => Ok(Bytes::from_static(b"two\n")),
                        2 => {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Err(std::io::Error::other("disk gone"))
                        }
                        _ => return None,
                    };
                    Some((item, i + 1))
                });
                Body::from_stream(chunks)
            }),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panic_without_catch_panic_releases_the_count() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    // hyper's connection task unwinds with the panic, dropping the future.
    let server = serve_hyper(listener, drain.layer().layer(faulty()));
    let res = within("request", http1().request(get_req(addr, "/panic"))).await;
    assert!(res.is_err(), "the connection dies with the handler");
    assert_drains(&drain).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panic_with_catch_panic_is_a_500_and_releases_the_count() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let app = faulty().layer(tower_http::catch_panic::CatchPanicLayer::new());
    let server = serve_hyper(listener, drain.layer().layer(app));
    for _ in 0..3 {
        let res = within("request", http1().request(get_req(addr, "/panic")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(drain.in_flight(), 0);
    assert_drains(&drain).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_whose_poll_frame_errors_releases_the_count() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let server = serve_hyper(listener, drain.layer().layer(faulty()));
    let res = within("request", http1().request(get_req(addr, "/broken")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut got = Vec::new();
    let err = loop {
        match within("frame", body.frame()).await {
            Some(Ok(frame)) => got.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(err)) => break err,
            None => panic!("the client must see the failure, not a clean end"),
        }
    };
    assert_eq!(got, b"one\ntwo\n", "{err}");
    assert_drains(&drain).await;
    server.abort();
}

/// Thousands of requests admitted at once on a multi-thread runtime, the
/// trip landing in the middle: each request is either refused (and never
/// reaches the app) or served to the end, and the report adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trip_amid_thousands_of_concurrent_admissions() {
    const REQUESTS: usize = 4000;
    let drain = Drain::new();
    let gate = Gate::new();
    let reached = Arc::new(AtomicUsize::new(0));
    let router = app(gate.clone());
    let counted = tower::service_fn({
        let reached = reached.clone();
        move |req| {
            reached.fetch_add(1, Ordering::SeqCst);
            router.clone().oneshot(req)
        }
    });
    let svc = drain.layer().layer(counted);

    let started = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (svc, started) = (svc.clone(), started.clone());
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let req = http::Request::get("/stream").body(Body::empty()).unwrap();
                let res = svc.oneshot(req).await.unwrap();
                let status = res.status();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            })
        })
        .collect();
    // Trip once about half the calls have started.
    within("half started", async {
        while started.load(Ordering::SeqCst) < REQUESTS / 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(tower_drain_tests::HANG).await }
    });
    within("tripped", drain.signal().tripped()).await;
    gate.open(REQUESTS);

    let (mut served, mut refused) = (0, 0);
    for call in calls {
        let (status, body) = within("call", call).await.unwrap();
        match status {
            StatusCode::OK => {
                assert_eq!(body, tower_drain_tests::full_stream().as_bytes());
                served += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("{other}"),
        }
    }
    let report = within("shutdown", shutdown).await.unwrap();
    assert_eq!(served + refused, REQUESTS);
    assert_eq!(
        reached.load(Ordering::SeqCst),
        served,
        "no refused request reached the app"
    );
    assert_eq!(report.refused(), refused);
    assert_eq!(
        report.in_flight_at_trip(),
        served,
        "served = admitted before the trip"
    );
    assert_eq!(report.completed(), served);
    assert!(report.is_clean(), "{report}");
    assert_drains(&drain).await;
}

/// A body that always has a chunk ready never waits, so the deadline's
/// wake-up never reaches it: it is cut on its next poll all the same, the
/// client sees the cut, and the report counts it (it used to stream on after
/// a report that said "0 cut").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_waits_is_cut_at_the_deadline() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let firehose = Router::new().route(
        "/firehose",
        get(|| async {
            Body::from_stream(stream::repeat_with(|| {
                Ok::<_, std::convert::Infallible>(Bytes::from_static(b"tick\n"))
            }))
        }),
    );
    let server = serve_hyper(listener, drain.layer().layer(firehose));
    let res = within("headers", http1().request(get_req(addr, "/firehose")))
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut body = Box::pin(res.into_body());
        let mut received = 0usize;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => received += frame.into_data().map_or(0, |d| d.len()),
                Some(Err(_)) => return (received, true),
                None => return (received, false),
            }
        }
    });

    let report = within(
        "shutdown",
        drain.shutdown(std::time::Duration::from_millis(50)),
    )
    .await;
    let (received, broken) = within("client", reader).await.unwrap();
    assert!(received > 0);
    assert!(broken, "the client sees the cut, not a clean end");
    assert_eq!((report.cut(), report.unfinished()), (1, 0), "{report}");
    assert_drains(&drain).await;
    server.abort();
}
