//! Zero downtime, shown the way it is run: a rolling restart of two
//! `chat-sse` instances behind nginx, under a bounded mixed load, once with
//! tower-drain and once without (`TOWER_DRAIN=off`: axum's own graceful
//! shutdown, bounded by the same deadline).
//!
//! Alongside the `EventSource` answers, WebSocket clients read answers over
//! `/ws` the way the example's page does: at Close `1001` they reconnect
//! with `last=` and resume; without the drain the process exits under their
//! sockets, and they see abnormal closures (`1006`).
//!
//! It needs an nginx binary, so it is ignored by `cargo test`;
//! `scripts/rolling-restart` finds or fetches one (Debian's package,
//! unpacked into `target/`, nothing installed system-wide) and runs it:
//!
//! ```sh
//! scripts/rolling-restart
//! ```
//!
//! Everything is on 127.0.0.1, every loop is bounded in time and count, and
//! every process it starts is ended by its pid.

#![cfg(unix)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tower_drain_tests::{get_req, http1, within};

mod common;
use common::Process;

/// Tokens per streamed answer: one every 150 ms, so 6 s, longer than the
/// drain deadline, as LLM answers are.
const TOKENS: usize = 40;
/// Seconds an instance may drain before it exits.
const DEADLINE_SECS: &str = "3";
/// Load workers of each kind.
const SHORT_WORKERS: usize = 4;
const STREAM_WORKERS: usize = 6;
const SOCKET_WORKERS: usize = 4;
/// Bounds of the load, whatever happens.
const MAX_REQUESTS_PER_WORKER: usize = 20_000;
const MAX_LOAD: Duration = Duration::from_secs(60);
/// Time under load before, between and after the restarts.
const SETTLE: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    WithDrain,
    WithoutDrain,
}

/// What the clients saw, and what nginx logged.
#[derive(Debug, Default)]
struct Tally {
    short_sent: usize,
    short_ok: usize,
    short_errors: usize,
    answers: usize,
    answers_complete: usize,
    answers_with_a_gap: usize,
    answers_with_a_duplicate: usize,
    answers_given_up: usize,
    requests_for_answers: usize,
    ended_by_frame: usize,
    cut_mid_stream: usize,
    sockets: SocketTally,
    proxy_logged: usize,
    proxy_retried: usize,
    restart_secs: Vec<f64>,
}

/// What the WebSocket clients saw.
#[derive(Debug, Default)]
struct SocketTally {
    answers: usize,
    complete: usize,
    with_a_gap: usize,
    with_a_duplicate: usize,
    given_up: usize,
    attempts: usize,
    opened: usize,
    refused: usize,
    closed_done: usize,
    going_away: usize,
    abnormal: usize,
    /// The other ends, each as it was ("1011 ...", "silent").
    other: Vec<String>,
}

impl SocketTally {
    fn add(&mut self, answer: &SocketAnswer) {
        self.answers += 1;
        match verdict(&answer.tokens, answer.given_up) {
            Verdict::Complete => self.complete += 1,
            Verdict::Gap => self.with_a_gap += 1,
            Verdict::Duplicate => self.with_a_duplicate += 1,
            Verdict::GivenUp => self.given_up += 1,
        }
        self.attempts += answer.attempts;
        self.opened += answer.opened;
        self.refused += answer.refused;
        for end in &answer.ends {
            match end {
                SocketEnd::Done => self.closed_done += 1,
                SocketEnd::GoingAway => self.going_away += 1,
                SocketEnd::Abnormal => self.abnormal += 1,
                SocketEnd::Other(what) => self.other.push(what.clone()),
            }
        }
    }
}

impl fmt::Display for SocketTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  WebSocket answers ({TOKENS} tokens, read as the page reads them): {} started, {} complete, {} with a gap, {} with a duplicate, {} given up",
            self.answers, self.complete, self.with_a_gap, self.with_a_duplicate, self.given_up
        )?;
        write!(
            f,
            "  their {} upgrade requests: {} sockets opened, {} refused; {} closed 1000 after the answer, {} closed 1001 server_shutdown, {} abnormal closures (1006), {} other ends{}",
            self.attempts,
            self.opened,
            self.refused,
            self.closed_done,
            self.going_away,
            self.abnormal,
            self.other.len(),
            if self.other.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.other.join(", "))
            }
        )
    }
}

