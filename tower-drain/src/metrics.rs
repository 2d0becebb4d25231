//! The metrics a drain records, through the [`metrics`] facade, when the
//! `metrics` feature is on. Without a recorder installed they cost nothing
//! but a check; without the feature they are not compiled at all.
//!
//! | name | kind | labels | when |
//! |---|---|---|---|
//! | [`IN_FLIGHT`] | gauge | | at the trip, at every progress line while waiting, at the end |
//! | [`REFUSED`] | counter | `protocol` = `http` \| `grpc` | each refused request |
//! | [`CUT`] | counter | `protocol` = `http` \| `grpc` \| `work` | each request (or counted [work](crate::work)) cut at the deadline |
//! | [`DRAIN_DURATION`] | histogram (seconds) | | once, when a drain ends |
//!
//! The in-flight gauge is not updated per request: that would put a call
//! into the recorder on the hot path of every request. Poll
//! [`Drain::in_flight`](crate::Drain::in_flight) for a live figure.
//!
//! Requests are labelled `grpc` only on HTTP/2 and later, where gRPC runs;
//! the layer does not read the content type of HTTP/1.x requests.
//!
//! [`metrics`]: https://docs.rs/metrics

/// Gauge: requests in flight during a drain.
pub const IN_FLIGHT: &str = "tower_drain_in_flight";
/// Counter: requests refused because the drain had tripped.
pub const REFUSED: &str = "tower_drain_refused_total";
/// Counter: requests cut at the drain deadline (or by a second signal).
pub const CUT: &str = "tower_drain_cut_total";
/// Histogram: how long a drain took, from the trip to its report, in seconds.
pub const DRAIN_DURATION: &str = "tower_drain_drain_duration_seconds";

/// What was counted, for the `protocol` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    Http,
    Grpc,
    /// Counted work ([`Work`](crate::work::Work)).
    Work,
}

impl Counted {
    #[cfg(feature = "metrics")]
    fn label(self) -> &'static str {
        match self {
            Counted::Http => "http",
            Counted::Grpc => "grpc",
            Counted::Work => "work",
        }
    }
}

#[cfg(feature = "metrics")]
fn protocol(grpc: bool) -> &'static str {
    if grpc {
        Counted::Grpc.label()
    } else {
        Counted::Http.label()
    }
}

#[inline]
pub(crate) fn refused(grpc: bool) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(REFUSED, "protocol" => protocol(grpc)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = grpc;
}

#[inline]
pub(crate) fn cut(counted: Counted) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(CUT, "protocol" => counted.label()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = counted;
}

pub(crate) fn in_flight(count: usize) {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!(IN_FLIGHT).set(count as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = count;
}

pub(crate) fn drain_duration(elapsed: std::time::Duration) {
    #[cfg(feature = "metrics")]
    ::metrics::histogram!(DRAIN_DURATION).record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = elapsed;
}

#[cfg(all(test, feature = "metrics", not(loom)))]
mod tests {
    use std::time::Duration;

    use http::header::CONTENT_TYPE;
    use http::{Request, StatusCode, Version};
    use http_body_util::BodyExt;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tower::{Layer, ServiceExt};

    use crate::test_support::{counting_service, streaming};
    use crate::Drain;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn metrics_count_refusals_and_cuts_by_protocol() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // This thread runs the whole test (current-thread runtime).
        let _recorder = metrics::set_default_local_recorder(&recorder);

        let drain = Drain::new();
        let (_tx, res) = streaming(&drain).await;
        let reading = tokio::spawn(res.into_body().collect());

        let shutdown = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown(Duration::from_secs(12)).await }
        });
        drain.signal().tripped().await;
        let (_, inner) = counting_service();
        let refuse = drain.layer().layer(inner);
        let http1 = refuse.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(http1.status(), StatusCode::SERVICE_UNAVAILABLE);
        let grpc = Request::builder()
            .version(Version::HTTP_2)
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        refuse.oneshot(grpc).await.unwrap();

        let report = shutdown.await.unwrap();
        assert!(reading.await.unwrap().is_err());
        assert_eq!(report.cut(), 1);

        let mut seen = Vec::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => format!("{n}"),
                DebugValue::Gauge(v) => format!("{}", v.into_inner()),
                DebugValue::Histogram(v) => {
                    let v: Vec<f64> = v.into_iter().map(|v| v.into_inner()).collect();
                    format!("{v:?}")
                }
            };
            seen.push(format!("{}{:?} {value}", key.name(), labels));
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                // The last value: the gauge went 1 (trip), 1, 1 (progress
                // at 5 s and 10 s), then 0 once the cut body was gone.
                "tower_drain_cut_total[\"protocol=http\"] 1",
                "tower_drain_drain_duration_seconds[] [12.0]",
                "tower_drain_in_flight[] 0",
                "tower_drain_refused_total[\"protocol=grpc\"] 1",
                "tower_drain_refused_total[\"protocol=http\"] 1",
            ],
        );
    }
}
