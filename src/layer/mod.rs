//! The tower [`Layer`] that protects any axum (or tower) service:
//! [`AuthLayer`] and [`AuthService`].
//!
//! Rooms: this file builds the layer from the configuration (config time);
//! `service` is the request path (the fast path, the slow path, the
//! verification span); `future` the [`ResponseFuture`]; `operations` what
//! the layer reads from a request (placement, the JSON-RPC operations and
//! the scopes they need, the list filtering); `http_rules` the HTTP-level
//! rules (Host, Origin, CORS, MCP headers); `sessions` the legacy session
//! binding.

mod body_timeout;
pub(crate) use body_timeout::{BodyTimedOut, body_timeout_response};
mod future;
mod http_rules;
mod listens;
mod pending_bodies;
pub(crate) use listens::ListenStream;
mod operations;
pub(crate) use operations::CallId;
mod refused;
mod service;
mod sessions;
mod step_up;
mod stream_end;
mod tasks;
mod unsent;
pub(crate) use unsent::size_with;

use std::sync::Arc;

use tower_layer::Layer;

use crate::challenge::ChallengeParams;
use crate::config::{AuthConfig, DpopMode, ExemptRoute};
use crate::context::{AuthContext, SubjectToken};
use crate::dpop::Dpop;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::metadata::{MetadataEndpoint, ProtectedResourceMetadata};
use crate::requirement::ComputedScopes;
use crate::scope::{ScopeHierarchy, ScopePolicy};
use crate::verify::TokenVerifier;
pub use future::ResponseFuture;
pub(crate) use http_rules::request_id_member;
use http_rules::{AllowedHosts, Origins};
pub(crate) use http_rules::{PROTOCOL_HEADER, is_stateless_revision};
pub use service::AuthService;
use sessions::Sessions;
pub(crate) use sessions::{Closer, session_not_found};

/// Path of the MCP endpoint for a root resource (of
/// [`McpServer`](crate::McpServer) and [`AuthLayer`]); otherwise the
/// resource's path is the endpoint's.
pub(crate) const DEFAULT_MCP_PATH: &str = "/mcp";

