//! A drain's shared state: its slots, the moments of its life (trip, lame
//! duck, deadline, end of the unwind), and the wake-ups that go with them.

use std::fmt;
use std::task::Context;

use super::connections::Connections;
use super::slot::{next_generation, Admission, Registration, Slot};
use super::Event;
use crate::sync::{AtomicBool, AtomicUsize, Notified, Notify, Ordering};

/// Everything one `Drain` shares with its layers, services, guards and futures.
pub(crate) struct Block {
    slots: Box<[Slot]>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: usize,
    /// Set once every slot carries `TRIPPED`.
    tripped: AtomicBool,
    /// Set before any slot carries `FORCED`: a guard that sees its slot's bit
    /// knows that a `DrainSignal` sees this flag.
    forced: AtomicBool,
    /// Set by `Drain::lame_duck`: readiness fails, requests are still served.
    lame_duck: AtomicBool,
    /// The generation bits every slot word carries while this block serves
    /// its current drain; services compare theirs to it on admission.
    generation: AtomicUsize,
    /// Requests in flight at the trip: each slot's count when its bit was set.
    at_trip: AtomicUsize,
    /// Notified at the trip and at the lame duck.
    on_trip: Notify,
    /// Notified when a tripped slot reaches zero, and at the trip itself.
    on_release: Notify,
    /// Set when the drain phase is over (drained, or cut and unwound):
    /// servers stop accepting and close what is left.
    over: AtomicBool,
    /// The connections of the servers serving this drain.
    connections: Connections,
    /// The names of the counted work cut at the deadline (rare: a lock).
    cut_work: std::sync::Mutex<Vec<String>>,
    /// Live [`Handle`](super::Handle)s; when it reaches zero the block goes
    /// back to the pool.
    handles: AtomicUsize,
}

