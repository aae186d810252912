//! The tower [`Layer`] that protects any axum (or tower) service:
//! [`AuthLayer`] and [`AuthService`].

mod http_rules;
mod sessions;

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{HeaderValue, Method, Request, StatusCode};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument as _;

use crate::bearer::{Credentials, read_bearer};
use crate::challenge::{ChallengeParams, rejection_response};
use crate::config::{AuthConfig, ExemptRoute};
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::metadata::{MetadataEndpoint, ProtectedResourceMetadata};
use crate::operation::{check_headers, read_operations};
use crate::scope::{ScopeHierarchy, ScopePolicy};
use crate::verify::TokenVerifier;
use http_rules::{
    METHOD_HEADER, PROTOCOL_HEADER, Refused, SESSION_HEADER, add_cors, check_origin,
    has_duplicate_host, header_mismatch_response, is_preflight, is_stateless_revision,
    preflight_response,
};
pub(crate) use sessions::Closer;
use sessions::{Owner, Sessions, principal_key};

/// Default cap on a JSON-RPC body read for per-operation scope decisions
/// (the same as rmcp's default request limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Protects a service with OAuth 2.1 bearer tokens and serves the RFC 9728
/// metadata.
///
/// For every request:
/// - the two well-known metadata paths are answered directly, without a token;
/// - a request with two `Host` fields is refused (400, RFC 9112 section 3.2);
/// - a request judged as MCP (see below) whose `Origin` is present and not
///   allowed gets 403 (MCP streamable HTTP); CORS preflights are answered
///   by the layer itself and never reach the inner service;
/// - exempt routes pass through (unless the request is judged as MCP);
/// - otherwise the bearer token is read from the `Authorization` header and
///   verified; for MCP requests, a POST's JSON-RPC operations are read and
///   their declared scope requirements checked (403 `insufficient_scope`
///   before rmcp dispatches), and a legacy session is only usable by the
///   principal that created it (404 for anyone else), within the session
///   caps (429); the resulting [`AuthContext`] is put in the request
///   extensions. Failures get the RFC 6750 challenge.
///
/// **Which requests are MCP.** Behind [`McpServer`](crate::McpServer) every
/// request that reaches the layer is (the layer wraps the rmcp route only).
/// As a plain layer in another router it cannot know the routes, so it
/// judges as MCP, failing closed: the MCP path (see [`mcp_path`](Self::mcp_path))
/// and everything under it, any request carrying `Mcp-Session-Id`,
/// `Mcp-Method` or `MCP-Protocol-Version`, and, when per-operation rules
/// exist, any JSON POST whose body holds JSON-RPC calls.
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
    /// Every request reaching the layer is MCP (the layer wraps the MCP
    /// route alone, as `McpServer` applies it).
    whole_service: bool,
    bind_sessions: bool,
    sessions: Arc<Sessions>,
    allowed_origins: Arc<[String]>,
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
        let mcp_path = match config.resource_path() {
            "" | "/" => crate::server::DEFAULT_MCP_PATH.to_owned(),
            path => path.to_owned(),
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
                mcp_path,
                whole_service: false,
                bind_sessions: true,
                sessions: Arc::new(Sessions::new(config.sessions)),
                allowed_origins: config.allowed_origins.clone().into(),
                outcomes: Arc::default(),
                document: ProtectedResourceMetadata::from_config(&config),
            }),
        }
    }

    /// The local path of the MCP endpoint (default: the resource URI's
    /// path, or `/mcp` for a root resource). It and every path under it are
    /// judged as MCP. Set it when a proxy maps the public path to another
    /// local one. `McpServer` sets it from its mount path.
    #[must_use]
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        let trimmed = path.trim_end_matches('/');
        Arc::make_mut(&mut self.shared).mcp_path = if trimmed.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        };
        self
    }

    /// The layer wraps the MCP service alone: every request it sees is
    /// judged as MCP, whatever its path.
    pub(crate) fn whole_service(mut self) -> Self {
        Arc::make_mut(&mut self.shared).whole_service = true;
        self
    }

    /// Lets the layer close sessions it refuses or forgets.
    pub(crate) fn session_closer(&self, closer: Closer) {
        self.shared.sessions.set_closer(closer);
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
    /// sessions or the stateless 2026-07-28 protocol. Turning it off also
    /// turns the session caps off.
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
    /// An error carries this layer's challenge: returned from an axum handler
    /// it answers as the layer would (see [`AuthError`]'s `IntoResponse`).
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthContext, AuthError> {
        let global = &self.shared.policy.global;
        let checked = self.shared.verify(headers).await;
        checked
            .and_then(|ctx| self.shared.check_scopes(&ctx, global).map(|()| ctx))
            .map_err(|err| err.with_challenge(&self.shared.challenge))
    }
}

