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
async fn an_http2_refusal_has_no_connection_header_over_the_wire() {
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
async fn a_grpc_refusal_over_http2_is_trailers_only() {
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
async fn a_response_after_the_trip_closes_the_keep_alive_connection() {
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
async fn a_client_gone_mid_body_releases_the_count() {
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
    assert_eq!(report.drain().refused(), 1);
    within("graceful shutdown", server).await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after the drain"
    );
}

/// A WebSocket-style handshake admitted before the trip and answered after
/// it: the `101` keeps `Connection: upgrade` (an RFC 6455 client fails the
/// handshake otherwise), and the upgraded connection works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_answered_after_the_trip_completes_its_handshake() {
    use http::header::UPGRADE;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let drain = Drain::new();
    let gate = Gate::new();
    // An echo protocol behind an upgrade, as a WebSocket route is.
    let echo = tower::service_fn({
        let gate = gate.clone();
        move |req: http::Request<hyper::body::Incoming>| {
            let gate = gate.clone();
            async move {
                gate.pass().await;
                tokio::spawn(async move {
                    let Ok(upgraded) = hyper::upgrade::on(req).await else {
                        return;
                    };
                    let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
                let mut res = http::Response::new(axum::body::Body::empty());
                *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                res.headers_mut()
                    .insert(CONNECTION, "upgrade".parse().unwrap());
                res.headers_mut().insert(UPGRADE, "echo".parse().unwrap());
                Ok::<_, std::convert::Infallible>(res)
            }
        }
    });
    let svc = drain.layer().layer(echo);
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let (io, _) = listener.accept().await.unwrap();
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let _ = builder
            .serve_connection_with_upgrades(TokioIo::new(io), svc)
            .await;
    });

    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"GET /echo HTTP/1.1\r\nhost: test\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
    within("admitted", async {
        while drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    drain.trip();
    gate.open(1);

    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        within("101", client.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(!head.contains("close"), "{head}");
    client.write_all(b"ping").await.unwrap();
    let mut echoed = [0; 4];
    within("echo", client.read_exact(&mut echoed))
        .await
        .unwrap();
    assert_eq!(&echoed, b"ping", "the upgraded connection works");
    within("drained", drain.drained()).await;
    server.abort();
}

/// The layer outermost, over a concurrency limit of one whose permit a slow
/// handler holds: a request after the trip is refused at once, not after the
/// limit frees up (it used to wait for the inner service's readiness).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_does_not_wait_for_a_busy_concurrency_limit() {
    let drain = Drain::new();
    let gate = Gate::new();
    let svc = tower::ServiceBuilder::new()
        .layer(drain.layer())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .service(app(gate.clone()));
    let (listener, addr) = listen().await;
    let server = serve_hyper(listener, svc);

    let slow = tokio::spawn(http1().request(get_req(addr, "/slow")));
    within("admitted", async {
        while drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    drain.trip();
    let refused = within("refusal", http1().request(get_req(addr, "/hello")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !slow.is_finished(),
        "refused while the limit was still held"
    );

    gate.open(1);
    let res = within("slow", slow).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(res.into_body()).await.unwrap(), "slow");
    within("drained", drain.drained()).await;
    server.abort();
}
