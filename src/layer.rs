//! The tower [`Layer`] that protects any axum (or tower) service:
//! [`AuthLayer`] and [`AuthService`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{Method, Request, StatusCode};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument as _;

use crate::bearer::{Credentials, read_bearer};
use crate::challenge::{ChallengeParams, rejection_response};
use crate::config::{AuthConfig, ExemptRoute};
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::metadata::{MetadataEndpoint, ProtectedResourceMetadata};
use crate::operation::{OperationError, check_headers, read_operations};
use crate::scope::{ScopeHierarchy, ScopePolicy};
use crate::verify::TokenVerifier;

/// Default cap on a JSON-RPC body read for per-operation scope decisions
/// (the same as rmcp's default request limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How many legacy sessions are remembered with their owner.
const MAX_SESSIONS: usize = 100_000;
const SESSION_HEADER: &str = "mcp-session-id";

/// Protects a service with OAuth 2.1 bearer tokens and serves the RFC 9728
/// metadata.
///
/// For every request:
/// - the two well-known metadata paths are answered directly, without a token;
/// - exempt routes and CORS preflights (`OPTIONS`, which never carry
///   credentials) pass through;
/// - otherwise the bearer token is read from the `Authorization` header and
///   verified; on the MCP endpoint, a POST's JSON-RPC operations are read and
///   their declared scope requirements checked (403 `insufficient_scope`
///   before rmcp dispatches), and a legacy session is only usable by the
///   principal that created it (404 for anyone else); the resulting
///   [`AuthContext`] is put in the request extensions. Failures get the
///   RFC 6750 challenge.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mcp_oauth2::{AuthConfig, AuthContext, AuthLayer};
///
/// let config = AuthConfig::builder()
///     .issuer("https://auth.example.com")
///     .resource("https://api.example.com/api")
///     .build()?;
/// let app: axum::Router = axum::Router::new()
///     .route("/api", axum::routing::get(|auth: AuthContext| async move {
///         format!("hello {}", auth.subject())
///     }))
///     .layer(AuthLayer::new(config)?);
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    verifier: Arc<dyn TokenVerifier>,
    metadata: MetadataEndpoint,
    challenge: ChallengeParams,
    policy: ScopePolicy,
    hierarchy: Arc<ScopeHierarchy>,
    exempt: Vec<ExemptRoute>,
    max_token_bytes: usize,
    max_body_bytes: usize,
    mcp_path: String,
    bind_sessions: bool,
    sessions: Arc<Sessions>,
    outcomes: Arc<crate::metrics::Outcomes>,
    document: ProtectedResourceMetadata,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("resource", &self.shared.document.resource)
            .field(
                "resource_metadata",
                &self.shared.challenge.resource_metadata,
            )
            .field("mcp_path", &self.shared.mcp_path)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// A layer verifying JWT access tokens with a [`JwtVerifier`](crate::JwtVerifier) built from
    /// `config` (and opaque tokens by introspection, when configured).
    pub fn new(config: AuthConfig) -> Result<Self, ConfigError> {
        let (verifier, _) = crate::verify::from_config(&config)?;
        Ok(Self::with_verifier(config, verifier))
    }

    /// A layer using a custom verifier. `config` still provides the
    /// resource, the metadata, the scope policy and the exempt routes.
    pub fn with_verifier(config: AuthConfig, verifier: impl TokenVerifier) -> Self {
        // The challenge names the scopes requests need: the required ones, or
        // else the basic scopes of the metadata (MCP "Scope Selection Strategy").
        let scope = if config.required_scopes.is_empty() {
            config.scopes_supported.join(" ")
        } else {
            config.required_scopes.join(" ")
        };
        Self {
            shared: Arc::new(Shared {
                verifier: Arc::new(verifier),
                metadata: MetadataEndpoint::new(&config),
                challenge: ChallengeParams {
                    resource_metadata: config.resource_metadata_url(),
                    scope,
                },
                hierarchy: Arc::new(config.scope_policy.hierarchy.clone()),
                policy: config.scope_policy.clone(),
                exempt: config.exempt.clone(),
                max_token_bytes: config.max_token_bytes,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                mcp_path: config.resource_path().to_owned(),
                bind_sessions: true,
                sessions: Arc::new(Sessions::default()),
                outcomes: Arc::default(),
                document: ProtectedResourceMetadata::from_config(&config),
            }),
        }
    }

    /// The local path of the MCP endpoint, where JSON-RPC operations are
    /// read and sessions bound (default: the resource URI's path). Set it
    /// when a proxy maps the public path to another local one.
    #[must_use]
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.shared).mcp_path = path.into();
        self
    }

    /// Cap on a JSON-RPC body read for scope decisions (default
    /// [`DEFAULT_MAX_BODY_BYTES`]); larger bodies get 400 `invalid_request`.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_body_bytes = bytes;
        self
    }

    /// Whether legacy sessions (`Mcp-Session-Id`) are bound to the principal
    /// that created them (default on). The binding lives in this process: a
    /// session id this layer did not see created is refused with 404 (clients
    /// then start a new session), so multi-instance deployments need sticky
    /// sessions or the stateless 2026-07-28 protocol.
    #[must_use]
    pub fn bind_sessions(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.shared).bind_sessions = on;
        self
    }

    /// A handle on this layer's counters (shared with every clone).
    pub fn metrics(&self) -> Metrics {
        Metrics(Arc::clone(&self.shared))
    }

    /// The metadata document this layer serves.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.shared.document
    }

    /// An axum router serving the metadata at both well-known paths, for
    /// apps that apply the layer to some routes only (`route_layer`).
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        self.shared.metadata.router()
    }

    /// Authenticates a request's headers (token and required scopes), without
    /// a service behind: the building block of the layer, for custom integrations.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthContext, AuthError> {
        let ctx = self.shared.verify(headers).await?;
        self.shared.check_scopes(&ctx, &self.shared.policy.global)?;
        Ok(ctx)
    }
}

