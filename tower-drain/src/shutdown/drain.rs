//! The drain phase: trip, wait for what is in flight until the deadline,
//! cut what is left, let it unwind, and report.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::drain::End;
use crate::{Drain, DrainReport};

/// Each half of the unwind after the deadline. In the first, requests cut
/// at the deadline unwind, and a body with frames ready may still end
/// cleanly; in the second, what is left (cut on its next poll, ready or not)
/// unwinds. A cut request unwinds as soon as its task polls it again; this
/// only bounds the wait for a task that never does.
const UNWIND_HALF: Duration = Duration::from_millis(500);

/// Trips `drain`, waits up to `deadline` for what is in flight (or until
/// `force` resolves), logging progress every `progress_every` (never if
/// zero or too far off), cuts what is left, and reports.
pub(crate) async fn drain<F>(
    drain: &Drain,
    deadline: Duration,
    force: F,
    progress_every: Duration,
) -> DrainReport
where
    F: Future<Output = ()>,
{
    let started = Instant::now();
    drain.trip();
    let block = drain.block();
    crate::metrics::in_flight(block.in_flight());

    let mut drained = pin!(drain.drained());
    let mut force = pin!(force);
    let mut deadline_passed = pin!(tokio::time::sleep(deadline));
    // None when off, or too far off to happen (`Duration::MAX`).
    let mut progress = started
        .checked_add(progress_every)
        .filter(|_| !progress_every.is_zero())
        .map(|first| {
            let mut ticks = tokio::time::interval_at(first, progress_every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
    let end = poll_fn(|cx| {
        if drained.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Drained);
        }
        if force.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Forced);
        }
        if deadline_passed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Deadline);
        }
        while let Some(Poll::Ready(_)) = progress.as_mut().map(|ticks| ticks.poll_tick(cx)) {
            let in_flight = block.in_flight();
            crate::event!(
                info,
                in_flight,
                "waiting for {in_flight} in-flight requests"
            );
            crate::metrics::in_flight(in_flight);
        }
        Poll::Pending
    })
    .await;

    if end != End::Drained {
        crate::event!(
            warn,
            cutting = block.in_flight(),
            ?deadline,
            "{}: cutting what is still in flight",
            if end == End::Forced {
                "told to stop at once"
            } else {
                "drain deadline reached"
            }
        );
        block.force();
        if tokio::time::timeout(UNWIND_HALF, drained.as_mut())
            .await
            .is_err()
        {
            block.end_unwind();
            let _ = tokio::time::timeout(UNWIND_HALF, drained).await;
        }
    }

    let report = DrainReport::of(block, started.elapsed(), end);
    block.end_drain();
    crate::metrics::in_flight(report.unfinished());
    crate::metrics::drain_duration(report.elapsed());
    crate::event!(info, %report, "drained");
    report
}