/// Default cap on a JSON-RPC body read for per-operation scope decisions
/// (the same as rmcp's default request limit).
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Protects a service with OAuth 2.1 bearer tokens and serves the RFC 9728
/// metadata.
///
/// For every request:
/// - the two well-known metadata paths are answered directly, without a token;
/// - a request with two `Host` fields is refused (400, RFC 9112 section 3.2);
/// - a request judged as MCP (see below) whose `Origin` is present and not
///   allowed gets 403 (MCP streamable HTTP); CORS preflights are answered
///   by the layer itself and never reach the inner service;
/// - exempt routes pass through (unless the request is judged as MCP: a
///   JSON POST on an exempt route is read first, as on any route, and one
///   whose body holds JSON-RPC calls needs its token and scopes);
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
/// `Mcp-Method` or `MCP-Protocol-Version`, and any JSON POST whose body
/// holds JSON-RPC calls (tasks are bound to their creators, and rules
/// apply, on whatever route reaches rmcp; once its body is read, such a
/// request also meets the Host and `Origin` rules of MCP requests: 400
/// `missing_host` when it names no host, 403 for a foreign `Origin`).
/// Every JSON POST's body is read
/// strictly: one that is not strict JSON,
/// repeats a member name, or is not an object or an array of objects is
/// refused with the JSON-RPC parse error (HTTP 400) on any route; a JSON
/// object without a JSON-RPC `method` passes to its handler unchanged.
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
    /// DPoP: mode, proof checks, nonces, replay store.
    dpop: Arc<Dpop>,
    policy: ScopePolicy,
    /// Requirements computed per call from its arguments and the caller.
    computed: ComputedScopes,
    /// The required scopes as shared by every request's step-up slot.
    global: Arc<[String]>,
    hierarchy: Arc<ScopeHierarchy>,
    exempt: Vec<ExemptRoute>,
    max_token_bytes: usize,
    /// The deadline of one verification (`AuthConfigBuilder::verify_timeout`).
    verify_timeout: std::time::Duration,
    max_body_bytes: usize,
    /// The most JSON values a body read by the layer may hold.
    max_json_values: usize,
    mcp_path: String,
    /// The resource URI's path without its trailing slashes (`""` for a
    /// root resource): the public path a DPoP proof names when a proxy
    /// maps it to another local `mcp_path`.
    resource_path: String,
    /// Every request reaching the layer is MCP (the layer wraps the MCP
    /// route alone, as `McpServer` applies it).
    whole_service: bool,
    /// Whether the service behind declares the tasks extension (set by
    /// `McpServer` from its handler; `None`: not known), for the answer to
    /// a request naming a task that is not the caller's.
    service_tasks: Option<bool>,
    /// Whether the service behind answers a stateless request in JSON
    /// rather than in an event stream (`McpServer`'s rmcp configuration;
    /// `true` elsewhere), for the same answer.
    service_json: bool,
    /// The `Host` allowlist of the rmcp service behind the layer (set by
    /// `McpServer`, `None` elsewhere): judged here, before the token.
    allowed_hosts: Option<Arc<AllowedHosts>>,
    bind_sessions: bool,
    /// Leave the caller's `Authorization` (and `DPoP`) header on the
    /// request handed to the service (default off: no token passthrough).
    forward_authorization: bool,
    sessions: Arc<Sessions>,
    /// The `subscriptions/listen` streams each user holds open.
    listens: Arc<listens::Listens>,
    /// The bodies waited for, per user and in all.
    pending_bodies: Arc<pending_bodies::PendingBodies>,
    /// The bytes of answers not yet handed on, per user and in all.
    unsent: Arc<unsent::UnsentAnswers>,
    /// The event-stream answers each user has in progress.
    answer_streams: Arc<listens::Listens>,
    /// Session owners shared by replicas (`AuthConfigBuilder::shared_store`).
    session_store: Option<Arc<dyn crate::store::SharedStore>>,
    /// Task owners (`tasks.rs`): the shared store, else a private memory one.
    task_store: Arc<dyn crate::store::SharedStore>,
    /// The step-up slots of the calls that created this process's tasks
    /// (`tasks.rs`): scopes their work asked for late.
    task_asks: Arc<tasks::TaskAsks>,
    /// Tokens refused for good a moment ago (a retry storm or a flood of
    /// one bad token costs one verification per window).
    refused: Arc<refused::RefusedTokens>,
    allowed_origins: Arc<Origins>,
    outcomes: Arc<crate::metrics::Outcomes>,
    /// The audit events and the refusal log limit.
    audit: Arc<crate::audit::AuditLog>,
    document: ProtectedResourceMetadata,
    /// Failed-authentication throttling and the client address rules.
    throttle: Arc<crate::throttle::Throttle>,
    /// Latency histograms of the request path.
    latency: Arc<Latencies>,
    /// Whether the warning about a layer inside a nested router was logged.
    nested_warned: Arc<std::sync::atomic::AtomicBool>,
    /// End event streams at their token's expiry plus this leeway (seconds);
    /// `None`: streams outlive their tokens (`close_streams_at_expiry(false)`).
    stream_leeway: Option<u64>,
    /// Hold an event stream's head until its first event with data
    /// (`hold_streams_for_step_up`).
    hold_streams: bool,
}

