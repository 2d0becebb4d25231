//! The connection's socket, closed the way Go's `net/http` closes it
//! (`closeWriteAndWait`): send FIN, then read and discard what the client
//! still sends, for a short and bounded time, before the socket is dropped.
//!
//! Dropping a TCP socket whose receive buffer holds unread bytes makes the
//! kernel send RST instead of FIN, and an RST can destroy a response the
//! client has not read yet ("connection reset by peer"). A request already
//! on the wire when the server closes an idle keep-alive connection is
//! exactly such unread bytes. With the linger, the client reads every byte
//! it was sent and then an orderly end of stream, which HTTP clients treat
//! as a closed keep-alive connection and retry idempotent requests on.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Sleep;

/// The protocol a connection speaks, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    /// The client opened with the HTTP/2 preface.
    Http2,
}

impl Protocol {
    fn of(first_bytes: &[u8]) -> Self {
        const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let n = first_bytes.len().min(PREFACE.len());
        if first_bytes[..n] == PREFACE[..n] {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }
}

/// An accepted socket: passes everything through, tells the connection its
/// protocol when the client first sends something, and lingers on shutdown.
pub(super) struct Linger<I> {
    io: I,
    /// Fired at the first bytes read: from then on the connection has a
    /// protocol, and a graceful close reaches the client as such.
    first_read: Option<oneshot::Sender<Protocol>>,
    linger: Duration,
    closing: Closing,
}

enum Closing {
    Open,
    /// FIN sent; discarding what the client sends until it closes too, or
    /// the timer runs out. Boxed: only a closing connection has one.
    Draining(Pin<Box<Sleep>>),
    Done,
}

impl<I> Linger<I> {
    pub(super) fn new(io: I, linger: Duration) -> (Self, oneshot::Receiver<Protocol>) {
        let (first_read, read) = oneshot::channel();
        let io = Self {
            io,
            first_read: Some(first_read),
            linger,
            closing: Closing::Open,
        };
        (io, read)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Linger<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            if let Some(first_read) = self.first_read.take() {
                let _ = first_read.send(Protocol::of(&buf.filled()[before..]));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<I> {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Sends FIN, then reads and discards until the client's own FIN, an
    /// error, or the end of the linger; only then may the socket be dropped.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.closing = if this.linger.is_zero() {
                        Closing::Done
                    } else {
                        Closing::Draining(Box::pin(tokio::time::sleep(this.linger)))
                    };
                }
                Closing::Draining(timer) => {
                    let mut discard = [0; 1024];
                    let ended = loop {
                        if timer.as_mut().poll(cx).is_ready() {
                            break true;
                        }
                        let mut buf = ReadBuf::new(&mut discard);
                        match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                            // Still sending: discard, and look again.
                            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                            // The client's FIN, or an error: nothing more to wait for.
                            Poll::Ready(_) => break true,
                            Poll::Pending => break false,
                        }
                    };
                    if !ended {
                        return Poll::Pending;
                    }
                    this.closing = Closing::Done;
                }
                Closing::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<I: fmt::Debug> fmt::Debug for Linger<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Linger")
            .field("io", &self.io)
            .field("linger", &self.linger)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::{Linger, Protocol};

    #[test]
    fn the_protocol_is_told_by_the_first_bytes() {
        assert_eq!(
            Protocol::of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Protocol::Http2
        );
        assert_eq!(Protocol::of(b"PRI *"), Protocol::Http2);
        assert_eq!(Protocol::of(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(Protocol::of(b"POST"), Protocol::Http1);
    }

    /// A request on the wire, unread, as the server answers and closes: the
    /// client reads the answer and then an orderly end, not a reset.
    #[tokio::test]
    async fn a_close_with_unread_bytes_reaches_the_client_as_fin_not_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        let (mut server, first_read) = Linger::new(socket, Duration::from_secs(5));

        client.write_all(b"first").await.unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(first_read.await.unwrap(), Protocol::Http1);
        client.write_all(b"second request").await.unwrap();
        server.write_all(b"answer").await.unwrap();
        let closed = tokio::spawn(async move {
            server.shutdown().await.unwrap();
            drop(server);
        });

        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"answer");
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("the linger ends when the client closes")
            .unwrap();
    }

    #[tokio::test]
    async fn the_linger_is_bounded_when_the_client_never_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        let (mut server, _) = Linger::new(socket, Duration::from_millis(100));
        tokio::time::timeout(Duration::from_secs(5), server.shutdown())
            .await
            .expect("the linger is bounded")
            .unwrap();
    }
}
