//! A tonic client balancing over two `grpc-chat` instances
//! (`Channel::balance_list`), under a bounded unary load, while each
//! instance in turn gets SIGTERM and is started again on its address: with
//! `tower_drain::serve`, and with tonic's own server stopped once the drain
//! is over (`SERVER=tonic`).
//!
//! Every call needs a retry policy to get through: while an instance
//! restarts, tonic's `Reconnect` hands the failed reconnect to the next call
//! routed there ("tcp connect error"), a call that reaches a draining
//! instance is refused with `UNAVAILABLE`, and hyper's client refuses to send
//! on a connection that got `GOAWAY` (tonic reports it as `Internal`). None
//! of these reached the application, so the client retries them, as gRPC
//! clients do for `UNAVAILABLE` (a service config's retry policy) and for
//! streams a `GOAWAY` refused (transparent retry).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Process;
use tonic::transport::{Channel, Endpoint};

#[allow(clippy::all, missing_debug_implementations, unreachable_pub)]
mod chat {
    tonic::include_proto!("chat");
}

use chat::chat_client::ChatClient;
use chat::Question;

/// Calls in flight at once.
const WORKERS: usize = 8;
/// Calls at most, in all.
const CALLS: usize = 50_000;
/// Attempts per call.
const ATTEMPTS: u32 = 4;

#[derive(Debug, Default)]
struct Tally {
    ok: AtomicUsize,
    /// Attempts that failed, by what the client saw.
    refused: AtomicUsize,
    connect_errors: AtomicUsize,
    goaway_races: AtomicUsize,
    other_attempts: AtomicUsize,
    /// Calls that failed after their last attempt.
    failed: AtomicUsize,
}

impl Tally {
    fn line(&self) -> String {
        let get = |count: &AtomicUsize| count.load(Ordering::SeqCst);
        format!(
            "{} calls ok, {} failed; failed attempts: {} UNAVAILABLE (refused), \
             {} connect errors, {} refused by a connection closing (GOAWAY), {} other",
            get(&self.ok),
            get(&self.failed),
            get(&self.refused),
            get(&self.connect_errors),
            get(&self.goaway_races),
            get(&self.other_attempts),
        )
    }
}

/// What a failed attempt was, and whether the server never saw the call
/// (so that a gRPC client may retry it: UNAVAILABLE by the status-code
/// guide, and a stream the server refused with GOAWAY, which gRPC clients
/// retry transparently).
fn never_processed(status: &tonic::Status, tally: &Tally) -> bool {
    let text = format!("{status:?}");
    let count = if status.code() == tonic::Code::Unavailable && text.contains("connect") {
        &tally.connect_errors
    } else if status.code() == tonic::Code::Unavailable {
        &tally.refused
    } else if refused_by_the_connection(&text) {
        &tally.goaway_races
    } else {
        &tally.other_attempts
    };
    count.fetch_add(1, Ordering::SeqCst);
    status.code() == tonic::Code::Unavailable || refused_by_the_connection(&text)
}

/// hyper's client refused to send the call: the connection had received
/// GOAWAY, or was closing.
fn refused_by_the_connection(text: &str) -> bool {
    text.contains("GoAway") || (text.contains("Canceled") && text.contains("connection"))
}

fn start(server: &str, addr: &str) -> (Process, std::net::SocketAddr) {
    Process::example(
        env!("CARGO_BIN_EXE_grpc-chat"),
        &[
            ("ADDR", addr),
            ("SERVER", server),
            ("DRAIN_DEADLINE_SECS", "5"),
        ],
    )
}

/// Restarts each instance in turn under load; returns what the client saw.
async fn rolling_restart(server: &'static str) -> Arc<Tally> {
    let (a, a_addr) = start(server, "127.0.0.1:0");
    let (b, b_addr) = start(server, "127.0.0.1:0");
    let channel = Channel::balance_list(
        [a_addr, b_addr]
            .into_iter()
            .map(|addr| Endpoint::from_shared(format!("http://{addr}")).unwrap()),
    );
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let mut client = ChatClient::new(channel.clone());
            let (tally, stop, sent) = (tally.clone(), stop.clone(), sent.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) && sent.fetch_add(1, Ordering::SeqCst) < CALLS {
                    // A retry policy as gRPC's service config writes one:
                    // up to 4 attempts, backing off from 25 ms.
                    let mut backoff = Duration::from_millis(25);
                    for attempt in 1..=ATTEMPTS {
                        let question = Question {
                            text: "hi".into(),
                            ..Question::default()
                        };
                        match client.ask(question).await {
                            Ok(_) => {
                                tally.ok.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(status) => {
                                if !never_processed(&status, &tally) || attempt == ATTEMPTS {
                                    tally.failed.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                            }
                        }
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            })
        })
        .collect();

    let restarted = tokio::task::spawn_blocking(move || {
        let mut restarted = Vec::new();
        for (process, addr) in [(a, a_addr), (b, b_addr)] {
            std::thread::sleep(Duration::from_millis(300));
            process.sigterm();
            let (status, _, report) = process.exit();
            assert!(status.success(), "{report}");
            restarted.push(start(server, &addr.to_string()).0);
        }
        std::thread::sleep(Duration::from_millis(300));
        restarted
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        tower_drain_tests::within("a worker", worker).await.unwrap();
    }
    for process in restarted {
        process.sigterm();
        let (status, _, report) = process.exit();
        assert!(status.success(), "{report}");
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancing_grpc_client_with_a_retry_policy_loses_no_call_through_a_rolling_restart() {
    let ours = rolling_restart("tower-drain").await;
    let tonic = rolling_restart("tonic").await;
    println!("tonic client balancing over 2 instances, each restarted in turn:");
    println!("  tower_drain::serve: {}", ours.line());
    println!("  tonic Server + server_stop(): {}", tonic.line());
    assert!(ours.ok.load(Ordering::SeqCst) > 0);
    assert_eq!(ours.failed.load(Ordering::SeqCst), 0, "{}", ours.line());
}
