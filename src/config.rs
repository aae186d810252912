//! [`AuthConfig`]: what a token must satisfy and how the resource describes
//! itself. Built and validated once, at start-up; errors name the setting.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use crate::error::ConfigError;

/// Default leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default time a fetched key set is used before it is fetched again.
pub const DEFAULT_JWKS_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default minimum time between two key-set fetches triggered by an unknown
/// `kid` or by a failed fetch.
pub const DEFAULT_JWKS_REFRESH_COOLDOWN: Duration = Duration::from_secs(30);
/// Default total deadline of one fetch of metadata or keys.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time the last good key set keeps serving when refreshing fails.
pub const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(3600);
/// Default cap on a fetched metadata or key-set document.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Default maximum lifetime of an access token: `exp` more than this far
/// after `iat` (or after now) is refused as absurd.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default upper bound on a key set's lifetime taken from the key server's
/// `Cache-Control: max-age`.
pub const DEFAULT_JWKS_CACHE_MAX_TTL: Duration = Duration::from_secs(3600);

/// Default cap on verified tokens remembered (about 70 MB at most with typical tokens).
pub const DEFAULT_VERIFIED_CACHE_MAX_ENTRIES: usize = 100_000;
/// Default longest time a verified token is remembered (never past its `exp`).
pub const DEFAULT_VERIFIED_CACHE_MAX_AGE: Duration = Duration::from_secs(300);

/// Default cap on the legacy sessions (`Mcp-Session-Id`) one principal holds open.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 64;
/// Default cap on the legacy sessions held open by all principals together.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default time a legacy session stays bound to its owner without a request
/// (rmcp's own session keep-alive is the same five minutes).
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The asymmetric algorithms accepted by default (RFC 7518, RFC 8037).
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Which JOSE `typ` header values are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TypPolicy {
    /// Only `at+jwt` / `application/at+jwt` (RFC 9068 section 2.1). The default:
    /// it keeps ID tokens and other JWTs from being used as access tokens.
    #[default]
    AtJwt,
    /// Also `JWT` / `application/jwt` or no `typ`, for providers that do not
    /// emit RFC 9068 tokens yet (Auth0, Entra ID, Okta, Cognito, Keycloak by
    /// default). Weaker: make sure the audience is unique to this resource.
    AllowJwt,
}

/// How a token shows it was issued for this server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AudienceRule {
    /// `aud` contains the resource URI (RFC 8707), or an audience added with
    /// [`AuthConfigBuilder::accept_audience`]. The default.
    #[default]
    Resource,
    /// AWS Cognito access tokens carry no `aud`: require `token_use: access`
    /// and a `client_id` from this list instead (an `aud`, if present, must
    /// still name this server). Weaker than audience binding: every client
    /// listed here can call this server with any access token of the pool.
    CognitoClientIds(Vec<String>),
}

/// A route the authentication layer lets through without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExemptRoute {
    /// This exact path.
    Exact(String),
    /// Every path under this prefix, matched on `/` boundaries: `/health`
    /// covers `/health` and `/health/live`, not `/healthz`.
    Prefix(String),
}

impl ExemptRoute {
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => path == p,
            Self::Prefix(p) => {
                let p = p.trim_end_matches('/');
                path == p || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
            }
        }
    }
}

/// One trusted authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: Option<Url>,
    pub(crate) introspection: Option<crate::verify::IntrospectionSettings>,
}

impl IssuerConfig {
    /// The issuer identifier, compared exactly with `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured key-set URL, or `None` when it is discovered.
    pub fn jwks_uri(&self) -> Option<&Url> {
        self.jwks_uri.as_ref()
    }

    /// This issuer's own introspection settings, if any
    /// ([`AuthConfigBuilder::issuer_introspection`]).
    pub fn introspection(&self) -> Option<&crate::verify::IntrospectionSettings> {
        self.introspection.as_ref()
    }
}

/// The validated configuration of a protected resource.
///
/// Build it with [`AuthConfig::builder`] or [`AuthConfig::from_env`].
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub(crate) issuers: Vec<IssuerConfig>,
    pub(crate) resource: String,
    pub(crate) resource_url: Url,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) typ_policy: TypPolicy,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) scope_policy: crate::scope::ScopePolicy,
    pub(crate) introspection: Option<crate::verify::IntrospectionSettings>,
    pub(crate) verified_cache_max_entries: usize,
    pub(crate) extra_audiences: Vec<String>,
    pub(crate) audience_rule: AudienceRule,
    pub(crate) scope_claims: Option<Vec<String>>,
    pub(crate) verified_cache_max_age: Duration,
    pub(crate) resource_name: Option<String>,
    pub(crate) resource_documentation: Option<Url>,
    pub(crate) exempt: Vec<ExemptRoute>,
    pub(crate) allow_insecure_loopback: bool,
    pub(crate) jwks_cache_ttl: Duration,
    pub(crate) jwks_refresh_cooldown: Duration,
    pub(crate) jwks_max_stale: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) max_document_bytes: usize,
    pub(crate) max_token_bytes: usize,
    pub(crate) max_token_lifetime: Duration,
    pub(crate) jwks_cache_max_ttl: Duration,
    pub(crate) require_keys_before_ready: bool,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) sessions: SessionLimits,
}

/// Bounds on legacy (2025-11-25 and earlier) sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionLimits {
    /// `false`: stateless 2026-07-28 only, no session is ever created.
    pub(crate) enabled: bool,
    pub(crate) per_principal: usize,
    pub(crate) total: usize,
    pub(crate) idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            per_principal: DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
            total: DEFAULT_MAX_SESSIONS,
            idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
        }
    }
}

impl AuthConfig {
    /// A builder with the documented defaults.
    pub fn builder() -> AuthConfigBuilder {
        AuthConfigBuilder::default()
    }

