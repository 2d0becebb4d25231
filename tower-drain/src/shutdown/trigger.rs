use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

pub(super) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What starts a shutdown, and what tells a running one to stop at once.
pub(super) enum Trigger {
    /// SIGTERM or SIGINT (Ctrl-C on Windows): the first starts the sequence,
    /// the next one forces it.
    #[cfg(all(feature = "signal", not(loom)))]
    Signals(Signals),
    /// A future of the user's: it starts the sequence, once.
    Future(Option<BoxFuture>),
}

impl Trigger {
    /// Resolves at the next trigger. A future trigger fires once; after that
    /// this never resolves.
    pub(super) async fn next(&mut self) {
        match self {
            #[cfg(all(feature = "signal", not(loom)))]
            Trigger::Signals(signals) => signals.recv().await,
            Trigger::Future(future) => match future.take() {
                Some(future) => future.await,
                None => pending().await,
            },
        }
    }
}

/// Resolves when `trigger` fires again or `force_on` resolves, whichever is
/// first.
pub(super) async fn second(trigger: &mut Trigger, force_on: Option<BoxFuture>) {
    let mut again = std::pin::pin!(trigger.next());
    let mut force_on = force_on;
    poll_fn(|cx| {
        if again.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        match force_on.as_mut().map(|force| force.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await
}

/// The process's stop signals, with their handlers installed.
///
/// tokio keeps a handler installed for the life of the process once it has
/// one: after the sequence, these signals no longer end the process by
/// themselves (see [`Shutdown::on_signals`](super::Shutdown::on_signals)).
#[cfg(all(feature = "signal", not(loom)))]
pub(super) struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

#[cfg(all(feature = "signal", not(loom)))]
impl Signals {
    /// Installs the handlers now: from here on these signals no longer end
    /// the process, they are delivered here.
    pub(super) fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(windows)]
        Ok(Self {
            ctrl_c: tokio::signal::windows::ctrl_c()?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let Self {
                terminate,
                interrupt,
            } = self;
            poll_fn(|cx| {
                if terminate.poll_recv(cx).is_ready() {
                    crate::event!(info, "SIGTERM received");
                    return Poll::Ready(());
                }
                if interrupt.poll_recv(cx).is_ready() {
                    crate::event!(info, "SIGINT received");
                    return Poll::Ready(());
                }
                Poll::Pending
            })
            .await
        }
        #[cfg(windows)]
        {
            // `None`: the listener is gone; never fire rather than fire now.
            if self.ctrl_c.recv().await.is_none() {
                pending::<()>().await;
            }
            crate::event!(info, "Ctrl-C received");
        }
    }
}
