//! The atomics and the notifier the drain state is built on.
//!
//! Under `--cfg loom` they are swapped for loom's atomics and mutex, and for a
//! model of [`tokio::sync::Notify`] built from loom's primitives, so that the
//! model in `state/loom.rs` checks this crate's own protocol: the slot words,
//! the wait loops, the deadline registry, and their wake-ups.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use tokio::sync::{futures::Notified, Notify};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use model::{Notified, Notify};

/// The part of `tokio::sync::Notify` the drain relies on: `notify_waiters` wakes
/// every `Notified` created before the call, polled or not. The model keeps
/// tokio's algorithm: a call counter read when a `Notified` is created, bumped
/// under the waiter lock, and checked again under that lock before a waiter
/// registers.
/// The part of `tokio::sync::Notify` the drain relies on: `notify_waiters` wakes
/// every `Notified` created before the call, polled or not, and a dropped
/// `Notified` unregisters. The model keeps tokio's algorithm: a call counter
/// read when a `Notified` is created, bumped under the waiter lock, and checked
/// again under that lock before a waiter registers.
#[cfg(loom)]
mod model {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::sync::Mutex;

    #[derive(Debug)]
    pub(crate) struct Notify {
        calls: AtomicUsize,
        waiters: Mutex<Waiters>,
    }

    #[derive(Debug, Default)]
    struct Waiters {
        next_id: usize,
        wakers: Vec<(usize, Waker)>,
    }

    impl Notify {
        pub(crate) fn new() -> Self {
            Self {
                calls: AtomicUsize::new(0),
                waiters: Mutex::new(Waiters::default()),
            }
        }

        pub(crate) fn notified(&self) -> Notified<'_> {
            Notified {
                notify: self,
                calls: self.calls.load(SeqCst),
                id: None,
            }
        }

        pub(crate) fn notify_waiters(&self) {
            let mut waiters = self.waiters.lock().unwrap();
            self.calls.fetch_add(1, SeqCst);
            for (_, waker) in waiters.wakers.drain(..) {
                waker.wake();
            }
        }
    }

    #[derive(Debug)]
    pub(crate) struct Notified<'a> {
        notify: &'a Notify,
        calls: usize,
        id: Option<usize>,
    }

    impl Future for Notified<'_> {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.notify.calls.load(SeqCst) != self.calls {
                return Poll::Ready(());
            }
            let notify = self.notify;
            let mut waiters = notify.waiters.lock().unwrap();
            if notify.calls.load(SeqCst) != self.calls {
                return Poll::Ready(());
            }
            let id = *self.id.get_or_insert_with(|| {
                waiters.next_id += 1;
                waiters.next_id
            });
            waiters.wakers.retain(|(other, _)| *other != id);
            waiters.wakers.push((id, cx.waker().clone()));
            Poll::Pending
        }
    }

    impl Drop for Notified<'_> {
        fn drop(&mut self) {
            if let Some(id) = self.id {
                let mut waiters = self.notify.waiters.lock().unwrap();
                waiters.wakers.retain(|(other, _)| *other != id);
            }
        }
    }
}
