//! The environment variables behind [`AuthConfig::from_env`], in one table.
//!
//! [`ENV_VARS`] is the only list: [`AuthConfigBuilder::from_env_vars`]
//! reads each variable through its row (the row's [`Parse`] turns the text
//! into a value and gives it to the builder), [`ConfigError::for_env`] maps
//! a setting back to its variable through the same rows, and the tests below
//! check that the `from_env` documentation (`env_table.md`, generated from
//! the table) and README's configuration table list exactly these variables.

use std::time::Duration;

use ::url::Url;

use super::{
    Algorithm, AudienceRule, AuthConfig, AuthConfigBuilder, DpopMode, IntrospectionSettings,
    TypPolicy,
};
use crate::error::ConfigError;

/// One environment variable: its name, the builder setting it feeds, how
/// its text is read, its default and what it means. The documentation
/// columns are read by the tests that hold the docs to the table.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct EnvVar {
    /// The variable, `MCP_OAUTH2_...`.
    pub(crate) name: &'static str,
    /// The builder method it stands for (documentation).
    pub(crate) setting: &'static str,
    /// The [`ConfigError::field`] that [`AuthConfigBuilder::build`] uses for
    /// a mistake in this setting; mapped back to `name` by `for_env`.
    pub(crate) field: &'static str,
    /// Read only when set; `required` variables must be set.
    pub(crate) required: bool,
    /// How the text is read and where the value goes.
    pub(crate) parse: Parse,
    /// The default when unset (documentation).
    pub(crate) default: &'static str,
    /// One line: what it means (documentation).
    pub(crate) meaning: &'static str,
}

/// Where a value read from the environment goes: the builder, or (for the
/// three introspection variables, which make one setting together) a staging
/// area assembled once all rows are read.
#[derive(Default)]
pub(crate) struct Staged {
    builder: AuthConfigBuilder,
    introspection_uri: Option<Url>,
    client_id: Option<String>,
    client_secret: Option<String>,
    tenants: Option<Vec<String>>,
    tenant_claim: Option<String>,
    /// `MCP_OAUTH2_REDIS_PREFIX`, for the store `MCP_OAUTH2_REDIS_URL` makes.
    redis_prefix: Option<String>,
    /// `MCP_OAUTH2_DPOP_NONCE_SECRET`, checked against the nonce setting
    /// and the shared store once all rows are read.
    nonce_secret: Option<String>,
}

type Apply<T> = fn(&mut Staged, T) -> Result<(), String>;

/// How a variable's text is read. The error text of a failed read, or of
/// the row's `apply`, becomes a [`ConfigError`] naming the variable.
#[derive(Clone, Copy)]
pub(crate) enum Parse {
    /// A whole number of seconds.
    Seconds(Apply<Duration>),
    /// A whole number.
    Count(Apply<usize>),
    /// `1` (on) or `0` (off); empty keeps the default.
    Flag(Apply<bool>),
    /// A list split on the separator, items trimmed, empty items dropped.
    List(char, Apply<Vec<String>>),
    /// A URL (the text, checked when the configuration is built).
    Url(Apply<String>),
    /// Free text.
    Text(Apply<String>),
    /// A rate limit, `<count>/<seconds>`.
    Limit(Apply<(u64, Duration)>),
    /// A rate limit, or `off` (`None`).
    LimitOrOff(Apply<Option<(u64, Duration)>>),
}

impl Parse {
    /// The value column of the documentation.
    #[cfg_attr(not(test), allow(dead_code))]
    fn describe(self) -> &'static str {
        match self {
            Self::Seconds(_) => "seconds",
            Self::Count(_) => "whole number",
            Self::Flag(_) => "`1` or `0`",
            Self::List(',', _) => "comma-separated",
            Self::List(_, _) => "space-separated",
            Self::Url(_) => "URL",
            Self::Text(_) => "text",
            Self::Limit(_) => "`<count>/<seconds>` or `off`",
            Self::LimitOrOff(_) => "`<count>/<seconds>` or `off`",
        }
    }

    fn read(self, raw: String, staged: &mut Staged) -> Result<(), String> {
        /// A whole number (ASCII digits, around whitespace), saturated.
        fn whole_number(raw: &str) -> Option<u64> {
            let digits = raw.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(digits.parse::<u64>().unwrap_or(u64::MAX))
        }
        match self {
            // A whole number too large for the type is read as its largest
            // value (which anyone can type): the setting's own range check
            // then says what is allowed, not "must be a whole number"
            // (found from outside).
            Self::Seconds(apply) => {
                let secs = whole_number(&raw)
                    .ok_or_else(|| "must be a whole number of seconds".to_owned())?;
                apply(staged, Duration::from_secs(secs))
            }
            Self::Count(apply) => {
                let n = whole_number(&raw).ok_or_else(|| "must be a whole number".to_owned())?;
                apply(staged, usize::try_from(n).unwrap_or(usize::MAX))
            }
            Self::Flag(apply) => match raw.trim() {
                // Empty is unset: the default stays (some flags default on).
                "" => Ok(()),
                "0" => apply(staged, false),
                "1" => apply(staged, true),
                _ => Err("must be 1 or 0".to_owned()),
            },
            Self::List(sep, apply) => apply(staged, split_list(&raw, sep)?),
            Self::Url(apply) | Self::Text(apply) => apply(staged, raw),
            // Off by default: `off` (any case) says so, as the table's
            // default reads (found from outside: refused).
            Self::Limit(apply) => {
                let text = raw.trim();
                if text.is_empty() || text.eq_ignore_ascii_case("off") {
                    return Ok(());
                }
                let limit =
                    crate::throttle::RateLimit::parse(text).map_err(|m| format!("{m}, or off"))?;
                apply(staged, (limit.count, limit.window))
            }
            Self::LimitOrOff(apply) => match raw.trim() {
                "" => Ok(()),
                // Keywords in any case, as `MCP_OAUTH2_DPOP`'s.
                off if off.eq_ignore_ascii_case("off") => apply(staged, None),
                text => {
                    let limit = crate::throttle::RateLimit::parse(text)
                        .map_err(|m| format!("{m}, or off"))?;
                    apply(staged, Some((limit.count, limit.window)))
                }
            },
        }
    }
}

/// A scope list read from a variable, whose scopes are separated by
/// spaces: a comma in one is refused. RFC 6749 allows it in a scope, but
/// every other list variable is comma-separated, and `a,b` read as one
/// scope no token holds refused every request with nothing said at start
/// (found from outside). A scope with a comma is set with the builder.
fn space_separated(scopes: Vec<String>) -> Result<Vec<String>, String> {
    match scopes.iter().find(|s| s.contains(',')) {
        Some(scope) => Err(format!(
            "must separate scopes with spaces, not commas ({scope:?} would be one scope)"
        )),
        None => Ok(scopes),
    }
}

