//! Where a streaming body's events begin and end.
//!
//! A `Scanner` reads the bytes a body passes through, without copying them,
//! and knows at every point whether the client has received whole events only,
//! that is, whether a terminal frame may be appended there.

mod grpc;
mod ndjson;
mod sse;

use http::header::CONTENT_TYPE;
use http::HeaderMap;

pub(crate) use self::grpc::GrpcScanner;
pub(crate) use self::ndjson::NdjsonScanner;
pub(crate) use self::sse::SseScanner;

/// The streaming formats this crate understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// Server-Sent Events, `text/event-stream`: events end at a blank line.
    Sse,
    /// Newline-delimited JSON, `application/x-ndjson` or `application/jsonl`:
    /// every line is an event.
    Ndjson,
    /// gRPC, `application/grpc*`: every length-prefixed message is an event,
    /// and the stream ends with trailers (`grpc-status: 14`, `UNAVAILABLE`)
    /// instead of a data frame.
    Grpc,
}

impl Framing {
    /// The framing a response's `content-type` announces, if it is a stream
    /// this crate ends cleanly.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let ct = headers.get(CONTENT_TYPE)?.as_bytes();
        let essence = ct.split(|&b| b == b';').next()?.trim_ascii();
        if essence.eq_ignore_ascii_case(b"text/event-stream") {
            Some(Framing::Sse)
        } else if essence.eq_ignore_ascii_case(b"application/x-ndjson")
            || essence.eq_ignore_ascii_case(b"application/jsonl")
        {
            Some(Framing::Ndjson)
        } else if essence.len() >= 16
            && essence[..16].eq_ignore_ascii_case(b"application/grpc")
            && !essence[16..].starts_with(b"-")
        {
            // `application/grpc`, `application/grpc+proto`, ...; not gRPC-Web.
            Some(Framing::Grpc)
        } else {
            None
        }
    }
}

/// What a scanner has seen pass: reported to the cut hook.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) events: u64,
    pub(crate) bytes: u64,
    /// The last event ID the client holds, if `has_last_event_id`. Kept as
    /// bytes: it becomes text only when the hook asks for it.
    pub(crate) last_event_id: Vec<u8>,
    pub(crate) has_last_event_id: bool,
}

impl Seen {
    pub(crate) fn last_event_id(&self) -> Option<&str> {
        // The stream is UTF-8 (SSE); an id cut at `MAX_ID` inside a
        // character keeps its whole characters.
        self.has_last_event_id
            .then(|| match std::str::from_utf8(&self.last_event_id) {
                Ok(id) => id,
                Err(err) => std::str::from_utf8(&self.last_event_id[..err.valid_up_to()])
                    .unwrap_or_default(),
            })
    }
}

/// A scanner for one of the framings.
#[derive(Debug)]
pub(crate) enum Scanner {
    Sse(SseScanner),
    Ndjson(NdjsonScanner),
    Grpc(GrpcScanner),
}

impl Scanner {
    /// `counting`: keep what `Seen` reports (events, last event ID). Without
    /// it, only where the events end is tracked, and a frame that ends an
    /// event where the last one ended is checked at its tail alone.
    pub(crate) fn new(framing: Framing, counting: bool) -> Self {
        match framing {
            Framing::Sse => Scanner::Sse(SseScanner::new(counting)),
            Framing::Ndjson => Scanner::Ndjson(NdjsonScanner::new(counting)),
            // Message headers are read anyway to find the boundaries, so the
            // count costs nothing extra.
            Framing::Grpc => Scanner::Grpc(GrpcScanner::default()),
        }
    }

    /// Reads `data`, the next bytes the client will receive.
    #[inline]
    pub(crate) fn feed(&mut self, data: &[u8]) {
        match self {
            Scanner::Sse(s) => s.feed(data),
            Scanner::Ndjson(s) => s.feed(data),
            Scanner::Grpc(s) => s.feed(data),
        }
    }

    /// Whether everything passed so far is whole events: a frame appended now
    /// is read as an event of its own.
    #[inline]
    pub(crate) fn at_boundary(&self) -> bool {
        match self {
            Scanner::Sse(s) => s.at_boundary(),
            Scanner::Ndjson(s) => s.at_boundary(),
            Scanner::Grpc(s) => s.at_boundary(),
        }
    }

    pub(crate) fn seen(&self) -> &Seen {
        match self {
            Scanner::Sse(s) => s.seen(),
            Scanner::Ndjson(s) => s.seen(),
            Scanner::Grpc(s) => s.seen(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::header::{HeaderValue, CONTENT_TYPE};
    use http::HeaderMap;

    use super::Framing;

    #[test]
    fn framing_follows_the_content_type() {
        let of = |ct: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            Framing::of(&headers)
        };
        assert_eq!(of("text/event-stream"), Some(Framing::Sse));
        assert_eq!(of("Text/Event-Stream; charset=utf-8"), Some(Framing::Sse));
        assert_eq!(of("application/x-ndjson"), Some(Framing::Ndjson));
        assert_eq!(of("application/jsonl"), Some(Framing::Ndjson));
        assert_eq!(of("application/grpc"), Some(Framing::Grpc));
        assert_eq!(of("application/grpc+proto"), Some(Framing::Grpc));
        assert_eq!(of("application/grpc-web"), None);
        assert_eq!(of("application/json"), None);
        assert_eq!(of("text/plain"), None);
        assert_eq!(Framing::of(&HeaderMap::new()), None);
    }
}
