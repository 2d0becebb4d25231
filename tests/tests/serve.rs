//! `tower_drain::serve` over the wire: connections moved off at the trip,
//! closed without resets, the listener open until the drain is over, and
//! what never closes dropped at the deadline.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tower_drain::shutdown::Shutdown;
use tower_drain::Drain;
use tower_drain_tests::{app, flood, get_req, http2, listen, text, within, Gate};

/// Serves `app` (with the drain's layer) through `tower_drain::serve`.
async fn serve(drain: &Drain, app: Router) -> (SocketAddr, JoinHandle<()>) {
    serve_with(drain, app, |serve| serve).await
}

async fn serve_with(
    drain: &Drain,
    app: Router,
    settings: impl FnOnce(
        tower_drain::serve::Serve<tokio::net::TcpListener, Router>,
    ) -> tower_drain::serve::Serve<tokio::net::TcpListener, Router>,
) -> (SocketAddr, JoinHandle<()>) {
    let (listener, addr) = listen().await;
    let app = app.layer(drain.layer());
    let server = tokio::spawn(settings(tower_drain::serve(listener, app, drain)).into_future());
    (addr, server)
}

/// Reads until the server closes: `Ok(bytes)` at an orderly end (FIN),
/// `Err` on a reset.
async fn read_to_close(socket: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    within("the server closes", socket.read_to_end(&mut got)).await?;
    Ok(got)
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_trip_with_fin() {
    let drain = Drain::new();
    let (addr, server) = serve(&drain, app(Gate::new())).await;

    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 1024];
    let n = within("the answer", socket.read(&mut buf)).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    drain.trip();
    // Idle at the trip (no window): closed at once, with FIN.
    assert_eq!(read_to_close(&mut socket).await.unwrap(), b"");

    let report = within("shutdown", drain.shutdown(Duration::from_secs(5))).await;
    within("the server ends", server).await.unwrap();
    assert_eq!(report.connections().open_at_trip(), 1);
}

#[tokio::test]
async fn a_request_in_flight_at_the_trip_gets_its_answer_then_the_connection_closes() {
    let drain = Drain::new();
    let gate = Gate::new();
    let (addr, server) = serve(&drain, app(gate.clone())).await;

    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    within("admitted", async {
        while drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    drain.trip();
    // While the drain waits for it, the listener still answers: a new
    // connection gets the layer's 503, not a refused connection.
    let late = http2().request(get_req(addr, "/hello")).await.unwrap();
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);

    gate.open(1);
    let answer = String::from_utf8(read_to_close(&mut socket).await.unwrap()).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.ends_with("slow"), "{answer}");

    let report = within("shutdown", drain.shutdown(Duration::from_secs(5))).await;
    within("the server ends", server).await.unwrap();
    assert!(report.is_clean());
    // Once the drain is over, the listener is closed.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// Counts the connections a client opens.
#[derive(Clone)]
struct Counting {
    inner: HttpConnector,
    opened: Arc<AtomicUsize>,
}

impl tower::Service<http::Uri> for Counting {
    type Response = <HttpConnector as tower::Service<http::Uri>>::Response;
    type Error = <HttpConnector as tower::Service<http::Uri>>::Error;
    type Future = <HttpConnector as tower::Service<http::Uri>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        self.opened.fetch_add(1, Ordering::SeqCst);
        self.inner.call(uri)
    }
}