/// The items of a list variable. A blank value is an empty list (unset);
/// in a comma-separated list an empty item (two commas in a row, one at an
/// end) is refused: found from outside, a template's `${LB1},${LB2}` with
/// both empty read as no trusted proxy beside a forwarded-header setting
/// that needs one, and `RS256,,ES256` dropped its gap unsaid. Spaces
/// between items of a space-separated list are any number.
fn split_list(value: &str, sep: char) -> Result<Vec<String>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items = value.split(sep).map(str::trim);
    if sep != ' ' && items.clone().any(str::is_empty) {
        return Err(format!(
            "holds an empty item (a {sep:?} with nothing before or after it): remove it"
        ));
    }
    Ok(items.filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

/// The settings of legacy sessions, which do nothing with
/// `MCP_OAUTH2_STATELESS_ONLY=1`.
const SESSION_VARIABLES: [&str; 3] = [
    "MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL",
    "MCP_OAUTH2_MAX_SESSIONS",
    "MCP_OAUTH2_SESSION_IDLE_TIMEOUT",
];

/// Every environment variable [`AuthConfig::from_env`] reads, in the order
/// they are read (`MCP_OAUTH2_JWKS_URI` needs the issuers read before it).
pub(crate) static ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "MCP_OAUTH2_ISSUER",
        setting: "issuer",
        field: "issuer",
        required: true,
        parse: Parse::List(',', |s, issuers| {
            if issuers.is_empty() {
                return Err("is empty".to_owned());
            }
            s.builder.issuers = issuers;
            Ok(())
        }),
        default: "required",
        meaning: "trusted issuers, compared exactly with `iss`; one may hold `{tenant}` (an issuer template)",
    },
    EnvVar {
        name: "MCP_OAUTH2_RESOURCE",
        setting: "resource",
        field: "resource",
        required: true,
        parse: Parse::Url(|s, v| {
            s.builder.resource = Some(v);
            Ok(())
        }),
        default: "required",
        meaning: "canonical resource URI of the MCP endpoint (the required audience)",
    },
    EnvVar {
        name: "MCP_OAUTH2_JWKS_URI",
        setting: "jwks_uri",
        field: "jwks_uri",
        required: false,
        parse: Parse::Url(|s, v| {
            let v = v.trim();
            if v.is_empty() {
                return Ok(());
            }
            if s.builder.issuers.len() != 1 {
                return Err(
                    "can only be set with exactly one issuer; several issuers use discovery"
                        .to_owned(),
                );
            }
            s.builder.jwks_uris.push((None, v.to_owned()));
            Ok(())
        }),
        default: "discovered",
        meaning: "key-set URL of the only issuer; with `{tenant}`, one key set per tenant",
    },
    EnvVar {
        name: "MCP_OAUTH2_TENANTS",
        setting: "tenant_issuer",
        field: "tenant_issuer",
        required: false,
        parse: Parse::List(',', |s, v| {
            s.tenants = Some(v);
            Ok(())
        }),
        default: "none (required with `{tenant}`)",
        meaning: "tenants accepted by the issuer template (`MCP_OAUTH2_ISSUER` with `{tenant}`), or, with one issuer without it, the tenants its `MCP_OAUTH2_TENANT_CLAIM` may name (organizations); `*`: any tenant",
    },
    EnvVar {
        name: "MCP_OAUTH2_TENANT_CLAIM",
        setting: "tenant_issuer",
        field: "tenant_claim",
        required: false,
        parse: Parse::Text(|s, v| {
            s.tenant_claim = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
            Ok(())
        }),
        default: "none (the issuer decides)",
        meaning: "a claim that must be present and equal the tenant (`tid`, `org_id`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_AUTHORIZATION_SERVERS",
        setting: "authorization_servers",
        field: "authorization_servers",
        required: false,
        parse: Parse::List(',', |s, v| {
            s.builder.authorization_servers = Some(v).filter(|v| !v.is_empty());
            Ok(())
        }),
        default: "the issuers (one per listed tenant)",
        meaning: "`authorization_servers` in the metadata, replacing the computed list; each must be a trusted issuer",
    },
    EnvVar {
        name: "MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS",
        setting: "allow_untrusted_authorization_server",
        field: "untrusted_authorization_servers",
        required: false,
        parse: Parse::List(',', |s, v| {
            s.builder.untrusted_authorization_servers = v;
            Ok(())
        }),
        default: "none",
        meaning: "entries of `MCP_OAUTH2_AUTHORIZATION_SERVERS` allowed not to be trusted issuers (Entra ID's `organizations` front door)",
    },
    EnvVar {
        name: "MCP_OAUTH2_REQUIRED_SCOPES",
        setting: "required_scopes",
        field: "required_scopes",
        required: false,
        parse: Parse::List(' ', |s, v| {
            s.builder.required_scopes = space_separated(v)?;
            Ok(())
        }),
        default: "none",
        meaning: "scopes every request needs",
    },
    EnvVar {
        name: "MCP_OAUTH2_SCOPES_SUPPORTED",
        setting: "scopes_supported",
        field: "scopes_supported",
        required: false,
        parse: Parse::List(' ', |s, v| {
            s.builder.scopes_supported = Some(space_separated(v)?);
            Ok(())
        }),
        default: "the required scopes",
        meaning: "`scopes_supported` in the metadata",
    },
    EnvVar {
        name: "MCP_OAUTH2_ALGORITHMS",
        setting: "algorithms",
        field: "algorithms",
        required: false,
        parse: Parse::List(',', |s, v| {
            s.builder.algorithms = v
                .iter()
                .map(|a| a.parse::<Algorithm>().map_err(|e| e.message().to_owned()))
                .collect::<Result<_, _>>()?;
            Ok(())
        }),
        default: "RS256/384/512, PS256/384/512, ES256, ES384, EdDSA",
        meaning: "accepted signing algorithms (asymmetric only)",
    },
    EnvVar {
        name: "MCP_OAUTH2_LEEWAY",
        setting: "leeway",
        field: "leeway",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.leeway = d;
            Ok(())
        }),
        default: "60 s (at most 300 s)",
        meaning: "clock leeway for `exp`, `nbf`, `iat`",
    },
    EnvVar {
        name: "MCP_OAUTH2_VERIFY_TIMEOUT",
        setting: "verify_timeout",
        field: "verify_timeout",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.verify_timeout = d;
            Ok(())
        }),
        default: "30 s (at most 300 s)",
        meaning: "deadline of one token verification (past it: 503 `verification_timeout`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_ACCEPT_JWT_TYP",
        setting: "typ_policy",
        field: "typ_policy",
        required: false,
        parse: Parse::Flag(|s, on| {
            if on {
                s.builder.typ_policy = TypPolicy::AllowJwt;
            }
            Ok(())
        }),
        default: "off",
        meaning: "`1`: also accept `typ: JWT` tokens (`TypPolicy::AllowJwt`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_ACCEPT_AUDIENCES",
        setting: "accept_audience",
        field: "accept_audience",
        required: false,
        // Each value is checked by `build` (`check_extra_audiences`).
        parse: Parse::List(',', |s, v| {
            s.builder.extra_audiences = v;
            Ok(())
        }),
        default: "none",
        meaning: "more values a token's `aud` may hold for this server, besides the resource: Entra ID's application ID (a GUID) or `api://` URI; values that name this server only",
    },
    EnvVar {
        name: "MCP_OAUTH2_SCOPE_CLAIMS",
        setting: "scope_claims",
        field: "scope_claims",
        required: false,
        parse: Parse::List(',', |s, v| {
            if !v.is_empty() {
                s.builder.scope_claims = Some(v);
            }
            Ok(())
        }),
        default: "`scope`, else `scp`",
        meaning: "claims scopes are read from, merged (names or dot-separated paths): `scope,permissions` (Auth0 RBAC), `scp,roles` (Entra ID app roles), `realm_access.roles`",
    },
    EnvVar {
        name: "MCP_OAUTH2_REQUIRE_CLIENT_ID",
        setting: "require_client_id",
        field: "require_client_id",
        required: false,
        parse: Parse::Flag(|s, on| {
            s.builder.require_client_id = on;
            Ok(())
        }),
        default: "off",
        meaning: "`1`: refuse tokens naming no client (`client_id`, `azp`, `cid`, `appid`), such as OpenID Connect ID tokens",
    },
    EnvVar {
        name: "MCP_OAUTH2_COGNITO_CLIENT_IDS",
        setting: "audience_rule",
        field: "audience_rule",
        required: false,
        parse: Parse::List(',', |s, v| {
            if !v.is_empty() {
                s.builder.audience_rule = AudienceRule::CognitoClientIds(v);
            }
            Ok(())
        }),
        default: "none (`aud` must name the resource)",
        meaning: "AWS Cognito access tokens carry no `aud`: accept tokens with `token_use: access` and one of these `client_id`s instead (a weaker binding: see `presets::cognito`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_RESOURCE_NAME",
        setting: "resource_name",
        field: "resource_name",
        required: false,
        parse: Parse::Text(|s, v| {
            s.builder.resource_name = Some(v).filter(|v| !v.trim().is_empty());
            Ok(())
        }),
        default: "none",
        meaning: "`resource_name` in the metadata (no control or text-direction characters)",
    },
    EnvVar {
        name: "MCP_OAUTH2_RESOURCE_DOCUMENTATION",
        setting: "resource_documentation",
        field: "resource_documentation",
        required: false,
        parse: Parse::Url(|s, v| {
            s.builder.resource_documentation = Some(v).filter(|v| !v.is_empty());
            Ok(())
        }),
        default: "none",
        meaning: "`resource_documentation` in the metadata",
    },
    EnvVar {
        name: "MCP_OAUTH2_JWKS_CACHE_TTL",
        setting: "jwks_cache_ttl",
        field: "jwks_cache_ttl",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.jwks.cache_ttl = d;
            Ok(())
        }),
        default: "300 s (at most 86400 s)",
        meaning: "how long a key set is used before it is fetched again; a key server's `Cache-Control: max-age` is honoured instead, within the smaller of this and the refresh cooldown and the larger of this and `MCP_OAUTH2_JWKS_CACHE_MAX_TTL`",
    },
    EnvVar {
        name: "MCP_OAUTH2_JWKS_REFRESH_COOLDOWN",
        setting: "jwks_refresh_cooldown",
        field: "jwks_refresh_cooldown",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.jwks.refresh_cooldown = d;
            Ok(())
        }),
        default: "30 s (at most 86400 s)",
        meaning: "minimum time between two key-set fetches for unknown `kid`s",
    },
    EnvVar {
        name: "MCP_OAUTH2_JWKS_CACHE_MAX_TTL",
        setting: "jwks_cache_max_ttl",
        field: "jwks_cache_max_ttl",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.jwks.max_ttl = d;
            Ok(())
        }),
        default: "3600 s (at most 86400 s)",
        meaning: "the longest a key server's `Cache-Control: max-age` keeps a key set (and a key it withdrew) in use before it is fetched again (this variable, when set, may not be below `MCP_OAUTH2_JWKS_CACHE_TTL`, 300 s by default)",
    },
    EnvVar {
        name: "MCP_OAUTH2_JWKS_MAX_STALE",
        setting: "jwks_max_stale",
        field: "jwks_max_stale",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.jwks.max_stale = d;
            Ok(())
        }),
        default: "3600 s (at most 86400 s)",
        meaning: "how long the last good key set keeps serving while fetching it again fails (0: not at all); then 503 `keys_unavailable`. Lower it after a key compromise",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_TOKEN_LIFETIME",
        setting: "max_token_lifetime",
        field: "max_token_lifetime",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.max_token_lifetime = d;
            Ok(())
        }),
        default: "86400 s (24 h)",
        meaning: "longest accepted token lifetime (`exp` after `iat`, or after now plus the leeway without `iat`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK",
        setting: "allow_insecure_http_for_loopback",
        field: "allow_insecure_http_for_loopback",
        required: false,
        parse: Parse::Flag(|s, on| {
            s.builder.allow_insecure_loopback = on;
            Ok(())
        }),
        default: "off",
        meaning: "`1`: allow `http://` on loopback hosts (development only)",
    },
    EnvVar {
        name: "MCP_OAUTH2_INTROSPECTION_URI",
        setting: "introspection",
        field: "introspection_endpoint",
        required: false,
        parse: Parse::Url(|s, v| {
            let v = v.trim();
            if !v.is_empty() {
                let url = Url::parse(v).map_err(|e| format!("not a URL: {e}"))?;
                s.introspection_uri = Some(url);
            }
            Ok(())
        }),
        default: "discovered (required when every issuer is a `{tenant}` template)",
        meaning: "RFC 7662 introspection endpoint (needs `MCP_OAUTH2_CLIENT_ID`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_CLIENT_ID",
        setting: "introspection",
        field: "introspection_client_id",
        required: false,
        parse: Parse::Text(|s, v| {
            s.client_id = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
            Ok(())
        }),
        default: "none (introspection off)",
        meaning: "client id for introspection; set, it turns introspection on",
    },
    EnvVar {
        name: "MCP_OAUTH2_CLIENT_SECRET",
        setting: "introspection",
        field: "introspection_client_secret",
        required: false,
        parse: Parse::Text(|s, v| {
            s.client_secret = Some(v);
            Ok(())
        }),
        default: "none (required with `MCP_OAUTH2_CLIENT_ID`)",
        meaning: "client secret for introspection (never logged; RFC 7662 section 2.1: not empty)",
    },
    EnvVar {
        name: "MCP_OAUTH2_ALLOWED_ORIGINS",
        setting: "allowed_origin",
        field: "allowed_origin",
        required: false,
        parse: Parse::List(',', |s, v| {
            s.builder.allowed_origins = v;
            Ok(())
        }),
        default: "the resource's own origin (a loopback resource: every loopback origin, any port)",
        meaning: "more browser origins allowed to call the endpoint",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL",
        setting: "max_sessions_per_principal",
        field: "max_sessions_per_principal",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.sessions.per_principal = n;
            Ok(())
        }),
        default: "64",
        meaning: "legacy sessions one user (issuer, tenant, subject; all its clients together) may hold open on this process (each replica counts its own; not above `MCP_OAUTH2_MAX_SESSIONS`; its default reads as that total when the total is lower)",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_LISTENS_PER_PRINCIPAL",
        setting: "max_listens_per_principal",
        field: "max_listens_per_principal",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_listens_per_principal = n;
            Ok(())
        }),
        default: "16",
        meaning: "`subscriptions/listen` streams and legacy sessions' GET streams, together, one user (issuer, tenant, subject; all its clients together) may hold open on this process (each replica counts its own)",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_PENDING_BODIES_PER_PRINCIPAL",
        setting: "max_pending_bodies_per_principal",
        field: "max_pending_bodies_per_principal",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_pending_bodies_per_principal = n;
            Ok(())
        }),
        default: "256",
        meaning: "requests of one principal whose bodies are waited for at once (429 past it); not above `MCP_OAUTH2_MAX_PENDING_BODIES`",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_PENDING_BODY_BYTES_PER_PRINCIPAL",
        setting: "max_pending_body_bytes_per_principal",
        field: "max_pending_body_bytes_per_principal",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_pending_body_bytes_per_principal = n;
            Ok(())
        }),
        default: "67108864",
        meaning: "bytes the bodies of one principal's requests waited for may hold together (429 past it); not above `MCP_OAUTH2_MAX_PENDING_BODY_BYTES`",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_PENDING_BODIES",
        setting: "max_pending_bodies",
        field: "max_pending_bodies",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_pending_bodies = n;
            Ok(())
        }),
        default: "2048",
        meaning: "request bodies waited for at once, all callers together (503 past it)",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_PENDING_BODY_BYTES",
        setting: "max_pending_body_bytes",
        field: "max_pending_body_bytes",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_pending_body_bytes = n;
            Ok(())
        }),
        default: "268435456",
        meaning: "bytes the bodies waited for may hold together (503 past it)",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES_PER_PRINCIPAL",
        setting: "max_unsent_answer_bytes_per_principal",
        field: "max_unsent_answer_bytes_per_principal",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_unsent_answer_bytes_per_principal = n;
            Ok(())
        }),
        default: "67108864",
        meaning: "bytes of one principal's answers (frames of 4 KiB or more) not yet taken by their clients (the answer dropped, 429, past it); not above `MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES`",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES",
        setting: "max_unsent_answer_bytes",
        field: "max_unsent_answer_bytes",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_unsent_answer_bytes = n;
            Ok(())
        }),
        default: "268435456",
        meaning: "bytes of answers not yet taken by their clients, all callers together (the answer dropped, 503, past it)",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_ANSWER_STREAMS_PER_PRINCIPAL",
        setting: "max_answer_streams_per_principal",
        field: "max_answer_streams_per_principal",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.max_answer_streams_per_principal = n;
            Ok(())
        }),
        default: "64",
        meaning: "event-stream answers one principal's calls have in progress, from the moment each head leaves (429 past it, the answer dropped)",
    },
    EnvVar {
        name: "MCP_OAUTH2_MAX_SESSIONS",
        setting: "max_sessions",
        field: "max_sessions",
        required: false,
        parse: Parse::Count(|s, n| {
            s.builder.sessions.total = n;
            Ok(())
        }),
        default: "10,000",
        meaning: "legacy sessions all principals may hold open",
    },
    EnvVar {
        name: "MCP_OAUTH2_SESSION_IDLE_TIMEOUT",
        setting: "session_idle_timeout",
        field: "session_idle_timeout",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.sessions.idle_timeout = d;
            Ok(())
        }),
        default: "300 s (at most 86400 s)",
        meaning: "how long a legacy session stays bound without a request",
    },
    EnvVar {
        name: "MCP_OAUTH2_STATELESS_ONLY",
        setting: "stateless_only",
        field: "stateless_only",
        required: false,
        parse: Parse::Flag(|s, on| {
            if on {
                s.builder.sessions.enabled = false;
            }
            Ok(())
        }),
        default: "off",
        meaning: "`1`: serve the stateless 2026-07-28 protocol only, no legacy sessions",
    },
    EnvVar {
        name: "MCP_OAUTH2_CLOSE_STREAMS_AT_EXPIRY",
        setting: "close_streams_at_expiry",
        field: "close_streams_at_expiry",
        required: false,
        parse: Parse::Flag(|s, on| {
            s.builder.close_streams_at_expiry = on;
            Ok(())
        }),
        default: "on",
        meaning: "`0`: event streams outlive the token that opened them (by default they end at its expiry plus the leeway)",
    },
    EnvVar {
        name: "MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP",
        setting: "hold_streams_for_step_up",
        field: "hold_streams_for_step_up",
        required: false,
        parse: Parse::Flag(|s, on| {
            s.builder.hold_streams_for_step_up = on;
            Ok(())
        }),
        default: "on",
        meaning: "`0`: an event-stream answer's head leaves at once; a late step-up is answered in the stream with the JSON-RPC error instead of HTTP 403",
    },
    EnvVar {
        name: "MCP_OAUTH2_DPOP",
        setting: "dpop",
        field: "dpop",
        required: false,
        parse: Parse::Text(|s, v| {
            if !v.trim().is_empty() {
                let mode: DpopMode = v.parse().map_err(|e: ConfigError| e.message().to_owned())?;
                s.builder.dpop.mode = mode;
            }
            Ok(())
        }),
        default: "`allowed`",
        meaning: "DPoP-bound tokens: `allowed` (beside Bearer), `required` (DPoP only) or `off`",
    },
    EnvVar {
        name: "MCP_OAUTH2_DPOP_NONCE",
        setting: "dpop",
        field: "dpop_nonce",
        required: false,
        parse: Parse::Flag(|s, on| {
            s.builder.dpop.nonce = on;
            Ok(())
        }),
        default: "off",
        meaning: "`1`: demand a server nonce in DPoP proofs (`DPoP-Nonce`, `use_dpop_nonce`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_DPOP_NONCE_SECRET",
        setting: "dpop",
        field: "dpop_nonce_secret",
        required: false,
        parse: Parse::Text(|s, v| {
            if !v.trim().is_empty() {
                s.nonce_secret = Some(v);
            }
            Ok(())
        }),
        default: "random, per process",
        meaning: "the secret DPoP nonces are sealed with (at least 32 random bytes: a short pattern repeated or fewer than six distinct bytes is refused; never logged): the same on every replica, required with `MCP_OAUTH2_DPOP_NONCE=1` and `MCP_OAUTH2_REDIS_URL`",
    },
    EnvVar {
        name: "MCP_OAUTH2_DPOP_ALGORITHMS",
        setting: "dpop",
        field: "dpop_algorithms",
        required: false,
        parse: Parse::List(',', |s, v| {
            s.builder.dpop.algorithms = v
                .iter()
                .map(|a| a.parse::<Algorithm>().map_err(|e| e.message().to_owned()))
                .collect::<Result<_, _>>()?;
            Ok(())
        }),
        default: "ES256, ES384, EdDSA, PS256, RS256",
        meaning: "accepted DPoP proof algorithms",
    },
    EnvVar {
        name: "MCP_OAUTH2_DPOP_MAX_AGE",
        setting: "dpop",
        field: "dpop_max_age",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.dpop.max_age = d;
            Ok(())
        }),
        default: "300 s (at most 300 s)",
        meaning: "how far a DPoP proof's `iat` may be from now, either side",
    },
    EnvVar {
        name: "MCP_OAUTH2_FAILED_AUTH_LIMIT",
        setting: "failed_auth_limit",
        field: "failed_auth_limit",
        required: false,
        parse: Parse::Limit(|s, limit| {
            s.builder.watch.failed_auth_limit = Some(limit);
            Ok(())
        }),
        default: "off",
        meaning: "failed authentications allowed per client address and per token in a window; then 429 until it passes",
    },
    EnvVar {
        name: "MCP_OAUTH2_MISSING_AUTH_LIMIT",
        setting: "missing_auth_limit",
        field: "missing_auth_limit",
        required: false,
        parse: Parse::Limit(|s, limit| {
            s.builder.watch.missing_auth_limit = Some(limit);
            Ok(())
        }),
        default: "off",
        meaning: "requests without credentials allowed per client address in a window; then 429 until it passes",
    },
    EnvVar {
        name: "MCP_OAUTH2_TRUSTED_PROXIES",
        setting: "trusted_proxy",
        field: "trusted_proxy",
        required: false,
        parse: Parse::List(',', |s, v| {
            s.builder.watch.trusted_proxies = v;
            Ok(())
        }),
        default: "none",
        meaning: "reverse proxies (CIDRs or addresses) whose forwarded header is believed",
    },
    EnvVar {
        name: "MCP_OAUTH2_FORWARDED_HEADER",
        setting: "forwarded_header",
        field: "forwarded_header",
        required: false,
        parse: Parse::Text(|s, v| {
            if !v.trim().is_empty() {
                s.builder.watch.forwarded_header =
                    v.parse().map_err(|e: ConfigError| e.message().to_owned())?;
            }
            Ok(())
        }),
        default: "`x-forwarded-for`",
        meaning: "the header the trusted proxies write the client's address in: `x-forwarded-for` or `forwarded` (RFC 7239); the other is never read",
    },
    EnvVar {
        name: "MCP_OAUTH2_AUDIT_REFUSAL_LIMIT",
        setting: "audit_refusal_limit",
        field: "audit_refusal_limit",
        required: false,
        parse: Parse::LimitOrOff(|s, limit| {
            s.builder.watch.audit_refusal_limit = limit;
            Ok(())
        }),
        default: "100/1",
        meaning: "refusal audit events of each kind written in a window, spread through it (ten at once, then one every window/count); the rest are counted (`suppressed`), not written; `off`: write every one",
    },
    EnvVar {
        name: "MCP_OAUTH2_METADATA_MAX_AGE",
        setting: "metadata_max_age",
        field: "metadata_max_age",
        required: false,
        parse: Parse::Seconds(|s, d| {
            s.builder.watch.metadata_max_age = d;
            Ok(())
        }),
        default: "3600 s (at most 2147483648 s)",
        meaning: "`max-age` of the metadata document's `Cache-Control: public`",
    },
    EnvVar {
        name: "MCP_OAUTH2_REDIS_PREFIX",
        setting: "shared_store",
        field: "redis_prefix",
        required: false,
        parse: Parse::Text(|s, v| {
            let v = v.trim();
            if v.is_empty() {
                return Ok(());
            }
            if v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(
                    "must be 1 to 64 printable ASCII characters without spaces (e.g. prod-eu:)"
                        .to_owned(),
                );
            }
            s.redis_prefix = Some(v.to_owned());
            Ok(())
        }),
        default: "none",
        meaning: "put before every key in `MCP_OAUTH2_REDIS_URL`'s Redis, so that deployments sharing one keep their state apart (`prod-eu:`)",
    },
    EnvVar {
        name: "MCP_OAUTH2_REDIS_URL",
        setting: "shared_store",
        field: "shared_store",
        required: false,
        parse: Parse::Url(|s, url| {
            let url = url.trim();
            if url.is_empty() {
                return Ok(());
            }
            redis_store(s, url)
        }),
        default: "none (state in process memory)",
        meaning: "`redis://[:password@]host[:port][/db]`: all state shared by replicas goes through this Redis (feature `redis`)",
    },
];