impl Shared {
    async fn verify(&self, headers: &http::HeaderMap) -> Result<AuthContext, AuthError> {
        let token = match read_bearer(headers, self.max_token_bytes)? {
            Credentials::Bearer(token) => token,
            Credentials::None => return Err(AuthErrorKind::MissingToken.into()),
        };
        let ctx = self.verifier.verify(token).await?;
        Ok(ctx.with_hierarchy(Arc::clone(&self.hierarchy)))
    }

    /// The verdict on a request's credentials when it needs no waiting: a
    /// missing or malformed `Authorization` header, or a token the verifier
    /// already trusts. `None`: the token must be verified.
    fn verify_now(&self, headers: &http::HeaderMap) -> Option<Result<AuthContext, AuthError>> {
        let verified = match read_bearer(headers, self.max_token_bytes) {
            Ok(Credentials::Bearer(token)) => Ok(self
                .verifier
                .verify_cached(token)?
                .with_hierarchy(Arc::clone(&self.hierarchy))),
            Ok(Credentials::None) => Err(AuthErrorKind::MissingToken.into()),
            Err(err) => Err(err),
        };
        record_outcome(&verify_span(), &verified, verified.is_ok());
        Some(verified)
    }

    /// Admits a verified caller: the scopes `required` (RFC 6750 section
    /// 3.1), the ownership of a legacy session; then hands the context to
    /// the inner service through the request extensions. `Err` is the
    /// response to send instead (boxed: a rare path).
    fn admit(
        self: &Arc<Self>,
        req: &mut Request<Body>,
        ctx: AuthContext,
        required: &[String],
        on_mcp: bool,
        lists: bool,
    ) -> Result<Admitted, Box<Response>> {
        if let Err(err) = self.check_scopes(&ctx, required) {
            return Err(Box::new(self.reject(&err, req.method(), req.uri().path())));
        }
        let session_hook = if on_mcp && self.bind_sessions {
            let session = session_id(req);
            if let Some(id) = &session
                && !self.sessions.is_owned_by(id, &ctx)
            {
                tracing::warn!(
                    subject = ctx.subject(),
                    issuer = ctx.issuer(),
                    reason = "session_not_owned",
                    "refused a session id that this principal did not create"
                );
                return Err(Box::new(session_not_found()));
            }
            let is_delete = req.method() == Method::DELETE;
            // Only a request without a session may create one, and only a
            // DELETE ends one: other requests need nothing afterwards.
            (session.is_none() || is_delete).then(|| SessionHook {
                shared: Arc::clone(self),
                // The owner digest is computed only when a session is created.
                owner: ctx.clone(),
                session,
                is_delete,
            })
        } else {
            None
        };
        self.outcomes.accept();
        tracing::debug!(
            subject = ctx.subject(),
            issuer = ctx.issuer(),
            "authenticated a request"
        );
        // Keep the credential out of Debug output of the request further
        // down (rmcp logs request parts at trace level).
        if let Some(v) = req.headers_mut().get_mut(http::header::AUTHORIZATION) {
            v.set_sensitive(true);
        }
        let filter_for = (lists && self.policy.hide_unauthorized).then(|| ctx.clone());
        req.extensions_mut().insert(ctx);
        Ok(Admitted {
            session_hook,
            filter_for,
        })
    }

