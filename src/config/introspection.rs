//! Settings of RFC 7662 introspection: which endpoint, how the resource
//! server authenticates to it (RFC 7662 section 2.1), how long answers are
//! kept. Plain data, part of [`AuthConfig`](crate::AuthConfig); the verifier
//! that uses them is [`crate::verify::IntrospectionVerifier`], which
//! re-exports these types as `mcp_oauth2::verify::{ClientAuthMethod,
//! ClientSecret, IntrospectionSettings}`.

use std::fmt;
use std::time::Duration;

use url::Url;

/// How the resource server authenticates to the introspection endpoint
/// (RFC 7662 section 2.1, RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A client secret; its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// Introspection settings (part of [`AuthConfig`](crate::AuthConfig), shared
/// or per issuer, or given to
/// [`IntrospectionVerifier::new`](crate::verify::IntrospectionVerifier::new)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionSettings {
    pub(crate) endpoint: Option<Url>,
    pub(crate) client_id: String,
    pub(crate) client_secret: ClientSecret,
    pub(crate) auth_method: ClientAuthMethod,
    pub(crate) cache_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) max_entries: usize,
    pub(crate) lookups_per_second: u32,
}

/// The default of [`IntrospectionSettings::max_lookups_per_second`].
pub(crate) const DEFAULT_LOOKUPS_PER_SECOND: u32 = 100;

impl IntrospectionSettings {
    /// Settings with the defaults: endpoint discovered from the issuer's
    /// metadata (`introspection_endpoint`), `client_secret_basic`, results
    /// cached up to 60 s, inactive results 5 s, at most 10,000 entries,
    /// at most 100 requests to the endpoint a second.
    /// The client id and the secret must not be empty (RFC 7662 section
    /// 2.1: the resource server authenticates); an empty or blank one is
    /// refused when the configuration or the verifier is built.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            client_id: client_id.into(),
            client_secret: ClientSecret::new(client_secret),
            auth_method: ClientAuthMethod::default(),
            cache_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            max_entries: 10_000,
            lookups_per_second: DEFAULT_LOOKUPS_PER_SECOND,
        }
    }

    /// The introspection endpoint (else discovered: from the issuer for
    /// per-issuer settings, from the first issuer for the shared ones).
    pub fn endpoint(mut self, url: Url) -> Self {
        self.endpoint = Some(url);
        self
    }

    /// How to authenticate to the endpoint.
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Upper bound on how long an active result is reused (never past `exp`).
    /// Revocation takes effect within this time. A duration too large to
    /// add to the clock disables caching.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long an inactive result is remembered.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// RFC 7662 section 2.1: the resource server authenticates to the
    /// endpoint, so a client id and a secret are required (neither empty
    /// nor blank). The secret also keys the tags of results shared in a
    /// store: an empty one would leave only public values (the client id,
    /// the resource) to derive that key from. `fields` name the client id
    /// and the secret in the error. The lookup budget must not be zero.
    pub(crate) fn check(
        &self,
        (id_field, secret_field): (&'static str, &'static str),
    ) -> Result<(), crate::error::ConfigError> {
        use crate::error::ConfigError;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::new(id_field, "is required for introspection"));
        }
        if self.client_secret.secret().trim().is_empty() {
            return Err(ConfigError::new(
                secret_field,
                "is required for introspection: the resource server authenticates to the \
                 endpoint (RFC 7662 section 2.1)",
            ));
        }
        if self.lookups_per_second == 0 {
            return Err(ConfigError::new(
                "introspection_max_lookups_per_second",
                "must be greater than zero (no new token could ever be introspected)",
            ));
        }
        Ok(())
    }

    /// Cap on cached results (the verifier's cache holds the largest cap
    /// among its endpoints' settings, at least one), default 10,000; the
    /// cache is also bounded in bytes, 4 KiB per allowed entry, each result
    /// weighing the answer's members it keeps.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// How many requests the endpoint may get in any one second (default
    /// 100), one per token not already known (cached, or shared by another
    /// replica). Anyone can send made-up opaque tokens, and each costs the
    /// authorization server a request before it can be refused (a provider
    /// may throttle or block a server that floods it, and then every new
    /// token fails). Past the budget, a token not already known is refused
    /// at once with 503 `introspection_unavailable` and `Retry-After` (a
    /// real client retries), and the log says so once a second
    /// (`reason=introspection_budget`); known tokens are never affected.
    /// Raise it for a deployment that sees more new tokens a second (a
    /// restart with many active users: each user's token is new to a
    /// replica once per `cache_ttl`, or once per replica set with a shared
    /// store). Zero is refused when the verifier is built.
    pub fn max_lookups_per_second(mut self, per_second: u32) -> Self {
        self.lookups_per_second = per_second;
        self
    }
}

/// The refusal of shared settings without an endpoint when every issuer is
/// a tenant issuer (a template, or one issuer whose tenants a claim names):
/// the endpoint is discovered from a plain issuer only.
pub(crate) fn no_endpoint_to_discover() -> crate::error::ConfigError {
    crate::error::ConfigError::new(
        "introspection_endpoint",
        "is required when every issuer is a tenant issuer (an issuer with {tenant}, or \
         tenants named by a claim: MCP_OAUTH2_TENANTS): the endpoint is discovered from a \
         plain issuer only",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // A budget of zero would refuse every new token: refused at build, on
    // both paths (the configuration, and a verifier of its own).
    #[test]
    fn a_zero_lookup_budget_is_refused() {
        let settings = || IntrospectionSettings::new("rs", "secret").max_lookups_per_second(0);
        let built = crate::AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://mcp.example/mcp")
            .introspection(settings())
            .build();
        let err = built.unwrap_err();
        assert_eq!(err.field(), "introspection_max_lookups_per_second", "{err}");
        let config = crate::AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://mcp.example/mcp")
            .build()
            .unwrap();
        let err = crate::verify::IntrospectionVerifier::new(&config, settings()).unwrap_err();
        assert_eq!(err.field(), "introspection_max_lookups_per_second", "{err}");
        assert!(
            crate::verify::IntrospectionVerifier::new(
                &config,
                IntrospectionSettings::new("rs", "secret").max_lookups_per_second(1)
            )
            .is_ok()
        );
    }
}
