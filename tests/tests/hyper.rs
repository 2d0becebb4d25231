//! A real hyper server (hyper-util's auto builder: HTTP/1.1 and HTTP/2) on
//! 127.0.0.1, the drain layer around an axum `Router`, real clients.

use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{StatusCode, Version};
use http_body::Body as _;
use tower::Layer;
use tower_drain::Drain;
use tower_drain_tests::{app, get_req, http1, http2, listen, serve_hyper, text, within, Gate};

/// Over HTTP/2 the rejection carries no connection-specific header: the h2
/// client would refuse the response as malformed if it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_http2_rejection_over_the_wire() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let server = serve_hyper(listener, drain.layer().layer(app(Gate::new())));
    let client = http2();

    let ok = within("served", client.request(get_req(addr, "/hello")))
        .await
        .unwrap();
    assert_eq!(ok.version(), Version::HTTP_2);
    assert_eq!(text(ok.into_body()).await.unwrap(), "hello");

    drain.trip();
    let res = within("rejected", client.request(get_req(addr, "/hello")))
        .await
        .unwrap();
    assert_eq!(res.version(), Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[RETRY_AFTER], "5");
    assert!(res.headers().get(CONNECTION).is_none());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p7_grpc_rejection_over_http2_is_trailers_only() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let server = serve_hyper(listener, drain.layer().layer(app(Gate::new())));
    drain.trip();

    let mut req = get_req(addr, "/pkg.Service/Method");
    *req.method_mut() = http::Method::POST;
    req.headers_mut()
        .insert(CONTENT_TYPE, "application/grpc".parse().unwrap());
    let res = within("grpc", http2().request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], "server is shutting down");
    // Trailers-only: the HEADERS frame ended the stream.
    assert!(res.body().is_end_stream());
    server.abort();
}

/// P9: a keep-alive client whose response was produced after the trip is told
/// to close, and the server closes that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p9_response_after_trip_closes_the_keep_alive_connection() {
    let drain = Drain::new();
    let gate = Gate::new();
    let (listener, addr) = listen().await;
    let server = serve_hyper(listener, drain.layer().layer(app(gate.clone())));
    let client = http1();

    let before = within("before", client.request(get_req(addr, "/hello")))
        .await
        .unwrap();
    assert!(before.headers().get(CONNECTION).is_none());
    text(before.into_body()).await.unwrap();

    let slow = tokio::spawn(client.request(get_req(addr, "/slow")));
    let in_flight = async {
        while drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    };
    within("admitted", in_flight).await;
    drain.trip();
    gate.open(1);

    let res = within("slow", slow).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONNECTION], "close");
    assert_eq!(text(res.into_body()).await.unwrap(), "slow");
    within("drained", drain.drained()).await;
    server.abort();
}

/// P3 over the wire: a client that goes away mid-body gives the count back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_client_disconnect_mid_body_releases_the_count() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let server = serve_hyper(listener, drain.layer().layer(app(Gate::new())));

    let res = within("ticks", http1().request(get_req(addr, "/ticks")))
        .await
        .unwrap();
    let mut body = Box::pin(res.into_body());
    let first = within("first tick", http_body_util::BodyExt::frame(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "tick-0\n");
    assert_eq!(drain.in_flight(), 1);

    // Dropping the body mid-stream closes the connection under it.
    drop(body);
    drain.trip();
    within("drained after disconnect", drain.drained()).await;
    assert_eq!(drain.in_flight(), 0);
    server.abort();
}

/// `Shutdown::server_stop` driving hyper-util's `GracefulShutdown`: the
/// listener stays open through the drain (a late request gets the clean
/// 503), and the server closes its connections only once the drain is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stop_drives_hyper_util_graceful_shutdown_after_the_drain() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::graceful::GracefulShutdown;
    use tower_drain::shutdown::Shutdown;

    let drain = Drain::new();
    let (pull, pulled) = tokio::sync::oneshot::channel::<()>();
    let shutdown = Shutdown::with_trigger(&drain, async move {
        let _ = pulled.await;
    });
    let stop = shutdown.server_stop();
    let gate = Gate::new();
    let svc = drain.layer().layer(app(gate.clone()));
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((io, _)) = accepted else { continue };
                    let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
                    let conn = builder.serve_connection(TokioIo::new(io), svc).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                () = &mut stop => break,
            }
        }
        drop(listener);
        graceful.shutdown().await;
    });

    let client = http1();
    let streaming = within("stream", client.request(get_req(addr, "/stream")))
        .await
        .unwrap();
    let sequence = tokio::spawn(shutdown.run());
    pull.send(()).unwrap();
    within("trip", drain.signal().tripped()).await;

    // Through the drain: a new connection is accepted and refused cleanly.
    let late = within("late request", http1().request(get_req(addr, "/hello")))
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!server.is_finished(), "the server runs through the drain");

    gate.open(1);
    assert_eq!(
        text(streaming.into_body()).await.unwrap(),
        tower_drain_tests::full_stream()
    );
    let report = within("sequence", sequence).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.drain().rejected(), 1);
    within("graceful shutdown", server).await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after the drain"
    );
}