    /// Reads the configuration from the environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MCP_OAUTH2_ISSUER` | issuer(s), comma-separated (required) |
    /// | `MCP_OAUTH2_RESOURCE` | canonical resource URI of the MCP endpoint (required) |
    /// | `MCP_OAUTH2_JWKS_URI` | key-set URL (only with one issuer; else discovered) |
    /// | `MCP_OAUTH2_REQUIRED_SCOPES` | scopes every request needs, space-separated |
    /// | `MCP_OAUTH2_SCOPES_SUPPORTED` | `scopes_supported` in the metadata, space-separated |
    /// | `MCP_OAUTH2_ALGORITHMS` | accepted algorithms, comma-separated (e.g. `RS256,ES256`) |
    /// | `MCP_OAUTH2_LEEWAY` | clock leeway in seconds |
    /// | `MCP_OAUTH2_ACCEPT_JWT_TYP` | `1`: also accept `typ: JWT` tokens |
    /// | `MCP_OAUTH2_RESOURCE_NAME` | `resource_name` in the metadata |
    /// | `MCP_OAUTH2_RESOURCE_DOCUMENTATION` | `resource_documentation` in the metadata |
    /// | `MCP_OAUTH2_JWKS_CACHE_TTL` | key-set cache lifetime in seconds |
    /// | `MCP_OAUTH2_JWKS_REFRESH_COOLDOWN` | minimum seconds between refetches |
    /// | `MCP_OAUTH2_MAX_TOKEN_LIFETIME` | longest accepted token lifetime in seconds |
    /// | `MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK` | `1`: allow `http://` on loopback (development only) |
    /// | `MCP_OAUTH2_ALLOWED_ORIGINS` | more browser origins allowed besides the resource's own, comma-separated |
    /// | `MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL` | legacy sessions one principal may hold open (default 64) |
    /// | `MCP_OAUTH2_MAX_SESSIONS` | legacy sessions all principals may hold open (default 10,000) |
    /// | `MCP_OAUTH2_SESSION_IDLE_TIMEOUT` | seconds a legacy session stays bound without a request (default 300) |
    /// | `MCP_OAUTH2_STATELESS_ONLY` | `1`: serve the stateless 2026-07-28 protocol only, no legacy sessions |
    ///
    /// Errors name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        AuthConfigBuilder::from_env_vars(|name| std::env::var(name).ok())?
            .build()
            .map_err(ConfigError::for_env)
    }

    /// The canonical resource URI: the expected audience and the metadata's `resource`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[IssuerConfig] {
        &self.issuers
    }

    /// Scopes every request needs.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }

    /// The URL of this resource's RFC 9728 metadata document
    /// (`/.well-known/oauth-protected-resource` inserted before the resource path).
    pub fn resource_metadata_url(&self) -> String {
        let mut url = self.resource_url.clone();
        url.set_path(&metadata_path(&self.resource_url));
        url.set_query(None);
        url.to_string()
    }

    /// The path under which the metadata is served for this resource.
    pub fn metadata_path(&self) -> String {
        metadata_path(&self.resource_url)
    }

    /// The path of the resource URI (`/mcp` for `https://h/mcp`).
    pub fn resource_path(&self) -> &str {
        self.resource_url.path()
    }

    /// The host of the resource URI (for Host-header allowlists).
    pub fn resource_host(&self) -> Option<&str> {
        self.resource_url.host_str()
    }

    /// Whether `http://` loopback URLs were allowed.
    pub fn allows_insecure_loopback(&self) -> bool {
        self.allow_insecure_loopback
    }
}

/// The RFC 9728 section 3.1 well-known path for a resource URL.
pub(crate) fn metadata_path(resource: &Url) -> String {
    const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
    match resource.path() {
        "" | "/" => WELL_KNOWN.to_owned(),
        path => format!("{WELL_KNOWN}{path}"),
    }
}

/// Builder for [`AuthConfig`]. Every setting has a documented default; the
/// issuer and the resource are required.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthConfigBuilder {
    issuers: Vec<String>,
    jwks_uris: Vec<(Option<String>, String)>,
    resource: Option<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    typ_policy: TypPolicy,
    required_scopes: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    scope_policy: crate::scope::ScopePolicy,
    introspection: Option<crate::verify::IntrospectionSettings>,
    issuer_introspection: Vec<(String, crate::verify::IntrospectionSettings)>,
    verified_cache_max_entries: usize,
    extra_audiences: Vec<String>,
    audience_rule: AudienceRule,
    scope_claims: Option<Vec<String>>,
    verified_cache_max_age: Duration,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    exempt: Vec<ExemptRoute>,
    allow_insecure_loopback: bool,
    jwks_cache_ttl: Duration,
    jwks_refresh_cooldown: Duration,
    jwks_max_stale: Duration,
    http_timeout: Duration,
    max_document_bytes: usize,
    max_token_bytes: usize,
    max_token_lifetime: Duration,
    jwks_cache_max_ttl: Duration,
    require_keys_before_ready: bool,
    allowed_origins: Vec<String>,
    sessions: SessionLimits,
}

impl Default for AuthConfigBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            jwks_uris: Vec::new(),
            resource: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: DEFAULT_LEEWAY,
            typ_policy: TypPolicy::default(),
            required_scopes: Vec::new(),
            scopes_supported: None,
            scope_policy: crate::scope::ScopePolicy::default(),
            introspection: None,
            issuer_introspection: Vec::new(),
            verified_cache_max_entries: DEFAULT_VERIFIED_CACHE_MAX_ENTRIES,
            extra_audiences: Vec::new(),
            audience_rule: AudienceRule::Resource,
            scope_claims: None,
            verified_cache_max_age: DEFAULT_VERIFIED_CACHE_MAX_AGE,
            resource_name: None,
            resource_documentation: None,
            exempt: Vec::new(),
            allow_insecure_loopback: false,
            jwks_cache_ttl: DEFAULT_JWKS_CACHE_TTL,
            jwks_refresh_cooldown: DEFAULT_JWKS_REFRESH_COOLDOWN,
            jwks_max_stale: DEFAULT_JWKS_MAX_STALE,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_token_bytes: crate::bearer::DEFAULT_MAX_TOKEN_BYTES,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            jwks_cache_max_ttl: DEFAULT_JWKS_CACHE_MAX_TTL,
            require_keys_before_ready: true,
            allowed_origins: Vec::new(),
            sessions: SessionLimits::default(),
        }
    }
}