impl Tally {
    fn client_errors(&self) -> usize {
        self.short_errors
            + self.answers_with_a_gap
            + self.answers_with_a_duplicate
            + self.answers_given_up
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  short requests: {} sent, {} ok, {} errors",
            self.short_sent, self.short_ok, self.short_errors
        )?;
        writeln!(
            f,
            "  answers ({TOKENS} tokens, read as EventSource does): {} started, {} complete, {} with a gap, {} with a duplicate, {} given up",
            self.answers,
            self.answers_complete,
            self.answers_with_a_gap,
            self.answers_with_a_duplicate,
            self.answers_given_up
        )?;
        writeln!(
            f,
            "  their {} requests: {} streams ended by the terminal frame, {} cut mid-stream",
            self.requests_for_answers, self.ended_by_frame, self.cut_mid_stream
        )?;
        writeln!(f, "{}", self.sockets)?;
        writeln!(
            f,
            "  nginx: {} requests logged, {} retried on another instance",
            self.proxy_logged, self.proxy_retried
        )?;
        let restarts: Vec<String> = self
            .restart_secs
            .iter()
            .map(|s| format!("{s:.2} s"))
            .collect();
        write!(
            f,
            "  SIGTERM to exit, per instance: {}",
            restarts.join(", ")
        )
    }
}

/// One answer, read the way a browser's `EventSource` (and the example's
/// page) reads it: on the terminal frame, or a stream that ends or breaks,
/// it waits the last `retry:` and reconnects with `Last-Event-ID`, until the
/// server says `event: done`; on an answer that is not a `200` event stream
/// it gives up for good.
#[derive(Debug, Default)]
struct Answer {
    /// The token ids received, in order.
    tokens: Vec<usize>,
    requests: usize,
    ended_by_frame: usize,
    cut_mid_stream: usize,
    given_up: bool,
}

/// How an answer ended up.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Complete,
    Gap,
    Duplicate,
    GivenUp,
}

/// How an answer whose token ids were `tokens` ended up.
fn verdict(tokens: &[usize], given_up: bool) -> Verdict {
    let mut seen = vec![0usize; TOKENS];
    for &id in tokens {
        seen[id] += 1;
    }
    let in_order = tokens.windows(2).all(|w| w[0] < w[1]);
    if seen.iter().any(|&n| n > 1) {
        Verdict::Duplicate
    } else if seen.iter().all(|&n| n == 1) && in_order {
        Verdict::Complete
    } else if given_up {
        Verdict::GivenUp
    } else {
        Verdict::Gap
    }
}

/// A browser's default reconnection time is about 3 s; the instances send
/// `retry: 500` in their terminal frame (`SSE_RETRY_MS`).
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Bounds of one answer's reconnections, whatever happens.
const MAX_REQUESTS_PER_ANSWER: usize = 40;

async fn answer(proxy: std::net::SocketAddr, deadline: Instant) -> Answer {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;

    let mut answer = Answer::default();
    let mut retry = FIRST_RETRY;
    while answer.requests < MAX_REQUESTS_PER_ANSWER && Instant::now() < deadline {
        answer.requests += 1;
        let mut req = get_req(proxy, &format!("/chat?n={TOKENS}"));
        req.headers_mut()
            .insert(http::header::ACCEPT, "text/event-stream".parse().unwrap());
        if let Some(last) = answer.tokens.last() {
            req.headers_mut()
                .insert("last-event-id", last.to_string().parse().unwrap());
        }
        match http1().request(req).await {
            // A network error: EventSource reconnects.
            Err(_) => {}
            Ok(res) => {
                let event_stream = res
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .is_some_and(|ct| ct == "text/event-stream");
                if res.status() != StatusCode::OK || !event_stream {
                    // WHATWG: "fail the connection", for good.
                    answer.given_up = true;
                    return answer;
                }
                let mut events = res.into_body().into_data_stream().eventsource();
                while let Some(event) = events.next().await {
                    let Ok(event) = event else {
                        answer.cut_mid_stream += 1;
                        break;
                    };
                    if let Some(ms) = event.retry {
                        retry = ms;
                    }
                    match event.event.as_str() {
                        "end" => answer.ended_by_frame += 1,
                        "done" => return answer,
                        _ => answer.tokens.extend(event.id.parse::<usize>()),
                    }
                }
            }
        }
        tokio::time::sleep(retry).await;
    }
    answer
}

