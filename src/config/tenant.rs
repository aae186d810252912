//! Many tenants, many issuers: [`TenantIssuer`] (an issuer template with a
//! `{tenant}` placeholder, a tenant allowlist, a tenant claim, key sets per
//! tenant or shared) and [`IssuerPolicy`] (what a token of one issuer or
//! template must satisfy, where it differs from the global settings).
//!
//! Tenant ids are 1 to 64 characters of `[A-Za-z0-9_-]`: no `/`, `.`, `%`,
//! space or anything else that could move a filled template to another
//! path or host (see [`is_tenant_id`]).

use ::url::Url;

use super::url::{UrlParts, check_https, check_url_parts, written_as_url};
use super::{Algorithm, AudienceRule, TypPolicy};
use crate::error::ConfigError;

/// The placeholder of issuer and key-set templates.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenant}";

/// Default cap on the key sets kept for the tenants of one template when
/// any tenant is accepted ([`TenantIssuer::allow_any_tenant_unrestricted`]);
/// with an allowlist, one per listed tenant.
pub(crate) const DEFAULT_MAX_TENANT_KEY_SETS: usize = 1_000;

/// How many tenants not yet kept may have their key set fetched in one
/// second, by default, when any tenant is accepted
/// ([`TenantIssuer::max_new_tenants_per_second`]).
pub(crate) const DEFAULT_NEW_TENANTS_PER_SECOND: u32 = 20;

/// Whether `id` is a tenant id: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn is_tenant_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(crate::error::is_base64url)
}

/// Which tenants a [`TenantIssuer`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tenants {
    /// Not said yet: refused at build time.
    Unset,
    /// These tenants only.
    Listed(Vec<String>),
    /// Any tenant id (the loudly named opt-in).
    Any,
}

/// A multi-tenant issuer: one deployment, many customer organisations.
///
/// The issuer is a template holding `{tenant}` once, in its path
/// (`https://login.microsoftonline.com/{tenant}/v2.0`,
/// `https://sso.example.com/realms/{tenant}`); a token's `iss` must equal
/// the template with the placeholder filled by one tenant id, compared
/// exactly. An issuer without the placeholder (Auth0 organizations: one
/// issuer, the tenant in `org_id`) takes the tenant from
/// [`tenant_claim`](Self::tenant_claim), which it then requires.
///
/// The tenant must be on the allowlist ([`tenants`](Self::tenants),
/// required) unless [`allow_any_tenant_unrestricted`](Self::allow_any_tenant_unrestricted)
/// says otherwise; a tenant that is not is refused (`tenant_not_allowed`)
/// before any network call. With a [`tenant_claim`](Self::tenant_claim)
/// (`tid` for Entra ID), the claim must be present and equal the tenant of
/// the issuer (`tenant_mismatch`).
///
/// Keys: a [`jwks_uri`](Self::jwks_uri) without the placeholder is one key
/// set shared by every tenant (Entra ID's common keys); with it, or without
/// a key-set URL (discovery from each tenant's issuer), each tenant has its
/// own key set, fetched on first use and cached by the usual rules.
///
/// ```
/// use mcp_oauth2::{AuthConfig, TenantIssuer};
///
/// let config = AuthConfig::builder()
///     .tenant_issuer(
///         TenantIssuer::new("https://sso.example.com/realms/{tenant}")
///             .tenants(["acme", "globex"]),
///     )
///     .resource("https://mcp.example.com/mcp")
///     .build()?;
/// # let _ = config;
/// # Ok::<(), mcp_oauth2::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantIssuer {
    pub(crate) template: String,
    pub(crate) tenants: Tenants,
    pub(crate) tenant_claim: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) advertised: Vec<String>,
    pub(crate) policy: Option<IssuerPolicy>,
    pub(crate) max_key_sets: usize,
    pub(crate) new_tenants_per_second: u32,
}

