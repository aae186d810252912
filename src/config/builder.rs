//! [`AuthConfigBuilder`]: every setting with its documented default, and
//! [`build`](AuthConfigBuilder::build), which validates them all at once and
//! names the setting of the first mistake ([`ConfigError::field`]).

use std::time::Duration;

use ::url::Url;

use super::scopes::check_scopes;
use super::url::{
    UrlParts, canonical_resource, check_https, check_url_parts, metadata_path, normalize_origin,
    origin_of, route_path_problem, shown, written_as_url,
};
use super::{
    Algorithm, AudienceRule, AuthConfig, DEFAULT_ALGORITHMS, DEFAULT_LEEWAY,
    DEFAULT_MAX_TOKEN_LIFETIME, ExemptRoute, IntrospectionSettings, IssuerConfig, JwksPolicy,
    SessionLimits, TokenCachePolicy, TypPolicy,
};
use crate::error::ConfigError;

/// The first item of `list` that an earlier item equals.
pub(super) fn first_repeated<T: PartialEq>(list: &[T]) -> Option<&T> {
    list.iter()
        .enumerate()
        .find(|(i, item)| list.get(..*i).is_some_and(|before| before.contains(item)))
        .map(|(_, item)| item)
}

/// Builder for [`AuthConfig`]. Every setting has a documented default; the
/// issuer and the resource are required.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthConfigBuilder {
    pub(super) issuers: Vec<String>,
    pub(super) tenant_issuers: Vec<super::TenantIssuer>,
    pub(super) issuer_policies: Vec<(String, super::IssuerPolicy)>,
    pub(super) authorization_servers: Option<Vec<String>>,
    /// Entries of `authorization_servers` allowed not to be trusted issuers.
    pub(super) untrusted_authorization_servers: Vec<String>,
    pub(super) jwks_uris: Vec<(Option<String>, String)>,
    pub(super) resource: Option<String>,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) leeway: Duration,
    pub(super) typ_policy: TypPolicy,
    pub(super) required_scopes: Vec<String>,
    pub(super) scopes_supported: Option<Vec<String>>,
    pub(super) scope_policy: crate::scope::ScopePolicy,
    pub(super) computed_scopes: crate::requirement::ComputedScopes,
    pub(super) introspection: Option<IntrospectionSettings>,
    pub(super) issuer_introspection: Vec<(String, IntrospectionSettings)>,
    pub(super) extra_audiences: Vec<String>,
    pub(super) audience_rule: AudienceRule,
    pub(super) scope_claims: Option<Vec<String>>,
    pub(super) resource_name: Option<String>,
    pub(super) resource_documentation: Option<String>,
    pub(super) exempt: Vec<ExemptRoute>,
    pub(super) allow_insecure_loopback: bool,
    /// Filled by [`from_env`](Self::from_env): the errors of `build` name
    /// the environment variables (`ConfigError::for_env`).
    pub(super) from_env: bool,
    pub(super) max_token_bytes: usize,
    pub(super) max_token_lifetime: Duration,
    pub(super) verify_timeout: Duration,
    pub(super) require_keys_before_ready: bool,
    pub(super) require_client_id: bool,
    pub(super) allowed_origins: Vec<String>,
    pub(super) sessions: SessionLimits,
    pub(super) max_listens_per_principal: usize,
    pub(super) max_pending_bodies_per_principal: usize,
    pub(super) max_pending_body_bytes_per_principal: usize,
    pub(super) max_pending_bodies: usize,
    pub(super) max_pending_body_bytes: usize,
    pub(super) max_unsent_answer_bytes_per_principal: usize,
    pub(super) max_unsent_answer_bytes: usize,
    pub(super) max_answer_streams_per_principal: usize,
    pub(super) close_streams_at_expiry: bool,
    pub(super) hold_streams_for_step_up: bool,
    pub(super) jwks: JwksPolicy,
    pub(super) token_cache: TokenCachePolicy,
    pub(super) dpop: super::DpopPolicy,
    pub(super) watch: super::watch::WatchOptions,
    pub(super) shared_store: Option<std::sync::Arc<dyn crate::store::SharedStore>>,
    /// A preset's refusal of its own arguments (presets return a builder,
    /// not a `Result`): [`build`](Self::build) returns it first.
    pub(super) preset_error: Option<ConfigError>,
}

/// The longest `max-age` of the metadata document: RFC 9111 section 1.2.2
/// asks senders not to send a delta-seconds above 2^31.
const MAX_METADATA_MAX_AGE: Duration = Duration::from_secs(2_147_483_648);

/// The longest key-set interval accepted (`jwks_cache_ttl`,
/// `jwks_refresh_cooldown`, `jwks_cache_max_ttl`): a day. Longer, a key the
/// issuer withdraws stays trusted for as long.
const MAX_JWKS_INTERVAL: Duration = Duration::from_secs(86_400);

/// The longest `session_idle_timeout`: a day. The binding's expiry is
/// handed to the shared store (Redis refuses an expiry past its range, so
/// every session would fail at run time) and to rmcp's session keep-alive.
pub(crate) const MAX_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The fields naming introspection's client id and secret in a
/// [`ConfigError`] of the builder (the environment names their variables).
const INTROSPECTION_CREDENTIALS: (&str, &str) =
    ("introspection_client_id", "introspection_client_secret");

/// The longest `verify_timeout`: five minutes (a client waiting longer
/// for an answer has given up long before).
const MAX_VERIFY_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest `max_token_lifetime`: 366 days. The setting is a defence
/// (a stolen token must not live for years); past a year it defends
/// nothing, and a mistyped digit or unit turned it off silently (found
/// from outside: `MCP_OAUTH2_MAX_TOKEN_LIFETIME=99999999999999999999`
/// started, and a token expiring in 2^62 s was served).
const MAX_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 86_400);

impl Default for AuthConfigBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            tenant_issuers: Vec::new(),
            issuer_policies: Vec::new(),
            authorization_servers: None,
            untrusted_authorization_servers: Vec::new(),
            jwks_uris: Vec::new(),
            resource: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: DEFAULT_LEEWAY,
            typ_policy: TypPolicy::default(),
            required_scopes: Vec::new(),
            scopes_supported: None,
            scope_policy: crate::scope::ScopePolicy::default(),
            computed_scopes: crate::requirement::ComputedScopes::default(),
            introspection: None,
            issuer_introspection: Vec::new(),
            extra_audiences: Vec::new(),
            audience_rule: AudienceRule::Resource,
            scope_claims: None,
            resource_name: None,
            resource_documentation: None,
            exempt: Vec::new(),
            allow_insecure_loopback: false,
            from_env: false,
            max_token_bytes: crate::bearer::DEFAULT_MAX_TOKEN_BYTES,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            verify_timeout: super::DEFAULT_VERIFY_TIMEOUT,
            require_keys_before_ready: true,
            require_client_id: false,
            allowed_origins: Vec::new(),
            sessions: SessionLimits::default(),
            max_listens_per_principal: super::DEFAULT_MAX_LISTENS_PER_PRINCIPAL,
            max_pending_bodies_per_principal: super::DEFAULT_MAX_PENDING_BODIES_PER_PRINCIPAL,
            max_pending_body_bytes_per_principal:
                super::DEFAULT_MAX_PENDING_BODY_BYTES_PER_PRINCIPAL,
            max_pending_bodies: super::DEFAULT_MAX_PENDING_BODIES,
            max_pending_body_bytes: super::DEFAULT_MAX_PENDING_BODY_BYTES,
            max_unsent_answer_bytes_per_principal:
                super::DEFAULT_MAX_UNSENT_ANSWER_BYTES_PER_PRINCIPAL,
            max_unsent_answer_bytes: super::DEFAULT_MAX_UNSENT_ANSWER_BYTES,
            max_answer_streams_per_principal: super::DEFAULT_MAX_ANSWER_STREAMS_PER_PRINCIPAL,
            close_streams_at_expiry: true,
            hold_streams_for_step_up: true,
            jwks: JwksPolicy::default(),
            token_cache: TokenCachePolicy::default(),
            dpop: super::DpopPolicy::default(),
            watch: super::watch::WatchOptions::default(),
            shared_store: None,
            preset_error: None,
        }
    }
}

/// An issuer identifier's text in the form its URL takes (RFC 8414 section
/// 3.3: `iss` and the discovery document's `issuer` are compared with it
/// exactly, and servers publish the scheme and host in lowercase): no
/// capitals in scheme or host, no query or fragment, and written as the URL
/// it parses to (not `https://h:443`, `../`, a space, a backslash).
fn check_issuer_form(text: &str, url: &Url, field: &'static str) -> Result<(), ConfigError> {
    let authority = text.split_once("://").map_or(text, |(scheme, rest)| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        text.get(..scheme.len() + 3 + host.len()).unwrap_or(scheme)
    });
    if authority.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ConfigError::new(
            field,
            format!(
                "{text:?} has capitals in its scheme or host: write the issuer exactly as \
                 the authorization server publishes it (lowercase scheme and host); \
                 issuers are compared exactly (RFC 8414 section 3.3), so no token \
                 would ever verify"
            ),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            field,
            "must not have a query or fragment (RFC 8414 section 2)",
        ));
    }
    if !written_as_url(text, url) {
        // The URL's form, without the `/` a root path adds when the text
        // had none (found from outside: the message suggested a trailing
        // `/`, a different issuer that no token names).
        let form = url.as_str();
        let form = match form.strip_suffix('/') {
            Some(bare) if url.path() == "/" && !text.ends_with('/') => bare,
            _ => form,
        };
        return Err(ConfigError::new(
            field,
            format!(
                "{text:?} is not written as its URL ({form:?}): the issuer is compared as \
                 written (RFC 8414 section 3.3) but its metadata and keys would be \
                 fetched from the host that URL names; write it exactly as the \
                 authorization server publishes it"
            ),
        ));
    }
    Ok(())
}

impl AuthConfigBuilder {
    /// Makes [`build`](Self::build) fail with `error` (a preset refusing
    /// its arguments); the first such error is kept.
    pub(crate) fn refuse(mut self, error: ConfigError) -> Self {
        self.preset_error.get_or_insert(error);
        self
    }

    /// Adds a trusted issuer (required, at least one). `iss` must equal it
    /// exactly; its keys are found by RFC 8414 / OpenID discovery unless a
    /// [`jwks_uri`](Self::jwks_uri) is given. Write it exactly as the
    /// authorization server publishes it: issuers are compared exactly
    /// (RFC 8414 section 3.3), so [`build`](Self::build) refuses capitals in
    /// its scheme or host (`HTTP://`, `https://Auth.example.com`), which no
    /// server publishes and which would never match, and a text that is not
    /// the form of its own URL (`https://http://as.example/`, a scheme pasted
    /// twice, is the host `http`; `../`, spaces, an explicit default port):
    /// keys are fetched from the host the URL names, while `iss` is compared
    /// with the text.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Adds a multi-tenant issuer: an issuer template with a `{tenant}`
    /// placeholder, its tenant allowlist, tenant claim and key sets (see
    /// [`TenantIssuer`](super::TenantIssuer)). It counts as an issuer: a
    /// configuration may have only tenant issuers.
    pub fn tenant_issuer(mut self, issuer: super::TenantIssuer) -> Self {
        self.tenant_issuers.push(issuer);
        self
    }

    /// What the tokens of one configured issuer must satisfy where it
    /// differs from the global settings (see
    /// [`IssuerPolicy`](super::IssuerPolicy)); for a tenant issuer use
    /// [`TenantIssuer::policy`](super::TenantIssuer::policy).
    pub fn issuer_policy(mut self, issuer: impl Into<String>, policy: super::IssuerPolicy) -> Self {
        self.issuer_policies.push((issuer.into(), policy));
        self
    }

