//! [`ResponseFuture`]: an answer decided at once, the inner service's own
//! future (unboxed), or a boxed future for requests that must wait.

use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{HeaderValue, StatusCode};

use super::http_rules::add_cors;

use super::sessions::SessionHook;
use super::step_up::{Settled, StepUpCheck};

pin_project_lite::pin_project! {
    /// The response future of [`AuthService`]: an answer decided at once (a
    /// rejection, the metadata), the inner service's own future (a known
    /// token), or a boxed future for requests that must wait (a token not
    /// verified yet, a body read for per-operation scopes).
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
        // Echoed as `X-Request-Id` on the response, whatever produced it.
        request_id: Option<HeaderValue>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Ready { response: Option<Response> },
        Inner {
            #[pin] future: F,
            hook: Option<SessionHook>,
            origin: Option<HeaderValue>,
            step_up: Option<StepUpCheck>,
            nonce: Option<HeaderValue>,
            stream_end: Option<u64>,
        },
        Boxed { future: BoxFuture<'static, Result<Response, E>> },
        // An SSE response held until its first event (late step-up).
        Held { future: BoxFuture<'static, Response> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn ready(response: Response) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
            request_id: None,
        }
    }

    pub(super) fn inner(
        future: F,
        hook: Option<SessionHook>,
        origin: Option<HeaderValue>,
        step_up: Option<StepUpCheck>,
        nonce: Option<HeaderValue>,
        stream_end: Option<u64>,
    ) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                hook,
                origin,
                step_up,
                nonce,
                stream_end,
            },
            request_id: None,
        }
    }

    pub(super) fn boxed(future: BoxFuture<'static, Result<Response, E>>) -> Self {
        Self {
            kind: Kind::Boxed { future },
            request_id: None,
        }
    }

    /// The same future, its response carrying `X-Request-Id: id`.
    pub(super) fn with_request_id(mut self, id: HeaderValue) -> Self {
        self.request_id = Some(id);
        self
    }
}

impl<F, E> std::fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Ready { .. } => "ready",
            Kind::Inner { .. } => "inner",
            Kind::Boxed { .. } => "boxed",
            Kind::Held { .. } => "held",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, E> std::future::Future for ResponseFuture<F, E>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut polled = poll_kind(this.kind, cx);
        if let Poll::Ready(Ok(response)) = &mut polled
            && let Some(id) = this.request_id.take()
        {
            response
                .headers_mut()
                .insert(crate::correlation::REQUEST_ID_HEADER, id);
        }
        polled
    }
}

fn poll_kind<F, E>(
    mut kind: std::pin::Pin<&mut Kind<F, E>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response, E>>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    loop {
        let next = match kind.as_mut().project() {
            KindProj::Ready { response } => {
                return match response.take() {
                    Some(response) => Poll::Ready(Ok(response)),
                    // Polled again after completion: a caller bug. Answer
                    // with an error response rather than panicking.
                    None => Poll::Ready(Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response())),
                };
            }
            KindProj::Inner {
                future,
                hook,
                origin,
                step_up,
                nonce,
                stream_end,
            } => {
                let response = std::task::ready!(future.poll(cx))?;
                let settled = match step_up.take() {
                    Some(check) => check.settle(response),
                    None => Settled::Done(response),
                };
                match settled {
                    Settled::Done(response) => {
                        return Poll::Ready(Ok(finish(
                            response,
                            hook.take(),
                            origin.take(),
                            nonce.take(),
                            *stream_end,
                        )));
                    }
                    Settled::Held(held) => {
                        let (hook, origin, nonce) = (hook.take(), origin.take(), nonce.take());
                        let stream_end = *stream_end;
                        Kind::Held {
                            future: Box::pin(async move {
                                finish(held.await, hook, origin, nonce, stream_end)
                            }),
                        }
                    }
                }
            }
            KindProj::Boxed { future } => return future.as_mut().poll(cx),
            KindProj::Held { future } => return future.as_mut().poll(cx).map(Ok),
        };
        kind.set(next);
    }
}

/// What the layer does to an admitted request's response: the session
/// hook, a fresh `DPoP-Nonce` (RFC 9449 section 8.2), the end of an event
/// stream at its token's expiry (`stream_end`), then the CORS headers.
pub(super) fn finish(
    mut response: Response,
    hook: Option<SessionHook>,
    origin: Option<HeaderValue>,
    nonce: Option<HeaderValue>,
    stream_end: Option<u64>,
) -> Response {
    if let Some(hook) = hook {
        response = hook.after(response);
    }
    if let Some(end) = stream_end {
        response = super::stream_end::end_streams_at(response, end);
    }
    if let Some(nonce) = nonce {
        response
            .headers_mut()
            .insert(super::service::DPOP_NONCE, nonce);
    }
    if let Some(origin) = origin {
        add_cors(&mut response, &origin);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    type Ready = ResponseFuture<std::future::Ready<Result<Response, ()>>, ()>;

    fn poll(f: &mut Ready) -> Poll<Result<Response, ()>> {
        Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    // A future polled again after it completed is a caller bug: it answers
    // 500 instead of panicking inside the server.
    #[test]
    fn polled_after_completion_answers_500_without_panicking() {
        let mut f: Ready = ResponseFuture::ready(StatusCode::UNAUTHORIZED.into_response());
        assert_eq!(format!("{f:?}"), r#"ResponseFuture { kind: "ready" }"#);
        let Poll::Ready(Ok(first)) = poll(&mut f) else {
            panic!("a decided answer is ready at once");
        };
        assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
        let Poll::Ready(Ok(again)) = poll(&mut f) else {
            panic!("polled again: still an answer");
        };
        assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    // The inner service's future: its answer, with CORS headers for an
    // allowed origin; the boxed future: its answer as it is.
    #[test]
    fn inner_and_boxed_futures_answer_through() {
        let origin = HeaderValue::from_static("https://app.example");
        let mut inner: Ready = ResponseFuture::inner(
            std::future::ready(Ok(StatusCode::OK.into_response())),
            None,
            Some(origin),
            None,
            None,
            None,
        );
        assert_eq!(format!("{inner:?}"), r#"ResponseFuture { kind: "inner" }"#);
        let Poll::Ready(Ok(response)) = poll(&mut inner) else {
            panic!("ready");
        };
        assert_eq!(
            response.headers()[http::header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        let mut boxed: Ready =
            ResponseFuture::boxed(Box::pin(async { Ok(StatusCode::ACCEPTED.into_response()) }));
        assert_eq!(format!("{boxed:?}"), r#"ResponseFuture { kind: "boxed" }"#);
        let Poll::Ready(Ok(response)) = poll(&mut boxed) else {
            panic!("ready");
        };
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}
