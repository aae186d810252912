//! The request path: [`AuthService`], its fast path (a known token, the
//! inner future returned unboxed), the slow path that may wait (a
//! verification, a body read, a filtered list), and the verification span.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use futures_util::FutureExt as _;
use http::{HeaderValue, Method, Request};
use tower_service::Service;
use tracing::Instrument as _;

use super::http_rules::{
    LAST_EVENT_ID, Present, Refused, SESSION_HEADER, add_cors, check_host, check_origin,
    has_content_coding, has_transfer_coding, header_mismatch_response, is_preflight,
    is_stateless_revision, known_revision, names_no_host, preflight_response, request_id_refused,
    resumes_a_request_stream, throttled_response,
};
use crate::audit::{Event, Record, RequestMeta, event_of, reason_of};
use crate::bearer::{BearerToken, Credentials, read_credentials, uri_names_access_token};
use crate::challenge::rejection_response;
use crate::config::DpopMode;
use crate::context::AuthContext;
use crate::correlation::RequestId;
use crate::dpop::proof::Verified;
use crate::error::{AuthError, AuthErrorKind};
use crate::throttle::{Limit, PendingVerdict, Subject, Verdict, fingerprint};
use crate::verify::TokenVerifier;

use super::Shared;
use super::future::{ResponseFuture, finish};
use super::operations::{Placement, RequestIds, filter_lists};
use super::sessions::{
    AfterResponse, ForeignInStore, IdClaim, InFlight, OwnedInStore, OwnerOf, SessionHook,
    session_id, session_not_found,
};
use super::sessions::{Owner, principal_key, user_key};
use super::step_up::{Settled, StepUpCheck};
use crate::context::{StepUp, SubjectToken};

/// The service produced by [`AuthLayer`](super::AuthLayer).
#[derive(Clone)]
pub struct AuthService<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The correlation id: set by an outer layer (McpServer's, which
        // echoes it on every response of its router), or read from the
        // request here and echoed here.
        let echoed = req
            .extensions()
            .get::<crate::correlation::Echoed>()
            .is_some();
        let request_id = RequestId::of_request(&mut req);
        if echoed {
            return self.route(req, request_id);
        }
        let header = request_id.header_value();
        self.route(req, request_id).with_request_id(header)
    }
}

/// The path the client requested. A router nested with `Router::nest` or
/// `nest_service` is handed the request with its prefix stripped (`/mcp`
/// for `/api/mcp`); axum's outermost router records the original URI
/// first, and that is the one a DPoP proof names (`htu`, RFC 9449 section
/// 4.3) and the MCP path is compared with. Elsewhere the request's own.
pub(super) fn requested_path<'r>(extensions: &'r http::Extensions, uri: &'r http::Uri) -> &'r str {
    extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| uri.path(), |original| original.0.path())
}

pub(super) fn with_cors(mut response: Response, origin: Option<&HeaderValue>) -> Response {
    if let Some(origin) = origin {
        add_cors(&mut response, origin);
    }
    response
}

/// What the layer saw of a request before authenticating it: the fields of
/// its audit events and, when throttling is on, what the throttle counts.
#[derive(Clone)]
pub(super) struct Seen {
    pub(super) meta: Arc<RequestMeta>,
    pub(super) subject: Option<Subject>,
}

impl Seen {
    pub(super) fn request_id(&self) -> &str {
        self.meta.request_id.as_str()
    }
}