/// The latency histograms the layer records.
#[derive(Debug)]
struct Latencies {
    /// Verifications not answered from the verified-token cache.
    verify: crate::metrics::Histogram,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            verify: crate::metrics::Histogram::new("mcp_oauth2_verify_duration_seconds"),
        }
    }
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
        let (verifier, ..) = crate::verify::from_config(&config)?;
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
            "" | "/" => DEFAULT_MCP_PATH.to_owned(),
            // A significant trailing slash (`https://h/mcp/`): `/mcp/x` is
            // under it too, as `mcp_path("/mcp/")` has it.
            path => local_mcp_path(path),
        };
        let dpop = Arc::new(Dpop::new(&config));
        Self {
            shared: Arc::new(Shared {
                verifier: Arc::new(verifier),
                metadata: MetadataEndpoint::new(&config),
                challenge: ChallengeParams::new(
                    config.resource_metadata_url(),
                    scope,
                    (dpop.mode() != DpopMode::Off).then(|| dpop.algs().into()),
                    dpop.mode() == DpopMode::Required,
                ),
                dpop,
                hierarchy: Arc::new(config.scope_policy.hierarchy.clone()),
                policy: config.scope_policy.clone(),
                computed: config.computed_scopes.clone(),
                global: config.scope_policy.global.clone().into(),
                exempt: config.exempt.clone(),
                max_token_bytes: config.max_token_bytes,
                verify_timeout: config.verify_timeout,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                max_json_values: crate::operation::DEFAULT_MAX_JSON_VALUES,
                mcp_path,
                resource_path: config.resource_path().trim_end_matches('/').to_owned(),
                whole_service: false,
                service_tasks: None,
                service_json: true,
                allowed_hosts: None,
                bind_sessions: true,
                forward_authorization: false,
                sessions: Arc::new(
                    Sessions::new(config.sessions).with_store(config.shared_store.clone()),
                ),
                listens: Arc::new(listens::Listens::new(config.max_listens_per_principal)),
                pending_bodies: Arc::new(pending_bodies::PendingBodies::new(
                    config.max_pending_bodies_per_principal,
                    config.max_pending_body_bytes_per_principal,
                    config.max_pending_bodies,
                    config.max_pending_body_bytes,
                )),
                unsent: Arc::new(unsent::UnsentAnswers::new(
                    config.max_unsent_answer_bytes_per_principal,
                    config.max_unsent_answer_bytes,
                )),
                answer_streams: Arc::new(listens::Listens::new(
                    config.max_answer_streams_per_principal,
                )),
                session_store: config.shared_store.clone(),
                task_store: store_of(&config),
                task_asks: Arc::default(),
                refused: Arc::new(refused::RefusedTokens::new()),
                allowed_origins: Arc::new(Origins {
                    list: config.allowed_origins.clone(),
                    any_loopback: config.allows_loopback_origins(),
                }),
                outcomes: Arc::default(),
                audit: Arc::new(crate::audit::AuditLog::new(
                    config.audit_refusal_limit.map(|l| (l.count, l.window)),
                )),
                document: ProtectedResourceMetadata::from_config(&config),
                throttle: Arc::new(crate::throttle::Throttle::new(
                    config.throttle.clone(),
                    store_of(&config),
                )),
                latency: Arc::default(),
                nested_warned: Arc::default(),
                stream_leeway: config
                    .close_streams_at_expiry
                    .then_some(config.leeway.as_secs()),
                hold_streams: config.hold_streams_for_step_up,
            }),
        }
    }

    /// The local path of the MCP endpoint (default: the resource URI's
    /// path, or `/mcp` for a root resource; a trailing slash is dropped, so
    /// `/mcp/` covers `/mcp` and `/mcp/x` too, and `mcp` is read as `/mcp`).
    /// It and every path under it are judged as MCP. Set it when a proxy
    /// maps the public path to another local one (a DPoP proof then names
    /// the public one). `McpServer` sets it from its mount path.
    #[must_use]
    pub fn mcp_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.shared).mcp_path = local_mcp_path(&path.into());
        self
    }

    /// Whether the layer (and [`metadata_router`](Self::metadata_router))
    /// serves the document at the root well-known location,
    /// `/.well-known/oauth-protected-resource`, besides the path-suffixed
    /// one (default `true`: MCP clients fall back to the root). An app with
    /// several protected resources on one host has one root location:
    /// leave it to one of them and turn it off on the others (their
    /// routers would otherwise both claim the route, which axum refuses
    /// with a panic when they are merged). A root resource's own location
    /// is the root: it is always served.
    #[must_use]
    pub fn root_metadata(mut self, on: bool) -> Self {
        if !on {
            let shared = Arc::make_mut(&mut self.shared);
            shared.metadata = shared.metadata.clone().without_root();
        }
        self
    }

    /// Whether the service behind declares the tasks extension (`None`:
    /// not known) and answers stateless requests in JSON: how a request
    /// naming someone else's task is answered.
    pub(crate) fn service_tasks(mut self, declared: Option<bool>, json: bool) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.service_tasks = declared;
        shared.service_json = json;
        self
    }

    /// The layer wraps the MCP service alone: every request it sees is
    /// judged as MCP, whatever its path.
    pub(crate) fn whole_service(mut self) -> Self {
        Arc::make_mut(&mut self.shared).whole_service = true;
        self
    }

    /// The `Host` allowlist of the rmcp service the layer wraps: a request
    /// naming another host is refused here (403 `host_not_allowed`)
    /// before its token is read, rather than by rmcp in plain text after.
    pub(crate) fn allowed_hosts(mut self, hosts: &[String]) -> Self {
        Arc::make_mut(&mut self.shared).allowed_hosts = Some(Arc::new(AllowedHosts::new(hosts)));
        self
    }

    /// Lets the layer close sessions it refuses or forgets.
    pub(crate) fn session_closer(&self, closer: Closer) {
        self.shared.sessions.set_closer(closer);
    }

    /// Cap on a JSON-RPC body read for scope decisions (default
    /// 4 MiB, rmcp's own); larger bodies get 413 `invalid_request`
    /// (reason `body_too_large`).
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_body_bytes = bytes;
        self
    }

    /// Cap on the JSON values in a body the layer reads (default 100,000;
    /// each array element, member value and the top-level value count
    /// one, an object five: its map costs rmcp about five times a number). A body with more is answered 413 `invalid_request` (reason
    /// `body_too_complex`) before rmcp parses it: rmcp builds a
    /// `serde_json` value of each (through serde's buffered `Content`),
    /// about 200 bytes at its peak, so a 4 MiB body of two million `0`s
    /// cost about 450 MB for one call. The default is about 20 MB a call,
    /// and more than tool arguments hold (a vector of 1,536 floats, nine
    /// thousand rows of ten numbers, six thousand objects of ten fields);
    /// raise it for tools that take
    /// more. The layer reads every JSON POST, so the cap holds for every
    /// body rmcp would parse.
    #[must_use]
    pub fn max_json_values(mut self, values: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_json_values = values;
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

    /// **Unsafe escape hatch.** Whether the caller's `Authorization` header
    /// (and `DPoP` proof) reaches the inner service and its handlers
    /// (default `false`).
    ///
    /// By default the layer removes both before the request reaches rmcp
    /// (and the fields that relay a caller's credentials past a proxy or
    /// gateway: names ending in `authorization`, `access-token`,
    /// `accesstoken`, `refresh-token`, `id-token`, `auth-token`,
    /// `authentication` or `-assertion`, such as
    /// `Proxy-Authorization`, `X-Forwarded-Access-Token` and
    /// `X-Goog-IAP-JWT-Assertion`, which this opt-out keeps too, marked
    /// sensitive):
    /// the MCP specification forbids passing the caller's token on to
    /// another API ("token passthrough"), and a handler that cannot read the
    /// token cannot forward it by accident. To call a downstream API as the
    /// caller, exchange the token for one meant for that API
    /// ([`TokenExchanger`](crate::TokenExchanger), which reads the token the
    /// layer kept aside). Turn this on only for a handler that must see the
    /// header and never sends it anywhere.
    #[must_use]
    pub fn forward_authorization_header_to_handlers_unsafe(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.shared).forward_authorization = on;
        self
    }

    /// A handle on this layer's counters (shared with every clone).
    pub fn metrics(&self) -> Metrics {
        Metrics(Arc::clone(&self.shared))
    }

    /// The metadata routes without the correlation middleware (McpServer
    /// applies it to its whole router).
    pub(crate) fn shared_metadata_router(&self) -> axum::Router {
        self.shared.metadata.router()
    }

    /// The metadata document this layer serves.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.shared.document
    }

    /// An axum router serving the metadata at both well-known paths, for
    /// apps that apply the layer to some routes only (`route_layer`), or
    /// inside a nested router. Its responses carry `X-Request-Id` too.
    ///
    /// Handing it out also tells every layer for the same metadata URL
    /// that the document is served: a layer inside a nested router then
    /// does not warn that it is not (found from outside: the warning came
    /// with the remedy applied).
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        metadata_served_elsewhere::mark(&self.shared.challenge.resource_metadata);
        self.shared
            .metadata
            .router()
            .layer(crate::correlation::CorrelateLayer)
    }

    /// Authenticates a request's headers (token and required scopes), without
    /// a service behind: the building block of the layer, for custom integrations.
    /// An error carries this layer's challenge: returned from an axum handler
    /// it answers as the layer would (see [`AuthError`]'s `IntoResponse`).
    ///
    /// A DPoP proof names the request's method and URI, which headers alone
    /// do not tell: `Authorization: DPoP` is refused here
    /// (`dpop_uri_mismatch`); use [`authenticate_request`](Self::authenticate_request).
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<AuthContext, AuthError> {
        self.authenticate_with(None, headers).await
    }

    /// [`authenticate`](Self::authenticate) for a request whose method and
    /// path are known, so that a DPoP-bound token is checked with its proof
    /// (RFC 9449 section 7.1). The proof's `htu` must name the configured
    /// resource's scheme and authority with `parts.uri`'s path. A query
    /// naming an `access_token` parameter is refused with `invalid_request`
    /// (`token_in_query`), as the layer refuses it.
    pub async fn authenticate_request(
        &self,
        parts: &http::request::Parts,
    ) -> Result<AuthContext, AuthError> {
        if crate::bearer::uri_names_access_token(&parts.uri) {
            let err: AuthError = AuthErrorKind::TokenInQuery.into();
            return Err(err.with_challenge(&self.shared.challenge));
        }
        let path = service::requested_path(&parts.extensions, &parts.uri);
        self.authenticate_with(Some((&parts.method, path)), &parts.headers)
            .await
    }

    async fn authenticate_with(
        &self,
        request: Option<(&http::Method, &str)>,
        headers: &http::HeaderMap,
    ) -> Result<AuthContext, AuthError> {
        let global = &self.shared.policy.global;
        let checked = match self.shared.verify_known(headers) {
            Some(known) => known,
            None => self.shared.verify(request, headers).await,
        };
        checked
            .and_then(|ctx| match self.shared.check_scopes(&ctx, global) {
                Ok(()) => Ok(ctx),
                // RFC 9449 section 7.1: on the `DPoP` challenge for a
                // caller that used the scheme.
                Err(err) => Err(err.on_dpop_scheme(ctx.is_dpop_bound())),
            })
            // The context keeps the caller's token for the token exchange,
            // as behind the layer.
            .map(|ctx| match headers.get(http::header::AUTHORIZATION) {
                Some(value) => ctx.with_subject_token(SubjectToken::new(value.clone())),
                None => ctx,
            })
            .map_err(|err| err.with_challenge(&self.shared.challenge))
    }
}

