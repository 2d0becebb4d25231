use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_drain::drain::Tripped;
use tower_drain::layer::EarlyEnd;

use crate::framing::{Framing, Scanner};
use crate::terminal::{Config, Ending, StreamEnd};

pin_project! {
    /// Response body of [`SseDrainService`](super::SseDrainService).
    ///
    /// A streaming response's frames pass through as they are (the same
    /// `Bytes`, no copy). Once the drain trips (and any grace is over, or
    /// the drain deadline has come), the stream ends at the first event
    /// boundary where the application has nothing ready: the terminal frame,
    /// then the end of the stream. What the application has produced is
    /// delivered first, and a stream that ends by itself ends as it would
    /// have. A stream that never waits runs on until `DrainLayer` cuts it,
    /// when the unwind after the deadline is over. Other responses' bodies
    /// pass through untouched.
    pub struct SseBody<B> {
        // `None` once the stream has ended: dropping it drops the
        // application's stream with it.
        #[pin]
        inner: Option<B>,
        // `None` for a response that is not a stream. Boxed: a stream's state
        // is large and most responses are not streams, so every response's
        // body stays small (one allocation per stream, none per frame).
        watching: Option<Pin<Box<Watching>>>,
    }

    impl<B> PinnedDrop for SseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped unfinished after the deadline: the outer `DrainLayer` cut
            // it (or its client went away). The hook hears of that cut too;
            // not of a stream whose application had sent its end (trailers),
            // which a server may drop without polling it further.
            let this = this.project();
            if let (Some(_), Some(watching)) = (this.inner.as_pin_mut(), this.watching) {
                let watch = &watching.watch;
                if watch.config.signal.is_forced() && !watch.finished {
                    let end = StreamEnd::new(watch.framing, Ending::Cut, watch.scanner.seen());
                    if std::thread::panicking() {
                        // A second panic while unwinding would abort the
                        // process: a hook that panics here is ignored.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            watch.config.ended(&end);
                        }));
                    } else {
                        watch.config.ended(&end);
                    }
                }
            }
        }
    }
}

pin_project! {
    /// A watched stream: its wait for the trip, and its state.
    #[project = WatchingProj]
    struct Watching {
        #[pin]
        tripped: Tripped,
        watch: Watch,
    }
}

/// A watched stream's state beside the inner body.
struct Watch {
    framing: Framing,
    scanner: Scanner,
    phase: Phase,
    /// The application sent trailers: its stream is complete, and nothing
    /// may follow them.
    finished: bool,
    /// Told when the stream ends early, for `DrainLayer`'s report.
    early: EarlyEnd,
    config: Arc<Config>,
}

enum Phase {
    Serving,
    /// Tripped; the stream may run on, and finish by itself, until the
    /// timer fires or the drain deadline comes.
    Grace(Pin<Box<Sleep>>),
    /// End at the first boundary where the application has nothing ready.
    Ending,
}

impl<B> SseBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        Self {
            inner: Some(inner),
            watching: None,
        }
    }

    pub(crate) fn watched(
        inner: B,
        framing: Framing,
        config: Arc<Config>,
        early: EarlyEnd,
    ) -> Self {
        Self {
            inner: Some(inner),
            watching: Some(Box::pin(Watching {
                tripped: config.signal.tripped(),
                watch: Watch {
                    framing,
                    scanner: Scanner::new(framing, config.counts()),
                    phase: Phase::Serving,
                    finished: false,
                    early,
                    config,
                },
            })),
        }
    }
}

impl Watch {
    /// Moves the phase on from what can be read without waiting: the trip
    /// (one atomic load while serving), the grace timer, the deadline.
    #[inline]
    fn advance(&mut self, cx: &mut Context<'_>) {
        if let Phase::Serving = self.phase {
            if !self.config.signal.is_tripped() {
                return;
            }
            self.tripped();
        }
        self.advance_tripped(cx);
    }

    #[inline(never)]
    fn advance_tripped(&mut self, cx: &mut Context<'_>) {
        if let Phase::Grace(timer) = &mut self.phase {
            // At the deadline the outer `DrainLayer` wakes this body.
            if self.config.signal.is_forced() || timer.as_mut().poll(cx).is_ready() {
                self.phase = Phase::Ending;
            }
        }
    }

    /// Before the body waits for its application: registers for the trip,
    /// and moves on if it has happened since `advance`.
    fn before_waiting(&mut self, tripped: Pin<&mut Tripped>, cx: &mut Context<'_>) {
        if let Phase::Serving = self.phase {
            if tripped.poll(cx).is_ready() {
                self.tripped();
                self.advance_tripped(cx);
            }
        }
    }

    fn tripped(&mut self) {
        let grace = self.config.grace;
        // The grace timer is tokio's; with no runtime to run it, no grace.
        self.phase = if grace.is_zero() || tokio::runtime::Handle::try_current().is_err() {
            Phase::Ending
        } else {
            Phase::Grace(Box::pin(tokio::time::sleep(grace)))
        };
    }

    /// Notes a frame handed on to the client.
    #[inline]
    fn saw(&mut self, frame: &Frame<Bytes>) {
        match frame.data_ref() {
            Some(data) => self.scanner.feed(data),
            None => self.finished |= frame.is_trailers(),
        }
    }

    /// The terminal frame, if the application has nothing ready and the
    /// stream should end here: after the trip, at a boundary, and not after
    /// the application's own end (trailers).
    #[inline]
    fn terminal(&mut self) -> Option<Frame<Bytes>> {
        let due =
            matches!(self.phase, Phase::Ending) && !self.finished && self.scanner.at_boundary();
        due.then(|| self.end_early())
    }

    #[inline(never)]
    fn end_early(&mut self) -> Frame<Bytes> {
        let end = StreamEnd::new(self.framing, Ending::Early, self.scanner.seen());
        self.early.record();
        self.config.ended(&end);
        self.config.terminal(&end)
    }
}

impl<B> Body for SseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let mut watching = this.watching.as_mut().map(|w| w.as_mut().project());
        if let Some(WatchingProj { watch, .. }) = &mut watching {
            watch.advance(cx);
        }
        // The application first: what it has ready is delivered. Watched or
        // not, its frame is handed on as the `Poll` of this one call, not
        // rebuilt: with a single call site the compiler can write it where
        // the caller reads it (a second call site, or a rebuilt frame, cost
        // a copy per frame; BENCHMARKS.md).
        let polled = inner.poll_frame(cx);
        let Some(WatchingProj { tripped, watch }) = watching else {
            return polled;
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => watch.saw(frame),
            // Ended by itself or by its error.
            Poll::Ready(_) => this.inner.set(None),
            // The application would wait: this is where the stream ends, if
            // it should (the trip may have come while it had nothing to send).
            Poll::Pending => {
                watch.before_waiting(tripped, cx);
                if let Some(frame) = watch.terminal() {
                    this.inner.set(None);
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, &self.watching) {
            (None, _) => SizeHint::with_exact(0),
            (Some(inner), None) => inner.size_hint(),
            // A terminal frame may be appended: no upper bound.
            (Some(inner), Some(_)) => {
                let mut hint = SizeHint::new();
                hint.set_lower(inner.size_hint().lower());
                hint
            }
        }
    }
}

impl<B> fmt::Debug for SseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SseBody");
        match (&self.inner, &self.watching) {
            (None, _) => d.field("state", &"done"),
            (Some(_), None) => d.field("state", &"passthrough"),
            (Some(_), Some(watching)) => d
                .field("state", &"watched")
                .field("framing", &watching.watch.framing),
        };
        d.finish_non_exhaustive()
    }
}
