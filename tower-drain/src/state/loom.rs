//! Loom models of the drain state. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p tower-drain --lib --release loom`.
//!
//! A lost wake-up shows up as a deadlock in `block_on`, which loom reports.

use std::future::poll_fn;

use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use super::{Admission, Block, Event, Guard, ServiceRef, Wait};

/// Blocks are never freed in production (see `pool.rs`); leaking one per
/// model iteration mirrors that.
fn block(slots: usize) -> &'static Block {
    Block::leak(slots)
}

/// Admission for the block's current drain: a guard, or `None` if refused.
fn admit(block: &'static Block, slot: usize) -> Option<Guard> {
    match block.try_admit(slot, block.generation()) {
        Admission::Admitted(guard) => Some(guard),
        Admission::Refused => None,
        Admission::Stale => panic!("the current generation is never stale"),
    }
}

/// A request admitted on any slot is still in flight while it runs, so it
/// can never run after `drained` has resolved; once drained, nothing is ever
/// admitted again; and the waiter is woken whatever the interleaving.
#[test]
fn no_request_is_admitted_after_drained() {
    loom::model(|| {
        let block = block(2);
        let drained = Arc::new(AtomicBool::new(false));
        let admitters: Vec<_> = (0..2)
            .map(|slot| {
                let drained = drained.clone();
                thread::spawn(move || {
                    if let Some(guard) = admit(block, slot) {
                        assert!(!drained.load(SeqCst), "admitted after drained");
                        drop(guard);
                    }
                })
            })
            .collect();
        let tripper = thread::spawn(move || block.trip());

        block_on(Wait::new(block, Event::Drained));
        drained.store(true, SeqCst);
        assert_eq!(block.in_flight(), 0);
        assert!(admit(block, 0).is_none() && admit(block, 1).is_none());

        tripper.join().unwrap();
        for admitter in admitters {
            admitter.join().unwrap();
        }
        assert!(block.is_drained());
    });
}

/// The releases of two slots race each other and the waiter; whichever
/// is last wakes it.
#[test]
fn drained_wakes_whichever_slot_releases_last() {
    loom::model(|| {
        let block = block(2);
        let first = admit(block, 0).unwrap();
        let second = admit(block, 1).unwrap();
        block.trip();
        let releasers = [
            thread::spawn(move || drop(first)),
            thread::spawn(move || drop(second)),
        ];
        block_on(Wait::new(block, Event::Drained));
        assert_eq!(block.in_flight(), 0);
        for releaser in releasers {
            releaser.join().unwrap();
        }
    });
}

/// Concurrent trips: each slot's count at the trip is recorded once, exactly
/// one call reports that it tripped, and waiters on the trip are woken.
#[test]
fn concurrent_trips_record_in_flight_once() {
    loom::model(|| {
        let block = block(2);
        let _a = admit(block, 0).unwrap();
        let _b = admit(block, 1).unwrap();
        let trippers = [
            thread::spawn(move || block.trip()),
            thread::spawn(move || block.trip()),
        ];
        block_on(Wait::new(block, Event::Tripped));
        let firsts = trippers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&first| first)
            .count();
        assert_eq!(firsts, 1);
        assert_eq!(block.in_flight_at_trip(), 2);
        assert!(!block.is_drained());
    });
}

/// The deadline wakes a request that is waiting, whether it registered
/// before or after the force; the registry lock is loom's, so this is the
/// production path.
#[test]
fn deadline_wakes_a_waiting_request() {
    loom::model(|| {
        let block = block(1);
        let mut guard = admit(block, 0).unwrap();
        let forcer = thread::spawn(move || block.force());

        block_on(poll_fn(|cx| {
            if guard.poll_deadline(cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        }));
        guard.record_cut();
        drop(guard);

        assert!(forcer.join().unwrap());
        assert!(block.is_drained());
        assert_eq!(block.cut(), 1);
    });
}

/// A block moves on to a new drain while a service of its old drain admits
/// and releases a request: either the request was in flight and the block
/// stays with its old drain, or the service finds its generation gone and
/// passes the request uncounted. Never does the old request land in the new
/// drain's count, nor its release take one from it.
#[test]
fn recycling_races_a_service_that_outlived_its_drain() {
    loom::model(|| {
        let tripped = block(2);
        let old = tripped.generation();
        tripped.trip();
        let service = thread::spawn(move || match tripped.try_admit(0, old) {
            Admission::Admitted(_) => panic!("its drain has tripped"),
            Admission::Refused | Admission::Stale => {}
        });
        let untripped = block(1);
        let old_untripped = untripped.generation();
        let late = thread::spawn(move || {
            // Admitted and released, or stale: either way nothing is left.
            if let Admission::Admitted(guard) = untripped.try_admit(0, old_untripped) {
                drop(guard);
            }
        });
        let recycled = untripped.recycle();
        if recycled {
            // The new drain trips at once: a request of the old one, had it
            // slipped into the new count, would show here.
            untripped.trip();
            assert_eq!(
                untripped.in_flight_at_trip(),
                0,
                "an old request in the new drain"
            );
        }
        let recycled_tripped = tripped.recycle();
        service.join().unwrap();
        late.join().unwrap();

        assert!(recycled_tripped, "nothing was in flight");
        assert!(!tripped.is_tripped() && tripped.generation() != old);
        assert_eq!(tripped.in_flight(), 0);
        assert_eq!(untripped.in_flight(), 0);
        if recycled {
            assert_ne!(untripped.generation(), old_untripped);
            assert!(admit(untripped, 0).is_none(), "the new drain has tripped");
        } else {
            // The request was in flight at the switch: the old drain keeps
            // the block, and it is whole again now.
            assert_eq!(untripped.generation(), old_untripped);
            assert!(untripped.recycle());
            drop(admit(untripped, 0).unwrap());
        }
        // The new drain admits and counts normally.
        assert!(admit(tripped, 1).is_some());
    });
}

/// A service whose inner service made its caller wait is woken at the trip,
/// whether it registered before or after it, and then finds the drain
/// tripped (it refuses instead of waiting on).
#[test]
fn the_trip_wakes_a_service_waiting_on_its_inner_service() {
    loom::model(|| {
        let block = block(1);
        let service = ServiceRef::new(block);
        let tripper = thread::spawn(move || block.trip());

        let mut registration = None;
        block_on(poll_fn(|cx| {
            if service.poll_tripped(0, &mut registration, cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        }));
        drop(registration);
        assert!(tripper.join().unwrap());
    });
}

/// A refusal by a service whose drain is being replaced is counted in its
/// own drain, or not at all: never in the next drain's report.
#[test]
fn a_refusal_never_counts_in_the_next_drain() {
    loom::model(|| {
        let block = block(1);
        let old = block.generation();
        block.trip();
        let refuser = thread::spawn(move || {
            let refused = block.try_admit(0, old);
            assert!(!matches!(refused, Admission::Admitted(_)));
        });
        let recycled = block.recycle();
        refuser.join().unwrap();
        assert!(recycled, "nothing was in flight");
        assert_eq!(block.refused(), 0, "the old drain's refusal in the new one");
    });
}