/// `MCP_OAUTH2_REDIS_URL`: a Redis store (its operation timeout the
/// default), or an error naming the missing feature. The URL is never
/// repeated in the error (it may hold a password).
#[cfg(feature = "redis")]
fn redis_store(s: &mut Staged, url: &str) -> Result<(), String> {
    // The reason alone: a URL refused at start is a mistake, not an outage
    // ("store unavailable: ...", found from outside).
    let mut store = crate::store::RedisStore::new(url).map_err(|e| match e {
        crate::store::StoreError::Unavailable(why) => why,
        other => other.to_string(),
    })?;
    if let Some(prefix) = &s.redis_prefix {
        store = store.prefix(prefix.clone());
    }
    s.builder.shared_store = Some(std::sync::Arc::new(store));
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn redis_store(_: &mut Staged, _: &str) -> Result<(), String> {
    Err("needs mcp-oauth2 built with the `redis` feature".to_owned())
}

/// An error naming a variable of the table.
fn env_error(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(name, message)
}

impl ConfigError {
    /// The same error naming the environment variable behind the setting
    /// (its row in [`ENV_VARS`]), for configurations read by
    /// [`AuthConfig::from_env`]. A setting no variable feeds keeps its name.
    /// Builder settings the message names (`allow_insecure_http_for_loopback`,
    /// `max_sessions`) are replaced by their variables too.
    pub(crate) fn for_env(self) -> Self {
        let mut message = self.message().to_owned();
        // Advice that names builder calls an operator of variables cannot
        // make, said in variables (found from outside).
        for (builder, env) in [
            (
                "an allowlist (tenants) or allow_any_tenant_unrestricted",
                "an allowlist (MCP_OAUTH2_TENANTS=a,b) or MCP_OAUTH2_TENANTS=*",
            ),
            (
                "advertise an issuer (TenantIssuer::advertise) or set",
                "set",
            ),
            // The variable takes whole seconds (found from outside: `0`
            // was told of a millisecond it cannot write).
            (
                "must be from 1 millisecond to 300 seconds",
                "must be from 1 to 300 seconds",
            ),
        ] {
            message = message.replace(builder, env);
        }
        for var in ENV_VARS {
            for name in [var.setting, var.field] {
                // Words such as `issuer` or `dpop` are plain English too:
                // only names with an underscore are rewritten.
                if name.contains('_') {
                    message = replace_word(&message, name, var.name);
                }
            }
        }
        let field = match ENV_VARS.iter().find(|v| v.field == self.field()) {
            Some(var) => var.name,
            None => self.field(),
        };
        Self::new(field, message)
    }
}

/// `text` with every occurrence of the identifier `word` (not part of a
/// longer identifier) replaced by `by`.
fn replace_word(text: &str, word: &str, by: &str) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let (before, after) = rest.split_at(at);
        let after = after.get(word.len()..).unwrap_or_default();
        let alone = !before.ends_with(ident) && !after.starts_with(ident);
        out.push_str(before);
        out.push_str(if alone { by } else { word });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The variables that configure DPoP proofs (meaningless with DPoP off).
const DPOP_PROOF_VARIABLES: &[&str] = &[
    "MCP_OAUTH2_DPOP_NONCE",
    "MCP_OAUTH2_DPOP_NONCE_SECRET",
    "MCP_OAUTH2_DPOP_ALGORITHMS",
    "MCP_OAUTH2_DPOP_MAX_AGE",
];

/// The prefix of every variable of the table.
const PREFIX: &str = "MCP_OAUTH2_";

/// The process environment's `MCP_OAUTH2_*` variables, and those whose
/// names are a misspelling of one of ours: each name, and whether its value
/// is UTF-8.
fn prefixed_process_vars() -> Vec<(String, bool)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.to_string_lossy();
            is_ours(&name).then(|| (name.into_owned(), value.to_str().is_some()))
        })
        .collect()
}

/// Whether `name` is in this namespace (`MCP_OAUTH2_` in any case:
/// `mcp_oauth2_required_scopes` is a misspelling too), or a misspelling of
/// one of its variables in the prefix itself (`MCP_OAUTH_REQUIRED_SCOPES`,
/// `MCP_OAUTH2REQUIRED_SCOPES`, an invisible character inserted: one edit
/// from a name of the table or of [`SERVER_ENV_VARIABLES`]). Found from
/// outside: such a name was read as another program's variable, and the
/// required scope it set silently left out, so calls without it were
/// served. One edit, not two: `MCP_AUTH_ISSUER` and the like are other
/// MCP programs' variables.
fn is_ours(name: &str) -> bool {
    if name
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
    {
        return true;
    }
    // Dashes or dots for underscores are the same name (found from
    // outside: `MCP-OAUTH2-DPOP=required`, which docker-compose and
    // systemd accept, was read as another program's and left DPoP off),
    // and so is a doubled underscore (`MCP__OAUTH2__DPOP`, found from
    // outside).
    let mut upper = String::with_capacity(name.len());
    for c in name.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | '.' => '_',
            c => c,
        };
        if !(c == '_' && upper.ends_with('_')) {
            upper.push(c);
        }
    }
    if upper
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
    {
        return true;
    }
    // The prefix with its separators dropped or behind something
    // (`MCPOAUTH2REQUIREDSCOPES`, `X_MCP_OAUTH2_DPOP`, `MCP_MCP_OAUTH2_DPOP`:
    // found from outside, read as another program's and left out), when
    // what follows it is one of our names without separators: a template
    // that strips or prefixes names. Another text after it
    // (`MY_MCP_OAUTH2_CONFIG`) stays another program's.
    let squeezed: String = upper.chars().filter(char::is_ascii_alphanumeric).collect();
    if let Some(at) = squeezed.rfind("MCPOAUTH2") {
        let rest = squeezed.get(at + "MCPOAUTH2".len()..).unwrap_or_default();
        let named = ENV_VARS
            .iter()
            .map(|v| v.name)
            .chain(SERVER_ENV_VARIABLES.iter().copied())
            .any(|known| {
                let known = known.get(PREFIX.len()..).unwrap_or_default();
                !rest.is_empty() && known.chars().filter(|c| *c != '_').eq(rest.chars())
            });
        if named {
            return true;
        }
    }
    // In characters, as the distance counts them (a zero-width space is
    // three bytes, one edit). Two letters swapped are one edit
    // (`MCP_OATUH2_DPOP`, found from outside: read as another program's,
    // DPoP left off), and a character outside ASCII may stand for any
    // letter (a Cyrillic `О` for `O`).
    let chars = upper.chars().count();
    ENV_VARS
        .iter()
        .map(|v| v.name)
        .chain(SERVER_ENV_VARIABLES.iter().copied())
        .any(|known| known.len().abs_diff(chars) <= 1 && lookalike_distance(&upper, known) <= 1)
}

/// The optimal-string-alignment distance of `name` to the ASCII name
/// `known` (insertions, deletions, substitutions and swaps of two
/// neighbours each cost one), where a character of `name` outside ASCII
/// stands for any character of `known` at no cost (a lookalike letter).
/// Hand-written: a few dozen names of a few dozen characters, at start-up
/// only (the string-distance crates count no lookalike letters). The hint
/// of [`check_names`] ranks names by it too.
fn lookalike_distance(name: &str, known: &str) -> usize {
    let a: Vec<char> = name.chars().collect();
    let b: Vec<char> = known.chars().collect();
    let same = |x: char, y: char| x == y || !x.is_ascii();
    // d[i][j]: the distance of a[..i] to b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        if let Some(first) = row.first_mut() {
            *first = i;
        }
    }
    if let Some(first) = d.first_mut() {
        for (j, cell) in first.iter_mut().enumerate() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let at = |d: &Vec<Vec<usize>>, i: usize, j: usize| {
                d.get(i)
                    .and_then(|r| r.get(j))
                    .copied()
                    .unwrap_or(usize::MAX / 2)
            };
            let (ca, cb) = (a.get(i - 1).copied(), b.get(j - 1).copied());
            let cost = usize::from(!matches!((ca, cb), (Some(x), Some(y)) if same(x, y)));
            let mut best = (at(&d, i - 1, j - 1) + cost)
                .min(at(&d, i - 1, j) + 1)
                .min(at(&d, i, j - 1) + 1);
            if i > 1
                && j > 1
                && matches!(
                    (a.get(i - 1), b.get(j - 2), a.get(i - 2), b.get(j - 1)),
                    (Some(w), Some(x), Some(y), Some(z)) if same(*w, *x) && same(*y, *z)
                )
            {
                best = best.min(at(&d, i - 2, j - 2) + 1);
            }
            if let Some(cell) = d.get_mut(i).and_then(|r| r.get_mut(j)) {
                *cell = best;
            }
        }
    }
    d.last().and_then(|r| r.last()).copied().unwrap_or_default()
}

/// The documented variables of this namespace that a server reads for
/// itself rather than for [`AuthConfig`]: the reference server's
/// (`examples/protected_server.rs`: the address, the log format, the
/// server's timeouts, connection limit and readiness path, the downstream
/// API). The contract of a server built
/// like it is "`AuthConfig::from_env()` plus `MCP_OAUTH2_BIND`", so
/// `from_env` never refuses these names, whoever calls it (only a value
/// that is not UTF-8, which the server could not read); any other unknown
/// `MCP_OAUTH2_*` name is refused.
pub const SERVER_ENV_VARIABLES: &[&str] = &[
    "MCP_OAUTH2_BIND",
    "MCP_OAUTH2_LOG_FORMAT",
    "MCP_OAUTH2_HEADER_READ_TIMEOUT",
    "MCP_OAUTH2_BODY_READ_TIMEOUT",
    "MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT",
    "MCP_OAUTH2_MAX_CONNECTIONS",
    "MCP_OAUTH2_MAX_HEADER_BYTES",
    "MCP_OAUTH2_READINESS_PATH",
    "MCP_OAUTH2_TOKEN_ENDPOINT",
    "MCP_OAUTH2_DOWNSTREAM_AUDIENCE",
    "MCP_OAUTH2_DOWNSTREAM_URL",
    "MCP_OAUTH2_DOWNSTREAM_STEP_UP_SCOPES",
    "MCP_OAUTH2_EXCHANGE_CACHE_KEY",
];

/// Every `MCP_OAUTH2_*` variable set must be one of the table or one of
/// `app_vars` (the application's own), and a variable of the table must
/// hold UTF-8: a misspelled variable (`MCP_OAUTH2_REQUIRED_SCOPE`) or an
/// unreadable value would otherwise be read as unset, and the setting it
/// meant to make (a required scope, DPoP required) silently left out.
pub(crate) fn check_names(
    present: &[(String, bool)],
    app_vars: &[&str],
) -> Result<(), ConfigError> {
    // A name given twice (a supervisor's environment can; glibc reads the
    // first, Kubernetes keeps the last) sets a setting two ways: refused
    // rather than guessed (found from outside: `MCP_OAUTH2_DPOP=required`
    // then `=off` started with DPoP required, the other order without).
    for (at, (name, _)) in present.iter().enumerate() {
        if present
            .get(..at)
            .is_some_and(|before| before.iter().any(|(n, _)| n == name))
        {
            return Err(ConfigError::new(
                "environment",
                format!("{name:?} is set more than once: give it once"),
            ));
        }
    }
    for (name, utf8) in present {
        if let Some(var) = ENV_VARS.iter().find(|v| v.name == name) {
            if !utf8 {
                return Err(env_error(var.name, "is not valid UTF-8"));
            }
            continue;
        }
        // A variable the application names is the application's to read.
        if app_vars.contains(&name.as_str()) {
            continue;
        }
        if let Some(var) = SERVER_ENV_VARIABLES.iter().find(|v| **v == name.as_str()) {
            // The server's documented variables are read with
            // `std::env::var`, which gives a non-UTF-8 value as unset: the
            // server would fall back to its default (listen on the default
            // address) instead of what the operator set.
            if !utf8 {
                return Err(ConfigError::new(var, "is not valid UTF-8"));
            }
            continue;
        }
        let known = ENV_VARS
            .iter()
            .map(|v| v.name)
            .chain(SERVER_ENV_VARIABLES.iter().copied())
            .chain(app_vars.iter().copied());
        let upper = name.to_ascii_uppercase();
        // A listen address by another name is the server's `BIND` (found
        // from outside: `MCP_OAUTH2_PORT` was told `MCP_OAUTH2_DPOP`, one
        // edit closer).
        const ADDRESS_WORDS: [&str; 9] = [
            "PORT",
            "HOST",
            "ADDR",
            "ADDRESS",
            "LISTEN",
            "LISTEN_ADDR",
            "LISTEN_ADDRESS",
            "HTTP_PORT",
            "SERVER_PORT",
        ];
        let address = upper
            .strip_prefix("MCP_OAUTH2_")
            .is_some_and(|rest| ADDRESS_WORDS.contains(&rest))
            && SERVER_ENV_VARIABLES.contains(&"MCP_OAUTH2_BIND");
        // A file-path spelling of one of our variables (`*_FILE`, the
        // Docker secrets convention): no variable takes a path, and the
        // hint says so rather than only naming the variable (found from
        // outside: read as advice to put the secret in the environment
        // with no word on files).
        let file_of = upper
            .strip_suffix("_FILE")
            .and_then(|stem| known.clone().find(|k| *k == stem));
        // How far a name may be from ours to be hinted: a third of the
        // part after the prefix, one to three edits (found from outside:
        // `MCP_OAUTH2_FOO` was told `MCP_OAUTH2_DPOP`, three edits from
        // a three-letter word).
        let reach = upper
            .strip_prefix("MCP_OAUTH2_")
            .map_or(3, |rest| (rest.len() / 3).clamp(1, 3));
        let hint = if address {
            " (did you mean MCP_OAUTH2_BIND? it takes the address and port to listen on, such as 127.0.0.1:8080)".to_owned()
        } else if let Some(stem) = file_of {
            format!(
                " (no variable of this server takes a file: set {stem} to the value itself, \
                 for instance read from the file by the script that starts the server)"
            )
        } else {
            // Ties broken by the plain edit distance: `MCP_OAUTH2_DPOP_NONCES`
            // means `MCP_OAUTH2_DPOP_NONCE` more than `MCP_OAUTH2_DPOP` (both
            // prefixes of it; found from outside).
            known
                .map(|k| (resemblance(&upper, k), k))
                .filter(|(d, _)| *d <= reach)
                .min_by_key(|(d, k)| (*d, lookalike_distance(&upper, k)))
                .map(|(_, k)| format!(" (did you mean {k}?)"))
                .unwrap_or_default()
        };
        // The name is the sender's text only in the sense that the
        // operator set it: printed escaped all the same.
        return Err(ConfigError::new(
            "environment",
            format!(
                "{name:?} is set but is not a variable this server reads{hint}; a misspelled \
                 variable would leave its setting out, so it is refused: unset it, or name it \
                 among the application's own variables (AuthConfigBuilder::from_env_allowing)"
            ),
        ));
    }
    Ok(())
}

