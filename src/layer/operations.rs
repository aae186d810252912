//! What the layer reads from a request before admitting it: where it is
//! placed (MCP or not, body to read, stateless revision), the JSON-RPC
//! operations of a POST and the scopes they need, the stateless header
//! checks, and the list filtering glue (`hide_unauthorized_in_lists`).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode};

use super::http_rules::{HeaderFault, Refused, header_mismatch_response, parse_error_response};
use super::pending_bodies::{Full, Unread, read_pending};
use crate::context::AuthContext;
use crate::error::AuthErrorKind;
use crate::operation::{check_headers, read_requests};
use crate::scope::{ScopePolicy, extend_unique};

use super::Shared;
use super::service::Seen;
use crate::audit::{Event, Record};
use std::sync::Arc;

/// The JSON-RPC request ids of a legacy session POST (as
/// [`read_requests`] spells them), for the session rules. The second member
/// is the body, from which a refusal reads the raw JSON id of a single
/// request ([`single_request_id`]).
#[derive(Clone)]
pub(super) struct RequestIds(pub(super) Vec<Box<str>>, pub(super) axum::body::Bytes);

/// The raw JSON-RPC id of a single request that rmcp answers in plain text
/// (a revision it does not serve, a legacy call without its session),
/// for the JSON-RPC error `McpServer` puts in its place.
#[derive(Clone)]
pub(crate) struct CallId(pub(crate) String);

/// Put in the extensions of a JSON POST on an exempt route whose body
/// holds JSON-RPC calls, before it is judged again: judged as MCP (see
/// [`Shared::peek_json_rpc`]). Only the layer puts it there.
#[derive(Clone, Copy)]
pub(super) struct PlacedByBody;

/// What the layer learned about a request before verifying its token.
#[derive(Clone, Copy)]
pub(super) struct Placement {
    /// Judged as an MCP request.
    pub(super) on_mcp: bool,
    /// A POST whose body must be read for per-operation rules.
    pub(super) reads_body: bool,
    /// Declares the stateless revision: sessions do not apply.
    pub(super) stateless: bool,
    /// May open a legacy session: rmcp opens one for an `initialize` only,
    /// so `false` once the body is read and holds none (then no session
    /// hook is set and no session cap applies).
    pub(super) opens_session: bool,
    /// Its `initialize` may declare the tasks extension for the session it
    /// opens (or runs in): `false` once the body is read and no
    /// `initialize` in it declares them (`Sessions::bind`,
    /// `Sessions::use_session`).
    pub(super) session_tasks: bool,
    /// The fields the layer's rules read that the request carries.
    pub(super) present: super::http_rules::Present,
    /// Opens a stream that stays open (a `subscriptions/listen`, known once
    /// the body is read, or a legacy session's GET stream): counted against
    /// its user's `max_listens_per_principal`.
    pub(super) listens: bool,
    /// `MCP-Protocol-Version` is absent or names one revision rmcp serves
    /// (see [`known_revision`](super::http_rules::known_revision)).
    pub(super) known_revision: bool,
}

