//! Late step-up on the response side: a handler that asked for more scopes
//! ([`AuthContext::require_scopes`](crate::AuthContext::require_scopes))
//! before any byte of its response left gets a real HTTP 403
//! `insufficient_scope` challenge instead of its JSON-RPC error.
//!
//! A JSON response is complete when the inner service returns it, so the
//! slot is read once. An SSE response (legacy sessions; a stateless call
//! whose handler streamed a notification first) has its headers held until
//! its first event with data: rmcp sends the handler's first message as
//! that event, so if the handler asked before sending anything, the slot
//! is filled by then. Events without data (the priming event of a
//! resumable stream) pass while held. No body byte is copied: the frames
//! read while holding are handed on as they are.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;

use super::Shared;
use crate::audit::{Event, Record, RequestMeta};
use crate::challenge::rejection_response;
use crate::context::AuthContext;
use crate::context::StepUp;
use crate::error::{AuthError, AuthErrorKind};

/// The step-up slot of one admitted POST, with what answering needs.
pub(super) struct StepUpCheck {
    pub(super) shared: Arc<Shared>,
    pub(super) slot: Arc<StepUp>,
    /// The request, for the audit event and the error body.
    pub(super) meta: Arc<RequestMeta>,
    /// The caller, for the audit event.
    pub(super) ctx: AuthContext,
}

/// The response, or the future that decides it (an SSE stream held until
/// its first event with data).
pub(super) enum Settled {
    Done(Response),
    Held(BoxFuture<'static, Response>),
}

impl StepUpCheck {
    /// What to answer once the inner service's response is known.
    pub(super) fn settle(self, response: Response) -> Settled {
        if self.slot.asked() {
            return Settled::Done(self.challenge());
        }
        if !is_event_stream(&response) {
            return Settled::Done(response);
        }
        Settled::Held(Box::pin(self.hold(response)))
    }

    /// Reads the stream's frames up to its first event with data, then
    /// decides: the challenge if the handler asked by then (nothing was
    /// sent), else the stream with the frames read put back in front.
    async fn hold(self, response: Response) -> Response {
        let (parts, body) = response.into_parts();
        let mut stream = body.into_data_stream();
        let mut held: Vec<Result<Bytes, axum::Error>> = Vec::new();
        let mut scan = FirstData::default();
        while let Some(item) = stream.next().await {
            let stop = match &item {
                Ok(data) => scan.feed(data),
                Err(_) => true,
            };
            held.push(item);
            if stop {
                break;
            }
        }
        if self.slot.asked() {
            return self.challenge();
        }
        let front = futures_util::stream::iter(held);
        Response::from_parts(parts, Body::from_stream(front.chain(stream)))
    }

    /// The 403 for everything the operation needs; 500 when the handler
    /// asked for something a challenge cannot name (`offline_access`, or
    /// not a scope token), as for a computed requirement that returns it.
    fn challenge(&self) -> Response {
        let needed = self.slot.needed();
        let kind = if needed.iter().all(|s| crate::requirement::is_scope_token(s)) {
            AuthErrorKind::InsufficientScope
        } else {
            AuthErrorKind::RequirementFailed
        };
        self.shared.outcomes.reject(kind.code());
        self.shared.audit.emit(&Record {
            meta: Some(&self.meta),
            ctx: Some(&self.ctx),
            needed: if kind == AuthErrorKind::InsufficientScope {
                &needed
            } else {
                &[]
            },
            ..Record::new(
                Event::AuthzRefused,
                kind.code(),
                Some(kind.status().as_u16()),
                &self.shared.document.resource,
            )
        });
        if kind == AuthErrorKind::RequirementFailed {
            // The handler's text is not logged (it is not a scope).
            tracing::error!(
                reason = kind.code(),
                status = 500,
                "late step-up: the handler asked for offline_access or a text that is not a scope token; refused"
            );
            return rejection_response(
                &kind.into(),
                &self.shared.challenge,
                Some(self.meta.request_id.as_str()),
                self.ctx.is_dpop_bound(),
            );
        }
        tracing::info!(
            reason = kind.code(),
            status = 403,
            required = %needed.join(" "),
            "late step-up: the handler needs scopes the token lacks"
        );
        rejection_response(
            &AuthError::insufficient_scope(needed),
            &self.shared.challenge,
            Some(self.meta.request_id.as_str()),
            self.ctx.is_dpop_bound(),
        )
    }
}

pub(super) fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .get(..17)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"text/event-stream"))
        })
}

/// Finds the first `data:` field with content in an SSE stream read in
/// pieces (HTML Living Standard, server-sent events: lines end in CR, LF
/// or CRLF; a field is `name:value` with one optional space).
#[derive(Default)]
struct FirstData {
    /// How much of `data:` the current line has matched.
    matched: usize,
    /// Inside a `data:` value (after the colon).
    in_value: bool,
    /// Inside another line, skipped to its end.
    skipping: bool,
}

impl FirstData {
    const FIELD: &'static [u8] = b"data:";

    /// Feeds the next bytes; true once a `data:` value has a character
    /// other than a space.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            let end_of_line = b == b'\n' || b == b'\r';
            if self.in_value {
                if end_of_line {
                    self.in_value = false;
                    self.matched = 0;
                } else if b != b' ' {
                    return true;
                }
            } else if self.skipping {
                if end_of_line {
                    self.skipping = false;
                    self.matched = 0;
                }
            } else if Self::FIELD.get(self.matched) == Some(&b) {
                self.matched += 1;
                self.in_value = self.matched == Self::FIELD.len();
            } else if end_of_line {
                self.matched = 0;
            } else {
                self.skipping = true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::FirstData;

    fn found(pieces: &[&str]) -> bool {
        let mut scan = FirstData::default();
        pieces.iter().any(|p| scan.feed(p.as_bytes()))
    }

    #[test]
    fn first_data_event() {
        assert!(found(&["data: {\"jsonrpc\":\"2.0\"}\n\n"]));
        assert!(found(&["da", "ta", ":", " ", "x"]));
        assert!(found(&["id: 1\r\nretry: 100\r\ndata:x\r\n\r\n"]));
        // A priming event: an id and an empty data field.
        assert!(!found(&["id: 0\ndata:\n\n"]));
        assert!(!found(&["id: 0\ndata: \r\n\r\n", ": comment data: x\n"]));
        assert!(!found(&["event: data: x\n", "xdata: y\n"]));
        assert!(found(&["id: 0\ndata:\n\n", "data: {}\n\n"]));
        assert!(!found(&[""]));
    }
}