    /// The metadata's `authorization_servers`, replacing the list computed
    /// from the issuers (each fixed issuer, and for each tenant issuer its
    /// advertised issuers or one per allowlisted tenant). MCP clients pick
    /// one of them to discover where to get a token.
    ///
    /// Each entry must be a trusted issuer: a configured [`issuer`](Self::issuer),
    /// an issuer a [`TenantIssuer`](super::TenantIssuer) accepts (its
    /// template with an accepted tenant), or one of its
    /// [`advertise`](super::TenantIssuer::advertise)d front doors. Any other
    /// entry is refused at build (`authorization_servers`): clients would
    /// get their tokens there and every one of them would be refused
    /// (`invalid_issuer`). A front door that is deliberately not an issuer
    /// is allowed by naming it with
    /// [`allow_untrusted_authorization_server`](Self::allow_untrusted_authorization_server).
    pub fn authorization_servers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers = Some(issuers.into_iter().map(Into::into).collect());
        self
    }

    /// Lets `url`, listed in [`authorization_servers`](Self::authorization_servers),
    /// be a server that is not a trusted issuer: the explicit opt-in for a
    /// front door whose tokens name another issuer (Entra ID's multi-tenant
    /// `https://login.microsoftonline.com/organizations/v2.0` or `common`
    /// endpoints, with an issuer template whose tenants the tokens name).
    /// Default: none, every advertised server must be a trusted issuer.
    /// A URL given here that `authorization_servers` does not list is
    /// refused at build (`untrusted_authorization_servers`). May be called
    /// several times. Environment: `MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS`.
    pub fn allow_untrusted_authorization_server(mut self, url: impl Into<String>) -> Self {
        self.untrusted_authorization_servers.push(url.into());
        self
    }

    /// The key-set URL of the only issuer; skips discovery. With several
    /// issuers use [`issuer_jwks_uri`](Self::issuer_jwks_uri). Default:
    /// discovered from the issuer's metadata (RFC 8414, then OpenID
    /// Connect), and discovered again after a failed fetch from it (an
    /// issuer may move its key set); a URL given here is kept for good.
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
    /// Its metadata is routed at the well-known prefix followed by its
    /// path, so a path segment starting with `:` or `*` (which axum's router
    /// refuses) is refused by [`build`](Self::build).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Accepted signing algorithms (default RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA). Only
    /// asymmetric algorithms are allowed; the token's `alg` never widens this.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock leeway for `exp`, `nbf`, `iat` (default 60 s, at most 5 minutes).
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
    /// `scopes_supported` and the `scope` of the 401 challenge. A scope
    /// listed twice is refused at build time.
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
    /// The [required scopes](Self::required_scopes) it does not list are
    /// added after it: every request needs them. A scope listed twice is
    /// refused at build time.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Also accept opaque tokens through RFC 7662 introspection (default
    /// off). JWTs are still verified locally; only tokens that are not JWTs
    /// are introspected. With several issuers, an endpoint given in
    /// `settings` vouches for every one of them (an answer's `iss` may name
    /// any, and must name one: an answer without it is refused,
    /// `invalid_issuer`); one discovered from the first issuer vouches for
    /// that issuer only (an answer without `iss` is that issuer's). Give an issuer that has its own endpoint its own settings
    /// ([`issuer_introspection`](Self::issuer_introspection)).
    pub fn introspection(mut self, settings: IntrospectionSettings) -> Self {
        self.introspection = Some(settings);
        self
    }

    /// Introspection settings of one configured issuer (endpoint discovered
    /// from that issuer unless given). Its endpoint vouches only for that
    /// issuer's tokens, whereas the endpoint of
    /// [`introspection`](Self::introspection) vouches for every configured
    /// issuer when it is given (`IntrospectionSettings::endpoint`), and for
    /// the first issuer only when it is discovered from that issuer. Endpoints are asked in issuer order, the shared one last;
    /// the first `active` answer decides.
    pub fn issuer_introspection(
        mut self,
        issuer: impl Into<String>,
        settings: IntrospectionSettings,
    ) -> Self {
        self.issuer_introspection.push((issuer.into(), settings));
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

    /// `resource_name` in the metadata (default none): the name a client
    /// shows its user (RFC 9728 section 2). A name with a control character
    /// (a line break, an escape sequence, a direction override such as
    /// U+202E) is refused by [`build`](Self::build): shown in a consent
    /// screen or a terminal, it can make the name read as another.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `resource_documentation` in the metadata (default none): an
    /// `https://` URL (`http://` on a loopback host with
    /// [`allow_insecure_http_for_loopback`](Self::allow_insecure_http_for_loopback));
    /// any other scheme (`javascript:`, `data:`, `ftp:`) is refused by
    /// [`build`](Self::build).
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// A path served without authentication (default none), as the client
    /// requests it: for a layer inside `Router::nest("/api", ..)`,
    /// `/api/health`, not the `/health` the nested router is handed.
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

    /// Cap on a bearer token's length (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The deadline of one token verification (default 30 s, from 1 ms to
    /// 300 s): a verifier that has not decided by then (a custom
    /// [`TokenVerifier`](crate::TokenVerifier) waiting on a slow service,
    /// or fetches of keys and introspection that add up) costs its request
    /// a 503 `temporarily_unavailable` (reason `verification_timeout`, with
    /// `Retry-After`), never a request left hanging. The built-in verifiers'
    /// own fetches have shorter deadlines
    /// ([`JwksPolicy::http_timeout`](crate::JwksPolicy::http_timeout)), so
    /// they answer with their precise reason first. Environment:
    /// `MCP_OAUTH2_VERIFY_TIMEOUT` (seconds).
    pub fn verify_timeout(mut self, timeout: Duration) -> Self {
        self.verify_timeout = timeout;
        self
    }

    /// Longest accepted token lifetime (default 24 hours, at most 366
    /// days). A token whose `exp` is more than this after its `iat`, or
    /// more than this (plus the leeway) from now, is refused
    /// (`token_lifetime_too_long`): a stolen token must not live for years.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
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

    /// Refuse a token that does not name its client (default `false`):
    /// one without a `client_id`, `azp`, `cid` or `appid` claim is refused
    /// (`not_an_access_token`), for JWTs and introspection answers alike.
    /// RFC 9068 section 2.2 makes `client_id` required in access tokens,
    /// and providers that do not follow it name the client in one of the
    /// others, while an OpenID Connect ID token names its client only as
    /// its audience. With an audience accepted by
    /// [`accept_audience`](Self::accept_audience) that is also a client's id
    /// (Entra ID: the application ID), an ID token issued to that client
    /// would otherwise pass for an access token. On in the Entra ID presets.
    pub fn require_client_id(mut self, require: bool) -> Self {
        self.require_client_id = require;
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
    /// and earlier) one user (issuer, tenant and subject: all its clients
    /// together) holds open (default 64). One more `initialize` gets 429
    /// with `Retry-After`; open sessions are never evicted for it. Counted
    /// per user, not per client, so that tokens of many clients (cheap with
    /// dynamic client registration) do not multiply it; each session still
    /// belongs to the client that opened it.
    pub fn max_sessions_per_principal(mut self, sessions: usize) -> Self {
        self.sessions.per_principal = sessions;
        self
    }

    /// Cap on the `subscriptions/listen` event streams (MCP 2026-07-28) and
    /// legacy sessions' GET streams, together, that one
    /// user (issuer, tenant and subject: all its clients together) holds
    /// open at once on this process (default 16; with several replicas,
    /// each counts its own). One more gets 429 with `Retry-After` and the
    /// JSON `reason` `too_many_listens_for_principal`, before dispatch; open
    /// listens are never closed for it. A listen's stream lasts until its
    /// client closes it or its token expires, and holds what it names
    /// (about 2 MB at most, measured): without a cap one token could hold 200 per
    /// HTTP/2 connection on every connection it opens.
    pub fn max_listens_per_principal(mut self, listens: usize) -> Self {
        self.max_listens_per_principal = listens;
        self
    }

    /// Cap on the requests of one user (issuer, tenant and subject: all its
    /// clients together; for an unauthenticated JSON POST on an exempt
    /// route, the peer's address, an IPv6 peer by its /64) whose bodies
    /// the layer waits for at once, on this process (default 256), over
    /// HTTP/1 and HTTP/2 alike. A body already taken from the connection
    /// when the layer first reads it (a call sent with its head, within the
    /// server's HTTP/1 read buffer, 16 KiB by default, or the HTTP/2
    /// stream's window) is never waited for; one that has not arrived
    /// whole, however fast it comes, holds a slot until it has. The
    /// default is above one HTTP/2 connection's 200 streams, so that a
    /// client's burst of calls on one connection is never refused. One
    /// more gets 429 with `Retry-After: 1` and the JSON `reason`
    /// `too_many_pending_bodies_for_principal`, its body unread. Why: a
    /// request waiting for its body holds its head and the body read so
    /// far in memory (up to the 4 MiB body cap), and a client may open 200
    /// HTTP/2 streams on every connection it opens. See also
    /// [`max_pending_body_bytes_per_principal`](Self::max_pending_body_bytes_per_principal).
    /// Set above [`max_pending_bodies`](Self::max_pending_bodies), the
    /// build is refused; left at its default above a lower process bound,
    /// it is moot (the process bound holds first).
    pub fn max_pending_bodies_per_principal(mut self, bodies: usize) -> Self {
        self.max_pending_bodies_per_principal = bodies;
        self
    }

    /// Cap on the bytes the bodies of one user's requests that the layer
    /// waits for hold together, on this process (default 64 MiB: sixteen
    /// bodies at the 4 MiB body cap, a quarter of the process's bound; one
    /// user's uploads of more at once get 429 for the excess, however fast
    /// they come): what has arrived of each, counted as it arrives. A body whose next bytes would pass the cap gets the 429
    /// of [`max_pending_bodies_per_principal`](Self::max_pending_bodies_per_principal),
    /// its read ended. Why: without it one user's nearly whole bodies
    /// could fill the process's
    /// [`max_pending_body_bytes`](Self::max_pending_body_bytes), and every
    /// other user's body that must wait would get 503. Set above
    /// [`max_pending_body_bytes`](Self::max_pending_body_bytes), the build
    /// is refused; left at its default above a lower process bound, it is
    /// moot.
    pub fn max_pending_body_bytes_per_principal(mut self, bytes: usize) -> Self {
        self.max_pending_body_bytes_per_principal = bytes;
        self
    }

    /// Cap on the request bodies the layer waits for at once, all callers
    /// together, on this process (default 2,048: about 64 MB of heads at
    /// the default header limit). One more gets 503
    /// `temporarily_unavailable` with `Retry-After: 1` and the JSON
    /// `reason` `too_many_pending_bodies`, its body unread. See
    /// [`max_pending_bodies_per_principal`](Self::max_pending_bodies_per_principal).
    pub fn max_pending_bodies(mut self, bodies: usize) -> Self {
        self.max_pending_bodies = bodies;
        self
    }

    /// Cap on the bytes the request bodies the layer waits for hold
    /// together, on this process (default 256 MiB): what has arrived of
    /// each, counted as it arrives (each at most the body cap, 4 MiB by
    /// default). A body whose next bytes would pass the cap gets the 503 of
    /// [`max_pending_bodies`](Self::max_pending_bodies), its read ended.
    pub fn max_pending_body_bytes(mut self, bytes: usize) -> Self {
        self.max_pending_body_bytes = bytes;
        self
    }

    /// Cap on the bytes of one user's answers (issuer, tenant, subject: all
    /// its clients together) that the layer has and their clients have not
    /// taken yet, on this process (default 64 MiB, a quarter of the
    /// process's bound). Counted are answer frames of 4 KiB or more (a JSON
    /// answer, an event of a stream), from the moment the layer has them
    /// until the server has taken them for sending, in copies of at most
    /// 16 KiB. An answer that would pass the cap is dropped: the call ran,
    /// and its answer is replaced by 429 with `Retry-After: 1` and the JSON
    /// `reason` `too_many_unsent_answers_for_principal` (an event of a
    /// stream whose head has left ends the stream with an error instead:
    /// HTTP/2 `RST_STREAM`, HTTP/1 the connection closed). Why: an answer
    /// a client does not read stays in memory until
    /// `response_write_timeout`, and an HTTP/2 client may leave 200 unread
    /// on every connection it opens. A client that reads its answers never
    /// gets there. Set above
    /// [`max_unsent_answer_bytes`](Self::max_unsent_answer_bytes), the
    /// build is refused; left at its default above a lower process bound,
    /// it is moot.
    pub fn max_unsent_answer_bytes_per_principal(mut self, bytes: usize) -> Self {
        self.max_unsent_answer_bytes_per_principal = bytes;
        self
    }

    /// Cap on the bytes of answers not yet taken by their clients, all
    /// callers together, on this process (default 256 MiB), counted as for
    /// [`max_unsent_answer_bytes_per_principal`](Self::max_unsent_answer_bytes_per_principal).
    /// An answer that would pass it is dropped (the call ran) and replaced
    /// by 503 `temporarily_unavailable` with `Retry-After: 1` and the JSON
    /// `reason` `too_many_unsent_answers`.
    pub fn max_unsent_answer_bytes(mut self, bytes: usize) -> Self {
        self.max_unsent_answer_bytes = bytes;
        self
    }

    /// Cap on the event-stream answers one user (issuer, tenant, subject:
    /// all its clients together) has in progress on this process (default
    /// 64): a call answered as an event stream (a legacy session's, a
    /// stateless call that sends a notification first) holds one from the
    /// moment its head leaves until its stream ends. One more is answered
    /// 429 with `Retry-After: 1` and the JSON `reason`
    /// `too_many_answer_streams_for_principal` instead of its stream (the
    /// call ran or runs on, its answer dropped). Why: once a stream's head
    /// has left, rmcp keeps what the handler sends next (its answer) until
    /// the client reads it, where the layer cannot count it in bytes
    /// ([`max_unsent_answer_bytes_per_principal`](Self::max_unsent_answer_bytes_per_principal)):
    /// found from outside, calls that sent a progress notification before
    /// their 450 KB answer, left unread on HTTP/2 streams of zero window,
    /// held 490 MB for one user. A client that reads its streams holds
    /// as many as it has calls in progress.
    pub fn max_answer_streams_per_principal(mut self, streams: usize) -> Self {
        self.max_answer_streams_per_principal = streams;
        self
    }

    /// Cap on the legacy sessions all principals hold open together
    /// (default 10,000); past it a new session gets 429. Below the
    /// per-principal default (64), that default is moot and reads as this
    /// cap; a [`max_sessions_per_principal`](Self::max_sessions_per_principal)
    /// set above it is refused.
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.sessions.total = sessions;
        self
    }

    /// How long a legacy session stays bound to its owner without a request
    /// (default 300 s, rmcp's session keep-alive; at most a day, 86,400 s);
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

    /// End every event stream (`text/event-stream` response: a legacy GET
    /// stream, a POST answered with SSE, a 2026-07-28
    /// `subscriptions/listen`) when the token that opened it expires, its
    /// `exp` plus the [`leeway`](Self::leeway) (default on). The client
    /// sees the stream end, as if the server had closed it, and reconnects
    /// with its current token, which is verified like any request: nothing
    /// more is delivered on the strength of an expired credential. A call
    /// still running then loses its answer on that stream (resumption of a
    /// request's stream is not offered); tokens outlive calls by far in
    /// practice. Off: a stream lasts as long as the server keeps it open,
    /// whatever its token (the behaviour of earlier versions). A token
    /// without `exp` (a custom verifier's) opens streams without an end.
    pub fn close_streams_at_expiry(mut self, on: bool) -> Self {
        self.close_streams_at_expiry = on;
        self
    }

    /// Hold the head of an event-stream answer to a POST (a legacy
    /// session's call; a stateless call that streams) until its first
    /// event with data (default on), so that a handler whose
    /// [`require_scopes`](crate::AuthContext::require_scopes) fails before
    /// its first message gets a real HTTP 403 `insufficient_scope`
    /// challenge (late step-up).
    ///
    /// Off: the head and rmcp's priming event leave at once, as rmcp alone
    /// sends them, and the client reads them while the handler runs (about
    /// 20 µs less per legacy call at one connection on loopback:
    /// BENCHMARKS.md). A late step-up is then answered in the stream, with
    /// the JSON-RPC error `-32600` (data `{"error": "insufficient_scope",
    /// "scope": ...}`) in place of the call's answer, as after a streamed
    /// notification. Either way the request stays marked: whatever the
    /// handler answers after a failed `require_scopes` is replaced, never
    /// sent. For clients that read step-up from the JSON-RPC error as well
    /// as from a 403; JSON answers (the stateless revision's default) are
    /// never held and always get the 403.
    pub fn hold_streams_for_step_up(mut self, on: bool) -> Self {
        self.hold_streams_for_step_up = on;
        self
    }

    /// State shared by the replicas of this server (default: none, each
    /// process keeps its own in memory). When set, all of it goes through
    /// `store`: legacy session owners (a session created on one replica is
    /// bound on all), the DPoP proofs already used (a proof replayed to
    /// another replica is refused) and active introspection results (one
    /// endpoint call serves every replica). The README's "Shared state
    /// (several replicas)" says what happens when the store is slow or
    /// down: sessions and DPoP fail closed (503 `store_unavailable`),
    /// introspection falls back to the endpoint. Environment:
    /// `MCP_OAUTH2_REDIS_URL` (feature `redis`).
    pub fn shared_store(mut self, store: std::sync::Arc<dyn crate::store::SharedStore>) -> Self {
        self.shared_store = Some(store);
        self
    }
}

