//! What [`serve`](super::serve) accepts connections from.

use std::fmt;
use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// A source of connections: a `tokio::net::TcpListener` or (on Unix) a
/// `tokio::net::UnixListener`, or your own.
///
/// `accept` must be cancel safe, as tokio's are: the server drops a pending
/// `accept` when the drain trips or is over, and calls it again.
pub trait Listener: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The peer's address, for the logs.
    type Addr: fmt::Debug + Send;

    /// The next connection, or the error accepting it. The server logs
    /// errors and goes on (see [`serve`](super::serve)): a listener should
    /// not fail for good.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send;

    /// Closes the listener, and returns (up to `max` of) the connections the
    /// kernel has completed that `accept` has not returned yet, so that the
    /// server can answer them instead of their being reset with their
    /// request unread. tokio's listeners ask the kernel directly here, not
    /// their readiness cache, which can lag behind it. The default takes
    /// none.
    fn into_backlog(self, max: usize) -> Vec<Self::Io>
    where
        Self: Sized,
    {
        let _ = max;
        Vec::new()
    }
}

/// With `TCP_NODELAY` on each connection: a response's last bytes go out at
/// once instead of waiting for the client's ACK.
impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        no_delay(&stream);
        Ok((stream, addr))
    }

    fn into_backlog(self, max: usize) -> Vec<Self::Io> {
        let Ok(listener) = self.into_std() else {
            return Vec::new();
        };
        // Never block, whatever the listener was made from.
        if listener.set_nonblocking(true).is_err() {
            return Vec::new();
        }
        std::iter::from_fn(|| next_in_backlog(|| listener.accept()))
            .take(max)
            .filter_map(|(stream, _)| {
                stream.set_nonblocking(true).ok()?;
                let stream = tokio::net::TcpStream::from_std(stream).ok()?;
                no_delay(&stream);
                Some(stream)
            })
            .collect()
    }
}

fn no_delay(stream: &tokio::net::TcpStream) {
    if let Err(_error) = stream.set_nodelay(true) {
        crate::event!(debug, error = %_error, "could not set TCP_NODELAY");
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        tokio::net::UnixListener::accept(self).await
    }

    fn into_backlog(self, max: usize) -> Vec<Self::Io> {
        let Ok(listener) = self.into_std() else {
            return Vec::new();
        };
        if listener.set_nonblocking(true).is_err() {
            return Vec::new();
        }
        std::iter::from_fn(|| next_in_backlog(|| listener.accept()))
            .take(max)
            .filter_map(|(stream, _)| {
                stream.set_nonblocking(true).ok()?;
                tokio::net::UnixStream::from_std(stream).ok()
            })
            .collect()
    }
}

/// The next connection of a backlog, skipping those gone before they were
/// accepted; `None` once it is empty (or the listener fails).
fn next_in_backlog<T>(mut accept: impl FnMut() -> io::Result<T>) -> Option<T> {
    loop {
        match accept() {
            Ok(accepted) => return Some(accepted),
            Err(error)
                if is_connection_error(&error) && error.kind() != io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

/// Errors that concern one connection only (it was gone before it was
/// accepted): the next accept may go on at once. Every other error (out of
/// file descriptors, out of memory) waits a little before the next.
pub(super) fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
