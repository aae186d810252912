//! Settings of the token exchange: which endpoint, how the server
//! authenticates to it (as for introspection, RFC 6749 section 2.3.1), which
//! grant, how long exchanged tokens are kept.

use std::time::Duration;

use url::Url;

use crate::config::introspection::{ClientAuthMethod, ClientSecret};

/// Which grant the exchange uses at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExchangeGrant {
    /// RFC 8693 token exchange (the default):
    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, the
    /// caller's token as `subject_token` of type
    /// `urn:ietf:params:oauth:token-type:access_token`, the downstream as
    /// `audience` (and as `resource` when it is an absolute URI), `scope`.
    #[default]
    TokenExchange,
    /// Microsoft Entra ID on-behalf-of (a JWT bearer grant, RFC 7523):
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, the caller's
    /// token as `assertion`, `requested_token_use=on_behalf_of`, and `scope`
    /// (the requested scopes, or `<audience>/.default` when none are asked).
    EntraOnBehalfOf,
}

/// Settings of a [`TokenExchanger`](crate::TokenExchanger).
///
/// `Debug` output never shows the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ExchangeSettings {
    pub(crate) endpoint: Option<Url>,
    /// The issuers whose token endpoint may be discovered (empty: any).
    pub(crate) issuers: Vec<String>,
    pub(crate) client_id: String,
    pub(crate) client_secret: ClientSecret,
    pub(crate) auth_method: ClientAuthMethod,
    pub(crate) grant: ExchangeGrant,
    pub(crate) margin: Duration,
    pub(crate) max_entries: usize,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_insecure_loopback: bool,
}

impl ExchangeSettings {
    /// RFC 8693 token exchange as the confidential client `client_id`, with
    /// the defaults: the token endpoint discovered from the caller's issuer
    /// (RFC 8414, then OpenID Connect discovery; the document's `issuer`
    /// must equal it), `client_secret_basic`, exchanged tokens reused until
    /// 30 s before their `expires_in`, at most 10,000 of them, a 5 s
    /// deadline per request to the endpoint, answers of at most 64 KiB.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            issuers: Vec::new(),
            client_id: client_id.into(),
            client_secret: ClientSecret::new(client_secret),
            auth_method: ClientAuthMethod::default(),
            grant: ExchangeGrant::default(),
            margin: Duration::from_secs(30),
            max_entries: 10_000,
            timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
            allow_insecure_loopback: false,
        }
    }

    /// The Microsoft Entra ID on-behalf-of preset: the tenant's v2.0 token
    /// endpoint (`https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`),
    /// [`ExchangeGrant::EntraOnBehalfOf`], `client_secret_post` (what Entra
    /// documents for this flow).
    pub fn entra_on_behalf_of(
        tenant: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, crate::ConfigError> {
        let endpoint = Url::parse("https://login.microsoftonline.com/")
            .and_then(|base| {
                base.join(&format!(
                    "{}/oauth2/v2.0/token",
                    crate::fetch::form_encode(tenant)
                ))
            })
            .map_err(|e| crate::ConfigError::new("tenant", format!("not usable in a URL: {e}")))?;
        Ok(Self::new(client_id, client_secret)
            .endpoint(endpoint)
            .grant(ExchangeGrant::EntraOnBehalfOf)
            .auth_method(ClientAuthMethod::ClientSecretPost))
    }

    /// The token endpoint (default: discovered from the caller's issuer).
    pub fn endpoint(mut self, url: Url) -> Self {
        self.endpoint = Some(url);
        self
    }

    /// An issuer this client is registered at (repeatable): the exchange
    /// then serves only callers whose token comes from one of the listed
    /// issuers, and a caller of another issuer gets
    /// [`IssuerNotAllowed`](crate::ExchangeErrorKind::IssuerNotAllowed)
    /// before anything is sent. Without an [`endpoint`](Self::endpoint) the
    /// token endpoint is discovered from the caller's issuer, and the client
    /// authenticates there with its secret: **a server that trusts several
    /// authorization servers must list the one(s) its client belongs to
    /// here**, or the secret would be sent to any of them. With an endpoint
    /// set, list them too: otherwise every caller's token, whatever its
    /// issuer, is sent to that one endpoint as the `subject_token`, and an
    /// authorization server that receives another's users' tokens (good at
    /// this server) can use them here. Compared exactly with the caller's
    /// issuer, as `iss` is.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// How to authenticate to the endpoint (default `client_secret_basic`).
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// The grant (default [`ExchangeGrant::TokenExchange`]).
    pub fn grant(mut self, grant: ExchangeGrant) -> Self {
        self.grant = grant;
        self
    }

    /// How long before its `expires_in` an exchanged token stops being
    /// reused (default 30 s). A token whose answer has no `expires_in`, or
    /// one shorter than the margin, is used for the call that asked for it
    /// only.
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Cap on exchanged tokens kept (default 10,000; at least one); the
    /// cache is also bounded in bytes, 4 KiB per allowed entry, each token
    /// weighing its length.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// Deadline of each request to the token endpoint or its discovery
    /// document (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// **Development only**: accept `http://` token endpoints on loopback
    /// hosts (default off: `https://` only).
    pub fn allow_insecure_http_for_loopback(mut self, on: bool) -> Self {
        self.allow_insecure_loopback = on;
        self
    }
}