#[tokio::test]
async fn an_http2_client_gets_goaway_at_the_trip_and_opens_its_next_stream_elsewhere() {
    let drain = Drain::new();
    let gate = Gate::new();
    let (addr, server) = serve(&drain, app(gate.clone())).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(Counting {
            inner: HttpConnector::new(),
            opened: opened.clone(),
        });

    // A stream open at the trip...
    let res = client.request(get_req(addr, "/stream")).await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    drain.trip();
    // ... the connection refuses new streams (GOAWAY): the client's next
    // request goes on a new connection (here to the same, draining server,
    // which refuses it; behind a load balancer, elsewhere).
    within("GOAWAY reaches the client", async {
        loop {
            let late = client.request(get_req(addr, "/hello")).await.unwrap();
            assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
            if opened.load(Ordering::SeqCst) > 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // ... and the stream open at the trip completes.
    gate.open(1);
    let body = within("the stream", text(res.into_body())).await.unwrap();
    assert_eq!(body, tower_drain_tests::full_stream());

    let report = within("shutdown", drain.shutdown(Duration::from_secs(5))).await;
    within("the server ends", server).await.unwrap();
    assert!(report.is_clean());
    assert_eq!(report.connections().open_at_trip(), 1);
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_at_the_deadline() {
    let drain = Drain::new();
    let (addr, server) = serve(&drain, flood()).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
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

    let shutdown = Shutdown::with_trigger(&drain, async {}).deadline(Duration::from_millis(200));
    let report = within("the shutdown, with its server", shutdown.run()).await;
    let drained = report.drain();
    assert!(drained.deadline_reached());
    // Dropped with its connection: counted, and nothing left in flight.
    assert_eq!(drained.connections().closed_hard(), 1, "{report}");
    assert_eq!(drained.unfinished(), 0, "{report}");
    assert_eq!(drained.cut(), 1, "{report}");
    assert_eq!(drain.in_flight(), 0);
    within("the server ended", server).await.unwrap();
    drop(client);
}

#[tokio::test]
async fn an_exempt_stream_that_never_ends_is_dropped_after_the_close_timeout() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    // Like a health `Watch` outside the drain: exempt, never ends.
    let app = app(Gate::new()).layer(drain.layer().exempt(|req| req.uri().path() == "/forever"));
    let server = tokio::spawn(
        tower_drain::serve(listener, app, &drain)
            .close_timeout(Duration::from_millis(100))
            .into_future(),
    );
    let watch = http2().request(get_req(addr, "/forever")).await.unwrap();

    let shutdown = Shutdown::with_trigger(&drain, async {}).deadline(Duration::from_secs(60));
    let report = within("the shutdown, with its server", shutdown.run()).await;
    // Nothing counted was in flight: drained at once, and the server ended
    // after its close timeout, not after the 60 s deadline.
    assert!(report.is_clean());
    let connections = report.drain().connections();
    assert_eq!(
        (connections.open_at_trip(), connections.closed_hard()),
        (1, 1),
        "{report}"
    );
    within("the server ended", server).await.unwrap();
    assert!(text(watch.into_body()).await.is_err(), "the stream was cut");
}

#[tokio::test]
async fn the_minimum_window_answers_an_idle_client_with_connection_close() {
    let drain = Drain::new();
    let (addr, server) = serve_with(&drain, app(Gate::new()), |serve| {
        serve.min_drain(Duration::from_millis(300))
    })
    .await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 1024];
    within("the answer", socket.read(&mut buf)).await.unwrap();

    // Nothing in flight: the drain is over at once, but the window keeps the
    // idle connection up, and its next request is answered.
    let report = within("shutdown", drain.shutdown(Duration::from_secs(5))).await;
    assert!(report.is_clean());
    socket
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_to_close(&mut socket).await.unwrap()).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    within("the server ends after the window", server)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_connection_that_sends_no_header_is_closed_after_the_header_timeout() {
    let drain = Drain::new();
    let (addr, server) = serve_with(&drain, app(Gate::new()), |serve| {
        serve.header_read_timeout(Duration::from_millis(100))
    })
    .await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"GET /hello HTTP/1.1\r\n").await.unwrap();
    // hyper answers 408 or closes; either way the connection ends.
    let _ = read_to_close(&mut socket).await;
    // An idle keep-alive connection is closed the same way.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 1024];
    within("the answer", idle.read(&mut buf)).await.unwrap();
    assert_eq!(read_to_close(&mut idle).await.unwrap(), b"");

    within("shutdown", drain.shutdown(Duration::from_secs(5))).await;
    within("the server ends", server).await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_listener_is_served_and_closed_with_the_drain() {
    let drain = Drain::new();
    let dir = std::env::temp_dir().join(format!("tower-drain-serve-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = tokio::net::UnixListener::bind(&dir).unwrap();
    let server = tokio::spawn(
        tower_drain::serve(listener, app(Gate::new()).layer(drain.layer()), &drain).into_future(),
    );

    let stream = tokio::net::UnixStream::connect(&dir).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let res = sender
        .send_request(
            http::Request::get("/hello")
                .header("host", "x")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(text(res.into_body()).await.unwrap(), "hello");

    let report = within("shutdown", drain.shutdown(Duration::from_secs(5))).await;
    within("the server ends", server).await.unwrap();
    assert_eq!(report.connections().open_at_trip(), 1);
    let _ = std::fs::remove_file(&dir);
}

#[tokio::test]
async fn tonic_routes_are_served_and_refused_after_the_trip() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let drain = Drain::new();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let routes = tonic::service::Routes::new(health);
    let (listener, addr) = listen().await;
    let server = tokio::spawn(
        tower_drain::serve(
            listener,
            tower::ServiceBuilder::new()
                .layer(drain.layer())
                .service(routes),
            &drain,
        )
        .into_future(),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest::default())
        .await
        .expect("served");

    drain.trip();
    let refused = client
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);

    within("shutdown", drain.shutdown(Duration::from_secs(5))).await;
    within("the server ends", server).await.unwrap();
}

/// Whether the server closed `socket` within `wait`: `Some(Ok(bytes read))`
/// at its FIN, `Some(Err)` on a reset, `None` if still open.
async fn closed_within(socket: &mut TcpStream, wait: Duration) -> Option<std::io::Result<usize>> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) => return Some(Ok(total)),
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => return Some(Err(e)),
        }
    }
}