impl TenantIssuer {
    /// An issuer template (see the type documentation). Nothing is accepted
    /// until [`tenants`](Self::tenants) (or the unrestricted opt-in) is set.
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            tenants: Tenants::Unset,
            tenant_claim: None,
            jwks_uri: None,
            advertised: Vec::new(),
            policy: None,
            max_key_sets: DEFAULT_MAX_TENANT_KEY_SETS,
            new_tenants_per_second: DEFAULT_NEW_TENANTS_PER_SECOND,
        }
    }

    /// The allowlist: the tenants accepted (each 1 to 64 characters of
    /// `[A-Za-z0-9_-]`, no duplicates). Calling it again adds to the list.
    pub fn tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list = match self.tenants {
            Tenants::Listed(list) => list,
            _ => Vec::new(),
        };
        list.extend(tenants.into_iter().map(Into::into));
        self.tenants = Tenants::Listed(list);
        self
    }

    /// Accepts a token of any tenant id (still of the strict charset). Only
    /// for applications that admit every organisation of the provider (an
    /// Entra ID app open to every Microsoft customer): authorization then
    /// rests on the audience and on what the application checks itself.
    /// Key sets of at most [`max_key_sets`](Self::max_key_sets) tenants are
    /// kept.
    pub fn allow_any_tenant_unrestricted(mut self) -> Self {
        self.tenants = Tenants::Any;
        self
    }

    /// A claim that must be present and equal the tenant of the issuer
    /// (`tid` for Entra ID, `org_id` for Auth0 organizations). Default: none,
    /// the issuer alone decides. Required when the issuer has no
    /// placeholder (the tenant then comes from this claim).
    pub fn tenant_claim(mut self, claim: impl Into<String>) -> Self {
        self.tenant_claim = Some(claim.into());
        self
    }

    /// The key-set URL: with `{tenant}`, one key set per tenant; without,
    /// one key set shared by every tenant. Default: discovered from each
    /// tenant's issuer (one key set per tenant).
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// An issuer to list in the metadata's `authorization_servers` instead
    /// of one per allowlisted tenant (Entra ID's
    /// `https://login.microsoftonline.com/organizations/v2.0`). Required
    /// with [`allow_any_tenant_unrestricted`](Self::allow_any_tenant_unrestricted)
    /// when no other issuer is listed. May be called several times.
    ///
    /// This is the explicit opt-in for a front door that is not itself an
    /// issuer: clients sign in there, and the tokens they get name the
    /// user's own tenant, which this template must accept. The URL must be
    /// a configured issuer (fixed, or accepted by an issuer template) or
    /// this template with the placeholder filled by a tenant id, allowlisted
    /// or not (`https://login.microsoftonline.com/organizations/v2.0` for
    /// the template `https://login.microsoftonline.com/{tenant}/v2.0`);
    /// anything else (another host, another path) is refused at build
    /// (`authorization_servers`), since clients are sent there.
    pub fn advertise(mut self, issuer: impl Into<String>) -> Self {
        self.advertised.push(issuer.into());
        self
    }

    /// What tokens of this issuer must satisfy where it differs from the
    /// global settings.
    pub fn policy(mut self, policy: IssuerPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// How many tenants without a usable key set (not kept yet, or kept
    /// after their fetches failed) may have it fetched in any one second
    /// (default 20). Only matters with
    /// [`allow_any_tenant_unrestricted`](Self::allow_any_tenant_unrestricted):
    /// anyone can then send tokens naming made-up tenants, and each new
    /// tenant costs a discovery and a key-set request to the authorization
    /// server before a signature can be checked (a provider may throttle or
    /// block a server that floods it). Past the budget, a token of a tenant
    /// not yet kept is refused at once with 503 `keys_unavailable` and
    /// `Retry-After` (a real tenant's client retries); tenants already kept
    /// are never affected. Raise it for a deployment where many tenants
    /// come back at once (a restart with thousands of active tenants).
    pub fn max_new_tenants_per_second(mut self, per_second: u32) -> Self {
        self.new_tenants_per_second = per_second;
        self
    }

    /// The cap on tenant key sets kept at once (default 1,000; a key set
    /// pushed out is fetched again when needed). Only matters with
    /// [`allow_any_tenant_unrestricted`](Self::allow_any_tenant_unrestricted):
    /// with an allowlist every listed tenant keeps its key set.
    pub fn max_key_sets(mut self, max: usize) -> Self {
        self.max_key_sets = max;
        self
    }

    /// The issuer template.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The tenant claim, if any.
    pub fn claim(&self) -> Option<&str> {
        self.tenant_claim.as_deref()
    }

    /// The allowlisted tenants (`None`: any tenant).
    pub fn allowed_tenants(&self) -> Option<&[String]> {
        match &self.tenants {
            Tenants::Listed(list) => Some(list),
            _ => None,
        }
    }

    /// The template with `tenant` in place of the placeholder.
    pub(crate) fn issuer_for(&self, tenant: &str) -> String {
        self.template.replacen(TENANT_PLACEHOLDER, tenant, 1)
    }

    /// Whether a token whose `iss` is `issuer` can come from this template:
    /// the template itself when it has no placeholder, else the template
    /// with an accepted tenant (listed, or any tenant id with
    /// [`allow_any_tenant_unrestricted`](Self::allow_any_tenant_unrestricted))
    /// in place of the placeholder, compared exactly.
    pub(crate) fn issues(&self, issuer: &str) -> bool {
        let Some((prefix, suffix)) = self.template.split_once(TENANT_PLACEHOLDER) else {
            return self.template == issuer;
        };
        let tenant = issuer
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix));
        match (tenant, &self.tenants) {
            (Some(t), Tenants::Listed(list)) => list.iter().any(|l| l == t),
            (Some(t), Tenants::Any) => is_tenant_id(t),
            _ => false,
        }
    }

    /// Whether `url` is the template with its placeholder filled by a
    /// tenant id, allowlisted or not (a front door such as Entra ID's
    /// `organizations`).
    pub(crate) fn fits_template(&self, url: &str) -> bool {
        self.template
            .split_once(TENANT_PLACEHOLDER)
            .and_then(|(prefix, suffix)| url.strip_prefix(prefix)?.strip_suffix(suffix))
            .is_some_and(is_tenant_id)
    }

    /// The issuers the metadata lists for this template.
    pub(crate) fn advertised_issuers(&self) -> Vec<String> {
        if !self.advertised.is_empty() {
            return self.advertised.clone();
        }
        if !self.template.contains(TENANT_PLACEHOLDER) {
            return vec![self.template.clone()];
        }
        match &self.tenants {
            Tenants::Listed(list) => list.iter().map(|t| self.issuer_for(t)).collect(),
            _ => Vec::new(),
        }
    }

    /// Validates the template itself (a URL, `https://`, no user
    /// information, query or fragment, the placeholder once and in the
    /// path); [`validate`](Self::validate) starts with it. `from_env` calls
    /// it alone so that a bad template names `MCP_OAUTH2_ISSUER`, where it
    /// was written, not the allowlist's variable.
    pub(crate) fn validate_template(&self, loopback_ok: bool) -> Result<(), ConfigError> {
        let err = |m: String| ConfigError::new("tenant_issuer", m);
        let template = &self.template;
        check_placeholder(template, "tenant_issuer")?;
        let sample = self.issuer_for("tenant");
        let url = Url::parse(&sample).map_err(|e| {
            err(format!(
                "{} is not a URL: {e}",
                crate::config::url::shown(template)
            ))
        })?;
        check_url_parts(&url, UrlParts::Issuer, "tenant_issuer")?;
        check_https(&url, loopback_ok, "tenant_issuer")?;
        if !written_as_url(&sample, &url) {
            return Err(err(format!(
                "{template:?} is not written as its URL ({:?} for the tenant \"tenant\"): \
                 issuers are compared as written (RFC 8414 section 3.3)",
                url.as_str()
            )));
        }
        if url.query().is_some() || url.fragment().is_some() || sample.contains(['?', '#']) {
            return Err(err(
                "must not have a query or fragment (RFC 8414 section 2)".into(),
            ));
        }
        Ok(())
    }

    /// Validates the template at build time.
    pub(crate) fn validate(&self, loopback_ok: bool) -> Result<(), ConfigError> {
        self.validate_template(loopback_ok)?;
        let err = |m: String| ConfigError::new("tenant_issuer", m);
        let template = &self.template;
        if !template.contains(TENANT_PLACEHOLDER) && self.tenant_claim.is_none() {
            return Err(err(format!(
                "{template:?} has no {{tenant}}: set tenant_claim (the tenant comes from it)"
            )));
        }
        match &self.tenants {
            Tenants::Unset => {
                return Err(err(
                    "needs an allowlist (tenants) or allow_any_tenant_unrestricted".into(),
                ));
            }
            Tenants::Listed(list) => {
                if list.is_empty() {
                    return Err(err("the tenant allowlist is empty".into()));
                }
                for (i, t) in list.iter().enumerate() {
                    if !is_tenant_id(t) {
                        return Err(err(format!(
                            "{t:?} is not a tenant id (1 to 64 of A-Z a-z 0-9 _ -)"
                        )));
                    }
                    if list.iter().take(i).any(|u| u == t) {
                        return Err(err(format!("tenant {t:?} is listed twice")));
                    }
                    if is_entra_front_door(template, t) {
                        return Err(err(front_door_message(t)));
                    }
                }
            }
            Tenants::Any => {
                if self.max_key_sets == 0 {
                    return Err(err("max_key_sets must be greater than zero".into()));
                }
                if self.new_tenants_per_second == 0 {
                    return Err(err(
                        "max_new_tenants_per_second must be greater than zero (no new tenant could ever be served)"
                            .into(),
                    ));
                }
            }
        }
        if let Some(claim) = &self.tenant_claim
            && claim.trim().is_empty()
        {
            return Err(ConfigError::new("tenant_claim", "must not be empty"));
        }
        // Compared exactly with the claim's name: a blank or an invisible
        // character would refuse every token at call time (found from
        // outside: `" org_id"` built, then every call was `tenant_invalid`).
        if let Some(claim) = &self.tenant_claim {
            super::builder::check_names(std::slice::from_ref(claim), "tenant_claim", "claim")?;
        }
        if let Some(claim) = &self.tenant_claim
            && super::builder::not_a_tenant_claim(claim)
        {
            return Err(ConfigError::new(
                "tenant_claim",
                format!(
                    "{claim:?} cannot hold a tenant: it says who or what the token is, or what it \
                     grants (a tenant claim names the customer organisation: tid, org_id)"
                ),
            ));
        }
        if let Some(jwks) = &self.jwks_uri {
            // The same rules as the template's (found from outside: a
            // misspelt `{TENANT}` here made one key set for every tenant,
            // at a literal `%7BTENANT%7D`, and `{tenant}` in the host let
            // the tenant name choose the host keys are fetched from).
            check_placeholder(jwks, "jwks_uri")?;
            let url = Url::parse(&jwks.replacen(TENANT_PLACEHOLDER, "tenant", 1)).map_err(|e| {
                ConfigError::new(
                    "jwks_uri",
                    format!("{} is not a URL: {e}", crate::config::url::shown(jwks)),
                )
            })?;
            check_url_parts(&url, UrlParts::Endpoint, "jwks_uri")?;
            check_https(&url, loopback_ok, "jwks_uri")?;
        }
        for adv in &self.advertised {
            let url = Url::parse(adv).map_err(|e| {
                ConfigError::new(
                    "authorization_servers",
                    format!("{} is not a URL: {e}", crate::config::url::shown(adv)),
                )
            })?;
            check_url_parts(&url, UrlParts::Issuer, "authorization_servers")?;
            check_https(&url, loopback_ok, "authorization_servers")?;
        }
        if let Some(policy) = &self.policy {
            policy.validate()?;
        }
        Ok(())
    }
}

