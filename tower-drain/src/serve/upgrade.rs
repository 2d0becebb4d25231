//! Which HTTP/1 connections are in the middle of an upgrade (an `Upgrade`
//! request, or a `CONNECT` tunnel): those are not closed gracefully, since
//! hyper would then add `close` to the `Connection` header of their `101`
//! (or `2xx` tunnel), and clients (tokio-tungstenite, browsers) reject a
//! handshake whose `Connection` is not `upgrade` alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::UPGRADE;
use http::{Method, Request, Response, StatusCode, Version};
use pin_project_lite::pin_project;
use tower_service::Service;

/// Wraps a connection's service: [`pending`](Self::pending) is set while an
/// HTTP/1.1 request asking for an upgrade waits for its answer, and stays
/// set if the answer is a `101` (the connection is then the
/// application's).
#[derive(Clone, Debug)]
pub(super) struct UpgradeWatch<S> {
    inner: S,
    pending: Arc<AtomicBool>,
}

impl<S> UpgradeWatch<S> {
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Arc::default(),
        }
    }

    /// What says whether an upgrade is pending, for the connection's loop.
    pub(super) fn pending(&self) -> Arc<AtomicBool> {
        self.pending.clone()
    }
}

impl<S, B, ResBody> Service<Request<B>> for UpgradeWatch<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = UpgradeFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        // hyper takes a `2xx` to `CONNECT` for an upgrade too (a tunnel).
        let upgrade = req.version() == Version::HTTP_11
            && (req.headers().contains_key(UPGRADE) || req.method() == Method::CONNECT);
        let pending = upgrade.then(|| {
            self.pending.store(true, Ordering::Release);
            Pending {
                flag: self.pending.clone(),
                connect: req.method() == Method::CONNECT,
            }
        });
        UpgradeFuture {
            inner: self.inner.call(req),
            pending,
        }
    }
}

pin_project! {
    /// The answer to a request; for an upgrade request that is not
    /// answered with a `101`, clears the pending upgrade.
    #[derive(Debug)]
    pub(super) struct UpgradeFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

/// An upgrade waiting for its answer.
#[derive(Debug)]
pub(super) struct Pending {
    flag: Arc<AtomicBool>,
    /// A `CONNECT`, which a `2xx` upgrades; anything else needs a `101`.
    connect: bool,
}

impl<F, ResBody, E> Future for UpgradeFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Some(pending) = this.pending.take() {
            let upgraded = match &output {
                Ok(res) if pending.connect => res.status().is_success(),
                Ok(res) => res.status() == StatusCode::SWITCHING_PROTOCOLS,
                Err(_) => false,
            };
            if !upgraded {
                pending.flag.store(false, Ordering::Release);
            }
        }
        Poll::Ready(output)
    }
}
