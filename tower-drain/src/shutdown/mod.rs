//! The whole sequence from a stop signal to exit, around a [`Drain`].
//!
//! ```text
//! trigger ─▶ lame duck ─▶ drain ─▶ (cut at the deadline) ─▶ connections closed ─▶ cleanup ─▶ report
//! ```
//!
//! 1. **Trigger**: SIGTERM or SIGINT ([`Shutdown::on_signals`]; Ctrl-C on
//!    Windows), or any future ([`Shutdown::with_trigger`]).
//! 2. **Lame duck** ([`lame_duck`](Shutdown::lame_duck), default 0 s):
//!    [readiness](crate::readiness) fails while requests are still served, so
//!    load balancers take the instance out before anything is refused.
//! 3. **Drain**: the [`Drain`] trips. New requests are refused, admitted ones
//!    run on, and a line "waiting for N in-flight requests" is logged every
//!    few seconds.
//! 4. **Cut**: at the [`deadline`](Shutdown::deadline) (default 30 s), what is
//!    still in flight is cut.
//! 5. **Connections closed**: a server serving the drain through
//!    `tower_drain::serve` (feature `serve`) closes its listener and
//!    what is left of its connections (it moved clients off at the trip),
//!    and the sequence waits for it (past the drain deadline, at most its
//!    close timeout, or 2 s), so that the report counts every connection
//!    and every refusal. For another server,
//!    [`server_stop`](Shutdown::server_stop) resolves now: it closes its
//!    listener and idle connections and sends HTTP/2 GOAWAY. Not earlier:
//!    until the drain is over, late requests on open or new connections get
//!    the clean rejection rather than a refused connection.
//! 6. **Cleanup**: the [hooks](Shutdown::on_cleanup) run in order, each
//!    within its own timeout, all within the
//!    [`cleanup_deadline`](Shutdown::cleanup_deadline) (default 10 s).
//! 7. **Report**: a [`ShutdownReport`], which maps to the process's
//!    [exit code](ShutdownReport::exit_code).
//!
//! A second signal during the lame duck or the drain skips straight to the
//! cut. Signals during the cleanup are caught and ignored: the cleanup
//! deadline already bounds it.
//!
//! # Example
//!
//! ```no_run
//! use std::future::IntoFuture;
//! use std::time::Duration;
//! use axum::{routing::{get, get_service}, Router};
//! use tower_drain::{shutdown::{Shutdown, ShutdownReport}, Drain};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<ShutdownReport> {
//!     let drain = Drain::new();
//!     // Installs the signal handlers now, before the server is up.
//!     let shutdown = Shutdown::on_signals(&drain)?
//!         .lame_duck(Duration::from_secs(5))
//!         .deadline(Duration::from_secs(30))
//!         .on_cleanup("close the database pool", Duration::from_secs(5), || async {
//!             // pool.close().await;
//!             Ok::<_, std::io::Error>(())
//!         });
//!
//!     let app = Router::new()
//!         .route("/", get(|| async { "hello" }))
//!         .route("/readyz", get_service(drain.readiness()))
//!         .layer(drain.layer().exempt(|req| req.uri().path() == "/readyz"));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     let server = tokio::spawn(
//!         axum::serve(listener, app)
//!             .with_graceful_shutdown(shutdown.server_stop())
//!             .into_future(),
//!     );
//!
//!     let report = shutdown.run().await;
//!     println!("{report}");
//!     let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
//!     Ok(report) // exit code 0 if nothing was cut and every hook finished
//! }
//! ```
//!
//! # Kubernetes
//!
//! The pod's `terminationGracePeriodSeconds` must cover the `preStop` sleep,
//! the lame duck, the drain deadline, a second for cut requests to unwind,
//! and the cleanup deadline. `examples/k8s/` in the repository has a
//! manifest with the arithmetic.

mod cleanup;
mod drain;
mod report;
mod trigger;

pub use self::cleanup::{HookError, HookOutcome, HookReport};
pub use self::report::ShutdownReport;

pub(crate) use self::drain::drain;

/// How long, at least, beyond what is left of the deadline, the sequence
/// waits for the servers serving its drain to close (longer if one of them
/// has a longer close timeout).
const SERVERS_CLOSE: Duration = Duration::from_secs(2);

/// How often the drain logs what it is waiting for, by default.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(5);

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use self::cleanup::Hook;
use self::trigger::{BoxFuture, Trigger};
use crate::{BoxError, Drain};

/// The shutdown sequence: a builder, then [`run`](Self::run). See the
/// [module docs](self) for the phases.
#[must_use = "a Shutdown does nothing until `run` is awaited"]
pub struct Shutdown {
    drain: Drain,
    trigger: Trigger,
    force_on: Option<BoxFuture>,
    lame_duck: Duration,
    deadline: Duration,
    cleanup_deadline: Duration,
    progress_every: Duration,
    hooks: Vec<Hook>,
    stop: watch::Sender<bool>,
}

impl Shutdown {
    /// A sequence for `drain`, started by SIGTERM or SIGINT (Ctrl-C on
    /// Windows); the next such signal during the lame duck or the drain cuts
    /// at once.
    ///
    /// The handlers are installed here, so call it before announcing that the
    /// server is up: from then on a signal starts the sequence instead of
    /// ending the process. Must be called inside a tokio runtime with I/O
    /// enabled.
    ///
    /// tokio leaves a signal's handler installed for the rest of the process
    /// once it has one, so after [`run`](Self::run) returns, SIGTERM and
    /// SIGINT no longer end the process on their own. Exit soon after `run`
    /// (return its report from `main`); the examples bound their wait for
    /// the server to a few seconds for this reason.
    ///
    /// # Errors
    ///
    /// If a signal handler cannot be installed.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::signal` does.
    #[cfg(all(feature = "signal", not(loom)))]
    pub fn on_signals(drain: &Drain) -> std::io::Result<Self> {
        let signals = trigger::Signals::install()?;
        Ok(Self::new(drain, Trigger::Signals(signals)))
    }