/// The MCP path as the layer compares it: absolute (`mcp` names `/mcp`:
/// no request path lacks the leading `/`), without its trailing slashes
/// (`/mcp/` covers `/mcp`, `/mcp/` and `/mcp/x`), `/` for the root.
fn local_mcp_path(path: &str) -> String {
    match path.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed if trimmed.starts_with('/') => trimmed.to_owned(),
        relative => format!("/{relative}"),
    }
}

/// The store the throttle counts in: the shared one when configured (so
/// replicas count failures together), else one in this process's memory.
fn store_of(config: &AuthConfig) -> Arc<dyn crate::store::SharedStore> {
    config
        .shared_store
        .clone()
        .unwrap_or_else(|| Arc::new(crate::store::MemoryStore::default()))
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

/// Counters of an [`AuthLayer`] (and of the verifiers behind it).
#[derive(Clone)]
pub struct Metrics(Arc<Shared>);

impl Metrics {
    /// Writes the audit lines of refusals left unwritten by the refusal
    /// log limit and not told yet (`McpServer` calls it once it stopped).
    pub(crate) fn flush_audit(&self) {
        self.0.audit.flush_now();
    }
}

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
        out.throttled = self.0.throttle.throttled();
        out.audit_suppressed = self.0.audit.suppressed();
        // The layer's own users of the store (throttle, sessions, DPoP),
        // beside the verifier's (introspection results).
        out.store_errors += self.0.throttle.store_errors();
        out.verify_latency = self.0.latency.verify.snapshot();
        out
    }
}

/// The metadata URLs whose document an app serves through
/// [`AuthLayer::metadata_router`], so that a layer inside a nested router
/// (its own, or `McpServer::into_router()`'s for the same resource) need
/// not warn that its challenge names a URL nothing serves. Process-wide:
/// the router and the nested layer may be built from different clones of
/// the configuration. Touched when a router is handed out and at most once
/// a layer after that, never on the path of a call.
mod metadata_served_elsewhere {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};

    fn urls() -> &'static Mutex<HashSet<String>> {
        static URLS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        URLS.get_or_init(Mutex::default)
    }

    /// `url`'s document is served by a router the app was given.
    pub(super) fn mark(url: &str) {
        if let Ok(mut urls) = urls().lock() {
            urls.insert(url.to_owned());
        }
    }

    /// Whether `url`'s document was handed out as a router.
    pub(crate) fn is_marked(url: &str) -> bool {
        urls().lock().is_ok_and(|urls| urls.contains(url))
    }
}

pub(crate) use metadata_served_elsewhere::is_marked as metadata_served_elsewhere;