fn split_list(value: &str, sep: char) -> Vec<String> {
    value
        .split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl AuthConfigBuilder {
    /// Adds a trusted issuer (required, at least one). `iss` must equal it
    /// exactly; its keys are found by RFC 8414 / OpenID discovery unless a
    /// [`jwks_uri`](Self::jwks_uri) is given.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// The key-set URL of the only issuer; skips discovery. With several
    /// issuers use [`issuer_jwks_uri`](Self::issuer_jwks_uri).
    pub fn jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uris.push((None, jwks_uri.into()));
        self
    }

    /// The key-set URL of one of several issuers.
    pub fn issuer_jwks_uri(
        mut self,
        issuer: impl Into<String>,
        jwks_uri: impl Into<String>,
    ) -> Self {
        self.jwks_uris.push((Some(issuer.into()), jwks_uri.into()));
        self
    }

    /// The canonical resource URI of the MCP endpoint (required), e.g.
    /// `https://mcp.example.com/mcp`. It is the expected audience (RFC 8707),
    /// the metadata's `resource` and the base of the metadata URL. An `aud`
    /// names it when equal, ignoring only the case of the scheme and host and,
    /// for a root resource, a trailing slash (`https://h/` names `https://h`);
    /// never by prefix, and below the root a trailing slash is significant.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Accepted signing algorithms (default [`DEFAULT_ALGORITHMS`]). Only
    /// asymmetric algorithms are allowed; the token's `alg` never widens this.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock leeway for `exp`, `nbf`, `iat` (default [`DEFAULT_LEEWAY`], at most 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Which `typ` values are accepted (default [`TypPolicy::AtJwt`]).
    pub fn typ_policy(mut self, policy: TypPolicy) -> Self {
        self.typ_policy = policy;
        self
    }

    /// Scopes every request needs (default none). They are also the default
    /// `scopes_supported` and the `scope` of the 401 challenge.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// `scopes_supported` in the metadata (default: the required scopes).
    /// Keep it to the scopes basic use needs; `offline_access` is refused.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Scopes a tool call needs (`tools/call` with this `name`), on top of
    /// the required scopes. A call without them gets a real HTTP 403
    /// `insufficient_scope` challenge before rmcp dispatches it.
    pub fn tool_scopes<I, S>(mut self, tool: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy.tools.insert(tool.into(), scopes);
        self
    }

    /// Scopes a prompt needs (`prompts/get` with this `name`).
    pub fn prompt_scopes<I, S>(mut self, prompt: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy.prompts.insert(prompt.into(), scopes);
        self
    }

    /// Scopes reading (or subscribing to) a resource needs. `pattern` is an
    /// exact URI, a template whose `{name}` parts match one segment
    /// (`notes://{id}`), or a prefix ending in `*`. Every matching pattern applies.
    pub fn resource_scopes<I, S>(mut self, pattern: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy
            .resources
            .push((crate::scope::UriPattern::new(pattern), scopes));
        self
    }

    /// Scopes a JSON-RPC method needs, for example `tools/list`.
    pub fn method_scopes<I, S>(mut self, method: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy.methods.insert(method.into(), scopes);
        self
    }

    /// `scope` implies each of `implied` (transitively), e.g. `notes:write`
    /// implies `notes:read`. Honoured by every scope decision.
    pub fn scope_implies<I, S>(mut self, scope: impl Into<String>, implied: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_policy.hierarchy.imply(scope, implied);
        self
    }

    /// Hide the tools, prompts and resources the caller may not use from
    /// list results (default off). Filtered lists are marked
    /// `cacheScope: "private"`, since they depend on the caller.
    pub fn hide_unauthorized_in_lists(mut self, on: bool) -> Self {
        self.scope_policy.hide_unauthorized = on;
        self
    }

    /// Whether a granted `prefix:*` grants every `prefix:…` scope (default off).
    pub fn scope_wildcards(mut self, on: bool) -> Self {
        self.scope_policy.hierarchy.set_wildcards(on);
        self
    }

    /// Also accept opaque tokens through RFC 7662 introspection (default
    /// off). JWTs are still verified locally; only tokens that are not JWTs
    /// are introspected.
    pub fn introspection(mut self, settings: crate::verify::IntrospectionSettings) -> Self {
        self.introspection = Some(settings);
        self
    }

    /// Introspection settings of one configured issuer (endpoint discovered
    /// from that issuer unless given). Its endpoint vouches only for that
    /// issuer's tokens, whereas the endpoint of
    /// [`introspection`](Self::introspection) vouches for every configured
    /// issuer. Endpoints are asked in issuer order, the shared one last;
    /// the first `active` answer decides.
    pub fn issuer_introspection(
        mut self,
        issuer: impl Into<String>,
        settings: crate::verify::IntrospectionSettings,
    ) -> Self {
        self.issuer_introspection.push((issuer.into(), settings));
        self
    }

    /// How many verified tokens are remembered, so a token sent again costs
    /// a hash and a lookup instead of a full verification (default
    /// [`DEFAULT_VERIFIED_CACHE_MAX_ENTRIES`]; 0 turns the cache off). An
    /// entry never outlives the token's `exp` nor [`verified_cache_max_age`](Self::verified_cache_max_age),
    /// and is ignored once the key that verified it leaves the key set.
    pub fn verified_cache_max_entries(mut self, entries: usize) -> Self {
        self.verified_cache_max_entries = entries;
        self
    }

    /// The longest time a verified token is remembered (default
    /// [`DEFAULT_VERIFIED_CACHE_MAX_AGE`]; zero turns the cache off).
    pub fn verified_cache_max_age(mut self, age: Duration) -> Self {
        self.verified_cache_max_age = age;
        self
    }

    /// Also accept tokens whose `aud` contains `audience`, for providers that
    /// cannot put the resource URI there (Entra ID: the API's application ID
    /// or application ID URI). Use a value that identifies this server only.
    /// Compared exactly. Applies to JWTs and introspected tokens alike.
    pub fn accept_audience(mut self, audience: impl Into<String>) -> Self {
        self.extra_audiences.push(audience.into());
        self
    }

    /// How a token shows it was issued for this server (default
    /// [`AudienceRule::Resource`]).
    pub fn audience_rule(mut self, rule: AudienceRule) -> Self {
        self.audience_rule = rule;
        self
    }

    /// Where scopes are read from: claim names or dot-separated paths
    /// (`scope`, `scp`, `permissions`, `realm_access.roles`), each a
    /// space-separated string or an array of strings, merged. Default: `scope`,
    /// or `scp` when `scope` is absent. A claim of another shape is a 401.
    pub fn scope_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = Some(claims.into_iter().map(Into::into).collect());
        self
    }

    /// `resource_name` in the metadata (default none).
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `resource_documentation` in the metadata (default none).
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// A path served without authentication (default none).
    pub fn exempt_path(mut self, path: impl Into<String>) -> Self {
        self.exempt.push(ExemptRoute::Exact(path.into()));
        self
    }

    /// A path prefix served without authentication, on `/` boundaries.
    pub fn exempt_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.exempt.push(ExemptRoute::Prefix(prefix.into()));
        self
    }

    /// **Development and tests only.** Allows `http://` URLs whose host is a
    /// loopback address (`127.0.0.0/8`, `::1`, `localhost`) for the resource,
    /// the issuers and the key sets. Default off: every URL must be `https://`.
    pub fn allow_insecure_http_for_loopback(mut self, allow: bool) -> Self {
        self.allow_insecure_loopback = allow;
        self
    }

    /// How long a fetched key set is used before it is fetched again
    /// (default [`DEFAULT_JWKS_CACHE_TTL`]).
    pub fn jwks_cache_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_cache_ttl = ttl;
        self
    }

    /// Minimum time between two fetches forced by an unknown `kid` or after a
    /// failed fetch (default [`DEFAULT_JWKS_REFRESH_COOLDOWN`]).
    pub fn jwks_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_refresh_cooldown = cooldown;
        self
    }

    /// How long the last good key set keeps serving while refreshing fails
    /// (default [`DEFAULT_JWKS_MAX_STALE`]); after that, requests fail closed
    /// with 503.
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.jwks_max_stale = max_stale;
        self
    }

    /// Total deadline of one metadata or key-set fetch (default [`DEFAULT_HTTP_TIMEOUT`]).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Cap on a fetched metadata or key-set document (default [`DEFAULT_MAX_DOCUMENT_BYTES`]).
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.max_document_bytes = bytes;
        self
    }

    /// Cap on a bearer token's length (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Longest accepted token lifetime (default [`DEFAULT_MAX_TOKEN_LIFETIME`],
    /// 24 hours). A token whose `exp` is more than this after its `iat`, or
    /// more than this (plus the leeway) from now, is refused
    /// (`token_lifetime_too_long`): a stolen token must not live for years.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Upper bound on a key set's lifetime taken from the key server's
    /// `Cache-Control: max-age` (default [`DEFAULT_JWKS_CACHE_MAX_TTL`]).
    ///
    /// A key-set response's `max-age` is honoured, clamped to at least the
    /// smaller of the refresh cooldown and [`jwks_cache_ttl`](Self::jwks_cache_ttl)
    /// and at most the larger of this bound and `jwks_cache_ttl`;
    /// `no-cache`, `no-store` and `max-age=0` get the lower bound. Without a
    /// `max-age`, `jwks_cache_ttl` applies.
    pub fn jwks_cache_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.jwks_cache_max_ttl = max_ttl;
        self
    }

    /// Whether [`JwtVerifier::is_ready`](crate::JwtVerifier::is_ready)
    /// reports ready only once every issuer's key set has been fetched
    /// successfully (default `true`). Set `false` to report ready at once and
    /// let the first requests fetch the keys (they get 503 until then).
    pub fn require_keys_before_ready(mut self, require: bool) -> Self {
        self.require_keys_before_ready = require;
        self
    }

    /// Another browser origin allowed to call the MCP endpoint
    /// (`https://app.example.com`, `http://localhost:5173`). MCP streamable
    /// HTTP: a request whose `Origin` header is present and not allowed gets
    /// 403 (DNS-rebinding and cross-site defence). Default: only the
    /// resource's own origin. Requests without `Origin` (non-browser
    /// clients) are not affected.
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// Cap on the legacy sessions (`Mcp-Session-Id`, protocol 2025-11-25
    /// and earlier) one principal (issuer, subject, client) holds open
    /// (default [`DEFAULT_MAX_SESSIONS_PER_PRINCIPAL`]). One more `initialize`
    /// gets 429 with `Retry-After`; open sessions are never evicted for it.
    pub fn max_sessions_per_principal(mut self, sessions: usize) -> Self {
        self.sessions.per_principal = sessions;
        self
    }

    /// Cap on the legacy sessions all principals hold open together
    /// (default [`DEFAULT_MAX_SESSIONS`]); past it a new session gets 429.
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.sessions.total = sessions;
        self
    }

    /// How long a legacy session stays bound to its owner without a request
    /// (default [`DEFAULT_SESSION_IDLE_TIMEOUT`], rmcp's session keep-alive);
    /// an idle session no longer counts against the caps and answers 404.
    pub fn session_idle_timeout(mut self, timeout: Duration) -> Self {
        self.sessions.idle_timeout = timeout;
        self
    }

    /// Serve the stateless 2026-07-28 protocol only (default off): no legacy
    /// session is ever created, and `McpServer` turns rmcp's legacy session
    /// mode off. For deployments without pre-2026 clients.
    pub fn stateless_only(mut self, on: bool) -> Self {
        self.sessions.enabled = !on;
        self
    }

    /// A builder filled from the environment (see [`AuthConfig::from_env`]),
    /// to adjust before [`build`](Self::build).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_vars(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_env_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut b = Self::default();
        let issuers = get("MCP_OAUTH2_ISSUER")
            .ok_or_else(|| ConfigError::new("MCP_OAUTH2_ISSUER", "is not set"))?;
        b.issuers = split_list(&issuers, ',');
        if b.issuers.is_empty() {
            return Err(ConfigError::new("MCP_OAUTH2_ISSUER", "is empty"));
        }
        b.resource = Some(
            get("MCP_OAUTH2_RESOURCE")
                .ok_or_else(|| ConfigError::new("MCP_OAUTH2_RESOURCE", "is not set"))?,
        );
        if let Some(uri) = get("MCP_OAUTH2_JWKS_URI").filter(|v| !v.trim().is_empty()) {
            if b.issuers.len() != 1 {
                return Err(ConfigError::new(
                    "MCP_OAUTH2_JWKS_URI",
                    "can only be set with exactly one issuer; several issuers use discovery",
                ));
            }
            b.jwks_uris.push((None, uri.trim().to_owned()));
        }
        if let Some(v) = get("MCP_OAUTH2_REQUIRED_SCOPES") {
            b.required_scopes = split_list(&v, ' ');
        }
        if let Some(v) = get("MCP_OAUTH2_SCOPES_SUPPORTED") {
            b.scopes_supported = Some(split_list(&v, ' '));
        }
        if let Some(v) = get("MCP_OAUTH2_ALGORITHMS") {
            b.algorithms = split_list(&v, ',')
                .iter()
                .map(|a| {
                    a.parse::<Algorithm>().map_err(|_| {
                        ConfigError::new(
                            "MCP_OAUTH2_ALGORITHMS",
                            format!("unknown algorithm {a:?}"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        let secs = |name: &'static str| -> Result<Option<Duration>, ConfigError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|_| ConfigError::new(name, "must be a whole number of seconds"))
                })
                .transpose()
        };
        let introspection_uri =
            get("MCP_OAUTH2_INTROSPECTION_URI").filter(|v| !v.trim().is_empty());
        let client_id = get("MCP_OAUTH2_CLIENT_ID").filter(|v| !v.trim().is_empty());
        let client_secret = get("MCP_OAUTH2_CLIENT_SECRET").unwrap_or_default();
        match (client_id, introspection_uri) {
            (Some(id), uri) => {
                let mut settings =
                    crate::verify::IntrospectionSettings::new(id.trim(), client_secret);
                if let Some(uri) = uri {
                    let url = Url::parse(uri.trim()).map_err(|e| {
                        ConfigError::new("MCP_OAUTH2_INTROSPECTION_URI", format!("not a URL: {e}"))
                    })?;
                    settings = settings.endpoint(url);
                }
                b.introspection = Some(settings);
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "MCP_OAUTH2_CLIENT_ID",
                    "is required with MCP_OAUTH2_INTROSPECTION_URI",
                ));
            }
            (None, None) => {}
        }
        if let Some(d) = secs("MCP_OAUTH2_LEEWAY")? {
            b.leeway = d;
        }
        if let Some(d) = secs("MCP_OAUTH2_JWKS_CACHE_TTL")? {
            b.jwks_cache_ttl = d;
        }
        if let Some(d) = secs("MCP_OAUTH2_JWKS_REFRESH_COOLDOWN")? {
            b.jwks_refresh_cooldown = d;
        }
        if let Some(d) = secs("MCP_OAUTH2_MAX_TOKEN_LIFETIME")? {
            b.max_token_lifetime = d;
        }
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name).as_deref().map(str::trim) {
                None | Some("") | Some("0") => Ok(false),
                Some("1") => Ok(true),
                Some(_) => Err(ConfigError::new(name, "must be 1 or 0")),
            }
        };
        if flag("MCP_OAUTH2_ACCEPT_JWT_TYP")? {
            b.typ_policy = TypPolicy::AllowJwt;
        }
        b.allow_insecure_loopback = flag("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK")?;
        if let Some(v) = get("MCP_OAUTH2_ALLOWED_ORIGINS") {
            b.allowed_origins = split_list(&v, ',');
        }
        let count = |name: &'static str| -> Result<Option<usize>, ConfigError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| ConfigError::new(name, "must be a whole number"))
                })
                .transpose()
        };
        if let Some(n) = count("MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL")? {
            b.sessions.per_principal = n;
        }
        if let Some(n) = count("MCP_OAUTH2_MAX_SESSIONS")? {
            b.sessions.total = n;
        }
        if let Some(d) = secs("MCP_OAUTH2_SESSION_IDLE_TIMEOUT")? {
            b.sessions.idle_timeout = d;
        }
        if flag("MCP_OAUTH2_STATELESS_ONLY")? {
            b.sessions.enabled = false;
        }
        b.resource_name = get("MCP_OAUTH2_RESOURCE_NAME").filter(|v| !v.is_empty());
        b.resource_documentation =
            get("MCP_OAUTH2_RESOURCE_DOCUMENTATION").filter(|v| !v.is_empty());
        Ok(b)
    }

    /// Validates and builds the configuration.
    pub fn build(self) -> Result<AuthConfig, ConfigError> {
        let loopback_ok = self.allow_insecure_loopback;
        let resource_raw = self.resource.ok_or_else(|| {
            ConfigError::new(
                "resource",
                "is required (the canonical URI of the MCP endpoint)",
            )
        })?;
        let (resource, resource_url) = canonical_resource(&resource_raw, loopback_ok)?;

        if self.issuers.is_empty() {
            return Err(ConfigError::new(
                "issuer",
                "at least one issuer is required",
            ));
        }
        let mut issuers: Vec<IssuerConfig> = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            let url = Url::parse(&issuer)
                .map_err(|e| ConfigError::new("issuer", format!("{issuer:?} is not a URL: {e}")))?;
            check_https(&url, loopback_ok, "issuer")?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError::new(
                    "issuer",
                    "must not have a query or fragment (RFC 8414 section 2)",
                ));
            }
            if issuers.iter().any(|i| i.issuer == issuer) {
                return Err(ConfigError::new(
                    "issuer",
                    format!("{issuer:?} is configured twice"),
                ));
            }
            issuers.push(IssuerConfig {
                issuer,
                jwks_uri: None,
                introspection: None,
            });
        }
        for (iss, settings) in self.issuer_introspection {
            let target = issuers.iter_mut().find(|i| i.issuer == iss);
            let Some(target) = target.filter(|t| t.introspection.is_none()) else {
                return Err(ConfigError::new(
                    "issuer_introspection",
                    format!("{iss:?} is not a configured issuer, or is set twice"),
                ));
            };
            if let Some(endpoint) = &settings.endpoint {
                check_https(endpoint, loopback_ok, "introspection_endpoint")?;
            }
            target.introspection = Some(settings);
        }
        for (issuer, jwks) in self.jwks_uris {
            let url = Url::parse(&jwks)
                .map_err(|e| ConfigError::new("jwks_uri", format!("{jwks:?} is not a URL: {e}")))?;
            check_https(&url, loopback_ok, "jwks_uri")?;
            let target = match issuer {
                None if issuers.len() == 1 => issuers.first_mut().ok_or_else(|| {
                    ConfigError::new("jwks_uri", "at least one issuer is required")
                })?,
                None => {
                    return Err(ConfigError::new(
                        "jwks_uri",
                        "is ambiguous with several issuers; use issuer_jwks_uri",
                    ));
                }
                Some(iss) => issuers
                    .iter_mut()
                    .find(|i| i.issuer == iss)
                    .ok_or_else(|| {
                        ConfigError::new(
                            "issuer_jwks_uri",
                            format!("{iss:?} is not a configured issuer"),
                        )
                    })?,
            };
            if target.jwks_uri.is_some() {
                return Err(ConfigError::new(
                    "jwks_uri",
                    "set twice for the same issuer",
                ));
            }
            target.jwks_uri = Some(url);
        }

        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "algorithms",
                "at least one algorithm is required",
            ));
        }
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(ConfigError::new(
                "algorithms",
                format!(
                    "{alg:?} is symmetric; only asymmetric algorithms verify third-party tokens safely (RFC 8725 section 3.1)"
                ),
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::new("leeway", "must be at most 300 seconds"));
        }
        for scope in self
            .required_scopes
            .iter()
            .chain(self.scopes_supported.iter().flatten())
        {
            validate_scope_token(scope)?;
        }
        let mut scope_policy = self.scope_policy;
        {
            let p = &scope_policy;
            let declared = p
                .tools
                .values()
                .chain(p.prompts.values())
                .chain(p.methods.values())
                .chain(p.resources.iter().map(|(_, s)| s))
                .flatten();
            for scope in declared {
                validate_scope_token(scope)?;
            }
            // MCP scope selection: offline_access is not a resource scope and
            // must never reach a challenge.
            refuse_offline_access("required_scopes", &self.required_scopes)?;
            refuse_offline_access("tool_scopes", p.tools.values().flatten())?;
            refuse_offline_access("prompt_scopes", p.prompts.values().flatten())?;
            refuse_offline_access("method_scopes", p.methods.values().flatten())?;
            refuse_offline_access("resource_scopes", p.resources.iter().flat_map(|(_, s)| s))?;
        }
        scope_policy.global = self.required_scopes.clone();
        if self.extra_audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::new("accept_audience", "must not be empty"));
        }
        if let AudienceRule::CognitoClientIds(ids) = &self.audience_rule
            && (ids.is_empty() || ids.iter().any(|i| i.trim().is_empty()))
        {
            return Err(ConfigError::new(
                "audience_rule",
                "the Cognito rule needs at least one client id",
            ));
        }
        if let Some(paths) = &self.scope_claims
            && (paths.is_empty()
                || paths
                    .iter()
                    .any(|p| p.is_empty() || p.split('.').any(str::is_empty)))
        {
            return Err(ConfigError::new(
                "scope_claims",
                "claim names must be non-empty (dot-separated paths)",
            ));
        }
        if let Some(endpoint) = self
            .introspection
            .as_ref()
            .and_then(|i| i.endpoint.as_ref())
        {
            check_https(endpoint, loopback_ok, "introspection_endpoint")?;
        }
        let scopes_supported = self
            .scopes_supported
            .unwrap_or_else(|| self.required_scopes.clone());
        if scopes_supported.iter().any(|s| s == "offline_access") {
            return Err(ConfigError::new(
                "scopes_supported",
                "must not list offline_access (MCP scope selection: it is not a resource scope)",
            ));
        }
        let resource_documentation = self
            .resource_documentation
            .map(|d| {
                Url::parse(&d).map_err(|e| {
                    ConfigError::new("resource_documentation", format!("not a URL: {e}"))
                })
            })
            .transpose()?;
        if self.jwks_refresh_cooldown.is_zero() {
            return Err(ConfigError::new(
                "jwks_refresh_cooldown",
                "must be greater than zero",
            ));
        }
        if self.jwks_cache_ttl.is_zero() {
            return Err(ConfigError::new(
                "jwks_cache_ttl",
                "must be greater than zero",
            ));
        }
        if self.http_timeout.is_zero() {
            return Err(ConfigError::new(
                "http_timeout",
                "must be greater than zero",
            ));
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::new(
                "max_token_bytes",
                "must be greater than zero",
            ));
        }
        if self.max_token_lifetime.is_zero() {
            return Err(ConfigError::new(
                "max_token_lifetime",
                "must be greater than zero",
            ));
        }
        if self.jwks_cache_max_ttl.is_zero() {
            return Err(ConfigError::new(
                "jwks_cache_max_ttl",
                "must be greater than zero",
            ));
        }
        for route in &self.exempt {
            let (ExemptRoute::Exact(p) | ExemptRoute::Prefix(p)) = route;
            if !p.starts_with('/') {
                return Err(ConfigError::new(
                    "exempt_path",
                    format!("{p:?} must start with '/'"),
                ));
            }
            if route.matches(resource_url.path()) {
                return Err(ConfigError::new(
                    "exempt_path",
                    format!("{p:?} would exempt the protected resource path itself"),
                ));
            }
        }
        let mut allowed_origins = vec![origin_of(&resource_url)];
        for raw in &self.allowed_origins {
            let origin = normalize_origin(raw).ok_or_else(|| {
                ConfigError::new(
                    "allowed_origin",
                    format!("{raw:?} is not an origin (scheme://host[:port], no path)"),
                )
            })?;
            if !allowed_origins.contains(&origin) {
                allowed_origins.push(origin);
            }
        }
        let sessions = self.sessions;
        if sessions.per_principal == 0 || sessions.total == 0 {
            return Err(ConfigError::new(
                "max_sessions",
                "must be greater than zero (use stateless_only to turn sessions off)",
            ));
        }
        if sessions.per_principal > sessions.total {
            return Err(ConfigError::new(
                "max_sessions_per_principal",
                "must not exceed max_sessions",
            ));
        }
        if sessions.idle_timeout.is_zero() {
            return Err(ConfigError::new(
                "session_idle_timeout",
                "must be greater than zero",
            ));
        }
        Ok(AuthConfig {
            issuers,
            resource,
            resource_url,
            algorithms: self.algorithms,
            leeway: self.leeway,
            typ_policy: self.typ_policy,
            required_scopes: self.required_scopes,
            scopes_supported,
            scope_policy,
            introspection: self.introspection,
            verified_cache_max_entries: self.verified_cache_max_entries,
            extra_audiences: self.extra_audiences,
            audience_rule: self.audience_rule,
            scope_claims: self.scope_claims,
            verified_cache_max_age: self.verified_cache_max_age,
            resource_name: self.resource_name,
            resource_documentation,
            exempt: self.exempt,
            allow_insecure_loopback: loopback_ok,
            jwks_cache_ttl: self.jwks_cache_ttl,
            jwks_refresh_cooldown: self.jwks_refresh_cooldown,
            jwks_max_stale: self.jwks_max_stale,
            http_timeout: self.http_timeout,
            max_document_bytes: self.max_document_bytes,
            max_token_bytes: self.max_token_bytes,
            max_token_lifetime: self.max_token_lifetime,
            jwks_cache_max_ttl: self.jwks_cache_max_ttl,
            require_keys_before_ready: self.require_keys_before_ready,
            allowed_origins,
            sessions,
        })
    }
}

