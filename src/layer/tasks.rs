//! MCP tasks (SEP-2663, `io.modelcontextprotocol/tasks`) bound to the
//! principal that created them.
//!
//! rmcp's `TaskManager` keys a task by a random id only, and `tasks/get`
//! answers the tool's result to whoever names that id. The layer binds
//! each task to its creator: it reads the `taskId` of every task a
//! `tools/call` answer creates (a JSON answer, or an event of an SSE
//! stream, before it leaves) and records the owner (the principal digest
//! legacy sessions use: issuer, subject, client id, tenant) and the scopes
//! the creating call needed. A stateless (2026-07-28) `tools/call` is
//! read so only when its `params._meta` client capabilities declare the
//! tasks extension: rmcp's `ServerHandler` lets no handler answer an
//! undeclared one with a task, so its answer leaves unread; a task a
//! service creates anyway (skipping that check) has no owner and is
//! unknown to everyone (fail closed). A legacy call is always read (its
//! client declares in `initialize`, which the request does not show).
//! A `tasks/get`, `tasks/update` or `tasks/cancel` naming a task is then:
//!
//! - answered as rmcp answers an unknown task (JSON-RPC `-32602`,
//!   `unknown task: <id>`) when the caller is not the owner, or the task
//!   has no recorded owner: nothing tells another principal the task
//!   exists (counted and audited with reason `unknown_task`);
//! - held to the creating call's scopes too when the caller is the owner,
//!   so a narrower token of the owner gets the usual 403
//!   `insufficient_scope` step-up before it reads the result.
//!
//! Owners live in the shared store when one is configured
//! ([`AuthConfigBuilder::shared_store`](crate::AuthConfigBuilder::shared_store):
//! key `mcp_oauth2:task:<SHA-256 of the id>`, so replicas agree), else in
//! a private bounded [`MemoryStore`](crate::store::MemoryStore) (100,000
//! entries, least useful evicted first). A binding expires after twice
//! the task's `ttlMs` (rmcp fails a task at its TTL and keeps a finished
//! one a TTL longer), at most [`LONGEST_BINDING`] (also for a task without
//! a TTL); a task whose binding is gone is answered as unknown to everyone
//! (fail closed). A store that does not answer refuses the task request
//! (503 `temporarily_unavailable`, reason `store_unavailable`); a new
//! task whose owner cannot be recorded is never shown to its creator (the
//! JSON answer becomes that 503; in an SSE stream its event is replaced
//! by a JSON-RPC `-32603` error for the request).
//!
//! A task's work runs after its creating call has answered, with the
//! caller's [`AuthContext`] if the tool handed it on: a late
//! [`AuthContext::require_scopes`] there (late step-up) marks the creating
//! call's step-up slot, which no answer reads any more. The process that
//! created a task keeps that slot with the binding ([`TaskAsks`]), and a
//! `tasks/*` request for the task needs every scope the work asked for
//! too (403 `insufficient_scope` naming them), even if the work carried
//! on after its failed check. Only the process running the task's work
//! sees its asks: replicas answering `tasks/get` for another's task (a
//! shared `TaskManager`) hold it to the creating call's scopes alone.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::Shared;
use super::http_rules::Refused;
use super::service::Seen;
use super::sessions::{Owner, principal_key};
use super::step_up::AnswerKind;
use crate::audit::{Event, Record};
use crate::context::AuthContext;
use crate::context::StepUp;
use crate::store::SharedStore;

/// The namespace of task owners in the store.
const TASK_NS: &str = "mcp_oauth2:task:";

/// The longest a task stays bound (24 hours): also the binding of a task
/// without a TTL. Past it, the task is answered as unknown.
pub(crate) const LONGEST_BINDING: Duration = Duration::from_secs(24 * 3600);

/// Cap on an answer buffered to read the tasks it creates (JSON), or on
/// one event of a stream (SSE).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The methods that name a task by `params.taskId`.
fn names_a_task(method: &str) -> bool {
    matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel")
}

/// The step-up slots of the calls that created this process's tasks, by
/// the task's store key, each until its binding expires: the scopes a
/// task's work asked for after its creating call answered (see the
/// module documentation), and the task's owner as this process bound it
/// (a shared store's value that names someone else never overrides it).
/// Bounded like the memory store of owners.
#[derive(Default)]
pub(super) struct TaskAsks(std::sync::Mutex<std::collections::HashMap<String, TaskAsk>>);

