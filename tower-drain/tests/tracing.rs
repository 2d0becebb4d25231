//! O4: each phase of a shutdown is logged: the start, the lame duck, the
//! trip, progress while waiting, the deadline (with the number cut), the
//! drain, each cleanup hook, and the end.
//!
//! Its own test binary with a process-wide subscriber: tracing caches, per
//! call site, whether anyone listens, so a thread-local subscriber in a
//! binary whose other tests hit the same call sites first can miss events.

#![cfg(feature = "tracing")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_drain::shutdown::Shutdown;
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
async fn tracing_events_at_each_phase() {
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
    // A request whose body never ends.
    let res = common::admit_endless(&drain).await;
    let report = Shutdown::with_trigger(&drain, async {})
        .lame_duck(Duration::from_secs(1))
        .deadline(Duration::from_secs(12))
        .on_cleanup("flush", Duration::from_secs(1), || async {
            Ok::<_, std::io::Error>(())
        })
        .run()
        .await;
    drop(res);

    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let expected = [
        ("INFO", "shutdown started"),
        ("INFO", "lame duck: readiness fails, still serving"),
        ("INFO", "drain tripped: refusing new requests in_flight=1"),
        ("INFO", "waiting for 1 in-flight requests in_flight=1"),
        ("INFO", "waiting for 1 in-flight requests in_flight=1"),
        (
            "WARN",
            "drain deadline reached: cutting what is still in flight cutting=1",
        ),
        // The held body is never polled again, so it is not cut: unfinished.
        ("INFO", "drained report=drained in 13.0s"),
        ("INFO", "cleanup hook finished hook=flush"),
        ("INFO", "shutdown complete report=shut down in 14.0s"),
    ];
    assert_eq!(lines.len(), expected.len(), "{log}");
    for (line, (level, text)) in lines.iter().zip(expected) {
        assert!(
            line.contains(level) && line.contains(text),
            "{line:?} lacks {text:?}\n{log}"
        );
    }
    assert!(lines[6].contains("1 unfinished"), "{log}");
    assert_eq!(report.drain().unfinished(), 1);
}
