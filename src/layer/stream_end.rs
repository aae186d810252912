//! Event streams end when their token does
//! ([`close_streams_at_expiry`](crate::AuthConfigBuilder::close_streams_at_expiry),
//! on by default).
//!
//! A token is verified when a request arrives; an event stream (a legacy
//! GET stream, a POST answered with SSE, a 2026-07-28
//! `subscriptions/listen`) may stay open for hours after. Without an end,
//! it would go on delivering to a credential that expired long ago, which
//! no other request could do. The response body of an admitted request
//! whose answer is `text/event-stream` is wrapped so that it ends at the
//! token's `exp` plus the leeway (the moment the same token would be
//! refused): the client sees the stream end, reconnects, and its new
//! request is verified like any other. JSON answers are complete when
//! they are sent and are left alone.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::Frame;

use crate::context::AuthContext;

/// When the event streams of `ctx`'s request end, in Unix seconds: its
/// `exp` plus `leeway`. `None`: no expiry known. Only a number: the clock
/// is read (in [`end_streams_at`]) when the answer is an event stream, never
/// on the path of a JSON answer.
pub(super) fn end_of(ctx: &AuthContext, leeway: u64) -> Option<u64> {
    Some(ctx.expires_at_unix()?.saturating_add(leeway))
}

/// `end` (Unix seconds) as a timer instant. `None`: more than a year away
/// (streams then end only when the server ends them).
fn deadline(end: u64) -> Option<tokio::time::Instant> {
    let end = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(end))?;
    // Past already (a clock step since verification): end at once.
    let left = end
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    if left > LONGEST {
        // A custom verifier's absurd `exp`: no timer that far.
        return None;
    }
    tokio::time::Instant::now().checked_add(left)
}

/// The furthest end a stream is given a timer for (verified tokens live
/// at most `max_token_lifetime`, 24 h by default).
const LONGEST: Duration = Duration::from_secs(366 * 86_400);

/// `response`, ended at `end` (Unix seconds, see [`end_of`]) if it is an
/// event stream.
pub(super) fn end_streams_at(response: Response, end: u64) -> Response {
    if !super::step_up::is_event_stream(&response) {
        return response;
    }
    let Some(deadline) = deadline(end) else {
        return response;
    };
    response.map(|body| {
        Body::new(EndAt {
            body,
            timer: tokio::time::sleep_until(deadline),
            deadline,
            ended: false,
        })
    })
}

pin_project_lite::pin_project! {
    /// A response body that ends, cleanly (the chunked encoding's last
    /// chunk, an HTTP/2 end of stream), when its timer fires. The inner
    /// body is dropped then, which tells the service that the client is
    /// gone (rmcp closes that stream's channel).
    struct EndAt {
        #[pin]
        body: Body,
        #[pin]
        timer: tokio::time::Sleep,
        // Read as well as the timer: a timer due now fires at the timer
        // wheel's next tick, and frames ready at once went out before it
        // (found from outside: a held legacy answer, ready after its token
        // expired, was delivered whole).
        deadline: tokio::time::Instant,
        ended: bool,
    }
}

impl http_body::Body for EndAt {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.timer.poll(cx).is_ready() || tokio::time::Instant::now() >= *this.deadline {
            *this.ended = true;
            tracing::debug!("ended an event stream: the token that opened it expired");
            return Poll::Ready(None);
        }
        this.body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // It may end early: no exact size.
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(0);
        if let Some(upper) = self.body.size_hint().upper() {
            hint.set_upper(upper);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(exp: Option<u64>) -> AuthContext {
        let b = AuthContext::builder("https://iss", "alice");
        match exp {
            Some(exp) => b.expires_at_unix(exp).build(),
            None => b.build(),
        }
    }

    // An answer ready only after its token expired (a held legacy answer,
    // whose head waits for the handler) delivers nothing, though its frames
    // are ready at once (found from outside: the timer, due now, fired at
    // the wheel's next tick, after the frames had gone out).
    #[tokio::test]
    async fn an_answer_past_its_end_delivers_nothing_even_when_ready() {
        let sse = || {
            Response::builder()
                .header(http::header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from("data: {\"result\":\"secret\"}\n\n"))
                .unwrap()
        };
        let now = crate::clock::now_unix();
        let ended = end_streams_at(sse(), now - 1);
        let bytes = axum::body::to_bytes(ended.into_body(), 1024).await.unwrap();
        assert!(bytes.is_empty(), "{bytes:?}");
        let open = end_streams_at(sse(), now + 60);
        let bytes = axum::body::to_bytes(open.into_body(), 1024).await.unwrap();
        assert!(!bytes.is_empty());
    }

    #[tokio::test]
    async fn a_stream_ends_at_exp_plus_the_leeway_and_never_overflows() {
        let now = crate::clock::now_unix();
        let start = tokio::time::Instant::now();
        let left = |d: Option<tokio::time::Instant>| d.map(|d| d.duration_since(start));
        // exp + leeway, within the clock's second.
        let at = |c: AuthContext, leeway| end_of(&c, leeway).and_then(deadline);
        let in_15 = left(at(ctx(Some(now + 10)), 5)).unwrap();
        assert!(in_15 > Duration::from_secs(13) && in_15 <= Duration::from_secs(16));
        // Past already: at once.
        let past = left(at(ctx(Some(now - 100)), 60)).unwrap();
        assert!(past < Duration::from_secs(1), "{past:?}");
        // No expiry, or an absurd one: no timer, no panic.
        assert_eq!(at(ctx(None), 60), None);
        for exp in [u64::MAX, u64::MAX - 1, 1 << 40, now + 400 * 86_400] {
            assert_eq!(at(ctx(Some(exp)), 300), None, "{exp}");
        }
    }
}