/// A connection the kernel completed, with its request sent, just before the
/// drain is over, and not yet seen by the runtime's readiness: the server
/// takes it from the kernel as the listener closes and answers it.
#[tokio::test(flavor = "current_thread")]
async fn a_connection_completed_as_the_drain_ends_gets_an_answer_not_a_reset() {
    use std::io::{Read, Write};

    let drain = Drain::new();
    let (addr, server) = serve(&drain, app(Gate::new())).await;
    drain.trip();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Blocking: no turn of the reactor between the connect and the end.
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    within("shutdown", drain.shutdown(Duration::from_secs(1))).await;
    within("the server ends", server).await.unwrap();
    client
        .set_read_timeout(Some(tower_drain_tests::HANG))
        .unwrap();
    let mut answer = Vec::new();
    client
        .read_to_end(&mut answer)
        .expect("an orderly end, not a reset");
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
}

/// After a `101` the socket is the application's: a tunnel that forwards
/// the end of its upstream (a half close) still reads what the client sends
/// after it.
#[tokio::test]
async fn an_upgraded_connection_keeps_what_the_client_sends_after_its_half_close() {
    let drain = Drain::new();
    let (got_tx, got_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let got_tx = Arc::new(std::sync::Mutex::new(Some(got_tx)));
    let tunnel = Router::new().route(
        "/tunnel",
        get(move |mut req: http::Request<Body>| {
            let got_tx = got_tx.clone();
            async move {
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let mut io = TokioIo::new(on_upgrade.await.unwrap());
                    io.write_all(b"server-done").await.unwrap();
                    io.shutdown().await.unwrap();
                    let mut got = Vec::new();
                    let _ = within("the client's bytes", io.read_to_end(&mut got)).await;
                    let _ = got_tx.lock().unwrap().take().unwrap().send(got);
                });
                http::Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "tunnel")
                    .body(Body::empty())
                    .unwrap()
            }
        }),
    );
    let (addr, server) = serve(&drain, tunnel).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"GET /tunnel HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: tunnel\r\n\r\n",
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    within("the server's half close", client.read_to_end(&mut seen))
        .await
        .unwrap();
    assert!(seen.ends_with(b"server-done"));
    client.write_all(b"after the half close").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(
        within("the tunnel", got_rx).await.unwrap(),
        b"after the half close"
    );

    within("shutdown", drain.shutdown(Duration::from_secs(1))).await;
    within("the server ends", server).await.unwrap();
}