impl Shared {
    /// Whether the request is judged as MCP (see [`AuthLayer`](super::AuthLayer)): by the
    /// router's placement, never by one path spelling.
    pub(super) fn place(
        &self,
        req: &Request<Body>,
        present: super::http_rules::Present,
        // `MCP-Protocol-Version` names the stateless revision
        // (`is_stateless_revision`), and one rmcp serves (or none).
        (stateless, known_revision): (bool, bool),
    ) -> Placement {
        let headers = req.headers();
        let on_mcp = self.whole_service
            // The path the client requested (inside a nest) and the one
            // this router was handed (after a rewrite): either is enough.
            || under_path(req.uri().path(), &self.mcp_path)
            || under_path(
                super::service::requested_path(req.extensions(), req.uri()),
                &self.mcp_path,
            )
            || present.session
            || present.method
            || present.protocol
            || req.extensions().get::<PlacedByBody>().is_some();
        let rules = self.policy.has_operation_rules() || !self.computed.is_empty();
        // A legacy session's POST is read for its request ids too (see
        // `Sessions::claim_ids`), rules or not.
        let session_post = self.bind_sessions && !stateless && present.session;
        // Every JSON POST is read too, on any path: tasks are bound to
        // their creators (`tasks.rs`), a task is named only in the body
        // (rmcp dispatches nothing but `application/json`, which `is_json`
        // admits), and a plain layer cannot know every route that reaches
        // rmcp (a body holding JSON-RPC calls is judged as MCP).
        let json = is_json(headers);
        let reads_body =
            req.method() == Method::POST && ((rules && on_mcp) || json || session_post);
        Placement {
            on_mcp,
            reads_body,
            stateless,
            opens_session: true,
            session_tasks: true,
            present,
            // A legacy session's GET opens its standalone event stream,
            // which stays open like a listen and counts against the same
            // cap (found from outside: one session held 600 of them,
            // bounded only by the connection caps). Read again for a POST
            // (`required_for`: a `subscriptions/listen`).
            listens: req.method() == Method::GET && present.session && !stateless,
            known_revision,
        }
    }

