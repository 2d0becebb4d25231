//! Zero downtime, shown the way it is run: a rolling restart of two
//! `chat-sse` instances behind nginx, under a bounded mixed load, once with
//! tower-drain and once without (`TOWER_DRAIN=off`: axum's own graceful
//! shutdown, bounded by the same deadline).
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
    streams_sent: usize,
    streams_complete: usize,
    streams_ended_by_frame: usize,
    streams_cut: usize,
    streams_refused: usize,
    proxy_logged: usize,
    proxy_retried: usize,
    restart_secs: Vec<f64>,
}

impl Tally {
    fn client_errors(&self) -> usize {
        self.short_errors + self.streams_cut + self.streams_refused
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
            "  streams: {} sent, {} complete, {} ended by the terminal frame, {} cut mid-stream, {} refused",
            self.streams_sent,
            self.streams_complete,
            self.streams_ended_by_frame,
            self.streams_cut,
            self.streams_refused
        )?;
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

/// How one streamed answer ended, as the client saw it.
enum Stream {
    Complete,
    EndedByFrame,
    Cut,
    Refused,
}

/// Reads one answer through the proxy and judges it: every event whole, then
/// either all the tokens or the terminal frame, then a clean end.
async fn stream_once(proxy: std::net::SocketAddr) -> Stream {
    let path = format!("/chat?n={TOKENS}");
    let Ok(res) = http1().request(get_req(proxy, &path)).await else {
        return Stream::Refused;
    };
    if res.status() != StatusCode::OK {
        return Stream::Refused;
    }
    let Ok(body) = res.into_body().collect().await else {
        return Stream::Cut;
    };
    let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    if !body.is_empty() && !body.ends_with("\n\n") {
        return Stream::Cut; // a partial event
    }
    let events: Vec<&str> = body.split_terminator("\n\n").collect();
    let ended_by_frame = events
        .last()
        .is_some_and(|last| last.lines().any(|line| line == "event: end"));
    let tokens = events.len() - usize::from(ended_by_frame);
    match (ended_by_frame, tokens) {
        (true, _) => Stream::EndedByFrame,
        (false, n) if n == TOKENS => Stream::Complete,
        // Ended cleanly, but short and without a word: as bad as a cut.
        (false, _) => Stream::Cut,
    }
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
    ];
    if mode == Mode::WithoutDrain {
        env.push(("TOWER_DRAIN", "off"));
    }
    Process::example(env!("CARGO_BIN_EXE_chat-sse"), &env).0
}

/// The load's workers: short requests (ok, errors), and streams.
struct Load {
    short: Vec<JoinHandle<(usize, usize)>>,
    streams: Vec<JoinHandle<Vec<Stream>>>,
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
    let streams = (0..STREAM_WORKERS)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                // Staggered, so that streams are at every stage at a restart.
                tokio::time::sleep(Duration::from_millis(400 * i as u64)).await;
                let mut seen = Vec::new();
                while running(&stop, seen.len()) {
                    seen.push(stream_once(proxy).await);
                }
                seen
            })
        })
        .collect();
    Load { short, streams }
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
    let Load { short, streams } = spawn_load(proxy, &stop);
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
    for worker in streams {
        for stream in within("stream worker", worker).await.unwrap() {
            tally.streams_sent += 1;
            match stream {
                Stream::Complete => tally.streams_complete += 1,
                Stream::EndedByFrame => tally.streams_ended_by_frame += 1,
                Stream::Cut => tally.streams_cut += 1,
                Stream::Refused => tally.streams_refused += 1,
            }
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
            tally.short_sent + tally.streams_sent,
            tally.proxy_logged,
            "{tally}"
        );
        assert!(
            tally.short_sent > 100 && tally.streams_sent >= STREAM_WORKERS,
            "{tally}"
        );
    }
    assert_eq!(with.client_errors(), 0, "{with}");
    assert!(
        with.streams_ended_by_frame > 0,
        "streams were open at the restarts: {with}"
    );
    assert!(
        with.proxy_retried > 0,
        "nginx moved requests off a draining instance: {with}"
    );
}