/// The placeholder rules of a URL written with `{tenant}` (an issuer
/// template, a key-set URL): at most once; no other brace (a misspelt
/// placeholder: found from outside, `{TENANT}` was told as a URL not
/// written as itself); not percent-encoded; and in the path, after
/// `scheme://authority/` (checked before the URL's other rules, which would
/// judge the sample host instead: found from outside,
/// `http://{tenant}.localhost/` was told it used http:// off loopback).
fn check_placeholder(text: &str, field: &'static str) -> Result<(), ConfigError> {
    let err = |m: String| Err(ConfigError::new(field, m));
    let holes = text.matches(TENANT_PLACEHOLDER).count();
    if holes > 1 {
        return err(format!("{text:?} holds {{tenant}} more than once"));
    }
    if text.replace(TENANT_PLACEHOLDER, "").contains(['{', '}']) {
        return err(format!(
            "{text:?} holds a brace that is not the placeholder {{tenant}} \
             (written so, in lower case)"
        ));
    }
    if text.to_ascii_lowercase().contains("%7btenant%7d") {
        return err(format!(
            "{text:?} holds the placeholder percent-encoded: write {{tenant}} as it is"
        ));
    }
    if holes == 1 {
        let (before, _) = text.split_once(TENANT_PLACEHOLDER).unwrap_or_default();
        let in_path = before
            .split_once("://")
            .is_some_and(|(_, rest)| rest.contains('/'));
        if !in_path {
            return err(format!(
                "{text:?}: {{tenant}} must be in the path (after the host), not in the \
                 host, port or user information"
            ));
        }
    }
    Ok(())
}