/// How far `name` is from the known variable `known`, for the hint: one
/// when either extends the other (`MCP_OAUTH2_DPOP_MODE` for
/// `MCP_OAUTH2_DPOP`), else their distance as [`is_ours`] counts it (a
/// swap of two neighbours one edit, a lookalike letter none).
fn resemblance(name: &str, known: &str) -> usize {
    let (short, long) = if name.len() <= known.len() {
        (name, known)
    } else {
        (known, name)
    };
    if short.len() > PREFIX.len() && long.starts_with(short) {
        return 1;
    }
    lookalike_distance(name, known)
}

impl AuthConfigBuilder {
    /// A builder filled from the environment (see [`AuthConfig::from_env`]),
    /// to adjust before [`build`](Self::build). Its errors, and those of
    /// its `build`, name the variable (a setting no variable feeds keeps
    /// its builder name).
    ///
    /// Every `MCP_OAUTH2_*` variable set must be one this crate reads: a
    /// misspelled one (`MCP_OAUTH2_REQUIRED_SCOPE`) is an error (field
    /// `environment`, the message naming it and the variable it resembles),
    /// as is a value that is not UTF-8 (naming its variable), instead of
    /// being read as unset. The documented server variables
    /// ([`SERVER_ENV_VARIABLES`](crate::SERVER_ENV_VARIABLES):
    /// `MCP_OAUTH2_BIND`, the log format, the server timeouts and connection limit, the
    /// downstream API) are always allowed. An application with other
    /// `MCP_OAUTH2_*` variables of its own names them with
    /// [`from_env_allowing`](Self::from_env_allowing).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_allowing(std::iter::empty::<&str>())
    }

    /// [`from_env`](Self::from_env) for an application that reads
    /// `MCP_OAUTH2_*` variables of its own (`app_vars`, such as the
    /// application's `MCP_OAUTH2_API_KEY`): those are allowed beside the
    /// crate's and the documented server variables
    /// ([`SERVER_ENV_VARIABLES`](crate::SERVER_ENV_VARIABLES): `MCP_OAUTH2_BIND`,
    /// ...), any other is refused.
    pub fn from_env_allowing<I, S>(app_vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let app_vars: Vec<S> = app_vars.into_iter().collect();
        let app_vars: Vec<&str> = app_vars.iter().map(AsRef::as_ref).collect();
        check_names(&prefixed_process_vars(), &app_vars)?;
        Self::from_env_vars(|name| std::env::var(name).ok())
    }

    /// Reads every row of [`ENV_VARS`] through `get`.
    pub(crate) fn from_env_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut staged = Staged::default();
        // The DPoP proof settings given a value (not blank).
        let mut dpop_settings: Vec<&'static str> = Vec::new();
        // Every variable given a value (not blank).
        let mut given: Vec<&'static str> = Vec::new();
        for var in ENV_VARS {
            // An empty or blank value is unset, for every variable: its
            // default stays (found from outside: some variables read it so
            // and others refused it, and the README said neither).
            match get(var.name).filter(|raw| !raw.trim().is_empty()) {
                Some(raw) => {
                    given.push(var.name);
                    if DPOP_PROOF_VARIABLES.contains(&var.name) && !raw.trim().is_empty() {
                        dpop_settings.push(var.name);
                    }
                    var.parse
                        .read(raw, &mut staged)
                        .map_err(|m| env_error(var.name, m))?;
                }
                None if var.required => return Err(env_error(var.name, "is not set (or empty)")),
                None => {}
            }
        }
        // Settings of DPoP proofs with DPoP off contradict it: the operator
        // meant DPoP to be checked one way, and it would not be checked at all.
        if staged.builder.dpop.mode == DpopMode::Off
            && let Some(name) = dpop_settings.first()
        {
            return Err(env_error(
                name,
                "is set but MCP_OAUTH2_DPOP is off (DPoP proofs are not read): \
                 unset it, or set MCP_OAUTH2_DPOP to allowed or required",
            ));
        }
        // Other settings that would do nothing, refused as the DPoP ones
        // are (found from outside: these started silently, the operator
        // believing them in force).
        if !staged.builder.sessions.enabled
            && let Some(name) = SESSION_VARIABLES.iter().find(|n| given.contains(n))
        {
            return Err(env_error(
                name,
                "is set but MCP_OAUTH2_STATELESS_ONLY=1 turns legacy sessions off \
                 (no session exists): unset it, or unset MCP_OAUTH2_STATELESS_ONLY",
            ));
        }
        if given.contains(&"MCP_OAUTH2_FORWARDED_HEADER")
            && !given.contains(&"MCP_OAUTH2_TRUSTED_PROXIES")
        {
            return Err(env_error(
                "MCP_OAUTH2_FORWARDED_HEADER",
                "is set without MCP_OAUTH2_TRUSTED_PROXIES (the field is read only \
                 from a trusted proxy): name the proxies, or unset it",
            ));
        }
        let Staged {
            mut builder,
            introspection_uri,
            client_id,
            client_secret,
            tenants,
            tenant_claim,
            redis_prefix,
            nonce_secret,
        } = staged;
        if redis_prefix.is_some() && builder.shared_store.is_none() {
            return Err(env_error(
                "MCP_OAUTH2_REDIS_PREFIX",
                "is set without MCP_OAUTH2_REDIS_URL (it prefixes that Redis's keys)",
            ));
        }
        nonce_secret_from_env(&mut builder, nonce_secret)?;
        tenant_from_env(&mut builder, tenants, tenant_claim)?;
        match (client_id, introspection_uri) {
            (Some(id), uri) => {
                let mut settings =
                    IntrospectionSettings::new(id, client_secret.unwrap_or_default());
                if let Some(url) = uri {
                    settings = settings.endpoint(url);
                }
                builder.introspection = Some(settings);
            }
            (None, Some(_)) => {
                return Err(env_error(
                    "MCP_OAUTH2_CLIENT_ID",
                    "is required with MCP_OAUTH2_INTROSPECTION_URI",
                ));
            }
            (None, None) if client_secret.is_some_and(|s| !s.is_empty()) => {
                return Err(env_error(
                    "MCP_OAUTH2_CLIENT_SECRET",
                    "is set without MCP_OAUTH2_CLIENT_ID (introspection needs both)",
                ));
            }
            (None, None) => {}
        }
        builder.from_env = true;
        Ok(builder)
    }
}

/// `MCP_OAUTH2_DPOP_NONCE_SECRET`: the nonce secret, when nonces are
/// demanded. Replicas sharing a Redis (`MCP_OAUTH2_REDIS_URL`) must share
/// it too: with a secret drawn per process, a nonce one replica issued is
/// refused by the others (`use_dpop_nonce` again), and a client behind a
/// load balancer may never get through; so demanding nonces there without
/// the secret is refused. The secret is never repeated in an error.
fn nonce_secret_from_env(
    builder: &mut AuthConfigBuilder,
    secret: Option<String>,
) -> Result<(), ConfigError> {
    const NAME: &str = "MCP_OAUTH2_DPOP_NONCE_SECRET";
    match secret {
        Some(_) if !builder.dpop.nonce => Err(env_error(
            NAME,
            "is set but MCP_OAUTH2_DPOP_NONCE is off (no nonce is issued): \
             unset it, or set MCP_OAUTH2_DPOP_NONCE=1",
        )),
        Some(secret) => {
            builder.dpop.nonce_secret = Some(std::sync::Arc::from(secret.as_bytes()));
            Ok(())
        }
        None if builder.dpop.nonce && builder.shared_store.is_some() => Err(env_error(
            NAME,
            "is required with MCP_OAUTH2_DPOP_NONCE=1 and MCP_OAUTH2_REDIS_URL: \
             replicas must share it, or each refuses the nonces of the others",
        )),
        None => Ok(()),
    }
}

/// Tenant mode: the one issuer holding `{tenant}` (or, with
/// `MCP_OAUTH2_TENANTS` set, the only issuer) becomes a
/// [`TenantIssuer`](super::TenantIssuer) with the allowlist, the tenant claim
/// and the key-set URL read from the environment.
fn tenant_from_env(
    builder: &mut AuthConfigBuilder,
    tenants: Option<Vec<String>>,
    claim: Option<String>,
) -> Result<(), ConfigError> {
    use super::tenant::TENANT_PLACEHOLDER;
    let templates = builder
        .issuers
        .iter()
        .filter(|i| i.contains(TENANT_PLACEHOLDER))
        .count();
    let position = match templates {
        0 if tenants.is_none() && claim.is_none() => return Ok(()),
        0 if builder.issuers.len() == 1 => 0,
        0 => {
            return Err(env_error(
                "MCP_OAUTH2_TENANTS",
                "needs exactly one issuer, or one issuer with {tenant}",
            ));
        }
        1 => builder
            .issuers
            .iter()
            .position(|i| i.contains(TENANT_PLACEHOLDER))
            .unwrap_or_default(),
        _ => {
            return Err(env_error(
                "MCP_OAUTH2_ISSUER",
                "at most one issuer may hold {tenant}",
            ));
        }
    };
    let template = builder.issuers.remove(position);
    let mut issuer = super::TenantIssuer::new(template);
    // A bad template was written in MCP_OAUTH2_ISSUER: name that variable.
    issuer
        .validate_template(builder.allow_insecure_loopback)
        .map_err(|e| env_error("MCP_OAUTH2_ISSUER", e.for_env().message()))?;
    match tenants.as_deref() {
        None => {}
        Some([any]) if any == "*" => issuer = issuer.allow_any_tenant_unrestricted(),
        Some(list) => issuer = issuer.tenants(list.iter().cloned()),
    }
    if let Some(claim) = claim {
        issuer = issuer.tenant_claim(claim);
    }
    // `MCP_OAUTH2_JWKS_URI` (only accepted with one issuer) is the template's.
    if let Some(index) = builder.jwks_uris.iter().position(|(i, _)| i.is_none()) {
        let (_, uri) = builder.jwks_uris.remove(index);
        issuer = issuer.jwks_uri(uri);
    }
    builder.tenant_issuers.push(issuer);
    Ok(())
}

impl AuthConfig {
    /// [`AuthConfig::from_env`] with the variables read through `get` (the
    /// tests' map instead of the process environment).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn from_env_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        AuthConfigBuilder::from_env_vars(get)?.build()
    }
}