    fn check_scopes(&self, ctx: &AuthContext, required: &[String]) -> Result<(), AuthError> {
        if self.hierarchy.missing(ctx.scopes(), required).is_empty() {
            Ok(())
        } else {
            // RFC 6750 section 3.1 / MCP "Runtime Insufficient Scope Errors":
            // name every scope the operation needs, in one challenge.
            Err(AuthError::insufficient_scope(required.iter().cloned()))
        }
    }

    fn reject(&self, err: &AuthError, method: &Method, path: &str) -> Response {
        let kind = err.kind();
        self.outcomes.reject(kind.code());
        match kind {
            AuthErrorKind::MissingToken => {
                tracing::debug!(reason = kind.code(), %method, path, "request without a bearer token")
            }
            AuthErrorKind::KeysUnavailable => {
                tracing::warn!(reason = kind.code(), %method, path, "rejected: verification keys unavailable")
            }
            AuthErrorKind::InsufficientScope => tracing::info!(
                reason = kind.code(),
                status = 403,
                %method,
                path,
                required = %err.required_scopes().join(" "),
                "rejected: insufficient scope"
            ),
            _ => tracing::info!(
                reason = kind.code(),
                status = kind.status().as_u16(),
                %method,
                path,
                "rejected a request"
            ),
        }
        rejection_response(err, &self.challenge)
    }

    /// The scopes the request's operations need; the body is buffered and
    /// put back. Only POSTs to the MCP endpoint carry operations.
    async fn required_for(
        &self,
        req: Request<Body>,
    ) -> Result<(Request<Body>, Vec<String>, bool), (AuthError, Request<()>)> {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, self.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return Err((
                    AuthErrorKind::BodyUnreadable.into(),
                    Request::from_parts(parts, ()),
                ));
            }
        };
        let mut required = self.policy.global.clone();
        let checked = read_operations(&bytes)
            .and_then(|ops| check_headers(&parts.headers, &ops).map(|()| ops));
        let ops = match checked {
            Ok(ops) => ops,
            Err(OperationError::Unreadable) => {
                let kind = AuthErrorKind::BodyUnreadable;
                return Err((kind.into(), Request::from_parts(parts, ())));
            }
            Err(OperationError::HeaderMismatch) => {
                let kind = AuthErrorKind::McpHeaderMismatch;
                return Err((kind.into(), Request::from_parts(parts, ())));
            }
        };
        let lists = ops
            .iter()
            .any(|op| crate::filter::is_list_method(op.method()));
        for op in &ops {
            for scope in self.policy.required_for(op) {
                if !required.contains(&scope) {
                    required.push(scope);
                }
            }
        }
        Ok((
            Request::from_parts(parts, Body::from(bytes)),
            required,
            lists,
        ))
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
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

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let path = req.uri().path();
        if self.shared.metadata.serves(path) {
            return ResponseFuture::ready(self.shared.metadata.respond(req.method()));
        }
        if req.method() == Method::OPTIONS || self.shared.exempt.iter().any(|r| r.matches(path)) {
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let on_mcp = path == self.shared.mcp_path;
        let reads_body =
            on_mcp && req.method() == Method::POST && self.shared.policy.has_operation_rules();
        // The fast path, taken by every request of a client that reuses its
        // token and needs nothing read from the body: decided here, without
        // a verification future, and the inner service's future is returned
        // as it is (no box, no second copy of the service).
        if !reads_body {
            let verified = match self.shared.verify_now(req.headers()) {
                Some(verified) => verified,
                None => return self.call_slow(req, on_mcp, false),
            };
            return match verified {
                Ok(ctx) => {
                    let mut req = req;
                    match self.shared.admit(
                        &mut req,
                        ctx,
                        &self.shared.policy.global,
                        on_mcp,
                        false,
                    ) {
                        Ok(admitted) => {
                            ResponseFuture::inner(self.inner.call(req), admitted.session_hook)
                        }
                        Err(response) => ResponseFuture::ready(*response),
                    }
                }
                Err(err) => {
                    ResponseFuture::ready(self.shared.reject(&err, req.method(), req.uri().path()))
                }
            };
        }
        self.call_slow(req, on_mcp, reads_body)
    }
}

