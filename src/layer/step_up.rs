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
//!
//! Once the head has left (a notification came first, or holding is off:
//! [`hold_streams_for_step_up(false)`](crate::AuthConfigBuilder::hold_streams_for_step_up)),
//! the mark still holds: every later answer of the request is replaced
//! with the JSON-RPC step-up error for its id and its other messages are
//! dropped, even if the handler carried on after its failed
//! `require_scopes`. Events are judged whole whatever their framing (rmcp
//! writes one per frame; a wrapper between the layer and rmcp may split
//! or join them): once the handler asked, bytes are sent only for
//! complete events. Checking costs one atomic load per frame and keeping
//! its last three bytes.

use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::future::BoxFuture;
use http_body::Frame;
use http_body_util::BodyExt as _;

use super::Shared;
use crate::audit::{Event, Record, RequestMeta};
use crate::challenge::rejection_response;
use crate::context::AuthContext;
use crate::context::StepUp;
use crate::error::{AuthError, AuthErrorKind};

use super::http_rules::Refused;
use super::listens::ListenSlot;
use super::unsent::{Full, METERED_FROM, Meter, Metered};

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

/// What metering an admitted call's answer needs (`unsent`).
pub(super) struct Remeter {
    shared: Arc<Shared>,
    ctx: AuthContext,
    meta: Arc<RequestMeta>,
}

impl Remeter {
    /// `response` with a body of known size (a JSON answer, a rebuilt
    /// list) of [`METERED_FROM`] bytes or more counted before its head
    /// leaves and handed on in copies, or the refusal of a bound that is
    /// full (the answer dropped). A smaller one, or one of unknown size (a
    /// stream, whose frames are metered where it was settled), is left as
    /// it is.
    pub(super) fn meter(self, response: Response) -> Response {
        use http_body::Body as _;
        let Some(size) = response.body().size_hint().exact() else {
            return response;
        };
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size < METERED_FROM {
            return response;
        }
        let mut meter = Meter::new(Arc::clone(&self.shared.unsent), self.ctx.clone());
        if let Err(full) = meter.prepay(size) {
            return dropped(&self.shared, &self.ctx, &self.meta, full.refused());
        }
        response.map(|body| Body::new(Metered::new(body, meter)))
    }
}

/// The refusal `refused` in place of an answer dropped for a bound of the
/// caller's (`unsent`, the answer streams).
#[cold]
fn dropped(shared: &Shared, ctx: &AuthContext, meta: &RequestMeta, refused: Refused) -> Response {
    tracing::debug!(
        reason = refused.reason(),
        request_id = meta.request_id.as_str(),
        "dropped an answer: a bound of its user's or of the process is full"
    );
    shared.refused_by(refused, meta, Some(ctx))
}

impl StepUpCheck {
    /// What to answer once the inner service's response is known.
    pub(super) fn settle(self, response: Response) -> Settled {
        if self.slot.asked() {
            return Settled::Done(self.challenge());
        }
        if !is_event_stream(&response) {
            return Settled::Done(self.meter_answer(response));
        }
        let meter = self.meter();
        if !self.shared.hold_streams {
            let Some(stream) = self.answer_stream() else {
                return Settled::Done(draining(self.too_many_streams(), response.into_body()));
            };
            return Settled::Done(response.map(|rest| self.guard(Vec::new(), rest, meter, stream)));
        }
        Settled::Held(Box::pin(self.hold(response, meter)))
    }

    /// One of the caller's user's answer streams, taken as its head leaves
    /// (`max_answer_streams_per_principal`), or `None` at the cap.
    fn answer_stream(&self) -> Option<ListenSlot> {
        self.shared
            .answer_streams
            .open(super::sessions::user_key(&self.ctx))
    }

    /// The refusal of a stream past the user's cap (the answer dropped).
    fn too_many_streams(&self) -> Response {
        dropped(
            &self.shared,
            &self.ctx,
            &self.meta,
            Refused::TooManyAnswerStreams,
        )
    }

    /// The metering of this call's answer (`unsent`).
    fn meter(&self) -> Meter {
        Meter::new(Arc::clone(&self.shared.unsent), self.ctx.clone())
    }

