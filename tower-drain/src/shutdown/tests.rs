use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

use super::{HookOutcome, Shutdown};
use crate::test_support::{channel_body, counting_service, request, serving, streaming};
use crate::Drain;

/// A trigger to pull by hand.
fn trigger() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

async fn ready_status(drain: &Drain) -> StatusCode {
    drain
        .readiness()
        .oneshot(Request::new(()))
        .await
        .unwrap()
        .status()
}

#[tokio::test(start_paused = true)]
async fn phases_run_in_order_lame_duck_drain_server_stop_cleanup() {
    let drain = Drain::new();
    let (pull, when) = trigger();
    let events = Arc::new(Mutex::new(Vec::<&str>::new()));
    let shutdown = Shutdown::with_trigger(&drain, when)
        .lame_duck(Duration::from_secs(5))
        .deadline(Duration::from_secs(30))
        .on_cleanup("close pool", Duration::from_secs(1), {
            let events = events.clone();
            move || async move {
                events.lock().unwrap().push("cleanup");
                Ok::<_, std::io::Error>(())
            }
        });
    let server_stopped = tokio::spawn({
        let stop = shutdown.server_stop();
        let events = events.clone();
        async move {
            stop.await;
            events.lock().unwrap().push("server stop");
        }
    });

    let (tx, body) = channel_body();
    let mut svc = drain.layer().layer(serving(body));
    let streaming = request(&mut svc).await;

    let sequence = tokio::spawn(shutdown.run());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(drain.signal().is_ready(), "nothing before the trigger");

    let pulled = Instant::now();
    pull.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Lame duck: readiness fails, requests are still admitted.
    assert_eq!(ready_status(&drain).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!drain.is_tripped());
    let (_, inner) = counting_service();
    let served = drain
        .layer()
        .layer(inner)
        .oneshot(Request::new(()))
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    drop(served);

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(drain.is_tripped(), "tripped after the lame duck");
    assert!(
        !server_stopped.is_finished(),
        "the server runs through the drain"
    );
    assert!(events.lock().unwrap().is_empty());

    tx.send(Ok("last".into())).unwrap();
    drop(tx);
    streaming.into_body().collect().await.unwrap();

    let report = sequence.await.unwrap();
    server_stopped.await.unwrap();
    assert_eq!(*events.lock().unwrap(), ["server stop", "cleanup"]);
    assert_eq!(report.lame_duck(), Duration::from_secs(5));
    assert_eq!(report.drain().completed(), 1);
    assert_eq!(report.drain().in_flight_at_trip(), 1);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.hooks().len(), 1);
    assert!(report.hooks()[0].is_finished());
    assert_eq!(report.elapsed(), pulled.elapsed());
    // `ExitCode: PartialEq` is newer than the MSRV; its `Debug` is not.
    assert_eq!(
        format!("{:?}", report.exit_code()),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
}

