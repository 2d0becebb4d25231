use std::time::Duration;

use super::{DrainReport, DrainSignal, Drained};
use crate::layer::DrainLayer;
use crate::readiness::Readiness;
use crate::state::Handle;

/// The drain controller: counts what its layers admit, trips, and waits.
///
/// `Drain` is a handle: clones share one state, and it is `Send + Sync`, cheap
/// to clone, and safe to trip from any thread.
///
/// # Memory
///
/// A drain's state is one 128-byte slot per shard of its count (twice the
/// cores, from 2 to 128 shards), plus about 120 bytes: some 0.7 KiB on a
/// 2-core machine, 16 KiB on 64 cores or more. Requests and services refer
/// to it without counting (see [`DrainService`](crate::DrainService)), so it
/// is never freed: when the last `Drain`, `DrainSignal` and `DrainLayer` of a
/// drain are gone, its state goes to a pool that the next `Drain::new`
/// takes from, once every request it admitted has ended. The memory held is
/// that of the most drains ever alive at once, plus those kept by requests
/// that never end. `Drain::new` takes the same time however many of those
/// there are. One drain per process, as a server has, costs one state.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use tower::{service_fn, Layer, Service, ServiceExt};
/// use tower_drain::Drain;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let drain = Drain::new();
/// let mut svc = drain.layer().layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
/// }));
///
/// // Serving: a request counts until its response body has ended.
/// let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
/// assert_eq!(drain.in_flight(), 1);
/// let body = res.into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "hello");
/// assert_eq!(drain.in_flight(), 0);
///
/// // Tripped: new requests get a clean 503 and never reach the service.
/// drain.trip();
/// let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
/// assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
/// drain.drained().await;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Drain {
    handle: Handle,
}

impl Drain {
    /// A new drain, serving: nothing tripped, nothing in flight.
    pub fn new() -> Self {
        Self {
            handle: Handle::new(),
        }
    }

    /// A [`DrainLayer`] that admits requests into this drain.
    ///
    /// Put it outermost, so that it counts (and refuses) everything below it.
    pub fn layer(&self) -> DrainLayer {
        DrainLayer::new(self.handle.clone())
    }

    /// A read-only view of this drain for handlers and other layers.
    pub fn signal(&self) -> DrainSignal {
        DrainSignal::new(self.handle.clone())
    }

    /// A readiness service for this drain: `200` while serving, `503` from
    /// [`lame_duck`](Self::lame_duck) or [`trip`](Self::trip) on. See
    /// [`readiness`](crate::readiness).
    pub fn readiness(&self) -> Readiness {
        Readiness::new(self.signal())
    }

    /// Enters lame-duck: readiness fails from now on, while requests are still
    /// admitted and served. Load balancers take the instance out of rotation
    /// before [`trip`](Self::trip) starts refusing. Idempotent.
    pub fn lame_duck(&self) {
        if self.handle.block().lame_duck() {
            crate::event!(info, "lame duck: readiness fails, still serving");
        }
    }

    /// Stops admitting requests. Idempotent and safe from any thread.
    ///
    /// Once `trip` returns, no request is passed to an inner service again;
    /// requests admitted before it run on, bodies included.
    pub fn trip(&self) {
        let block = self.handle.block();
        if block.trip() {
            crate::event!(
                info,
                in_flight = block.in_flight_at_trip(),
                "drain tripped: refusing new requests"
            );
        }
    }

    /// Whether [`trip`](Self::trip) has been called.
    pub fn is_tripped(&self) -> bool {
        self.handle.block().is_tripped()
    }

    /// Requests admitted whose response body has not ended yet.
    pub fn in_flight(&self) -> usize {
        self.handle.block().in_flight()
    }

    /// A future that resolves once the drain has tripped and nothing is in
    /// flight; at once if that is already so. Any number may wait.
    ///
    /// Once it has resolved, no request is ever admitted again.
    pub fn drained(&self) -> Drained {
        Drained::new(self.handle.clone())
    }