    /// A complete answer (JSON): as it is when small, else counted before
    /// its head leaves and handed on in copies, or the refusal of a bound
    /// that is full (the answer dropped).
    fn meter_answer(&self, response: Response) -> Response {
        use http_body::Body as _;
        let hint = response.body().size_hint();
        // The common answer: small, known so before anything is cloned.
        if hint
            .upper()
            .is_some_and(|upper| upper < METERED_FROM as u64)
        {
            return response;
        }
        if hint.exact().is_some() {
            return self.remeter().meter(response);
        }
        // Of unknown size: its frames are metered as they come.
        let meter = self.meter();
        response.map(|body| Body::new(Metered::new(body, meter)))
    }

    /// The metering of this call's answer once a later step rebuilt it
    /// (list filtering, a task's recording read it whole).
    pub(super) fn remeter(&self) -> Remeter {
        Remeter {
            shared: Arc::clone(&self.shared),
            ctx: self.ctx.clone(),
            meta: Arc::clone(&self.meta),
        }
    }

    /// The refusal of an answer dropped for a full bound of `unsent`.
    fn unsent_full(&self, full: Full) -> Response {
        dropped(&self.shared, &self.ctx, &self.meta, full.refused())
    }

    /// The body of a stream whose head leaves now: `front` (frames read
    /// while holding), then `rest`, answers replaced once the handler asks,
    /// large frames metered.
    fn guard(
        self,
        front: Vec<Result<Frame<Bytes>, axum::Error>>,
        rest: Body,
        meter: Meter,
        stream: ListenSlot,
    ) -> Body {
        Body::new(Guarded {
            front: front.into_iter(),
            rest,
            check: self,
            counted: false,
            tail: b"\n\n".to_vec(),
            pending: Vec::new(),
            partial: None,
            meter,
            _stream: stream,
        })
    }

    /// Reads the stream's frames up to its first event with data, then
    /// decides: the challenge if the handler asked by then (nothing was
    /// sent), else the stream with the frames read put back in front.
    /// The frames held are counted as they are read (`unsent`): past a
    /// bound, the answer is dropped for its refusal, its head not sent.
    async fn hold(self, response: Response, mut meter: Meter) -> Response {
        let (parts, mut body) = response.into_parts();
        let mut held: Vec<Result<Frame<Bytes>, axum::Error>> = Vec::new();
        let mut scan = FirstData::default();
        while let Some(item) = body.frame().await {
            let stop = match &item {
                Ok(frame) => {
                    if let Err(full) = meter.prepay_frame(frame) {
                        return draining(self.unsent_full(full), body);
                    }
                    frame.data_ref().is_some_and(|data| scan.feed(data))
                }
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
        let Some(stream) = self.answer_stream() else {
            return draining(self.too_many_streams(), body);
        };
        Response::from_parts(parts, self.guard(held, body, meter, stream))
    }

    /// Whether everything the handler asked for may be named in a
    /// challenge (else the refusal is `requirement_failed`).
    fn kind(needed: &[String]) -> AuthErrorKind {
        if needed.iter().all(|s| crate::requirement::is_scope_token(s)) {
            AuthErrorKind::InsufficientScope
        } else {
            AuthErrorKind::RequirementFailed
        }
    }

    /// Counts and audits the refusal of a request answered in its stream.
    fn refused_in_stream(&self, needed: &[String]) {
        let kind = Self::kind(needed);
        self.shared.outcomes.reject(kind.code());
        self.shared.audit.emit(&Record {
            meta: Some(&self.meta),
            ctx: Some(&self.ctx),
            needed: if kind == AuthErrorKind::InsufficientScope {
                needed
            } else {
                &[]
            },
            ..Record::new(
                Event::AuthzRefused,
                kind.code(),
                None,
                &self.shared.document.resource,
            )
        });
        tracing::debug!(
            reason = kind.code(),
            "late step-up after the response head left: the request's answers are replaced with the JSON-RPC error"
        );
    }

    /// The 403 for everything the operation needs; 500 when the handler
    /// asked for something a challenge cannot name (`offline_access`, or
    /// not a scope token), as for a computed requirement that returns it.
    fn challenge(&self) -> Response {
        let needed = self.slot.needed();
        let kind = Self::kind(&needed);
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
        tracing::debug!(
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

/// `refusal`, in place of a call's event stream (`rest`, rmcp's body) cut
/// short while its handler may still run: `rest` is read to its end and
/// dropped frame by frame by a task of its own (so that what the handler
/// sends next is not kept, whether or not the client reads), and the
/// refusal's body ends only then. The server counts a call against its
/// connection's stream limit until its answer's body ends (McpServer's
/// stream slots): a refusal that ended at once would let a client start
/// handlers without bound, each refused call's handler running on.
fn draining(refusal: Response, rest: Body) -> Response {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut rest = rest;
        while let Some(Ok(_)) = rest.frame().await {}
        drop(done);
    });
    refusal.map(|body| {
        Body::new(ThenFinished {
            body,
            finished,
            ended: false,
        })
    })
}

/// A body that ends once its own frames are out and `finished` fires (see
/// [`draining`]).
struct ThenFinished {
    body: Body,
    finished: tokio::sync::oneshot::Receiver<()>,
    ended: bool,
}

impl http_body::Body for ThenFinished {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if !this.ended {
            match std::task::ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                None => this.ended = true,
                other => return Poll::Ready(other),
            }
        }
        // Dropped or sent: the handler's stream has ended either way.
        std::task::ready!(Pin::new(&mut this.finished).poll(cx)).ok();
        Poll::Ready(None)
    }
}

/// An event stream whose head has left: the frames read while holding,
/// then the rest. Once the handler asked for scopes, each later frame is
/// judged (see [`replacement`]): the request's answers become the step-up
/// error, its other messages are dropped.
struct Guarded {
    front: std::vec::IntoIter<Result<Frame<Bytes>, axum::Error>>,
    rest: Body,
    check: StepUpCheck,
    /// The refusal was counted and audited (once per request).
    counted: bool,
    /// The last (up to 3) bytes sent as they were: whether they ended an
    /// event (a blank line). rmcp writes one event per frame, but a wrapper
    /// between the layer and rmcp (a proxy, a re-chunking body) may split
    /// or join events.
    tail: Vec<u8>,
    /// Once the handler asked: what was read of an event not yet ended,
    /// judged when its blank line arrives (never sent as it is).
    pending: Vec<u8>,
    /// Once the handler asked mid-event: how many bytes in front of
    /// `pending` were sent already (put back to find the event's end).
    /// The rest of that event is sent as it is: its head left before the
    /// ask, so all of it was written before (a frame carrying anything
    /// the handler sent after asking is read after the mark is set).
    partial: Option<usize>,
    /// Large frames counted until handed on, in copies (`unsent`).
    meter: Meter,
    /// One of the user's answer streams, given back with the body: what
    /// rmcp keeps for a stream whose head has left (the answer after a
    /// notification) cannot be counted in bytes here, so such streams are
    /// counted (`max_answer_streams_per_principal`).
    _stream: ListenSlot,
}

impl Guarded {
    /// A frame handed on: through the meter (a large one counted and
    /// copied out in chunks; past a bound, the stream ends with an error).
    fn out(&mut self, frame: Frame<Bytes>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Poll::Ready(Some(self.meter.pass(frame).map_err(|full| {
            tracing::debug!(
                reason = full.refused().reason(),
                request_id = self.check.meta.request_id.as_str(),
                "ended an event stream: {full}"
            );
            self.check.shared.outcomes.reject(full.refused().reason());
            axum::Error::new(full)
        })))
    }