impl<S> AuthService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// The request path proper (see [`AuthLayer`](super::AuthLayer)).
    fn route(
        &mut self,
        mut req: Request<Body>,
        request_id: RequestId,
    ) -> ResponseFuture<S::Future, S::Error> {
        let shared = &self.shared;
        if shared.metadata.serves(req.uri().path()) {
            return ResponseFuture::ready(shared.metadata.respond(req.method()));
        }
        // One pass over the fields: the rules below skip the fields the
        // request does not carry without a lookup each, and read Host and
        // the MCP fields from what the pass kept.
        let (present, mut fields) = Present::scan(req.headers());
        let mut restored = false;
        if !present.authorization {
            // An outer AuthLayer (an app protecting all its routes around
            // `McpServer::into_router()`) admitted this request and took its
            // `Authorization` header off (no token passthrough): this layer
            // verifies the same credentials again, against its own policy.
            if let Some(value) = req
                .extensions()
                .get::<AuthContext>()
                .and_then(AuthContext::subject_token)
                .map(|token| token.header_value().clone())
            {
                req.headers_mut().insert(http::header::AUTHORIZATION, value);
                restored = true;
            } else {
                // Discovery starts with a request without credentials:
                // judged there, so that an authenticated call pays nothing
                // for it.
                shared.warn_if_nested(&req);
            }
        }
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        let client_addr = shared.throttle.client_addr(peer, req.headers());
        let stateless_revision = is_stateless_revision(fields.protocol.single());
        let known_revision = known_revision(&fields.protocol);
        // `Mcp-Method` / `Mcp-Name` name the JSON-RPC message a POST
        // carries; on another method (a GET stream, a DELETE) they name
        // nothing that runs, and the events must not say that one did.
        let (mcp_method, mcp_name) = if req.method() == http::Method::POST {
            (fields.method.take_first(), fields.name.take_first())
        } else {
            (None, None)
        };
        let meta = Arc::new(RequestMeta::new(
            request_id,
            client_addr,
            fields.protocol.take_first(),
            mcp_method,
            mcp_name,
        ));
        if let Err(refused) = check_host(req.version(), req.uri(), &fields.host) {
            return ResponseFuture::ready(shared.refuse(refused, &req, &meta));
        }
        let placement = shared.place(&req, present, (stateless_revision, known_revision));
        if placement.on_mcp
            && let Some(refused) = shared.mcp_host_rule(req.uri(), &present, fields.host.first())
        {
            return ResponseFuture::ready(shared.refuse(refused, &req, &meta));
        }
        // Two revisions named: rmcp serves the first, the layer's rules
        // could read neither (found from outside: judged as legacy, the
        // stateless header rules skipped, while rmcp served 2026-07-28).
        if placement.on_mcp && fields.protocol.repeated() {
            return ResponseFuture::ready(shared.refuse(
                Refused::DuplicateProtocolVersion,
                &req,
                &meta,
            ));
        }
        let preflight = is_preflight(req.method(), &present);
        let origin = match check_origin(&present, req.headers(), &shared.allowed_origins) {
            Ok(origin) => origin.cloned(),
            // Enforced on MCP requests and preflights; another route of the
            // app answers its own cross-origin requests.
            Err(refused) if placement.on_mcp || preflight => {
                return ResponseFuture::ready(shared.refuse(refused, &req, &meta));
            }
            Err(_) => None,
        };
        if preflight && let Some(origin) = &origin {
            // A preflight carries no credentials: answered here, never
            // handed to the service unauthenticated.
            let sessions = shared.sessions.limits().enabled;
            return ResponseFuture::ready(preflight_response(origin, sessions));
        }
        if req.method() == http::Method::POST
            && (placement.on_mcp || placement.reads_body)
            && present.content_encoding
            && has_content_coding(req.headers())
        {
            // Before the token: the body could not be judged either way.
            let response = shared.refuse(Refused::UnsupportedContentEncoding, &req, &meta);
            return ResponseFuture::ready(with_cors(response, origin.as_ref()));
        }
        if (placement.on_mcp || placement.reads_body)
            && present.transfer_encoding
            && has_transfer_coding(req.headers())
        {
            // Before the token too: the body is not read as it was sent.
            let response = shared.refuse(Refused::UnsupportedTransferCoding, &req, &meta);
            return ResponseFuture::ready(with_cors(response, origin.as_ref()));
        }
        // Exempt routes are paths the client requests (inside a nest, the
        // one with the prefix), as the MCP path is.
        if !placement.on_mcp
            && shared
                .exempt
                .iter()
                .any(|r| r.matches(requested_path(req.extensions(), req.uri())))
        {
            if placement.reads_body {
                // A JSON POST: exempt unless its body holds JSON-RPC calls.
                let seen = Seen {
                    meta,
                    subject: None,
                };
                return self.exempt_unless_mcp(req, restored, origin, seen);
            }
            if restored {
                // Served without a verification: the credentials the outer
                // layer took off stay off (no token passthrough).
                req.headers_mut().remove(http::header::AUTHORIZATION);
            }
            return ResponseFuture::inner(self.inner.call(req), None, origin, None, None, None);
        }
        if placement.stateless {
            // MCP 2026-07-28: a stateless request's session headers are
            // ignored (removed, so the service cannot act on them either).
            let headers = req.headers_mut();
            if present.session {
                headers.remove(SESSION_HEADER);
            }
            if present.last_event_id {
                headers.remove(LAST_EVENT_ID);
            }
        } else if present.last_event_id && resumes_a_request_stream(req.headers()) {
            // A legacy GET naming a request's stream (`<index>/<request>`)
            // would take that request's answer over in rmcp, away from the
            // response the layer holds and judges (late step-up, list
            // filtering). Resumption is optional (MCP "Resumability"): the
            // header is ignored, and the GET opens a plain stream.
            req.headers_mut().remove(LAST_EVENT_ID);
        }
        // Throttling, when on: decided before any verification work.
        let subject = shared.throttle.enabled().then(|| {
            let authorization = req.headers().get(http::header::AUTHORIZATION);
            Subject {
                addr: meta.client_addr,
                fingerprint: authorization.map(|v| fingerprint(v.as_bytes())),
                missing: authorization.is_none(),
            }
        });
        let seen = Seen { meta, subject };
        // RFC 6750 sections 2 and 2.3: a token in the query is refused
        // (400 invalid_request), alone or beside one in the header, once
        // the throttle has had its say (found from outside: a throttled
        // address got the 400 rather than the documented 429). Normal
        // requests have no query: nothing is scanned.
        let in_query = uri_names_access_token(req.uri()).then(|| {
            // Named on the `DPoP` challenge for a request of that scheme
            // (RFC 9449 section 7.1; found from outside: on `Bearer`'s).
            let dpop = shared.dpop.mode() != DpopMode::Off
                && req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|v| crate::bearer::is_dpop_scheme(v.as_bytes()));
            AuthError::from(AuthErrorKind::TokenInQuery).on_dpop_scheme(dpop)
        });
        if let Some(subject) = &seen.subject {
            match shared.throttle.check(subject) {
                Ok(Verdict::Pass) => {}
                Ok(Verdict::Throttled(limit, secs)) => {
                    let response = shared.throttled(limit, secs, &seen);
                    return ResponseFuture::ready(with_cors(response, origin.as_ref()));
                }
                Err(pending) => {
                    let Some(err) = in_query else {
                        return self.call_slow(req, placement, origin, None, seen, Some(pending));
                    };
                    // The store must be waited for: the verdict, then the
                    // 400 if it lets the request through.
                    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
                    let shared = Arc::clone(shared);
                    return ResponseFuture::boxed(Box::pin(async move {
                        let response = match pending.await {
                            Verdict::Throttled(limit, secs) => shared.throttled(limit, secs, &seen),
                            Verdict::Pass => shared.reject(&err, &method, &path, &seen, None),
                        };
                        Ok(with_cors(response, origin.as_ref()))
                    }));
                }
            }
        }
        if let Some(err) = in_query {
            let response = shared.reject(&err, req.method(), req.uri().path(), &seen, None);
            return ResponseFuture::ready(with_cors(response, origin.as_ref()));
        }
        // The fast path, taken by every request of a client that reuses its
        // token and needs nothing read from the body: decided here, without
        // a verification future, and the inner service's future is returned
        // as it is (no box, no second copy of the service).
        // A request whose body names its operation still has its token
        // judged here when that needs no waiting (a refusal before the body
        // is read; a known token without a verification future).
        let path = requested_path(req.extensions(), req.uri());
        let verified = match shared.verify_now(req.method(), path, req.headers(), &seen) {
            Some(verified) => verified,
            None => return self.call_slow(req, placement, origin, None, seen, None),
        };
        let response = match verified {
            // A body to read, a session to check or bind in a shared store,
            // or a stream to hold a listen slot (a legacy GET stream).
            Ok(ctx) if placement.reads_body || placement.listens || shared.session_waits(&req) => {
                return self.call_slow(req, placement, origin, Some(ctx), seen, None);
            }
            Ok(ctx) => match shared.admit(&mut req, ctx, Required::Global, placement, false, &seen)
            {
                Ok(admitted) => {
                    return ResponseFuture::inner(
                        self.inner.call(req),
                        admitted.session_hook,
                        origin,
                        admitted.step_up,
                        admitted.dpop_nonce,
                        admitted.stream_end,
                    );
                }
                Err(response) => *response,
            },
            Err(err) => shared.reject(&err, req.method(), req.uri().path(), &seen, None),
        };
        ResponseFuture::ready(with_cors(response, origin.as_ref()))
    }

    /// A JSON POST on an exempt route: served as exempt when its body holds
    /// no JSON-RPC call, judged again as MCP when it does (see
    /// [`Shared::peek_json_rpc`]).
    fn exempt_unless_mcp(
        &mut self,
        req: Request<Body>,
        restored: bool,
        origin: Option<HeaderValue>,
        seen: Seen,
    ) -> ResponseFuture<S::Future, S::Error> {
        let shared = Arc::clone(&self.shared);
        // The service driven to readiness goes with the request; a clone
        // stays behind (as in `call_slow`).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(async move {
            let (mut req, calls) = match shared.peek_json_rpc(req, &seen).await {
                Ok(peeked) => peeked,
                Err(response) => return Ok(with_cors(response, origin.as_ref())),
            };
            if calls {
                req.extensions_mut().insert(super::operations::PlacedByBody);
                let mut judged = AuthService { inner, shared };
                return judged.route(req, seen.meta.request_id.clone()).await;
            }
            if restored {
                // As on any exempt route: the credentials an outer layer
                // took off stay off.
                req.headers_mut().remove(http::header::AUTHORIZATION);
            }
            let mut inner = inner;
            let response = inner.call(req).await?;
            Ok(finish(response, None, origin, None, None))
        }))
    }

    /// Everything that may wait: a verification that is not a cache hit
    /// (keys may be fetched), a body read for per-operation scopes, a list
    /// response filtered for the caller.
    /// `known`: the caller, when the token was already verified without
    /// waiting.
    fn call_slow(
        &mut self,
        mut req: Request<Body>,
        mut placement: Placement,
        origin: Option<HeaderValue>,
        known: Option<AuthContext>,
        mut seen: Seen,
        throttle: Option<PendingVerdict>,
    ) -> ResponseFuture<S::Future, S::Error> {
        let shared = Arc::clone(&self.shared);
        // Take the service that was driven to readiness; leave a clone behind
        // (the tower idiom for services called from a boxed future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // A verification that waits counts under the client's address from
        // now (before the next request is judged) until its failure, if it
        // fails, has been counted: the end of this future.
        let in_flight = match (&known, &seen.subject) {
            (None, Some(subject)) => shared.throttle.begin_verification(subject),
            _ => None,
        };
        ResponseFuture::boxed(Box::pin(async move {
            if let Some(pending) = throttle
                && let Verdict::Throttled(limit, secs) = pending.await
            {
                let response = shared.throttled(limit, secs, &seen);
                return Ok(with_cors(response, origin.as_ref()));
            }
            let ctx = match known {
                Some(ctx) => ctx,
                None => {
                    let span = verify_span(seen.request_id());
                    let started = std::time::Instant::now();
                    let verified = shared
                        .verify(
                            Some((req.method(), requested_path(req.extensions(), req.uri()))),
                            req.headers(),
                        )
                        .instrument(span.clone())
                        .await;
                    shared.latency.verify.record(started.elapsed());
                    record_outcome(&span, &verified, false);
                    match verified {
                        Ok(ctx) => ctx,
                        Err(err) => {
                            let response =
                                shared.reject(&err, req.method(), req.uri().path(), &seen, None);
                            // Counted by `reject` (the throttle's failure):
                            // no longer in flight.
                            drop(in_flight);
                            return Ok(with_cors(response, origin.as_ref()));
                        }
                    }
                }
            };
            // Verified: the call that follows is not a verification.
            drop(in_flight);
            let mut lists = false;
            let mut tasks = super::tasks::TaskWork::default();
            let required = if placement.reads_body {
                let was_mcp = placement.on_mcp;
                match shared
                    .required_for(req, &mut placement, &ctx, &mut seen)
                    .await
                {
                    Ok((buffered, mut required, has_lists, work)) => {
                        req = buffered;
                        lists = has_lists;
                        tasks = work;
                        if placement.on_mcp && !was_mcp {
                            // A JSON-RPC POST on a path the layer could not
                            // place: judged as MCP, its Host and Origin
                            // included (as `route` judges a placed one).
                            if let Some(refused) = shared.mcp_host_rule(
                                req.uri(),
                                &placement.present,
                                req.headers().get(http::header::HOST),
                            ) {
                                return Ok(shared.refuse(refused, &req, &seen.meta));
                            }
                            if let Err(refused) = check_origin(
                                &placement.present,
                                req.headers(),
                                &shared.allowed_origins,
                            ) {
                                return Ok(shared.refuse(refused, &req, &seen.meta));
                            }
                        }
                        // A service without tasks (as `McpServer` read
                        // it): rmcp refuses every `tasks/*` request itself
                        // (`-32601`) before any task is looked up, so it
                        // gives its own answer, exact in every revision
                        // and framing.
                        if !tasks.named.is_empty() && shared.service_tasks != Some(false) {
                            match shared.check_tasks(&tasks.named, &ctx).await {
                                // The owner: held to the creating call's scopes too.
                                Ok(needed) => crate::scope::extend_unique(&mut required, needed),
                                // Someone else's task, once the request's own
                                // scopes are there (else the usual 403 below).
                                Err(refusal)
                                    if refusal.is_unavailable()
                                        || shared.check_scopes(&ctx, &required).is_ok() =>
                                {
                                    let response = shared.refuse_task(
                                        refusal,
                                        &tasks,
                                        placement.stateless,
                                        &seen,
                                        &ctx,
                                        &req,
                                    );
                                    return Ok(with_cors(response, origin.as_ref()));
                                }
                                Err(_) => {}
                            }
                        }
                        Required::Computed(required)
                    }
                    Err(response) => return Ok(with_cors(response, origin.as_ref())),
                }
            } else {
                Required::Global
            };
            if let Err(response) = shared.check_session_in_store(&mut req, &ctx, &seen).await {
                return Ok(with_cors(*response, origin.as_ref()));
            }
            let admitted = match shared.admit(&mut req, ctx, required, placement, lists, &seen) {
                Ok(admitted) => admitted,
                Err(response) => return Ok(with_cors(*response, origin.as_ref())),
            };
            // A call that may create a task has its answer read for the
            // tasks it creates. In a legacy session whose client declared
            // no tasks (in its `initialize`, nor in this call's `_meta`)
            // rmcp lets no handler answer with one: left unread.
            let records = tasks.creates && (tasks.declared || !admitted.session_declines_tasks);
            let recorder = match (&admitted.step_up, records) {
                (Some(check), true) => Some(super::tasks::TaskRecorder {
                    store: Arc::clone(&shared.task_store),
                    owner: admitted.owner.unwrap_or_else(|| principal_key(&check.ctx)),
                    scopes: check.slot.required().to_vec(),
                    shared: Arc::clone(&shared),
                    meta: Arc::clone(&seen.meta),
                    slot: Some(Arc::clone(&check.slot)),
                }),
                _ => None,
            };
            let in_flight = admitted.in_flight;
            let mut response = inner.call(req).await?;
            // The ids are held by rmcp's own body, innermost: they are in
            // use for exactly as long as rmcp has the call (its stream ends
            // once the answer is routed), whatever the wrappers below do.
            if let Some(in_flight) = in_flight {
                response = in_flight.hold(response);
            }
            if let Some(listen) = admitted.listen {
                response = listen.hold(response);
            }
            if let Some(stream) = admitted.session_stream {
                response = stream.hold(response);
            }
            // A step below that reads the answer whole (a task's recording,
            // list filtering) hands on one rebuilt: metered again
            // (`unsent`), since the metering of the settled one ends there.
            let remeter = match &admitted.step_up {
                Some(check) if recorder.is_some() || admitted.filter_for.is_some() => {
                    Some(check.remeter())
                }
                _ => None,
            };
            if let Some(check) = admitted.step_up {
                response = match check.settle(response) {
                    Settled::Done(response) => response,
                    Settled::Held(held) => held.await,
                };
            }
            if let Some(recorder) = recorder {
                response = recorder.settle(response).await;
            }
            if let Some(ctx) = admitted.filter_for {
                response = filter_lists(response, &shared.policy, &ctx).await;
            }
            if let Some(remeter) = remeter {
                response = remeter.meter(response);
            }
            let hook = match admitted.session_hook {
                Some(hook) if shared.session_store().is_some() => {
                    response = hook.after_shared(response).await;
                    None
                }
                hook => hook,
            };
            Ok(finish(
                response,
                hook,
                origin,
                admitted.dpop_nonce,
                admitted.stream_end,
            ))
        }))
    }
}

