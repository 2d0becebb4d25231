use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::Drain;

#[tokio::test]
async fn counted_work_keeps_drained_waiting_until_it_ends() {
    let drain = Drain::new();
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    let work = drain
        .signal()
        .spawn(async move {
            let _ = finished.await;
            "done"
        })
        .unwrap();
    assert_eq!(drain.in_flight(), 1);
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_secs(30)).await }
    });
    // Tripped, and waiting for the work.
    while !drain.is_tripped() {
        tokio::task::yield_now().await;
    }
    assert!(!shutdown.is_finished());
    finish.send(()).unwrap();
    assert_eq!(work.await.unwrap(), Ok("done"));
    let report = shutdown.await.unwrap();
    assert_eq!(
        (report.in_flight_at_trip(), report.completed()),
        (1, 1),
        "{report}"
    );
    assert!(report.is_clean());
}

#[tokio::test]
async fn counted_work_is_aborted_at_the_deadline_and_reported_by_name() {
    let drain = Drain::new();
    let dropped = Arc::new(AtomicBool::new(false));
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let work = drain
        .signal()
        .spawn_named("save the partial answer", {
            let guard = SetOnDrop(dropped.clone());
            async move {
                let _guard = guard;
                std::future::pending::<()>().await
            }
        })
        .unwrap();
    let unnamed = drain.signal().spawn(std::future::pending::<()>()).unwrap();
    let report = drain.shutdown(Duration::ZERO).await;
    assert_eq!(work.await.unwrap(), Err(crate::Cut::new()));
    assert_eq!(unnamed.await.unwrap(), Err(crate::Cut::new()));
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
    assert_eq!((report.cut(), report.unfinished()), (2, 0), "{report}");
    assert_eq!(report.cut_work(), ["save the partial answer"]);
    assert!(
        report
            .to_string()
            .contains("work cut: save the partial answer"),
        "{report}"
    );
    assert_eq!(drain.in_flight(), 0);
}

#[tokio::test]
async fn work_is_refused_once_the_drain_has_tripped() {
    let drain = Drain::new();
    drain.trip();
    let signal = drain.signal();
    assert!(signal.work().is_err());
    assert!(signal.spawn(async {}).is_err());
    assert!(signal.spawn_named("late", async {}).is_err());
    assert_eq!(drain.in_flight(), 0);
    assert_eq!(
        signal.work().unwrap_err().to_string(),
        "the drain has tripped: no new work starts"
    );
}

#[tokio::test]
async fn a_guard_tells_its_holder_of_the_deadline_and_counts_as_cut_when_dropped_after_it() {
    let drain = Drain::new();
    let mut work = drain.signal().work().unwrap();
    let holder = tokio::spawn(async move {
        work.deadline().await;
        // The holder stops and lets go.
        drop(work);
    });
    let report = drain.shutdown(Duration::from_millis(10)).await;
    holder.await.unwrap();
    assert_eq!(drain.in_flight(), 0);
    assert_eq!((report.cut(), report.unfinished()), (1, 0), "{report}");

    // Dropped before the deadline: completed.
    let drain = Drain::new();
    let work = drain.signal().work().unwrap();
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::from_secs(30)).await }
    });
    while !drain.is_tripped() {
        tokio::task::yield_now().await;
    }
    drop(work);
    let report = shutdown.await.unwrap();
    assert_eq!((report.completed(), report.cut()), (1, 0), "{report}");
}

#[test]
fn work_and_its_refusal_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<super::Work>();
    send_sync::<super::Refused>();
}

/// A spawned future that completes in a poll after the deadline has passed
/// returns its output, and counts as completed, not cut.
#[tokio::test]
async fn spawned_work_that_completes_after_the_deadline_counts_as_completed() {
    let drain = Drain::new();
    let signal = drain.signal();
    let work = drain
        .signal()
        .spawn_named("late but whole", async move {
            // Ready at its first poll after the deadline.
            while !signal.is_forced() {
                tokio::task::yield_now().await;
            }
            "finished"
        })
        .unwrap();
    let report = drain.shutdown(Duration::ZERO).await;
    let output = work.await.unwrap();
    let counted = (drain.block().cut(), report.cut_work().len());
    match output {
        Ok(finished) => {
            assert_eq!(finished, "finished");
            assert_eq!(counted, (0, 0), "{report}");
        }
        // The deadline won the race in the task's poll: cut, and named.
        Err(_) => assert_eq!(counted, (1, 1), "{report}"),
    }
}

/// Refused work is not a refused request.
#[tokio::test]
async fn refused_work_is_not_counted_as_a_refused_request() {
    let drain = Drain::new();
    drain.trip();
    assert!(drain.signal().work().is_err());
    assert!(drain.signal().spawn(async {}).is_err());
    let report = drain.shutdown(Duration::ZERO).await;
    assert_eq!(report.refused(), 0, "{report}");
}

/// Work the drain ended early counts as ended early; dropped past the
/// deadline, it counts as cut only.
#[tokio::test]
async fn work_ended_early_is_reported_as_ended_early_unless_the_deadline_cut_it() {
    let drain = Drain::new();
    let mut work = drain.signal().work().unwrap();
    drain.trip();
    assert!(work.end_early());
    // Decided: a deadline that passes before the guard is dropped does not
    // make it a cut.
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::ZERO).await }
    });
    while !drain.signal().is_forced() {
        tokio::task::yield_now().await;
    }
    drop(work);
    let report = shutdown.await.unwrap();
    assert_eq!(
        (
            report.in_flight_at_trip(),
            report.ended_early(),
            report.cut()
        ),
        (1, 1, 0),
        "{report}"
    );
    let drain = Drain::new();
    let mut work = drain.signal().work().unwrap();
    drain.trip();
    assert!(work.end_early());
    drop(work);
    let report = drain.shutdown(Duration::from_secs(30)).await;
    assert_eq!(
        (
            report.in_flight_at_trip(),
            report.ended_early(),
            report.completed()
        ),
        (1, 1, 0),
        "{report}"
    );

    let drain = Drain::new();
    let mut work = drain.signal().work().unwrap();
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::ZERO).await }
    });
    work.deadline().await;
    assert!(!work.end_early());
    drop(work);
    let report = shutdown.await.unwrap();
    assert_eq!((report.ended_early(), report.cut()), (0, 1), "{report}");

    // Before the trip nothing ends early: the work completed.
    let drain = Drain::new();
    let mut before = drain.signal().work().unwrap();
    assert!(!before.end_early());
    drop(before);
    let across = drain.signal().work().unwrap();
    drain.trip();
    drop(across);
    let report = drain.shutdown(Duration::from_secs(30)).await;
    assert_eq!(
        (
            report.in_flight_at_trip(),
            report.completed(),
            report.ended_early()
        ),
        (1, 1, 0),
        "{report}"
    );
}