    /// Notes where a frame sent as it is (before the handler asked) ended.
    fn passed(&mut self, frame: &Frame<Bytes>) {
        if let Some(data) = frame.data_ref() {
            let keep = data.len().min(3);
            self.tail
                .extend_from_slice(data.get(data.len() - keep..).unwrap_or_default());
            let over = self.tail.len().saturating_sub(3);
            self.tail.drain(..over);
        }
    }

    /// Judges every complete event in `pending` (see [`replacement`]);
    /// what is to be sent, if anything. An event's end is a blank line
    /// (LF LF or LF CR LF); an event with lines ended by CR alone never
    /// ends here, and is dropped with the stream's end.
    fn judge_complete_events(&mut self) -> Option<Bytes> {
        let mut out: Vec<u8> = Vec::new();
        let needed = self.check.slot.needed();
        while let Some(end) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            if let Some(sent) = self.partial.take() {
                // The rest of an event whose head left before the ask.
                out.extend_from_slice(event.get(sent..).unwrap_or_default());
                continue;
            }
            match replacement(&event, &needed) {
                Judged::Pass => out.extend_from_slice(&event),
                Judged::Drop => {}
                Judged::Replace(bytes) => {
                    if !self.counted {
                        self.counted = true;
                        self.check.refused_in_stream(&needed);
                    }
                    out.extend_from_slice(&bytes);
                }
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

impl Drop for Guarded {
    /// A handler that asked and failed is a refusal whether or not its
    /// answer ever came through here: a client that left first (or a
    /// handler that never answered) still leaves it counted and audited.
    fn drop(&mut self) {
        if !self.counted && self.check.slot.asked() {
            self.counted = true;
            self.check.refused_in_stream(&self.check.slot.needed());
        }
    }
}

/// Whether `bytes` end an event: a blank line (a CR alone at the end may
/// be the first half of a CRLF, so it is not taken as an end).
pub(super) fn ends_event(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\n\n") || bytes.ends_with(b"\n\r\n")
}

/// Where the first event in `bytes` ends (just past its blank line).
pub(super) fn event_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = bytes.get(from..)?.iter().position(|&b| b == b'\n') {
        let lf = from + at;
        match (bytes.get(lf + 1), bytes.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => from = lf + 1,
        }
    }
    None
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.meter.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(item) = this.front.next() {
            // Read before the handler asked (else the head was a 403).
            return match item {
                Ok(frame) => {
                    this.passed(&frame);
                    this.out(frame)
                }
                Err(e) => Poll::Ready(Some(Err(e))),
            };
        }
        loop {
            let frame = match std::task::ready!(Pin::new(&mut this.rest).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                // What is left of an event never ended is dropped.
                other => return Poll::Ready(other),
            };
            // Acquire: the handler marked the slot before it sent the
            // message this frame carries.
            if this.pending.is_empty() && this.partial.is_none() && !this.check.slot.asked() {
                this.passed(&frame);
                return this.out(frame);
            }
            let Some(data) = frame.data_ref() else {
                continue;
            };
            if this.pending.is_empty() && this.partial.is_none() && !this.tail.is_empty() {
                // The first bytes after the ask: if what was sent stopped
                // inside an event, the bytes sent last are put in front to
                // find that event's end.
                let tail = std::mem::take(&mut this.tail);
                if !ends_event(&tail) {
                    this.partial = Some(tail.len());
                    this.pending = tail;
                }
            }
            this.pending.extend_from_slice(data);
            if let Some(out) = this.judge_complete_events() {
                return this.out(Frame::data(out));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.meter.is_done() && self.front.len() == 0 && self.rest.is_end_stream()
    }
}

/// What becomes of one event of a request whose handler asked for scopes.
#[derive(Debug, PartialEq)]
enum Judged {
    /// No data (a priming event, a comment): harmless, sent.
    Pass,
    /// A message that is not an answer (a notification), or data that is
    /// not one JSON-RPC message: dropped.
    Drop,
    /// An answer: this event, its data the step-up error for its id.
    Replace(Bytes),
}

/// Judges one whole SSE event (up to and with its blank line) of a request
/// whose handler asked for `needed`: an answer (`id` with `result` or
/// `error`) becomes the JSON-RPC error a handler's `require_scopes` returns
/// (`-32600`, `insufficient_scope`), or `-32603` when a scope cannot be
/// named (as the 500 `requirement_failed` would); the event's other fields
/// (`id:`, `event:`) are kept.
fn replacement(event: &[u8], needed: &[String]) -> Judged {
    let Ok(text) = std::str::from_utf8(event) else {
        return Judged::Drop;
    };
    if text.replace("\r\n", "").contains('\r') {
        // Lines ended by CR alone: not what rmcp writes, so not read here.
        return Judged::Drop;
    }
    let mut data = String::new();
    let mut fields = String::new();
    let mut has_data = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if let Some(value) = bare.strip_prefix("data:") {
            if has_data {
                data.push('\n');
            }
            has_data = true;
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        } else if !bare.is_empty() {
            fields.push_str(bare);
            fields.push('\n');
        }
    }
    if data.trim().is_empty() {
        return Judged::Pass;
    }
    let Ok(serde_json::Value::Object(message)) = serde_json::from_str::<serde_json::Value>(&data)
    else {
        return Judged::Drop;
    };
    let Some(id) = message.get("id") else {
        return Judged::Drop;
    };
    if !(message.contains_key("result") || message.contains_key("error")) {
        // A request the server sends the client (sampling, elicitation).
        return Judged::Drop;
    }
    let error = if StepUpCheck::kind(needed) == AuthErrorKind::InsufficientScope {
        let scope = needed.join(" ");
        serde_json::json!({
            "code": -32600,
            "message": format!("insufficient_scope: this operation needs the scope(s) {scope}"),
            "data": {"error": "insufficient_scope", "scope": scope},
        })
    } else {
        serde_json::json!({
            "code": -32603,
            "message": "server_error: the operation's requirement cannot be met",
            "data": {"error": "server_error", "reason": "requirement_failed"},
        })
    };
    let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error});
    fields.push_str("data: ");
    fields.push_str(&answer.to_string());
    fields.push_str("\n\n");
    Judged::Replace(Bytes::from(fields))
}

/// What an answer's `Content-Type` says it carries, read without a copy:
/// an event stream, JSON, or something else (no type, or not text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AnswerKind {
    EventStream,
    Json,
    Other,
}

