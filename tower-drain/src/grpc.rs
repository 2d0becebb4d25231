//! gRPC: which messages are gRPC, and the status a server that is going away
//! answers with.
//!
//! # Example
//!
//! ```
//! use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
//!
//! let mut request = HeaderMap::new();
//! request.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc+proto"));
//! assert!(tower_drain::grpc::is_grpc(&request));
//!
//! let headers = tower_drain::grpc::unavailable("server is shutting down: 100% done");
//! assert_eq!(headers["grpc-status"], "14");
//! assert_eq!(headers["grpc-message"], "server is shutting down: 100%25 done");
//! ```

use http::header::{HeaderValue, CONTENT_TYPE};
use http::HeaderMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// What the gRPC HTTP/2 spec lets stand in a `grpc-message`: printable ASCII
/// other than `%`. Everything else (controls, `%`, non-ASCII) is `%XX`-encoded.
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// The media type every gRPC `content-type` starts with.
const GRPC: &[u8] = b"application/grpc";

/// Whether a message with these headers is gRPC: its `content-type` is
/// `application/grpc`, alone or followed by a `+format` suffix or parameters
/// (`application/grpc+proto`, `application/grpc; charset=utf-8`), in any
/// letter case, as media types are.
///
/// gRPC-Web (`application/grpc-web`, `application/grpc-web-text`) is not: it
/// is a different protocol, whose clients read the status from the body, not
/// from trailers. Both crates of this project use this one test, on requests
/// (the refusal) and on responses (the terminal frame).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.as_bytes();
        ct.len() >= GRPC.len()
            && ct[..GRPC.len()].eq_ignore_ascii_case(GRPC)
            && matches!(ct.get(GRPC.len()), None | Some(b'+' | b';' | b' ' | b'\t'))
    })
}

/// `grpc-status: 14` (`UNAVAILABLE`) and `message` as a percent-encoded
/// `grpc-message`: the headers of a trailers-only response, or the trailers
/// that end a stream. The call did not run (or its stream was ended cleanly
/// between messages); a client may retry it elsewhere.
pub fn unavailable(message: &str) -> HeaderMap {
    status(Code::Unavailable, message)
}

/// `grpc-status: 10` (`ABORTED`) and `message`: what a call cut at the drain
/// deadline while its handler was running is answered with. Unlike
/// `UNAVAILABLE`, it does not tell the client the call is safe to retry: the
/// handler may have partly run. See [`Cause::Deadline`](crate::layer::Cause::Deadline).
pub fn aborted(message: &str) -> HeaderMap {
    status(Code::Aborted, message)
}

#[derive(Clone, Copy)]
enum Code {
    Aborted,
    Unavailable,
}

fn status(code: Code, message: &str) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    let code = match code {
        Code::Aborted => "10",
        Code::Unavailable => "14",
    };
    headers.insert("grpc-status", HeaderValue::from_static(code));
    if let Ok(message) =
        HeaderValue::try_from(utf8_percent_encode(message, GRPC_MESSAGE).to_string())
    {
        headers.insert("grpc-message", message);
    }
    headers
}

#[cfg(test)]
mod tests {
    use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

    use super::is_grpc;

    #[test]
    fn grpc_is_its_media_type_with_any_suffix_or_parameters_but_not_grpc_web() {
        let of = |ct: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            is_grpc(&headers)
        };
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC",
            "application/grpc; charset=utf-8",
            "application/grpc ;x=y",
        ] {
            assert!(of(grpc), "{grpc}");
        }
        for other in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpcx",
            "application/json",
            "text/event-stream",
            "application/grp",
        ] {
            assert!(!of(other), "{other}");
        }
        assert!(!is_grpc(&HeaderMap::new()), "no content-type");
    }
}