    /// Reads the request's JSON-RPC operations and the scopes they need
    /// (declared, and computed for `ctx`); the body is buffered and put
    /// back. `Err` is the response to send.
    pub(super) async fn required_for(
        &self,
        req: Request<Body>,
        placement: &mut Placement,
        ctx: &AuthContext,
        seen: &mut Seen,
    ) -> Result<(Request<Body>, Vec<String>, bool, super::tasks::TaskWork), Response> {
        if self.declares_too_large(&req) {
            return Err(self.refuse(Refused::BodyTooLarge, &req, &seen.meta));
        }
        let (mut parts, body) = req.into_parts();
        // A body not arrived yet is waited for within its user's bound
        // (`pending_bodies`).
        let read = read_pending(body, self.max_body_bytes, &self.pending_bodies, || {
            super::sessions::user_key(ctx)
        })
        .await;
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(Unread::Body(e)) => return Err(self.unread_body(&e, parts, seen, Some(ctx))),
            Err(Unread::Full(full)) => return Err(self.pending_full(full, parts, seen, Some(ctx))),
        };
        let mut required = self.policy.global.clone();
        // A legacy session's requests are claimed by their ids, read in
        // the same pass.
        let session_ids = !placement.stateless && placement.present.session;
        let crate::operation::Requests {
            ops,
            ids,
            declares_tasks,
            session_declares_tasks,
        } = match read_requests(&bytes, session_ids, self.max_json_values) {
            Ok(read) => read,
            Err(why) => return Err(self.unreadable_body(why, &bytes, &parts, seen, Some(ctx))),
        };
        if !ops.is_empty() {
            placement.on_mcp = true;
        }
        placement.opens_session = ops.iter().any(|op| op.method() == "initialize");
        placement.session_tasks = session_declares_tasks;
        placement.listens = ops.iter().any(|op| op.method() == "subscriptions/listen");
        // The operation, for the audit events, when the headers did not
        // name it (a single call; a batch is named by its headers only).
        // Before 2026-07-28 the headers mean nothing: the body names the
        // operation, or nothing does.
        if !placement.stateless && (seen.meta.mcp_method.is_some() || seen.meta.mcp_name.is_some())
        {
            let meta = Arc::make_mut(&mut seen.meta);
            meta.mcp_method = None;
            meta.mcp_name = None;
        }
        if let [op] = ops.as_slice()
            && seen.meta.mcp_method.is_none()
        {
            let meta = Arc::make_mut(&mut seen.meta);
            meta.mcp_method = Some(crate::audit::Field::Text(op.method().into()));
            meta.mcp_name = op.name().map(|name| crate::audit::Field::Text(name.into()));
        }
        let lists = ops
            .iter()
            .any(|op| crate::filter::is_list_method(op.method()));
        // MCP 2026-07-28 "Transports": `Mcp-Method` / `Mcp-Name` are checked
        // against the body in a revision that defines them, as rmcp does.
        // An older revision is judged by its body alone and a header it
        // carries means nothing (a proxy or a client of several revisions
        // may add them): refusing it would turn away a truthful body. No
        // rule of the layer reads these headers, so ignoring them lets
        // nothing through.
        let fault = if placement.stateless {
            // Any array is a batch, one of responses or of one message too
            // (found from outside: a batch holding only a response got
            // rmcp's -32600 where every other got this -32020).
            let batch = ops.len() > 1
                || bytes
                    .iter()
                    .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                    == Some(&b'[');
            match check_headers(&parts.headers, &ops) {
                _ if batch => Some(HeaderFault::Batch),
                Err(_) => Some(HeaderFault::Differs),
                Ok(present) if !stateless_headers_present(present, &ops) => {
                    Some(HeaderFault::Missing)
                }
                Ok(_) => None,
            }
        } else {
            None
        };
        // A revision rmcp does not know (a later date) is answered with
        // the JSON-RPC `UnsupportedProtocolVersionError` (-32022, the
        // versions the server knows in `data.supported`) by rmcp, however
        // its headers read: a client of that revision learns to fall back
        // rather than that a header is wrong (found from outside: a
        // `2099-01-01` call without `Mcp-Method` got -32020). Nothing of
        // it runs (rmcp serves no unknown revision); its scopes were
        // judged from the body all the same. Read in the request's one pass
        // over its fields (`Placement::known_revision`): a stateless
        // request names one dated revision, so "absent" cannot happen here.
        let fault = fault.filter(|_| placement.known_revision);
        if let Some(fault) = fault {
            self.outcomes
                .reject(AuthErrorKind::McpHeaderMismatch.code());
            self.audit_body_refusal(AuthErrorKind::McpHeaderMismatch, seen, Some(ctx));
            tracing::debug!(
                reason = AuthErrorKind::McpHeaderMismatch.code(),
                status = 400,
                path = %super::service::logged(parts.uri.path()),
                "refused: Mcp-Method / Mcp-Name do not match the body"
            );
            return Err(header_mismatch_response(
                fault,
                single_request_id(&bytes).as_deref(),
                Some(seen.request_id()),
            ));
        }
        if session_ids {
            parts.extensions.insert(RequestIds(ids, bytes.clone()));
        }
        // rmcp answers a revision it does not serve, and a legacy call
        // without its session, in plain text, which `McpServer` rewrites
        // as a JSON-RPC error: the request's id goes with the request for
        // it (JSON-RPC 2.0, section 5: `null` only when the id cannot be
        // read; found from outside: `null` for a readable id). Only those
        // requests carry it (with sessions off, rmcp serves a legacy call
        // without one).
        let plain_answer = !placement.known_revision
            || (self.sessions.limits().enabled
                && !(placement.stateless || placement.present.session || placement.opens_session));
        if plain_answer && let Some(id) = single_request_id(&bytes) {
            parts.extensions.insert(CallId(id));
        }
        for op in &ops {
            extend_unique(&mut required, self.policy.required_for(op));
        }
        if self.computed.applies_to(&ops)
            && let Err(undecided) = self.computed.extend(&bytes, &ops, ctx, &mut required)
        {
            return Err(self.reject(
                &undecided.kind().into(),
                &parts.method,
                parts.uri.path(),
                seen,
                Some(ctx),
            ));
        }
        // A stateless `tools/call` can create a task only if it declares
        // the tasks extension (rmcp's `ServerHandler` refuses a handler's
        // task otherwise); its answer then leaves without being read for
        // one. A task created anyway (a service that skips rmcp's check)
        // has no owner, and is answered as unknown to everyone (fail
        // closed). A legacy session's client may declare them in its
        // `initialize` instead, which the session table remembers
        // (`Shared::admit` settles those calls).
        let may_create = declares_tasks || !placement.stateless;
        let mut tasks = super::tasks::TaskWork::of(&ops, &bytes, may_create);
        tasks.declared = declares_tasks;
        Ok((
            Request::from_parts(parts, Body::from(bytes)),
            required,
            lists,
            tasks,
        ))
    }
}

