//! [`AuthConfig`]: what a token must satisfy and how the resource describes
//! itself. Built and validated once, at start-up; errors name the setting.
//!
//! The rooms: this file holds the validated configuration and its
//! accessors; `builder` the [`AuthConfigBuilder`] and its validation;
//! `scopes` the scope requirements; `groups` the grouped settings ([`JwksPolicy`], [`TokenCachePolicy`]);
//! `env` the one table of environment variables behind
//! [`AuthConfig::from_env`]; `url` the URL rules (HTTPS, loopback, the
//! canonical resource, origins); `introspection` the introspection
//! settings. It imports nothing above it (no verifier, no key set).

use std::time::Duration;

use crate::error::ConfigError;
use ::url::Url;

mod algorithm;
mod builder;
mod dpop;
mod env;
pub use env::SERVER_ENV_VARIABLES;
mod groups;
pub(crate) mod introspection;
mod scopes;
pub(crate) mod tenant;
pub(crate) use tenant::ENTRA_FRONT_DOORS;
pub(crate) mod url;
mod watch;

pub(crate) use self::url::{
    check_https, is_loopback_origin, metadata_path, normalize_origin, route_path_problem,
};
pub use crate::throttle::ForwardedHeader;
pub use algorithm::Algorithm;
pub use builder::AuthConfigBuilder;
pub use dpop::{DpopMode, DpopPolicy};
pub use groups::{JwksPolicy, TokenCachePolicy};
pub(crate) use introspection::IntrospectionSettings;
pub use tenant::{IssuerPolicy, TenantIssuer};

/// Default leeway for `exp`, `nbf` and `iat`.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default time a fetched key set is used before it is fetched again.
pub(crate) const DEFAULT_JWKS_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default minimum time between two key-set fetches triggered by an unknown
/// `kid` or by a failed fetch.
pub(crate) const DEFAULT_JWKS_REFRESH_COOLDOWN: Duration = Duration::from_secs(30);
/// Default total deadline of one fetch of metadata or keys.
pub(crate) const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline of one token verification (`verify_timeout`).
pub(crate) const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time the last good key set keeps serving when refreshing fails.
pub(crate) const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(3600);
/// Default cap on a fetched metadata or key-set document.
pub(crate) const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Default maximum lifetime of an access token: `exp` more than this far
/// after `iat` (or after now) is refused as absurd.
pub(crate) const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default upper bound on a key set's lifetime taken from the key server's
/// `Cache-Control: max-age`.
pub(crate) const DEFAULT_JWKS_CACHE_MAX_TTL: Duration = Duration::from_secs(3600);

/// Default cap on verified tokens remembered (about 70 MB at most with typical tokens).
pub(crate) const DEFAULT_VERIFIED_CACHE_MAX_ENTRIES: usize = 100_000;
/// Default longest time a verified token is remembered (never past its `exp`).
pub(crate) const DEFAULT_VERIFIED_CACHE_MAX_AGE: Duration = Duration::from_secs(300);