/// What the layer learned about a request before verifying its token.
#[derive(Clone, Copy)]
struct Placement {
    /// Judged as an MCP request.
    on_mcp: bool,
    /// A POST whose body must be read for per-operation rules.
    reads_body: bool,
    /// Declares the stateless revision: sessions do not apply.
    stateless: bool,
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

    /// Whether the request is judged as MCP (see [`AuthLayer`]): by the
    /// router's placement, never by one path spelling.
    fn place(&self, req: &Request<Body>) -> Placement {
        let headers = req.headers();
        let on_mcp = self.whole_service
            || under_path(req.uri().path(), &self.mcp_path)
            || headers.contains_key(SESSION_HEADER)
            || headers.contains_key(METHOD_HEADER)
            || headers.contains_key(PROTOCOL_HEADER);
        let rules = self.policy.has_operation_rules();
        let reads_body = rules && req.method() == Method::POST && (on_mcp || is_json(headers));
        Placement {
            on_mcp,
            reads_body,
            stateless: is_stateless_revision(headers),
        }
    }

    /// Admits a verified caller: the scopes `required` (RFC 6750 section
    /// 3.1), the ownership of a legacy session and the session caps; then
    /// hands the context to the inner service through the request
    /// extensions. `Err` is the response to send instead (boxed: a rare path).
    fn admit(
        self: &Arc<Self>,
        req: &mut Request<Body>,
        ctx: AuthContext,
        required: &[String],
        placement: Placement,
        lists: bool,
    ) -> Result<Admitted, Box<Response>> {
        if let Err(err) = self.check_scopes(&ctx, required) {
            return Err(Box::new(self.reject(&err, req.method(), req.uri().path())));
        }
        let session_hook = if self.bind_sessions {
            self.session_rules(req, &ctx, placement)?
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

    /// Legacy sessions: a named session must belong to the caller; a
    /// request that may create one must fit the caps. Returns what to do
    /// once the response is known.
    fn session_rules(
        self: &Arc<Self>,
        req: &Request<Body>,
        ctx: &AuthContext,
        placement: Placement,
    ) -> Result<Option<SessionHook>, Box<Response>> {
        let limits = self.sessions.limits();
        // Sessions do not exist in the stateless revision: its requests had
        // their session header removed before this point.
        let session = session_id(req);
        if let Some(id) = &session {
            if !limits.enabled {
                return Err(Box::new(self.refuse(Refused::SessionsDisabled, req)));
            }
            if !self.sessions.use_session(id, &principal_key(ctx)) {
                tracing::warn!(
                    subject = ctx.subject(),
                    issuer = ctx.issuer(),
                    reason = "session_not_owned",
                    "refused a session id that this principal did not create (or that expired)"
                );
                self.outcomes.reject("session_not_owned");
                return Err(Box::new(session_not_found()));
            }
            return Ok((req.method() == Method::DELETE).then(|| SessionHook {
                shared: Arc::clone(self),
                owner: None,
                session,
            }));
        }
        // Only a POST without a session can create one (`initialize`).
        if req.method() != Method::POST || !limits.enabled {
            return Ok(None);
        }
        let owner = if placement.stateless {
            // A stateless call creates no session (an `initialize` sent with
            // a stateless header still might: the hook checks the response).
            None
        } else {
            let owner = principal_key(ctx);
            if let Err(refusal) = self.sessions.may_open(&owner) {
                return Err(Box::new(
                    self.refuse(Refused::TooManySessions(refusal.code()), req),
                ));
            }
            Some(owner)
        };
        Ok(Some(SessionHook {
            shared: Arc::clone(self),
            owner: Some(owner.map_or(OwnerOf::Later(ctx.clone()), OwnerOf::Known)),
            session: None,
        }))
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
        if kind == AuthErrorKind::McpHeaderMismatch {
            return header_mismatch_response(None);
        }
        rejection_response(err, &self.challenge)
    }

    /// A refusal that is not about the token (no challenge).
    fn refuse<B>(&self, refused: Refused, req: &Request<B>) -> Response {
        self.outcomes.reject(refused.reason());
        tracing::info!(
            reason = refused.reason(),
            method = %req.method(),
            path = req.uri().path(),
            "refused a request"
        );
        refused.response()
    }

    /// Reads the request's JSON-RPC operations and the scopes they need;
    /// the body is buffered and put back. `Err` is the response to send.
    async fn required_for(
        &self,
        req: Request<Body>,
        placement: &mut Placement,
    ) -> Result<(Request<Body>, Vec<String>, bool), Response> {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, self.max_body_bytes).await else {
            return Err(self.reject(
                &AuthErrorKind::BodyUnreadable.into(),
                &parts.method,
                parts.uri.path(),
            ));
        };
        let mut required = self.policy.global.clone();
        let Ok(ops) = read_operations(&bytes) else {
            // Not readable strictly (not JSON, repeated member names, too
            // deep): never guess which copy rmcp would dispatch (fail closed).
            return Err(self.reject(
                &AuthErrorKind::BodyUnreadable.into(),
                &parts.method,
                parts.uri.path(),
            ));
        };
        if !ops.is_empty() {
            placement.on_mcp = true;
        }
        let lists = ops
            .iter()
            .any(|op| crate::filter::is_list_method(op.method()));
        let headers_ok = check_headers(&parts.headers, &ops).is_ok()
            && (!placement.stateless || stateless_headers_present(&parts.headers, &ops));
        if !headers_ok {
            self.outcomes
                .reject(AuthErrorKind::McpHeaderMismatch.code());
            tracing::info!(
                reason = AuthErrorKind::McpHeaderMismatch.code(),
                status = 400,
                path = parts.uri.path(),
                "refused: Mcp-Method / Mcp-Name do not match the body"
            );
            return Err(header_mismatch_response(
                single_request_id(&bytes).as_deref(),
            ));
        }
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

/// Whether `path` is `base` or lies under it (on a `/` boundary).
fn under_path(path: &str, base: &str) -> bool {
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
fn stateless_headers_present(headers: &http::HeaderMap, ops: &[crate::scope::Operation]) -> bool {
    let [op] = ops else {
        // A batch cannot carry the headers of one message.
        return ops.is_empty();
    };
    if op.method() == "initialize" {
        // The handshake may omit them (a supplied one must still match).
        return true;
    }
    let named = matches!(op.method(), "tools/call" | "resources/read" | "prompts/get");
    headers.contains_key(METHOD_HEADER) && (!named || headers.contains_key("mcp-name"))
}

/// The raw JSON `id` of a single JSON-RPC request, for the error answer.
fn single_request_id(body: &[u8]) -> Option<String> {
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

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let shared = &self.shared;
        if shared.metadata.serves(req.uri().path()) {
            return ResponseFuture::ready(shared.metadata.respond(req.method()));
        }
        if has_duplicate_host(req.headers()) {
            return ResponseFuture::ready(shared.refuse(Refused::DuplicateHost, &req));
        }
        let placement = shared.place(&req);
        let preflight = is_preflight(req.method(), req.headers());
        let origin = match check_origin(req.headers(), &shared.allowed_origins) {
            Ok(origin) => origin.cloned(),
            // Enforced on MCP requests and preflights; another route of the
            // app answers its own cross-origin requests.
            Err(refused) if placement.on_mcp || preflight => {
                return ResponseFuture::ready(shared.refuse(refused, &req));
            }
            Err(_) => None,
        };
        if preflight && let Some(origin) = &origin {
            // A preflight carries no credentials: answered here, never
            // handed to the service unauthenticated.
            return ResponseFuture::ready(preflight_response(origin));
        }
        if !placement.on_mcp && shared.exempt.iter().any(|r| r.matches(req.uri().path())) {
            return ResponseFuture::inner(self.inner.call(req), None, origin);
        }
        if placement.stateless {
            // MCP 2026-07-28: a stateless request's session headers are
            // ignored (removed, so the service cannot act on them either).
            let headers = req.headers_mut();
            headers.remove(SESSION_HEADER);
            headers.remove("last-event-id");
        }
        // The fast path, taken by every request of a client that reuses its
        // token and needs nothing read from the body: decided here, without
        // a verification future, and the inner service's future is returned
        // as it is (no box, no second copy of the service).
        if !placement.reads_body {
            let verified = match shared.verify_now(req.headers()) {
                Some(verified) => verified,
                None => return self.call_slow(req, placement, origin),
            };
            let response = match verified {
                Ok(ctx) => {
                    match shared.admit(&mut req, ctx, &shared.policy.global, placement, false) {
                        Ok(admitted) => {
                            return ResponseFuture::inner(
                                self.inner.call(req),
                                admitted.session_hook,
                                origin,
                            );
                        }
                        Err(response) => *response,
                    }
                }
                Err(err) => shared.reject(&err, req.method(), req.uri().path()),
            };
            return ResponseFuture::ready(with_cors(response, origin.as_ref()));
        }
        self.call_slow(req, placement, origin)
    }
}

fn with_cors(mut response: Response, origin: Option<&HeaderValue>) -> Response {
    if let Some(origin) = origin {
        add_cors(&mut response, origin);
    }
    response
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
        mut placement: Placement,
        origin: Option<HeaderValue>,
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
                Err(err) => {
                    let response = shared.reject(&err, req.method(), req.uri().path());
                    return Ok(with_cors(response, origin.as_ref()));
                }
            };
            let mut lists = false;
            let required = if placement.reads_body {
                let was_mcp = placement.on_mcp;
                match shared.required_for(req, &mut placement).await {
                    Ok((buffered, required, has_lists)) => {
                        req = buffered;
                        lists = has_lists;
                        if placement.on_mcp && !was_mcp {
                            // A JSON-RPC POST on a path the layer could not
                            // place: judged as MCP, Origin included.
                            if let Err(refused) =
                                check_origin(req.headers(), &shared.allowed_origins)
                            {
                                return Ok(shared.refuse(refused, &req));
                            }
                        }
                        required
                    }
                    Err(response) => return Ok(with_cors(response, origin.as_ref())),
                }
            } else {
                shared.policy.global.clone()
            };
            let admitted = match shared.admit(&mut req, ctx, &required, placement, lists) {
                Ok(admitted) => admitted,
                Err(response) => return Ok(with_cors(*response, origin.as_ref())),
            };
            let mut response = inner.call(req).await?;
            if let Some(ctx) = admitted.filter_for {
                response = filter_lists(response, &shared.policy, &ctx).await;
            }
            if let Some(hook) = admitted.session_hook {
                response = hook.after(response);
            }
            Ok(with_cors(response, origin.as_ref()))
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

/// Who would own a session the request creates.
enum OwnerOf {
    /// Computed before the request (the caps were checked).
    Known(Owner),
    /// Computed only if a session is created (a stateless call normally
    /// creates none, so it pays nothing).
    Later(AuthContext),
}

/// Session bookkeeping after the inner service answered.
struct SessionHook {
    shared: Arc<Shared>,
    /// For a request that may create a session: its owner.
    owner: Option<OwnerOf>,
    /// For a DELETE: the session it ends.
    session: Option<String>,
}

impl SessionHook {
    fn after(self, response: Response) -> Response {
        if !response.status().is_success() {
            return response;
        }
        if let Some(id) = &self.session {
            self.shared.sessions.unbind(id);
            return response;
        }
        let Some(owner) = self.owner else {
            return response;
        };
        let Some(new_id) = response.headers().get(SESSION_HEADER) else {
            return response;
        };
        let owner = match owner {
            OwnerOf::Known(owner) => owner,
            OwnerOf::Later(ctx) => principal_key(&ctx),
        };
        let bound = match new_id.to_str() {
            Ok(id) => self.shared.sessions.bind(id, owner),
            // Unreachable with rmcp (its ids are ASCII); unbound means unusable.
            Err(_) => return response,
        };
        match bound {
            Ok(()) => response,
            Err(refusal) => {
                // Over a cap (a race, or an `initialize` that slipped past the
                // check): the session was closed; the client is told to wait.
                self.shared
                    .outcomes
                    .reject(Refused::TooManySessions(refusal.code()).reason());
                tracing::info!(
                    reason = refusal.code(),
                    "refused a new session over the session caps"
                );
                Refused::TooManySessions(refusal.code()).response()
            }
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
        Inner { #[pin] future: F, hook: Option<SessionHook>, origin: Option<HeaderValue> },
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

    fn inner(future: F, hook: Option<SessionHook>, origin: Option<HeaderValue>) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                hook,
                origin,
            },
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
            KindProj::Inner {
                future,
                hook,
                origin,
            } => {
                let mut response = std::task::ready!(future.poll(cx))?;
                if let Some(hook) = hook.take() {
                    response = hook.after(response);
                }
                if let Some(origin) = origin.take() {
                    add_cors(&mut response, &origin);
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
