//! `Shutdown::on_signals` with real signals, sent to this test process (its
//! own binary, so no other test shares the process): the first SIGTERM starts
//! the sequence, the second cuts at once, and every cleanup hook is reported.

#![cfg(all(unix, feature = "signal"))]

mod common;

use std::convert::Infallible;
use std::process::Command;
use std::time::Duration;

use http_body_util::BodyExt;
use tower_drain::shutdown::{HookOutcome, Shutdown};
use tower_drain::Drain;

const HANG: Duration = Duration::from_secs(20);

fn sigterm_to_self() {
    let status = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_starts_the_sequence_a_second_cuts_and_hooks_are_reported() {
    let drain = Drain::new();
    // Installed here: from now on SIGTERM is ours, not the default action.
    let shutdown = Shutdown::on_signals(&drain)
        .expect("handlers installed")
        .deadline(Duration::from_secs(600))
        .cleanup_deadline(Duration::from_secs(10))
        .on_cleanup("hangs", Duration::from_millis(300), || {
            std::future::pending::<Result<(), Infallible>>()
        })
        .on_cleanup("errors", Duration::from_secs(1), || async {
            Err(std::io::Error::other("connection reset"))
        })
        .on_cleanup("flushes", Duration::from_secs(1), || async {
            Ok::<_, Infallible>(())
        });

    // A request whose body never ends.
    let res = common::admit_endless(&drain).await;
    let reading = tokio::spawn(res.into_body().collect());

    let run = tokio::spawn(shutdown.run());
    sigterm_to_self();
    tokio::time::timeout(HANG, drain.signal().tripped())
        .await
        .expect("the first SIGTERM trips the drain");
    sigterm_to_self();
    let report = tokio::time::timeout(HANG, run)
        .await
        .expect("the second SIGTERM cuts long before the 600 s deadline")
        .unwrap();

    assert!(reading.await.unwrap().is_err(), "the body was cut");
    assert!(report.drain().forced_early(), "{report}");
    assert_eq!(report.drain().cut(), 1);
    let outcomes: Vec<_> = report
        .hooks()
        .iter()
        .map(|h| (h.name(), h.outcome()))
        .collect();
    assert!(
        matches!(outcomes[0], ("hangs", HookOutcome::TimedOut)),
        "{report}"
    );
    match outcomes[1] {
        ("errors", HookOutcome::Failed(error)) => assert_eq!(error.to_string(), "connection reset"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(outcomes[2], ("flushes", HookOutcome::Finished)),
        "{report}"
    );
    // `ExitCode: PartialEq` is newer than the MSRV; its `Debug` is not.
    assert_eq!(
        format!("{:?}", report.exit_code()),
        format!("{:?}", std::process::ExitCode::FAILURE)
    );
}