/// What [`TaskAsks`] keeps of one task.
struct TaskAsk {
    slot: Arc<StepUp>,
    owner: Owner,
    until: std::time::Instant,
}

/// The most tasks whose slots are kept at once.
const MAX_TASK_ASKS: usize = 100_000;

impl TaskAsks {
    /// Keeps `slot` for the task `key` for `ttl`; `false` when full of
    /// live tasks (the task is then withheld: fail closed).
    fn remember(&self, key: String, owner: Owner, slot: &Arc<StepUp>, ttl: Duration) -> bool {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if map.len() >= MAX_TASK_ASKS {
            map.retain(|_, ask| ask.until > now);
        }
        if map.len() >= MAX_TASK_ASKS {
            return false;
        }
        map.insert(
            key,
            TaskAsk {
                slot: Arc::clone(slot),
                owner,
                until: now + ttl,
            },
        );
        true
    }

    /// What this process knows of the task `key` it created: its owner,
    /// and everything its creating call and its work need when the work
    /// asked for more.
    fn local(&self, key: &str) -> Option<(Owner, Option<Vec<String>>)> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ask = map.get(key)?;
        (ask.until > std::time::Instant::now())
            .then(|| (ask.owner, ask.slot.asked().then(|| ask.slot.needed())))
    }
}

/// What a request's body says about tasks.
#[derive(Debug, Default, Clone)]
pub(super) struct TaskWork {
    /// The task ids its `tasks/*` requests name (decoded JSON strings).
    pub(super) named: Vec<String>,
    /// Whether it holds a `tools/call` that may create a task (its answer
    /// is read for the tasks it creates).
    pub(super) creates: bool,
    /// Whether it declares the tasks extension in its own `params._meta`
    /// (then a call may create a task in any session).
    pub(super) declared: bool,
    /// The raw JSON-RPC id of a single request, for a refusal's answer.
    pub(super) request_id: Option<String>,
}

impl TaskWork {
    /// `may_create`: whether the body's `tools/call` requests may be
    /// answered with a task (see `Shared::required_for`).
    pub(super) fn of(ops: &[crate::scope::Operation], body: &[u8], may_create: bool) -> Self {
        let mut work = Self::default();
        for op in ops {
            if names_a_task(op.method()) {
                work.named.extend(op.targets().iter().cloned());
            } else if op.method() == "tools/call" {
                work.creates = may_create;
            }
        }
        if !work.named.is_empty() {
            work.request_id = super::operations::single_request_id(body);
        }
        work
    }
}

/// A task's key in the store: a hash of its id.
fn store_key(task_id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, task_id.as_bytes());
    crate::store::hashed_key(TASK_NS, digest.as_ref())
}

/// The stored value: the owner's digest, then the creating call's scopes
/// separated by spaces (a scope token has none).
fn encode(owner: &Owner, scopes: &[String]) -> Vec<u8> {
    let mut value = owner.to_vec();
    value.extend_from_slice(scopes.join(" ").as_bytes());
    value
}

fn decode(value: &[u8]) -> Option<(&[u8], Vec<String>)> {
    let owner = value.get(..32)?;
    let scopes = std::str::from_utf8(value.get(32..)?).ok()?;
    Some((
        owner,
        scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    ))
}

/// Why a task request is not passed on.
pub(super) enum TaskRefusal {
    /// Not the caller's task (or unknown): answered as rmcp answers an
    /// unknown task id.
    Unknown(String),
    /// The store did not answer.
    Unavailable,
}