impl Shared {
    /// A JSON POST on an exempt route (see [`AuthLayer`](super::AuthLayer)):
    /// its body is read as on any route (within the cap, strictly) and put
    /// back, with whether it holds JSON-RPC calls. Such a body is judged as
    /// MCP, exemption or not: the layer cannot tell whether the route
    /// reaches rmcp (a fallback service, a prefix it also serves), where an
    /// exemption would let a call through without its token. `Err` is the
    /// response to send.
    pub(super) async fn peek_json_rpc(
        &self,
        req: Request<Body>,
        seen: &Seen,
    ) -> Result<(Request<Body>, bool), Response> {
        // The same read as `required_for`'s, written out in both: as an
        // `async fn` of its own it cost every accepted call about 300
        // instructions (BENCHMARKS.md, twenty-sixth pass).
        if self.declares_too_large(&req) {
            return Err(self.refuse(Refused::BodyTooLarge, &req, &seen.meta));
        }
        let (parts, body) = req.into_parts();
        // Unauthenticated: a pending body counts under its peer's address.
        let read = read_pending(body, self.max_body_bytes, &self.pending_bodies, || {
            super::pending_bodies::peer_key(seen.meta.client_addr)
        })
        .await;
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(Unread::Body(e)) => return Err(self.unread_body(&e, parts, seen, None)),
            Err(Unread::Full(full)) => return Err(self.pending_full(full, parts, seen, None)),
        };
        // An empty body (or JSON whitespace alone: a ping) carries no
        // call, and rmcp dispatches none: the exemption holds.
        let empty = bytes
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        let calls = !empty
            && match read_requests(&bytes, false, self.max_json_values) {
                Ok(read) => !read.ops.is_empty(),
                Err(why) => return Err(self.unreadable_body(why, &bytes, &parts, seen, None)),
            };
        Ok((Request::from_parts(parts, Body::from(bytes)), calls))
    }

    /// Whether the body declares a length over `max_body_bytes` (refused
    /// unread: 413).
    fn declares_too_large<B>(&self, req: &Request<B>) -> bool {
        declared_length(req.headers()).is_some_and(|len| len > self.max_body_bytes as u64)
    }

    /// The answer to a body not arrived whole when a bound of
    /// `pending_bodies` is full: 429 (the user's), 503 (the process's),
    /// the rest of the body unread. `ctx`: the caller, when authenticated.
    #[cold]
    fn pending_full(
        &self,
        full: Full,
        parts: http::request::Parts,
        seen: &Seen,
        ctx: Option<&AuthContext>,
    ) -> Response {
        let refused = match full {
            Full::Principal => Refused::TooManyPendingBodies,
            Full::Process => Refused::PendingBodiesFull,
        };
        let req = Request::from_parts(parts, ());
        match ctx {
            Some(ctx) => self.refuse_caller(refused, &req, &seen.meta, ctx),
            None => self.refuse(refused, &req, &seen.meta),
        }
    }

    /// The answer to a body that could not be read whole: 413 over the cap,
    /// 400 for one that broke off. `ctx`: the caller, when authenticated.
    fn unread_body(
        &self,
        e: &axum::Error,
        parts: http::request::Parts,
        seen: &Seen,
        ctx: Option<&AuthContext>,
    ) -> Response {
        if is_length_limit(e) {
            let req = Request::from_parts(parts, ());
            return self.refuse(Refused::BodyTooLarge, &req, &seen.meta);
        }
        if let Some(timed_out) = body_timed_out(e) {
            return self.body_timed_out(timed_out, seen, ctx);
        }
        let mut response = self.reject(
            &AuthErrorKind::BodyUnreadable.into(),
            &parts.method,
            parts.uri.path(),
            seen,
            ctx,
        );
        // A body broken on the wire (a bad chunk, trailers past the
        // bound) leaves nothing after it that can be read as a request:
        // hyper closes the connection, and the answer says so (found from
        // outside: said nothing, and the client's next request on it got
        // no answer), as the 408 and 413 do.
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        response
    }

    /// The answer to a body that did not arrive within the server's body
    /// read timeout (`McpServer`'s guard, or [`BodyGuardLayer`](crate::BodyGuardLayer)
    /// in front): 408, audited as the HTTP rule it is, `request.refused`
    /// with reason `body_read_timeout`, the caller named when known (found
    /// from outside: it was audited as `auth.refused`, 400,
    /// `body_unreadable`, a valid caller's token "refused").
    fn body_timed_out(
        &self,
        timed_out: super::BodyTimedOut,
        seen: &Seen,
        ctx: Option<&AuthContext>,
    ) -> Response {
        const REASON: &str = "body_read_timeout";
        self.outcomes.reject(REASON);
        self.audit.emit(&Record {
            meta: Some(&seen.meta),
            ctx,
            ..Record::new(
                Event::RequestRefused,
                REASON,
                Some(408),
                &self.document.resource,
            )
        });
        let id = http::HeaderValue::from_str(seen.request_id()).ok();
        super::body_timeout_response(id, timed_out.0)
    }

    /// The answer to a body not readable strictly (not JSON, repeated
    /// member names, too deep): never guess which copy rmcp would dispatch
    /// (fail closed). 400 with the JSON-RPC parse error; a request whose
    /// params are what is wrong (`-32602`) was read, and its answer names
    /// its `id` (JSON-RPC 2.0 section 5: `null` only when the id could not
    /// be read; found from outside).
    fn unreadable_body(
        &self,
        why: crate::operation::Unreadable,
        body: &[u8],
        parts: &http::request::Parts,
        seen: &Seen,
        ctx: Option<&AuthContext>,
    ) -> Response {
        if why == crate::operation::Unreadable::TooManyValues {
            let req = Request::from_parts(parts.clone(), ());
            return self.refuse(Refused::BodyTooComplex, &req, &seen.meta);
        }
        self.outcomes.reject(AuthErrorKind::BodyUnreadable.code());
        self.audit_body_refusal(AuthErrorKind::BodyUnreadable, seen, ctx);
        tracing::debug!(
            reason = AuthErrorKind::BodyUnreadable.code(),
            status = 400,
            path = %super::service::logged(parts.uri.path()),
            "refused: the body is not strictly valid JSON-RPC"
        );
        let id = (why.jsonrpc_code() == -32602)
            .then(|| single_request_id(body))
            .flatten();
        parse_error_response(why, id.as_deref(), Some(seen.request_id()))
    }

    /// The audit event of a request refused for its body (400: not strict
    /// JSON-RPC, headers contradicting it, or a JSON-RPC id in flight in its
    /// session). `ctx`: the caller, when authenticated (an exempt route's
    /// body is read before any token).
    pub(super) fn audit_body_refusal(
        &self,
        kind: AuthErrorKind,
        seen: &Seen,
        ctx: Option<&AuthContext>,
    ) {
        self.audit.emit(&Record {
            meta: Some(&seen.meta),
            ctx,
            ..Record::new(
                Event::AuthzRefused,
                kind.code(),
                Some(400),
                &self.document.resource,
            )
        });
    }
}