/// What tokens of one issuer or one [`TenantIssuer`] must satisfy, where it
/// differs from the global settings: each setting left unset keeps the
/// builder's ([`AuthConfigBuilder::algorithms`](crate::AuthConfigBuilder::algorithms),
/// [`typ_policy`](crate::AuthConfigBuilder::typ_policy),
/// [`audience_rule`](crate::AuthConfigBuilder::audience_rule),
/// [`accept_audience`](crate::AuthConfigBuilder::accept_audience),
/// [`scope_claims`](crate::AuthConfigBuilder::scope_claims)). Set it with
/// [`AuthConfigBuilder::issuer_policy`](crate::AuthConfigBuilder::issuer_policy)
/// or [`TenantIssuer::policy`]; no hand-built verifier chain is needed.
/// Per-issuer introspection is
/// [`AuthConfigBuilder::issuer_introspection`](crate::AuthConfigBuilder::issuer_introspection).
///
/// ```
/// use mcp_oauth2::{Algorithm, AuthConfig, IssuerPolicy, TypPolicy};
///
/// let config = AuthConfig::builder()
///     .issuer("https://strict.example.com")
///     .issuer("https://legacy.example.com")
///     .issuer_policy(
///         "https://legacy.example.com",
///         IssuerPolicy::new()
///             .typ_policy(TypPolicy::AllowJwt)
///             .algorithms([Algorithm::RS256])
///             .scope_claims(["scp"]),
///     )
///     .resource("https://mcp.example.com/mcp")
///     .build()?;
/// # let _ = config;
/// # Ok::<(), mcp_oauth2::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerPolicy {
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) typ_policy: Option<TypPolicy>,
    pub(crate) audience_rule: Option<AudienceRule>,
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) scope_claims: Option<Vec<String>>,
}