/// The `DPoP-Nonce` response header (RFC 9449 section 8.1).
pub(crate) const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// The span around a verification: outcome and reason code, never token
/// material.
fn verify_span(request_id: &str) -> tracing::Span {
    tracing::debug_span!(
        "mcp_oauth2.verify",
        request_id,
        outcome = tracing::field::Empty,
        reason = tracing::field::Empty,
        cached = tracing::field::Empty,
    )
}

fn record_outcome(span: &tracing::Span, verified: &Result<AuthContext, AuthError>, cached: bool) {
    match verified {
        Ok(_) => span.record("outcome", "accepted").record("cached", cached),
        Err(e) => span
            .record("outcome", "rejected")
            .record("reason", e.kind().code()),
    };
}

/// The scopes a request needs before dispatch.
enum Required {
    /// The required scopes alone (nothing read from the body).
    Global,
    /// Declared and computed for the request's operations.
    Computed(Vec<String>),
}

/// What [`Shared::admit`] leaves to do around the inner service.
struct Admitted {
    /// The late step-up slot of a POST.
    step_up: Option<StepUpCheck>,
    /// Binds or forgets a legacy session once the response is known.
    session_hook: Option<SessionHook>,
    /// The request ids a legacy session request holds while its answer
    /// streams.
    in_flight: Option<InFlight>,
    /// The caller's user's slot of a `subscriptions/listen`, held while its
    /// stream is open.
    listen: Option<super::listens::ListenSlot>,
    /// A legacy session's event stream (its GET), counted as running while
    /// it is open (the session is not idle meanwhile).
    session_stream: Option<super::sessions::SessionStream>,
    /// The caller whose list results are filtered.
    filter_for: Option<AuthContext>,
    /// A fresh server nonce for a DPoP caller, when nonces are demanded.
    dpop_nonce: Option<HeaderValue>,
    /// When an event stream answering the request ends, in Unix seconds
    /// (its token's expiry plus the leeway), unless
    /// `close_streams_at_expiry(false)`.
    stream_end: Option<u64>,
    /// The caller's session owner key, when the session rules computed it.
    owner: Option<Owner>,
    /// The request runs in a legacy session this process knows, whose
    /// client declared no tasks (see
    /// [`Sessions::use_session`](super::sessions::Sessions::use_session)).
    session_declines_tasks: bool,
}