/// The length a request's body declares (`Content-Length`), when it does.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Whether reading a body failed at the cap of `axum::body::to_bytes`
/// (its `http_body_util::Limited` error, inside `axum::Error`), rather than
/// for a broken body.
fn is_length_limit(e: &axum::Error) -> bool {
    in_chain::<http_body_util::LengthLimitError>(e).is_some()
}

/// The body read timeout that ended reading a body, if that is why it
/// failed (a [`BodyTimedOut`](super::BodyTimedOut) in the error's chain).
fn body_timed_out(e: &axum::Error) -> Option<super::BodyTimedOut> {
    in_chain::<super::BodyTimedOut>(e).copied()
}

/// The first error of type `T` in `e`'s chain of sources, `e` included.
fn in_chain<T: std::error::Error + 'static>(e: &axum::Error) -> Option<&T> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        source = err.source();
    }
    None
}

/// Whether `path` is `base` or lies under it (on a `/` boundary).
pub(super) fn under_path(path: &str, base: &str) -> bool {
    if base == "/" {
        return true;
    }
    match path.strip_prefix(base) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A JSON content type (`application/json`, any case and parameters, or a
/// `+json` suffix): what a JSON-RPC POST carries.
fn is_json(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
        let v = v.as_bytes();
        let essence = v.split(|b| *b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        essence.eq_ignore_ascii_case(b"application/json")
            || (essence.len() > 5
                && essence
                    .get(essence.len() - 5..)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"+json")))
    })
}