/// The [`AnswerKind`] of an answer with these headers.
pub(super) fn answer_kind(headers: &http::HeaderMap) -> AnswerKind {
    let value = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .as_bytes();
    let starts = |prefix: &[u8]| {
        value
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    if starts(b"text/event-stream") {
        AnswerKind::EventStream
    } else if starts(b"application/json") {
        AnswerKind::Json
    } else {
        AnswerKind::Other
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
    use super::{FirstData, Judged, ends_event, event_end, replacement};

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    fn replaced(event: &str, needed: &[&str]) -> serde_json::Value {
        match replacement(event.as_bytes(), &scopes(needed)) {
            Judged::Replace(bytes) => {
                let text = std::str::from_utf8(&bytes).unwrap();
                assert!(text.ends_with("\n\n"), "{text:?}");
                let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                serde_json::from_str(data).unwrap()
            }
            other => panic!("{event:?}: {other:?}"),
        }
    }

    #[test]
    fn after_a_step_up_answers_are_replaced_and_the_rest_dropped() {
        let needed = ["mcp", "notes:export"];
        // An answer: the step-up error for its id, whatever it said.
        let v = replaced(
            "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"secret\":1}}\n\n",
            &needed,
        );
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32600);
        assert_eq!(
            v["error"]["data"],
            serde_json::json!({"error": "insufficient_scope", "scope": "mcp notes:export"})
        );
        assert!(v.get("result").is_none());
        // A string id, an error answer, CRLF lines, a data field split in
        // two lines, the event's own id kept.
        let event =
            "id: 0/4\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":\"x\",\"error\":{}}\r\n\r\n";
        let Judged::Replace(bytes) = replacement(event.as_bytes(), &scopes(&needed)) else {
            panic!()
        };
        assert!(bytes.starts_with(b"id: 0/4\ndata: "), "{bytes:?}");
        assert_eq!(replaced(event, &needed)["id"], "x");
        // A scope no challenge may name: the server error, never the text.
        let v = replaced("data: {\"id\":1,\"result\":{}}\n\n", &["offline_access"]);
        assert_eq!(v["error"]["code"], -32603);
        assert!(!v.to_string().contains("offline_access"), "{v}");
        // Nothing to judge: a priming event, a comment.
        for pass in ["id: 0\ndata:\n\n", ": keep-alive\n\n", "retry: 3000\n\n"] {
            assert_eq!(
                replacement(pass.as_bytes(), &scopes(&needed)),
                Judged::Pass,
                "{pass:?}"
            );
        }
        // Dropped: notifications, requests to the client, what cannot be
        // read (not JSON, not UTF-8, lines ended by CR alone).
        for drop in [
            &b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"[..],
            b"data: {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"sampling/createMessage\"}\n\n",
            b"data: {\"id\":1,\"result\n\n",
            b"data: [{\"id\":1,\"result\":{}}]\n\n",
            b"data: \xff{\"id\":1}\n\n",
            b"id: 1\rdata: {\"id\":1,\"result\":{}}\r\r",
        ] {
            assert_eq!(
                replacement(drop, &scopes(&needed)),
                Judged::Drop,
                "{:?}",
                String::from_utf8_lossy(drop)
            );
        }
    }

    #[test]
    fn events_end_at_a_blank_line_whatever_the_framing() {
        assert_eq!(event_end(b"data: {}\n\n"), Some(10));
        assert_eq!(event_end(b"data: {}\r\n\r\ndata: x"), Some(12));
        assert_eq!(event_end(b"data: {}\n\ndata: x\n\n"), Some(10));
        assert_eq!(event_end(b"\n\ndata: x"), Some(2));
        for open in [&b"data: {}\n"[..], b"data: {}\r\n\r", b"data: {}\r\r", b""] {
            assert_eq!(event_end(open), None, "{open:?}");
        }
        assert!(ends_event(b"}\n\n") && ends_event(b"\n\r\n"));
        assert!(!ends_event(b"\r\n\r") && !ends_event(b"}\n") && !ends_event(b"\n"));
    }

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
