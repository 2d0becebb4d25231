//! The WebSockets this module drains: axum's and tokio-tungstenite's.

use std::fmt;

use futures_core::Stream;
use futures_sink::Sink;

/// A WebSocket the drain can close: axum's
/// [`WebSocket`](axum::extract::ws::WebSocket) (feature `ws`) or
/// tokio-tungstenite's `WebSocketStream` (feature `tungstenite`).
///
/// Sealed: the drain needs to know how to build a Close frame, which
/// messages carry data, and where a message ends.
pub trait Socket:
    private::Sealed
    + Stream<Item = Result<Self::Message, Self::SocketError>>
    + Sink<Self::Message, Error = Self::SocketError>
    + Unpin
    + Send
    + 'static
{
    /// The socket's message type.
    type Message: Send + 'static;
    /// The socket's error type.
    type SocketError: Send + 'static;

    /// A Close frame with `code` and `reason` (at most 123 bytes).
    #[doc(hidden)]
    fn close_message(code: u16, reason: &str) -> Self::Message;

    /// What `message` is, as the drain counts it.
    #[doc(hidden)]
    fn describe(message: &Self::Message) -> Describe;

    /// The error for an operation on a socket the drain has taken over.
    #[doc(hidden)]
    fn closed() -> Self::SocketError;
}

/// What a message is, as the drain counts it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Describe {
    /// Payload bytes of a data message (text, binary, or a raw data frame).
    pub data: Option<usize>,
    /// A Close frame.
    pub close: bool,
    /// Ends a message: false only for a raw frame that is not the last of
    /// its message, after which a Close would split the message.
    pub ends_message: bool,
}

impl Describe {
    const CONTROL: Self = Self {
        data: None,
        close: false,
        ends_message: true,
    };
    const CLOSE: Self = Self {
        data: None,
        close: true,
        ends_message: true,
    };

    fn data(len: usize) -> Self {
        Self {
            data: Some(len),
            close: false,
            ends_message: true,
        }
    }
}

/// An operation on a WebSocket the drain has taken over to close it: once
/// the drain has sent its Close (or the application let go of the socket),
/// the application can neither send nor receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed(());

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the WebSocket is being closed by the drain")
    }
}

impl std::error::Error for Closed {}

mod private {
    pub trait Sealed {}
}

#[cfg(feature = "ws")]
mod axum_ws {
    use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};

    use super::{private, Closed, Describe, Socket};

    impl private::Sealed for WebSocket {}

    impl Socket for WebSocket {
        type Message = Message;
        type SocketError = axum::Error;

        fn close_message(code: u16, reason: &str) -> Message {
            Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            }))
        }

        fn describe(message: &Message) -> Describe {
            match message {
                Message::Text(text) => Describe::data(text.len()),
                Message::Binary(data) => Describe::data(data.len()),
                Message::Close(_) => Describe::CLOSE,
                Message::Ping(_) | Message::Pong(_) => Describe::CONTROL,
            }
        }

        fn closed() -> axum::Error {
            axum::Error::new(Closed(()))
        }
    }
}

#[cfg(feature = "tungstenite")]
mod tungstenite_ws {
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, OpCode};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::{Error, Message};
    use tokio_tungstenite::WebSocketStream;

    use super::{private, Describe, Socket};

    impl<T> private::Sealed for WebSocketStream<T> {}

    impl<T> Socket for WebSocketStream<T>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Message = Message;
        type SocketError = Error;

        fn close_message(code: u16, reason: &str) -> Message {
            Message::Close(Some(CloseFrame {
                code: code.into(),
                reason: reason.into(),
            }))
        }

        fn describe(message: &Message) -> Describe {
            match message {
                Message::Text(text) => Describe::data(text.len()),
                Message::Binary(data) => Describe::data(data.len()),
                Message::Close(_) => Describe::CLOSE,
                Message::Ping(_) | Message::Pong(_) => Describe::CONTROL,
                Message::Frame(frame) => {
                    let header = frame.header();
                    match header.opcode {
                        OpCode::Data(_) => Describe {
                            data: Some(frame.payload().len()),
                            close: false,
                            ends_message: header.is_final,
                        },
                        OpCode::Control(Control::Close) => Describe::CLOSE,
                        OpCode::Control(_) => Describe::CONTROL,
                    }
                }
            }
        }

        fn closed() -> Error {
            Error::AlreadyClosed
        }
    }
}