/// Refuses `offline_access` among the scopes of setting `field`: a scope in
/// a requirement ends up in challenges, where MCP clients must not see it.
fn refuse_offline_access<'a>(
    field: &'static str,
    scopes: impl IntoIterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    if scopes.into_iter().any(|s| s == "offline_access") {
        return Err(ConfigError::new(
            field,
            "must not list offline_access (MCP scope selection: it is not a resource scope)",
        ));
    }
    Ok(())
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn validate_scope_token(scope: &str) -> Result<(), ConfigError> {
    if scope.is_empty()
        || !scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    {
        return Err(ConfigError::new(
            "scopes",
            format!("{scope:?} is not a valid scope token (RFC 6749 section 3.3)"),
        ));
    }
    Ok(())
}

/// Whether a URL's host is a loopback name or address.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `https` everywhere; `http` only on loopback with the explicit opt-in.
pub(crate) fn check_https(
    url: &Url,
    allow_loopback_http: bool,
    field: &'static str,
) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_loopback_http && is_loopback(url) => Ok(()),
        "http" if allow_loopback_http => Err(ConfigError::new(
            field,
            format!("{url} uses http:// on a host that is not loopback; only https:// is allowed"),
        )),
        "http" => Err(ConfigError::new(
            field,
            format!(
                "{url} uses http://; use https:// (or allow_insecure_http_for_loopback for local development)"
            ),
        )),
        other => Err(ConfigError::new(
            field,
            format!("unsupported URL scheme {other:?}"),
        )),
    }
}