impl IssuerPolicy {
    /// A policy that changes nothing (every setting inherited).
    pub fn new() -> Self {
        Self::default()
    }

    /// The signing algorithms accepted for this issuer.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// The accepted JOSE `typ` values for this issuer.
    pub fn typ_policy(mut self, policy: TypPolicy) -> Self {
        self.typ_policy = Some(policy);
        self
    }

    /// How this issuer's tokens show they were issued for this server.
    pub fn audience_rule(mut self, rule: AudienceRule) -> Self {
        self.audience_rule = Some(rule);
        self
    }

    /// Audiences accepted besides the resource URI, for this issuer only
    /// (replacing the global [`accept_audience`](crate::AuthConfigBuilder::accept_audience)
    /// list; each call adds one).
    pub fn accept_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences
            .get_or_insert_with(Vec::new)
            .push(audience.into());
        self
    }

    /// The claims that hold the granted scopes, for this issuer.
    pub fn scope_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = Some(claims.into_iter().map(Into::into).collect());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| ConfigError::new("issuer_policy", m);
        if self.algorithms.as_ref().is_some_and(Vec::is_empty) {
            return Err(err("at least one algorithm is required"));
        }
        // Its audiences, scope claims and Cognito client ids are checked
        // by `build`, with the global ones and by the same code
        // (`check_extra_audiences`, `check_scope_claims`,
        // `check_cognito_ids`).
        Ok(())
    }
}

/// Entra ID's sign-in front doors: no token names them as its issuer (a
/// token names its user's own tenant).
pub(crate) const ENTRA_FRONT_DOORS: [&str; 3] = ["common", "organizations", "consumers"];

