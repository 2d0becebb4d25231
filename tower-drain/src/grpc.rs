//! gRPC status headers for a server that is going away.
//!
//! # Example
//!
//! ```
//! let headers = tower_drain::grpc::unavailable("server is shutting down: 100% done");
//! assert_eq!(headers["grpc-status"], "14");
//! assert_eq!(headers["grpc-message"], "server is shutting down: 100%25 done");
//! ```

use http::header::HeaderValue;
use http::HeaderMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// What the gRPC HTTP/2 spec lets stand in a `grpc-message`: printable ASCII
/// other than `%`. Everything else (controls, `%`, non-ASCII) is `%XX`-encoded.
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// `grpc-status: 14` (`UNAVAILABLE`) and `message` as a percent-encoded
/// `grpc-message`: the headers of a trailers-only response, or the trailers
/// that end a stream.
pub fn unavailable(message: &str) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert("grpc-status", HeaderValue::from_static("14"));
    if let Ok(message) =
        HeaderValue::try_from(utf8_percent_encode(message, GRPC_MESSAGE).to_string())
    {
        headers.insert("grpc-message", message);
    }
    headers
}