/// The `from_env` documentation table, generated from [`ENV_VARS`]; the
/// test `from_env_doc_table_is_generated_from_the_env_table` keeps
/// `env_table.md` equal to it.
#[cfg(test)]
pub(crate) fn markdown_table() -> String {
    let mut out = String::from(
        "| variable | builder setting | value | default | meaning |\n|---|---|---|---|---|\n",
    );
    for v in ENV_VARS {
        out.push_str(&format!(
            "| `{}` | [`{}`](AuthConfigBuilder::{}) | {} | {} | {} |\n",
            v.name,
            v.setting,
            v.setting,
            v.parse.describe(),
            v.default,
            v.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    /// `AuthConfig::from_env` over a map instead of the process environment.
    fn from_map(vars: &HashMap<&str, String>) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_env_vars(|k| vars.get(k).cloned())
    }

    // An empty or blank value is unset for every variable: the default
    // stays (found from outside: some variables refused it, others read it
    // so). A required one is then missing.
    #[test]
    fn an_empty_value_is_unset_for_every_variable() {
        let base = from_map(&minimal()).unwrap();
        for var in ENV_VARS {
            for empty in ["", "  "] {
                let mut vars = minimal();
                vars.insert(var.name, empty.to_owned());
                match from_map(&vars) {
                    Ok(c) => {
                        assert!(!var.required, "{}", var.name);
                        assert_eq!(format!("{c:?}"), format!("{base:?}"), "{}", var.name);
                    }
                    Err(e) => {
                        assert!(var.required, "{}: {e}", var.name);
                        assert!(e.message().contains("is not set"), "{e}");
                    }
                }
            }
        }
    }

    // A URL that does not parse is repeated in the error without what may
    // be its password (found from outside: `"http://u:secret@[::1" is not
    // a URL` at start-up), for every URL variable.
    #[test]
    fn an_unparsable_url_is_repeated_without_its_password() {
        for name in [
            "MCP_OAUTH2_ISSUER",
            "MCP_OAUTH2_RESOURCE",
            "MCP_OAUTH2_JWKS_URI",
            "MCP_OAUTH2_ALLOWED_ORIGINS",
        ] {
            let mut vars = minimal();
            vars.insert(name, "http://user:PW-SECRET-1@[::1".to_owned());
            let err = from_map(&vars).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains("PW-SECRET-1"), "{name}: {text}");
            assert!(text.contains("[userinfo]@[::1"), "{name}: {text}");
        }
    }

    // Keywords are read in any case and with blanks around them, as
    // `MCP_OAUTH2_DPOP`'s always were: `off` as `OFF` or ` Off `.
    #[test]
    fn keywords_are_read_in_any_case() {
        for off in ["off", "OFF", " Off "] {
            let mut vars = minimal();
            vars.insert("MCP_OAUTH2_AUDIT_REFUSAL_LIMIT", off.to_owned());
            let c = from_map(&vars).unwrap();
            assert!(c.audit_refusal_limit.is_none(), "{off:?}");
        }
        let c = from_map(&minimal()).unwrap();
        assert!(c.audit_refusal_limit.is_some(), "on by default");
    }

    fn minimal() -> HashMap<&'static str, String> {
        HashMap::from([
            ("MCP_OAUTH2_ISSUER", "https://as.example".to_owned()),
            ("MCP_OAUTH2_RESOURCE", "https://rs.example/mcp".to_owned()),
        ])
    }

    // The Cognito rule from the environment, for its one issuer; with a
    // template beside it (another issuer's clients trusted without any
    // audience, found from outside) refused, naming the variable.
    #[test]
    fn cognito_client_ids_need_one_issuer() {
        let mut vars = minimal();
        vars.insert("MCP_OAUTH2_COGNITO_CLIENT_IDS", " app-1 ,app-2".to_owned());
        let c = from_map(&vars).unwrap();
        assert_eq!(
            c.audience_rule,
            AudienceRule::CognitoClientIds(vec!["app-1".to_owned(), "app-2".to_owned()])
        );
        vars.insert(
            "MCP_OAUTH2_ISSUER",
            "https://as.example/{tenant}".to_owned(),
        );
        vars.insert("MCP_OAUTH2_TENANTS", "pool,partner".to_owned());
        let err = from_map(&vars).unwrap_err();
        assert_eq!(err.field(), "MCP_OAUTH2_COGNITO_CLIENT_IDS", "{err}");
    }

    // Settings found from outside to be taken without a word: extra
    // audiences beside the Cognito rule (they did nothing), a tenant
    // issuer's userinfo URL as an audience (another API's token passed), a
    // claim of who the user is as a scope claim or a tenant claim. Each is
    // refused naming its variable (and the other one it clashes with).
    #[test]
    fn settings_that_do_nothing_or_weaken_name_their_variables() {
        let cognito = [
            ("MCP_OAUTH2_COGNITO_CLIENT_IDS", "c1"),
            ("MCP_OAUTH2_ACCEPT_AUDIENCES", "api://x"),
        ];
        let org = [
            ("MCP_OAUTH2_TENANT_CLAIM", "org_id"),
            ("MCP_OAUTH2_TENANTS", "o1"),
        ];
        /// The variables set, the one the refusal names, words it says.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (
                &cognito,
                "MCP_OAUTH2_ACCEPT_AUDIENCES",
                &["MCP_OAUTH2_COGNITO_CLIENT_IDS"],
            ),
            (
                &[
                    org[0],
                    org[1],
                    ("MCP_OAUTH2_ACCEPT_AUDIENCES", "https://as.example/userinfo"),
                ],
                "MCP_OAUTH2_ACCEPT_AUDIENCES",
                &["userinfo"],
            ),
            (
                &[
                    ("MCP_OAUTH2_ISSUER", "https://as.example/t/{tenant}"),
                    ("MCP_OAUTH2_TENANTS", "a"),
                    (
                        "MCP_OAUTH2_ACCEPT_AUDIENCES",
                        "https://as.example/t/a/userinfo",
                    ),
                ],
                "MCP_OAUTH2_ACCEPT_AUDIENCES",
                &["https://as.example/t/{tenant}"],
            ),
            (
                &[(
                    "MCP_OAUTH2_ACCEPT_AUDIENCES",
                    "https://graph.microsoft.com/",
                )],
                "MCP_OAUTH2_ACCEPT_AUDIENCES",
                &["Microsoft Graph"],
            ),
            (
                &[("MCP_OAUTH2_SCOPE_CLAIMS", "scope,name")],
                "MCP_OAUTH2_SCOPE_CLAIMS",
                &["\"name\""],
            ),
            (
                &[
                    ("MCP_OAUTH2_TENANT_CLAIM", "customer"),
                    org[1],
                    ("MCP_OAUTH2_SCOPE_CLAIMS", "scope,customer"),
                ],
                "MCP_OAUTH2_SCOPE_CLAIMS",
                &["MCP_OAUTH2_TENANT_CLAIM"],
            ),
            (
                &[("MCP_OAUTH2_SCOPE_CLAIMS", "scope,gender")],
                "MCP_OAUTH2_SCOPE_CLAIMS",
                &["\"gender\""],
            ),
            (
                &[
                    ("MCP_OAUTH2_TENANT_CLAIM", "sub"),
                    ("MCP_OAUTH2_TENANTS", "*"),
                ],
                "MCP_OAUTH2_TENANT_CLAIM",
                &["\"sub\""],
            ),
            (
                &[
                    ("MCP_OAUTH2_TENANT_CLAIM", "permissions"),
                    ("MCP_OAUTH2_TENANTS", "acme"),
                ],
                "MCP_OAUTH2_TENANT_CLAIM",
                &["\"permissions\"", "grants"],
            ),
            (
                &[
                    ("MCP_OAUTH2_AUTHORIZATION_SERVERS", "https://as.example"),
                    (
                        "MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS",
                        "https://as.example",
                    ),
                ],
                "MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS",
                &["configured issuer"],
            ),
        ];
        for (set, variable, says) in cases {
            let mut vars = minimal();
            for (name, value) in *set {
                vars.insert(name, (*value).to_owned());
            }
            let err = from_map(&vars).unwrap_err();
            assert_eq!(err.field(), *variable, "{set:?}: {err}");
            for word in *says {
                assert!(err.to_string().contains(word), "{set:?}: {err}");
            }
        }
        // The controls: each setting alone, or with a claim of grants.
        for set in [
            &[cognito[0]][..],
            &[cognito[1]],
            &[
                org[0],
                org[1],
                ("MCP_OAUTH2_SCOPE_CLAIMS", "scope,permissions"),
            ],
        ] {
            let mut vars = minimal();
            for (name, value) in set {
                vars.insert(name, (*value).to_owned());
            }
            from_map(&vars).unwrap_or_else(|e| panic!("{set:?}: {e}"));
        }
    }

    // `AuthConfig::from_env`'s documentation: an empty flag is unset, so
    // a flag that defaults on stays on (and one that defaults off, off).
    // A Redis URL refused at start says why, never "store unavailable" and
    // never its password (found from outside).
    #[cfg(feature = "redis")]
    #[test]
    fn a_bad_redis_url_says_why() {
        for (url, says) in [
            ("rediss://:pw@127.0.0.1:6379", "TLS"),
            ("http://127.0.0.1:6379", "redis://"),
            ("redis://127.0.0.1:6379/-1", "database number"),
            (
                "redis://:pw@127.0.0.1:notaport",
                "redis://[user:password@]host",
            ),
        ] {
            let mut vars = minimal();
            vars.insert("MCP_OAUTH2_REDIS_URL", url.to_owned());
            let err = from_map(&vars).unwrap_err();
            assert_eq!(err.field(), "MCP_OAUTH2_REDIS_URL");
            assert!(err.message().contains(says), "{url}: {err}");
            assert!(!err.message().contains("unavailable"), "{err}");
            assert!(!err.message().contains(":pw@"), "{err}");
        }
    }

    // The throttle's limits are off by default, and `off` says so (found
    // from outside: refused).
    #[test]
    fn the_throttle_limits_take_off() {
        for off in ["off", " OFF ", ""] {
            let mut vars = minimal();
            vars.insert("MCP_OAUTH2_FAILED_AUTH_LIMIT", off.to_owned());
            vars.insert("MCP_OAUTH2_MISSING_AUTH_LIMIT", off.to_owned());
            let c = from_map(&vars).unwrap();
            assert!(
                c.throttle.failed.is_none() && c.throttle.missing.is_none(),
                "{off:?}"
            );
        }
        let mut vars = minimal();
        vars.insert("MCP_OAUTH2_FAILED_AUTH_LIMIT", "offf".to_owned());
        assert!(from_map(&vars).unwrap_err().message().contains("or off"));
    }

    #[test]
    fn an_empty_flag_keeps_its_default() {
        let mut vars = minimal();
        vars.insert("MCP_OAUTH2_CLOSE_STREAMS_AT_EXPIRY", " ".into());
        vars.insert("MCP_OAUTH2_STATELESS_ONLY", String::new());
        let c = from_map(&vars).unwrap();
        assert!(c.close_streams_at_expiry);
        assert!(c.sessions.enabled);
    }

    #[test]
    fn from_env_reads_every_variable() {
        let vars: HashMap<&str, String> = [
            ("MCP_OAUTH2_ISSUER", "http://127.0.0.1:1"),
            ("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:3/mcp"),
            ("MCP_OAUTH2_JWKS_URI", "http://127.0.0.1:1/jwks"),
            ("MCP_OAUTH2_REQUIRED_SCOPES", "a  b"),
            ("MCP_OAUTH2_SCOPES_SUPPORTED", "a b c"),
            ("MCP_OAUTH2_ALGORITHMS", "RS256, ES256"),
            ("MCP_OAUTH2_LEEWAY", "7"),
            ("MCP_OAUTH2_ACCEPT_JWT_TYP", "1"),
            (
                "MCP_OAUTH2_ACCEPT_AUDIENCES",
                " api://notes , 00000000-0000-0000-0000-000000000001",
            ),
            ("MCP_OAUTH2_SCOPE_CLAIMS", "scp, roles"),
            ("MCP_OAUTH2_REQUIRE_CLIENT_ID", "1"),
            // Blank (unset): the Cognito rule needs one plain issuer, and
            // this configuration has a template (read in
            // `cognito_client_ids_need_one_issuer`).
            ("MCP_OAUTH2_COGNITO_CLIENT_IDS", " "),
            ("MCP_OAUTH2_RESOURCE_NAME", "Notes"),
            ("MCP_OAUTH2_RESOURCE_DOCUMENTATION", "https://docs.example/"),
            ("MCP_OAUTH2_JWKS_CACHE_TTL", "10"),
            ("MCP_OAUTH2_JWKS_REFRESH_COOLDOWN", "2"),
            ("MCP_OAUTH2_JWKS_CACHE_MAX_TTL", "20"),
            ("MCP_OAUTH2_JWKS_MAX_STALE", "0"),
            ("MCP_OAUTH2_MAX_TOKEN_LIFETIME", "3600"),
            ("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1"),
            (
                "MCP_OAUTH2_INTROSPECTION_URI",
                "http://127.0.0.1:1/introspect",
            ),
            ("MCP_OAUTH2_CLIENT_ID", " rs "),
            ("MCP_OAUTH2_CLIENT_SECRET", "s3cret"),
            (
                "MCP_OAUTH2_ALLOWED_ORIGINS",
                "https://app.example, http://localhost:5173",
            ),
            ("MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL", "3"),
            ("MCP_OAUTH2_MAX_LISTENS_PER_PRINCIPAL", " 5 "),
            ("MCP_OAUTH2_MAX_PENDING_BODIES_PER_PRINCIPAL", "6"),
            ("MCP_OAUTH2_MAX_PENDING_BODIES", " 60 "),
            ("MCP_OAUTH2_MAX_PENDING_BODY_BYTES", "1048576"),
            ("MCP_OAUTH2_MAX_PENDING_BODY_BYTES_PER_PRINCIPAL", "65536"),
            ("MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES", "2097152"),
            ("MCP_OAUTH2_MAX_ANSWER_STREAMS_PER_PRINCIPAL", "12"),
            ("MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES_PER_PRINCIPAL", "131072"),
            ("MCP_OAUTH2_MAX_SESSIONS", "30"),
            ("MCP_OAUTH2_SESSION_IDLE_TIMEOUT", "40"),
            ("MCP_OAUTH2_VERIFY_TIMEOUT", "12"),
            ("MCP_OAUTH2_STATELESS_ONLY", "0"),
            ("MCP_OAUTH2_CLOSE_STREAMS_AT_EXPIRY", "0"),
            ("MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP", "0"),
            ("MCP_OAUTH2_DPOP", " Required "),
            ("MCP_OAUTH2_DPOP_NONCE", "1"),
            (
                "MCP_OAUTH2_DPOP_NONCE_SECRET",
                "nonce-secret-shared-by-every-replica",
            ),
            ("MCP_OAUTH2_DPOP_ALGORITHMS", "ES256, EdDSA"),
            ("MCP_OAUTH2_DPOP_MAX_AGE", "120"),
            ("MCP_OAUTH2_TENANTS", "acme, globex"),
            ("MCP_OAUTH2_TENANT_CLAIM", " org_id "),
            (
                "MCP_OAUTH2_AUTHORIZATION_SERVERS",
                "http://127.0.0.1:1, http://127.0.0.1:2",
            ),
            // :1 is the issuer; :2 is not, so it needs the opt-in.
            (
                "MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS",
                " http://127.0.0.1:2 ",
            ),
            ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "5/60"),
            ("MCP_OAUTH2_MISSING_AUTH_LIMIT", " 50 / 10 "),
            ("MCP_OAUTH2_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7"),
            ("MCP_OAUTH2_FORWARDED_HEADER", " Forwarded "),
            ("MCP_OAUTH2_AUDIT_REFUSAL_LIMIT", " 7 / 2 "),
            ("MCP_OAUTH2_METADATA_MAX_AGE", "60"),
            ("MCP_OAUTH2_REDIS_URL", "redis://:pw@127.0.0.1:6399/2"),
            ("MCP_OAUTH2_REDIS_PREFIX", " prod-eu: "),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        // The test sets every variable of the table.
        assert_eq!(vars.len(), ENV_VARS.len());
        let c = from_map(&vars).unwrap();
        let s = Duration::from_secs;
        // One issuer with MCP_OAUTH2_TENANTS: a tenant issuer without a
        // placeholder (the tenant is the claim), with the key-set URL.
        assert!(c.issuers().is_empty());
        let t = c.tenant_issuers().first().unwrap();
        assert_eq!(t.template(), "http://127.0.0.1:1");
        assert_eq!(t.allowed_tenants().unwrap(), ["acme", "globex"]);
        assert_eq!(t.claim(), Some("org_id"));
        assert_eq!(t.jwks_uri.as_deref(), Some("http://127.0.0.1:1/jwks"));
        assert_eq!(
            c.authorization_servers(),
            ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert_eq!(c.required_scopes(), ["a", "b"]);
        assert_eq!(c.scopes_supported, ["a", "b", "c"]);
        assert_eq!(c.algorithms, [Algorithm::RS256, Algorithm::ES256]);
        assert_eq!(c.leeway, s(7));
        assert_eq!(c.typ_policy, TypPolicy::AllowJwt);
        assert_eq!(c.resource_name.as_deref(), Some("Notes"));
        assert!(c.resource_documentation.is_some());
        assert_eq!(c.jwks_cache_ttl, s(10));
        assert_eq!(c.jwks_refresh_cooldown, s(2));
        assert_eq!(c.jwks_cache_max_ttl, s(20));
        assert_eq!(c.jwks_max_stale, s(0));
        assert_eq!(c.max_token_lifetime, s(3600));
        assert_eq!(c.verify_timeout, s(12));
        assert!(c.allows_insecure_loopback());
        let i = c.introspection.as_ref().unwrap();
        assert_eq!(i.client_id, "rs");
        assert_eq!(i.client_secret.secret(), "s3cret");
        assert!(i.endpoint.is_some());
        assert_eq!(c.allowed_origins.len(), 3);
        assert_eq!(c.sessions.per_principal, 3);
        assert_eq!(c.max_listens_per_principal, 5);
        assert_eq!(c.max_pending_bodies_per_principal, 6);
        assert_eq!(c.max_pending_bodies, 60);
        assert_eq!(c.max_pending_body_bytes, 1_048_576);
        assert_eq!(c.max_pending_body_bytes_per_principal, 65_536);
        assert_eq!(c.max_unsent_answer_bytes, 2_097_152);
        assert_eq!(c.max_answer_streams_per_principal, 12);
        assert_eq!(
            c.extra_audiences,
            ["api://notes", "00000000-0000-0000-0000-000000000001"]
        );
        assert_eq!(
            c.scope_claims.as_deref(),
            Some(&["scp".to_owned(), "roles".to_owned()][..])
        );
        assert!(c.require_client_id);
        assert_eq!(c.audience_rule, AudienceRule::Resource);
        assert_eq!(c.max_unsent_answer_bytes_per_principal, 131_072);
        assert_eq!(c.sessions.total, 30);
        assert_eq!(c.sessions.idle_timeout, s(40));
        assert!(c.sessions.enabled);
        assert!(!c.close_streams_at_expiry);
        assert!(!c.hold_streams_for_step_up);
        assert_eq!(c.dpop.mode, crate::config::DpopMode::Required);
        assert!(c.dpop.nonce);
        assert_eq!(
            c.dpop.nonce_secret.as_deref(),
            Some(&b"nonce-secret-shared-by-every-replica"[..])
        );
        assert!(!format!("{:?}", c.dpop).contains("nonce-secret"));
        assert_eq!(c.dpop.algorithms, [Algorithm::ES256, Algorithm::EdDSA]);
        assert_eq!(c.dpop.max_age, s(120));
        let t = &c.throttle;
        assert_eq!(t.failed.map(|l| (l.count, l.window)), Some((5, s(60))));
        assert_eq!(t.missing.map(|l| (l.count, l.window)), Some((50, s(10))));
        assert_eq!(t.trusted_proxies.len(), 2);
        assert_eq!(
            t.forwarded_header,
            crate::config::ForwardedHeader::Forwarded
        );
        assert_eq!(c.metadata_max_age, s(60));
        assert_eq!(
            c.audit_refusal_limit.map(|l| (l.count, l.window)),
            Some((7, s(2)))
        );
        let store = format!("{:?}", c.shared_store.as_ref().unwrap());
        assert!(
            store.contains("RedisStore") && store.contains("6399"),
            "{store}"
        );
        assert!(!store.contains("pw"), "no password in Debug: {store}");
        assert!(store.contains(r#"prefix: "prod-eu:""#), "{store}");
    }

    #[test]
    fn unset_and_empty_optional_variables_keep_the_defaults() {
        let c = from_map(&minimal()).unwrap();
        let d = AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://rs.example/mcp")
            .build()
            .unwrap();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
        let mut vars = minimal();
        for v in ENV_VARS.iter().filter(|v| !v.required) {
            if matches!(v.parse, Parse::Flag(_) | Parse::Text(_) | Parse::Url(_)) {
                vars.insert(v.name, String::new());
            }
        }
        vars.remove("MCP_OAUTH2_CLIENT_SECRET");
        let c = from_map(&vars).unwrap();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
        // A blank name is no name (it was published as "   ").
        vars.insert("MCP_OAUTH2_RESOURCE_NAME", "   ".to_owned());
        let c = from_map(&vars).unwrap();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    // RFC 7662 section 2.1: a client id alone turns introspection on
    // without authenticating to the endpoint; refused, naming the secret.
    // With a `{tenant}` template as the only issuer, the endpoint cannot be
    // discovered: refused, naming the variable that gives it.
    #[test]
    fn introspection_needs_a_client_secret() {
        let mut vars = minimal();
        vars.insert("MCP_OAUTH2_CLIENT_ID", "rs".to_owned());
        let err = from_map(&vars).unwrap_err();
        assert_eq!(err.field(), "MCP_OAUTH2_CLIENT_SECRET", "{err}");
        vars.insert("MCP_OAUTH2_CLIENT_SECRET", "s3cret".to_owned());
        vars.insert(
            "MCP_OAUTH2_ISSUER",
            "https://as.example/{tenant}".to_owned(),
        );
        vars.insert("MCP_OAUTH2_TENANTS", "acme".to_owned());
        let err = from_map(&vars).unwrap_err();
        assert_eq!(err.field(), "MCP_OAUTH2_INTROSPECTION_URI", "{err}");
        vars.insert(
            "MCP_OAUTH2_INTROSPECTION_URI",
            "https://as.example/introspect".to_owned(),
        );
        let c = from_map(&vars).unwrap();
        assert!(crate::verify::IntrospectionVerifier::from_config(&c).is_ok());
    }

    /// A bad value for each variable, with the variables it needs beside it.
    /// Every `ConfigError` of a `from_env` build names the variable, whether
    /// the text cannot be read or the builder refuses the value.
    #[test]
    fn every_bad_value_names_its_variable() {
        /// A variable, a bad value, and the variables set beside it.
        type Case = (
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Case] = &[
            ("MCP_OAUTH2_ISSUER", "", &[]),
            ("MCP_OAUTH2_ISSUER", " , ", &[]),
            ("MCP_OAUTH2_ISSUER", "http://as.example", &[]),
            ("MCP_OAUTH2_ISSUER", "https://as.example?x=1", &[]),
            // User information would be published in the metadata.
            ("MCP_OAUTH2_ISSUER", "https://user:pw@as.example", &[]),
            ("MCP_OAUTH2_ISSUER", "https://user@as.example", &[]),
            (
                "MCP_OAUTH2_JWKS_URI",
                "https://user:pw@as.example/jwks",
                &[],
            ),
            ("MCP_OAUTH2_JWKS_URI", "https://as.example/jwks#keys", &[]),
            (
                "MCP_OAUTH2_INTROSPECTION_URI",
                "https://as.example/introspect#x",
                &[("MCP_OAUTH2_CLIENT_ID", "c")],
            ),
            (
                "MCP_OAUTH2_INTROSPECTION_URI",
                "https://u:p@as.example/introspect",
                &[("MCP_OAUTH2_CLIENT_ID", "c")],
            ),
            (
                "MCP_OAUTH2_RESOURCE_DOCUMENTATION",
                "https://u:p@docs.example/",
                &[],
            ),
            (
                "MCP_OAUTH2_AUTHORIZATION_SERVERS",
                "https://as.example#x",
                &[],
            ),
            (
                "MCP_OAUTH2_ISSUER",
                "https://u@h.example/{tenant}",
                &[("MCP_OAUTH2_TENANTS", "a")],
            ),
            // Duplicates are refused in every list, as scopes and issuers are.
            ("MCP_OAUTH2_ALGORITHMS", "RS256, ES256, RS256", &[]),
            ("MCP_OAUTH2_DPOP_ALGORITHMS", "ES256,ES256", &[]),
            (
                "MCP_OAUTH2_ALLOWED_ORIGINS",
                "https://a.example, HTTPS://A.example:443",
                &[],
            ),
            ("MCP_OAUTH2_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.1/32", &[]),
            ("MCP_OAUTH2_RESOURCE", "http://rs.example/mcp", &[]),
            ("MCP_OAUTH2_RESOURCE", "https://rs.example/mcp#f", &[]),
            ("MCP_OAUTH2_RESOURCE", "", &[]),
            ("MCP_OAUTH2_RESOURCE", "garbage", &[]),
            ("MCP_OAUTH2_RESOURCE", "https://rs.example/:x", &[]),
            ("MCP_OAUTH2_RESOURCE", "https://rs.example/a/*x", &[]),
            ("MCP_OAUTH2_JWKS_URI", "http://as.example/jwks", &[]),
            ("MCP_OAUTH2_JWKS_URI", "not a url", &[]),
            (
                "MCP_OAUTH2_JWKS_URI",
                "https://as.example/jwks",
                &[("MCP_OAUTH2_ISSUER", "https://a.example,https://b.example")],
            ),
            ("MCP_OAUTH2_REQUIRED_SCOPES", "offline_access", &[]),
            ("MCP_OAUTH2_ACCEPT_AUDIENCES", "api://a b", &[]),
            (
                "MCP_OAUTH2_ISSUER",
                "https://login.microsoftonline.com/common/v2.0",
                &[],
            ),
            ("MCP_OAUTH2_ACCEPT_AUDIENCES", "api://a,,api://b", &[]),
            ("MCP_OAUTH2_SCOPE_CLAIMS", "scp,a..b", &[]),
            ("MCP_OAUTH2_SCOPE_CLAIMS", "scp,,roles", &[]),
            ("MCP_OAUTH2_REQUIRE_CLIENT_ID", "yes", &[]),
            ("MCP_OAUTH2_COGNITO_CLIENT_IDS", "a,,b", &[]),
            ("MCP_OAUTH2_REQUIRED_SCOPES", "a\"b", &[]),
            ("MCP_OAUTH2_SCOPES_SUPPORTED", "offline_access", &[]),
            ("MCP_OAUTH2_SCOPES_SUPPORTED", "a\\b", &[]),
            ("MCP_OAUTH2_ALGORITHMS", "RS256,XYZ", &[]),
            ("MCP_OAUTH2_ALGORITHMS", "HS256", &[]),
            ("MCP_OAUTH2_ALGORITHMS", " , ", &[]),
            // An empty item is refused, not dropped (found from outside:
            // `,` read as no trusted proxy beside a forwarded header).
            ("MCP_OAUTH2_ALGORITHMS", "RS256,,ES256", &[]),
            ("MCP_OAUTH2_ISSUER", "https://as.example,", &[]),
            (
                "MCP_OAUTH2_TRUSTED_PROXIES",
                ",",
                &[("MCP_OAUTH2_FORWARDED_HEADER", "forwarded")],
            ),
            ("MCP_OAUTH2_ALLOWED_ORIGINS", " , ", &[]),
            ("MCP_OAUTH2_LEEWAY", "soon", &[]),
            ("MCP_OAUTH2_LEEWAY", "301", &[]),
            ("MCP_OAUTH2_ACCEPT_JWT_TYP", "yes", &[]),
            ("MCP_OAUTH2_RESOURCE_DOCUMENTATION", "not a url", &[]),
            (
                "MCP_OAUTH2_RESOURCE_DOCUMENTATION",
                "http://docs.example.com/x",
                &[],
            ),
            (
                "MCP_OAUTH2_RESOURCE_DOCUMENTATION",
                "javascript:alert(1)",
                &[],
            ),
            (
                "MCP_OAUTH2_RESOURCE_DOCUMENTATION",
                "data:text/html,hi",
                &[],
            ),
            ("MCP_OAUTH2_RESOURCE_DOCUMENTATION", "ftp://x/y", &[]),
            ("MCP_OAUTH2_ISSUER", "HTTPS://as.example", &[]),
            ("MCP_OAUTH2_METADATA_MAX_AGE", "18446744073709551615", &[]),
            ("MCP_OAUTH2_METADATA_MAX_AGE", "2147483649", &[]),
            ("MCP_OAUTH2_JWKS_CACHE_TTL", "-1", &[]),
            ("MCP_OAUTH2_JWKS_CACHE_TTL", "0", &[]),
            ("MCP_OAUTH2_JWKS_REFRESH_COOLDOWN", "0", &[]),
            ("MCP_OAUTH2_JWKS_REFRESH_COOLDOWN", "86401", &[]),
            ("MCP_OAUTH2_JWKS_CACHE_MAX_TTL", "0", &[]),
            ("MCP_OAUTH2_JWKS_CACHE_MAX_TTL", "86401", &[]),
            ("MCP_OAUTH2_JWKS_CACHE_MAX_TTL", "1h", &[]),
            ("MCP_OAUTH2_JWKS_MAX_STALE", "-5", &[]),
            ("MCP_OAUTH2_JWKS_MAX_STALE", "86401", &[]),
            (
                "MCP_OAUTH2_JWKS_CACHE_MAX_TTL",
                "60",
                &[("MCP_OAUTH2_JWKS_CACHE_TTL", "600")],
            ),
            ("MCP_OAUTH2_JWKS_MAX_STALE", "ten", &[]),
            ("MCP_OAUTH2_MAX_TOKEN_LIFETIME", "0", &[]),
            ("MCP_OAUTH2_MAX_TOKEN_LIFETIME", "1.5", &[]),
            ("MCP_OAUTH2_MAX_TOKEN_LIFETIME", "31622401", &[]),
            ("MCP_OAUTH2_MAX_TOKEN_LIFETIME", "99999999999999999999", &[]),
            ("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "true", &[]),
            (
                "MCP_OAUTH2_INTROSPECTION_URI",
                "::not a url",
                &[("MCP_OAUTH2_CLIENT_ID", "rs")],
            ),
            (
                "MCP_OAUTH2_INTROSPECTION_URI",
                "http://as.example/introspect",
                &[("MCP_OAUTH2_CLIENT_ID", "rs")],
            ),
            (
                "MCP_OAUTH2_CLIENT_ID",
                " ",
                &[("MCP_OAUTH2_INTROSPECTION_URI", "https://as.example/i")],
            ),
            ("MCP_OAUTH2_CLIENT_SECRET", "s3cret", &[]),
            // RFC 7662 section 2.1: a blank secret is no authentication.
            (
                "MCP_OAUTH2_CLIENT_SECRET",
                "  ",
                &[("MCP_OAUTH2_CLIENT_ID", "rs")],
            ),
            (
                "MCP_OAUTH2_ALLOWED_ORIGINS",
                "https://app.example/path",
                &[],
            ),
            ("MCP_OAUTH2_ALLOWED_ORIGINS", "null", &[]),
            ("MCP_OAUTH2_ALLOWED_ORIGINS", "http://app.example", &[]),
            ("MCP_OAUTH2_ALLOWED_ORIGINS", "https://*.example", &[]),
            ("MCP_OAUTH2_ALLOWED_ORIGINS", "https://app.example:*", &[]),
            (
                "MCP_OAUTH2_ALLOWED_ORIGINS",
                "https://app.example, http://localhost:5173",
                &[],
            ),
            ("MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL", "0", &[]),
            (
                "MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL",
                "6",
                &[("MCP_OAUTH2_MAX_SESSIONS", "5")],
            ),
            ("MCP_OAUTH2_MAX_LISTENS_PER_PRINCIPAL", "0", &[]),
            ("MCP_OAUTH2_MAX_LISTENS_PER_PRINCIPAL", "-1", &[]),
            ("MCP_OAUTH2_MAX_PENDING_BODIES_PER_PRINCIPAL", "0", &[]),
            ("MCP_OAUTH2_MAX_PENDING_BODIES_PER_PRINCIPAL", "x", &[]),
            (
                "MCP_OAUTH2_MAX_PENDING_BODIES_PER_PRINCIPAL",
                "61",
                &[("MCP_OAUTH2_MAX_PENDING_BODIES", "60")],
            ),
            ("MCP_OAUTH2_MAX_PENDING_BODIES", "0", &[]),
            ("MCP_OAUTH2_MAX_PENDING_BODIES", "-5", &[]),
            ("MCP_OAUTH2_MAX_PENDING_BODY_BYTES", "0", &[]),
            ("MCP_OAUTH2_MAX_PENDING_BODY_BYTES", "1 MiB", &[]),
            ("MCP_OAUTH2_MAX_PENDING_BODY_BYTES_PER_PRINCIPAL", "0", &[]),
            (
                "MCP_OAUTH2_MAX_PENDING_BODY_BYTES_PER_PRINCIPAL",
                "32M",
                &[],
            ),
            ("MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES", "0", &[]),
            ("MCP_OAUTH2_MAX_ANSWER_STREAMS_PER_PRINCIPAL", "0", &[]),
            ("MCP_OAUTH2_MAX_ANSWER_STREAMS_PER_PRINCIPAL", "lots", &[]),
            ("MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES", "1 GiB", &[]),
            ("MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES_PER_PRINCIPAL", "0", &[]),
            (
                "MCP_OAUTH2_MAX_UNSENT_ANSWER_BYTES_PER_PRINCIPAL",
                "-1",
                &[],
            ),
            ("MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL", "many", &[]),
            ("MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL", "20000", &[]),
            ("MCP_OAUTH2_MAX_SESSIONS", "0", &[]),
            ("MCP_OAUTH2_MAX_SESSIONS", "x", &[]),
            ("MCP_OAUTH2_SESSION_IDLE_TIMEOUT", "0", &[]),
            ("MCP_OAUTH2_VERIFY_TIMEOUT", "0", &[]),
            ("MCP_OAUTH2_VERIFY_TIMEOUT", "301", &[]),
            ("MCP_OAUTH2_VERIFY_TIMEOUT", "1.5", &[]),
            ("MCP_OAUTH2_SESSION_IDLE_TIMEOUT", "5m", &[]),
            ("MCP_OAUTH2_SESSION_IDLE_TIMEOUT", "86401", &[]),
            (
                "MCP_OAUTH2_SESSION_IDLE_TIMEOUT",
                "18446744073709551615",
                &[],
            ),
            ("MCP_OAUTH2_STATELESS_ONLY", "2", &[]),
            ("MCP_OAUTH2_CLOSE_STREAMS_AT_EXPIRY", "yes", &[]),
            ("MCP_OAUTH2_HOLD_STREAMS_FOR_STEP_UP", "no", &[]),
            ("MCP_OAUTH2_DPOP", "sometimes", &[]),
            ("MCP_OAUTH2_DPOP_NONCE", "yes", &[]),
            ("MCP_OAUTH2_DPOP_ALGORITHMS", "HS256", &[]),
            ("MCP_OAUTH2_DPOP_ALGORITHMS", " , ", &[]),
            ("MCP_OAUTH2_DPOP_MAX_AGE", "301", &[]),
            ("MCP_OAUTH2_DPOP_MAX_AGE", "99999999999999999999", &[]),
            ("MCP_OAUTH2_DPOP_MAX_AGE", "0", &[]),
            ("MCP_OAUTH2_DPOP_NONCE", "1", &[("MCP_OAUTH2_DPOP", "off")]),
            // Shorter than 32 bytes; set without nonces; nonces demanded by
            // replicas sharing a Redis without a shared secret (each would
            // refuse the others' nonces).
            (
                "MCP_OAUTH2_DPOP_NONCE_SECRET",
                "too-short",
                &[("MCP_OAUTH2_DPOP_NONCE", "1")],
            ),
            (
                "MCP_OAUTH2_DPOP_NONCE_SECRET",
                "nonce-secret-shared-by-every-replica",
                &[],
            ),
            (
                "MCP_OAUTH2_DPOP_NONCE_SECRET",
                "nonce-secret-shared-by-every-replica",
                &[("MCP_OAUTH2_DPOP", "off")],
            ),
            (
                "MCP_OAUTH2_DPOP_NONCE_SECRET",
                "",
                &[
                    ("MCP_OAUTH2_DPOP_NONCE", "1"),
                    ("MCP_OAUTH2_REDIS_URL", "redis://127.0.0.1:6399"),
                ],
            ),
            (
                "MCP_OAUTH2_DPOP_ALGORITHMS",
                "ES256",
                &[("MCP_OAUTH2_DPOP", "off")],
            ),
            (
                "MCP_OAUTH2_DPOP_MAX_AGE",
                "60",
                &[("MCP_OAUTH2_DPOP", "off")],
            ),
            ("MCP_OAUTH2_TENANTS", "a/b", &[]),
            ("MCP_OAUTH2_TENANTS", "a,a", &[]),
            ("MCP_OAUTH2_TENANTS", "*,a", &[]),
            (
                "MCP_OAUTH2_TENANTS",
                "a",
                &[("MCP_OAUTH2_ISSUER", "https://a.example,https://b.example")],
            ),
            (
                "MCP_OAUTH2_ISSUER",
                "https://h/{tenant},https://k/{tenant}",
                &[("MCP_OAUTH2_TENANTS", "a")],
            ),
            ("MCP_OAUTH2_AUTHORIZATION_SERVERS", "http://as.example", &[]),
            ("MCP_OAUTH2_AUTHORIZATION_SERVERS", "not a url", &[]),
            (
                "MCP_OAUTH2_AUTHORIZATION_SERVERS",
                "https://as.example, https://as.example",
                &[],
            ),
            // Not a trusted issuer: clients would get tokens there that are
            // all refused.
            (
                "MCP_OAUTH2_AUTHORIZATION_SERVERS",
                "https://other.example",
                &[],
            ),
            (
                "MCP_OAUTH2_AUTHORIZATION_SERVERS",
                "https://as.example/",
                &[],
            ),
            // The opt-in names a URL the list does not hold.
            (
                "MCP_OAUTH2_UNTRUSTED_AUTHORIZATION_SERVERS",
                "https://other.example",
                &[],
            ),
            ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "5", &[]),
            ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "0/60", &[]),
            ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "5/0", &[]),
            ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "5/60s", &[]),
            ("MCP_OAUTH2_MISSING_AUTH_LIMIT", "many/60", &[]),
            ("MCP_OAUTH2_MISSING_AUTH_LIMIT", "5/100000", &[]),
            ("MCP_OAUTH2_TRUSTED_PROXIES", "10.0.0.0/33", &[]),
            ("MCP_OAUTH2_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", &[]),
            ("MCP_OAUTH2_TRUSTED_PROXIES", "10.0.0.0/8, 0.0.0.0/0", &[]),
            ("MCP_OAUTH2_TRUSTED_PROXIES", "::/0", &[]),
            ("MCP_OAUTH2_FORWARDED_HEADER", "x-real-ip", &[]),
            ("MCP_OAUTH2_FORWARDED_HEADER", "forwarded", &[]),
            (
                "MCP_OAUTH2_SESSION_IDLE_TIMEOUT",
                "40",
                &[("MCP_OAUTH2_STATELESS_ONLY", "1")],
            ),
            (
                "MCP_OAUTH2_MAX_SESSIONS",
                "5",
                &[("MCP_OAUTH2_STATELESS_ONLY", "1")],
            ),
            (
                "MCP_OAUTH2_MAX_SESSIONS_PER_PRINCIPAL",
                "5",
                &[("MCP_OAUTH2_STATELESS_ONLY", "1")],
            ),
            (
                "MCP_OAUTH2_FORWARDED_HEADER",
                "x-forwarded-for, forwarded",
                &[],
            ),
            ("MCP_OAUTH2_TRUSTED_PROXIES", "0.0.0.0/1, 128.0.0.0/1", &[]),
            ("MCP_OAUTH2_JWKS_CACHE_TTL", "86401", &[]),
            ("MCP_OAUTH2_REQUIRED_SCOPES", "mcp:use mcp:use", &[]),
            // Commas: every other list is comma-separated (found from
            // outside: `a,b` read as one scope no token holds).
            ("MCP_OAUTH2_REQUIRED_SCOPES", "notes:read,notes:write", &[]),
            ("MCP_OAUTH2_SCOPES_SUPPORTED", "a b,c", &[]),
            ("MCP_OAUTH2_SCOPES_SUPPORTED", "a b a", &[]),
            ("MCP_OAUTH2_JWKS_CACHE_TTL", "18446744073709551615", &[]),
            ("MCP_OAUTH2_JWKS_REFRESH_COOLDOWN", "86401", &[]),
            ("MCP_OAUTH2_AUDIT_REFUSAL_LIMIT", "0/1", &[]),
            ("MCP_OAUTH2_AUDIT_REFUSAL_LIMIT", "100", &[]),
            ("MCP_OAUTH2_AUDIT_REFUSAL_LIMIT", "of", &[]),
            ("MCP_OAUTH2_RESOURCE_NAME", "Notes\u{202E}txt.exe", &[]),
            ("MCP_OAUTH2_RESOURCE_NAME", "Notes\nAdmin", &[]),
            ("MCP_OAUTH2_METADATA_MAX_AGE", "1h", &[]),
            ("MCP_OAUTH2_REDIS_URL", "http://127.0.0.1:6379", &[]),
            ("MCP_OAUTH2_REDIS_URL", "redis://", &[]),
            // Said precisely (found from outside: "store unavailable").
            ("MCP_OAUTH2_REDIS_URL", "rediss://:pw@127.0.0.1:6379", &[]),
            ("MCP_OAUTH2_REDIS_URL", "redis://127.0.0.1:6379/-1", &[]),
            ("MCP_OAUTH2_REDIS_URL", "redis://127.0.0.1:notaport", &[]),
            // A prefix without a store to put it on, and one with a space or
            // a control character (a key name an operator cannot type back).
            ("MCP_OAUTH2_REDIS_PREFIX", "prod:", &[]),
            (
                "MCP_OAUTH2_REDIS_PREFIX",
                "prod eu:",
                &[("MCP_OAUTH2_REDIS_URL", "redis://127.0.0.1:6399")],
            ),
        ];
        for (name, bad, with) in cases {
            let mut vars = minimal();
            for (k, v) in *with {
                vars.insert(k, (*v).to_owned());
            }
            vars.insert(name, (*bad).to_owned());
            // `AuthConfig::from_env`, and the builder it fills built later
            // (as the reference server does, after adjusting it).
            let built = AuthConfigBuilder::from_env_vars(|k| vars.get(k).cloned())
                .and_then(AuthConfigBuilder::build);
            for err in [from_map(&vars).unwrap_err(), built.unwrap_err()] {
                assert_eq!(err.field(), *name, "{name}={bad:?}: {err}");
                // The message speaks of variables, not builder settings.
                for v in ENV_VARS.iter().filter(|v| v.setting.contains('_')) {
                    let named = replace_word(err.message(), v.setting, "");
                    assert_eq!(named, err.message(), "{name}={bad:?}: {err}");
                }
            }
        }
        // A variable of whole seconds is told its range in seconds (found
        // from outside: "from 1 millisecond").
        let mut vars = minimal();
        vars.insert("MCP_OAUTH2_VERIFY_TIMEOUT", "0".to_owned());
        let err = from_map(&vars).unwrap_err();
        assert!(
            err.message().contains("from 1 to 300 seconds") && !err.message().contains("milli"),
            "{err}"
        );
        // Free text has no bad value; every other variable has a case above.
        const FREE_TEXT: &[&str] = &["MCP_OAUTH2_TENANT_CLAIM"];
        let tested: BTreeSet<&str> = cases.iter().map(|(n, _, _)| *n).collect();
        for v in ENV_VARS {
            assert!(
                tested.contains(v.name) || FREE_TEXT.contains(&v.name),
                "{} has no bad-value case",
                v.name
            );
        }
    }

    // Replicas configured by environment share the DPoP nonce secret: a
    // nonce one issued is good at the others. Without it, nonces with a
    // shared store are refused at startup (each replica would refuse the
    // others' nonces); a lone server keeps its random per-process secret.
    // No error repeats the secret.
    #[test]
    fn the_dpop_nonce_secret_from_the_environment() {
        let secret = "a-secret-of-at-least-32-bytes-long!";
        let with = |more: &[(&'static str, &str)]| {
            let mut vars = minimal();
            vars.insert("MCP_OAUTH2_DPOP_NONCE", "1".to_owned());
            for (k, v) in more {
                vars.insert(k, (*v).to_owned());
            }
            from_map(&vars)
        };
        let redis = ("MCP_OAUTH2_REDIS_URL", "redis://127.0.0.1:6399");
        let c = with(&[redis, ("MCP_OAUTH2_DPOP_NONCE_SECRET", secret)]).unwrap();
        assert_eq!(c.dpop.nonce_secret.as_deref(), Some(secret.as_bytes()));
        assert!(with(&[]).unwrap().dpop.nonce_secret.is_none());
        let err = with(&[redis]).unwrap_err();
        assert_eq!(err.field(), "MCP_OAUTH2_DPOP_NONCE_SECRET", "{err}");
        assert!(err.message().contains("MCP_OAUTH2_REDIS_URL"), "{err}");
        let short = "short-secret-value";
        let err = with(&[("MCP_OAUTH2_DPOP_NONCE_SECRET", short)]).unwrap_err();
        assert_eq!(err.field(), "MCP_OAUTH2_DPOP_NONCE_SECRET", "{err}");
        assert!(!err.to_string().contains(short), "{err}");
        // A placeholder of one byte repeated is no secret (found from
        // outside: accepted, where the exchange cache key refused it).
        let placeholder = "a".repeat(40);
        let err = with(&[redis, ("MCP_OAUTH2_DPOP_NONCE_SECRET", &placeholder)]).unwrap_err();
        assert_eq!(err.field(), "MCP_OAUTH2_DPOP_NONCE_SECRET", "{err}");
        assert!(err.message().contains("one byte repeated"), "{err}");
        assert!(!err.to_string().contains(&placeholder), "{err}");
        // Nor a short pattern repeated, nor a few distinct bytes (found
        // from outside: `abab...` was accepted).
        for (placeholder, why) in [
            ("ab".repeat(20), "repeats a short pattern"),
            ("changeme".repeat(5), "repeats a short pattern"),
            (format!("{}1", "0".repeat(39)), "repeats a short pattern"),
            // A pattern repeated and a short tail (found from outside).
            (
                format!("{}XY", "password1234".repeat(3)),
                "repeats a short pattern",
            ),
            (
                "0110100110010110100101100110100110010110".to_owned(),
                "fewer than six distinct bytes",
            ),
        ] {
            let err = with(&[redis, ("MCP_OAUTH2_DPOP_NONCE_SECRET", &placeholder)]).unwrap_err();
            assert_eq!(err.field(), "MCP_OAUTH2_DPOP_NONCE_SECRET", "{err}");
            assert!(err.message().contains(why), "{err}");
            assert!(!err.to_string().contains(&placeholder), "{err}");
        }
    }

    // Issue 19: the issuer template, its allowlist, claim and key sets from
    // the environment.
    #[test]
    fn tenant_issuers_from_the_environment() {
        let mut vars = minimal();
        vars.insert(
            "MCP_OAUTH2_ISSUER",
            "https://fixed.example, https://login.example/{tenant}/v2.0".into(),
        );
        vars.insert("MCP_OAUTH2_TENANTS", "*".into());
        vars.insert("MCP_OAUTH2_TENANT_CLAIM", "tid".into());
        // Any tenant and nothing advertised: the fixed issuer is listed.
        let c = from_map(&vars).unwrap();
        assert_eq!(c.issuers().len(), 1);
        let t = c.tenant_issuers().first().unwrap();
        assert!(t.allowed_tenants().is_none());
        assert_eq!(t.claim(), Some("tid"));
        assert_eq!(c.authorization_servers(), ["https://fixed.example"]);
        // A template alone with any tenant: nothing to advertise.
        vars.insert(
            "MCP_OAUTH2_ISSUER",
            "https://login.example/{tenant}/v2.0".into(),
        );
        let e = from_map(&vars).unwrap_err();
        assert_eq!(e.field(), "MCP_OAUTH2_AUTHORIZATION_SERVERS");
        // A template without an allowlist: refused.
        vars.remove("MCP_OAUTH2_TENANTS");
        let e = from_map(&vars).unwrap_err();
        assert_eq!(e.field(), "MCP_OAUTH2_TENANTS");
        // An allowlist: one issuer per tenant is advertised; the key-set
        // template is the template's.
        vars.insert("MCP_OAUTH2_TENANTS", "t1,t2".into());
        vars.insert(
            "MCP_OAUTH2_JWKS_URI",
            "https://login.example/{tenant}/keys".into(),
        );
        let c = from_map(&vars).unwrap();
        assert_eq!(
            c.authorization_servers(),
            [
                "https://login.example/t1/v2.0",
                "https://login.example/t2/v2.0"
            ]
        );
        let t = c.tenant_issuers().first().unwrap();
        assert_eq!(
            t.jwks_uri.as_deref(),
            Some("https://login.example/{tenant}/keys")
        );
        // No template, no tenant variables: an ordinary issuer.
        let c = from_map(&minimal()).unwrap();
        assert!(c.tenant_issuers().is_empty());
        // Organizations: one issuer without a placeholder, tenants named by
        // a claim. Introspection needs its endpoint, and the refusal says
        // why for this form too (it spoke of templates only).
        let mut vars = minimal();
        vars.insert("MCP_OAUTH2_TENANTS", "acme,globex".into());
        vars.insert("MCP_OAUTH2_TENANT_CLAIM", "org_id".into());
        let c = from_map(&vars).unwrap();
        assert_eq!(c.tenant_issuers().first().unwrap().claim(), Some("org_id"));
        vars.insert("MCP_OAUTH2_CLIENT_ID", "rs".into());
        vars.insert("MCP_OAUTH2_CLIENT_SECRET", "rs-secret".into());
        let e = from_map(&vars).unwrap_err();
        assert_eq!(e.field(), "MCP_OAUTH2_INTROSPECTION_URI", "{e}");
        assert!(e.message().contains("tenants named by a claim"), "{e}");
        vars.insert(
            "MCP_OAUTH2_INTROSPECTION_URI",
            "https://auth.example.com/introspect".into(),
        );
        assert!(from_map(&vars).is_ok());
    }

    // A misspelled variable was read as unset, and the setting it meant to
    // make silently left out (no required scope, DPoP not required): every
    // `MCP_OAUTH2_*` variable must be of the table or the application's.
    #[test]
    fn unknown_and_unreadable_variables_are_refused() {
        let set = |names: &[(&str, bool)]| -> Vec<(String, bool)> {
            names.iter().map(|(n, u)| ((*n).to_owned(), *u)).collect()
        };
        for (typo, meant) in [
            (
                "MCP_OAUTH2_REQUIRED_SCOPE",
                Some("MCP_OAUTH2_REQUIRED_SCOPES"),
            ),
            ("MCP_OAUTH2_DPOP_MODE", Some("MCP_OAUTH2_DPOP")),
            ("MCP_OAUTH2_ISUER", Some("MCP_OAUTH2_ISSUER")),
            ("MCP_OAUTH2_BIN", Some("MCP_OAUTH2_BIND")),
            // A listen address by another name (found from outside:
            // `MCP_OAUTH2_PORT` was told `MCP_OAUTH2_DPOP`).
            ("MCP_OAUTH2_PORT", Some("MCP_OAUTH2_BIND")),
            ("mcp_oauth2_host", Some("MCP_OAUTH2_BIND")),
            ("MCP_OAUTH2_LISTEN_ADDR", Some("MCP_OAUTH2_BIND")),
            (
                "mcp_oauth2_required_scopes",
                Some("MCP_OAUTH2_REQUIRED_SCOPES"),
            ),
            ("Mcp_OAuth2_Dpop", Some("MCP_OAUTH2_DPOP")),
            // The nearest of two names it starts with (found from outside:
            // `MCP_OAUTH2_DPOP` was named).
            ("MCP_OAUTH2_DPOP_NONCES", Some("MCP_OAUTH2_DPOP_NONCE")),
            ("MCP_OAUTH2_", None),
            ("MCP_OAUTH2_COMPLETELY_DIFFERENT", None),
            // A short word is not three edits from ours (found from
            // outside: `MCP_OAUTH2_FOO` was told `MCP_OAUTH2_DPOP`).
            ("MCP_OAUTH2_FOO", None),
            ("MCP_OAUTH2_DPO", Some("MCP_OAUTH2_DPOP")),
            ("MCP_OAUTH2_LEWAY", Some("MCP_OAUTH2_LEEWAY")),
        ] {
            let present = set(&[("MCP_OAUTH2_ISSUER", true), (typo, true)]);
            let err = check_names(&present, &[]).unwrap_err();
            assert_eq!(err.field(), "environment", "{typo}");
            assert!(err.message().contains(typo), "{typo}: {err}");
            match meant {
                Some(m) => assert!(
                    err.message().contains(&format!("did you mean {m}?")),
                    "{err}"
                ),
                None => assert!(!err.message().contains("did you mean"), "{err}"),
            }
        }
        // A `*_FILE` spelling of ours is told that no variable takes a
        // file, and which one takes the value.
        let present = set(&[
            ("MCP_OAUTH2_ISSUER", true),
            ("MCP_OAUTH2_CLIENT_SECRET_FILE", true),
        ]);
        let err = check_names(&present, &[]).unwrap_err();
        assert!(
            err.message()
                .contains("no variable of this server takes a file")
                && err
                    .message()
                    .contains("set MCP_OAUTH2_CLIENT_SECRET to the value"),
            "{err}"
        );
        // A name given twice is refused, whichever value would win (found
        // from outside: the first did, silently).
        let twice = set(&[
            ("MCP_OAUTH2_DPOP", true),
            ("MCP_OAUTH2_ISSUER", true),
            ("MCP_OAUTH2_DPOP", true),
        ]);
        let err = check_names(&twice, &[]).unwrap_err();
        assert!(err.message().contains("MCP_OAUTH2_DPOP"), "{err}");
        assert!(err.message().contains("more than once"), "{err}");
        // Every variable of the table, the documented server variables
        // (`MCP_OAUTH2_BIND`: "from_env() plus MCP_OAUTH2_BIND", as the
        // interop rig's conformance server is built) and the application's
        // own pass.
        let mut all: Vec<(String, bool)> =
            ENV_VARS.iter().map(|v| (v.name.to_owned(), true)).collect();
        all.extend(SERVER_ENV_VARIABLES.iter().map(|n| ((*n).to_owned(), true)));
        assert!(check_names(&all, &[]).is_ok());
        all.push(("MCP_OAUTH2_API_KEY".to_owned(), true));
        assert!(check_names(&all, &["MCP_OAUTH2_API_KEY"]).is_ok());
        // Without the application naming it, its variable is refused.
        assert!(check_names(&all, &[]).is_err());
        // No server variable is one of the table's.
        for n in SERVER_ENV_VARIABLES {
            assert!(ENV_VARS.iter().all(|v| v.name != *n), "{n}");
        }
        // A value that is not UTF-8 names its variable (an application's
        // own variable is the application's business).
        for v in ENV_VARS {
            let err = check_names(&set(&[(v.name, false)]), &[]).unwrap_err();
            assert_eq!(err.field(), v.name);
        }
        assert!(check_names(&set(&[("MCP_OAUTH2_BIND", false)]), &["MCP_OAUTH2_BIND"]).is_ok());
        // The server's documented variables are read by the reference
        // server (and servers built like it) with `std::env::var`, which
        // gives a non-UTF-8 value as unset: refused, naming the variable.
        for n in SERVER_ENV_VARIABLES {
            let err = check_names(&set(&[(n, false)]), &[]).unwrap_err();
            assert_eq!(err.field(), *n);
        }
        assert_eq!(lookalike_distance("", "abc"), 3);
        assert_eq!(lookalike_distance("kitten", "sitting"), 3);
        assert_eq!(lookalike_distance("OATUH", "OAUTH"), 1);
        assert_eq!(lookalike_distance("\u{41e}AUTH", "OAUTH"), 0);
        // The hint names the swapped variable (one edit away, no more).
        let err = check_names(&set(&[("MCP_OAUTH2_DPOP_NOCNE", true)]), &[]).unwrap_err();
        assert!(
            err.message()
                .contains("did you mean MCP_OAUTH2_DPOP_NONCE?"),
            "{err}"
        );
    }

    #[test]
    fn required_variables_unset_name_themselves() {
        for v in ENV_VARS.iter().filter(|v| v.required) {
            let mut vars = minimal();
            vars.remove(v.name);
            assert_eq!(from_map(&vars).unwrap_err().field(), v.name);
        }
    }

    /// Every setting a variable feeds maps back to it, and no two variables
    /// claim one setting's errors.
    #[test]
    fn for_env_maps_every_row_and_nothing_else() {
        let mut fields = BTreeSet::new();
        for v in ENV_VARS {
            assert!(fields.insert(v.field), "{} claimed twice", v.field);
            assert_eq!(ConfigError::new(v.field, "x").for_env().field(), v.name);
        }
        // A setting no variable feeds keeps its builder name.
        assert_eq!(
            ConfigError::new("exempt_path", "x").for_env().field(),
            "exempt_path"
        );
    }

    // A whole number too large for its type is out of the setting's range,
    // not "not a whole number" (found from outside).
    #[test]
    fn a_huge_whole_number_is_told_its_range() {
        for (name, says) in [
            ("MCP_OAUTH2_DPOP_MAX_AGE", "between 1 and 300"),
            ("MCP_OAUTH2_JWKS_CACHE_TTL", "at most"),
        ] {
            let mut vars = minimal();
            vars.insert(name, "99999999999999999999".to_owned());
            let err = from_map(&vars).unwrap_err();
            assert_eq!(err.field(), name);
            assert!(err.message().contains(says), "{name}: {err}");
        }
        let mut vars = minimal();
        vars.insert("MCP_OAUTH2_MAX_SESSIONS", "+5".to_owned());
        let err = from_map(&vars).unwrap_err();
        assert!(err.message().contains("whole number"), "{err}");
    }

    // Misspellings of the prefix itself are ours too (found from outside:
    // `MCP_OAUTH_REQUIRED_SCOPES` was ignored, and its scope not required);
    // other programs' variables are not.
    #[test]
    fn misspelled_prefixes_are_ours() {
        for name in [
            "MCP_OAUTH2_ISSUER",
            "mcp_oauth2_anything",
            "MCP_OAUTH_REQUIRED_SCOPES",
            "MCP_OAUTH2REQUIRED_SCOPES",
            "MCPOAUTH2_REQUIRED_SCOPES",
            "mcp_oauth_dpop",
            "MCP_OAUTH3_BIND",
            "MCP_OAUTH2\u{200b}_REQUIRED_SCOPES",
            // Dashes or dots for underscores (found from outside).
            "MCP-OAUTH2-DPOP",
            "mcp-oauth2-required-scopes",
            "MCP.OAUTH2.ISSUER",
            "MCP-OAUTH-DPOP",
            // Two letters swapped, doubled underscores, lookalike letters
            // (found from outside: each started with its setting left
            // out, the scope check or DPoP off).
            "MCP_OATUH2_REQUIRED_SCOPES",
            "MCP_OAUHT2_DPOP",
            "MPC_OAUTH2_DPOP",
            "MCP__OAUTH2__DPOP",
            "MCP_\u{41e}AUTH2_DP\u{41e}P",
            "\u{41c}\u{421}P_OAUTH2_DPOP",
            // Separators dropped, or something before the prefix, then one
            // of our names (found from outside: left out).
            "MCPOAUTH2REQUIREDSCOPES",
            "mcpoauth2dpop",
            "X_MCP_OAUTH2_DPOP",
            "MCP_MCP_OAUTH2_DPOP",
            "APP_MCP_OAUTH2_REQUIRED_SCOPES",
            "MCPOAUTH2BIND",
        ] {
            assert!(is_ours(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "RUST_LOG",
            "MCP_SERVER_URL",
            "OAUTH2_ISSUER_URL",
            "MCP_DPOP",
            // Other MCP programs' variables (found from outside).
            "MCP_AUTH_ISSUER",
            "MCP_AUTH_RESOURCE",
            // Another text after the prefix is another program's; so is
            // the prefix's tail alone (`OAUTH2_CLIENT_ID` is common).
            "MY_MCP_OAUTH2_CONFIG_PATH",
            "X_MCP_OAUTH2",
            "OAUTH2_DPOP",
            "OAUTH2_CLIENT_ID",
        ] {
            assert!(!is_ours(name), "{name}");
        }
        let err = check_names(&[("MCP_OAUTH_REQUIRED_SCOPES".to_owned(), true)], &[]).unwrap_err();
        assert!(
            err.message()
                .contains("did you mean MCP_OAUTH2_REQUIRED_SCOPES"),
            "{err}"
        );
    }

    #[test]
    fn from_env_doc_table_is_generated_from_the_env_table() {
        let doc = include_str!("env_table.md");
        let table = markdown_table();
        assert!(
            doc == table,
            "src/config/env_table.md is out of date; it should read:\n{table}"
        );
    }

    /// README's configuration table names exactly the table's variables,
    /// each on the row of its builder setting.
    #[test]
    fn readme_configuration_table_lists_exactly_the_env_table() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Configuration section");
        let rows: Vec<&str> = section.lines().filter(|l| l.starts_with('|')).collect();
        let mut in_readme = BTreeSet::new();
        for row in &rows {
            let mut rest = *row;
            while let Some(at) = rest.find("MCP_OAUTH2_") {
                let tail = rest.get(at..).unwrap_or_default();
                let end = tail
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(tail.len());
                let name = tail.get(..end).unwrap_or_default();
                in_readme.insert(name);
                if let Some(var) = ENV_VARS.iter().find(|v| v.name == name) {
                    assert!(
                        row.contains(&format!("`{}(", var.setting)),
                        "README row of {name} does not name `{}(..)`: {row}",
                        var.setting
                    );
                }
                rest = tail.get(end..).unwrap_or_default();
            }
        }
        let in_table: BTreeSet<&str> = ENV_VARS.iter().map(|v| v.name).collect();
        assert_eq!(in_readme, in_table);
    }
}