/// The front door an Entra ID issuer URL names in place of a tenant
/// (`https://login.microsoftonline.com/common/v2.0`), if any: no token
/// names one as its issuer, so every token would be refused (found from
/// outside: the environment took it where the presets refuse it).
pub(crate) fn entra_front_door(issuer: &str) -> Option<&'static str> {
    let url = ::url::Url::parse(issuer).ok()?;
    if !on_entra_host(&url) {
        return None;
    }
    let segment = url.path_segments()?.next().unwrap_or_default();
    ENTRA_FRONT_DOORS
        .into_iter()
        .find(|door| door.eq_ignore_ascii_case(segment))
}

/// Whether `url`'s host is one of [`ENTRA_LOGIN_HOSTS`] (any case, a
/// trailing dot or not).
fn on_entra_host(url: &::url::Url) -> bool {
    url.host_str().is_some_and(|host| {
        ENTRA_LOGIN_HOSTS.contains(&host.trim_end_matches('.').to_ascii_lowercase().as_str())
    })
}

/// The hosts Entra ID signs in and issues tokens at, in every national
/// cloud (found from outside: only the first was known).
const ENTRA_LOGIN_HOSTS: [&str; 8] = [
    "login.microsoftonline.com",
    "login.windows.net",
    "sts.windows.net",
    "login.microsoft.com",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn",
    "login.microsoftonline.de",
];

/// Whether `tenant` of an issuer template on Entra ID's host is one of its
/// front doors (see [`entra_front_door`]).
pub(crate) fn is_entra_front_door(template: &str, tenant: &str) -> bool {
    ::url::Url::parse(&template.replace(TENANT_PLACEHOLDER, "t"))
        .is_ok_and(|url| on_entra_host(&url))
        && ENTRA_FRONT_DOORS
            .iter()
            .any(|door| door.eq_ignore_ascii_case(tenant))
}