    /// Trips, waits up to `deadline` for what is in flight to finish, then
    /// cuts what is left, and reports.
    ///
    /// At the deadline a pending response future is dropped and answered with
    /// the layer's rejection for [`Cause::Deadline`](crate::layer::Cause)
    /// (by default `500`, gRPC `ABORTED`: not "safe to retry"), and a body
    /// that is waiting ends with a [`Cut`](crate::Cut) error, so that the
    /// client sees the cut instead of a silently short body. Then comes the
    /// unwind, up to a second: for its first half, a body with frames ready
    /// goes on, so that what it has produced and a clean end (a
    /// `tower-drain-sse` terminal frame) still go out; then every body still
    /// in flight is cut on its next poll, ready or not. Requests still in
    /// flight after the unwind are counted as
    /// [`unfinished`](DrainReport::unfinished). While it waits, it logs
    /// "waiting for N in-flight requests" every five seconds.
    ///
    /// For the whole sequence around it (signals, lame-duck, cleanup), see
    /// [`Shutdown`](crate::shutdown::Shutdown).
    ///
    /// Needs a tokio runtime with the time driver enabled.
    pub async fn shutdown(&self, deadline: Duration) -> DrainReport {
        crate::shutdown::drain(
            self,
            deadline,
            std::future::pending(),
            crate::shutdown::PROGRESS_EVERY,
        )
        .await
    }

    /// The handle, for a server that follows the drain.
    #[cfg(feature = "serve")]
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The shared state, for the shutdown sequence.
    pub(crate) fn block(&self) -> &'static crate::state::Block {
        self.handle.block()
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    use super::Drain;
    use crate::test_support::{counting_service, request, streaming};

    #[tokio::test]
    async fn trip_is_idempotent() {
        let drain = Drain::new();
        assert!(!drain.is_tripped());
        drain.trip();
        drain.trip();
        assert!(drain.is_tripped());
        drain.drained().await;
    }

    #[tokio::test]
    async fn drained_waits_for_the_trip_and_wakes_every_waiter() {
        let drain = Drain::new();
        let waiters: Vec<_> = (0..8).map(|_| tokio::spawn(drain.drained())).collect();
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "not tripped yet");
        drain.trip();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        // Resolves at once once drained.
        drain.drained().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_reports_what_completed_and_what_was_refused() {
        let drain = Drain::new();
        let (tx, res) = streaming(&drain).await;

        let shutdown = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown(Duration::from_secs(30)).await }
        });
        drain.signal().tripped().await;
        let refused = request(&mut drain.layer().layer(counting_service().1)).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

        tx.send(Ok("done".into())).unwrap();
        drop(tx);
        res.into_body().collect().await.unwrap();

        let report = shutdown.await.unwrap();
        assert!(!report.deadline_reached());
        assert!(report.is_clean());
        assert_eq!(
            (
                report.in_flight_at_trip(),
                report.completed(),
                report.refused(),
                report.cut()
            ),
            (1, 1, 1, 0)
        );
        assert!(report
            .to_string()
            .contains("1 completed, 0 ended early, 0 cut, 1 refused"));
    }

    /// P5 where axum puts the layer: a route's service is cloned for every
    /// request, and a clone must not write a count every core shares.
    #[tokio::test]
    async fn cloning_a_service_writes_no_shared_count() {
        let drain = Drain::new();
        let handles = drain.handle.block().handles();
        let svc = drain.layer().layer(counting_service().1);
        for _ in 0..100 {
            let mut clone = svc.clone();
            request(&mut clone).await;
            assert_eq!(drain.handle.block().handles(), handles, "a clone counted");
        }
        assert_eq!(drain.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_service_that_outlives_its_drain_never_counts_in_the_next() {
        let old = Drain::new();
        let (calls, inner) = counting_service();
        let mut orphan = old.layer().layer(inner);
        old.trip();
        // Asked while its drain is alive: once the last handle is gone, a
        // test running beside this one may reuse the block at any moment.
        let refused = request(&mut orphan).await;
        assert_eq!(
            refused.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "its drain tripped"
        );
        drop(old); // the last handle: the block is retired to the pool

        // New drains take retired blocks (other tests retire some too); kept
        // alive, each takes another, until one has taken the orphan's.
        let mut drains = Vec::new();
        let res = loop {
            assert!(drains.len() < 1000, "the orphan's block was never reused");
            drains.push(Drain::new());
            let res = request(&mut orphan).await;
            if res.status() == StatusCode::OK {
                break res; // its drain is gone: it passes
            }
        };
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        for drain in &drains {
            assert_eq!(drain.in_flight(), 0, "the orphan's request counts nowhere");
            assert!(!drain.is_tripped());
        }
        drop(res);
    }

    #[tokio::test]
    async fn a_recycled_drain_starts_fresh() {
        for _ in 0..4 {
            let drain = Drain::new();
            assert!(!drain.is_tripped());
            assert_eq!(drain.in_flight(), 0);
            let (_, inner) = counting_service();
            let res = drain
                .layer()
                .layer(inner)
                .oneshot(Request::new(()))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            drain.trip();
            drop(res);
            let report = drain.shutdown(Duration::from_secs(1)).await;
            assert_eq!(report.refused(), 0);
            assert_eq!(report.in_flight_at_trip(), 1);
        }
    }
}