impl TaskRefusal {
    pub(super) fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

impl Shared {
    /// Checks the tasks `named` belong to `ctx`; `Ok`: the scopes their
    /// creating calls needed, which the request needs too.
    pub(super) async fn check_tasks(
        &self,
        named: &[String],
        ctx: &AuthContext,
    ) -> Result<Vec<String>, TaskRefusal> {
        let owner = principal_key(ctx);
        let mut scopes = Vec::new();
        for id in named {
            let found = match self.task_store.get(&store_key(id)).await {
                Ok(found) => found,
                Err(e) => {
                    self.throttle.count_store_error("tasks");
                    crate::store::log_store_error!(&e, error = %e, reason = "store_unavailable", "refused a task request: the task owner store did not answer (fail closed)");
                    return Err(TaskRefusal::Unavailable);
                }
            };
            match found.as_deref().and_then(decode) {
                Some((who, needed)) if who == owner.as_slice() => {
                    // A task this process bound to someone else stays
                    // theirs whatever the store says (its values are plain
                    // owner digests a writer to it could copy; found from
                    // outside for sessions).
                    let local = self.task_asks.local(&store_key(id));
                    if local.as_ref().is_some_and(|(bound, _)| *bound != owner) {
                        return Err(TaskRefusal::Unknown(id.clone()));
                    }
                    crate::scope::extend_unique(&mut scopes, &needed);
                    if let Some((_, Some(asked))) = local {
                        crate::scope::extend_unique(&mut scopes, &asked);
                    }
                }
                _ => return Err(TaskRefusal::Unknown(id.clone())),
            }
        }
        Ok(scopes)
    }

    /// The answer to a refused task request: what rmcp answers for a task
    /// that does not exist (counted and audited), or 503.
    pub(super) fn refuse_task(
        &self,
        refusal: TaskRefusal,
        work: &TaskWork,
        stateless: bool,
        seen: &Seen,
        ctx: &AuthContext,
        req: &http::Request<Body>,
    ) -> Response {
        let id = match refusal {
            TaskRefusal::Unavailable => {
                return self.refuse_caller(Refused::TaskStoreUnavailable, req, &seen.meta, ctx);
            }
            TaskRefusal::Unknown(id) => id,
        };
        // HTTP 200 but for a stateless request (see `unknown_task_answer`).
        let (status, message) = unknown_task_answer(&id, work, self.service_tasks, stateless);
        self.outcomes.reject("unknown_task");
        self.audit.emit(&Record {
            meta: Some(&seen.meta),
            ctx: Some(ctx),
            ..Record::new(
                Event::AuthzRefused,
                "unknown_task",
                Some(status.as_u16()),
                &self.document.resource,
            )
        });
        tracing::debug!(
            reason = "unknown_task",
            request_id = seen.request_id(),
            "refused a task request: the task is not the caller's"
        );
        // As rmcp: a stateless answer other than 200 is JSON, whatever the
        // response mode; in a legacy session, an event.
        if stateless && (self.service_json || status != StatusCode::OK) {
            (
                status,
                [(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                message,
            )
                .into_response()
        } else {
            (
                status,
                [(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                )],
                format!("data: {message}\n\n"),
            )
                .into_response()
        }
    }
}

/// Records the owner of every task an answer creates, before the answer
/// leaves.
pub(super) struct TaskRecorder {
    pub(super) store: Arc<dyn SharedStore>,
    pub(super) owner: Owner,
    /// The scopes the creating call needed.
    pub(super) scopes: Vec<String>,
    pub(super) shared: Arc<Shared>,
    pub(super) meta: Arc<crate::audit::RequestMeta>,
    /// The creating call's step-up slot, kept with each task it creates.
    pub(super) slot: Option<Arc<StepUp>>,
}

/// A task an answer creates: its id and how long it lives.
fn created_task(message: &Value) -> Option<(&str, Duration)> {
    let result = message.get("result")?;
    if result.get("resultType")?.as_str()? != "task" {
        return None;
    }
    let id = result.get("taskId")?.as_str()?;
    let ttl = result
        .get("ttlMs")
        .and_then(Value::as_u64)
        .map_or(LONGEST_BINDING, |ms| {
            Duration::from_millis(ms.saturating_mul(2)).min(LONGEST_BINDING)
        });
    Some((id, ttl))
}

/// Whether `bytes` may hold an answer that creates a task: a
/// `resultType` member whose value is `"task"` (whitespace allowed
/// around the colon). Every 2026-07-28 result has a `resultType`, so the
/// value is what tells; only such bytes are parsed. A spelling this does
/// not see (a member name written with escapes, which no serializer
/// writes) leaves the task unbound: answered as unknown to everyone,
/// its creator included (fail closed).
fn mentions_a_task(bytes: &[u8]) -> bool {
    // Built once: building a searcher costs more than searching an answer.
    static RESULT_TYPE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"resultType"));
    RESULT_TYPE.find_iter(bytes).any(|at| {
        let mut rest = bytes.get(at + b"resultType".len()..).unwrap_or_default();
        let skip = |r: &mut &[u8], what: &[u8]| {
            while let Some((b, tail)) = r.split_first() {
                if !what.contains(b) {
                    break;
                }
                *r = tail;
            }
        };
        // The name's closing quote, then `:` between any whitespace.
        if rest.first() != Some(&b'"') {
            return false;
        }
        rest = rest.get(1..).unwrap_or_default();
        skip(&mut rest, b" \t\r\n");
        if rest.first() != Some(&b':') {
            return false;
        }
        rest = rest.get(1..).unwrap_or_default();
        skip(&mut rest, b" \t\r\n");
        rest.starts_with(b"\"task\"")
    })
}

impl TaskRecorder {
    /// Records the tasks `messages` create; `false`: one could not be.
    async fn record(&self, messages: &[Value]) -> bool {
        for message in messages {
            let Some((id, ttl)) = created_task(message) else {
                continue;
            };
            let value = encode(&self.owner, &self.scopes);
            let key = store_key(id);
            let kept = self.slot.as_ref().is_none_or(|slot| {
                self.shared
                    .task_asks
                    .remember(key.clone(), self.owner, slot, ttl)
            });
            match self.store.put_if_absent(&key, &value, ttl).await {
                Ok(true) if kept => {}
                recorded => {
                    // As for sessions: DEBUG while the store's breaker is
                    // open, and the error written as text.
                    const WHY: &str =
                        "withheld a new task: its owner could not be recorded (fail closed)";
                    let request_id = self.meta.request_id.as_str();
                    match &recorded {
                        Err(e) => {
                            self.shared.throttle.count_store_error("tasks");
                            crate::store::log_store_error!(e, error = %e, reason = "store_unavailable", request_id, "{WHY}");
                        }
                        Ok(true) => tracing::warn!(
                            error = "too many tasks remembered in this process",
                            reason = "store_unavailable",
                            request_id,
                            "{WHY}"
                        ),
                        Ok(false) => tracing::warn!(
                            error = "the task id is bound in the store already",
                            reason = "store_unavailable",
                            request_id,
                            "{WHY}"
                        ),
                    }
                    self.shared.outcomes.reject("store_unavailable");
                    return false;
                }
            }
        }
        true
    }

