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

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Sleep;

/// The protocol a connection speaks, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    /// The client opened with the whole HTTP/2 preface.
    Http2,
}

/// What an HTTP/2 client sends first (RFC 9113, section 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells the protocol from the bytes a client sends first, as they come:
/// HTTP/1 at the first byte off the preface, HTTP/2 once the whole preface
/// is in (which is also when hyper-util decides).
#[derive(Debug, Default)]
struct Detect {
    /// Preface bytes matched so far.
    matched: usize,
}

impl Detect {
    fn feed(&mut self, bytes: &[u8]) -> Option<Protocol> {
        for &byte in bytes {
            if byte != PREFACE[self.matched] {
                return Some(Protocol::Http1);
            }
            self.matched += 1;
            if self.matched == PREFACE.len() {
                return Some(Protocol::Http2);
            }
        }
        None
    }
}

std::thread_local! {
    /// The connection whose hyper connection its task is polling (0: none).
    /// A shutdown of that connection's socket issued then is hyper's, and
    /// lingers. After an upgrade the socket belongs to the application,
    /// whose shutdowns (a tunnel's half close, say) must not discard what
    /// the client still sends, even when the application's code runs inside
    /// another connection's poll (hyper polls HTTP/1 handlers inline).
    static HYPER_POLLING: Cell<u64> = const { Cell::new(0) };
}

/// Numbers connections, so that a socket knows whether hyper's poll is its
/// own connection's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Runs `poll` (a poll of connection `id`'s hyper connection) with that
/// socket's shutdowns lingering.
pub(super) fn hyper_polling<T>(id: u64, poll: impl FnOnce() -> T) -> T {
    struct Reset(u64);
    impl Drop for Reset {
        fn drop(&mut self) {
            HYPER_POLLING.with(|polling| polling.set(self.0));
        }
    }
    let _reset = Reset(HYPER_POLLING.with(|polling| polling.replace(id)));
    poll()
}

/// An accepted socket: passes everything through, tells the connection its
/// protocol as soon as the client's first bytes say it, and lingers when
/// hyper shuts it down.
pub(super) struct Linger<I> {
    io: I,
    /// This connection's number (see [`hyper_polling`]).
    id: u64,
    /// Until the protocol is known: fired once it is (from then on a
    /// graceful close reaches the client as such; before, hyper-util would
    /// cancel the connection and drop the socket), and, from the
    /// connection's task, the word to close a client that has said nothing.
    undecided: Option<Undecided>,
    /// The connection's task said to close this silent client.
    closing_silent: bool,
    linger: Duration,
    closing: Closing,
}

struct Undecided {
    decided: oneshot::Sender<Protocol>,
    detect: Detect,
    close: oneshot::Receiver<()>,
}

/// The connection's task's side of a [`Linger`].
pub(super) struct Control {
    pub(super) id: u64,
    /// Resolves with the protocol, once the client's first bytes tell it.
    pub(super) decided: oneshot::Receiver<Protocol>,
    /// Closes a client that has not said which protocol it speaks: the
    /// socket is closed with the linger, and hyper-util reads the end.
    pub(super) close_silent: Option<oneshot::Sender<()>>,
}

enum Closing {
    Open,
    /// FIN sent; discarding what the client sends until it closes too, or
    /// the timer runs out. Boxed: only a closing connection has one.
    Draining(Pin<Box<Sleep>>),
    Done,
}

