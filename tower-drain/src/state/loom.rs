//! Loom models of the drain state. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p tower-drain --lib --release loom`.
//!
//! A lost wake-up shows up as a deadlock in `block_on`, which loom reports.

use std::future::poll_fn;

use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use super::{Block, Event, Wait};

/// Blocks are never freed in production (see `pool.rs`); leaking one per
/// model iteration mirrors that.
fn block(slots: usize) -> &'static Block {
    Block::leak(slots)
}

/// P2: a request admitted on any slot is still in flight while it runs, so it
/// can never run after `drained` has resolved; once drained, nothing is ever
/// admitted again; and the waiter is woken whatever the interleaving.
#[test]
fn p2_no_admission_after_drained() {
    loom::model(|| {
        let block = block(2);
        let drained = Arc::new(AtomicBool::new(false));
        let admitters: Vec<_> = (0..2)
            .map(|slot| {
                let drained = drained.clone();
                thread::spawn(move || {
                    if let Some(guard) = block.try_admit(slot) {
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
        assert!(block.try_admit(0).is_none() && block.try_admit(1).is_none());

        tripper.join().unwrap();
        for admitter in admitters {
            admitter.join().unwrap();
        }
        assert!(block.is_drained());
    });
}

/// P2: the releases of two slots race each other and the waiter; whichever
/// is last wakes it.
#[test]
fn p2_no_lost_wakeup_between_slots() {
    loom::model(|| {
        let block = block(2);
        let first = block.try_admit(0).unwrap();
        let second = block.try_admit(1).unwrap();
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
        let _a = block.try_admit(0).unwrap();
        let _b = block.try_admit(1).unwrap();
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
        let mut guard = block.try_admit(0).unwrap();
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
