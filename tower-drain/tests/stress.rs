//! P2 under real threads: requests race the trip from several OS threads; a
//! request that reaches the inner service after `drained()` has resolved is a
//! violation. Bounded: a fixed number of rounds and calls per thread.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use tower::{Layer, Service};
use tower_drain::Drain;

const THREADS: usize = 4;
const ROUNDS: usize = 40;
const CALLS_PER_THREAD: usize = 20_000;

#[test]
fn no_request_is_admitted_after_drained_under_threads() {
    for round in 0..ROUNDS {
        let drain = Drain::new();
        let drained = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(THREADS + 1));

        let inner = {
            let (drained, violations) = (drained.clone(), violations.clone());
            tower::service_fn(move |_req: Request<()>| {
                if drained.load(Ordering::SeqCst) {
                    violations.fetch_add(1, Ordering::SeqCst);
                }
                std::future::ready(Ok::<_, Infallible>(Response::new(
                    Empty::<bytes::Bytes>::new(),
                )))
            })
        };
        let svc = drain.layer().layer(inner);

        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (mut svc, start, admitted) = (svc.clone(), start.clone(), admitted.clone());
                thread::spawn(move || {
                    start.wait();
                    // Keep a few bodies open at a time, so releases race the
                    // trip as well as admissions do.
                    let mut open = std::collections::VecDeque::new();
                    let mut rejected_in_a_row = 0;
                    for _ in 0..CALLS_PER_THREAD {
                        let res = svc
                            .call(Request::new(()))
                            .now_or_never()
                            .expect("ready service")
                            .unwrap();
                        if res.status() == StatusCode::OK {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            rejected_in_a_row = 0;
                            open.push_back(res);
                            if open.len() > 3 {
                                open.pop_front();
                            }
                        } else {
                            rejected_in_a_row += 1;
                            open.pop_front();
                            if rejected_in_a_row > 1_000 && open.is_empty() {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();

        start.wait();
        // Trip once some requests are in, at a point that varies by round.
        while admitted.load(Ordering::Relaxed) < 50 + round * 100 {
            std::hint::spin_loop();
        }
        drain.trip();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(20), drain.drained())
                .await
                .expect("drained within the hang bound")
        });
        drained.store(true, Ordering::SeqCst);

        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(
            violations.load(Ordering::SeqCst),
            0,
            "round {round}: admitted after drained"
        );
        assert_eq!(drain.in_flight(), 0);
        assert!(admitted.load(Ordering::Relaxed) >= 50);
    }
}

#[test]
fn concurrent_trips_from_many_threads() {
    let drain = Drain::new();
    let start = Arc::new(Barrier::new(8));
    let trippers: Vec<_> = (0..8)
        .map(|_| {
            let (drain, start) = (drain.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                drain.trip();
                assert!(drain.is_tripped());
            })
        })
        .collect();
    for tripper in trippers {
        tripper.join().unwrap();
    }
    assert!(drain.is_tripped());
    assert!(drain.drained().now_or_never().is_some());
}