/// What the session rules leave to do and learned (see
/// [`Shared::session_rules`]).
#[derive(Default)]
struct SessionUse {
    hook: Option<SessionHook>,
    in_flight: Option<InFlight>,
    /// The caller's owner key (computed for a session's request).
    owner: Option<Owner>,
    /// See [`Admitted::session_declines_tasks`].
    declines_tasks: bool,
}

impl Shared {
    /// A layer applied inside `Router::nest` / `nest_service` sees requests
    /// with their prefix stripped, and only those under the prefix: the
    /// well-known metadata URL its challenges name (at the root, RFC 9728
    /// section 3.1) never reaches it, so clients following the challenge
    /// find nothing. Said once, loudly, with the remedy.
    fn warn_if_nested<B>(&self, req: &Request<B>) {
        use std::sync::atomic::Ordering;
        if self.nested_warned.load(Ordering::Relaxed) {
            return;
        }
        let requested = requested_path(req.extensions(), req.uri());
        if requested == req.uri().path() || self.nested_warned.swap(true, Ordering::Relaxed) {
            return;
        }
        // The app took `AuthLayer::metadata_router()` for this resource,
        // the remedy the warning names: where it merged it is beyond what
        // the layer can see (merged inside the nest, or dropped, it serves
        // nothing at the root, and nothing says so).
        if super::metadata_served_elsewhere(&self.challenge.resource_metadata) {
            return;
        }
        tracing::warn!(
            resource_metadata = %self.challenge.resource_metadata,
            "the AuthLayer (or the McpServer::into_router() router) is inside a nested router \
             (Router::nest or nest_service): the protected resource metadata its challenges \
             name is not routed to it; for an AuthLayer, apply it to the outermost router or \
             merge AuthLayer::metadata_router() into that; for McpServer, merge \
             into_router() into the outermost router instead of nesting it (its path is the \
             resource's, or McpServerBuilder::path)"
        );
    }