impl<I> Linger<I> {
    pub(super) fn new(io: I, linger: Duration) -> (Self, Control) {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (decided, protocol) = oneshot::channel();
        let (close_silent, close) = oneshot::channel();
        let io = Self {
            io,
            id,
            undecided: Some(Undecided {
                decided,
                detect: Detect::default(),
                close,
            }),
            closing_silent: false,
            linger,
            closing: Closing::Open,
        };
        let control = Control {
            id,
            decided: protocol,
            close_silent: Some(close_silent),
        };
        (io, control)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for Linger<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(undecided) = &mut this.undecided else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Some(protocol) = undecided.detect.feed(&buf.filled()[before..]) {
                    if let Some(undecided) = this.undecided.take() {
                        let _ = undecided.decided.send(protocol);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            // Nothing came: if the connection's task says so, close (FIN,
            // then the linger reads and discards whatever arrives, so that
            // no request is left unread in the socket), and tell hyper-util
            // the connection has ended.
            Poll::Pending => {
                if undecided.close.try_recv().is_ok() {
                    this.closing_silent = true;
                }
                if !this.closing_silent {
                    return Poll::Pending;
                }
                ready!(this.poll_close(cx))?;
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Linger<I> {
    fn is_closing(&self) -> bool {
        !matches!(self.closing, Closing::Open)
    }

    /// Sends FIN, then reads and discards until the client's own FIN, an
    /// error, or the end of the linger; only then may the socket be dropped.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                    self.closing = if self.linger.is_zero() {
                        Closing::Done
                    } else {
                        Closing::Draining(Box::pin(tokio::time::sleep(self.linger)))
                    };
                }
                Closing::Draining(timer) => {
                    let mut discard = [0; 1024];
                    let ended = loop {
                        if timer.as_mut().poll(cx).is_ready() {
                            break true;
                        }
                        let mut buf = ReadBuf::new(&mut discard);
                        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
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
                    self.closing = Closing::Done;
                }
                Closing::Done => return Poll::Ready(Ok(())),
            }
        }
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

    /// Sends FIN, then, when hyper closes the connection, reads and
    /// discards until the client's own FIN, an error, or the end of the
    /// linger; only then may the socket be dropped.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.is_closing() && HYPER_POLLING.with(Cell::get) != this.id {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        }
        this.poll_close(cx)
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
    fn the_protocol_is_told_by_the_first_bytes_as_they_come() {
        let told = |chunks: &[&[u8]]| {
            let mut detect = super::Detect::default();
            chunks.iter().find_map(|chunk| detect.feed(chunk))
        };
        assert_eq!(
            told(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"]),
            Some(Protocol::Http2)
        );
        assert_eq!(
            told(&[b"PRI * HTTP/2.0", b"\r\n\r\nSM\r\n", b"\r\n"]),
            Some(Protocol::Http2)
        );
        // A partial preface says nothing yet; neither does a lone "P".
        assert_eq!(told(&[b"PRI * HTTP/2.0\r\n"]), None);
        assert_eq!(told(&[b"P"]), None);
        assert_eq!(told(&[b"P", b"OST / HTTP/1.1"]), Some(Protocol::Http1));
        assert_eq!(told(&[b"GET / HTTP/1.1\r\n"]), Some(Protocol::Http1));
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
        let (mut server, control) = Linger::new(socket, Duration::from_secs(5));

        client.write_all(b"first").await.unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(control.decided.await.unwrap(), Protocol::Http1);
        client.write_all(b"second request").await.unwrap();
        server.write_all(b"answer").await.unwrap();
        let closed = tokio::spawn(async move {
            hyper_shuts_down(&mut server).await.unwrap();
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
        tokio::time::timeout(Duration::from_secs(5), hyper_shuts_down(&mut server))
            .await
            .expect("the linger is bounded")
            .unwrap();
    }

    /// After an upgrade the socket is the application's: its half close
    /// (a tunnel forwarding the end of its upstream) must not discard what
    /// the client sends after it.
    #[tokio::test]
    async fn an_applications_half_close_does_not_discard_what_the_client_sends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        let (mut server, _) = Linger::new(socket, Duration::from_secs(5));
        server.write_all(b"done").await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"done");
        client.write_all(b"after the half close").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"after the half close");
    }

    /// A shutdown as hyper's connection issues it.
    async fn hyper_shuts_down(server: &mut Linger<TcpStream>) -> std::io::Result<()> {
        let id = server.id;
        std::future::poll_fn(|cx| {
            super::hyper_polling(id, || {
                tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut *server), cx)
            })
        })
        .await
    }
}
