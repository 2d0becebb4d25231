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
        // The application's body. `guard` holds an admitted request's count
        // until the body ends; an exempt body has none.
        Serving {
            #[pin]
            inner: B,
            guard: Option<Guard>,
        },
        Rejected {
            // Boxed: a refusal is rare and already allocates (its headers),
            // and a pointer keeps every admitted body small.
            data: Option<Box<Bytes>>,
        },
        Ended,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn tracked(inner: B, guard: Guard) -> Self {
        Self {
            kind: Kind::Serving {
                inner,
                guard: Some(guard),
            },
        }
    }

    pub(crate) fn exempt(inner: B) -> Self {
        Self {
            kind: Kind::Serving { inner, guard: None },
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
        let ended = match self.as_mut().project().kind.project() {
            KindProj::Serving { inner, guard } => match inner.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Some(Ok(frame))),
                Poll::Pending => {
                    // An exempt body is never cut.
                    let Some(tracked) = guard else {
                        return Poll::Pending;
                    };
                    if !tracked.poll_deadline(cx) {
                        return Poll::Pending;
                    }
                    tracked.record_cut();
                    Some(Err(Cut::new().into()))
                }
                // Ended by itself, or by its error: the count goes back now.
                Poll::Ready(last) => last.map(|last| last.map_err(Into::into)),
            },
            KindProj::Rejected { data } => {
                return Poll::Ready(data.take().map(|data| Ok(Frame::data(*data))))
            }
            KindProj::Ended => return Poll::Ready(None),
        };
        // Dropping the variant drops the inner body before the guard (field
        // order): at a cut, the count is given back once the application's
        // body is gone.
        self.project().kind.set(Kind::Ended);
        Poll::Ready(ended)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Serving { inner, .. } => inner.is_end_stream(),
            Kind::Rejected { data } => data.is_none(),
            Kind::Ended => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Serving { inner, .. } => inner.size_hint(),
            Kind::Rejected { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Ended => SizeHint::with_exact(0),
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Serving { guard: Some(_), .. } => "tracked",
            Kind::Serving { guard: None, .. } => "exempt",
            Kind::Rejected { .. } => "rejected",
            Kind::Ended => "ended",
        };
        f.debug_struct("ResponseBody")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