/// Default cap on the legacy sessions (`Mcp-Session-Id`) one principal holds open.
pub(crate) const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 64;
/// Default cap on the `subscriptions/listen` streams and legacy GET streams
/// one user holds open.
pub(crate) const DEFAULT_MAX_LISTENS_PER_PRINCIPAL: usize = 16;
/// Default cap on the request bodies one user's requests have the layer
/// wait for at once.
pub(crate) const DEFAULT_MAX_PENDING_BODIES_PER_PRINCIPAL: usize = 256;
/// Default cap on the bytes one user's bodies the layer waits for may
/// hold together (sixteen bodies at the default 4 MiB body cap; a quarter
/// of the process's).
pub(crate) const DEFAULT_MAX_PENDING_BODY_BYTES_PER_PRINCIPAL: usize = 64 * 1024 * 1024;
/// Default cap on the request bodies the layer waits for at once, all
/// callers together.
pub(crate) const DEFAULT_MAX_PENDING_BODIES: usize = 2048;
/// Default cap on the bytes the bodies the layer waits for may hold
/// together, all callers (what has arrived of each).
pub(crate) const DEFAULT_MAX_PENDING_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Default cap on the bytes of one user's answers not yet taken by their
/// clients (a quarter of the process's).
pub(crate) const DEFAULT_MAX_UNSENT_ANSWER_BYTES_PER_PRINCIPAL: usize = 64 * 1024 * 1024;
/// Default cap on the bytes of answers not yet taken by their clients, all
/// callers together.
pub(crate) const DEFAULT_MAX_UNSENT_ANSWER_BYTES: usize = 256 * 1024 * 1024;
/// Default cap on the event-stream answers one user has in progress.
pub(crate) const DEFAULT_MAX_ANSWER_STREAMS_PER_PRINCIPAL: usize = 64;
/// Default cap on the legacy sessions held open by all principals together.
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default time a legacy session stays bound to its owner without a request
/// (rmcp's own session keep-alive is the same five minutes).
pub(crate) const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The asymmetric algorithms accepted by default (RFC 7518, RFC 8037).
pub(crate) const DEFAULT_ALGORITHMS: &[Algorithm] = &Algorithm::ALL;

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
    pub(crate) introspection: Option<IntrospectionSettings>,
    pub(crate) policy: Option<IssuerPolicy>,
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
    pub fn introspection(&self) -> Option<&IntrospectionSettings> {
        self.introspection.as_ref()
    }

    /// This issuer's own policy, if any ([`AuthConfigBuilder::issuer_policy`]).
    pub fn policy(&self) -> Option<&IssuerPolicy> {
        self.policy.as_ref()
    }
}