/// MCP 2026-07-28: a request names its method in `Mcp-Method`, and
/// `tools/call`, `resources/read` and `prompts/get` their target in
/// `Mcp-Name`; a missing header is a mismatch too.
fn stateless_headers_present(
    present: crate::operation::Present,
    ops: &[crate::scope::Operation],
) -> bool {
    let [op] = ops else {
        // A batch cannot carry the headers of one message.
        return ops.is_empty();
    };
    if op.method() == "initialize" {
        // The handshake may omit them (a supplied one must still match).
        return true;
    }
    // Every method whose name `Mcp-Name` mirrors requires it, as rmcp
    // requires it (found from outside: a `tasks/get` without it got
    // rmcp's own -32020 text, where the three methods the layer named got
    // the layer's answer).
    let named = crate::operation::header_name(op).is_some();
    present.method && (!named || present.name)
}

/// The raw JSON `id` of a single JSON-RPC request, for the error answer.
pub(super) fn single_request_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: Option<&'a serde_json::value::RawValue>,
    }
    let parsed: IdOnly<'_> = serde_json::from_slice(body).ok()?;
    let id = parsed.id?.get();
    // Only the id shapes JSON-RPC allows: a string or a number.
    let first = id.as_bytes().first()?;
    (*first == b'"' || *first == b'-' || first.is_ascii_digit()).then(|| id.to_owned())
}

/// Cap on a list response buffered for filtering.
const MAX_LIST_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Rewrites list results for `hide_unauthorized_in_lists`. A response that
/// cannot be read within the cap and a minute is replaced by 500 (fail
/// closed: never show an unfiltered list).
pub(super) async fn filter_lists(
    response: Response,
    policy: &ScopePolicy,
    ctx: &AuthContext,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let sse = match super::step_up::answer_kind(&parts.headers) {
        super::step_up::AnswerKind::EventStream => true,
        super::step_up::AnswerKind::Json => false,
        super::step_up::AnswerKind::Other => return Response::from_parts(parts, body),
    };
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        axum::body::to_bytes(body, MAX_LIST_RESPONSE_BYTES),
    )
    .await;
    let Ok(Ok(bytes)) = read else {
        tracing::error!("could not buffer a list response for filtering; refusing it");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let rewritten = if sse {
        crate::filter::rewrite_sse(&bytes, policy, ctx).map(Some)
    } else {
        crate::filter::rewrite_json(&bytes, policy, ctx)
    };
    let Ok(rewritten) = rewritten else {
        tracing::error!("could not parse a list response for filtering; refusing it");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(rewritten.unwrap_or_else(|| bytes.to_vec())),
    )
}
