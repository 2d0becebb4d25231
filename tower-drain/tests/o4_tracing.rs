//! O4: the trip, the deadline (with the number cut) and the drain are logged.
//!
//! Its own test binary with a process-wide subscriber: tracing caches, per
//! call site, whether anyone listens, so a thread-local subscriber in a
//! binary whose other tests hit the same call sites first can miss events.

#![cfg(feature = "tracing")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::StreamBody;
use tower::{Layer, ServiceExt};
use tower_drain::Drain;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn o4_tracing_events_at_each_phase() {
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let drain = Drain::new();
    let svc = drain
        .layer()
        .layer(tower::service_fn(|_req: Request<()>| async {
            // A body that never ends.
            let body = StreamBody::new(futures_util::stream::pending::<
                Result<Frame<Bytes>, Infallible>,
            >());
            Ok::<_, Infallible>(Response::new(body))
        }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    drain.shutdown(Duration::from_secs(1)).await;
    drop(res);

    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("INFO")
            && lines[0].contains("drain tripped")
            && lines[0].contains("in_flight=1")
    );
    assert!(
        lines[1].contains("WARN")
            && lines[1].contains("drain deadline reached")
            && lines[1].contains("cutting=1")
    );
    // The held body is never polled again, so it is not cut: unfinished.
    assert!(
        lines[2].contains("INFO")
            && lines[2].contains("drained")
            && lines[2].contains("1 unfinished"),
        "{log}"
    );
}
