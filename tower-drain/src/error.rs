//! Errors.

use std::fmt;

/// The error a response body ends with when the drain deadline cuts it.
///
/// The client sees a broken response (an incomplete chunked body on HTTP/1.1,
/// a reset stream on HTTP/2) rather than a body that is silently short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut(());

impl Cut {
    /// A new `Cut`.
    pub const fn new() -> Self {
        Cut(())
    }
}

impl Default for Cut {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response cut at the drain deadline")
    }
}

impl std::error::Error for Cut {}