/// Canonical form of the resource URI (RFC 8707 section 2, MCP "Canonical
/// Server URI"): lowercase scheme and host (the `url` crate does this),
/// default port dropped, no fragment, no query, and no trailing slash for a
/// root path. A path's own trailing slash is kept: it is significant.
fn canonical_resource(raw: &str, allow_loopback_http: bool) -> Result<(String, Url), ConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::new("resource", format!("{raw:?} is not a URL: {e}")))?;
    check_https(&url, allow_loopback_http, "resource")?;
    if url.fragment().is_some() {
        return Err(ConfigError::new(
            "resource",
            "must not contain a fragment (RFC 8707 section 2)",
        ));
    }
    if url.query().is_some() {
        return Err(ConfigError::new("resource", "must not contain a query"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            "resource",
            "must not contain user information",
        ));
    }
    let mut canonical = url.to_string();
    if url.path() == "/" {
        canonical.pop();
    }
    Ok((canonical, url))
}

/// The ASCII serialization of a URL's origin (RFC 6454 section 6.2):
/// lowercase scheme and host, the port only when it is not the default.
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// An `Origin` value in the form [`origin_of`] produces, or `None` when it
/// is not a tuple origin (`null`, a path, a query, userinfo, an opaque scheme).
pub(crate) fn normalize_origin(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
    {
        return None;
    }
    Some(origin_of(&url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> AuthConfigBuilder {
        AuthConfig::builder()
            .issuer("https://auth.example.com")
            .resource("https://mcp.example.com/mcp")
    }

    #[test]
    fn canonicalises_resource() {
        let c = base()
            .resource("HTTPS://MCP.Example.COM:443/mcp")
            .build()
            .unwrap();
        assert_eq!(c.resource(), "https://mcp.example.com/mcp");
        let c = base().resource("https://mcp.example.com/").build().unwrap();
        assert_eq!(c.resource(), "https://mcp.example.com");
        assert_eq!(
            c.resource_metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
        let c = base()
            .resource("https://mcp.example.com:8443/public/mcp")
            .build()
            .unwrap();
        // RFC 9728 section 3.1: well-known inserted between host and path.
        assert_eq!(
            c.resource_metadata_url(),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource/public/mcp"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = AuthConfig::builder()
            .issuer("https://a")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "resource");
        let e = AuthConfig::builder()
            .resource("https://r/mcp")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "issuer");
        let e = base()
            .resource("http://mcp.example.com/mcp")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "resource");
        let e = base()
            .resource("https://mcp.example.com/mcp#x")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "resource");
        let e = base().issuer("http://127.0.0.1:9/").build().unwrap_err();
        assert_eq!(e.field(), "issuer");
        let e = base().algorithms([Algorithm::HS256]).build().unwrap_err();
        assert_eq!(e.field(), "algorithms");
        let e = base()
            .scopes_supported(["offline_access"])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "scopes_supported");
        // offline_access never reaches a challenge: refused in every requirement.
        let e = base()
            .required_scopes(["offline_access"])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "required_scopes");
        let e = base()
            .tool_scopes("t", ["offline_access"])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "tool_scopes");
        let e = base()
            .prompt_scopes("p", ["offline_access"])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "prompt_scopes");
        let e = base()
            .method_scopes("tools/list", ["offline_access"])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "method_scopes");
        let e = base()
            .resource_scopes("notes://{id}", ["offline_access"])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "resource_scopes");
        let e = base().required_scopes(["bad scope\""]).build().unwrap_err();
        assert_eq!(e.field(), "scopes");
        let e = base().exempt_prefix("/").build().unwrap_err();
        assert_eq!(e.field(), "exempt_path");
        let e = base()
            .issuer("https://b")
            .jwks_uri("https://b/jwks")
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "jwks_uri");
    }

    #[test]
    fn loopback_http_needs_the_opt_in_and_loopback() {
        let b = AuthConfig::builder()
            .issuer("http://127.0.0.1:1")
            .resource("http://localhost:2/mcp");
        assert!(b.clone().build().is_err());
        assert!(
            b.clone()
                .allow_insecure_http_for_loopback(true)
                .build()
                .is_ok()
        );
        let e = b
            .resource("http://example.com/mcp")
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "resource");
    }

    #[test]
    fn exempt_prefix_matches_on_segment_boundaries() {
        let r = ExemptRoute::Prefix("/health".into());
        assert!(r.matches("/health"));
        assert!(r.matches("/health/live"));
        assert!(!r.matches("/healthz"));
    }

    #[test]
    fn from_env_reads_every_variable() {
        let vars: HashMap<&str, &str> = HashMap::from([
            (
                "MCP_OAUTH2_ISSUER",
                "http://127.0.0.1:1, http://127.0.0.1:2",
            ),
            ("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:3/mcp"),
            ("MCP_OAUTH2_REQUIRED_SCOPES", "a  b"),
            ("MCP_OAUTH2_JWKS_CACHE_TTL", "10"),
            ("MCP_OAUTH2_JWKS_REFRESH_COOLDOWN", "2"),
            ("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1"),
        ]);
        let c = AuthConfigBuilder::from_env_vars(|k| vars.get(k).map(|v| v.to_string()))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.issuers().len(), 2);
        assert_eq!(c.required_scopes(), ["a", "b"]);
        assert_eq!(c.jwks_cache_ttl, Duration::from_secs(10));
        assert_eq!(c.jwks_refresh_cooldown, Duration::from_secs(2));

        let mut bad = vars.clone();
        bad.insert("MCP_OAUTH2_JWKS_URI", "http://127.0.0.1:1/jwks");
        let e =
            AuthConfigBuilder::from_env_vars(|k| bad.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(e.field(), "MCP_OAUTH2_JWKS_URI");
        let mut bad = vars.clone();
        bad.insert("MCP_OAUTH2_JWKS_CACHE_TTL", "soon");
        let e =
            AuthConfigBuilder::from_env_vars(|k| bad.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(e.field(), "MCP_OAUTH2_JWKS_CACHE_TTL");
        let e = AuthConfigBuilder::from_env_vars(|_| None).unwrap_err();
        assert_eq!(e.field(), "MCP_OAUTH2_ISSUER");
    }

    // Issue 4: the hardening settings have defaults and refuse zero.
    #[test]
    fn hardening_settings() {
        let c = base().build().unwrap();
        assert_eq!(c.max_token_lifetime, DEFAULT_MAX_TOKEN_LIFETIME);
        assert_eq!(c.jwks_cache_max_ttl, DEFAULT_JWKS_CACHE_MAX_TTL);
        assert!(c.require_keys_before_ready);
        let e = base()
            .max_token_lifetime(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "max_token_lifetime");
        let e = base()
            .jwks_cache_max_ttl(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "jwks_cache_max_ttl");
        let c = base()
            .max_token_lifetime(Duration::from_secs(600))
            .require_keys_before_ready(false)
            .build()
            .unwrap();
        assert_eq!(c.max_token_lifetime, Duration::from_secs(600));
        assert!(!c.require_keys_before_ready);
        let vars = HashMap::from([
            ("MCP_OAUTH2_ISSUER", "https://as.example"),
            ("MCP_OAUTH2_RESOURCE", "https://rs.example/mcp"),
            ("MCP_OAUTH2_MAX_TOKEN_LIFETIME", "3600"),
        ]);
        let c = AuthConfigBuilder::from_env_vars(|k| vars.get(k).map(|v| v.to_string()))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.max_token_lifetime, Duration::from_secs(3600));
    }
}
