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

/// Which requests a [`DrainLayer`](super::DrainLayer) passes through
/// untouched. Implemented for [`NoExempt`] and for any
/// `Fn(&RequestHead<'_>) -> bool + Clone`.
///
/// It is a type of the layer, not a boxed value: a service is cloned for
/// every request where axum routes it, and copying a closure writes nothing
/// shared, where cloning an `Arc` would.
pub trait Exempt: Clone {
    /// Whether `req` bypasses the drain.
    fn is_exempt(&self, req: &RequestHead<'_>) -> bool;
}

impl<F> Exempt for F
where
    F: Fn(&RequestHead<'_>) -> bool + Clone,
{
    #[inline]
    fn is_exempt(&self, req: &RequestHead<'_>) -> bool {
        self(req)
    }
}

/// No request is exempt: the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExempt;

impl Exempt for NoExempt {
    #[inline]
    fn is_exempt(&self, _: &RequestHead<'_>) -> bool {
        false
    }
}