    /// The answer, once the tasks it creates are bound.
    pub(super) async fn settle(self, response: Response) -> Response {
        if !response.status().is_success() {
            return response;
        }
        match super::step_up::answer_kind(response.headers()) {
            AnswerKind::EventStream => return response.map(|body| self.stream(body)),
            AnswerKind::Json => {}
            AnswerKind::Other => return response,
        }
        let (parts, mut body) = response.into_parts();
        // rmcp's JSON answer is one frame: kept as it is, copied only
        // when there are more.
        let mut first: Option<Bytes> = None;
        let mut read: Vec<u8> = Vec::new();
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        match first.take() {
                            None if read.is_empty() => first = Some(data),
                            earlier => {
                                if let Some(earlier) = earlier {
                                    read.extend_from_slice(&earlier);
                                }
                                read.extend_from_slice(&data);
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a tools/call answer broke while read for its tasks");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                None => break,
            }
            let size = first.as_ref().map_or(read.len(), Bytes::len);
            if size > MAX_ANSWER_BYTES {
                // Too large to judge: passed on unread. A task it creates
                // has no owner, so it is answered as unknown to everyone
                // (fail closed).
                let front = first.unwrap_or_else(|| Bytes::from(read));
                let front = futures_util::stream::iter([Ok::<Bytes, axum::Error>(front)]);
                let rest = body.into_data_stream();
                return Response::from_parts(
                    parts,
                    Body::from_stream(futures_util::StreamExt::chain(front, rest)),
                );
            }
        }
        let read = first.unwrap_or_else(|| Bytes::from(read));
        if mentions_a_task(&read) {
            let messages = match serde_json::from_slice::<Value>(&read) {
                Ok(Value::Array(all)) => all,
                Ok(one) => vec![one],
                Err(_) => Vec::new(),
            };
            if !self.record(&messages).await {
                return Refused::TaskStoreUnavailable.response(Some(self.meta.request_id.as_str()));
            }
        }
        Response::from_parts(parts, Body::from(read))
    }