    /// The path of the URI a DPoP proof must name (`htu`, RFC 9449 section
    /// 4.3: the URI the client sent its request to) for a request to the
    /// local `path`. A proxy that maps the resource's public path to
    /// another local MCP path (`/api/mcp` to `/mcp`: `McpServerBuilder::path`,
    /// `AuthLayer::mcp_path`) hands the layer the local one; the client
    /// used the public one, so a request under the MCP path and not
    /// already under the resource's path is named by the resource's path
    /// followed by the rest of the request's. Elsewhere `path` itself.
    fn htu_path<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        public_path(path, &self.mcp_path, &self.resource_path)
    }

    /// Verifies a request's credentials: a Bearer token, or a DPoP-bound
    /// token with its proof for `request` (method and path; `None` when
    /// they are unknown, and then a DPoP proof cannot be checked).
    pub(super) async fn verify(
        &self,
        request: Option<(&Method, &str)>,
        headers: &http::HeaderMap,
    ) -> Result<AuthContext, AuthError> {
        let credentials = self.read_credentials(headers)?;
        let dpop = matches!(credentials, Credentials::Dpop { .. });
        self.verify_credentials(request, credentials)
            .await
            .map_err(|err| err.on_dpop_scheme(dpop))
    }

    /// The verdict on a Bearer token the verifier already trusts, bound as
    /// [`verify`](Self::verify) binds it (a bound token sent as Bearer is
    /// refused there, as `verify` refuses it on its claims); `None`: the
    /// token must be verified. For [`AuthLayer::authenticate`](super::AuthLayer::authenticate),
    /// which has no fast path of its own: without it, a known token's
    /// claims were read again for the key-binding check and its refusal
    /// memory consulted on every call (about 1.3 µs).
    pub(super) fn verify_known(
        &self,
        headers: &http::HeaderMap,
    ) -> Option<Result<AuthContext, AuthError>> {
        let Ok(Credentials::Bearer(token)) = self.read_credentials(headers) else {
            return None;
        };
        self.bearer_allowed().ok()?;
        match self.cached(token) {
            Ok(Some(ctx)) => Some(self.bind(ctx, None, crate::clock::now_unix())),
            Ok(None) | Err(_) => None,
        }
    }

    /// [`verify`](Self::verify) once the credentials are read.
    async fn verify_credentials(
        &self,
        request: Option<(&Method, &str)>,
        credentials: Credentials<'_>,
    ) -> Result<AuthContext, AuthError> {
        let now = crate::clock::now_unix();
        let (token, proof) = match credentials {
            Credentials::Bearer(token) => {
                self.bearer_allowed()?;
                if crate::dpop::jwt_binds_a_key(token.as_str()) {
                    return Err(AuthErrorKind::SenderConstrainedToken.into());
                }
                (token, None)
            }
            Credentials::Dpop { token, proof } => {
                let Some((method, path)) = request else {
                    return Err(AuthErrorKind::DpopUriMismatch.into());
                };
                // The proof first: a bad one costs no token verification
                // (and no fetch of keys).
                let htu_path = self.htu_path(path);
                let checked = self.dpop.check_proof(
                    proof,
                    method.as_str(),
                    &htu_path,
                    token.as_str(),
                    now,
                )?;
                (token, Some(checked))
            }
            Credentials::None => return Err(AuthErrorKind::MissingToken.into()),
        };
        if let Some(err) = self.refused.get(token.as_str(), now) {
            return Err(err);
        }
        let ctx = match self.verify_guarded(token).await? {
            Ok(ctx) => ctx,
            Err(err) => {
                if !err.judged_an_answer() {
                    self.refused.remember(token.as_str(), &err, now);
                }
                return Err(err);
            }
        };
        let ctx = self.bind(ctx, proof.as_ref(), now)?;
        if let Some(proof) = &proof {
            self.dpop.first_use_shared(proof, now).await?;
        }
        Ok(ctx)
    }

    /// The verifier's verdict on `token`, held to the verification
    /// deadline and with a panic contained: the outer `Err` is the layer's
    /// own refusal (`verification_timeout`, `verifier_failed`), never
    /// remembered against the token; the inner result is the verifier's.
    async fn verify_guarded(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Result<AuthContext, AuthError>, AuthError> {
        // The future is built inside the guarded block: a verifier that
        // panics while building it is contained too.
        let verifying =
            AssertUnwindSafe(async { self.verifier.verify(token).await }).catch_unwind();
        match tokio::time::timeout(self.verify_timeout, verifying).await {
            Ok(Ok(verdict)) => Ok(verdict),
            Ok(Err(_panic)) => Err(verifier_panicked()),
            Err(_elapsed) => {
                // DEBUG: the refusal's audit event (`auth.refused`, reason
                // `verification_timeout`, WARN) is the record, within the
                // refusal log limit; a hanging verifier under a flood would
                // otherwise write a line per request.
                tracing::debug!(
                    reason = AuthErrorKind::VerificationTimeout.code(),
                    timeout_ms = u64::try_from(self.verify_timeout.as_millis()).unwrap_or(u64::MAX),
                    "the token verifier did not decide within the verification deadline"
                );
                Err(AuthErrorKind::VerificationTimeout.into())
            }
        }
    }

    /// [`TokenVerifier::verify_cached`] with a panic contained (`Err`:
    /// `verifier_failed`).
    fn cached(&self, token: BearerToken<'_>) -> Result<Option<AuthContext>, AuthError> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.verifier.verify_cached(token)))
            .map_err(|_panic| verifier_panicked())
    }

    fn read_credentials<'h>(
        &self,
        headers: &'h http::HeaderMap,
    ) -> Result<Credentials<'h>, AuthError> {
        read_credentials(
            headers,
            self.max_token_bytes,
            self.dpop.mode() != DpopMode::Off,
            crate::verify::token_cache::is_last_well_formed_token,
        )
    }

    /// A Bearer token is refused before it is verified when DPoP is required.
    fn bearer_allowed(&self) -> Result<(), AuthError> {
        if self.dpop.mode() == DpopMode::Required {
            return Err(AuthErrorKind::DpopRequired.into());
        }
        Ok(())
    }

    /// RFC 9449 sections 7.1 and 7.2: a token bound to a key is accepted
    /// with a valid proof made with that key only; a proof needs a bound
    /// token; a proof is used once.
    fn bind(
        &self,
        ctx: AuthContext,
        proof: Option<&Verified>,
        now: u64,
    ) -> Result<AuthContext, AuthError> {
        match proof {
            None if ctx.is_dpop_bound() => {
                return Err(AuthErrorKind::SenderConstrainedToken.into());
            }
            None => {}
            Some(proof) => self.dpop.bind(proof, ctx.dpop_thumbprint(), now)?,
        }
        Ok(ctx.with_hierarchy(Arc::clone(&self.hierarchy)))
    }

    /// The verdict on a request's credentials when it needs no waiting: a
    /// missing or malformed `Authorization` header, or a token the verifier
    /// already trusts (with its DPoP proof checked). `None`: the token must
    /// be verified.
    fn verify_now(
        &self,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
        seen: &Seen,
    ) -> Option<Result<AuthContext, AuthError>> {
        let now = crate::clock::now_unix();
        let verified = match self.read_credentials(headers) {
            Ok(Credentials::Bearer(token)) => match self.bearer_allowed() {
                Ok(()) => match self.cached(token) {
                    Ok(Some(ctx)) => self.bind(ctx, None, now),
                    // A token refused for good a moment ago is refused
                    // again without a verification (see `refused`), as a
                    // fresh check would refuse it: a key-bound token sent
                    // as Bearer is told so first (found from outside: one
                    // remembered from a DPoP request got its `aud` fault).
                    Ok(None) => {
                        let err = self.refused.get(token.as_str(), now)?;
                        Err(if crate::dpop::jwt_binds_a_key(token.as_str()) {
                            AuthErrorKind::SenderConstrainedToken.into()
                        } else {
                            err
                        })
                    }
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            },
            // A proof's first use in a shared store is a wait: slow path.
            Ok(Credentials::Dpop { .. }) if self.dpop.replay_is_shared() => return None,
            Ok(Credentials::Dpop { token, proof }) => self
                .cached(token)
                .transpose()?
                .and_then(|ctx| {
                    self.dpop
                        .check_proof(
                            proof,
                            method.as_str(),
                            &self.htu_path(path),
                            token.as_str(),
                            now,
                        )
                        .and_then(|checked| self.bind(ctx, Some(&checked), now))
                })
                .map_err(|err| err.on_dpop_scheme(true)),
            Ok(Credentials::None) => Err(AuthErrorKind::MissingToken.into()),
            Err(err) => Err(err),
        };
        record_outcome(&verify_span(seen.request_id()), &verified, verified.is_ok());
        Some(verified)
    }

    /// Admits a verified caller: the scopes `required` (RFC 6750 section
    /// 3.1), the ownership of a legacy session and the session caps; then
    /// hands the context to the inner service through the request
    /// extensions. `Err` is the response to send instead (boxed: a rare path).
    fn admit(
        self: &Arc<Self>,
        req: &mut Request<Body>,
        ctx: AuthContext,
        required: Required,
        placement: Placement,
        lists: bool,
        seen: &Seen,
    ) -> Result<Admitted, Box<Response>> {
        // A named legacy session is judged before the scopes: anyone but
        // its owner gets the 404 of an unknown session on every method,
        // whatever scopes the token holds (found from outside: a caller
        // lacking the call's scope got the 403, and stepped up to meet the
        // 404). Its request ids are claimed only once the call is admitted.
        let named = match self.bind_sessions.then(|| session_id(req)).flatten() {
            Some(id) => Some((self.named_session(req, &ctx, &id, placement, seen)?, id)),
            None => None,
        };
        let needed: &[String] = match &required {
            Required::Global => &self.global,
            Required::Computed(scopes) => scopes,
        };
        if let Err(err) = self.check_scopes(&ctx, needed) {
            return Err(Box::new(self.reject(
                &err,
                req.method(),
                req.uri().path(),
                seen,
                Some(&ctx),
            )));
        }
        let sessions = match named {
            Some((mut used, id)) => {
                used.in_flight = self.claim_request_ids(req, &id, &ctx, seen)?;
                used
            }
            None if self.bind_sessions => self.opening_session(req, &ctx, placement, seen)?,
            None => SessionUse::default(),
        };
        // A listen's stream stays open: within its user's cap (`listens.rs`).
        let listen = if placement.listens {
            match self.listens.open(user_key(&ctx)) {
                Some(slot) => Some(slot),
                None => {
                    return Err(Box::new(self.refuse_caller(
                        Refused::TooManyListens,
                        req,
                        &seen.meta,
                        &ctx,
                    )));
                }
            }
        } else {
            None
        };
        self.outcomes.accept();
        self.audit.emit(&Record {
            meta: Some(&seen.meta),
            ctx: Some(&ctx),
            needed,
            ..Record::new(Event::Accepted, "ok", None, &self.document.resource)
        });
        tracing::debug!(
            subject = crate::audit::loggable(ctx.subject()).as_ref(),
            issuer = ctx.issuer(),
            "authenticated a request"
        );
        // No token passthrough (MCP "Security Considerations"): the
        // credential is taken out of the request before rmcp and the
        // handlers see it; the context keeps it for the token exchange
        // alone. The opt-out leaves it in place, marked sensitive so that
        // Debug output of the request (rmcp logs request parts at trace
        // level) does not show it.
        let headers = req.headers_mut();
        let ctx = match headers.remove(http::header::AUTHORIZATION) {
            Some(mut value) => {
                value.set_sensitive(true);
                if self.forward_authorization {
                    headers.insert(http::header::AUTHORIZATION, value.clone());
                }
                ctx.with_subject_token(SubjectToken::new(value))
            }
            None => ctx,
        };
        if self.forward_authorization {
            if let http::header::Entry::Occupied(mut proofs) = headers.entry(crate::bearer::DPOP) {
                for v in proofs.iter_mut() {
                    v.set_sensitive(true);
                }
            }
        } else if placement.present.dpop {
            headers.remove(crate::bearer::DPOP);
        }
        if placement.present.relayed_credentials {
            let relayed: Vec<http::HeaderName> = headers
                .keys()
                .filter(|name| super::http_rules::relays_credentials(name))
                .cloned()
                .collect();
            for name in relayed {
                if self.forward_authorization {
                    if let http::header::Entry::Occupied(mut values) = headers.entry(name) {
                        for v in values.iter_mut() {
                            v.set_sensitive(true);
                        }
                    }
                } else {
                    headers.remove(name);
                }
            }
        }
        let filter_for = (lists && self.policy.hide_unauthorized).then(|| ctx.clone());
        // A POST carries calls whose handlers may ask for more scopes (late
        // step-up): a fresh slot, shared with the handler's context.
        let step_up = (req.method() == Method::POST).then(|| {
            let required = match required {
                Required::Global => Arc::clone(&self.global),
                Required::Computed(scopes) => scopes.into(),
            };
            StepUpCheck {
                shared: Arc::clone(self),
                slot: Arc::new(StepUp::new(required)),
                meta: Arc::clone(&seen.meta),
                ctx: ctx.clone(),
            }
        });
        let ctx = match &step_up {
            Some(check) => ctx.with_step_up(Arc::clone(&check.slot)),
            None => ctx,
        };
        // RFC 9449 section 8.2: a DPoP caller gets the next nonce with
        // every answer, before the one it holds expires.
        let dpop_nonce = if ctx.is_dpop_bound() {
            self.dpop
                .fresh_nonce()
                .and_then(|n| HeaderValue::try_from(n).ok())
        } else {
            None
        };
        let stream_end = self
            .stream_leeway
            .and_then(|leeway| super::stream_end::end_of(&ctx, leeway));
        let ctx = ctx.with_request_id(seen.meta.request_id.clone());
        req.extensions_mut().insert(ctx);
        // A legacy session's GET (the listen above): its session is in use
        // while the stream is open (the session rules checked its owner).
        let session_stream = match (&listen, req.method()) {
            (Some(_), &Method::GET) => req
                .headers()
                .get(SESSION_HEADER)
                .and_then(|id| id.to_str().ok())
                .and_then(|id| self.sessions.open_stream(id)),
            _ => None,
        };
        Ok(Admitted {
            step_up,
            session_hook: sessions.hook,
            in_flight: sessions.in_flight,
            listen,
            session_stream,
            filter_for,
            dpop_nonce,
            stream_end,
            owner: sessions.owner,
            session_declines_tasks: sessions.declines_tasks,
        })
    }

    /// Legacy sessions: session `id`, named by the request, must belong to
    /// the caller. Returns what to do once the response is known (the
    /// request ids are claimed by the caller of this, once the scopes are
    /// met). Sessions do not exist in the stateless revision: its requests
    /// had their session header removed before this point.
    fn named_session(
        self: &Arc<Self>,
        req: &Request<Body>,
        ctx: &AuthContext,
        id: &str,
        placement: Placement,
        seen: &Seen,
    ) -> Result<SessionUse, Box<Response>> {
        let limits = self.sessions.limits();
        if req
            .headers()
            .get_all(SESSION_HEADER)
            .iter()
            .nth(1)
            .is_some()
        {
            // Two session ids: never guess which one the service uses.
            // Logged as such, whoever's they are (the owner's own id
            // twice was logged as another principal's).
            self.session_refused(ctx, seen, "session_id_repeated");
            return Err(Box::new(session_not_found()));
        }
        if !limits.enabled {
            return Err(Box::new(self.refuse_caller(
                Refused::SessionsDisabled,
                req,
                &seen.meta,
                ctx,
            )));
        }
        let owner = principal_key(ctx);
        // An `initialize` sent in the session may declare tasks anew.
        let local = self
            .sessions
            .use_session(id, &owner, placement.session_tasks);
        // With a shared store, the store decided (`check_session_in_store`);
        // the local table only kept its idle clock. `foreign` is only
        // read when the session is not the caller's: the answer is the
        // same 404 either way, and the log tells an id of another
        // principal from one that is unknown, expired or deleted (a
        // stale client).
        let (owned, foreign) = match self.session_store() {
            Some(_) => {
                let in_store = req.extensions().get::<OwnedInStore>().is_some();
                if !in_store && local.is_some() {
                    // The caller's session here, gone from the store:
                    // ended on another replica (a DELETE there) or lost
                    // with the store's data. The store decides: it is
                    // forgotten and closed here too, freeing its slot
                    // (found from outside: it stayed counted, and the
                    // owner's refused calls kept its idle clock going).
                    self.sessions.unbind(id);
                    self.sessions.close_one(id);
                }
                // A session this replica bound to someone else stays
                // theirs, whatever the store says: the store's values
                // are plain owner digests, and a writer to it could
                // copy the caller's onto another's session (found from
                // outside: bob's call ran in alice's session on the
                // replica that created it). The extra lookup is on a
                // rare path: the caller's own session held elsewhere.
                let owned = in_store && (local.is_some() || !self.sessions.knows(id));
                // Refused although the store named the caller: this
                // replica's binding is another principal's.
                let foreign = in_store || req.extensions().get::<ForeignInStore>().is_some();
                (owned, foreign)
            }
            None => {
                let owned = local.is_some();
                (owned, !owned && self.sessions.knows(id))
            }
        };
        if !owned {
            let reason = if foreign {
                "session_not_owned"
            } else {
                "session_unknown"
            };
            self.session_refused(ctx, seen, reason);
            return Err(Box::new(session_not_found()));
        }
        let hook = (req.method() == Method::DELETE).then(|| SessionHook {
            shared: Arc::clone(self),
            then: AfterResponse::Forget(id.to_owned()),
            meta: Arc::clone(&seen.meta),
        });
        Ok(SessionUse {
            hook,
            in_flight: None,
            owner: Some(owner),
            // With a shared store another replica may have seen a
            // later `initialize` of the session: its calls are read.
            declines_tasks: local == Some(false) && self.session_store().is_none(),
        })
    }

    /// Legacy sessions: a request naming none that may create one must fit
    /// the caps. Returns what to do once the response is known.
    fn opening_session(
        self: &Arc<Self>,
        req: &Request<Body>,
        ctx: &AuthContext,
        placement: Placement,
        seen: &Seen,
    ) -> Result<SessionUse, Box<Response>> {
        let limits = self.sessions.limits();
        // Only a POST without a session can create one (`initialize`; see
        // `Placement::opens_session`).
        if req.method() != Method::POST || !limits.enabled || !placement.opens_session {
            return Ok(SessionUse::default());
        }
        let owner = if placement.stateless || !placement.on_mcp {
            // A stateless call creates no session (an `initialize` sent with
            // a stateless header still might), nor does a request the layer
            // did not judge as MCP: the hook checks the response and binds
            // what was created, within the caps.
            None
        } else {
            let user = user_key(ctx);
            if let Err(refusal) = self.sessions.may_open(&user) {
                return Err(Box::new(self.refuse_caller(
                    Refused::TooManySessions(refusal.code()),
                    req,
                    &seen.meta,
                    ctx,
                )));
            }
            Some((principal_key(ctx), user))
        };
        Ok(SessionUse {
            hook: Some(SessionHook {
                shared: Arc::clone(self),
                meta: Arc::clone(&seen.meta),
                then: AfterResponse::Bind(
                    owner.map_or_else(
                        || OwnerOf::Later(ctx.clone()),
                        |(owner, user)| OwnerOf::Known(owner, user, ctx.clone()),
                    ),
                    placement.session_tasks,
                ),
            }),
            ..SessionUse::default()
        })
    }

    /// Claims the JSON-RPC request ids of a POST in session `session` (read
    /// from its body: [`RequestIds`]) for as long as its answer streams: a
    /// second request with an id in flight would receive the first one's
    /// answer from rmcp (400 `request_id_in_use`).
    fn claim_request_ids(
        self: &Arc<Self>,
        req: &Request<Body>,
        session: &str,
        ctx: &AuthContext,
        seen: &Seen,
    ) -> Result<Option<InFlight>, Box<Response>> {
        let Some(RequestIds(ids, body)) = req.extensions().get::<RequestIds>() else {
            return Ok(None);
        };
        if ids.is_empty() {
            // A cancellation of calls in flight: rmcp ends their streams at
            // once, their handlers run on; their ids stay claimed.
            let cancelled = cancelled_ids(body);
            if !cancelled.is_empty() {
                self.sessions.retire_ids(session, &cancelled);
            }
            return Ok(None);
        }
        let kind = match self.sessions.claim_ids(session, ids) {
            Ok(()) => {
                return Ok(Some(InFlight {
                    shared: Arc::clone(self),
                    session: session.to_owned(),
                    ids: ids.clone(),
                }));
            }
            Err(IdClaim::InUse) => AuthErrorKind::RequestIdInUse,
            Err(IdClaim::Repeated) => AuthErrorKind::RequestIdRepeated,
            Err(IdClaim::TooMany) => AuthErrorKind::TooManyRequestsInFlight,
        };
        self.outcomes.reject(kind.code());
        self.audit_body_refusal(kind, seen, Some(ctx));
        tracing::debug!(
            reason = kind.code(),
            status = 400,
            request_id = seen.request_id(),
            "refused a session request for its JSON-RPC ids"
        );
        let id = match ids.as_slice() {
            [_] => super::operations::single_request_id(body),
            _ => None,
        };
        Err(Box::new(request_id_refused(
            kind,
            id.as_deref(),
            Some(seen.request_id()),
        )))
    }

    pub(super) fn check_scopes(
        &self,
        ctx: &AuthContext,
        required: &[String],
    ) -> Result<(), AuthError> {
        if self.hierarchy.missing(ctx.scopes(), required).is_empty() {
            Ok(())
        } else {
            // RFC 6750 section 3.1 / MCP "Runtime Insufficient Scope Errors":
            // name every scope the operation needs, in one challenge.
            Err(AuthError::insufficient_scope(required.iter().cloned()))
        }
    }

    /// A legacy session refused to `ctx` (404): counted and audited with
    /// `reason` (`session_not_owned`, `session_unknown`, `session_id_repeated`).
    fn session_refused(&self, ctx: &AuthContext, seen: &Seen, reason: &'static str) {
        self.outcomes.reject(reason);
        self.audit.emit(&Record {
            meta: Some(&seen.meta),
            ctx: Some(ctx),
            ..Record::new(
                Event::SessionRefused,
                reason,
                Some(404),
                &self.document.resource,
            )
        });
    }

    /// The 429 of a throttled request: counted, audited, answered.
    pub(super) fn throttled(&self, limit: Limit, secs: u64, seen: &Seen) -> Response {
        self.outcomes.reject(limit.reason());
        self.audit.emit(&Record {
            meta: Some(&seen.meta),
            ..Record::new(
                Event::Throttled,
                limit.reason(),
                Some(429),
                &self.document.resource,
            )
        });
        throttled_response(limit.reason(), secs, Some(seen.request_id()))
    }

    /// The answer to a refused request: counted, logged, audited (and, for a
    /// failed authentication, counted by the throttle), then rendered with
    /// its challenge. `ctx`: the caller, when it was authenticated.
    pub(super) fn reject(
        &self,
        err: &AuthError,
        method: &Method,
        path: &str,
        seen: &Seen,
        ctx: Option<&AuthContext>,
    ) -> Response {
        let kind = err.kind();
        self.outcomes.reject(kind.code());
        if kind == AuthErrorKind::StoreUnavailable {
            // The DPoP replay store did not answer (the refusal fails closed).
            self.throttle.count_store_error("dpop");
        }
        let event = event_of(kind);
        self.audit.emit(&Record {
            meta: Some(&seen.meta),
            ctx,
            needed: err.required_scopes(),
            error: Some(err),
            ..Record::new(
                event,
                reason_of(err),
                Some(kind.status().as_u16()),
                &self.document.resource,
            )
        });
        // A failed authentication counts against the client, unless the
        // server could not decide (keys or introspection unavailable, the
        // verification deadline, a verifier that panicked), or asked for a
        // DPoP nonce: a step every client of a nonce-demanding server takes
        // (RFC 9449 section 8), answered before the proof's signature is
        // checked (found from outside: five clients behind one address
        // taking that step used up a limit of five, and every request from
        // there got 429).
        if ctx.is_none()
            && event == Event::Refused
            && !matches!(
                kind.error_code(),
                Some(
                    crate::ErrorCode::TemporarilyUnavailable
                        | crate::ErrorCode::ServerError
                        | crate::ErrorCode::UseDpopNonce
                )
            )
            && let Some(subject) = &seen.subject
        {
            if !fails_the_token(kind) && subject.fingerprint.is_some() {
                // The token may be good: what failed is the proof of
                // possession its sender gave, the scheme, or the request
                // around the token (`fails_the_token`). Counted
                // against the sender's address only, or a thief holding a
                // stolen DPoP-bound token, unable to use it, could still
                // get it refused to its holder everywhere (found from
                // outside: 429 for the holder with valid proofs).
                let sender = crate::throttle::Subject {
                    fingerprint: None,
                    ..subject.clone()
                };
                self.throttle.record_failure(&sender);
            } else {
                self.throttle.record_failure(subject);
            }
        }
        match kind {
            AuthErrorKind::MissingToken => {
                tracing::debug!(reason = kind.code(), method = %logged(method.as_str()), path = %logged(path), "request without a bearer token")
            }
            // DEBUG too: the audit event is the record, and each failed
            // fetch of the key set is a WARN of its own (at most one per
            // retry interval); a WARN per refused request wrote a line for
            // every request of a flood while the keys were unavailable
            // (found from outside).
            AuthErrorKind::KeysUnavailable => {
                tracing::debug!(reason = kind.code(), method = %logged(method.as_str()), path = %logged(path), "rejected: verification keys unavailable")
            }
            // DEBUG: the audit event above (`authz.refused`, `auth.refused`,
            // WARN) is the operator's record of a refusal; a second line per
            // refused request would double what a flood of bad tokens writes
            // to the log (measured: logging was about a fifth of a refusal's
            // CPU, BENCHMARKS.md).
            AuthErrorKind::InsufficientScope => tracing::debug!(
                reason = kind.code(),
                status = 403,
                method = %logged(method.as_str()),
                path = %logged(path),
                required = %err.required_scopes().join(" "),
                "rejected: insufficient scope"
            ),
            _ => tracing::debug!(
                reason = kind.code(),
                status = kind.status().as_u16(),
                method = %logged(method.as_str()),
                path = %logged(path),
                "rejected a request"
            ),
        }
        if kind == AuthErrorKind::McpHeaderMismatch {
            return header_mismatch_response(
                super::http_rules::HeaderFault::Differs,
                None,
                Some(seen.request_id()),
            );
        }
        // RFC 9449 section 7.1: the error of a request made with the `DPoP`
        // scheme goes on the `DPoP` challenge. Its credentials' errors are
        // marked so; an admitted caller with a bound key used the scheme.
        let dpop_scheme = ctx.is_some_and(AuthContext::is_dpop_bound);
        let mut response =
            rejection_response(err, &self.challenge, Some(seen.request_id()), dpop_scheme);
        // RFC 9449 section 9: with server nonces, every 401 carries a fresh
        // one (the client's next proof needs it).
        if response.status() == http::StatusCode::UNAUTHORIZED
            && let Some(nonce) = self.dpop.fresh_nonce()
            && let Ok(value) = HeaderValue::try_from(nonce)
        {
            response.headers_mut().insert(DPOP_NONCE, value);
        }
        response
    }

    /// The Host rules of a request judged as MCP, beyond those of every
    /// request (`check_host`): it must name a host (`missing_host`), one
    /// the allowlist admits when there is one (`host_not_allowed`). `host`:
    /// its first `Host` field.
    fn mcp_host_rule(
        &self,
        uri: &http::Uri,
        present: &Present,
        host: Option<&HeaderValue>,
    ) -> Option<Refused> {
        if names_no_host(uri, present) {
            return Some(Refused::MissingHost);
        }
        match &self.allowed_hosts {
            Some(hosts) if !hosts.admits(uri, host) => Some(Refused::HostNotAllowed),
            _ => None,
        }
    }

    /// A refusal that is not about the token (no challenge).
    pub(super) fn refuse<B>(
        &self,
        refused: Refused,
        req: &Request<B>,
        meta: &RequestMeta,
    ) -> Response {
        self.refuse_as(refused, req, meta, None)
    }

    /// [`refuse`](Self::refuse) for a rule applied after the token was
    /// verified (the session and listen caps, a store that did not answer
    /// for a verified caller's session or task): the audit event names the
    /// caller, as `authz.refused` does (found from outside: a user filling
    /// the caps was recorded without a name).
    pub(super) fn refuse_caller<B>(
        &self,
        refused: Refused,
        req: &Request<B>,
        meta: &RequestMeta,
        ctx: &AuthContext,
    ) -> Response {
        self.refuse_as(refused, req, meta, Some(ctx))
    }

    /// [`refused_by`](Self::refused_by), and the debug line naming the
    /// request (and the caller, when verified).
    fn refuse_as<B>(
        &self,
        refused: Refused,
        req: &Request<B>,
        meta: &RequestMeta,
        ctx: Option<&AuthContext>,
    ) -> Response {
        let response = self.refused_by(refused, meta, ctx);
        tracing::debug!(
            reason = refused.reason(),
            method = %logged(req.method().as_str()),
            path = %logged(req.uri().path()),
            request_id = meta.request_id.as_str(),
            subject = ctx.map(|c| crate::audit::loggable(c.subject())).as_deref(),
            "refused a request"
        );
        response
    }

    /// Counts a refusal, writes its audit event (under the refusal log
    /// limit like every refusal event: a flood of foreign `Origin`s or
    /// hosts writes at most the budget; found from outside: a line for each
    /// at INFO) and builds its answer. Called as it is for a refusal after
    /// the inner service answered (a session created over the caps in a
    /// race, or whose owner the shared store did not record).
    pub(super) fn refused_by(
        &self,
        refused: Refused,
        meta: &RequestMeta,
        ctx: Option<&AuthContext>,
    ) -> Response {
        self.outcomes.reject(refused.reason());
        let response = refused.response(Some(meta.request_id.as_str()));
        self.audit.emit(&Record {
            meta: Some(meta),
            ctx,
            ..Record::new(
                Event::RequestRefused,
                refused.reason(),
                Some(response.status().as_u16()),
                &self.document.resource,
            )
        });
        response
    }
}