impl Block {
    /// A new block with room for `slots` shards (rounded up to a power of
    /// two), placed for good: blocks are never freed (see `pool.rs`).
    pub(crate) fn leak(slots: usize) -> &'static Self {
        #[cfg(all(test, not(loom)))]
        super::pool::tests::LEAKED.with(|n| n.set(n.get() + 1));
        let block: &'static Block = Box::leak(Box::new(Block::new(slots)));
        for slot in block.slots.iter() {
            slot.place(block);
        }
        block
    }

    fn new(slots: usize) -> Self {
        let slots = slots.max(1).next_power_of_two();
        Self {
            slots: (0..slots).map(|_| Slot::new()).collect(),
            mask: slots - 1,
            tripped: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            lame_duck: AtomicBool::new(false),
            generation: AtomicUsize::new(0),
            at_trip: AtomicUsize::new(0),
            on_trip: Notify::new(),
            on_release: Notify::new(),
            over: AtomicBool::new(false),
            connections: Connections::new(),
            cut_work: std::sync::Mutex::new(Vec::new()),
            handles: AtomicUsize::new(1),
        }
    }

    /// Slot `index` (any number; it is masked).
    #[inline]
    pub(super) fn slot(&'static self, index: usize) -> &'static Slot {
        &self.slots[index & self.mask]
    }

    /// Admits one request into slot `index` for the drain of `generation`
    /// (see [`Slot::try_admit`]).
    #[inline]
    pub(crate) fn try_admit(&'static self, index: usize, generation: usize) -> Admission {
        self.slot(index).try_admit(generation)
    }

    /// The generation bits of the drain this block serves now.
    pub(crate) fn generation(&self) -> usize {
        self.generation.load(Ordering::Acquire)
    }

    /// Sets `TRIPPED` in every slot, then wakes what waits for the trip.
    /// Returns `true` for the call that tripped the drain; later (or
    /// concurrent losing) calls return `false`. Either way, once it returns,
    /// no request is admitted again.
    pub(crate) fn trip(&self) -> bool {
        for slot in self.slots.iter() {
            if let Some(in_flight) = slot.trip() {
                self.at_trip.fetch_add(in_flight, Ordering::Relaxed);
            }
        }
        let first = !self.tripped.swap(true, Ordering::AcqRel);
        if first {
            self.connections.trip();
            self.on_trip.notify_waiters();
            self.on_release.notify_waiters();
            self.slots.iter().for_each(Slot::wake_backpressured);
        }
        first
    }

    /// The deadline: trips, then sets `FORCED` in every slot and wakes every
    /// waiting request. Returns `true` for the call that forced the drain.
    pub(crate) fn force(&self) -> bool {
        self.trip();
        let first = !self.forced.swap(true, Ordering::AcqRel);
        self.slots.iter().for_each(Slot::force);
        if first {
            self.slots.iter().for_each(Slot::wake_waiting);
        }
        first
    }

    /// The end of the unwind after the deadline: sets `UNWOUND` in every
    /// slot, so that every body still in flight is cut on its next poll.
    pub(crate) fn end_unwind(&self) {
        self.force();
        self.slots.iter().for_each(Slot::end_unwind);
        self.slots.iter().for_each(Slot::wake_waiting);
    }

    /// The end of the drain phase: servers stop accepting and close the
    /// connections that are left.
    pub(crate) fn end_drain(&self) {
        self.over.store(true, Ordering::Release);
        self.on_release.notify_waiters();
    }

    pub(crate) fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// Notes the name of counted work cut at the deadline.
    pub(crate) fn record_cut_work(&self, name: std::borrow::Cow<'static, str>) {
        self.cut_work_names().push(name.into_owned());
    }

    /// The names of the counted work cut so far.
    pub(crate) fn cut_work(&self) -> Vec<String> {
        self.cut_work_names().clone()
    }

    fn cut_work_names(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A panic while it was held (pushing a name) leaves a list: use it.
        self.cut_work
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connection counts of the servers serving this drain.
    pub(crate) fn connections(&self) -> &Connections {
        &self.connections
    }

    /// A server of this drain has ended; the last one wakes the shutdown
    /// sequence, which waits for it.
    #[cfg(feature = "serve")]
    pub(crate) fn server_ended(&self) {
        if self.connections.server_ended() {
            self.on_release.notify_waiters();
        }
    }

    /// Marks the drain lame-duck: readiness fails from now on. Returns `true`
    /// for the first call.
    pub(crate) fn lame_duck(&self) -> bool {
        let first = !self.lame_duck.swap(true, Ordering::AcqRel);
        if first {
            // Shared with the trip's waiters, who re-check and wait on.
            self.on_trip.notify_waiters();
        }
        first
    }

    /// The last request of a tripped slot has ended: waiters re-check for
    /// drained.
    pub(super) fn released_last(&self) {
        self.on_release.notify_waiters();
    }

    /// Neither lame-duck nor tripped.
    pub(crate) fn is_ready(&self) -> bool {
        !self.lame_duck.load(Ordering::Acquire) && !self.is_tripped()
    }

    #[inline]
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn is_forced(&self) -> bool {
        self.forced.load(Ordering::Acquire)
    }

    /// Tripped, and nothing in flight. Once true, true for good.
    pub(crate) fn is_drained(&self) -> bool {
        self.is_tripped() && self.in_flight() == 0
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.sum(Slot::in_flight)
    }

    pub(crate) fn in_flight_at_trip(&self) -> usize {
        self.at_trip.load(Ordering::Acquire)
    }

    pub(crate) fn refused(&self) -> usize {
        self.sum(Slot::refused)
    }

    pub(crate) fn cut(&self) -> usize {
        self.sum(Slot::cut)
    }

    pub(crate) fn ended_early(&self) -> usize {
        self.sum(Slot::ended_early)
    }

    pub(crate) fn notified(&self, event: Event) -> Notified<'_> {
        match event {
            Event::NotReady | Event::Tripped => self.on_trip.notified(),
            Event::Drained | Event::Over | Event::ServersClosed => self.on_release.notified(),
        }
    }

    fn sum(&self, f: impl Fn(&Slot) -> usize) -> usize {
        self.slots.iter().map(f).sum()
    }

    /// Moves a retired block on to a new drain: every slot word to the next
    /// generation, with no bits and a zero count, and the rest of the state
    /// back to that of `Block::new`. Fails, leaving the block to its old
    /// drain, if any slot has a request in flight.
    pub(crate) fn recycle(&self) -> bool {
        #[cfg(all(test, not(loom)))]
        super::pool::tests::RECYCLE_ATTEMPTS.with(|n| n.set(n.get() + 1));
        let old = self.generation();
        let next = next_generation(old);
        let mut previous = Vec::with_capacity(self.slots.len());
        for slot in self.slots.iter() {
            match slot.move_on(old, next) {
                Some(word) => previous.push(word),
                None => {
                    for (slot, word) in self.slots.iter().zip(previous) {
                        slot.restore(word);
                    }
                    return false;
                }
            }
        }
        self.slots.iter().for_each(|slot| slot.reset_counters(next));
        self.tripped.store(false, Ordering::Relaxed);
        self.forced.store(false, Ordering::Relaxed);
        self.lame_duck.store(false, Ordering::Relaxed);
        self.at_trip.store(0, Ordering::Relaxed);
        self.over.store(false, Ordering::Relaxed);
        self.connections.reset();
        self.cut_work_names().clear();
        self.handles.store(1, Ordering::Relaxed);
        self.generation.store(next, Ordering::Release);
        true
    }

    /// One more [`Handle`](super::Handle).
    pub(super) fn add_handle(&self) {
        // As in `Arc::clone`: a new reference is made from an existing one, so
        // nothing needs ordering here.
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// One [`Handle`](super::Handle) less; `true` for the last one.
    pub(super) fn drop_handle(&self) -> bool {
        if self.handles.fetch_sub(1, Ordering::Release) != 1 {
            return false;
        }
        crate::sync::fence(Ordering::Acquire);
        true
    }

    /// Live handles, for the tests.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn handles(&self) -> usize {
        self.handles.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("tripped", &self.is_tripped())
            .field("forced", &self.is_forced())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// What a `DrainService` holds: its block and the generation of its drain.
/// `Copy`: cloning a service writes nothing shared.
#[derive(Clone, Copy)]
pub(crate) struct ServiceRef {
    block: &'static Block,
    generation: usize,
}

impl ServiceRef {
    pub(super) fn new(block: &'static Block) -> Self {
        Self {
            block,
            generation: block.generation(),
        }
    }

    /// Admits a request into slot `index` (see [`Slot::try_admit`]).
    #[inline]
    pub(crate) fn try_admit(&self, index: usize) -> Admission {
        self.block.try_admit(index, self.generation)
    }

    /// Whether the drain has tripped. If it has not, the task in `cx` is
    /// woken when it does, through `registration` (made on first use and
    /// kept; it leaves the slot's list when dropped). A drain that is gone
    /// never trips.
    pub(crate) fn poll_tripped(
        &self,
        index: usize,
        registration: &mut Option<Registration>,
        cx: &mut Context<'_>,
    ) -> bool {
        let slot = self.block.slot(index);
        match slot.tripped(self.generation) {
            Some(true) => true,
            None => false,
            Some(false) => slot
                .wait_for_trip(self.generation, registration, cx)
                .unwrap_or(false),
        }
    }

    /// Admits counted work into slot `index` (see [`Slot::try_admit_work`]).
    pub(crate) fn try_admit_work(&self, index: usize) -> Admission {
        self.block.slot(index).try_admit_work(self.generation)
    }

    /// Counts a request refused without an admission attempt.
    pub(crate) fn count_refusal(&self, index: usize) {
        self.block.slot(index).count_refusal(self.generation);
    }
}

impl fmt::Debug for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.block.generation() == self.generation {
            self.block.fmt(f)
        } else {
            f.write_str("Drain(gone)")
        }
    }
}
