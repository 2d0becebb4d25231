use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::state::Guard;
use crate::{BoxError, Cut};

pin_project! {
    /// Response body of [`DrainService`](super::DrainService).
    ///
    /// An admitted response's body holds its request's count until it ends:
    /// at its last frame, at an error, or when it is dropped. At the drain
    /// deadline a body that is still waiting for its next frame ends with a
    /// [`Cut`] error. A rejection's body is the rejection's bytes.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Tracked {
            #[pin]
            inner: B,
            // `None` once the inner body has ended by itself.
            guard: Option<Guard>,
        },
        Rejected {
            // Boxed: a refusal is rare and already allocates (its headers),
            // and a pointer keeps every admitted body small.
            data: Option<Box<Bytes>>,
        },
        Exempt {
            #[pin]
            inner: B,
        },
        Ended,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn tracked(inner: B, guard: Guard) -> Self {
        Self {
            kind: Kind::Tracked {
                inner,
                guard: Some(guard),
            },
        }
    }

    pub(crate) fn exempt(inner: B) -> Self {
        Self {
            kind: Kind::Exempt { inner },
        }
    }

    pub(crate) fn rejected(data: Bytes) -> Self {
        Self {
            kind: Kind::Rejected {
                data: (!data.is_empty()).then(|| Box::new(data)),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.as_mut().project().kind.project() {
            KindProj::Tracked { inner, guard } => {
                let Some(tracked) = guard else {
                    return Poll::Ready(None);
                };
                match inner.poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Some(Ok(frame))),
                    // Ended by itself, or by its error: the count goes back now.
                    Poll::Ready(Some(Err(err))) => {
                        *guard = None;
                        return Poll::Ready(Some(Err(err.into())));
                    }
                    Poll::Ready(None) => {
                        *guard = None;
                        return Poll::Ready(None);
                    }
                    Poll::Pending if tracked.poll_deadline(cx) => tracked.record_cut(),
                    Poll::Pending => return Poll::Pending,
                }
            }
            KindProj::Rejected { data } => {
                return Poll::Ready(data.take().map(|data| Ok(Frame::data(*data))))
            }
            KindProj::Exempt { inner } => {
                return inner.poll_frame(cx).map_err(Into::into);
            }
            KindProj::Ended => return Poll::Ready(None),
        }
        // Cut at the deadline. Dropping the variant drops the inner body
        // before the guard (field order): the count is given back once the
        // application's body is gone.
        self.project().kind.set(Kind::Ended);
        Poll::Ready(Some(Err(Cut::new().into())))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Tracked { guard: None, .. } => true,
            Kind::Tracked { inner, .. } => inner.is_end_stream(),
            Kind::Rejected { data } => data.is_none(),
            Kind::Exempt { inner } => inner.is_end_stream(),
            Kind::Ended => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Tracked { inner, .. } => inner.size_hint(),
            Kind::Rejected { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Exempt { inner } => inner.size_hint(),
            Kind::Ended => SizeHint::with_exact(0),
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Tracked { .. } => "tracked",
            Kind::Rejected { .. } => "rejected",
            Kind::Exempt { .. } => "exempt",
            Kind::Ended => "ended",
        };
        f.debug_struct("ResponseBody")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