/// How one WebSocket ended, as its client saw it.
#[derive(Debug, PartialEq, Eq)]
enum SocketEnd {
    /// `{"type":"done"}`, then Close `1000`: the answer is whole.
    Done,
    /// Close `1001` whose reason is the drain's JSON (`server_shutdown`).
    GoingAway,
    /// `1006`: the connection ended, or failed, without a Close frame.
    Abnormal,
    /// Any other Close, or a socket silent past the load's deadline.
    Other(String),
}

/// One answer over `/ws`, read the way the example's page reads it: on any
/// end but the answer's own (Close `1001`, an abnormal closure, a refused
/// upgrade) it waits 500 ms and opens a new socket with `last=`, the id of
/// the last token it has, until it has `{"type":"done"}`.
#[derive(Debug, Default)]
struct SocketAnswer {
    tokens: Vec<usize>,
    /// Upgrade requests sent, and those answered `101`.
    attempts: usize,
    opened: usize,
    /// Upgrades answered with anything but `101`, or connections refused.
    refused: usize,
    ends: Vec<SocketEnd>,
    given_up: bool,
}

async fn socket_answer(proxy: std::net::SocketAddr, deadline: Instant) -> SocketAnswer {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let mut answer = SocketAnswer::default();
    while answer.attempts < MAX_REQUESTS_PER_ANSWER && Instant::now() < deadline {
        answer.attempts += 1;
        let mut url = format!("ws://{proxy}/ws?n={TOKENS}");
        if let Some(last) = answer.tokens.last() {
            url.push_str(&format!("&last={last}"));
        }
        let connected =
            tokio::time::timeout_at(deadline.into(), tokio_tungstenite::connect_async(url)).await;
        let Ok(Ok((mut socket, _))) = connected else {
            answer.refused += 1;
            tokio::time::sleep(FIRST_RETRY).await;
            continue;
        };
        answer.opened += 1;
        let mut done = false;
        let end = loop {
            let Ok(message) = tokio::time::timeout_at(deadline.into(), socket.next()).await else {
                break SocketEnd::Other("silent".into());
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    let message: serde_json::Value =
                        serde_json::from_str(text.as_str()).unwrap_or_default();
                    if message["type"] == "done" {
                        done = true;
                    } else if let Some(id) = message["id"].as_u64() {
                        answer.tokens.push(id as usize);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    // The Close handshake: tungstenite answers the Close,
                    // then the stream ends (bounded).
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while socket.next().await.is_some() {}
                    })
                    .await;
                    let (code, reason) = frame.map_or((1005, String::new()), |frame| {
                        (u16::from(frame.code), frame.reason.as_str().to_owned())
                    });
                    let reason: serde_json::Value =
                        serde_json::from_str(&reason).unwrap_or_default();
                    break match code {
                        1000 if done => SocketEnd::Done,
                        1001 if reason["reason"] == "server_shutdown" => SocketEnd::GoingAway,
                        _ => SocketEnd::Other(format!("{code} {reason}")),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break SocketEnd::Abnormal,
            }
        };
        answer.ends.push(end);
        if done {
            return answer;
        }
        tokio::time::sleep(FIRST_RETRY).await;
    }
    answer.given_up = true;
    answer
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn nginx_conf(dir: &Path, listen: u16, upstreams: [u16; 2]) -> String {
    let dir = dir.display();
    format!(
        r#"worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$status "$request_uri" "$upstream_addr" "$upstream_status"';
    access_log {dir}/access.log upstreams;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    upstream app {{
        server 127.0.0.1:{a} max_fails=0;
        server 127.0.0.1:{b} max_fails=0;
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location /ws {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_buffering off;
            # An upgrade refused with a 503 (an instance draining) goes to
            # the other instance, as does a refused connection.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 4;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
        }}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            # Idempotent requests go to the other instance on a refused
            # connection or a 503; nginx never retries non-idempotent ones.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 4;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"#,
        a = upstreams[0],
        b = upstreams[1],
    )
}

/// One instance of the example on `port`.
fn instance(mode: Mode, port: u16, dir: &Path) -> Process {
    let addr = format!("127.0.0.1:{port}");
    let partial = dir.join("partial-output.jsonl");
    let partial = partial.to_str().expect("utf-8 path");
    let mut env = vec![
        ("ADDR", addr.as_str()),
        ("DRAIN_DEADLINE_SECS", DEADLINE_SECS),
        ("PARTIAL_OUTPUT", partial),
        ("SSE_RETRY_MS", "500"),
    ];
    if mode == Mode::WithoutDrain {
        env.push(("TOWER_DRAIN", "off"));
    }
    Process::example(env!("CARGO_BIN_EXE_chat-sse"), &env).0
}

/// The load's workers: short requests (ok, errors), and answers, over SSE
/// and over WebSockets.
struct Load {
    short: Vec<JoinHandle<(usize, usize)>>,
    answers: Vec<JoinHandle<Vec<Answer>>>,
    socket_answers: Vec<JoinHandle<Vec<SocketAnswer>>>,
}

fn spawn_load(proxy: std::net::SocketAddr, stop: &Arc<AtomicBool>) -> Load {
    let deadline = Instant::now() + MAX_LOAD;
    let running = move |stop: &AtomicBool, sent: usize| {
        !stop.load(Ordering::Relaxed) && sent < MAX_REQUESTS_PER_WORKER && Instant::now() < deadline
    };
    let short = (0..SHORT_WORKERS)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = http1();
                let (mut ok, mut errors) = (0, 0);
                while running(&stop, ok + errors) {
                    match client.request(get_req(proxy, "/")).await {
                        Ok(res) if res.status() == StatusCode::OK => {
                            match res.into_body().collect().await {
                                Ok(_) => ok += 1,
                                Err(_) => errors += 1,
                            }
                        }
                        _ => errors += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (ok, errors)
            })
        })
        .collect();
    let answers = (0..STREAM_WORKERS)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                // Staggered, so that answers are at every stage at a restart.
                tokio::time::sleep(Duration::from_millis(400 * i as u64)).await;
                let mut answers = Vec::new();
                // An answer started goes on to its end (bounded), even
                // after the load stops starting new ones.
                while running(&stop, answers.len()) {
                    answers.push(answer(proxy, deadline).await);
                }
                answers
            })
        })
        .collect();
    let socket_answers = (0..SOCKET_WORKERS)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                // Staggered between the SSE answers.
                tokio::time::sleep(Duration::from_millis(200 + 300 * i as u64)).await;
                let mut answers = Vec::new();
                while running(&stop, answers.len()) {
                    answers.push(socket_answer(proxy, deadline).await);
                }
                answers
            })
        })
        .collect();
    Load {
        short,
        answers,
        socket_answers,
    }
}