impl AuthConfigBuilder {
    /// Validates and builds the configuration. The errors of a builder made
    /// by [`from_env`](Self::from_env) name the environment variable behind
    /// the setting (`MCP_OAUTH2_RESOURCE`, not `resource`), those of any
    /// other builder the builder setting.
    pub fn build(self) -> Result<AuthConfig, ConfigError> {
        let from_env = self.from_env;
        self.build_checked()
            .map_err(|e| if from_env { e.for_env() } else { e })
    }

    fn build_checked(self) -> Result<AuthConfig, ConfigError> {
        if let Some(error) = self.preset_error {
            return Err(error);
        }
        let loopback_ok = self.allow_insecure_loopback;
        let resource_raw = self.resource.ok_or_else(|| {
            ConfigError::new(
                "resource",
                "is required (the canonical URI of the MCP endpoint)",
            )
        })?;
        let (resource, resource_url) = canonical_resource(&resource_raw, loopback_ok)?;
        // The metadata is routed at the well-known prefix followed by the
        // resource's path (RFC 9728 section 3.1).
        if let Some(problem) = route_path_problem(&metadata_path(&resource_url)) {
            return Err(ConfigError::new(
                "resource",
                format!(
                    "its path {:?} cannot be routed: {problem}",
                    resource_url.path()
                ),
            ));
        }

        if self.issuers.is_empty() && self.tenant_issuers.is_empty() {
            return Err(ConfigError::new(
                "issuer",
                "at least one issuer is required",
            ));
        }
        let mut issuers: Vec<IssuerConfig> = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            let url = Url::parse(&issuer).map_err(|e| {
                ConfigError::new("issuer", format!("{} is not a URL: {e}", shown(&issuer)))
            })?;
            check_url_parts(&url, UrlParts::Issuer, "issuer")?;
            check_https(&url, loopback_ok, "issuer")?;
            check_issuer_form(&issuer, &url, "issuer")?;
            if let Some(door) = super::tenant::entra_front_door(&issuer) {
                return Err(ConfigError::new(
                    "issuer",
                    super::tenant::front_door_message(door),
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
                policy: None,
            });
        }
        for (iss, policy) in self.issuer_policies {
            policy.validate()?;
            let target = issuers.iter_mut().find(|i| i.issuer == iss);
            let Some(target) = target.filter(|t| t.policy.is_none()) else {
                return Err(ConfigError::new(
                    "issuer_policy",
                    format!("{iss:?} is not a configured issuer, or is set twice"),
                ));
            };
            target.policy = Some(policy);
        }
        for t in &self.tenant_issuers {
            t.validate(loopback_ok)?;
            // One issuer reached twice, once plain and once through the
            // template, would take that tenant's tokens away from the
            // template's rules (its tenant claim, the tenant in the
            // principal), silently (found from outside): refused, as an
            // issuer written twice is.
            if let Some(plain) = issuers.iter().find(|i| t.issues(&i.issuer)) {
                return Err(ConfigError::new(
                    "issuer",
                    format!(
                        "{:?} is configured both as an issuer and through the tenant issuer {:?}: \
                         configure it once (tokens of that tenant would skip the tenant issuer's rules)",
                        plain.issuer,
                        t.template()
                    ),
                ));
            }
            // A front door is where clients are sent to sign in: a trusted
            // issuer, or the template filled with a tenant id (Entra ID's
            // `organizations`), never another host, path or shape.
            for adv in &t.advertised {
                let trusted = issuers.iter().any(|i| i.issuer == *adv)
                    || self.tenant_issuers.iter().any(|u| u.issues(adv))
                    || t.fits_template(adv);
                if !trusted {
                    return Err(ConfigError::new(
                        "authorization_servers",
                        format!(
                            "{adv:?} (TenantIssuer::advertise) is neither a configured issuer nor \
                             the template {:?} filled with a tenant id",
                            t.template
                        ),
                    ));
                }
            }
        }
        let authorization_servers = match self.authorization_servers {
            Some(list) => {
                if list.is_empty() {
                    return Err(ConfigError::new(
                        "authorization_servers",
                        "must list at least one issuer (RFC 9728 section 2)",
                    ));
                }
                for (i, s) in list.iter().enumerate() {
                    if list.get(..i).is_some_and(|before| before.contains(s)) {
                        return Err(ConfigError::new(
                            "authorization_servers",
                            format!("{s:?} is listed twice"),
                        ));
                    }
                    let url = Url::parse(s).map_err(|e| {
                        ConfigError::new(
                            "authorization_servers",
                            format!("{} is not a URL: {e}", shown(s)),
                        )
                    })?;
                    check_url_parts(&url, UrlParts::Issuer, "authorization_servers")?;
                    check_https(&url, loopback_ok, "authorization_servers")?;
                    // A client finds an authorization server's metadata
                    // from this text and must find it again as that
                    // metadata's `issuer` (RFC 8414 section 3.3): the form
                    // checks of issuers hold here too (found from outside:
                    // an untrusted front door was advertised as typed,
                    // capitals, `:443` and a space included).
                    check_issuer_form(s, &url, "authorization_servers")?;
                    let trusted = issuers.iter().any(|i| i.issuer == *s)
                        || self
                            .tenant_issuers
                            .iter()
                            .any(|t| t.issues(s) || t.advertised.contains(s));
                    if !trusted && !self.untrusted_authorization_servers.contains(s) {
                        return Err(ConfigError::new(
                            "authorization_servers",
                            format!(
                                "{s:?} is not a trusted issuer: clients would get tokens \
                                 there and every one would be refused (invalid_issuer); list \
                                 only configured issuers (compared exactly), or allow a front \
                                 door that is not an issuer explicitly \
                                 (allow_untrusted_authorization_server)"
                            ),
                        ));
                    }
                }
                list
            }
            None => {
                let mut list: Vec<String> = issuers.iter().map(|i| i.issuer.clone()).collect();
                for t in &self.tenant_issuers {
                    for adv in t.advertised_issuers() {
                        if !list.contains(&adv) {
                            list.push(adv);
                        }
                    }
                }
                if list.is_empty() {
                    return Err(ConfigError::new(
                        "authorization_servers",
                        "nothing to list: with any tenant accepted, advertise an issuer \
                         (TenantIssuer::advertise) or set authorization_servers",
                    ));
                }
                list
            }
        };
        // One that is an issuer needs no opt-in: listing it there says
        // nothing (found from outside: taken silently).
        if let Some(trusted) = self.untrusted_authorization_servers.iter().find(|u| {
            issuers.iter().any(|i| i.issuer == **u)
                || self.tenant_issuers.iter().any(|t| t.issues(u))
        }) {
            return Err(ConfigError::new(
                "untrusted_authorization_servers",
                format!(
                    "{trusted:?} is a configured issuer: it is trusted, and needs no \
                     allow_untrusted_authorization_server"
                ),
            ));
        }
        if let Some(unused) = self
            .untrusted_authorization_servers
            .iter()
            .find(|u| !authorization_servers.contains(u))
        {
            return Err(ConfigError::new(
                "untrusted_authorization_servers",
                format!(
                    "{unused:?} is allowed as an untrusted authorization server but \
                     authorization_servers does not list it"
                ),
            ));
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
                check_url_parts(endpoint, UrlParts::Endpoint, "introspection_endpoint")?;
                check_https(endpoint, loopback_ok, "introspection_endpoint")?;
            }
            settings.check(INTROSPECTION_CREDENTIALS)?;
            target.introspection = Some(settings);
        }
        for (issuer, jwks) in self.jwks_uris {
            let url = Url::parse(&jwks).map_err(|e| {
                ConfigError::new("jwks_uri", format!("{} is not a URL: {e}", shown(&jwks)))
            })?;
            check_url_parts(&url, UrlParts::Endpoint, "jwks_uri")?;
            check_https(&url, loopback_ok, "jwks_uri")?;
            // A plain issuer's key-set URL is fetched as written: a
            // `{tenant}` in it is never filled (found from outside: fetched
            // as `%7Btenant%7D`, every token 503).
            if jwks.contains(crate::config::tenant::TENANT_PLACEHOLDER) {
                return Err(ConfigError::new(
                    "jwks_uri",
                    format!(
                        "{jwks:?} holds {{tenant}}, which only the key-set URL of an issuer \
                         with {{tenant}} in it can hold (it is filled with each tenant)"
                    ),
                ));
            }
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
        if let Some(alg) = first_repeated(&self.algorithms) {
            return Err(ConfigError::new(
                "algorithms",
                format!("{alg} is listed twice"),
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::new("leeway", "must be at most 300 seconds"));
        }
        check_scopes(
            &self.required_scopes,
            self.scopes_supported.as_deref(),
            &self.scope_policy,
        )?;
        let mut scope_policy = self.scope_policy;
        scope_policy.global = self.required_scopes.clone();
        let own_client = self.introspection.as_ref().map(|i| i.client_id.as_str());
        check_extra_audiences(
            &self.extra_audiences,
            &issuers,
            &self.tenant_issuers,
            own_client,
            "accept_audience",
        )?;
        // The same guards on every issuer's own policy (found from
        // outside: a policy's list skipped all of them).
        let policies = issuers
            .iter()
            .filter_map(|i| i.policy.as_ref())
            .chain(self.tenant_issuers.iter().filter_map(|t| t.policy.as_ref()));
        // The Cognito rule trusts a client id without an audience: on a
        // tenant issuer, every tenant's client of that name (found from
        // outside: refused globally beside a template, taken on its policy).
        if let Some(t) = self.tenant_issuers.iter().find(|t| {
            t.policy
                .as_ref()
                .is_some_and(|p| matches!(p.audience_rule, Some(AudienceRule::CognitoClientIds(_))))
        }) {
            return Err(ConfigError::new(
                "issuer_policy",
                format!(
                    "the Cognito rule (no aud, a listed client_id instead) on the tenant issuer \
                     {:?} would trust every tenant's client of that name without an audience: it \
                     needs one issuer, the Cognito user pool",
                    t.template()
                ),
            ));
        }
        for policy in policies {
            if let Some(audiences) = &policy.audiences {
                check_extra_audiences(
                    audiences,
                    &issuers,
                    &self.tenant_issuers,
                    own_client,
                    "issuer_policy",
                )?;
            }
            if let Some(paths) = &policy.scope_claims {
                check_scope_claims(paths, &self.tenant_issuers, "issuer_policy")?;
            }
            if let Some(AudienceRule::CognitoClientIds(ids)) = &policy.audience_rule {
                check_cognito_ids(ids, "issuer_policy")?;
                if policy.audiences.is_some() {
                    return Err(cognito_with_audiences("issuer_policy"));
                }
            }
        }
        if let AudienceRule::CognitoClientIds(ids) = &self.audience_rule {
            check_cognito_ids(ids, "audience_rule")?;
            if !self.extra_audiences.is_empty() {
                return Err(cognito_with_audiences("accept_audience"));
            }
            // The rule replaces the audience of every issuer's tokens: with
            // several issuers (or a template) another issuer's client of the
            // same name would be trusted without any audience (found from
            // outside), and that issuer's tokens bound by `aud` refused.
            if issuers.len() != 1 || !self.tenant_issuers.is_empty() {
                return Err(ConfigError::new(
                    "audience_rule",
                    "the Cognito rule (no aud, a listed client_id instead) applies to every token: \
                     it needs exactly one issuer, the Cognito user pool, and no issuer template",
                ));
            }
        }
        if let Some(paths) = &self.scope_claims {
            check_scope_claims(paths, &self.tenant_issuers, "scope_claims")?;
        }
        if let Some(settings) = &self.introspection {
            if let Some(endpoint) = &settings.endpoint {
                check_url_parts(endpoint, UrlParts::Endpoint, "introspection_endpoint")?;
                check_https(endpoint, loopback_ok, "introspection_endpoint")?;
            } else if issuers.is_empty() {
                return Err(super::introspection::no_endpoint_to_discover());
            }
            settings.check(INTROSPECTION_CREDENTIALS)?;
        }
        // Every request needs the required scopes: the metadata names them
        // whatever else it lists (RFC 9728 section 2).
        let mut scopes_supported = self
            .scopes_supported
            .unwrap_or_else(|| self.required_scopes.clone());
        for scope in &self.required_scopes {
            if !scopes_supported.contains(scope) {
                scopes_supported.push(scope.clone());
            }
        }
        if let Some(name) = &self.resource_name
            && let Some(c) = name
                .chars()
                .find(|c| c.is_control() || is_direction_control(*c))
        {
            return Err(ConfigError::new(
                "resource_name",
                format!(
                    "contains the control character U+{:04X}; the name is shown to users as it is",
                    u32::from(c)
                ),
            ));
        }
        let resource_documentation = self
            .resource_documentation
            .map(|d| {
                let url = Url::parse(&d).map_err(|e| {
                    ConfigError::new("resource_documentation", format!("not a URL: {e}"))
                })?;
                check_url_parts(&url, UrlParts::Link, "resource_documentation")?;
                check_https(&url, loopback_ok, "resource_documentation")?;
                Ok::<_, ConfigError>(url)
            })
            .transpose()?;
        if self.watch.metadata_max_age > MAX_METADATA_MAX_AGE {
            return Err(ConfigError::new(
                "metadata_max_age",
                format!(
                    "must be at most {} seconds (RFC 9111 section 1.2.2)",
                    MAX_METADATA_MAX_AGE.as_secs()
                ),
            ));
        }
        if self.jwks.refresh_cooldown.is_zero() {
            return Err(ConfigError::new(
                "jwks_refresh_cooldown",
                "must be greater than zero",
            ));
        }
        if self.jwks.cache_ttl.is_zero() {
            return Err(ConfigError::new(
                "jwks_cache_ttl",
                "must be greater than zero",
            ));
        }
        // Why each bound (found from outside: the cooldown was given the
        // cache lifetime's reason).
        const WITHDRAWN: &str = "a key the issuer withdraws would stay trusted for as long";
        const ADDED: &str = "a key the issuer adds would stay unknown for as long";
        for (field, interval, why) in [
            ("jwks_cache_ttl", self.jwks.cache_ttl, WITHDRAWN),
            ("jwks_refresh_cooldown", self.jwks.refresh_cooldown, ADDED),
            ("jwks_cache_max_ttl", self.jwks.max_ttl, WITHDRAWN),
        ] {
            if interval > MAX_JWKS_INTERVAL {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "must be at most {} seconds (a day): {why}",
                        MAX_JWKS_INTERVAL.as_secs()
                    ),
                ));
            }
        }
        if self.jwks.http_timeout.is_zero() {
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
        if self.verify_timeout < Duration::from_millis(1)
            || self.verify_timeout > MAX_VERIFY_TIMEOUT
        {
            return Err(ConfigError::new(
                "verify_timeout",
                "must be from 1 millisecond to 300 seconds",
            ));
        }
        if self.max_token_lifetime.is_zero() {
            return Err(ConfigError::new(
                "max_token_lifetime",
                "must be greater than zero",
            ));
        }
        if self.max_token_lifetime > MAX_MAX_TOKEN_LIFETIME {
            return Err(ConfigError::new(
                "max_token_lifetime",
                format!(
                    "must be at most {} seconds (366 days): a longer limit defends nothing",
                    MAX_MAX_TOKEN_LIFETIME.as_secs()
                ),
            ));
        }
        if self.jwks.max_ttl.is_zero() {
            return Err(ConfigError::new(
                "jwks_cache_max_ttl",
                "must be greater than zero",
            ));
        }
        // A bound set below the cache lifetime bounds nothing (the larger
        // of the two applies): refused, as a per-user cap set above its
        // total is (found from outside: accepted silently). Its default
        // below a longer lifetime is moot.
        if self.jwks.max_ttl != super::DEFAULT_JWKS_CACHE_MAX_TTL
            && self.jwks.max_ttl < self.jwks.cache_ttl
        {
            return Err(ConfigError::new(
                "jwks_cache_max_ttl",
                format!(
                    "is {} seconds, below jwks_cache_ttl ({} seconds): a key server's max-age is honoured up to the larger of the two, so lower jwks_cache_ttl too",
                    self.jwks.max_ttl.as_secs(),
                    self.jwks.cache_ttl.as_secs()
                ),
            ));
        }
        if self.jwks.max_stale > MAX_JWKS_INTERVAL {
            return Err(ConfigError::new(
                "jwks_max_stale",
                format!(
                    "must be at most {} seconds (a day): while the key server is unreachable, a key the issuer withdrew keeps verifying for as long",
                    MAX_JWKS_INTERVAL.as_secs()
                ),
            ));
        }
        for route in &self.exempt {
            // The setting that added it (found from outside: a prefix was
            // told as `exempt_path`).
            let (field, p) = match route {
                ExemptRoute::Exact(p) => ("exempt_path", p),
                ExemptRoute::Prefix(p) => ("exempt_prefix", p),
            };
            if !p.starts_with('/') {
                return Err(ConfigError::new(
                    field,
                    format!("{p:?} must start with '/'"),
                ));
            }
            if route.matches(resource_url.path()) {
                return Err(ConfigError::new(
                    field,
                    format!("{p:?} would exempt the protected resource path itself"),
                ));
            }
        }
        let mut allowed_origins = vec![origin_of(&resource_url)];
        for raw in &self.allowed_origins {
            // Origins are compared exactly: a wildcard matches nothing
            // (found from outside: `https://*.example` was taken as a
            // literal origin no browser sends, and every subdomain was
            // then refused; `*` alone was refused already).
            if raw.contains('*') {
                return Err(ConfigError::new(
                    "allowed_origin",
                    format!(
                        "{raw:?}: origins are compared exactly and `*` is no wildcard; \
                         list each origin"
                    ),
                ));
            }
            let origin = normalize_origin(raw).ok_or_else(|| {
                ConfigError::new(
                    "allowed_origin",
                    format!(
                        "{} is not an origin (scheme://host[:port], no path)",
                        shown(raw)
                    ),
                )
            })?;
            // The URL rule of every setting: a page served over http:// is
            // one anyone on its path can rewrite, so it may call the
            // endpoint only on loopback, with the development opt-in.
            let url = Url::parse(&origin).map_err(|e| {
                ConfigError::new(
                    "allowed_origin",
                    format!("{} is not an origin: {e}", shown(raw)),
                )
            })?;
            check_https(&url, loopback_ok, "allowed_origin")?;
            // The resource's own origin is always allowed (naming it is
            // harmless); another origin given twice, perhaps in another
            // spelling, is a mistake, as in every other list.
            if allowed_origins
                .get(1..)
                .is_some_and(|given| given.contains(&origin))
            {
                return Err(ConfigError::new(
                    "allowed_origin",
                    format!("{raw:?} is listed twice (as origin {origin})"),
                ));
            }
            if !allowed_origins.contains(&origin) {
                allowed_origins.push(origin);
            }
        }
        let mut sessions = self.sessions;
        if sessions.total == 0 {
            return Err(ConfigError::new(
                "max_sessions",
                "must be greater than zero (use stateless_only to turn sessions off)",
            ));
        }
        if sessions.per_principal == 0 {
            return Err(ConfigError::new(
                "max_sessions_per_principal",
                "must be greater than zero (use stateless_only to turn sessions off)",
            ));
        }
        if sessions.per_principal > sessions.total {
            if sessions.per_principal == super::DEFAULT_MAX_SESSIONS_PER_PRINCIPAL {
                // The per-principal default above a lower total is moot,
                // as the pending bodies' is: the total holds first, and a
                // server with a small total needs no second setting (found
                // from outside: `max_sessions(5)` alone, and with
                // sessions off, was refused over a setting never made).
                sessions.per_principal = sessions.total;
            } else {
                return Err(ConfigError::new(
                    "max_sessions_per_principal",
                    format!(
                        "is {}, more than max_sessions ({})",
                        sessions.per_principal, sessions.total
                    ),
                ));
            }
        }
        for (field, cap) in [
            ("max_listens_per_principal", self.max_listens_per_principal),
            (
                "max_pending_bodies_per_principal",
                self.max_pending_bodies_per_principal,
            ),
            (
                "max_pending_body_bytes_per_principal",
                self.max_pending_body_bytes_per_principal,
            ),
            ("max_pending_bodies", self.max_pending_bodies),
            ("max_pending_body_bytes", self.max_pending_body_bytes),
            (
                "max_unsent_answer_bytes_per_principal",
                self.max_unsent_answer_bytes_per_principal,
            ),
            ("max_unsent_answer_bytes", self.max_unsent_answer_bytes),
            (
                "max_answer_streams_per_principal",
                self.max_answer_streams_per_principal,
            ),
        ] {
            if cap == 0 {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
        }
        // A user's bound set above the process's is no bound: refused as
        // the sessions' is (found from outside: accepted here where the
        // sessions' was refused). The user's default above a lower process
        // bound is not refused: the process bound holds first, and a server
        // with a small process bound needs no second setting.
        for (user_field, user, user_default, all_field, all) in [
            (
                "max_pending_bodies_per_principal",
                self.max_pending_bodies_per_principal,
                super::DEFAULT_MAX_PENDING_BODIES_PER_PRINCIPAL,
                "max_pending_bodies",
                self.max_pending_bodies,
            ),
            (
                "max_pending_body_bytes_per_principal",
                self.max_pending_body_bytes_per_principal,
                super::DEFAULT_MAX_PENDING_BODY_BYTES_PER_PRINCIPAL,
                "max_pending_body_bytes",
                self.max_pending_body_bytes,
            ),
            (
                "max_unsent_answer_bytes_per_principal",
                self.max_unsent_answer_bytes_per_principal,
                super::DEFAULT_MAX_UNSENT_ANSWER_BYTES_PER_PRINCIPAL,
                "max_unsent_answer_bytes",
                self.max_unsent_answer_bytes,
            ),
        ] {
            if user > all && user != user_default {
                return Err(ConfigError::new(
                    user_field,
                    format!("is {user}, more than {all_field} ({all})"),
                ));
            }
        }
        if sessions.idle_timeout.is_zero() {
            return Err(ConfigError::new(
                "session_idle_timeout",
                "must be greater than zero",
            ));
        }
        if sessions.idle_timeout > MAX_SESSION_IDLE_TIMEOUT {
            return Err(ConfigError::new(
                "session_idle_timeout",
                format!(
                    "must be at most {} seconds (a day)",
                    MAX_SESSION_IDLE_TIMEOUT.as_secs()
                ),
            ));
        }
        self.dpop.validate()?;
        let throttle = self.watch.throttle()?;
        let audit_refusal_limit = self.watch.audit_refusal_limit()?;
        Ok(AuthConfig {
            throttle,
            audit_refusal_limit,
            metadata_max_age: self.watch.metadata_max_age,
            dpop: self.dpop,
            shared_store: self.shared_store,
            issuers,
            tenant_issuers: self.tenant_issuers,
            authorization_servers,
            resource,
            resource_url,
            algorithms: self.algorithms,
            leeway: self.leeway,
            typ_policy: self.typ_policy,
            required_scopes: self.required_scopes,
            scopes_supported,
            scope_policy,
            computed_scopes: self.computed_scopes,
            introspection: self.introspection,
            verified_cache_max_entries: self.token_cache.max_entries,
            extra_audiences: self.extra_audiences,
            audience_rule: self.audience_rule,
            scope_claims: self.scope_claims,
            verified_cache_max_age: self.token_cache.max_age,
            resource_name: self.resource_name,
            resource_documentation,
            exempt: self.exempt,
            allow_insecure_loopback: loopback_ok,
            jwks_cache_ttl: self.jwks.cache_ttl,
            jwks_refresh_cooldown: self.jwks.refresh_cooldown,
            jwks_max_stale: self.jwks.max_stale,
            http_timeout: self.jwks.http_timeout,
            max_document_bytes: self.jwks.max_document_bytes,
            max_token_bytes: self.max_token_bytes,
            max_token_lifetime: self.max_token_lifetime,
            verify_timeout: self.verify_timeout,
            jwks_cache_max_ttl: self.jwks.max_ttl,
            require_keys_before_ready: self.require_keys_before_ready,
            require_client_id: self.require_client_id,
            allowed_origins,
            sessions,
            max_listens_per_principal: self.max_listens_per_principal,
            max_pending_bodies_per_principal: self.max_pending_bodies_per_principal,
            max_pending_body_bytes_per_principal: self.max_pending_body_bytes_per_principal,
            max_pending_bodies: self.max_pending_bodies,
            max_pending_body_bytes: self.max_pending_body_bytes,
            max_unsent_answer_bytes_per_principal: self.max_unsent_answer_bytes_per_principal,
            max_unsent_answer_bytes: self.max_unsent_answer_bytes,
            max_answer_streams_per_principal: self.max_answer_streams_per_principal,
            close_streams_at_expiry: self.close_streams_at_expiry,
            hold_streams_for_step_up: self.hold_streams_for_step_up,
        })
    }
}