/// hyper-util's protocol detection has no timer: the server bounds it with
/// the header read timeout, so neither a silent client nor one that sends
/// part of the HTTP/2 preface holds a connection.
#[tokio::test]
async fn a_silent_or_half_preface_connection_is_closed_after_the_header_timeout() {
    let drain = Drain::new();
    let (addr, server) = serve_with(&drain, app(Gate::new()), |serve| {
        serve.header_read_timeout(Duration::from_millis(100))
    })
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half_preface = TcpStream::connect(addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for socket in [&mut silent, &mut half_preface] {
        let closed = closed_within(socket, tower_drain_tests::HANG).await;
        assert!(matches!(closed, Some(Ok(0))), "{closed:?}");
    }
    within("shutdown", drain.shutdown(Duration::from_secs(1))).await;
    within("the server ends", server).await.unwrap();
}

/// A client that connected but never spoke (a browser's preconnect) is
/// closed with the others, after the linger, not held for the close
/// timeout, and it counts as closed gracefully.
#[tokio::test]
async fn a_silent_connection_does_not_hold_the_shutdown() {
    let drain = Drain::new();
    let (addr, server) = serve_with(&drain, app(Gate::new()), |serve| {
        serve.close_timeout(Duration::from_secs(60))
    })
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shutdown = Shutdown::with_trigger(&drain, async {});
    let report = within("the shutdown, not the 60 s close timeout", shutdown.run()).await;
    let connections = report.drain().connections();
    assert_eq!(
        (connections.closed_gracefully(), connections.closed_hard()),
        (1, 0),
        "{report}"
    );
    assert!(matches!(
        closed_within(&mut silent, tower_drain_tests::HANG).await,
        Some(Ok(0))
    ));
    within("the server ends", server).await.unwrap();
}

/// `serve` counts its server in the drain as soon as it is called: a
/// shutdown that starts before the spawned server first runs still waits
/// for it.
#[tokio::test]
async fn shutdown_waits_for_a_server_spawned_but_not_yet_run() {
    let drain = Drain::new();
    let (_, server) = serve(&drain, app(Gate::new())).await;
    let shutdown = Shutdown::with_trigger(&drain, async {});
    within("shutdown", shutdown.run()).await;
    assert!(server.is_finished());
}

/// A minimum window longer than the drain deadline does not hold the
/// shutdown sequence (it waits for its servers up to two seconds past the
/// deadline).
#[tokio::test]
async fn a_window_longer_than_the_deadline_does_not_hold_the_shutdown() {
    let drain = Drain::new();
    let (_, server) = serve_with(&drain, app(Gate::new()), |serve| {
        serve.min_drain(Duration::from_secs(60))
    })
    .await;
    let shutdown = Shutdown::with_trigger(&drain, async {}).deadline(Duration::from_millis(100));
    within("the shutdown, not the 60 s window", shutdown.run()).await;
    server.abort();
}

/// hyper runs each HTTP/2 stream in a task of its own, which drops a cut
/// request just after its connection: the report made once the server has
/// closed counts it as cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_dropped_with_its_connection_is_counted_cut() {
    for _ in 0..5 {
        let drain = Drain::new();
        let (addr, server) = serve(&drain, flood()).await;
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (mut send, connection) =
            hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(TokioExecutor::new(), io)
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        let req = http::Request::get(format!("http://{addr}/flood"))
            .body(Empty::new())
            .unwrap();
        // Never read: the stream's window fills, and the body waits.
        let res = within("headers", send.send_request(req)).await.unwrap();
        let shutdown =
            Shutdown::with_trigger(&drain, async {}).deadline(Duration::from_millis(200));
        let report = within("shutdown", shutdown.run()).await;
        let drained = report.drain();
        assert_eq!((drained.cut(), drained.unfinished()), (1, 0), "{report}");
        within("the server ends", server).await.unwrap();
        drop(res);
        connection.abort();
    }
}

/// Every setting at zero and at `Duration::MAX` serves, moves clients off
/// and ends, without a panic.
#[tokio::test]
async fn settings_of_zero_and_duration_max_serve_and_end() {
    for extreme in [Duration::ZERO, Duration::MAX] {
        let drain = Drain::new();
        let (listener, addr) = listen().await;
        let server = tokio::spawn(
            tower_drain::serve(listener, app(Gate::new()).layer(drain.layer()), &drain)
                .close_timeout(extreme)
                .linger(extreme)
                .header_read_timeout(extreme.max(Duration::from_secs(1)))
                .into_future(),
        );
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0; 1024];
        let n = within("the answer", socket.read(&mut buf)).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{extreme:?}");
        drop(socket);
        within("shutdown", drain.shutdown(Duration::from_secs(1))).await;
        within("the server ends", server).await.unwrap();
    }
}