/// What is said of an Entra ID front door configured as an issuer.
pub(crate) fn front_door_message(door: &str) -> String {
    format!(
        "{door:?} is an Entra ID sign-in front door, not a tenant: Entra ID tokens name their \
         user's own directory (tenant) ID as issuer, so every token would be refused; give the \
         directory ID, or an issuer template with the tenants to accept"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        for ok in [
            "a",
            "A-b_9",
            &"x".repeat(64),
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
        ] {
            assert!(is_tenant_id(ok), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a/b",
            "..",
            "a.b",
            "%2F",
            "a b",
            "é",
            "a\u{0}",
            "a?b",
            "a#b",
            "a:b",
            "a@b",
        ] {
            assert!(!is_tenant_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn templates_are_validated() {
        let bad = [
            TenantIssuer::new("https://h/{tenant}/{tenant}").tenants(["a"]),
            TenantIssuer::new("https://{tenant}.h/x").tenants(["a"]),
            TenantIssuer::new("https://h/{tenant}?x").tenants(["a"]),
            TenantIssuer::new("http://h/{tenant}").tenants(["a"]),
            TenantIssuer::new("not a url {tenant}").tenants(["a"]),
            TenantIssuer::new("https://h/{tenant}"),
            TenantIssuer::new("https://h/{tenant}").tenants(Vec::<String>::new()),
            TenantIssuer::new("https://h/{tenant}").tenants(["a/b"]),
            TenantIssuer::new("https://h/{tenant}").tenants(["a", "a"]),
            TenantIssuer::new("https://h/").tenants(["a"]),
            TenantIssuer::new("https://h/")
                .tenants(["a"])
                .tenant_claim("org_id")
                .tenants(["a b"]),
            TenantIssuer::new("https://h/{tenant}")
                .allow_any_tenant_unrestricted()
                .max_key_sets(0),
            TenantIssuer::new("https://h/{tenant}")
                .allow_any_tenant_unrestricted()
                .max_new_tenants_per_second(0),
        ];
        for t in bad {
            let e = t.validate(false).unwrap_err();
            assert_eq!(e.field(), "tenant_issuer", "{e}");
        }
        // Each mistake told as itself (found from outside: a misspelt
        // placeholder was told as a URL not written as itself, a placeholder
        // in an http:// host as http:// off loopback), loopback allowed or not.
        let told = [
            ("https://h/{TENANT}", "not the placeholder"),
            ("https://h/{Tenant}/v2.0", "not the placeholder"),
            ("https://h/{tenant}/{x}", "not the placeholder"),
            ("https://h/t}", "not the placeholder"),
            ("http://{tenant}.localhost:8080/", "must be in the path"),
            ("https://{tenant}.h/x", "must be in the path"),
            ("http://user{tenant}@h/t/", "user information"),
            ("https://h/t/%7Btenant%7D", "percent-encoded"),
            ("https://h/t/%7btenant%7d/v2.0", "percent-encoded"),
        ];
        for (template, says) in told {
            for loopback_ok in [false, true] {
                let e = TenantIssuer::new(template)
                    .tenants(["a"])
                    .validate(loopback_ok)
                    .unwrap_err();
                assert_eq!(e.field(), "tenant_issuer", "{e}");
                assert!(e.to_string().contains(says), "{template}: {e}");
            }
        }
        let fields = [
            (
                TenantIssuer::new("https://h/")
                    .tenants(["a"])
                    .tenant_claim(" "),
                "tenant_claim",
            ),
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .jwks_uri("https://h/{tenant}/{tenant}"),
                "jwks_uri",
            ),
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .jwks_uri("nope"),
                "jwks_uri",
            ),
            // The placeholder rules hold for the key-set URL too (found
            // from outside: each of these started, one key set for all).
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .jwks_uri("https://h/t/{TENANT}/jwks"),
                "jwks_uri",
            ),
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .jwks_uri("https://h/t/{tenant/jwks"),
                "jwks_uri",
            ),
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .jwks_uri("https://{tenant}.h/jwks"),
                "jwks_uri",
            ),
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .jwks_uri("https://h/t/%7Btenant%7D/jwks"),
                "jwks_uri",
            ),
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .advertise("nope"),
                "authorization_servers",
            ),
            (
                TenantIssuer::new("https://h/{tenant}")
                    .tenants(["a"])
                    .policy(IssuerPolicy::new().algorithms([])),
                "issuer_policy",
            ),
        ];
        for (t, field) in fields {
            assert_eq!(t.validate(false).unwrap_err().field(), field);
        }
        let ok = TenantIssuer::new("https://h/realms/{tenant}")
            .tenants(["a"])
            .tenants(["b"]);
        ok.validate(false).unwrap();
        assert_eq!(ok.allowed_tenants().unwrap(), ["a", "b"]);
        assert_eq!(
            ok.advertised_issuers(),
            ["https://h/realms/a", "https://h/realms/b"]
        );
        assert_eq!(ok.template(), "https://h/realms/{tenant}");
        assert_eq!(ok.claim(), None);
        let any = TenantIssuer::new("https://h/{tenant}").allow_any_tenant_unrestricted();
        assert!(any.allowed_tenants().is_none());
        assert!(any.advertised_issuers().is_empty());
        let org = TenantIssuer::new("https://x.auth0.com/")
            .tenant_claim("org_id")
            .tenants(["org_1"]);
        org.validate(false).unwrap();
        assert_eq!(org.advertised_issuers(), ["https://x.auth0.com/"]);
    }

    // A policy's own lists are checked by `build`, by the code that
    // checks the global ones; its algorithms by `validate`.
    #[test]
    fn issuer_policies_are_validated() {
        assert_eq!(
            IssuerPolicy::new()
                .algorithms([])
                .validate()
                .unwrap_err()
                .field(),
            "issuer_policy"
        );
        for p in [
            IssuerPolicy::new().accept_audience(" "),
            IssuerPolicy::new().audience_rule(AudienceRule::CognitoClientIds(vec![])),
            IssuerPolicy::new().audience_rule(AudienceRule::CognitoClientIds(vec![" ".into()])),
            IssuerPolicy::new().scope_claims(["a..b"]),
            IssuerPolicy::new().scope_claims(Vec::<String>::new()),
        ] {
            let built = crate::AuthConfig::builder()
                .issuer("https://h")
                .resource("https://mcp.example.com/mcp")
                .issuer_policy("https://h", p.clone())
                .build();
            assert_eq!(built.unwrap_err().field(), "issuer_policy", "{p:?}");
        }
        IssuerPolicy::new()
            .accept_audience("x")
            .typ_policy(TypPolicy::AllowJwt)
            .validate()
            .unwrap();
    }
}