#[tokio::test(start_paused = true)]
async fn hooks_that_hang_fail_or_panic_are_reported_and_the_rest_still_run() {
    let drain = Drain::new();
    let (pull, when) = trigger();
    let ran = Arc::new(Mutex::new(Vec::<&str>::new()));
    let log = |name: &'static str| {
        let ran = ran.clone();
        move || ran.lock().unwrap().push(name)
    };
    let shutdown = Shutdown::with_trigger(&drain, when)
        .cleanup_deadline(Duration::from_secs(10))
        .on_cleanup("hangs", Duration::from_secs(2), {
            let log = log("hangs");
            move || async move {
                log();
                std::future::pending::<Result<(), std::io::Error>>().await
            }
        })
        .on_cleanup("errors", Duration::from_secs(2), {
            let log = log("errors");
            move || async move {
                log();
                Err(std::io::Error::other("pool already closed"))
            }
        })
        .on_cleanup("panics", Duration::from_secs(2), {
            let log = log("panics");
            move || async move {
                log();
                if true {
                    panic!("exporter gone");
                }
                Ok::<_, std::io::Error>(())
            }
        })
        .on_cleanup("flushes", Duration::from_secs(2), {
            let log = log("flushes");
            move || async move {
                log();
                Ok::<_, std::io::Error>(())
            }
        });
    pull.send(()).unwrap();
    let report = shutdown.run().await;

    assert_eq!(
        *ran.lock().unwrap(),
        ["hangs", "errors", "panics", "flushes"]
    );
    let hooks = report.hooks();
    assert!(matches!(hooks[0].outcome(), HookOutcome::TimedOut));
    assert_eq!(hooks[0].elapsed(), Duration::from_secs(2));
    match hooks[1].outcome() {
        HookOutcome::Failed(error) => assert_eq!(error.to_string(), "pool already closed"),
        other => panic!("{other:?}"),
    }
    match hooks[2].outcome() {
        HookOutcome::Failed(error) => assert_eq!(error.to_string(), "panicked: exporter gone"),
        other => panic!("{other:?}"),
    }
    assert!(hooks[3].is_finished());
    assert!(report.drain().is_clean());
    assert!(!report.is_clean(), "a hook failed");
    // `ExitCode: PartialEq` is newer than the MSRV; its `Debug` is not.
    assert_eq!(
        format!("{:?}", report.exit_code()),
        format!("{:?}", std::process::ExitCode::FAILURE)
    );
    let line = report.to_string();
    assert!(line.contains("hangs timed out after 2.0s"), "{line}");
    assert!(
        line.contains("errors failed after 0s: pool already closed"),
        "{line}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cleanup_deadline_bounds_all_hooks_together() {
    let drain = Drain::new();
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        Ok::<_, std::io::Error>(())
    };
    let report = Shutdown::with_trigger(&drain, async {})
        .cleanup_deadline(Duration::from_secs(6))
        .on_cleanup("first", Duration::from_secs(5), slow)
        .on_cleanup("second", Duration::from_secs(5), slow)
        .on_cleanup("third", Duration::from_secs(5), slow)
        .run()
        .await;
    let outcomes: Vec<_> = report.hooks().iter().map(|h| h.outcome().clone()).collect();
    assert!(matches!(outcomes[0], HookOutcome::Finished));
    assert!(matches!(outcomes[1], HookOutcome::TimedOut), "cut at 6 s");
    assert_eq!(report.hooks()[1].elapsed(), Duration::from_secs(2));
    assert!(matches!(outcomes[2], HookOutcome::Skipped));
    assert_eq!(report.cleanup(), Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn a_second_trigger_during_the_drain_cuts_at_once() {
    let drain = Drain::new();
    let (force, forced) = trigger();
    let (_tx, res) = streaming(&drain).await;

    let sequence = tokio::spawn(
        Shutdown::with_trigger(&drain, async {})
            .deadline(Duration::from_secs(30))
            .force_on(forced)
            .run(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(drain.is_tripped());
    force.send(()).unwrap();
    let started = Instant::now();
    // The body is cut: its client sees an error, and the count goes back.
    let err = res.into_body().collect().await.unwrap_err();
    assert!(err.is::<crate::Cut>());
    let report = sequence.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not at the deadline"
    );
    assert!(report.drain().forced_early());
    assert!(!report.drain().deadline_reached());
    assert_eq!(report.drain().cut(), 1);
    assert!(!report.is_clean());
    assert!(report.to_string().contains("told to stop at once"));
}

#[tokio::test(start_paused = true)]
async fn a_second_trigger_during_the_lame_duck_skips_to_the_cut() {
    let drain = Drain::new();
    let (force, forced) = trigger();
    let (_tx, res) = streaming(&drain).await;
    let reading = tokio::spawn(res.into_body().collect());
    let sequence = tokio::spawn(
        Shutdown::with_trigger(&drain, async {})
            .lame_duck(Duration::from_secs(20))
            .force_on(forced)
            .run(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!drain.is_tripped());
    force.send(()).unwrap();
    let report = sequence.await.unwrap();
    assert!(reading.await.unwrap().is_err(), "cut");
    assert_eq!(report.lame_duck(), Duration::from_secs(3));
    assert_eq!(report.drain().elapsed(), Duration::ZERO);
    assert!(report.drain().forced_early());
    assert_eq!(report.drain().cut(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_drain_deadline_cuts_and_the_server_still_stops() {
    let drain = Drain::new();
    let (_tx, res) = streaming(&drain).await;
    let shutdown = Shutdown::with_trigger(&drain, async {}).deadline(Duration::from_secs(4));
    let stop = tokio::spawn(shutdown.server_stop());
    let reading = tokio::spawn(res.into_body().collect());
    let report = shutdown.run().await;
    stop.await.unwrap();
    assert!(reading.await.unwrap().is_err(), "the client saw the cut");
    assert!(report.drain().deadline_reached());
    assert_eq!(report.drain().elapsed(), Duration::from_secs(4));
    assert_eq!(report.drain().cut(), 1);
    // `ExitCode: PartialEq` is newer than the MSRV; its `Debug` is not.
    assert_eq!(
        format!("{:?}", report.exit_code()),
        format!("{:?}", std::process::ExitCode::FAILURE)
    );
}

#[tokio::test]
async fn server_stop_resolves_if_the_shutdown_is_dropped() {
    let drain = Drain::new();
    let shutdown = Shutdown::with_trigger(&drain, std::future::pending());
    let stop = shutdown.server_stop();
    drop(shutdown);
    stop.await;
}

/// Every duration setting at its extremes: nothing overflows, nothing
/// panics, and each still means what it says (`Duration::MAX` is "never").
#[tokio::test(start_paused = true)]
async fn settings_of_zero_and_duration_max_run_to_the_end_without_panicking() {
    for extreme in [Duration::ZERO, Duration::MAX] {
        let drain = Drain::new();
        let (tx, body) = channel_body();
        let res = request(&mut drain.layer().layer(serving(body))).await;
        let (pull, when) = trigger();
        let (force, forced) = trigger();
        let shutdown = Shutdown::with_trigger(&drain, when)
            .lame_duck(Duration::ZERO)
            .deadline(extreme)
            .progress_every(extreme)
            .cleanup_deadline(extreme)
            .force_on(forced)
            .on_cleanup("a hook", extreme, || async { Ok::<_, std::io::Error>(()) });
        let run = tokio::spawn(shutdown.run());
        pull.send(()).unwrap();
        drain.signal().tripped().await;
        if extreme == Duration::MAX {
            // No deadline comes: the stream is cut when told to stop.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert!(!run.is_finished());
            force.send(()).unwrap();
        }
        let reading = tokio::spawn(res.into_body().collect());
        let report = run.await.expect("the sequence panicked");
        assert_eq!(report.drain().cut(), 1, "{report}");
        assert!(reading.await.unwrap().is_err(), "the client sees the cut");
        let hook = &report.hooks()[0];
        if extreme == Duration::ZERO {
            assert!(matches!(hook.outcome(), HookOutcome::Skipped), "{hook}");
        } else {
            assert!(hook.is_finished(), "{hook}");
        }
        drop(tx);
    }
}

#[test]
fn shutdown_and_its_report_are_send() {
    fn send<T: Send>() {}
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send::<Shutdown>();
    send_sync_clone::<super::ShutdownReport>();
    send_sync_clone::<super::HookReport>();
}