/// The bidirectional formatting characters (Unicode's `Bidi_Control`):
/// not `char::is_control` (they are format characters), yet they reorder
/// what a name shows (U+202E turns the rest of it around).
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Claims that say who or what a token is (its issuer, subject, the
/// user's names and addresses, audience, client, tenant, times, id, key
/// binding, actor): never read as scopes, as a claim or as the first member
/// of a path (`act.sub`, `cnf.jkt`): every standard claim of OpenID
/// Connect Core section 5.1 among them. Found from outside: `name`, then
/// `gender`, `locale`, `zoneinfo` (which many providers let users edit)
/// read as scopes granted a user who wrote `notes:write` there.
pub(super) const NOT_SCOPE_CLAIMS: [&str; 58] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "azp",
    "cid",
    "appid",
    "tid",
    "token_use",
    // OpenID Connect Core section 5.1 (standard claims) and ID token members.
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
    "at_hash",
    "c_hash",
    "nonce",
    "sid",
    "auth_time",
    "acr",
    "amr",
    // Entra ID's names of the user.
    "oid",
    "upn",
    "unique_name",
    // RFC 7800 / RFC 9449 key binding, RFC 8693 actors.
    "cnf",
    "act",
    "may_act",
    // Cognito, Okta and Keycloak names of the user, Azure AD B2C's
    // addresses, the organisation's id and name (Auth0, Keycloak).
    "username",
    "uid",
    "cognito:username",
    // Other providers' names of the user (Firebase and Supabase's
    // `user_id`, and the like; found from outside as tenant claims).
    "user_id",
    "userId",
    "user",
    "login",
    "email_address",
    "emails",
    "org_id",
    "org_name",
    "organization",
    "typ",
];

