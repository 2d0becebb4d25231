use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Method, Request, Uri, Version};

/// What an [`exempt`](super::DrainLayer::exempt) predicate sees of a request:
/// its head, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: &'a Uri,
    version: Version,
    headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    pub(crate) fn new<B>(req: &'a Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
        }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The request's HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }
}

type Predicate = dyn Fn(&RequestHead<'_>) -> bool + Send + Sync;

/// The requests a layer passes through untouched. Cloned once per service,
/// never per request.
#[derive(Clone, Default)]
pub(crate) struct Exempt(Option<Arc<Predicate>>);

impl Exempt {
    pub(crate) fn new<F>(predicate: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        Self(Some(Arc::new(predicate)))
    }

    #[inline]
    pub(crate) fn matches<B>(&self, req: &Request<B>) -> bool {
        match &self.0 {
            Some(predicate) => predicate(&RequestHead::new(req)),
            None => false,
        }
    }
}

impl fmt::Debug for Exempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}