    /// A sequence for `drain`, started when `trigger` resolves: an admin
    /// endpoint, a channel, a test.
    pub fn with_trigger<F>(drain: &Drain, trigger: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self::new(drain, Trigger::Future(Some(Box::pin(trigger))))
    }

    fn new(drain: &Drain, trigger: Trigger) -> Self {
        Self {
            drain: drain.clone(),
            trigger,
            force_on: None,
            lame_duck: Duration::ZERO,
            deadline: Duration::from_secs(30),
            cleanup_deadline: Duration::from_secs(10),
            progress_every: PROGRESS_EVERY,
            hooks: Vec::new(),
            stop: watch::Sender::new(false),
        }
    }

    /// How long readiness fails before the drain trips (default 0 s). Give
    /// load balancers the time to notice: probe period × failure threshold,
    /// plus their own propagation.
    pub fn lame_duck(mut self, delay: Duration) -> Self {
        self.lame_duck = delay;
        self
    }

    /// How long admitted requests get to finish once the drain has tripped
    /// (default 30 s); then what is left is cut.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long all the cleanup hooks get together (default 10 s).
    pub fn cleanup_deadline(mut self, deadline: Duration) -> Self {
        self.cleanup_deadline = deadline;
        self
    }

    /// How often to log "waiting for N in-flight requests" during the drain
    /// (default 5 s; zero turns it off).
    pub fn progress_every(mut self, every: Duration) -> Self {
        self.progress_every = every;
        self
    }

    /// Also cut at once when `force` resolves during the lame duck or the
    /// drain, as a second signal does.
    pub fn force_on<F>(mut self, force: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.force_on = Some(Box::pin(force));
        self
    }

    /// Adds a cleanup hook: "close the database pool", "flush the exporter".
    ///
    /// Hooks run once the drain is over, one after the other in the order
    /// they were added, so add the ones others depend on last (flush the
    /// telemetry after closing what reports into it). Each runs as its own
    /// task and gets `timeout`, or what is left of the cleanup deadline if
    /// less; one that runs out is cancelled and reported as timed out, one
    /// that errors or panics is reported as failed, and the next one runs
    /// regardless.
    pub fn on_cleanup<F, Fut, E>(
        mut self,
        name: impl Into<Cow<'static, str>>,
        timeout: Duration,
        hook: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.hooks.push(Hook::new(name.into(), timeout, hook));
        self
    }

    /// A future that resolves once the drain is over (drained, or cut at the
    /// deadline), before the cleanup: hand it to the server's graceful
    /// shutdown, so that it stops accepting, closes idle connections and
    /// sends HTTP/2 GOAWAY then. `tower_drain::serve` (feature `serve`)
    /// needs none: it follows the drain by itself.
    ///
    /// - axum: `axum::serve(..).with_graceful_shutdown(shutdown.server_stop())`
    /// - tonic: `Server::builder()..serve_with_shutdown(addr, shutdown.server_stop())`
    /// - hyper-util: `shutdown.server_stop().await; graceful.shutdown().await`
    ///
    /// Take as many as there are servers. It also resolves if the
    /// `Shutdown` is dropped without having run.
    pub fn server_stop(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    }

    /// Waits for the trigger, then runs the sequence to the end.
    ///
    /// Needs a tokio runtime with the time driver enabled.
    pub async fn run(self) -> ShutdownReport {
        let Self {
            drain,
            mut trigger,
            force_on,
            lame_duck,
            deadline,
            cleanup_deadline,
            progress_every,
            hooks,
            stop,
        } = self;

        trigger.next().await;
        let started = Instant::now();
        crate::event!(info, ?lame_duck, ?deadline, "shutdown started");
        let mut force = pin!(trigger::second(&mut trigger, force_on));

        drain.lame_duck();
        let forced = !lame_duck.is_zero()
            && tokio::time::timeout(lame_duck, force.as_mut())
                .await
                .is_ok();
        let lame_duck = started.elapsed();

        // A force that came during the lame duck has resolved already: the
        // drain is cut at once.
        let force = async {
            if !forced {
                force.await;
            }
        };
        let drained = self::drain(&drain, deadline, force, progress_every).await;
        stop.send_replace(true);
        // Servers serving the drain through `serve` close their connections
        // now, each within its own bound; the report counts them all, and
        // what they refused meanwhile. A server whose minimum drain window
        // outlasts the deadline is not waited for past it (and its close).
        let block = drain.block();
        let servers = crate::state::Wait::new(block, crate::state::Event::ServersClosed);
        let left = deadline.saturating_sub(drained.elapsed());
        let close = block.connections().close_bound().max(SERVERS_CLOSE);
        let _ = tokio::time::timeout(left.saturating_add(close), servers).await;
        let drained = drained.recount(block);

        let cleanup_started = Instant::now();
        let hooks = cleanup::run(hooks, cleanup_deadline).await;
        let report = ShutdownReport {
            elapsed: started.elapsed(),
            lame_duck,
            drain: drained,
            cleanup: cleanup_started.elapsed(),
            hooks,
        };
        crate::event!(info, %report, "shutdown complete");
        report
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("drain", &self.drain)
            .field("lame_duck", &self.lame_duck)
            .field("deadline", &self.deadline)
            .field("cleanup_deadline", &self.cleanup_deadline)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