/// Claims that cannot hold a token's tenant: every claim of
/// [`NOT_SCOPE_CLAIMS`] but those of the organisation ([`TENANT_CLAIMS`]),
/// and the claims that grant ([`GRANT_CLAIMS`]) (found from outside: `sub`
/// made every user their own tenant, `iss` refused every token, `scope`
/// took a grant for an organisation; then `permissions`, Auth0's RBAC
/// claim, was taken where `roles` was refused).
pub(super) fn not_a_tenant_claim(claim: &str) -> bool {
    // Without case: `Permissions` or `UserId` is no tenant either.
    let named = |list: &[&str]| list.iter().any(|c| c.eq_ignore_ascii_case(claim));
    !named(&TENANT_CLAIMS) && named(&NOT_SCOPE_CLAIMS) || named(&GRANT_CLAIMS)
}

/// Claims that say what a token grants, as providers spell them: OAuth's
/// `scope`, `scp` (Entra ID, Okta), `roles`, `permissions` (Auth0 RBAC),
/// `scopes` and `authorities` (Spring), `wids` (Entra ID directory roles),
/// `groups`, `entitlements` (SCIM), Keycloak's `realm_access` and
/// `resource_access`, Cognito's `cognito:groups`, and their singular and
/// other providers' spellings. A tenant claim is none of
/// them (a grant is not an organisation); as scope claims they are the
/// point.
const GRANT_CLAIMS: [&str; 22] = [
    "scope",
    "scp",
    "roles",
    "permissions",
    "scopes",
    "authorities",
    "wids",
    "groups",
    "entitlements",
    "realm_access",
    "resource_access",
    "cognito:groups",
    // Their singular spellings and other providers' (Supabase's `role`,
    // Keycloak's `authorization`, Cognito's roles; found from outside).
    "role",
    "permission",
    "group",
    "entitlement",
    "authority",
    "authorization",
    "cognito:roles",
    "cognito:preferred_role",
    "app_roles",
    "xms_roles",
];

/// The claims of [`NOT_SCOPE_CLAIMS`] that name the user's organisation
/// (Entra ID's `tid`, Auth0's `org_id` and `org_name`, Keycloak's
/// `organization`): tenant claims.
const TENANT_CLAIMS: [&str; 4] = ["tid", "org_id", "org_name", "organization"];

/// Audiences that can never name one server: Keycloak's built-in clients
/// (`account`, given to tokens of every client; `realm-management`,
/// `broker`), Microsoft Graph's and Azure AD Graph's application IDs.
/// Compared without case.
const SHARED_AUDIENCES: [(&str, &str); 5] = [
    (
        "account",
        "the audience Keycloak gives tokens of every client (its account console)",
    ),
    (
        "realm-management",
        "the audience of Keycloak's own admin API (realm-management)",
    ),
    (
        "broker",
        "the audience of Keycloak's identity brokering (broker)",
    ),
    (
        "00000003-0000-0000-c000-000000000000",
        "Microsoft Graph's application ID",
    ),
    (
        "00000002-0000-0000-c000-000000000000",
        "Azure AD Graph's application ID",
    ),
];

/// Hosts of Microsoft's own APIs, whose tokens every Entra ID tenant
/// issues to any client: an audience URL on one of them (any scheme, port,
/// path, case, a trailing dot) names another server. Found from outside:
/// `https://graph.microsoft.com` was taken where Graph's ID was refused.
const SHARED_AUDIENCE_HOSTS: [(&str, &str); 9] = [
    ("graph.microsoft.com", "Microsoft Graph"),
    ("graph.microsoft.us", "Microsoft Graph (US Government)"),
    ("dod-graph.microsoft.us", "Microsoft Graph (US DoD)"),
    (
        "microsoftgraph.chinacloudapi.cn",
        "Microsoft Graph (operated by 21Vianet)",
    ),
    ("graph.windows.net", "Azure AD Graph"),
    ("management.azure.com", "Azure Resource Manager"),
    ("management.core.windows.net", "Azure Service Management"),
    ("outlook.office.com", "Exchange Online"),
    ("outlook.office365.com", "Exchange Online"),
];

/// What `audience` names that no one server is, if anything: one of
/// [`SHARED_AUDIENCES`], or a URL on one of [`SHARED_AUDIENCE_HOSTS`].
fn shared_audience(audience: &str) -> Option<&'static str> {
    let named = SHARED_AUDIENCES
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(audience.trim_end_matches('/')));
    if let Some((_, what)) = named {
        return Some(what);
    }
    let url = Url::parse(audience).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    SHARED_AUDIENCE_HOSTS
        .iter()
        .find(|(h, _)| *h == host)
        .map(|(_, what)| *what)
}

/// The client ids of a Cognito rule: at least one, none blank, each a
/// name compared exactly ([`check_names`]). `field`: the setting named.
fn check_cognito_ids(ids: &[String], field: &'static str) -> Result<(), ConfigError> {
    if ids.is_empty() || ids.iter().any(|i| i.trim().is_empty()) {
        return Err(ConfigError::new(
            field,
            "the Cognito rule needs at least one client id",
        ));
    }
    check_names(ids, field, "client id")
}

/// Accepted audiences beside the Cognito rule, whose tokens carry no
/// `aud`: they would do nothing (found from outside: the server started
/// and an operator believed them in force).
fn cognito_with_audiences(field: &'static str) -> ConfigError {
    ConfigError::new(
        field,
        "accept_audience does nothing under the Cognito rule of audience_rule (Cognito access \
         tokens carry no aud, a listed client_id stands for it): remove one of them",
    )
}