/// SIGTERM, wait for the exit, start again on the same port.
fn restart(process: Process, mode: Mode, port: u16, dir: &Path) -> (Process, f64) {
    process.sigterm();
    let (_, took, _) = process.exit();
    (instance(mode, port, dir), took.as_secs_f64())
}

async fn scenario(nginx: &Path, mode: Mode) -> Tally {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "tower-drain-rolling-{}-{mode:?}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).expect("scratch dir");
    let ports = [free_port(), free_port()];
    let listen = free_port();
    std::fs::write(dir.join("nginx.conf"), nginx_conf(&dir, listen, ports)).unwrap();

    let mut a = instance(mode, ports[0], &dir);
    let mut b = instance(mode, ports[1], &dir);
    let conf = dir.join("nginx.conf");
    let error_log = dir.join("error.log");
    let proxy_process = Process::spawn(
        nginx,
        &[
            "-p",
            dir.to_str().unwrap(),
            "-c",
            conf.to_str().unwrap(),
            "-e",
            error_log.to_str().unwrap(),
        ],
        &[],
    );
    let proxy: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    within("nginx listening", async {
        while tokio::net::TcpStream::connect(proxy).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let Load {
        short,
        answers,
        socket_answers,
    } = spawn_load(proxy, &stop);
    let mut tally = Tally::default();

    tokio::time::sleep(SETTLE).await;
    let took;
    (a, took) = tokio::task::block_in_place(|| restart(a, mode, ports[0], &dir));
    tally.restart_secs.push(took);
    tokio::time::sleep(SETTLE).await;
    let took;
    (b, took) = tokio::task::block_in_place(|| restart(b, mode, ports[1], &dir));
    tally.restart_secs.push(took);
    tokio::time::sleep(SETTLE).await;
    stop.store(true, Ordering::Relaxed);

    for worker in short {
        let (ok, errors) = within("short worker", worker).await.unwrap();
        tally.short_ok += ok;
        tally.short_errors += errors;
    }
    tally.short_sent = tally.short_ok + tally.short_errors;
    for worker in answers {
        for answer in within("answer worker", worker).await.unwrap() {
            tally.answers += 1;
            tally.requests_for_answers += answer.requests;
            tally.ended_by_frame += answer.ended_by_frame;
            tally.cut_mid_stream += answer.cut_mid_stream;
            match verdict(&answer.tokens, answer.given_up) {
                Verdict::Complete => tally.answers_complete += 1,
                Verdict::Gap => tally.answers_with_a_gap += 1,
                Verdict::Duplicate => tally.answers_with_a_duplicate += 1,
                Verdict::GivenUp => tally.answers_given_up += 1,
            }
        }
    }
    for worker in socket_answers {
        for answer in within("WebSocket worker", worker).await.unwrap() {
            tally.sockets.add(&answer);
        }
    }

    // Stop everything, ours, by pid: nginx first (QUIT: graceful), then both
    // instances (idle by now).
    proxy_process.signal("QUIT");
    proxy_process.exit();
    for instance in [a, b] {
        instance.sigterm();
        instance.exit();
    }

    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    for line in log.lines() {
        tally.proxy_logged += 1;
        // "$upstream_status" lists one status per upstream tried.
        if line
            .rsplit('"')
            .nth(1)
            .is_some_and(|tried| tried.contains(','))
        {
            tally.proxy_retried += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/rolling-restart"]
async fn rolling_restart_behind_nginx_loses_nothing_with_the_drain() {
    let nginx = std::env::var_os("NGINX")
        .map(PathBuf::from)
        .expect("NGINX: the nginx binary (scripts/rolling-restart sets it)");

    let with = scenario(&nginx, Mode::WithDrain).await;
    let without = scenario(&nginx, Mode::WithoutDrain).await;
    println!("rolling restart of 2 instances behind nginx\nwith tower-drain:\n{with}\nwithout tower-drain (axum's graceful shutdown, same deadline):\n{without}");

    for tally in [&with, &without] {
        // Every request the clients sent reached nginx and is in its log.
        assert_eq!(
            tally.short_sent + tally.requests_for_answers + tally.sockets.attempts,
            tally.proxy_logged,
            "{tally}"
        );
        assert!(
            tally.short_sent > 100
                && tally.answers >= STREAM_WORKERS
                && tally.sockets.answers >= SOCKET_WORKERS,
            "{tally}"
        );
    }
    assert_eq!(with.client_errors(), 0, "{with}");
    assert_eq!(with.answers_complete, with.answers, "{with}");
    assert!(
        with.ended_by_frame > 0,
        "streams were open at the restarts: {with}"
    );
    assert_eq!(with.cut_mid_stream, 0, "{with}");
    assert!(
        with.proxy_retried > 0,
        "nginx moved requests off a draining instance: {with}"
    );
    // Without the drain a socket closes abnormally only if it is on the
    // instance at its SIGTERM and its answer outlasts the instance's exit
    // (at most the deadline later): not in every run, so only printed.
    let sockets = &with.sockets;
    assert_eq!(sockets.abnormal, 0, "{with}");
    assert_eq!(sockets.complete, sockets.answers, "{with}");
    assert!(
        sockets.going_away > 0,
        "sockets were open at the restarts: {with}"
    );
}

/// A health check every `CHECK_INTERVAL_MS`, down after `CHECK_FALL` failed
/// ones: HAProxy takes an instance out of rotation within
/// `CHECK_INTERVAL_MS * CHECK_FALL` (plus one check in flight) of its
/// readiness failing.
const CHECK_INTERVAL_MS: u64 = 100;
const CHECK_FALL: u64 = 2;
/// The lame duck the instances run with: longer than the check's fall time
/// (1000 ms ≥ 100 ms × 2 + one interval in flight), so that the balancer
/// has stopped sending before anything is refused.
const LAME_DUCK_SECS: &str = "1";
/// Workers sending `POST /messages`.
const POST_WORKERS: usize = 4;

fn haproxy_conf(listen: u16, upstreams: [u16; 2]) -> String {
    format!(
        r#"global
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A POST is never sent twice: no retry, no redispatch.
    retries 0
    option redispatch 0
frontend fe
    bind 127.0.0.1:{listen}
    default_backend app
backend app
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter {CHECK_INTERVAL_MS}ms fall {CHECK_FALL} rise 1
    server a 127.0.0.1:{a} check
    server b 127.0.0.1:{b} check
"#,
        a = upstreams[0],
        b = upstreams[1],
    )
}

/// What the `POST` clients saw.
#[derive(Debug, Default)]
struct Posts {
    sent: usize,
    ok: usize,
    failed: usize,
    /// The failures' answers: status, or `connection`.
    failures: Vec<String>,
}

impl fmt::Display for Posts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<String> = Vec::new();
        for failure in &self.failures {
            if !kinds.contains(failure) {
                kinds.push(failure.clone());
            }
        }
        write!(
            f,
            "POST /messages: {} sent, {} ok, {} failed ({})",
            self.sent,
            self.ok,
            self.failed,
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            }
        )
    }
}

/// A rolling restart of two instances behind HAProxy under a load of
/// `POST`s, each instance run with `lame_duck`.
async fn posts_scenario(haproxy: &Path, libs: Option<&str>, lame_duck: &str) -> Posts {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "tower-drain-haproxy-{}-{lame_duck}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let ports = [free_port(), free_port()];
    let listen = free_port();
    let conf = dir.join("haproxy.cfg");
    std::fs::write(&conf, haproxy_conf(listen, ports)).unwrap();

    let start = |port: u16| {
        let addr = format!("127.0.0.1:{port}");
        Process::example(
            env!("CARGO_BIN_EXE_chat-sse"),
            &[
                ("ADDR", addr.as_str()),
                ("DRAIN_DEADLINE_SECS", DEADLINE_SECS),
                ("LAME_DUCK_SECS", lame_duck),
                (
                    "PARTIAL_OUTPUT",
                    dir.join("partial-output.jsonl").to_str().unwrap(),
                ),
            ],
        )
        .0
    };
    let mut a = start(ports[0]);
    let mut b = start(ports[1]);
    let mut env = Vec::new();
    if let Some(libs) = libs {
        env.push(("LD_LIBRARY_PATH", libs));
    }
    let proxy_process = Process::spawn(haproxy, &["-db", "-f", conf.to_str().unwrap()], &env);
    let proxy: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    // Up: both instances pass a check, and a POST goes through.
    within("haproxy serving", async {
        loop {
            let req = http::Request::post(format!("http://{proxy}/messages"))
                .body(http_body_util::Empty::new())
                .unwrap();
            if let Ok(res) = http1().request(req).await {
                if res.status() == StatusCode::OK {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + MAX_LOAD;
    let workers: Vec<JoinHandle<Posts>> = (0..POST_WORKERS)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http::<http_body_util::Full<bytes::Bytes>>();
                let mut posts = Posts::default();
                while !stop.load(Ordering::Relaxed)
                    && posts.sent < MAX_REQUESTS_PER_WORKER
                    && Instant::now() < deadline
                {
                    posts.sent += 1;
                    let req = http::Request::post(format!("http://{proxy}/messages"))
                        .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                            "message {i}-{}",
                            posts.sent
                        ))))
                        .unwrap();
                    match client.request(req).await {
                        Ok(res) if res.status() == StatusCode::OK => {
                            match res.into_body().collect().await {
                                Ok(_) => posts.ok += 1,
                                Err(_) => {
                                    posts.failed += 1;
                                    posts.failures.push("body".into());
                                }
                            }
                        }
                        Ok(res) => {
                            posts.failed += 1;
                            posts.failures.push(res.status().as_u16().to_string());
                        }
                        Err(_) => {
                            posts.failed += 1;
                            posts.failures.push("connection".into());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                posts
            })
        })
        .collect();

    tokio::time::sleep(SETTLE).await;
    (a, _) = tokio::task::block_in_place(|| restart_with(a, || start(ports[0])));
    tokio::time::sleep(SETTLE).await;
    (b, _) = tokio::task::block_in_place(|| restart_with(b, || start(ports[1])));
    tokio::time::sleep(SETTLE).await;
    stop.store(true, Ordering::Relaxed);

    let mut posts = Posts::default();
    for worker in workers {
        let done = within("post worker", worker).await.unwrap();
        posts.sent += done.sent;
        posts.ok += done.ok;
        posts.failed += done.failed;
        posts.failures.extend(done.failures);
    }
    proxy_process.sigterm();
    proxy_process.exit();
    for instance in [a, b] {
        instance.sigterm();
        instance.exit();
    }
    let _ = std::fs::remove_dir_all(&dir);
    posts
}

/// SIGTERM, wait for the exit, and start the next one.
fn restart_with(process: Process, start: impl FnOnce() -> Process) -> (Process, f64) {
    process.sigterm();
    let (_, took, _) = process.exit();
    (start(), took.as_secs_f64())
}

/// Non-idempotent requests must never reach a stopping instance: no proxy
/// retries them. Behind a balancer that checks `/readyz`, a lame duck longer
/// than the check's fall time takes the instance out of rotation before the
/// drain refuses anything: 0 failed `POST`s through a rolling restart. The
/// same run with no lame duck shows what happens without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs haproxy: run scripts/rolling-restart"]
async fn posts_behind_a_health_checking_balancer_never_reach_a_stopping_instance() {
    let haproxy = std::env::var_os("HAPROXY")
        .map(PathBuf::from)
        .expect("HAPROXY: the haproxy binary (scripts/rolling-restart sets it)");
    let libs = std::env::var("HAPROXY_LIBS").ok();

    let with = posts_scenario(&haproxy, libs.as_deref(), LAME_DUCK_SECS).await;
    let without = posts_scenario(&haproxy, libs.as_deref(), "0").await;
    println!(
        "rolling restart of 2 instances behind HAProxy (checks of /readyz every {CHECK_INTERVAL_MS} ms, down after {CHECK_FALL})\n\
         with a lame duck of {LAME_DUCK_SECS} s: {with}\nwith no lame duck:   {without}"
    );
    assert!(with.sent > 100 && without.sent > 100, "{with} / {without}");
    assert_eq!(with.failed, 0, "{with}");
}