impl<S> AuthService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// Everything that may wait: a verification that is not a cache hit
    /// (keys may be fetched), a body read for per-operation scopes, a list
    /// response filtered for the caller.
    fn call_slow(
        &mut self,
        mut req: Request<Body>,
        on_mcp: bool,
        reads_body: bool,
    ) -> ResponseFuture<S::Future, S::Error> {
        let shared = Arc::clone(&self.shared);
        // Take the service that was driven to readiness; leave a clone behind
        // (the tower idiom for services called from a boxed future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(async move {
            let span = verify_span();
            let verified = shared.verify(req.headers()).instrument(span.clone()).await;
            record_outcome(&span, &verified, false);
            let ctx = match verified {
                Ok(ctx) => ctx,
                Err(err) => return Ok(shared.reject(&err, req.method(), req.uri().path())),
            };
            let mut lists = false;
            let required = if reads_body {
                match shared.required_for(req).await {
                    Ok((buffered, required, has_lists)) => {
                        req = buffered;
                        lists = has_lists;
                        required
                    }
                    Err((err, parts)) => {
                        return Ok(shared.reject(&err, parts.method(), parts.uri().path()));
                    }
                }
            } else {
                shared.policy.global.clone()
            };
            let admitted = match shared.admit(&mut req, ctx, &required, on_mcp, lists) {
                Ok(admitted) => admitted,
                Err(response) => return Ok(*response),
            };
            let mut response = inner.call(req).await?;
            if let Some(ctx) = admitted.filter_for {
                response = filter_lists(response, &shared.policy, &ctx).await;
            }
            if let Some(hook) = admitted.session_hook {
                hook.after(&response);
            }
            Ok(response)
        }))
    }
}