    /// An event stream whose events pass whole, each task-creating one
    /// after its task is bound.
    fn stream(self, body: Body) -> Body {
        Body::new(Recording {
            body,
            pending: Vec::new(),
            done: false,
            recorder: Arc::new(self),
            judging: None,
        })
    }

    /// One whole event: as it is, or, when it creates a task whose owner
    /// cannot be recorded, a JSON-RPC error for its request.
    async fn judge(self: Arc<Self>, event: Vec<u8>) -> Vec<u8> {
        let Ok(text) = std::str::from_utf8(&event) else {
            return event;
        };
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect::<Vec<_>>()
            .join("\n");
        let Ok(message) = serde_json::from_str::<Value>(&data) else {
            return event;
        };
        let messages = match message {
            Value::Array(all) => all,
            one => vec![one],
        };
        if self.record(&messages).await {
            return event;
        }
        let id = messages
            .iter()
            .find_map(|m| created_task(m).and(m.get("id")).cloned())
            .unwrap_or(Value::Null);
        let error = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": -32603, "message": "Task state is temporarily unavailable; retry later"},
        });
        format!("data: {error}\n\n").into_bytes()
    }
}

/// The body of an event stream that may create tasks: frames of whole
/// events that create none (as rmcp writes them) pass as they are; other
/// bytes are cut into whole events, and an event that creates a task
/// leaves once its owner is recorded (or is replaced, see
/// [`TaskRecorder::judge`]).
struct Recording {
    body: Body,
    /// Bytes of an event not yet ended.
    pending: Vec<u8>,
    /// The inner body has ended.
    done: bool,
    recorder: Arc<TaskRecorder>,
    /// An event being judged (its task's owner being recorded).
    judging: Option<futures_util::future::BoxFuture<'static, Vec<u8>>>,
}

impl Recording {
    /// An event to send: as it is, or once judged when it creates a task.
    fn send(&mut self, event: Vec<u8>) -> Option<Bytes> {
        if mentions_a_task(&event) {
            self.judging = Some(Box::pin(Arc::clone(&self.recorder).judge(event)));
            None
        } else {
            Some(Bytes::from(event))
        }
    }
}

impl http_body::Body for Recording {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(judging) = this.judging.as_mut() {
                let event = std::task::ready!(judging.as_mut().poll(cx));
                this.judging = None;
                return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(event)))));
            }
            if let Some(end) = super::step_up::event_end(&this.pending) {
                let event: Vec<u8> = this.pending.drain(..end).collect();
                if let Some(bytes) = this.send(event) {
                    return Poll::Ready(Some(Ok(http_body::Frame::data(bytes))));
                }
                continue;
            }
            if this.done {
                if this.pending.is_empty() {
                    return Poll::Ready(None);
                }
                // An unterminated last event: never an answer rmcp sends;
                // judged whole all the same.
                let event = std::mem::take(&mut this.pending);
                if let Some(bytes) = this.send(event) {
                    return Poll::Ready(Some(Ok(http_body::Frame::data(bytes))));
                }
                continue;
            }
            if this.pending.len() > MAX_ANSWER_BYTES {
                // An event too large to judge passes on unread: a task it
                // creates has no owner, so it is answered as unknown to
                // everyone (fail closed).
                let front = Bytes::from(std::mem::take(&mut this.pending));
                return Poll::Ready(Some(Ok(http_body::Frame::data(front))));
            }
            match std::task::ready!(std::pin::Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if this.pending.is_empty()
                            && super::step_up::ends_event(&data)
                            && !mentions_a_task(&data)
                        {
                            // Whole events, none creating a task.
                            return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                        }
                        this.pending.extend_from_slice(&data);
                    }
                    // Trailers: nothing to judge.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => {
                    this.done = true;
                    this.pending.clear();
                    return Poll::Ready(Some(Err(e)));
                }
                None => this.done = true,
            }
        }
    }
}

