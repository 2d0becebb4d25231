//! The shutdown sequence in a real process: the `axum-streaming` example is
//! started as a child on 127.0.0.1, loaded with real clients, and sent real
//! SIGTERMs. Every child is ended by its pid if a test fails.

#![cfg(unix)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use http_body_util::BodyExt;
use tower_drain_tests::{get_req, http1, within, HANG};

mod common;
use common::{count, Process};

/// The `axum-streaming` example on a free port, with `env`.
fn start(env: &[(&str, &str)]) -> (Process, SocketAddr) {
    let mut env = env.to_vec();
    env.push(("ADDR", "127.0.0.1:0"));
    Process::example(env!("CARGO_BIN_EXE_axum-streaming"), &env)
}

/// Opens a stream of `tokens` tokens and waits for its first one, so that it
/// is admitted before the test goes on; returns the task reading the rest.
async fn open_stream(
    addr: SocketAddr,
    tokens: u32,
) -> tokio::task::JoinHandle<Result<String, String>> {
    let res = within(
        "stream response",
        http1().request(get_req(addr, &format!("/stream?n={tokens}"))),
    )
    .await
    .expect("a response");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let first = within("first token", body.frame())
        .await
        .expect("a frame")
        .expect("no error")
        .into_data()
        .expect("data");
    tokio::spawn(async move {
        let mut text = String::from_utf8_lossy(&first).into_owned();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("{e} after {text:?}"))?;
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
        Ok(text)
    })
}

fn tokens(n: u32) -> String {
    (0..n).map(|i| format!("token-{i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_admitted_requests_complete_and_late_ones_get_503() {
    let (mut server, addr) = start(&[("DRAIN_DEADLINE_SECS", "20")]);

    // Load: streams of 20 tokens (about 4 s each), opened together, and
    // short requests.
    let streams = futures_util::future::join_all((0..6).map(|_| open_stream(addr, 20))).await;
    for _ in 0..20 {
        let res = http1().request(get_req(addr, "/")).await.expect("served");
        assert_eq!(res.status(), StatusCode::OK);
    }

    server.sigterm();
    server.wait_for_log("drain tripped");

    // Late requests, on new connections, for as long as the streams run.
    let mut refused = 0;
    let mut late = 0;
    while streams.iter().any(|s| !s.is_finished()) && late < 200 {
        late += 1;
        match http1().request(get_req(addr, "/")).await {
            Ok(res) => {
                assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert!(res.headers().contains_key(http::header::RETRY_AFTER));
                assert_eq!(res.headers()[http::header::CONNECTION], "close");
                refused += 1;
            }
            // The drain just ended and the server stopped listening.
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused > 0, "late requests came during the drain");

    for stream in streams {
        let text = within("stream end", stream).await.unwrap();
        assert_eq!(text.expect("completed, not cut"), tokens(20));
    }

    let (status, _, report) = server.exit();
    assert!(status.success(), "exit 0: {status:?}, {report}");
    assert_eq!(count(&report, " in flight at trip"), 6, "{report}");
    assert_eq!(count(&report, " completed"), 6, "{report}");
    assert_eq!(count(&report, " cut"), 0, "{report}");
    assert_eq!(count(&report, " refused"), refused, "{report}");
    assert!(report.contains("write the stats finished"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_finishes_is_cut_at_the_deadline() {
    let (mut server, addr) = start(&[("DRAIN_DEADLINE_SECS", "2")]);
    let endless = open_stream(addr, 1_000_000).await;

    server.sigterm();
    server.wait_for_log("drain tripped");
    let tripped = Instant::now();
    let (status, _, report) = server.exit();
    let exited_after = tripped.elapsed();

    let seen = within("cut stream", endless).await.unwrap();
    assert!(seen.is_err(), "the client sees the cut: {seen:?}");
    assert_eq!(status.code(), Some(1), "{report}");
    assert_eq!(count(&report, " cut"), 1, "{report}");
    // Cut by the deadline, not before it: the report says so. And no later
    // than a generous bound (deadline + unwind + server stop + slack), which
    // only catches a hang.
    assert!(report.contains("deadline reached"), "{report}");
    assert!(
        exited_after < Duration::from_secs(2 + 10),
        "{exited_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_cuts_at_once() {
    // A deadline the test would notice: it is never reached.
    let (mut server, addr) = start(&[("DRAIN_DEADLINE_SECS", "120")]);
    let endless = open_stream(addr, 1_000_000).await;

    server.sigterm();
    server.wait_for_log("drain tripped");
    server.sigterm();
    let (status, took, report) = server.exit();

    assert!(took < HANG, "well before the 120 s deadline");
    assert!(within("cut stream", endless).await.unwrap().is_err());
    assert_eq!(status.code(), Some(1), "{report}");
    assert_eq!(count(&report, " cut"), 1, "{report}");
    assert!(report.contains("told to stop at once"), "{report}");
    assert!(!report.contains("deadline reached"), "{report}");
}

/// Every duration at its largest (as an operator may write "never"): the
/// sequence waits as long as it is told, a second SIGTERM cuts, and the
/// cleanup hook still runs. (It used to panic on an overflow after SIGTERM,
/// and no hook ran.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_durations_never_panic_the_sequence() {
    let max = u64::MAX.to_string();
    let (mut server, addr) = start(&[
        ("LAME_DUCK_SECS", &max),
        ("DRAIN_DEADLINE_SECS", &max),
        ("CLEANUP_DEADLINE_SECS", &max),
    ]);
    let endless = open_stream(addr, 1_000_000).await;

    server.sigterm();
    server.wait_for_log("shutdown started");
    server.sigterm();
    let (status, _, report) = server.exit();

    assert!(within("cut stream", endless).await.unwrap().is_err());
    assert_eq!(status.code(), Some(1), "{report}");
    assert_eq!(count(&report, " cut"), 1, "{report}");
    assert!(report.contains("write the stats finished"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_from_the_lame_duck_while_other_routes_and_livez_answer() {
    let (mut server, addr) = start(&[("LAME_DUCK_SECS", "3"), ("DRAIN_DEADLINE_SECS", "20")]);
    let status = |path: &'static str| async move {
        let res = http1()
            .request(get_req(addr, path))
            .await
            .expect("answered");
        let status = res.status();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(status("/readyz").await, (StatusCode::OK, "ready\n".into()));
    // In flight through the lame duck and into the drain.
    let stream = open_stream(addr, 25).await;

    server.sigterm();
    server.wait_for_log("lame duck");
    assert_eq!(status("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        status("/").await,
        (StatusCode::OK, "hello\n".into()),
        "still serving"
    );

    server.wait_for_log("drain tripped");
    assert_eq!(status("/").await.0, StatusCode::SERVICE_UNAVAILABLE);
    // Exempt from the drain: the probe gets readiness's answer, not the
    // layer's rejection.
    assert_eq!(
        status("/readyz").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".into()
        )
    );
    assert_eq!(status("/livez").await, (StatusCode::OK, "alive\n".into()));

    assert_eq!(within("stream", stream).await.unwrap().unwrap(), tokens(25));
    let (exit, _, report) = server.exit();
    assert!(exit.success(), "{report}");
    let lame_duck: f64 = report
        .split("lame duck ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no lame duck in {report:?}"));
    assert!(lame_duck >= 2.95, "the lame duck lasted its 3 s: {report}");
}
