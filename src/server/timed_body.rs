//! The body read timeout of [`McpServer::serve`](crate::McpServer::serve):
//! a request's whole body must arrive within a limit, or reading it fails.
//!
//! hyper bounds the time a client may take to send a request's head, not
//! its body: a client that sends a head with `Content-Length: 1000` and
//! then nothing (or one byte a minute) holds its connection, and the task
//! reading the body, for as long as it likes. Hand-written because the
//! crate that has a body timeout (`tower-http`'s `TimeoutBody`) resets its
//! clock after every frame, which a client trickling one byte at a time
//! defeats, and arms a timer for every body, even one that arrived with
//! its head (most MCP requests: one small JSON-RPC message).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::idle::{Activity, InProgress};

/// The error a [`TimedBody`] ends with when its limit passes first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimedOut(pub(crate) Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within the body read timeout ({} s)",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

pin_project_lite::pin_project! {
    /// A request body that must be received whole within `limit`, counted
    /// from the first time its reader has to wait for bytes. A body that
    /// arrived with its head never waits, so it never arms a timer.
    pub(crate) struct TimedBody<B> {
        #[pin]
        body: B,
        limit: Duration,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        expired: bool,
        // Set when the limit passed: the response is then a 408.
        timed_out: Arc<AtomicBool>,
    }
}

impl<B> TimedBody<B> {
    pub(crate) fn new(body: B, limit: Duration, timed_out: Arc<AtomicBool>) -> Self {
        Self {
            body,
            limit,
            deadline: None,
            expired: false,
            timed_out,
        }
    }
}

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if *this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            if frame.is_none() {
                this.deadline.set(None);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.is_none() {
            this.deadline.set(Some(tokio::time::sleep(*this.limit)));
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            ready!(deadline.poll(cx));
        }
        *this.expired = true;
        this.timed_out.store(true, Ordering::Relaxed);
        tracing::debug!(
            limit_secs = this.limit.as_secs_f64(),
            "a request body did not arrive within the body read timeout"
        );
        Poll::Ready(Some(Err(Box::new(BodyTimedOut(*this.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A service that gives every request with a body a [`TimedBody`] (with
/// `Some` limit) before the router sees it, and answers HTTP 408 when that
/// body timed out, whatever the reader of the body answered (the auth
/// layer's 400, rmcp's 500). The router boxes a request's body anyway
/// (`axum::body::Body`): boxing the timed body instead costs nothing more;
/// a request without a body (a GET) is left as it is.
///
/// It also tells the connection's [`Activity`] about each request (the
/// HTTP/2 idle limit), when the connection has one.
#[derive(Clone)]
pub(crate) struct TimedBodies<S> {
    pub(crate) inner: S,
    pub(crate) limit: Option<Duration>,
    pub(crate) activity: Option<Arc<Activity>>,
}

impl<S, B> tower_service::Service<http::Request<B>> for TimedBodies<S>
where
    S: tower_service::Service<http::Request<Body>, Response = Response>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let in_progress = self
            .activity
            .as_ref()
            .and_then(|activity| activity.start(req.version()));
        let (parts, body) = req.into_parts();
        let (body, timed_out) = match self.limit {
            Some(limit) if !body.is_end_stream() => {
                let flag = Arc::new(AtomicBool::new(false));
                let timed = TimedBody::new(body, limit, Arc::clone(&flag));
                (Body::new(timed), Some((flag, limit)))
            }
            _ => (Body::new(body), None),
        };
        TimedResponse {
            inner: self.inner.call(http::Request::from_parts(parts, body)),
            timed_out,
            in_progress,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TimedBodies`].
    pub(crate) struct TimedResponse<F> {
        #[pin]
        inner: F,
        timed_out: Option<(Arc<AtomicBool>, Duration)>,
        // An HTTP/2 request counted until its response body is dropped.
        in_progress: Option<InProgress>,
    }
}

impl<F, E> Future for TimedResponse<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let response = match this.timed_out {
            Some((flag, limit)) if flag.load(Ordering::Relaxed) => {
                timeout_response(&response, *limit)
            }
            _ => response,
        };
        Poll::Ready(Ok(match this.in_progress.take() {
            Some(in_progress) => in_progress.hold(response),
            None => response,
        }))
    }
}

/// HTTP 408 with `Connection: close` (the rest of the body cannot be
/// skipped on an HTTP/1 connection) and the JSON error body of the crate's
/// other refusals; `X-Request-Id` kept from the answer it replaces.
fn timeout_response(replaced: &Response, limit: Duration) -> Response {
    use axum::response::IntoResponse as _;
    use http::header::{CONNECTION, CONTENT_TYPE};
    let request_id = replaced
        .headers()
        .get(crate::correlation::REQUEST_ID_HEADER)
        .cloned();
    // Fixed ASCII, and the request id is `[A-Za-z0-9._:-]`: no escaping.
    let id_member =
        crate::layer::request_id_member(request_id.as_ref().and_then(|v| v.to_str().ok()));
    let body = format!(
        "{{\"error\":\"request_timeout\",\"error_description\":\"The request body did not arrive within {} s\",\"reason\":\"body_read_timeout\"{id_member}}}",
        limit.as_secs_f64()
    );
    let mut response = (
        http::StatusCode::REQUEST_TIMEOUT,
        [
            (
                CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            ),
            (CONNECTION, http::HeaderValue::from_static("close")),
        ],
        body,
    )
        .into_response();
    crate::challenge::error_headers(response.headers_mut());
    if let Some(id) = request_id {
        response
            .headers_mut()
            .insert(crate::correlation::REQUEST_ID_HEADER, id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    async fn next<B: http_body::Body + Unpin>(
        body: &mut B,
    ) -> Option<Result<Frame<B::Data>, B::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    /// A body whose bytes never come.
    struct Stalled;

    impl http_body::Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_the_limit_and_then_ends() {
        let limit = Duration::from_millis(200);
        let flag = Arc::new(AtomicBool::new(false));
        let mut body = Box::pin(TimedBody::new(Stalled, limit, Arc::clone(&flag)));
        let started = tokio::time::Instant::now();
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
        assert!(err.downcast_ref::<BodyTimedOut>().is_some(), "{err}");
        assert!(err.to_string().contains("0.2 s"), "{err}");
        assert!(flag.load(Ordering::Relaxed));
        assert!(body.is_end_stream());
        assert!(next(&mut body).await.is_none());
    }

    #[tokio::test]
    async fn a_body_that_is_there_is_read_whole() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = TimedBody::new(
            Body::from("{\"jsonrpc\":\"2.0\"}"),
            Duration::from_secs(1),
            Arc::clone(&flag),
        );
        let bytes = axum::body::to_bytes(Body::new(body), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"{\"jsonrpc\":\"2.0\"}");
        assert!(!flag.load(Ordering::Relaxed));
    }
}
