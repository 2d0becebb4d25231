use std::time::{Duration, Instant};

use super::{DrainReport, DrainSignal, Drained};
use crate::layer::DrainLayer;
use crate::state::Handle;

/// How long requests cut at the deadline get to unwind before `shutdown`
/// reports them as unfinished. A cut request unwinds as soon as its task polls
/// it again; this only bounds the wait for a task that never does.
const UNWIND: Duration = Duration::from_secs(1);

/// The drain controller: counts what its layers admit, trips, and waits.
///
/// `Drain` is a handle: clones share one state, and it is `Send + Sync`, cheap
/// to clone, and safe to trip from any thread.
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
    /// the rejection response, and a streaming response body ends with a
    /// [`Cut`](crate::Cut) error, so that the client sees the cut instead of a
    /// silently short body. Cut requests are then given up to a second to
    /// unwind; any that have not are counted as
    /// [`unfinished`](DrainReport::unfinished).
    ///
    /// Needs a tokio runtime with the time driver enabled.
    pub async fn shutdown(&self, deadline: Duration) -> DrainReport {
        let started = Instant::now();
        self.trip();
        let block = self.handle.block();

        let deadline_reached = tokio::time::timeout(deadline, self.drained())
            .await
            .is_err();
        if deadline_reached {
            crate::event!(
                warn,
                cutting = block.in_flight(),
                ?deadline,
                "drain deadline reached: cutting what is still in flight"
            );
            block.force();
            let _ = tokio::time::timeout(UNWIND, self.drained()).await;
        }

        let unfinished = block.in_flight();
        let cut = block.cut();
        let in_flight_at_trip = block.in_flight_at_trip();
        let report = DrainReport {
            elapsed: started.elapsed(),
            in_flight_at_trip,
            completed: in_flight_at_trip.saturating_sub(cut + unfinished),
            rejected: block.rejected(),
            cut,
            unfinished,
            deadline_reached,
        };
        crate::event!(info, %report, "drained");
        report
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
    use tower::{Layer, Service, ServiceExt};

    use super::Drain;
    use crate::test_support::{channel_body, counting_service, serving};

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
    async fn o1_drained_waits_for_trip_and_allows_many_waiters() {
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
    async fn o2_shutdown_reports_completed_and_rejected() {
        let drain = Drain::new();
        let (tx, body) = channel_body();
        let mut svc = drain.layer().layer(serving(body));
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();

        let shutdown = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown(Duration::from_secs(30)).await }
        });
        drain.signal().tripped().await;
        let refused = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
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
                report.rejected(),
                report.cut()
            ),
            (1, 1, 1, 0)
        );
        assert!(report
            .to_string()
            .contains("1 completed, 0 cut, 1 rejected"));
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
            assert_eq!(report.rejected(), 0);
            assert_eq!(report.in_flight_at_trip(), 1);
        }
    }
}