/// The span around a verification: outcome and reason code, never token
/// material.
fn verify_span() -> tracing::Span {
    tracing::debug_span!(
        "mcp_oauth2.verify",
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

/// What [`Shared::admit`] leaves to do around the inner service.
struct Admitted {
    /// Binds or forgets a legacy session once the response is known.
    session_hook: Option<SessionHook>,
    /// The caller whose list results are filtered.
    filter_for: Option<AuthContext>,
}

/// Session bookkeeping after the inner service answered.
struct SessionHook {
    shared: Arc<Shared>,
    owner: AuthContext,
    /// The session the request named, if any.
    session: Option<String>,
    is_delete: bool,
}

impl SessionHook {
    fn after(self, response: &Response) {
        if !response.status().is_success() {
            return;
        }
        match (&self.session, response.headers().get(SESSION_HEADER)) {
            (None, Some(new_id)) => {
                if let Ok(new_id) = new_id.to_str() {
                    self.shared
                        .sessions
                        .bind(new_id.to_owned(), principal_key(&self.owner));
                }
            }
            (Some(id), _) if self.is_delete => self.shared.sessions.unbind(id),
            _ => {}
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AuthService`]: an answer decided at once (a
    /// rejection, the metadata), the inner service's own future (a known
    /// token), or a boxed future for requests that must wait (a token not
    /// verified yet, a body read for per-operation scopes).
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Ready { response: Option<Response> },
        Inner { #[pin] future: F, hook: Option<SessionHook> },
        Boxed { future: BoxFuture<'static, Result<Response, E>> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn ready(response: Response) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    fn inner(future: F, hook: Option<SessionHook>) -> Self {
        Self {
            kind: Kind::Inner { future, hook },
        }
    }

    fn boxed(future: BoxFuture<'static, Result<Response, E>>) -> Self {
        Self {
            kind: Kind::Boxed { future },
        }
    }
}

impl<F, E> std::fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Ready { .. } => "ready",
            Kind::Inner { .. } => "inner",
            Kind::Boxed { .. } => "boxed",
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
        match self.project().kind.project() {
            KindProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a caller bug. Answer with an
                // error response rather than panicking.
                None => Poll::Ready(Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response())),
            },
            KindProj::Inner { future, hook } => {
                let response = std::task::ready!(future.poll(cx))?;
                if let Some(hook) = hook.take() {
                    hook.after(&response);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

fn session_id(req: &Request<Body>) -> Option<String> {
    req.headers()
        .get(SESSION_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// What rmcp answers for an unknown session: clients start a new one.
fn session_not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// A digest of (issuer, subject, client id), length-prefixed so that no two
/// principals share one.
fn principal_key(ctx: &AuthContext) -> [u8; 32] {
    let (iss, sub, client) = ctx.principal();
    let mut ctx_digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for field in [iss, sub, client.unwrap_or("")] {
        ctx_digest.update(&(field.len() as u64).to_be_bytes());
        ctx_digest.update(field.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx_digest.finish().as_ref());
    out
}

/// Legacy sessions and the principal that created each, bounded in size
/// (the oldest binding goes first; its session then answers 404).
#[derive(Default)]
struct Sessions {
    inner: Mutex<SessionMap>,
}

#[derive(Default)]
struct SessionMap {
    owners: HashMap<String, [u8; 32]>,
    order: VecDeque<String>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bind(&self, id: String, owner: [u8; 32]) {
        let mut map = self.lock();
        if map.owners.insert(id.clone(), owner).is_none() {
            map.order.push_back(id);
        }
        while map.owners.len() > MAX_SESSIONS {
            match map.order.pop_front() {
                Some(old) => {
                    map.owners.remove(&old);
                }
                None => break,
            }
        }
    }

    fn unbind(&self, id: &str) {
        let mut map = self.lock();
        if map.owners.remove(id).is_some() {
            map.order.retain(|s| s != id);
        }
    }

    fn is_owned_by(&self, id: &str, ctx: &AuthContext) -> bool {
        self.lock().owners.get(id) == Some(&principal_key(ctx))
    }
}

/// Cap on a list response buffered for filtering.
const MAX_LIST_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Rewrites list results for `hide_unauthorized_in_lists`. A response that
/// cannot be read within the cap and a minute is replaced by 500 (fail
/// closed: never show an unfiltered list).
async fn filter_lists(response: Response, policy: &ScopePolicy, ctx: &AuthContext) -> Response {
    let (mut parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let sse = content_type.starts_with("text/event-stream");
    if !sse && !content_type.starts_with("application/json") {
        return Response::from_parts(parts, body);
    }
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

/// Counters of an [`AuthLayer`] (and of the verifiers behind it).
#[derive(Clone)]
pub struct Metrics(Arc<Shared>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Metrics").field(&self.snapshot()).finish()
    }
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> crate::MetricsSnapshot {
        let mut out = crate::MetricsSnapshot::default();
        self.0.outcomes.fill(&mut out);
        self.0.verifier.add_metrics(&mut out);
        out
    }
}