/// What rmcp answers a request naming the task `id` that does not exist,
/// and its HTTP status in a stateless request (a legacy session's answers
/// are events, HTTP 200), built from rmcp's own types so that the body is
/// rmcp's byte for byte. rmcp checks, in this order (`ServerHandler`'s
/// `tasks/*` dispatch, rmcp 3.11): that the service declares the tasks
/// extension (else `-32601`: a service `McpServer` read as without tasks
/// gets these requests itself, see the layer's `call`), that the request's
/// client does (else `-32021`; HTTP 400; read here for a stateless request
/// only: a legacy session's client may have declared them in an
/// `initialize` another replica saw), then the task (`-32602`, `unknown
/// task: <id>`; HTTP 200). `service_tasks` is `None` where the layer does
/// not know the service (a plain `AuthLayer`): the last answer.
fn unknown_task_answer(
    id: &str,
    work: &TaskWork,
    service_tasks: Option<bool>,
    stateless: bool,
) -> (StatusCode, String) {
    use rmcp::model::ErrorData;
    let (status, error) = if service_tasks == Some(true) && stateless && !work.declared {
        (
            StatusCode::BAD_REQUEST,
            ErrorData::missing_required_client_capability(
                rmcp::model::ClientCapabilities::builder()
                    .enable_tasks()
                    .build(),
            ),
        )
    } else {
        (
            StatusCode::OK,
            ErrorData::invalid_params(format!("unknown task: {id}"), None),
        )
    };
    let request_id = work
        .request_id
        .as_deref()
        .and_then(|raw| serde_json::from_str::<rmcp::model::RequestId>(raw).ok());
    let message = rmcp::model::JsonRpcError::new(request_id, error);
    // rmcp's types serialize to JSON without fail; an empty object would
    // still be an answer without the task.
    let text = serde_json::to_string(&message).unwrap_or_else(|_| "{}".to_owned());
    (status, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A binding lives twice the task's TTL (rmcp fails a task at its TTL
    // and keeps it a TTL longer), at most a day, a day without a TTL.
    #[test]
    fn a_created_task_is_read_with_its_lifetime() {
        let answer =
            |result: Value| serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": result});
        let task =
            answer(serde_json::json!({"resultType": "task", "taskId": "t-1", "ttlMs": 1000}));
        assert_eq!(created_task(&task), Some(("t-1", Duration::from_secs(2))));
        let none = answer(serde_json::json!({"resultType": "task", "taskId": "t", "ttlMs": null}));
        assert_eq!(created_task(&none), Some(("t", LONGEST_BINDING)));
        let long =
            answer(serde_json::json!({"resultType": "task", "taskId": "t", "ttlMs": u64::MAX}));
        assert_eq!(created_task(&long), Some(("t", LONGEST_BINDING)));
        let done = answer(serde_json::json!({"resultType": "complete", "taskId": "t"}));
        assert_eq!(created_task(&done), None);
        let no_id = answer(serde_json::json!({"resultType": "task", "taskId": 7}));
        assert_eq!(created_task(&no_id), None);
    }

    #[test]
    fn only_answers_naming_a_task_result_are_parsed() {
        for yes in [
            &br#"{"result":{"resultType":"task","taskId":"t"}}"#[..],
            br#"{"result":{"resultType" :	"task"}}"#,
            b"data: {\"result\":{\"resultType\":\n \"task\"}}\n\n",
            br#"{"resultType":"complete","x":{"resultType":"task"}}"#,
        ] {
            assert!(mentions_a_task(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &br#"{"result":{"resultType":"complete","content":[]}}"#[..],
            br#"{"result":{"resultType":"tasks"}}"#,
            br#"{"result":{"content":[{"text":"resultType task"}]}}"#,
            br#"{"text":""resultType\":"task""}"#,
            br#"{"resultType":"#,
            b"",
        ] {
            assert!(!mentions_a_task(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn an_owner_and_its_scopes_round_trip() {
        let owner = [7u8; 32];
        let scopes = vec!["notes:write".to_owned(), "mcp".to_owned()];
        let value = encode(&owner, &scopes);
        assert_eq!(decode(&value), Some((owner.as_slice(), scopes)));
        assert_eq!(
            decode(&encode(&owner, &[])),
            Some((owner.as_slice(), vec![]))
        );
        assert_eq!(decode(&[1, 2, 3]), None);
        assert!(store_key("t-1").starts_with("mcp_oauth2:task:"));
        assert!(!store_key("t-1").contains("t-1"));
    }
}