/// A request's method or path as a debug line copies it: cut and cleaned
/// like every text of the request in an audit event (a JWT anywhere in it
/// redacted). Found from outside: a token sent as the method (any token
/// is a legal method) was written whole, and 100 KB methods wrote 100 KB
/// lines. Evaluated only when the line is enabled.
pub(super) fn logged(text: &str) -> Box<str> {
    crate::audit::clean(text.as_bytes())
}

/// Whether a refusal of `kind` judged the token itself (`invalid_token`:
/// its signature, issuer, audience, expiry, claims), and so counts against
/// the token wherever it is sent from. Everything else failed its sender:
/// how the token was presented (its DPoP proof, a server nonce the proof
/// lacked, a bound token sent with the `Bearer` scheme, another scheme) or
/// the request around it (every `invalid_request`: two `Authorization`
/// fields, a token in the query, a malformed field), which the token's
/// holder may not be (see the throttle). Found from outside: a thief
/// sending a stolen bound token beside a second `Authorization` field,
/// with `?access_token=` in the query, or under the `Basic` scheme, got it
/// refused to its holder.
fn fails_the_token(kind: AuthErrorKind) -> bool {
    kind.error_code() == Some(crate::ErrorCode::InvalidToken)
        // The scheme, not the token: a bound token sent as `Bearer`, or any
        // `Bearer` token where DPoP is required (refused before the token
        // is read; found from outside: a thief's `Bearer` requests got the
        // holder's bound token throttled).
        && !matches!(
            kind,
            AuthErrorKind::SenderConstrainedToken | AuthErrorKind::DpopRequired
        )
}