/// A client still silent at the trip is closed through the linger: a
/// request it sends just after the server's FIN meets an orderly end, not a
/// reset.
#[tokio::test]
async fn a_silent_connection_is_closed_with_fin_and_a_linger() {
    let drain = Drain::new();
    let (addr, server) = serve_with(&drain, app(Gate::new()), |serve| {
        serve.linger(Duration::from_millis(500))
    })
    .await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_secs(5)).await }
    });
    // The server closes it after the linger (500 ms); the request comes
    // after that, unread by design.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _ = socket
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let end = read_to_close(&mut socket).await;
    assert!(end.is_ok(), "a reset: {end:?}");
    within("shutdown", shutdown).await.unwrap();
    within("the server ends", server).await.unwrap();
}

/// `Shutdown::run` waits for a server whose close timeout is longer than
/// its own default bound.
#[tokio::test]
async fn shutdown_waits_for_a_server_with_a_long_close_timeout() {
    let drain = Drain::new();
    let (listener, addr) = listen().await;
    let app = app(Gate::new()).layer(drain.layer().exempt(|req| req.uri().path() == "/forever"));
    let server = tokio::spawn(
        tower_drain::serve(listener, app, &drain)
            .close_timeout(Duration::from_secs(3))
            .into_future(),
    );
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /forever HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 1024];
    within("the headers", socket.read(&mut buf)).await.unwrap();
    let shutdown = Shutdown::with_trigger(&drain, async {}).deadline(Duration::from_millis(100));
    let report = within("shutdown", shutdown.run()).await;
    assert!(server.is_finished(), "{report}");
    assert_eq!(report.drain().connections().closed_hard(), 1, "{report}");
}

/// Connections closing by themselves as the drain trips are each counted
/// on one side of it: every one open at the trip is counted closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closing_at_the_trip_are_counted_once() {
    let drain = Drain::new();
    let (addr, server) = serve(&drain, app(Gate::new())).await;
    let mut sockets = Vec::new();
    for _ in 0..64 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0; 1024];
        within("the answer", socket.read(&mut buf)).await.unwrap();
        sockets.push(socket);
    }
    // They close (the server reads their end) while the drain trips.
    drop(sockets);
    let shutdown = Shutdown::with_trigger(&drain, async {});
    let report = within("shutdown", shutdown.run()).await;
    within("the server ends", server).await.unwrap();
    let connections = report.drain().connections();
    assert_eq!(
        connections.closed_gracefully() + connections.closed_hard(),
        connections.open_at_trip(),
        "{report}"
    );
    assert_eq!(connections.open(), 0, "{report}");
}