/// The validated configuration of a protected resource.
///
/// Build it with [`AuthConfig::builder`] or [`AuthConfig::from_env`].
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub(crate) issuers: Vec<IssuerConfig>,
    pub(crate) tenant_issuers: Vec<TenantIssuer>,
    /// The metadata's `authorization_servers`, computed at build time.
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) resource: String,
    pub(crate) resource_url: Url,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) typ_policy: TypPolicy,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) scope_policy: crate::scope::ScopePolicy,
    pub(crate) computed_scopes: crate::requirement::ComputedScopes,
    pub(crate) introspection: Option<IntrospectionSettings>,
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
    /// The deadline of one token verification (`verify_timeout`).
    pub(crate) verify_timeout: Duration,
    pub(crate) jwks_cache_max_ttl: Duration,
    pub(crate) require_keys_before_ready: bool,
    /// Tokens must name their client ([`AuthConfigBuilder::require_client_id`]).
    pub(crate) require_client_id: bool,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) sessions: SessionLimits,
    /// Open `subscriptions/listen` streams per user and process.
    pub(crate) max_listens_per_principal: usize,
    /// Bodies waited for at once, per user and per process, and their
    /// bytes per process.
    pub(crate) max_pending_bodies_per_principal: usize,
    pub(crate) max_pending_body_bytes_per_principal: usize,
    pub(crate) max_pending_bodies: usize,
    pub(crate) max_pending_body_bytes: usize,
    /// Bytes of answers not yet taken by their clients, per user and per
    /// process.
    pub(crate) max_unsent_answer_bytes_per_principal: usize,
    pub(crate) max_unsent_answer_bytes: usize,
    /// Event-stream answers in progress per user.
    pub(crate) max_answer_streams_per_principal: usize,
    pub(crate) dpop: DpopPolicy,
    pub(crate) throttle: crate::throttle::ThrottleSettings,
    pub(crate) metadata_max_age: Duration,
    /// Refusal audit events of one kind written per window (`None`: all).
    pub(crate) audit_refusal_limit: Option<crate::throttle::RateLimit>,
    /// State shared by replicas (`None`: each keeps its own in memory).
    pub(crate) shared_store: Option<std::sync::Arc<dyn crate::store::SharedStore>>,
    /// End event streams when their token expires.
    pub(crate) close_streams_at_expiry: bool,
    /// Hold an event stream's head until its first event with data.
    pub(crate) hold_streams_for_step_up: bool,
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

    /// Reads the configuration from the environment. Every variable is
    /// optional except the first two; a variable set to an empty value (or
    /// only spaces) is read as unset: its setting keeps its default (on for
    /// `MCP_OAUTH2_CLOSE_STREAMS_AT_EXPIRY`, off for the other flags).
    /// Keywords (`off`, the DPoP modes, the reference server's `json` and
    /// `text`) are read in any case, with spaces around them ignored;
    /// algorithm names are JOSE's, exact (`RS256`, not `rs256`).
    ///
    #[doc = include_str!("env_table.md")]
    ///
    /// Errors name the variable ([`ConfigError::field`]). The other settings
    /// keep their defaults; to set them too, start from
    /// [`AuthConfigBuilder::from_env`].
    ///
    /// Every `MCP_OAUTH2_*` variable set must be one of the table: a
    /// misspelled one (`MCP_OAUTH2_REQUIRED_SCOPE`, or a name one edit from
    /// one of the table's, `MCP_OAUTH_REQUIRED_SCOPES`) is refused (field
    /// `environment`, the message naming it), and so is a value that is not
    /// UTF-8, rather than read as unset. Applications with `MCP_OAUTH2_*`
    /// variables of their own use [`AuthConfigBuilder::from_env_allowing`].
    pub fn from_env() -> Result<Self, ConfigError> {
        AuthConfigBuilder::from_env()?.build()
    }

    /// The canonical resource URI: the expected audience and the metadata's `resource`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[IssuerConfig] {
        &self.issuers
    }

    /// The multi-tenant issuers ([`AuthConfigBuilder::tenant_issuer`]).
    pub fn tenant_issuers(&self) -> &[TenantIssuer] {
        &self.tenant_issuers
    }

    /// The issuers listed in the metadata's `authorization_servers`.
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
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

    /// The store the replicas share ([`shared_store`](AuthConfigBuilder::shared_store),
    /// `MCP_OAUTH2_REDIS_URL`), when one is configured: for the server's own
    /// shared state, such as a
    /// [`SealedExchangeStore`](crate::SealedExchangeStore).
    pub fn shared_store(&self) -> Option<&std::sync::Arc<dyn crate::store::SharedStore>> {
        self.shared_store.as_ref()
    }

    /// The path of the resource URI (`/mcp` for `https://h/mcp`).
    pub fn resource_path(&self) -> &str {
        self.resource_url.path()
    }

    /// The host of the resource URI (for Host-header allowlists).
    pub fn resource_host(&self) -> Option<&str> {
        self.resource_url.host_str()
    }

    /// The `Host` values a server for this resource answers: the resource
    /// URL's host (any port: a reverse proxy may forward with or without
    /// it) and the loopback names rmcp allows by default (health checks,
    /// local clients). [`McpServer`](crate::McpServer) enforces them itself;
    /// an app that mounts rmcp's `StreamableHttpService` behind a plain
    /// [`AuthLayer`](crate::AuthLayer) gives them to rmcp, whose default
    /// admits loopback names only (found from outside: every call to
    /// `https://mcp.example.com/mcp` was refused 403 `Forbidden: Host header
    /// is not allowed` by rmcp, after the layer had accepted its token):
    ///
    /// ```rust,ignore
    /// let rmcp_config = StreamableHttpServerConfig::default()
    ///     .with_allowed_hosts(config.allowed_hosts());
    /// ```
    ///
    /// A DNS-rebinding page's `Host` (its own name) is still refused.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if let Some(host) = self.resource_host() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if !hosts.iter().any(|h| h == host) {
                hosts.push(host.to_owned());
            }
        }
        hosts
    }

    /// Whether every loopback origin is allowed: the resource itself is on
    /// loopback (a local server; rmcp's Host allowlist admits every loopback
    /// name and port likewise). A DNS-rebinding page keeps its own origin and
    /// stays refused.
    pub(crate) fn allows_loopback_origins(&self) -> bool {
        self::url::is_loopback(&self.resource_url)
    }

    /// The tools the scope rules name (static and computed).
    pub(crate) fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.scope_policy
            .tools
            .keys()
            .map(String::as_str)
            .chain(self.computed_scopes.tool_names())
    }

    /// Whether `http://` loopback URLs were allowed.
    pub fn allows_insecure_loopback(&self) -> bool {
        self.allow_insecure_loopback
    }

    /// Checks that every tool a scope rule names
    /// ([`tool_scopes`](AuthConfigBuilder::tool_scopes),
    /// [`tool_scopes_with`](AuthConfigBuilder::tool_scopes_with)) is a tool
    /// of `service`, as its `get_tool` answers (`#[tool_handler]`
    /// implements it). A rule for a name the service does not have protects
    /// nothing: a misspelt name (`add-note` for `add_note`, or the
    /// function's name where `#[tool(name = "...")]` renames the tool)
    /// leaves the real tool with the required scopes alone, which no
    /// request can show. [`McpServer`](crate::McpServer) makes this check
    /// in `build`; with a plain [`AuthLayer`](crate::AuthLayer), call it
    /// once on a handler of your service.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] (field `tool_scopes`) naming every tool the
    /// service does not know. A service whose `get_tool` knows no tool at
    /// all (rmcp's default answers `None` for every name) is refused alike:
    /// implement `get_tool` (rmcp uses it to validate `Mcp-Param-*`
    /// headers too) for the names to be checked.
    ///
    /// ```
    /// # use mcp_oauth2::AuthConfig;
    /// # fn check<S: rmcp::ServerHandler>(service: &S) -> Result<(), mcp_oauth2::ConfigError> {
    /// let config = AuthConfig::builder()
    ///     .issuer("https://auth.example.com")
    ///     .resource("https://mcp.example.com/mcp")
    ///     .tool_scopes("add_note", ["notes:write"])
    ///     .build()?;
    /// config.check_tool_names(service)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_tool_names<S: rmcp::ServerHandler>(&self, service: &S) -> Result<(), ConfigError> {
        let mut unknown: Vec<&str> = self
            .tool_names()
            .filter(|name| service.get_tool(name).is_none())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort_unstable();
        unknown.dedup();
        // Anything but printable ASCII escaped (found from outside: a
        // Cyrillic `а` printed as the Latin letter it looks like).
        let names = unknown
            .iter()
            .map(|name| format!("\"{}\"", name.escape_default()))
            .collect::<Vec<_>>()
            .join(", ");
        Err(ConfigError::new(
            "tool_scopes",
            format!(
                "the service has no tool named {names} (its get_tool answers none): a rule for a tool the service does not have protects nothing; name the tool as clients call it (the `name` of `#[tool(name = ...)]`, not the function's), enable it before build (rmcp's get_tool knows no disabled route), and implement get_tool (`#[tool_handler]` does) if the service has no router"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exempt_prefix_matches_on_segment_boundaries() {
        let r = ExemptRoute::Prefix("/health".into());
        assert!(r.matches("/health"));
        assert!(r.matches("/health/live"));
        assert!(!r.matches("/healthz"));
        let r = ExemptRoute::Prefix("/health/".into());
        assert!(r.matches("/health/live"));
        assert!(!ExemptRoute::Exact("/health".into()).matches("/health/live"));
    }

    #[test]
    fn accessors_report_the_validated_configuration() {
        let c = AuthConfig::builder()
            .issuer("https://auth.example.com")
            .resource("https://mcp.example.com:8443/public/mcp")
            .required_scopes(["notes:read"])
            .jwks_uri("https://auth.example.com/jwks")
            .build()
            .unwrap();
        assert_eq!(c.resource_path(), "/public/mcp");
        assert_eq!(c.resource_host(), Some("mcp.example.com"));
        assert_eq!(
            c.metadata_path(),
            "/.well-known/oauth-protected-resource/public/mcp"
        );
        assert_eq!(c.required_scopes(), ["notes:read"]);
        assert!(!c.allows_insecure_loopback());
        let issuer = c.issuers().first().unwrap();
        assert_eq!(issuer.issuer(), "https://auth.example.com");
        assert_eq!(
            issuer.jwks_uri().map(Url::as_str),
            Some("https://auth.example.com/jwks")
        );
        assert!(issuer.introspection().is_none());
    }
}