/// [`Shared::htu_path`]: `path` under the local MCP path `local` named by
/// the resource's path `public` (trimmed; `""` for a root resource, which
/// maps nothing). A path under both is named by the longer, the more
/// specific (a local `/mcp/v2` for a public `/mcp`; a server nested at
/// `/mcp` for a public `/mcp/mcp`, whose requested path is the public one).
fn public_path<'p>(path: &'p str, local: &str, public: &str) -> std::borrow::Cow<'p, str> {
    use super::operations::under_path;
    let local = if local == "/" { "" } else { local };
    let under_local = local.is_empty() || under_path(path, local);
    let under_public = under_path(path, public);
    if public.is_empty()
        || public == local
        || !under_local
        || (under_public && public.len() >= local.len())
    {
        return path.into();
    }
    match path.get(local.len()..) {
        Some(rest) => format!("{public}{rest}").into(),
        None => path.into(),
    }
}

/// The refusal of a request whose verifier panicked (logged here, once,
/// without the token: the panic message is the verifier's and may name it).
fn verifier_panicked() -> AuthError {
    tracing::error!(
        reason = AuthErrorKind::VerifierFailed.code(),
        "the token verifier panicked; the request is refused"
    );
    AuthErrorKind::VerifierFailed.into()
}

/// The `params.requestId` of each `notifications/cancelled` in a session
/// POST's body (one message, or a batch), spelled as the claimed ids are.
fn cancelled_ids(body: &[u8]) -> Vec<Box<str>> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let messages = match &value {
        serde_json::Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    messages
        .into_iter()
        .filter(|m| {
            m.get("method").and_then(serde_json::Value::as_str) == Some("notifications/cancelled")
        })
        .filter_map(|m| crate::operation::value_key(m.get("params")?.get("requestId")?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::public_path;

    // RFC 9449 section 4.3: the `htu` a proof names is the URI the client
    // used, the public one, whatever local path a proxy hands the layer.
    #[test]
    fn a_local_mcp_path_is_named_by_the_resource_path() {
        for (path, local, public, named) in [
            // No mapping: the same path, a root resource.
            ("/mcp", "/mcp", "/mcp", "/mcp"),
            ("/mcp", "/mcp", "", "/mcp"),
            // A proxy strips a prefix, or adds one.
            ("/mcp", "/mcp", "/api/mcp", "/api/mcp"),
            ("/mcp/x", "/mcp", "/api/mcp", "/api/mcp/x"),
            ("/rpc/v2", "/rpc/v2", "/mcp", "/mcp"),
            ("/mcp/v2", "/mcp/v2", "/mcp", "/mcp"),
            // Inside a nest the requested path is the public one already.
            ("/api/mcp", "/mcp", "/api/mcp", "/api/mcp"),
            ("/mcp/mcp", "/mcp", "/mcp/mcp", "/mcp/mcp"),
            // Elsewhere, and every path under a root MCP path.
            ("/other", "/mcp", "/api/mcp", "/other"),
            ("/mcpx", "/mcp", "/api/mcp", "/mcpx"),
            ("/x", "/", "/api/mcp", "/api/mcp/x"),
        ] {
            assert_eq!(
                public_path(path, local, public),
                named,
                "{path} {local} {public}"
            );
        }
    }
}