/// An upgraded socket is the application's even when the code that shuts
/// it down runs inside another connection's poll (hyper polls HTTP/1
/// handlers inline): its half close does not linger.
#[tokio::test]
async fn an_upgraded_socket_closed_from_another_connections_handler_does_not_linger() {
    type Parked = Arc<tokio::sync::Mutex<Option<TokioIo<hyper::upgrade::Upgraded>>>>;
    let parked: Parked = Arc::default();
    let probe = parked.clone();
    let router = Router::new()
        .route(
            "/tunnel",
            get({
                let parked = parked.clone();
                move |mut req: http::Request<Body>| {
                    let parked = parked.clone();
                    async move {
                        let on_upgrade = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let io = on_upgrade.await.unwrap();
                            *parked.lock().await = Some(TokioIo::new(io));
                        });
                        http::Response::builder()
                            .status(StatusCode::SWITCHING_PROTOCOLS)
                            .header("connection", "upgrade")
                            .header("upgrade", "tunnel")
                            .body(Body::empty())
                            .unwrap()
                    }
                }
            }),
        )
        .route(
            "/close-tunnel",
            get(move || {
                let parked = parked.clone();
                async move {
                    let mut io = parked.lock().await.take().unwrap();
                    io.write_all(b"bye").await.unwrap();
                    io.shutdown().await.unwrap();
                    let mut got = Vec::new();
                    let _ = within("the client's bytes", io.read_to_end(&mut got)).await;
                    String::from_utf8_lossy(&got).into_owned()
                }
            }),
        );
    let drain = Drain::new();
    let (addr, server) = serve(&drain, router).await;
    let mut tunnel = TcpStream::connect(addr).await.unwrap();
    tunnel
        .write_all(
            b"GET /tunnel HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: tunnel\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = [0; 1024];
    let n = within("the 101", tunnel.read(&mut buf)).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    within("the tunnel parked", async {
        while probe.lock().await.is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let closer = tokio::spawn(async move {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /close-tunnel HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    });
    let mut seen = Vec::new();
    within("the half close", tunnel.read_to_end(&mut seen))
        .await
        .unwrap();
    tunnel.write_all(b"after the half close").await.unwrap();
    tunnel.shutdown().await.unwrap();
    let answer = within("the closer's answer", closer).await.unwrap();
    assert!(answer.ends_with("after the half close"), "{answer}");
    within("shutdown", drain.shutdown(Duration::from_secs(1))).await;
    within("the server ends", server).await.unwrap();
}

/// A WebSocket whose upgrade is answered after the trip (its handler took
/// the count, then did something slow, such as checking a token) gets a
/// `101` that says `Connection: upgrade` alone: a `close` added to it makes
/// clients reject the handshake.
#[tokio::test]
async fn a_websocket_upgrade_answered_after_the_trip_completes_its_handshake() {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::extract::State;
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;
    use tower_drain_sse::ws::WebSocketDrain;

    #[derive(Clone)]
    struct Upgrades {
        ws: WebSocketDrain,
        entered: Arc<tokio::sync::Notify>,
    }

    async fn slow(
        upgrade: WebSocketUpgrade,
        State(upgrades): State<Upgrades>,
    ) -> axum::response::Response {
        let res = upgrades.ws.on_upgrade(upgrade, |mut socket| async move {
            while let Some(Ok(_)) = socket.recv().await {}
        });
        upgrades.entered.notify_one();
        tokio::time::sleep(Duration::from_millis(200)).await;
        res
    }

    let drain = Drain::new();
    let entered = Arc::new(tokio::sync::Notify::new());
    let app = Router::new().route("/ws", get(slow)).with_state(Upgrades {
        ws: WebSocketDrain::new(drain.signal()),
        entered: entered.clone(),
    });
    let (addr, _server) = serve(&drain, app).await;

    let client = tokio::spawn(tokio_tungstenite::connect_async(format!("ws://{addr}/ws")));
    within("the handler", entered.notified()).await;
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_secs(30)).await }
    });
    let (mut client, res) = within("the handshake", client)
        .await
        .unwrap()
        .expect("a handshake the client accepts");
    assert_eq!(res.headers()["connection"], "upgrade");
    // Then the drain closes the socket, and the client answers.
    match within("the Close", client.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("{other:?}"),
    }
    assert!(within("the end", client.next()).await.is_none());
    let report = within("the drain", shutdown).await.unwrap();
    assert_eq!(
        (
            report.in_flight_at_trip(),
            report.ended_early(),
            report.cut()
        ),
        (2, 1, 0),
        "{report}"
    );
}

/// A `CONNECT` tunnel answered `200` after the trip is a handshake too: its
/// answer says nothing of `close`.
#[tokio::test]
async fn a_connect_tunnel_answered_after_the_trip_keeps_its_connection() {
    let drain = Drain::new();
    let entered = Arc::new(tokio::sync::Notify::new());
    let app = Router::new().fallback({
        let entered = entered.clone();
        move || async move {
            entered.notify_one();
            tokio::time::sleep(Duration::from_millis(200)).await;
            StatusCode::OK
        }
    });
    let (addr, _server) = serve(&drain, app).await;

    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    within("the handler", entered.notified()).await;
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_secs(30)).await }
    });
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        within("the answer", socket.read_exact(&mut byte))
            .await
            .unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("close"), "{head}");
    drop(socket);
    let report = within("the drain", shutdown).await.unwrap();
    assert_eq!(report.in_flight_at_trip(), 1, "{report}");
}