/// Each of `names` (of `field`, each a `what`): printable ASCII without
/// blanks, listed once, not `*` (read as itself, never as a wildcard).
pub(super) fn check_names(
    names: &[String],
    field: &'static str,
    what: &str,
) -> Result<(), ConfigError> {
    for (i, name) in names.iter().enumerate() {
        if !name.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ConfigError::new(
                field,
                format!(
                    "{what} {:?} holds a blank, a control or a character outside printable ASCII: \
                     values are compared exactly",
                    name.escape_debug().to_string()
                ),
            ));
        }
        if name == "*" {
            return Err(ConfigError::new(
                field,
                format!("\"*\" is not a wildcard: each {what} is compared exactly"),
            ));
        }
        if names.iter().take(i).any(|n| n == name) {
            return Err(ConfigError::new(
                field,
                format!("{what} {name:?} is listed twice (a preset may list it already)"),
            ));
        }
    }
    Ok(())
}

/// Audiences accepted besides the resource must name this server only
/// (found from outside: `*`, `account`, Graph's ID, the issuer's own
/// userinfo URL, invisible characters were all taken without a word; then
/// the userinfo URL of a tenant issuer, and every check on an
/// [`IssuerPolicy`](super::IssuerPolicy)'s own list). `field`: the setting
/// named in a refusal.
fn check_extra_audiences(
    audiences: &[String],
    issuers: &[IssuerConfig],
    tenant_issuers: &[super::TenantIssuer],
    own_client: Option<&str>,
    field: &'static str,
) -> Result<(), ConfigError> {
    if audiences.iter().any(|a| a.trim().is_empty()) {
        return Err(ConfigError::new(
            field,
            "an accepted audience must not be empty",
        ));
    }
    check_names(audiences, field, "audience")?;
    for a in audiences {
        if let Some(what) = shared_audience(a) {
            return Err(ConfigError::new(
                field,
                format!("{a:?} is {what}: it names no one server"),
            ));
        }
        let lower = a.to_ascii_lowercase();
        // The issuer, or an endpoint under it; for a template, anything
        // under the part before `{tenant}` (any tenant's issuer and its
        // endpoints).
        let under = |base: &str, tenant_follows: bool| {
            let base = base.to_ascii_lowercase();
            if tenant_follows {
                return lower.starts_with(&base);
            }
            let base = base.trim_end_matches('/');
            lower.trim_end_matches('/') == base
                || lower
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        let issuer = issuers
            .iter()
            .map(|i| i.issuer.as_str())
            .find(|i| under(i, false))
            .or_else(|| {
                tenant_issuers
                    .iter()
                    .map(super::TenantIssuer::template)
                    .find(|t| match t.split_once(super::tenant::TENANT_PLACEHOLDER) {
                        Some((prefix, _)) => under(prefix, true),
                        None => under(t, false),
                    })
            });
        if let Some(issuer) = issuer {
            return Err(ConfigError::new(
                field,
                format!(
                    "{a:?} names the issuer {issuer:?} or an endpoint of it (its userinfo URL is \
                     in tokens for every API): it names no one server"
                ),
            ));
        }
        if own_client == Some(a.as_str()) {
            return Err(ConfigError::new(
                field,
                format!(
                    "{a:?} is this server's own client id (introspection): tokens issued to it \
                     (its ID tokens) are not access tokens for it"
                ),
            ));
        }
    }
    Ok(())
}

/// Scope claims (dot-separated paths) must be claims of grants: none
/// empty, each listed once, none that says who or what the token is
/// ([`NOT_SCOPE_CLAIMS`], as a claim or a path's first member) nor a
/// configured tenant claim. `field`: the setting named in a refusal.
fn check_scope_claims(
    paths: &[String],
    tenant_issuers: &[super::TenantIssuer],
    field: &'static str,
) -> Result<(), ConfigError> {
    if paths.is_empty()
        || paths
            .iter()
            .any(|p| p.is_empty() || p.split('.').any(str::is_empty))
    {
        return Err(ConfigError::new(
            field,
            "claim names must be non-empty (dot-separated paths)",
        ));
    }
    check_names(paths, field, "claim")?;
    // A claim that says who or what the token is, read as scopes, grants
    // whatever its value spells (found from outside: `sub` as a scope
    // claim granted a user the scope named like their subject).
    let first = |p: &str| p.split('.').next().unwrap_or_default().to_owned();
    if let Some(p) = paths
        .iter()
        .find(|p| NOT_SCOPE_CLAIMS.contains(&first(p).as_str()))
    {
        return Err(ConfigError::new(
            field,
            format!(
                "{p:?} is not a claim of scopes: it says who or what the token is (its issuer, \
                 subject, the user's names, audience, client, tenant, times, id or key binding), \
                 and read as scopes it would grant what its value spells"
            ),
        ));
    }
    if let Some(p) = paths.iter().find(|p| {
        tenant_issuers
            .iter()
            .any(|t| t.claim() == Some(first(p).as_str()))
    }) {
        return Err(ConfigError::new(
            field,
            format!(
                "{p:?} is the tenant claim (tenant_claim): read as scopes, a tenant's name \
                 would be granted as a scope"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_JWKS_CACHE_MAX_TTL;

    fn base() -> AuthConfigBuilder {
        AuthConfig::builder()
            .issuer("https://auth.example.com")
            .resource("https://mcp.example.com/mcp")
    }

    // The controls of the refusals below: the limits themselves, loopback
    // http:// with the opt-in, capitals where the issuer's path has them.
    // No claim that grants holds a tenant; the organisation claims do.
    #[test]
    fn no_grant_claim_holds_a_tenant() {
        for claim in GRANT_CLAIMS {
            assert!(not_a_tenant_claim(claim), "{claim}");
            let err = AuthConfig::builder()
                .resource("https://mcp.example.com/mcp")
                .tenant_issuer(
                    super::super::TenantIssuer::new("https://auth.example.com")
                        .tenant_claim(claim)
                        .tenants(["o1"]),
                )
                .build()
                .unwrap_err();
            assert_eq!(err.field(), "tenant_claim", "{claim}: {err}");
        }
        for claim in TENANT_CLAIMS {
            assert!(!not_a_tenant_claim(claim), "{claim}");
        }
        assert!(!not_a_tenant_claim("customer"));
        // Other spellings (found from outside: these started).
        for claim in [
            "role",
            "permission",
            "group",
            "authorization",
            "cognito:roles",
            "user_id",
            "userId",
            "user",
            "login",
            "Permissions",
            "SUB",
        ] {
            assert!(not_a_tenant_claim(claim), "{claim}");
        }
    }

    #[test]
    fn values_at_the_limits_are_accepted() {
        let c = base()
            .metadata_max_age(Duration::from_secs(2_147_483_648))
            .resource_documentation("https://docs.example.com/x")
            .session_idle_timeout(MAX_SESSION_IDLE_TIMEOUT)
            .build()
            .unwrap();
        assert_eq!(c.metadata_max_age.as_secs(), 2_147_483_648);
        assert_eq!(c.sessions.idle_timeout.as_secs(), 86_400);
        AuthConfig::builder()
            .issuer("http://127.0.0.1:9/Tenant/V2")
            .resource("http://127.0.0.1:1/mcp")
            .allow_insecure_http_for_loopback(true)
            .resource_documentation("http://localhost:8000/docs")
            .allowed_origin("http://localhost:5173")
            .build()
            .unwrap();
        // A process bound below the user's default: the user's is moot.
        base().max_pending_body_bytes(1000).build().unwrap();
        base().max_pending_bodies(10).build().unwrap();
        // The controls of the audience, claim and tenant refusals: an API
        // beside the issuer's host, a path beside a template's tenants,
        // nested role paths, the usual tenant claims, a policy's own list.
        base()
            .accept_audience("https://auth.example.com.api.example/x")
            .accept_audience("https://api.example.com/graph.microsoft.com")
            .accept_audience("api://mcp")
            .scope_claims(["scope", "realm_access.roles", "groups", "permissions"])
            .issuer_policy(
                "https://auth.example.com",
                super::super::IssuerPolicy::new()
                    .accept_audience("api://other")
                    .scope_claims(["scp", "roles"]),
            )
            .build()
            .unwrap();
        for (template, claim) in [
            ("https://sso.example.com/t/{tenant}", "tid"),
            ("https://auth.example.com", "org_id"),
        ] {
            AuthConfig::builder()
                .resource("https://mcp.example.com/mcp")
                .tenant_issuer(
                    super::super::TenantIssuer::new(template)
                        .tenant_claim(claim)
                        .tenants(["a"]),
                )
                .accept_audience("https://sso.example.com/other")
                .scope_claims(["scope", "resource_access.mcp.roles"])
                .build()
                .unwrap();
        }
        base()
            .audience_rule(AudienceRule::CognitoClientIds(vec!["c1".to_owned()]))
            .build()
            .unwrap();
        base()
            .max_pending_bodies(10)
            .max_pending_bodies_per_principal(10)
            .build()
            .unwrap();
    }

    // RFC 8414 section 3.3: `iss` is compared with the issuer's text
    // exactly, and discovery and key fetches go to the host its URL names.
    // A text that is not the form of its own URL names another place than
    // it reads: `https://http://as.example/` (a scheme pasted twice) is the
    // host `http` with an empty port, `../` and spaces are rewritten. No
    // server publishes such an issuer: refused, fixed and template alike.
    #[test]
    fn issuers_must_be_written_in_their_url_form() {
        use super::super::TenantIssuer;
        for bad in [
            "https://http://as.example/",
            "https://https://as.example",
            "https://as.example:/x",
            "https://as.example/realms/ a ",
            "https://as.example/t/../x/v2.0",
            "https://as.example/./x",
            "https://as.example\\x",
        ] {
            let e = AuthConfig::builder()
                .issuer(bad)
                .resource("https://mcp.example.com/mcp")
                .build()
                .unwrap_err();
            assert_eq!(e.field(), "issuer", "{bad}: {e}");
            assert!(e.message().contains("written"), "{bad}: {e}");
        }
        for bad in [
            "https://http://as.example/{tenant}",
            "https://as.example/x/../{tenant}",
        ] {
            let e = AuthConfig::builder()
                .tenant_issuer(TenantIssuer::new(bad).tenants(["a"]))
                .resource("https://mcp.example.com/mcp")
                .build()
                .unwrap_err();
            assert_eq!(e.field(), "tenant_issuer", "{bad}: {e}");
        }
        // The controls: a root issuer with or without its slash, a path
        // with its own case and trailing slash, a percent-encoding.
        for good in [
            "https://as.example",
            "https://as.example/",
            "https://as.example/Realms/X/",
            "https://as.example/a%20b",
            "https://as.example:8443/x",
        ] {
            AuthConfig::builder()
                .issuer(good)
                .resource("https://mcp.example.com/mcp")
                .build()
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn errors_name_the_field() {
        // One issuer whose tenant is a claim, and a template's tenants.
        let org = || {
            AuthConfig::builder()
                .resource("https://mcp.example.com/mcp")
                .tenant_issuer(
                    super::super::TenantIssuer::new("https://auth.example.com")
                        .tenant_claim("org_id")
                        .tenants(["o1"]),
                )
        };
        let template = || {
            AuthConfig::builder()
                .resource("https://mcp.example.com/mcp")
                .tenant_issuer(
                    super::super::TenantIssuer::new("https://sso.example.com/t/{tenant}")
                        .tenants(["a"]),
                )
        };
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
        let cases: Vec<(AuthConfigBuilder, &str)> = vec![
            // A scope listed twice was published twice (challenge
            // `scope="a a"`, metadata `["a","a"]`).
            (base().required_scopes(["a", "b", "a"]), "required_scopes"),
            (base().scopes_supported(["x", "x"]), "scopes_supported"),
            (
                base().session_idle_timeout(Duration::MAX),
                "session_idle_timeout",
            ),
            (
                base().session_idle_timeout(Duration::from_secs(86_401)),
                "session_idle_timeout",
            ),
            (
                base().allowed_origin("http://app.example.com"),
                "allowed_origin",
            ),
            (
                base()
                    .allow_insecure_http_for_loopback(true)
                    .allowed_origin("http://app.example.com"),
                "allowed_origin",
            ),
            (
                base().allowed_origin("http://localhost:5173"),
                "allowed_origin",
            ),
            (
                base().authorization_servers(["https://a.example", "https://a.example"]),
                "authorization_servers",
            ),
            (
                base().dpop(
                    crate::config::DpopPolicy::default()
                        .mode(crate::config::DpopMode::Off)
                        .nonce(true),
                ),
                "dpop_nonce",
            ),
            (base().resource("http://mcp.example.com/mcp"), "resource"),
            (base().resource("https://mcp.example.com/mcp#x"), "resource"),
            (base().issuer("http://127.0.0.1:9/"), "issuer"),
            (base().issuer("https://auth.example.com"), "issuer"),
            (base().algorithms([]), "algorithms"),
            (base().leeway(Duration::from_secs(301)), "leeway"),
            // README: every URL is https:// (http:// on loopback with the
            // opt-in), the documentation link included.
            (
                base().resource_documentation("http://docs.example.com/x"),
                "resource_documentation",
            ),
            (
                base().resource_documentation("javascript:alert(1)"),
                "resource_documentation",
            ),
            (
                base().resource_documentation("data:text/html,hi"),
                "resource_documentation",
            ),
            (
                base().resource_documentation("ftp://x/y"),
                "resource_documentation",
            ),
            (
                base()
                    .allow_insecure_http_for_loopback(true)
                    .resource_documentation("http://docs.example.com/x"),
                "resource_documentation",
            ),
            // RFC 8414 section 3.3: the issuer is compared exactly, so one
            // written otherwise than its canonical form never matches the
            // discovery document's.
            (
                AuthConfig::builder()
                    .issuer("HTTP://127.0.0.1:18900")
                    .resource("http://127.0.0.1:1/mcp")
                    .allow_insecure_http_for_loopback(true),
                "issuer",
            ),
            (
                AuthConfig::builder()
                    .issuer("https://Auth.Example.com")
                    .resource("https://mcp.example.com/mcp"),
                "issuer",
            ),
            // RFC 9111 section 1.2.2: no delta-seconds above 2^31.
            (
                base().metadata_max_age(Duration::from_secs(u64::MAX)),
                "metadata_max_age",
            ),
            (
                base().metadata_max_age(Duration::from_secs(2_147_483_649)),
                "metadata_max_age",
            ),
            (base().exempt_prefix("/"), "exempt_prefix"),
            (base().exempt_prefix("mcp"), "exempt_prefix"),
            (base().exempt_path("health"), "exempt_path"),
            (
                base().issuer("https://b").jwks_uri("https://b/jwks"),
                "jwks_uri",
            ),
            (
                base().issuer_jwks_uri("https://c", "https://c/j"),
                "issuer_jwks_uri",
            ),
            (
                base()
                    .jwks_uri("https://auth.example.com/jwks")
                    .issuer_jwks_uri("https://auth.example.com", "https://auth.example.com/k"),
                "jwks_uri",
            ),
            (base().accept_audience(" "), "accept_audience"),
            (
                base().audience_rule(AudienceRule::CognitoClientIds(vec![])),
                "audience_rule",
            ),
            (base().scope_claims(["a..b"]), "scope_claims"),
            (
                base().resource_documentation("not a url"),
                "resource_documentation",
            ),
            (base().allowed_origin("https://h/path"), "allowed_origin"),
            (base().max_token_bytes(0), "max_token_bytes"),
            (base().max_sessions(0), "max_sessions"),
            (
                base().max_listens_per_principal(0),
                "max_listens_per_principal",
            ),
            (
                base().max_pending_bodies_per_principal(0),
                "max_pending_bodies_per_principal",
            ),
            (
                base().max_pending_body_bytes_per_principal(0),
                "max_pending_body_bytes_per_principal",
            ),
            (base().max_pending_bodies(0), "max_pending_bodies"),
            (base().max_pending_body_bytes(0), "max_pending_body_bytes"),
            (
                base().max_unsent_answer_bytes_per_principal(0),
                "max_unsent_answer_bytes_per_principal",
            ),
            (base().max_unsent_answer_bytes(0), "max_unsent_answer_bytes"),
            (
                base().max_answer_streams_per_principal(0),
                "max_answer_streams_per_principal",
            ),
            // Audiences that name no one server, values that cannot be
            // compared as meant (found from outside: all taken).
            (base().accept_audience("*"), "accept_audience"),
            (base().accept_audience("account"), "accept_audience"),
            (
                base().accept_audience("00000003-0000-0000-c000-000000000000"),
                "accept_audience",
            ),
            (
                base().accept_audience("https://auth.example.com/userinfo"),
                "accept_audience",
            ),
            (
                base().accept_audience("https://auth.example.com/"),
                "accept_audience",
            ),
            (
                base().accept_audience("api://a\u{200b}b"),
                "accept_audience",
            ),
            (
                base().accept_audience("api://x").accept_audience("api://x"),
                "accept_audience",
            ),
            (
                base()
                    .introspection(IntrospectionSettings::new("mcp-server", "s3cr3t-XyZ-42-q"))
                    .accept_audience("mcp-server"),
                "accept_audience",
            ),
            (base().scope_claims(["sub"]), "scope_claims"),
            // Claims of who the user is, as a claim or a path's first
            // member, and the tenant claim (found from outside: `name`
            // granted what a user named themself).
            (base().scope_claims(["scope", "name"]), "scope_claims"),
            (base().scope_claims(["preferred_username"]), "scope_claims"),
            (base().scope_claims(["act.sub"]), "scope_claims"),
            (base().scope_claims(["cnf.jkt"]), "scope_claims"),
            (base().scope_claims(["upn"]), "scope_claims"),
            // Every standard claim of OpenID Connect (found from outside on
            // a first version: `gender`, `locale`, `zoneinfo` were taken).
            (base().scope_claims(["gender"]), "scope_claims"),
            (base().scope_claims(["scp", "locale"]), "scope_claims"),
            (base().scope_claims(["zoneinfo"]), "scope_claims"),
            (base().scope_claims(["email_verified"]), "scope_claims"),
            (base().scope_claims(["emails"]), "scope_claims"),
            (base().scope_claims(["org_name"]), "scope_claims"),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://auth.example.com")
                            .tenant_claim("customer")
                            .tenants(["c1"]),
                    )
                    .scope_claims(["scope", "customer"]),
                "scope_claims",
            ),
            // A tenant claim compared exactly: no blank (found from
            // outside: built, then every call refused).
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://auth.example.com")
                            .tenant_claim(" org_id")
                            .tenants(["o1"]),
                    ),
                "tenant_claim",
            ),
            // The Cognito rule on a tenant issuer's policy (found from
            // outside: another tenant's client of the same name passed).
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://sso.example.com/t/{tenant}")
                            .tenants(["poolA", "poolB"])
                            .policy(super::super::IssuerPolicy::new().audience_rule(
                                AudienceRule::CognitoClientIds(vec!["c1".to_owned()]),
                            )),
                    ),
                "issuer_policy",
            ),
            // Microsoft's APIs by host: a port, a trailing dot, a path
            // (found from outside: taken); Keycloak's built-in clients.
            (
                base().accept_audience("https://graph.microsoft.com:443"),
                "accept_audience",
            ),
            (
                base().accept_audience("https://graph.microsoft.com./v1.0"),
                "accept_audience",
            ),
            (
                base().accept_audience("https://management.azure.com/"),
                "accept_audience",
            ),
            (
                base().accept_audience("realm-management"),
                "accept_audience",
            ),
            (base().accept_audience("broker"), "accept_audience"),
            (org().scope_claims(["scope", "org_id"]), "scope_claims"),
            // Graph's URLs in any case, with a trailing slash, Azure AD
            // Graph (found from outside: the URL form was taken).
            (
                base().accept_audience("https://graph.microsoft.com"),
                "accept_audience",
            ),
            (
                base().accept_audience("https://Graph.Microsoft.com/"),
                "accept_audience",
            ),
            (
                base().accept_audience("https://graph.windows.net/"),
                "accept_audience",
            ),
            // The issuer's URLs in another case.
            (
                base().accept_audience("HTTPS://AUTH.EXAMPLE.COM/userinfo"),
                "accept_audience",
            ),
            // A tenant issuer's URLs: one issuer with a tenant claim, and a
            // template's tenants (found from outside: taken, and a token for
            // another API carrying the userinfo URL then passed).
            (
                org().accept_audience("https://auth.example.com/userinfo"),
                "accept_audience",
            ),
            (
                org().accept_audience("https://auth.example.com"),
                "accept_audience",
            ),
            (
                template().accept_audience("https://sso.example.com/t/a/userinfo"),
                "accept_audience",
            ),
            (
                template().accept_audience("https://sso.example.com/t/b"),
                "accept_audience",
            ),
            // An issuer's own policy is held to the same rules (found from
            // outside: its list skipped every check).
            (
                base().issuer_policy(
                    "https://auth.example.com",
                    super::super::IssuerPolicy::new().accept_audience("account"),
                ),
                "issuer_policy",
            ),
            (
                base().issuer_policy(
                    "https://auth.example.com",
                    super::super::IssuerPolicy::new()
                        .accept_audience("https://auth.example.com/userinfo"),
                ),
                "issuer_policy",
            ),
            (
                base().issuer_policy(
                    "https://auth.example.com",
                    super::super::IssuerPolicy::new().accept_audience("*"),
                ),
                "issuer_policy",
            ),
            (
                base().issuer_policy(
                    "https://auth.example.com",
                    super::super::IssuerPolicy::new().scope_claims(["sub"]),
                ),
                "issuer_policy",
            ),
            (
                base().issuer_policy(
                    "https://auth.example.com",
                    super::super::IssuerPolicy::new()
                        .audience_rule(AudienceRule::CognitoClientIds(vec!["c1".to_owned()]))
                        .accept_audience("api://x"),
                ),
                "issuer_policy",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://sso.example.com/t/{tenant}")
                            .tenants(["a"])
                            .policy(super::super::IssuerPolicy::new().accept_audience("account")),
                    ),
                "issuer_policy",
            ),
            // Accepted audiences beside the Cognito rule do nothing (found
            // from outside: started, believed in force).
            (
                base()
                    .audience_rule(AudienceRule::CognitoClientIds(vec!["c1".to_owned()]))
                    .accept_audience("api://x"),
                "accept_audience",
            ),
            // Claims that cannot hold a tenant (found from outside: `sub`
            // made every user a tenant, `iss` refused every token).
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://auth.example.com")
                            .tenant_claim("sub")
                            .allow_any_tenant_unrestricted(),
                    ),
                "tenant_claim",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://sso.example.com/t/{tenant}")
                            .tenant_claim("iss")
                            .tenants(["a"]),
                    ),
                "tenant_claim",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://auth.example.com")
                            .tenant_claim("scope")
                            .tenants(["o1"]),
                    ),
                "tenant_claim",
            ),
            // Every claim that grants: `no_grant_claim_holds_a_tenant`.
            // An issuer allowed as untrusted: a no-op, refused (found from
            // outside).
            (
                base()
                    .authorization_servers(["https://auth.example.com"])
                    .allow_untrusted_authorization_server("https://auth.example.com"),
                "untrusted_authorization_servers",
            ),
            (base().scope_claims(["scp", "scp"]), "scope_claims"),
            (base().scope_claims(["sc p"]), "scope_claims"),
            (
                base().audience_rule(AudienceRule::CognitoClientIds(vec!["a b".to_owned()])),
                "audience_rule",
            ),
            (
                base()
                    .issuer("https://other.example.com")
                    .audience_rule(AudienceRule::CognitoClientIds(vec!["app".to_owned()])),
                "audience_rule",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .issuer("https://sts.windows.net/common/"),
                "issuer",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .issuer("https://login.windows.net./organizations/v2.0"),
                "issuer",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new("https://sts.windows.net/fixed/")
                            .tenant_claim("tid")
                            .tenants(["common"]),
                    ),
                "tenant_issuer",
            ),
            // Entra ID's sign-in front doors as issuers (found from outside:
            // taken from the environment, every token then refused).
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .issuer("https://login.microsoftonline.com/common/v2.0"),
                "issuer",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .issuer("https://login.microsoftonline.com/Organizations/"),
                "issuer",
            ),
            (
                AuthConfig::builder()
                    .resource("https://mcp.example.com/mcp")
                    .tenant_issuer(
                        super::super::TenantIssuer::new(
                            "https://login.microsoftonline.com/{tenant}/v2.0",
                        )
                        .tenants(["72f988bf-86f1-41af-91ab-2d7cd011db47", "consumers"]),
                    ),
                "tenant_issuer",
            ),
            (
                base().max_sessions_per_principal(0),
                "max_sessions_per_principal",
            ),
            // Only `max_sessions` set, below the per-principal default:
            // said of `max_sessions` (found from outside).
            // A `{tenant}` no tenant issuer fills (found from outside).
            (
                base().jwks_uri("https://auth.example.com/{tenant}/jwks"),
                "jwks_uri",
            ),
            (
                base().max_sessions(2).max_sessions_per_principal(3),
                "max_sessions_per_principal",
            ),
            // A user's bound set above the process's (found from outside:
            // accepted); the user's default above it is moot, not refused.
            (
                base()
                    .max_pending_bodies(10)
                    .max_pending_bodies_per_principal(11),
                "max_pending_bodies_per_principal",
            ),
            (
                base()
                    .max_pending_body_bytes(1000)
                    .max_pending_body_bytes_per_principal(999_999_999_999),
                "max_pending_body_bytes_per_principal",
            ),
            (
                base()
                    .max_unsent_answer_bytes(1000)
                    .max_unsent_answer_bytes_per_principal(1001),
                "max_unsent_answer_bytes_per_principal",
            ),
            (
                base().session_idle_timeout(Duration::ZERO),
                "session_idle_timeout",
            ),
            (
                base().issuer_introspection("https://x", IntrospectionSettings::new("c", "s")),
                "issuer_introspection",
            ),
            (
                base().issuer_policy("https://x", super::super::IssuerPolicy::new()),
                "issuer_policy",
            ),
            (
                base()
                    .issuer_policy(
                        "https://auth.example.com",
                        super::super::IssuerPolicy::new(),
                    )
                    .issuer_policy(
                        "https://auth.example.com",
                        super::super::IssuerPolicy::new(),
                    ),
                "issuer_policy",
            ),
            (
                base().issuer_policy(
                    "https://auth.example.com",
                    super::super::IssuerPolicy::new().scope_claims([""]),
                ),
                "issuer_policy",
            ),
            (
                base().authorization_servers(Vec::<String>::new()),
                "authorization_servers",
            ),
            (
                base().authorization_servers(["http://as.example"]),
                "authorization_servers",
            ),
            (
                base().authorization_servers(["::"]),
                "authorization_servers",
            ),
            (
                base().tenant_issuer(super::super::TenantIssuer::new("https://t/{tenant}")),
                "tenant_issuer",
            ),
            (
                base().introspection(
                    IntrospectionSettings::new("c", "s")
                        .endpoint(Url::parse("http://as.example/i").unwrap()),
                ),
                "introspection_endpoint",
            ),
        ];
        for (builder, field) in cases {
            let e = builder.build().unwrap_err();
            assert_eq!(e.field(), field, "{e}");
        }
    }

    // Issue 19: tenant issuers count as issuers; the metadata lists fixed
    // issuers, then each template's advertised or allowlisted issuers, once.
    #[test]
    fn tenant_issuers_and_the_metadata_list() {
        use super::super::{IssuerPolicy, TenantIssuer};
        let only = AuthConfig::builder()
            .tenant_issuer(TenantIssuer::new("https://t/{tenant}").tenants(["a", "b"]))
            .resource("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        assert!(only.issuers().is_empty());
        assert_eq!(only.authorization_servers(), ["https://t/a", "https://t/b"]);
        let mixed = base()
            .issuer_policy(
                "https://auth.example.com",
                IssuerPolicy::new().accept_audience("x"),
            )
            .tenant_issuer(
                TenantIssuer::new("https://t/{tenant}")
                    .tenants(["a"])
                    .advertise("https://auth.example.com")
                    .advertise("https://t/organizations"),
            )
            .build()
            .unwrap();
        assert_eq!(
            mixed.authorization_servers(),
            ["https://auth.example.com", "https://t/organizations"]
        );
        assert_eq!(
            mixed.issuers().first().unwrap().policy(),
            Some(&IssuerPolicy::new().accept_audience("x"))
        );
        let any = AuthConfig::builder()
            .tenant_issuer(TenantIssuer::new("https://t/{tenant}").allow_any_tenant_unrestricted())
            .resource("https://mcp.example.com/mcp");
        assert_eq!(
            any.clone().build().unwrap_err().field(),
            "authorization_servers"
        );
        let c = any
            .authorization_servers(["https://t/common"])
            .build()
            .unwrap();
        assert_eq!(c.authorization_servers(), ["https://t/common"]);
    }

    // RFC 9728 section 2 and 7.6: the metadata sends clients to the servers
    // it lists, and the tokens they get there must pass the issuer check. A
    // listed server that is not a trusted issuer (a typo, a server of
    // another deployment, a tenant not on the allowlist) is refused at build
    // instead of advertising a server whose every token is refused.
    #[test]
    fn advertised_servers_must_be_trusted_issuers() {
        use super::super::TenantIssuer;
        for list in [
            vec!["https://other.example.com"],
            vec!["https://auth.example.com", "https://auth.example.com/"],
            vec!["https://auth.example.com/realms/x"],
        ] {
            let e = base()
                .authorization_servers(list.clone())
                .build()
                .unwrap_err();
            assert_eq!(e.field(), "authorization_servers", "{list:?}");
            assert!(e.message().contains("not a trusted issuer"), "{e}");
        }
        let tenants = || {
            AuthConfig::builder()
                .tenant_issuer(TenantIssuer::new("https://t/{tenant}/v2").tenants(["a", "b"]))
                .resource("https://mcp.example.com/mcp")
        };
        // A tenant not on the allowlist, or not a tenant id, is not trusted.
        for bad in [
            "https://t/c/v2",
            "https://t/a/b/v2",
            "https://t/{tenant}/v2",
        ] {
            let e = tenants().authorization_servers([bad]).build().unwrap_err();
            assert_eq!(e.field(), "authorization_servers", "{bad}");
        }
        // The issuers themselves are: fixed, or a template's accepted ones.
        let c = base()
            .issuer("https://second.example.com")
            .authorization_servers(["https://second.example.com"])
            .build()
            .unwrap();
        assert_eq!(c.authorization_servers(), ["https://second.example.com"]);
        let c = tenants()
            .authorization_servers(["https://t/b/v2"])
            .build()
            .unwrap();
        assert_eq!(c.authorization_servers(), ["https://t/b/v2"]);
    }

    // TenantIssuer::advertise is checked against the template: a front
    // door is a trusted issuer, or the template filled with a tenant id
    // (Entra ID's `organizations`), never another host, path or shape.
    #[test]
    fn advertised_front_doors_fit_the_template() {
        use super::super::TenantIssuer;
        let with = |adv: &str| {
            base()
                .tenant_issuer(
                    TenantIssuer::new("https://t/{tenant}/v2")
                        .tenants(["a"])
                        .advertise(adv),
                )
                .build()
        };
        for bad in [
            "https://elsewhere.example/organizations/v2",
            "https://t/organizations/v2/x",
            "https://t/organizations",
            "https://t/a/b/v2",
            "https://t:8443/organizations/v2",
            "https://t/orga.nizations/v2",
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.field(), "authorization_servers", "{bad}: {e}");
            assert!(e.message().contains("template"), "{bad}: {e}");
        }
        for good in [
            "https://t/organizations/v2",
            "https://t/common/v2",
            "https://t/a/v2",
            "https://auth.example.com",
        ] {
            let c = with(good).unwrap();
            assert_eq!(c.authorization_servers().last().unwrap(), good);
        }
    }

    // The explicit opt-in for a front door that is not an issuer (Entra
    // ID's `organizations`): named per URL, and only for listed URLs.
    #[test]
    fn untrusted_front_doors_need_the_explicit_opt_in() {
        use super::super::TenantIssuer;
        let org = "https://t/organizations/v2";
        let tenants = || {
            AuthConfig::builder()
                .tenant_issuer(TenantIssuer::new("https://t/{tenant}/v2").tenants(["a"]))
                .resource("https://mcp.example.com/mcp")
        };
        let e = tenants().authorization_servers([org]).build().unwrap_err();
        assert_eq!(e.field(), "authorization_servers");
        assert!(
            e.message().contains("allow_untrusted_authorization_server"),
            "{e}"
        );
        let c = tenants()
            .authorization_servers([org, "https://t/a/v2"])
            .allow_untrusted_authorization_server(org)
            .build()
            .unwrap();
        assert_eq!(c.authorization_servers(), [org, "https://t/a/v2"]);
        // The opt-in covers the URL it names, not its neighbours.
        let e = tenants()
            .authorization_servers([org, "https://t/common/v2"])
            .allow_untrusted_authorization_server(org)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "authorization_servers");
        assert!(e.message().contains("common"), "{e}");
        // An opt-in for a URL that is not listed is a mistake too.
        let e = tenants()
            .allow_untrusted_authorization_server(org)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "untrusted_authorization_servers");
        // TenantIssuer::advertise is the other explicit opt-in: its front
        // doors may be listed again in the replacement list.
        let c = AuthConfig::builder()
            .tenant_issuer(
                TenantIssuer::new("https://t/{tenant}/v2")
                    .tenants(["a"])
                    .advertise(org),
            )
            .resource("https://mcp.example.com/mcp")
            .authorization_servers([org])
            .build()
            .unwrap();
        assert_eq!(c.authorization_servers(), [org]);
        // A plain issuer that the template also issues: refused (found
        // from outside: the plain one silently took the tenant over).
        for (template, plain) in [
            ("https://t/{tenant}/v2", "https://t/a/v2"),
            ("https://t/claims", "https://t/claims"),
        ] {
            let e = AuthConfig::builder()
                .tenant_issuer(
                    TenantIssuer::new(template)
                        .tenants(["a"])
                        .tenant_claim("tid"),
                )
                .issuer(plain)
                .resource("https://mcp.example.com/mcp")
                .build()
                .unwrap_err();
            assert_eq!(e.field(), "issuer", "{e}");
            assert!(e.message().contains("configure it once"), "{e}");
        }
        // An opted-in front door is held to an issuer's form too: a client
        // must find it again as its metadata's `issuer` (found from
        // outside: advertised as typed).
        for bad in [
            "https://Other.example",
            "https://other.example:443",
            "https://other.example/a/../b",
            "https://other.example/ x",
        ] {
            let e = tenants()
                .authorization_servers([bad])
                .allow_untrusted_authorization_server(bad)
                .build()
                .unwrap_err();
            assert_eq!(e.field(), "authorization_servers", "{bad}: {e}");
        }
        // The form it names is the issuer to write: a root issuer without
        // the `/` its URL's path adds (found from outside: it suggested
        // `https://as.example/`, which no token names).
        let e = AuthConfig::builder()
            .issuer("https://as.example:443")
            .resource("https://mcp.example.com/mcp")
            .build()
            .unwrap_err();
        assert!(e.message().contains(r#"("https://as.example")"#), "{e}");
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
        // A total below the per-principal default: that default is moot
        // (the total holds first), alone and with sessions off.
        for builder in [
            base().max_sessions(5),
            base().max_sessions(5).stateless_only(true),
        ] {
            let c = builder.build().unwrap();
            assert_eq!((c.sessions.total, c.sessions.per_principal), (5, 5));
        }
        // Each key-set bound past a day says what it would cost.
        let day_and_one = Duration::from_secs(86_401);
        for (e, cost) in [
            (base().jwks_cache_ttl(day_and_one), "withdraws"),
            (base().jwks_cache_max_ttl(day_and_one), "withdraws"),
            (base().jwks_refresh_cooldown(day_and_one), "adds"),
            (base().jwks_max_stale(day_and_one), "withdrew"),
            (
                base()
                    .jwks_cache_ttl(Duration::from_secs(600))
                    .jwks_cache_max_ttl(Duration::from_secs(60)),
                "below jwks_cache_ttl",
            ),
        ] {
            let e = e.build().unwrap_err();
            assert!(e.to_string().contains(cost), "{e}");
        }
        // The default bound below a longer lifetime is moot: accepted.
        assert!(
            base()
                .jwks_cache_ttl(Duration::from_secs(7200))
                .build()
                .is_ok()
        );
    }
}
