//! What a token must satisfy, whichever verifier read it: one
//! [`TokenPolicy`], compiled once from an [`AuthConfig`], that the JWT
//! verifier (after JOSE: parse, key, signature) and the introspection
//! verifier (after HTTP: the endpoint's `active: true` answer) both call, so
//! the two cannot drift apart.
//!
//! The rules, in the order they are checked (cheapest first):
//! 1. `iss` is one of the configured issuers, compared exactly. A JWT must
//!    carry it; an introspection answer may leave it out (RFC 7662 section
//!    2.2), and then the issuer is the one whose endpoint answered (a fixed
//!    issuer: with tenant templates only, an answer without `iss` is
//!    refused, it names no tenant). An
//!    endpoint configured for one issuer
//!    ([`AuthConfigBuilder::issuer_introspection`](crate::AuthConfigBuilder::issuer_introspection))
//!    vouches only for that issuer's tokens; the shared endpoint
//!    ([`AuthConfigBuilder::introspection`](crate::AuthConfigBuilder::introspection))
//!    for every configured issuer. A tenant issuer
//!    ([`TenantIssuer`](crate::TenantIssuer)) matches an `iss` equal to its
//!    template with `{tenant}` filled by a tenant id (1 to 64 of
//!    `[A-Za-z0-9_-]`, else `tenant_invalid`) on its allowlist (else
//!    `tenant_not_allowed`), and its tenant claim, when configured, must be
//!    a string equal to that tenant (else `tenant_mismatch`); a template
//!    without a placeholder takes the tenant from the claim. Then the
//!    issuer's own rules ([`IssuerPolicy`](crate::IssuerPolicy): algorithms
//!    and `typ`, checked by the JWT verifier at this point; the audience
//!    rule and scope claims below).
//! 2. `exp` (a NumericDate, RFC 7519 section 2) not past, with the leeway. A
//!    JWT must carry it; an introspection answer without it is accepted (its
//!    cached result still expires with the cache TTL).
//! 3. `nbf` and `iat` not in the future (with the leeway).
//! 4. The lifetime cap: `exp` no further ahead than the maximum token
//!    lifetime, and `exp - iat` not longer than it.
//! 5. The audience (RFC 8707, RFC 9068 section 4, see [`AudienceRule`]).
//! 6. The claims do not name another kind of token: `token_use` other
//!    than `access` / `access_token`, `token_type` `refresh_token` /
//!    `refresh` / `id_token`, or Keycloak's `typ` claim `ID` / `Refresh` /
//!    `Offline` / `Logout` (any case), or an ID token's `at_hash` /
//!    `c_hash` / `s_hash` is refused (`not_an_access_token`): a refresh or
//!    ID token that names this server as its audience is still not an
//!    access token. With
//!    [`require_client_id`](crate::AuthConfigBuilder::require_client_id)
//!    (the Entra ID presets), a token naming no client (`client_id`, `azp`,
//!    `cid`, `appid`) is refused the same way: an ID token names its client
//!    only as its audience.
//! 7. `sub` a non-empty string (an introspection answer without `sub`
//!    takes its `client_id`, RFC 7662 tokens of the client credentials
//!    grant).
//! 8. Key binding: a token bound to a DPoP key (`cnf.jkt`, RFC 9449
//!    section 6) has the thumbprint recorded in its context, and the layer
//!    accepts it only with a DPoP proof made with that key, never as
//!    Bearer (section 7.2). Any other `cnf` (RFC 8705 `x5t#S256`, an empty
//!    one, ...) is refused, and so is an introspected token whose
//!    `token_type` is `DPoP` (any case) without `cnf.jkt`.
//!
//! # Audience comparison (MCP "Canonical Server URI", RFC 8707 section 2)
//!
//! An audience names this server when it equals the canonical resource URI,
//! or differs from it only in:
//! - the letter case of the scheme and the host (`HTTPS://MCP.Example.com/mcp`);
//! - for a root resource (`https://h`), a trailing slash (`https://h/`, which
//!   the MCP TypeScript SDK sends).
//!
//! Everything else is compared exactly: never by prefix or substring; a path
//! keeps its case and its trailing slash (`https://h/mcp/` does not name
//! `https://h/mcp`: below the root, the slash names another resource); ports,
//! queries, fragments, user information and percent-encodings are not
//! normalised. Audiences added with
//! [`accept_audience`](crate::AuthConfigBuilder::accept_audience) are
//! compared exactly.
//!
//! # Time
//!
//! All arithmetic on times saturates or is checked: an absurd `exp`
//! (`1e300`, `18446744073709551615`, negative, not a number) is refused
//! with a precise reason, never a panic, and deadlines computed from a
//! token never overflow `Instant` or `SystemTime` (see `crate::clock`).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::config::tenant::{TENANT_PLACEHOLDER, is_tenant_id};
use crate::config::{AudienceRule, AuthConfig, IssuerPolicy, TypPolicy};
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, Diagnosis};
use crate::json::{self, Members, as_str};

/// The rules every token must satisfy (see the module documentation).
#[derive(Debug)]
pub(crate) struct TokenPolicy {
    /// The configured issuers, in configuration order (indices are shared
    /// with the verifiers): the fixed issuers, then the tenant templates.
    issuers: Box<[IssuerEntry]>,
    resource: CanonicalResource,
    leeway: u64,
    max_lifetime: u64,
    /// Whether a token must name its client (`client_id`, `azp`, `cid` or
    /// `appid`): see [`AuthConfigBuilder::require_client_id`](crate::AuthConfigBuilder::require_client_id).
    require_client: bool,
    /// Whether any issuer accepts `typ: JWT` (the header check before the
    /// issuer is known; the issuer's own rule is applied after).
    any_allows_jwt: bool,
}

/// One configured issuer or tenant template and its rules.
#[derive(Debug)]
struct IssuerEntry {
    matcher: Matcher,
    rules: Arc<Rules>,
}

/// How `iss` is matched.
#[derive(Debug)]
enum Matcher {
    /// Exactly this issuer.
    Fixed(Arc<str>),
    /// A tenant template.
    Tenant(TenantMatcher),
}

/// A compiled [`TenantIssuer`](crate::TenantIssuer).
#[derive(Debug)]
struct TenantMatcher {
    /// The template before the placeholder (the whole issuer without one).
    prefix: Box<str>,
    /// The template after the placeholder; `None`: no placeholder, the
    /// tenant comes from the claim.
    suffix: Option<Box<str>>,
    /// The allowlist; `None`: any tenant.
    allowed: Option<Box<[Arc<str>]>>,
    claim: Option<Box<str>>,
}

/// What the tokens of one issuer must satisfy beyond the common rules.
#[derive(Debug)]
pub(crate) struct Rules {
    pub(crate) algorithms: Box<[crate::config::Algorithm]>,
    typ_policy: TypPolicy,
    extra_audiences: Box<[String]>,
    audience_rule: AudienceRule,
    scope_claims: Option<Box<[String]>>,
}

impl Rules {
    fn new(config: &AuthConfig, own: Option<&IssuerPolicy>) -> Self {
        let own = own.cloned().unwrap_or_default();
        Self {
            algorithms: own
                .algorithms
                .unwrap_or_else(|| config.algorithms.clone())
                .into_boxed_slice(),
            typ_policy: own.typ_policy.unwrap_or(config.typ_policy),
            extra_audiences: own
                .audiences
                .unwrap_or_else(|| config.extra_audiences.clone())
                .into_boxed_slice(),
            audience_rule: own
                .audience_rule
                .unwrap_or_else(|| config.audience_rule.clone()),
            scope_claims: own
                .scope_claims
                .or_else(|| config.scope_claims.clone())
                .map(Vec::into_boxed_slice),
        }
    }

    /// Whether the JOSE header `typ` is acceptable (RFC 9068 section 2.1,
    /// see [`TypPolicy`]).
    pub(crate) fn typ_allowed(&self, typ: Option<&str>) -> bool {
        typ_allowed(typ, self.typ_policy)
    }
}

/// Who handed the claims to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A signed JWT: `iss`, `exp` and `sub` are required.
    Jwt,
    /// An RFC 7662 answer from the introspection endpoint of the issuer at
    /// index `issuer` (the issuer when `iss` is absent). With `only_own`, an
    /// `iss` naming any other issuer is refused; without, any configured
    /// issuer is accepted.
    Introspection {
        /// Index of the issuer whose endpoint answered.
        issuer: usize,
        /// Whether the endpoint vouches for its own issuer only.
        only_own: bool,
    },
}

/// What [`TokenPolicy::check`] established.
#[derive(Debug)]
pub(crate) struct Checked<'c> {
    /// Index of the token's issuer (or tenant template).
    pub(crate) issuer: usize,
    /// The tenant, for a tenant issuer.
    pub(crate) tenant: Option<Arc<str>>,
    /// `exp`, always present for a JWT.
    pub(crate) exp: Option<u64>,
    /// Who the token is about.
    pub(crate) subject: Cow<'c, str>,
    /// `cnf.jkt`: the thumbprint of the key a DPoP-bound token is bound to.
    pub(crate) dpop_jkt: Option<Cow<'c, str>>,
}

impl TokenPolicy {
    /// Compiles the policy of `config`.
    pub(crate) fn new(config: &AuthConfig) -> Self {
        let fixed = config.issuers.iter().map(|i| IssuerEntry {
            matcher: Matcher::Fixed(Arc::from(i.issuer.as_str())),
            rules: Arc::new(Rules::new(config, i.policy.as_ref())),
        });
        let tenants = config.tenant_issuers.iter().map(|t| {
            let (prefix, suffix) = match t.template.split_once(TENANT_PLACEHOLDER) {
                Some((p, s)) => (p, Some(s.into())),
                None => (t.template.as_str(), None),
            };
            IssuerEntry {
                matcher: Matcher::Tenant(TenantMatcher {
                    prefix: prefix.into(),
                    suffix,
                    allowed: t
                        .allowed_tenants()
                        .map(|l| l.iter().map(|t| Arc::from(t.as_str())).collect()),
                    claim: t.tenant_claim.as_deref().map(Into::into),
                }),
                rules: Arc::new(Rules::new(config, t.policy.as_ref())),
            }
        });
        let issuers: Box<[IssuerEntry]> = fixed.chain(tenants).collect();
        Self {
            any_allows_jwt: issuers
                .iter()
                .any(|i| i.rules.typ_policy == TypPolicy::AllowJwt),
            issuers,
            resource: CanonicalResource::new(&config.resource),
            leeway: config.leeway.as_secs(),
            max_lifetime: config.max_token_lifetime.as_secs(),
            require_client: config.require_client_id,
        }
    }

    /// The leeway on time claims, in seconds.
    pub(crate) fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The fixed issuer at `index` (an index from [`Checked`] or the
    /// configuration's order); `None` for a tenant template.
    pub(crate) fn issuer(&self, index: usize) -> Option<&Arc<str>> {
        match &self.issuers.get(index)?.matcher {
            Matcher::Fixed(i) => Some(i),
            Matcher::Tenant(_) => None,
        }
    }

    /// The rules of the issuer at `index`.
    pub(crate) fn rules(&self, index: usize) -> Option<&Rules> {
        self.issuers.get(index).map(|i| &*i.rules)
    }

    /// Whether the JOSE header `typ` may be acceptable for some issuer (RFC
    /// 9068 section 2.1, see [`TypPolicy`]); the issuer's own rule is
    /// applied once the issuer is known.
    pub(crate) fn typ_allowed(&self, typ: Option<&str>) -> bool {
        let loosest = if self.any_allows_jwt {
            TypPolicy::AllowJwt
        } else {
            TypPolicy::AtJwt
        };
        typ_allowed(typ, loosest)
    }

    /// Checks `claims` at `now` (Unix seconds); returns the facts they
    /// established.
    pub(crate) fn check<'c>(
        &self,
        claims: &Members<'c>,
        now: u64,
        source: Source,
    ) -> Result<Checked<'c>, AuthError> {
        self.check_with(claims, now, source, |_| Ok(()))
    }

    /// [`check`](Self::check), with `issuer_rules` run as soon as the
    /// issuer is known (the JWT verifier checks the issuer's own algorithms
    /// and `typ` there, before the other claims).
    pub(crate) fn check_with<'c>(
        &self,
        claims: &Members<'c>,
        now: u64,
        source: Source,
        issuer_rules: impl FnOnce(&Rules) -> Result<(), AuthError>,
    ) -> Result<Checked<'c>, AuthError> {
        let (issuer, tenant) = self.check_issuer(claims, source)?;
        let rules = self.rules(issuer).ok_or(AuthErrorKind::InvalidIssuer)?;
        issuer_rules(rules)?;
        let leeway = self.leeway;
        let exp = numeric_date(claims.get("exp"))?;
        if exp.is_none() && source == Source::Jwt {
            return Err(AuthErrorKind::InvalidClaims.into());
        }
        if exp.is_some_and(|exp| now >= exp.saturating_add(leeway)) {
            return Err(AuthErrorKind::Expired.into());
        }
        let iat = numeric_date(claims.get("iat"))?;
        for t in [numeric_date(claims.get("nbf"))?, iat] {
            if t.is_some_and(|t| t > now.saturating_add(leeway)) {
                return Err(AuthErrorKind::NotYetValid.into());
            }
        }
        // A token that lives absurdly long is refused, whether it says so
        // (`exp - iat`) or not (`exp - now`).
        if let Some(exp) = exp {
            let max = self.max_lifetime;
            if exp > now.saturating_add(leeway).saturating_add(max)
                || iat.is_some_and(|iat| exp.saturating_sub(iat) > max)
            {
                return Err(AuthErrorKind::LifetimeTooLong.into());
            }
        }
        self.check_audience(claims, rules)?;
        check_token_kind(claims)?;
        // An ID token names its client only as its audience.
        if self.require_client && client_id(claims)?.is_none() {
            return Err(AuthErrorKind::NotAnAccessToken.into());
        }
        let subject = match (claims.str("sub"), source) {
            (Ok(Some(s)), _) if !s.is_empty() => s,
            // RFC 7662 section 2.2: `sub` is optional; a token of the client
            // credentials grant is about its client.
            (Ok(None), Source::Introspection { .. }) => match claims.str("client_id") {
                Ok(Some(c)) if !c.is_empty() => c,
                _ => return Err(AuthErrorKind::InvalidClaims.into()),
            },
            _ => return Err(AuthErrorKind::InvalidClaims.into()),
        };
        // RFC 9449 section 6: a token bound to a DPoP key carries its
        // thumbprint in `cnf.jkt`; the layer accepts it only with a proof
        // made with that key (never as Bearer, section 7.2). Any other
        // binding (`x5t#S256` of RFC 8705, ...) cannot be proven here:
        // refused, alone or beside `jkt` (RFC 7800 section 3: each member
        // of `cnf` is a confirmation method the presenter must satisfy).
        let dpop_jkt = match claims.get("cnf") {
            None => None,
            Some(cnf) => {
                let jkt = Members::parse(cnf.get())
                    .ok()
                    .filter(|m| m.iter().all(|(name, _)| name == "jkt"))
                    .and_then(|m| m.str("jkt").ok().flatten())
                    .filter(|j| !j.is_empty());
                match jkt {
                    Some(jkt) => Some(jkt),
                    None => return Err(AuthErrorKind::SenderConstrainedToken.into()),
                }
            }
        };
        // RFC 9449 section 6.2: an introspection answer says `token_type:
        // DPoP` for a DPoP-bound token (compared case-insensitively, RFC 9449
        // section 7.1); without `cnf.jkt` its key is unknown: refused.
        if matches!(source, Source::Introspection { .. }) {
            match claims.str("token_type") {
                Ok(Some(t)) if t.trim().eq_ignore_ascii_case("DPoP") && dpop_jkt.is_none() => {
                    return Err(AuthErrorKind::SenderConstrainedToken.into());
                }
                // Other proof-of-possession types this server cannot check
                // (found from outside: accepted as Bearer tokens).
                Ok(Some(t))
                    if ["mac", "pop"]
                        .iter()
                        .any(|k| t.trim().eq_ignore_ascii_case(k)) =>
                {
                    return Err(AuthErrorKind::SenderConstrainedToken.into());
                }
                Ok(_) => {}
                Err(()) => return Err(AuthErrorKind::InvalidClaims.into()),
            }
        }
        Ok(Checked {
            issuer,
            tenant,
            exp,
            subject,
            dpop_jkt,
        })
    }

    /// Rule 1: the index of the token's issuer, and its tenant.
    fn check_issuer(
        &self,
        claims: &Members<'_>,
        source: Source,
    ) -> Result<(usize, Option<Arc<str>>), AuthError> {
        let invalid = || AuthError::new(AuthErrorKind::InvalidIssuer);
        let named = match claims.str("iss") {
            Ok(Some(iss)) => Some(self.find_issuer(&iss, claims).map_err(|err| {
                // A token from an issuer this server does not trust, or
                // from a tenant it does not admit (a cross-tenant
                // attempt): the operator sees which issuer, as a digest,
                // in the audit event.
                err.with_diagnosis(Diagnosis {
                    untrusted_issuer: Some(Diagnosis::digest(&iss)),
                    issuer_slash: self.differs_by_a_slash(&iss),
                    ..Diagnosis::default()
                })
            })?),
            Ok(None) => None,
            Err(()) => return Err(invalid()),
        };
        match (source, named) {
            (Source::Jwt, Some(i)) => Ok(i),
            (Source::Jwt, None) => Err(invalid()),
            // An answer without `iss` (RFC 7662 makes it optional) is the
            // answering endpoint's issuer's only when that endpoint speaks
            // for one fixed issuer: its own settings or discovered from it,
            // or a shared endpoint with one issuer configured. A shared
            // endpoint given for several issuers (or a template) must say
            // whose token it was (found from outside: issuer B's user
            // `alice`, answered without `iss`, was taken as the first
            // issuer's `alice`, her notes and exchanged token included).
            (Source::Introspection { issuer, only_own }, None) => {
                let one_fixed = matches!(
                    &*self.issuers,
                    [IssuerEntry {
                        matcher: Matcher::Fixed(_),
                        ..
                    }]
                );
                if only_own || one_fixed {
                    Ok((issuer, None))
                } else {
                    Err(invalid())
                }
            }
            (Source::Introspection { issuer, only_own }, Some(i)) => {
                if only_own && i.0 != issuer {
                    Err(invalid())
                } else {
                    Ok(i)
                }
            }
        }
    }

    /// The issuer entry `iss` names: a fixed issuer exactly, else a tenant
    /// template filled with one allowed tenant id (and the tenant claim
    /// agreeing). No network, no allocation for a fixed issuer.
    fn find_issuer(
        &self,
        iss: &str,
        claims: &Members<'_>,
    ) -> Result<(usize, Option<Arc<str>>), AuthError> {
        let mut refusal = AuthErrorKind::InvalidIssuer;
        for (index, entry) in self.issuers.iter().enumerate() {
            match &entry.matcher {
                Matcher::Fixed(i) if **i == *iss => return Ok((index, None)),
                Matcher::Fixed(_) => {}
                Matcher::Tenant(t) => match t.tenant_of(iss, claims) {
                    Ok(Some(tenant)) => return Ok((index, Some(tenant))),
                    Ok(None) => {}
                    // The issuer is this template's: its refusal is final
                    // unless a later template accepts the token (the first
                    // template's reason is the one given).
                    Err(kind) if refusal == AuthErrorKind::InvalidIssuer => refusal = kind,
                    Err(_) => {}
                },
            }
        }
        Err(refusal.into())
    }

    /// Whether `iss` equals a fixed trusted issuer but for a trailing `/`
    /// (a refusal's diagnosis only).
    fn differs_by_a_slash(&self, iss: &str) -> bool {
        let bare = iss.strip_suffix('/').unwrap_or(iss);
        self.issuers.iter().any(|entry| match &entry.matcher {
            Matcher::Fixed(i) => **i != *iss && i.strip_suffix('/').unwrap_or(i) == bare,
            Matcher::Tenant(_) => false,
        })
    }

    /// Whether `aud` names this server (see "Audience comparison" in the
    /// module documentation) under `rules`.
    fn names_us(&self, aud: &str, rules: &Rules) -> bool {
        self.resource.matches(aud) || rules.extra_audiences.iter().any(|x| x == aud)
    }

    /// Whether a value of the token's `aud` (a string, or an array of
    /// strings) is one `pred` takes.
    fn any_audience(claims: &Members<'_>, pred: impl Fn(&str) -> bool) -> bool {
        match claims.get("aud") {
            Some(aud) if aud.get().starts_with('[') => {
                json::str_array(aud).is_ok_and(|list| list.iter().any(|a| pred(a)))
            }
            Some(aud) => as_str(aud).is_ok_and(|a| pred(&a)),
            None => false,
        }
    }

    /// Rule 5. RFC 8707 / RFC 9068 section 4: `aud` must contain our resource
    /// (or an audience explicitly configured for this server). Under the
    /// Cognito rule, which has no `aud`, `token_use` must be `access` (else
    /// `not_an_access_token`) and `client_id` one of the configured clients;
    /// an `aud`, if present, must still name us.
    fn check_audience(&self, claims: &Members<'_>, rules: &Rules) -> Result<(), AuthError> {
        let invalid = || AuthError::new(AuthErrorKind::InvalidAudience);
        let audience_ok = match claims.get("aud") {
            // Every member must be a string, even after a match.
            Some(aud) if aud.get().starts_with('[') => json::str_array(aud)
                .map_err(|()| invalid())?
                .iter()
                .any(|a| self.names_us(a, rules)),
            Some(aud) => as_str(aud).is_ok_and(|a| self.names_us(&a, rules)),
            None => matches!(rules.audience_rule, AudienceRule::CognitoClientIds(_)),
        };
        if !audience_ok {
            // The audience the token carried, for the operator (audit).
            let audience = match claims.get("aud") {
                Some(aud) if aud.get().starts_with('[') => json::str_array(aud).unwrap_or_default(),
                Some(aud) => as_str(aud).map(|a| vec![a]).unwrap_or_default(),
                None => Vec::new(),
            };
            // An ID token's shape: no client named, or its audience its
            // own client's id (OpenID Connect allows `azp` in an ID token,
            // equal to its audience).
            let client = client_id(claims).ok().flatten();
            let names_no_client = client
                .as_deref()
                .is_none_or(|c| audience.iter().any(|a| *a == *c));
            return Err(invalid().with_diagnosis(Diagnosis {
                audience: audience
                    .iter()
                    .take(Diagnosis::MAX_VALUES)
                    .map(|a| Diagnosis::clean(a))
                    .collect(),
                names_no_client,
                ..Diagnosis::default()
            }));
        }
        // An audience this server was told to accept besides its resource
        // (an application ID) that is the token's own client's id: the
        // client's own token, as an OpenID Connect ID token is (its `aud`
        // and `azp` the client's id), not one issued for this server
        // (found from outside: an ID token naming its client in `azp` passed
        // once that id was accepted). Read only for a token that names no
        // resource of ours.
        // Every client claim is read (found from outside: a `client_id`
        // naming another client hid an `azp` equal to the audience), and
        // compared with every accepted audience, not only the one the token
        // names (found from outside: with an application ID and its
        // `api://` URI both accepted, Entra's two names of one app, the
        // app's token for itself passed naming one in `aud` and the other
        // in `appid`).
        if !rules.extra_audiences.is_empty()
            && !Self::any_audience(claims, |a| self.resource.matches(a))
            && client_claims(claims)
                .flatten()
                .any(|client| rules.extra_audiences.iter().any(|x| **x == *client))
        {
            return Err(AuthErrorKind::NotAnAccessToken.into());
        }
        if let AudienceRule::CognitoClientIds(clients) = &rules.audience_rule {
            // Another kind of token (an ID token's `id`), or one that does
            // not say: not an access token (the `typ` header is not at issue).
            if !matches!(claims.str("token_use"), Ok(Some(u)) if u == "access") {
                return Err(AuthErrorKind::NotAnAccessToken.into());
            }
            let client = claims.str("client_id").ok().flatten();
            if !client.is_some_and(|c| clients.iter().any(|x| *x == *c)) {
                return Err(invalid());
            }
        }
        Ok(())
    }

    /// The granted scopes: from the configured
    /// [`scope_claims`](crate::AuthConfigBuilder::scope_claims), else `scope`
    /// or, when absent, `scp`.
    pub(crate) fn scopes(
        &self,
        claims: &Members<'_>,
        issuer: usize,
    ) -> Result<Vec<Box<str>>, AuthError> {
        let rules = self.rules(issuer).ok_or(AuthErrorKind::InvalidIssuer)?;
        match &rules.scope_claims {
            Some(paths) => scopes_from_paths(claims, paths),
            None => scopes_from_claims(claims),
        }
    }

    /// The context of claims that passed [`check`](Self::check): issuer,
    /// subject, scopes, expiry and client stored directly, the other claims
    /// kept as their JSON text (copied, not serialized again) and parsed
    /// only if a handler asks for them.
    pub(crate) fn context(
        &self,
        claims: &Members<'_>,
        checked: &Checked<'_>,
    ) -> Result<AuthContext, AuthError> {
        let scopes = self.scopes(claims, checked.issuer)?;
        let issuer = match self.issuer(checked.issuer) {
            Some(fixed) => Arc::clone(fixed),
            // A tenant issuer: the concrete `iss` (checked against the
            // template), or for an introspection answer without one the
            // template is never the answering issuer (fixed issuers only).
            None => match claims.str("iss") {
                Ok(Some(iss)) => Arc::from(iss.as_ref()),
                _ => return Err(AuthErrorKind::InvalidIssuer.into()),
            },
        };
        let mut b = AuthContext::builder_shared(issuer, checked.subject.as_ref().into())
            .boxed_scopes(scopes.into_boxed_slice());
        if let Some(tenant) = &checked.tenant {
            b = b.shared_tenant(Arc::clone(tenant));
        }
        if let Some(exp) = checked.exp {
            b = b.expires_at_unix(exp);
        }
        if let Some(c) = client_id(claims)? {
            b = b.client_id(c);
        }
        if let Some(jkt) = &checked.dpop_jkt {
            b = b.dpop_thumbprint(jkt.as_ref());
        }
        // Audience, token id and raw claims are derived from the JSON on first
        // use; the members stored directly are left out of it (memory per
        // cached token) and put back then.
        let client_id_taken = claims.get("client_id").is_some_and(|c| as_str(c).is_ok());
        let rest = claims.to_json_without(|name, raw| match name {
            "iss" | "sub" => false,
            "exp" => checked.exp.is_none() || raw.get().parse::<u64>().is_err(),
            "client_id" => !client_id_taken,
            _ => true,
        });
        Ok(b.rest_claims(rest.into_boxed_str(), client_id_taken)
            .build())
    }
}

impl TenantMatcher {
    /// The tenant of a token whose issuer is `iss`: `Ok(None)` when `iss`
    /// is not this template's; refused when it is but the tenant is not a
    /// tenant id (`tenant_invalid`), not allowed (`tenant_not_allowed`), or
    /// disagrees with the tenant claim (`tenant_mismatch`).
    fn tenant_of(
        &self,
        iss: &str,
        claims: &Members<'_>,
    ) -> Result<Option<Arc<str>>, AuthErrorKind> {
        let Some(rest) = iss.strip_prefix(&*self.prefix) else {
            return Ok(None);
        };
        let claimed = || match &self.claim {
            None => Ok(None),
            Some(name) => match claims.str(name) {
                Ok(Some(value)) => Ok(Some(value)),
                _ => Err(()),
            },
        };
        let tenant = match &self.suffix {
            Some(suffix) => {
                let Some(tenant) = rest.strip_suffix(&**suffix) else {
                    return Ok(None);
                };
                if !is_tenant_id(tenant) {
                    return Err(AuthErrorKind::TenantInvalid);
                }
                match claimed() {
                    Ok(None) => {}
                    Ok(Some(c)) if *c == *tenant => {}
                    _ => return Err(AuthErrorKind::TenantMismatch),
                }
                tenant
            }
            // No placeholder: the issuer is the template itself, the tenant
            // is the claim.
            None => {
                if !rest.is_empty() {
                    return Ok(None);
                }
                match claimed() {
                    Ok(Some(c)) if is_tenant_id(&c) => return self.allowed(&c).map(Some),
                    _ => return Err(AuthErrorKind::TenantInvalid),
                }
            }
        };
        self.allowed(tenant).map(Some)
    }

    /// The shared copy of an allowed tenant id.
    fn allowed(&self, tenant: &str) -> Result<Arc<str>, AuthErrorKind> {
        match &self.allowed {
            None => Ok(Arc::from(tenant)),
            Some(list) => list
                .iter()
                .find(|t| ***t == *tenant)
                .cloned()
                .ok_or(AuthErrorKind::TenantNotAllowed),
        }
    }
}

/// The client claims, in order of precedence: RFC 9068 `client_id`; else
/// what providers use: `azp` (OpenID, Auth0, Keycloak, Entra v2), `cid`
/// (Okta), `appid` (Entra v1).
const CLIENT_CLAIMS: [&str; 4] = ["client_id", "azp", "cid", "appid"];

/// The client a token was issued to: the first of [`CLIENT_CLAIMS`]
/// present. Every one present must be a non-empty string, else the token
/// is malformed (`invalid_claims`), as a `sub` would be: skipping one would
/// let a later member, or none, stand for the client, and sessions are
/// bound to it (found from outside: `azp: ["x"]` passed beside a
/// `client_id`, refused alone).
fn client_id<'c>(claims: &Members<'c>) -> Result<Option<Cow<'c, str>>, AuthError> {
    let mut first = None;
    for client in client_claims(claims) {
        let client = client?;
        first.get_or_insert(client);
    }
    Ok(first)
}

/// Each client claim present, in the order of [`CLIENT_CLAIMS`]; one that
/// is not a non-empty string is `invalid_claims`.
fn client_claims<'a, 'c>(
    claims: &'a Members<'c>,
) -> impl Iterator<Item = Result<Cow<'c, str>, AuthError>> + 'a {
    CLIENT_CLAIMS
        .iter()
        .filter_map(move |name| match claims.str(name) {
            Ok(None) => None,
            Ok(Some(client)) if !client.is_empty() => Some(Ok(client)),
            Ok(Some(_)) | Err(()) => Some(Err(AuthErrorKind::InvalidClaims.into())),
        })
}

/// The resource URI split for the canonical comparison.
#[derive(Debug)]
struct CanonicalResource {
    /// The canonical form (lowercase scheme and host, root without a slash).
    full: Box<str>,
    scheme: Box<str>,
    authority: Box<str>,
    /// The path after its first `/`; `None` for the root.
    path: Option<Box<str>>,
}

/// `scheme://authority` and the path after its first `/` (`None` when the
/// URI has no path). `None` when `uri` has no `://`.
fn split_uri(uri: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = uri.split_once("://")?;
    Some(match rest.split_once('/') {
        Some((authority, path)) => (scheme, authority, Some(path)),
        None => (scheme, rest, None),
    })
}

impl CanonicalResource {
    fn new(canonical: &str) -> Self {
        let (scheme, authority, path) = split_uri(canonical).unwrap_or((canonical, "", None));
        Self {
            full: canonical.into(),
            scheme: scheme.into(),
            authority: authority.into(),
            path: path.filter(|p| !p.is_empty()).map(Into::into),
        }
    }

    /// Whether `aud` names this resource (see "Audience comparison" in the
    /// module documentation). No allocation.
    fn matches(&self, aud: &str) -> bool {
        if *aud == *self.full {
            return true;
        }
        let Some((scheme, authority, path)) = split_uri(aud) else {
            return false;
        };
        let path_ok = match (&self.path, path) {
            // The root: `https://h` or `https://h/`.
            (None, None | Some("")) => true,
            (Some(ours), Some(theirs)) => **ours == *theirs,
            _ => false,
        };
        path_ok
            && scheme.eq_ignore_ascii_case(&self.scheme)
            && authority.eq_ignore_ascii_case(&self.authority)
    }
}

/// Rule 6: the claims do not say the token is another kind than an access
/// token. An introspection endpoint may answer `active: true` for a
/// refresh token (RFC 7662 section 2.2 lets it look the token up among
/// every kind), and a provider may sign ID tokens with the keys of its
/// access tokens; neither is an access token (RFC 6749 section 1.5, OpenID
/// Connect Core section 2), whatever its audience. Refused, compared
/// case-insensitively:
/// - `token_use` (Cognito `access` / `id`, Ory Hydra `access_token` /
///   `refresh_token`) other than `access` or `access_token`;
/// - `token_type` `refresh_token`, `refresh`, `id_token`, their RFC 8693
///   identifiers or `N_A` (RFC 7662 `token_type` names an access token
///   type: `Bearer`, `DPoP`), whitespace around them ignored;
/// - Keycloak's `typ` claim `ID`, `Refresh`, `Offline` or `Logout` (its
///   access tokens say `Bearer`);
/// - an OpenID Connect ID token's `at_hash`, `c_hash` or `s_hash`, of any
///   value (with an audience that is also a client's id, an ID token
///   issued to that client would otherwise pass).
///
/// One of these members of another JSON type than a string is
/// `invalid_claims`.
fn check_token_kind(claims: &Members<'_>) -> Result<(), AuthError> {
    let refused = || AuthError::new(AuthErrorKind::NotAnAccessToken);
    // Compared trimmed too: `"DPoP "` or `" refresh_token"` is the same
    // word to whoever wrote it (found from outside: a trailing space made
    // a DPoP-bound answer a Bearer token).
    let is_any = |name: &str, values: &[&str]| -> Result<bool, AuthError> {
        match claims.str(name) {
            Ok(None) => Ok(false),
            Ok(Some(v)) => Ok(values.iter().any(|x| v.trim().eq_ignore_ascii_case(x))),
            Err(()) => Err(AuthErrorKind::InvalidClaims.into()),
        }
    };
    if claims.contains("token_use") && !is_any("token_use", &["access", "access_token"])? {
        return Err(refused());
    }
    if is_any(
        "token_type",
        &[
            "refresh_token",
            "refresh",
            "id_token",
            // RFC 8693 section 3's token type identifiers, and its `N_A`
            // (section 2.2.1: not an access token).
            "urn:ietf:params:oauth:token-type:refresh_token",
            "urn:ietf:params:oauth:token-type:id_token",
            "N_A",
        ],
    )? || is_any("typ", &["id", "refresh", "offline", "logout"])?
    {
        return Err(refused());
    }
    // OpenID Connect Core sections 3.1.3.6 and 3.3.2.11 (and FAPI 1.0's
    // `s_hash`): an ID token's hashes of the access token, code and state
    // issued beside it. No access token carries a hash of itself, so their
    // presence marks an ID token whatever its audience or `typ`. (`nonce`
    // is not used: some providers copy it into access tokens.)
    if ["at_hash", "c_hash", "s_hash"]
        .iter()
        .any(|name| claims.contains(name))
    {
        return Err(refused());
    }
    Ok(())
}

/// RFC 9068 section 2.1: `at+jwt`, compared case-insensitively, with or
/// without the `application/` prefix (RFC 7515 section 4.1.9).
fn typ_allowed(typ: Option<&str>, policy: TypPolicy) -> bool {
    let Some(typ) = typ else {
        return policy == TypPolicy::AllowJwt;
    };
    let prefix = "application/";
    let t = match (typ.get(..prefix.len()), typ.get(prefix.len()..)) {
        (Some(p), Some(rest)) if p.eq_ignore_ascii_case(prefix) => rest,
        _ => typ,
    };
    if t.eq_ignore_ascii_case("at+jwt") {
        true
    } else {
        t.eq_ignore_ascii_case("jwt") && policy == TypPolicy::AllowJwt
    }
}

/// A NumericDate claim (see [`json::numeric_date`]); anything but one is
/// an invalid claim.
fn numeric_date(raw: Option<&RawValue>) -> Result<Option<u64>, AuthError> {
    raw.map(|raw| {
        json::numeric_date(raw).ok_or_else(|| AuthError::new(AuthErrorKind::InvalidClaims))
    })
    .transpose()
}

/// The scopes of a claim value: a space-separated string or an array of
/// strings; anything else is an invalid claim, and so is a scope holding a
/// control character (U+0000 to U+001F, U+007F), which no scope token may
/// (RFC 6749 section 3.3): found from outside, an introspection answer's
/// `"notes:read\tnotes:write"` reached the handlers as one scope.
fn scope_list(
    raw: &RawValue,
    out: &mut Vec<Box<str>>,
    scope_tokens: bool,
) -> Result<(), AuthError> {
    let invalid = || {
        AuthError::new(AuthErrorKind::InvalidClaims).with_diagnosis(Diagnosis {
            claim_hint: Some(if scope_tokens {
                SCOPE_CLAIM_HINT
            } else {
                SCOPE_PATH_HINT
            }),
            ..Diagnosis::default()
        })
    };
    let mut add = |scope: &str| {
        if scope.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(invalid());
        }
        // RFC 6749 section 3.3: a scope token is printable ASCII but for
        // `"` and `\` (NQCHAR), the rule `required_scopes` is held to. A
        // value of the `scope` or `scp` claim that is none (a space inside
        // an `scp` element, a no-break or zero-width space, a right-to-left
        // override, `"`) is no scope: left out, never granted nor shown
        // in `scopes()` (found from outside: each was one scope a handler
        // could misread). The token keeps its other scopes: an
        // authorization server may grant such a text beside real scopes
        // (found from outside, earlier: refusing the call over it was
        // wrong). A configured claim path other than `scope`/`scp` holds
        // role or group names, which may have spaces (Keycloak's may).
        if scope_tokens && !scope.bytes().all(crate::config::url::is_nqchar) {
            // Said at DEBUG (once per token: verified tokens are cached), so
            // that an operator asking why a scope is not granted can see
            // it; the value itself is not written (it may be anything).
            tracing::debug!(
                bytes = scope.len(),
                "a scope or scp value that is no scope token (RFC 6749 section 3.3) was left out"
            );
            return Ok(());
        }
        if !scope.is_empty() {
            out.push(scope.into());
        }
        Ok(())
    };
    if raw.get().starts_with('[') {
        for scope in json::str_array(raw).map_err(|()| invalid())?.iter() {
            add(scope)?;
        }
    } else {
        for scope in as_str(raw).map_err(|()| invalid())?.split(' ') {
            add(scope)?;
        }
    }
    dedup_in_order(out);
    Ok(())
}

/// The audit `hint` of a `scope` / `scp` claim refused.
const SCOPE_CLAIM_HINT: &str = "the token's scope (or scp) claim holds a control character (RFC 6749 section 3.3), or is neither a string nor an array of strings";

/// The audit `hint` of a token refused for a `typ` of `JWT` or none.
const TYP_JWT_HINT: &str = "the token's header says typ JWT, or no typ: Keycloak, Auth0, Entra ID, Okta and Cognito do not issue RFC 9068 (at+jwt) access tokens; accept typ JWT with MCP_OAUTH2_ACCEPT_JWT_TYP=1 (AuthConfigBuilder::typ_policy) or the provider's preset, and bind its tokens to this server by their audience";

/// The audit `hint` of a token refused for another `typ`.
const TYP_OTHER_HINT: &str = "the token's header names another kind of token in typ (not at+jwt or JWT): an ID token, a logout token or a proof is not an access token";

/// The refusal of a token whose `typ` header (`typ`, absent when `None`)
/// the policy does not accept, with the audit event's hint: a provider's
/// plain `JWT` is the common case (found from outside: every Keycloak,
/// Auth0, Entra ID, Okta and Cognito token refused, and nothing said how
/// to accept them).
pub(crate) fn invalid_type(typ: Option<&str>) -> AuthError {
    let plain = typ.is_none_or(|t| {
        let t = t
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(t, |_| t.get(12..).unwrap_or_default());
        t.eq_ignore_ascii_case("jwt")
    });
    AuthError::new(AuthErrorKind::InvalidType).with_diagnosis(Diagnosis {
        claim_hint: Some(if plain { TYP_JWT_HINT } else { TYP_OTHER_HINT }),
        ..Diagnosis::default()
    })
}

/// The audit `hint` of a configured scope claim path refused.
const SCOPE_PATH_HINT: &str = "the claim at a configured scope claim path holds a control character, or is neither a string nor an array of strings";

/// Removes repeated scopes, keeping the first of each in order. A short
/// list (every real token's) is compared pairwise; a long one (an
/// introspection answer may hold tens of thousands) through a set, so that
/// the cost stays linear.
fn dedup_in_order(out: &mut Vec<Box<str>>) {
    const PAIRWISE_UP_TO: usize = 16;
    let keep: Vec<bool> = if out.len() <= PAIRWISE_UP_TO {
        out.iter()
            .enumerate()
            .map(|(i, s)| !out.iter().take(i).any(|earlier| earlier == s))
            .collect()
    } else {
        let mut seen = std::collections::HashSet::with_capacity(out.len());
        out.iter().map(|s| seen.insert(&**s)).collect()
    };
    let mut keep = keep.into_iter();
    out.retain(|_| keep.next().unwrap_or(true));
}

/// Scopes from `scope` (RFC 9068 section 2.2.3, a space-separated string) or,
/// when absent, `scp` (a string or an array of strings, as Entra ID and Okta
/// send). A scope claim of any other shape is refused.
fn scopes_from_claims(claims: &Members<'_>) -> Result<Vec<Box<str>>, AuthError> {
    let mut out = Vec::new();
    match (claims.get("scope"), claims.get("scp")) {
        (Some(scope), _) => {
            if !scope.get().starts_with('"') {
                return Err(AuthErrorKind::InvalidClaims.into());
            }
            scope_list(scope, &mut out, true)?;
        }
        (None, Some(scp)) => scope_list(scp, &mut out, true)?,
        (None, None) => {}
    }
    Ok(out)
}

/// Scopes from configured claim paths (dot-separated, e.g. `permissions` or
/// `realm_access.roles`), merged in order without duplicates. Each present
/// claim must be a space-separated string or an array of strings.
fn scopes_from_paths(claims: &Members<'_>, paths: &[String]) -> Result<Vec<Box<str>>, AuthError> {
    let mut out: Vec<Box<str>> = Vec::new();
    for path in paths {
        let mut parts = path.split('.');
        let mut value = parts.next().and_then(|first| claims.get(first));
        for part in parts {
            // A step into anything but an object finds nothing.
            value = value
                .filter(|v| v.get().starts_with('{'))
                .and_then(|v| Members::parse(v.get()).ok())
                .and_then(|m| m.get(part));
        }
        if let Some(value) = value {
            // A path naming `scope` or `scp` (the presets' `scp`) reads
            // scope tokens; another reads role or group names.
            let scope_tokens = matches!(path.as_str(), "scope" | "scp");
            scope_list(value, &mut out, scope_tokens)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_scopes_are_dropped_in_order_short_and_long() {
        let boxed = |v: &[&str]| v.iter().map(|s| Box::<str>::from(*s)).collect::<Vec<_>>();
        let mut short = boxed(&["b", "a", "b", "c", "a"]);
        dedup_in_order(&mut short);
        assert_eq!(short, boxed(&["b", "a", "c"]));
        // A long list (past the pairwise threshold): the same rule, and an
        // introspection-sized answer of 60,000 scopes stays linear.
        let mut long: Vec<Box<str>> = (0..60_000)
            .map(|i| format!("s{}", i % 20_000).into())
            .collect();
        dedup_in_order(&mut long);
        assert_eq!(long.len(), 20_000);
        assert!(
            long.iter()
                .enumerate()
                .all(|(i, s)| **s == *format!("s{i}"))
        );
        let raw =
            serde_json::value::RawValue::from_string(r#"["x","y","x","","z","y"]"#.to_owned())
                .unwrap();
        let mut out = boxed(&["y"]);
        scope_list(&raw, &mut out, true).unwrap();
        assert_eq!(out, boxed(&["y", "x", "z"]));
    }

    #[test]
    fn typ_policy() {
        use TypPolicy::*;
        assert!(typ_allowed(Some("at+jwt"), AtJwt));
        assert!(typ_allowed(Some("application/AT+JWT"), AtJwt));
        assert!(!typ_allowed(Some("JWT"), AtJwt));
        assert!(!typ_allowed(None, AtJwt));
        assert!(typ_allowed(Some("JWT"), AllowJwt));
        assert!(typ_allowed(None, AllowJwt));
        assert!(!typ_allowed(Some("dpop+jwt"), AllowJwt));
        assert!(!typ_allowed(Some("id_token+jwt"), AllowJwt));
        // A multi-byte character where the prefix would end: no panic.
        assert!(!typ_allowed(Some("applicationé/at+jwt"), AllowJwt));
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn numeric_dates() {
        let date = |t: &str| numeric_date(Some(&raw(t)));
        assert_eq!(date("5").unwrap(), Some(5));
        assert_eq!(date("5.9").unwrap(), Some(5));
        assert_eq!(date("5e2").unwrap(), Some(500));
        assert_eq!(date("-0").unwrap(), Some(0));
        assert_eq!(date("-0.0").unwrap(), Some(0));
        assert_eq!(date("18446744073709551615").unwrap(), Some(u64::MAX));
        assert!(date("-1").is_err());
        assert!(date("\"5\"").is_err());
        assert!(date("1e300").is_err());
        assert!(date("1e30").is_err());
        assert!(date("18446744073709551616").is_err());
        assert!(date("null").is_err());
        assert_eq!(numeric_date(None).unwrap(), None);
    }

    // MCP "Canonical Server URI"; RFC 8707 section 2.
    #[test]
    fn canonical_audience_comparison() {
        let mcp = CanonicalResource::new("https://mcp.example.com/mcp");
        for ok in [
            "https://mcp.example.com/mcp",
            "HTTPS://MCP.Example.COM/mcp",
            "https://MCP.EXAMPLE.COM/mcp",
        ] {
            assert!(mcp.matches(ok), "{ok}");
        }
        for bad in [
            "https://mcp.example.com/mcp/",
            "https://mcp.example.com/MCP",
            "https://mcp.example.com/mcp/x",
            "https://mcp.example.com/mc",
            "https://mcp.example.com",
            "https://mcp.example.com/",
            "https://mcp.example.com/mcp?x",
            "https://mcp.example.com/mcp#x",
            "https://mcp.example.com:443/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com.evil/mcp",
            "https://user@mcp.example.com/mcp",
            "mcp.example.com/mcp",
            "",
            "https://",
            "https://mcp.éxample.com/mcp",
        ] {
            assert!(!mcp.matches(bad), "{bad}");
        }
        let root = CanonicalResource::new("https://h.example");
        for ok in [
            "https://h.example",
            "https://h.example/",
            "HTTPS://H.Example/",
        ] {
            assert!(root.matches(ok), "{ok}");
        }
        for bad in [
            "https://h.example//",
            "https://h.example/mcp",
            "https://h.example.com",
            "https://h.exampl",
        ] {
            assert!(!root.matches(bad), "{bad}");
        }
        let slash = CanonicalResource::new("https://h.example/mcp/");
        assert!(slash.matches("https://H.example/mcp/"));
        assert!(!slash.matches("https://h.example/mcp"));
    }

    #[test]
    fn scope_claim_shapes() {
        let scopes = |text: &str| {
            scopes_from_claims(&Members::parse(text).unwrap())
                .map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(scopes(r#"{"scope": "a  b a"}"#).unwrap(), ["a", "b"]);
        assert_eq!(scopes(r#"{"scp": ["a", "b"]}"#).unwrap(), ["a", "b"]);
        assert_eq!(scopes(r#"{"scp": "a b"}"#).unwrap(), ["a", "b"]);
        assert_eq!(scopes(r#"{"scope": "a", "scp": ["b"]}"#).unwrap(), ["a"]);
        assert_eq!(scopes(r#"{"sub": "x"}"#).unwrap(), Vec::<String>::new());
        assert!(scopes(r#"{"scope": ["a"]}"#).is_err());
        assert!(scopes(r#"{"scope": 1}"#).is_err());
        assert!(scopes(r#"{"scp": [1]}"#).is_err());
        assert!(scopes(r#"{"scp": {"a": 1}}"#).is_err());
        // A control character in a scope, however it is spelled.
        for claims in [
            r#"{"scope": "a\tb"}"#,
            r#"{"scope": "a\nb c"}"#,
            r#"{"scope": "a \u0000"}"#,
            r#"{"scp": ["a", "b\u007f"]}"#,
            r#"{"scp": "a\rb"}"#,
        ] {
            assert!(scopes(claims).is_err(), "{claims}");
        }
        // A value that is no scope token (RFC 6749 section 3.3: printable
        // ASCII but for space, `"` and `\`) is left out, the token's other
        // scopes kept (found from outside: each was taken as one scope).
        for claims in [
            r#"{"scp": ["notes:read notes:write", "b"]}"#,
            r#"{"scp": ["b", " a"]}"#,
            r#"{"scope": "notes:read\u00a0notes:write b"}"#,
            r#"{"scp": "a\u2003a b"}"#,
            r#"{"scope": "b \u3000"}"#,
            r#"{"scp": ["a\u00e9", "b"]}"#,
            r#"{"scope": "notes:read\u200b b"}"#,
            r#"{"scope": "\ufeffnotes:read b"}"#,
            r#"{"scp": ["admin\u202e", "b"]}"#,
            r#"{"scope": "a\u00adb b"}"#,
            r#"{"scope": "notes\uff1aread b"}"#,
            r#"{"scope": "a\"b b"}"#,
            r#"{"scp": ["a\\b", "b"]}"#,
        ] {
            assert_eq!(scopes(claims).unwrap(), ["b"], "{claims}");
        }
        // Every other printable ASCII character is one.
        let all: String = (0x21u8..=0x7e)
            .filter(|b| *b != b'"' && *b != b'\\')
            .map(char::from)
            .collect();
        assert_eq!(
            scopes(&format!(r#"{{"scope": "{all}"}}"#)).unwrap(),
            std::slice::from_ref(&all)
        );
    }

    /// A value left out is said at DEBUG, without the value (an operator
    /// asking why a scope is not granted sees why; noted from outside: it
    /// was silent); a token of scope tokens only says nothing.
    #[test]
    fn a_scope_value_left_out_is_said_at_debug_without_its_text() {
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        );
        let scopes = |text: &str| scopes_from_claims(&Members::parse(text).unwrap()).unwrap();
        assert_eq!(scopes(r#"{"scope": "a b"}"#).len(), 2);
        assert!(lines.0.lock().unwrap().is_empty());
        assert_eq!(scopes(r#"{"scp": ["secret\u00a0value", "b"]}"#).len(), 1);
        let written = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(written.contains("DEBUG"), "{written}");
        assert!(written.contains("was left out"), "{written}");
        assert!(written.contains("bytes=13"), "{written}");
        assert!(!written.contains("secret"), "{written}");
    }

    #[test]
    fn scope_claim_paths() {
        let claims = Members::parse(
            r#"{"permissions":["p1","p2"],"realm_access":{"roles":["r1","p1"]},"flat":"f1 f2","n":1}"#,
        )
        .unwrap();
        let paths = |p: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| (*s).to_owned()).collect();
            scopes_from_paths(&claims, &p)
                .map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            paths(&["permissions", "realm_access.roles", "flat"]).unwrap(),
            ["p1", "p2", "r1", "f1", "f2"]
        );
        assert!(
            paths(&["missing", "flat.deeper", "realm_access.none"])
                .unwrap()
                .is_empty()
        );
        assert!(paths(&["n"]).is_err());
        assert!(paths(&["realm_access"]).is_err());
        // `scp` named as a path (the presets do) still reads scope tokens.
        let scp = Members::parse(r#"{"scp":["a b","c"]}"#).unwrap();
        assert_eq!(
            scopes_from_paths(&scp, &["scp".to_owned()])
                .unwrap()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ["c"]
        );
        // A role name may hold a space (Keycloak's may): kept whole.
        let roles = Members::parse(r#"{"roles":["Note Readers","x"]}"#).unwrap();
        assert_eq!(
            scopes_from_paths(&roles, &["roles".to_owned()])
                .unwrap()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ["Note Readers", "x"]
        );
    }

    fn policy(f: impl FnOnce(crate::AuthConfigBuilder) -> crate::AuthConfigBuilder) -> TokenPolicy {
        let b = AuthConfig::builder()
            .issuer("https://a.example")
            .issuer("https://b.example")
            .resource("https://mcp.example.com/mcp");
        TokenPolicy::new(&f(b).build().unwrap())
    }

    fn policy_one_issuer() -> TokenPolicy {
        let b = AuthConfig::builder()
            .issuer("https://a.example")
            .resource("https://mcp.example.com/mcp");
        TokenPolicy::new(&b.build().unwrap())
    }

    fn check(p: &TokenPolicy, claims: &str, source: Source) -> Result<usize, AuthErrorKind> {
        let m = Members::parse(claims).unwrap();
        p.check(&m, 1_000, source)
            .map(|c| c.issuer)
            .map_err(|e| e.kind())
    }

    // A token whose issuer is a trusted one but for a trailing '/' says so
    // in its refusal's diagnosis (the operator's hint); others do not.
    #[test]
    fn an_issuer_a_slash_away_is_named_in_the_diagnosis() {
        let p = policy(|b| b.issuer("https://c.example/"));
        let slash = |iss: &str| {
            let claims = format!(
                r#"{{"iss":"{iss}","sub":"a","aud":"https://mcp.example.com/mcp","exp":2000}}"#
            );
            let m = Members::parse(&claims).unwrap();
            let err = p.check(&m, 1_000, Source::Jwt).err().unwrap();
            assert_eq!(err.kind(), AuthErrorKind::InvalidIssuer, "{iss}");
            err.diagnosis().unwrap().issuer_slash
        };
        assert!(slash("https://a.example/"));
        assert!(slash("https://c.example"));
        assert!(!slash("https://d.example"));
        assert!(!slash("https://a.example//"));
        assert!(!slash("https://a.exampl"));
    }

    // An answer naming a token that is not an access token, in any of its
    // spellings (found from outside: RFC 8693's identifiers, `N_A` and
    // spaces around the word were accepted).
    #[test]
    fn answers_about_other_kinds_of_token_are_refused() {
        let p = policy(|b| b);
        let intro = Source::Introspection {
            issuer: 0,
            only_own: true,
        };
        let base = r#""sub":"a","aud":"https://mcp.example.com/mcp","exp":2000"#;
        for token_type in [
            "refresh_token",
            " Refresh_Token ",
            "id_token",
            "urn:ietf:params:oauth:token-type:refresh_token",
            "urn:ietf:params:oauth:token-type:id_token",
            "N_A",
        ] {
            assert_eq!(
                check(
                    &p,
                    &format!(r#"{{{base},"token_type":"{token_type}"}}"#),
                    intro
                ),
                Err(AuthErrorKind::NotAnAccessToken),
                "{token_type:?}"
            );
        }
        for token_type in [
            "Bearer",
            "bearer",
            "urn:ietf:params:oauth:token-type:access_token",
        ] {
            assert_eq!(
                check(
                    &p,
                    &format!(r#"{{{base},"token_type":"{token_type}"}}"#),
                    intro
                ),
                Ok(0),
                "{token_type:?}"
            );
        }
    }

    // RFC 9449 section 7.2: key-bound tokens are not Bearer tokens.
    #[test]
    fn key_bound_tokens_are_refused_as_bearer() {
        let p = policy(|b| b);
        let intro = Source::Introspection {
            issuer: 0,
            only_own: true,
        };
        let base = r#""sub":"a","aud":"https://mcp.example.com/mcp","exp":2000"#;
        for extra in [
            r#""cnf":{"x5t#S256":"x"}"#,
            r#""cnf":{"jkt":""}"#,
            r#""cnf":"x""#,
            r#""cnf":{}"#,
            r#""token_type":"DPoP""#,
            r#""token_type":"dpop""#,
            // Found from outside: accepted as Bearer.
            r#""token_type":"DPoP ""#,
            r#""token_type":"mac""#,
            r#""token_type":"PoP""#,
        ] {
            assert_eq!(
                check(&p, &format!("{{{base},{extra}}}"), intro),
                Err(AuthErrorKind::SenderConstrainedToken),
                "{extra}"
            );
        }
        assert_eq!(
            check(&p, &format!(r#"{{{base},"token_type":"Bearer"}}"#), intro),
            Ok(0)
        );
        // RFC 9449 section 6: `cnf.jkt` is recorded (the layer demands the
        // proof), with or without `token_type: DPoP`.
        for claims in [
            format!(r#"{{{base},"iss":"https://a.example","cnf":{{"jkt":"x"}}}}"#),
            format!(r#"{{{base},"token_type":"DPoP","cnf":{{"jkt":"x"}}}}"#),
        ] {
            let m = Members::parse(&claims).unwrap();
            let checked = p.check(&m, 1_000, intro).unwrap();
            assert_eq!(checked.dpop_jkt.as_deref(), Some("x"));
            let ctx = p.context(&m, &checked).unwrap();
            assert_eq!(ctx.dpop_thumbprint(), Some("x"));
            assert!(ctx.is_dpop_bound());
        }
    }

    #[test]
    fn introspection_issuers() {
        let p = policy(|b| b);
        let claims = |iss: &str| {
            format!(r#"{{"sub":"a","aud":"https://mcp.example.com/mcp","iss":"{iss}"}}"#)
        };
        let shared = Source::Introspection {
            issuer: 0,
            only_own: false,
        };
        let own = Source::Introspection {
            issuer: 0,
            only_own: true,
        };
        assert_eq!(check(&p, &claims("https://b.example"), shared), Ok(1));
        assert_eq!(
            check(&p, &claims("https://b.example"), own),
            Err(AuthErrorKind::InvalidIssuer)
        );
        assert_eq!(check(&p, &claims("https://a.example"), own), Ok(0));
        assert_eq!(
            check(&p, &claims("https://c.example"), shared),
            Err(AuthErrorKind::InvalidIssuer)
        );
        // No `iss`: the answering endpoint's issuer when it speaks for one
        // (its own settings); a shared endpoint of several issuers must
        // name it (found from outside); a JWT must name one.
        let anon = r#"{"sub":"a","aud":"https://mcp.example.com/mcp","exp":2000}"#;
        assert_eq!(check(&p, anon, own), Ok(0));
        assert_eq!(check(&p, anon, shared), Err(AuthErrorKind::InvalidIssuer));
        let single = policy_one_issuer();
        assert_eq!(check(&single, anon, shared), Ok(0));
        assert_eq!(
            check(&p, anon, Source::Jwt),
            Err(AuthErrorKind::InvalidIssuer)
        );
    }

    // Issue 19: tenant templates, their claims and allowlists; the rules of
    // each issuer.
    #[test]
    fn tenant_templates() {
        use crate::{IssuerPolicy, TenantIssuer};
        let p = policy(|b| {
            b.tenant_issuer(
                TenantIssuer::new("https://t.example/{tenant}/v2")
                    .tenants(["a", "b"])
                    .tenant_claim("tid"),
            )
            .tenant_issuer(
                TenantIssuer::new("https://org.example/")
                    .tenant_claim("org")
                    .allow_any_tenant_unrestricted()
                    .policy(IssuerPolicy::new().scope_claims(["perms"])),
            )
            .tenant_issuer(TenantIssuer::new("https://t.example/{tenant}").tenants(["c"]))
        });
        let base = r#""sub":"a","aud":"https://mcp.example.com/mcp","exp":2000"#;
        let claims = |extra: &str| format!("{{{base},{extra}}}");
        let tenant = |extra: &str| {
            let text = claims(extra);
            let m = Members::parse(&text).unwrap();
            p.check(&m, 1_000, Source::Jwt).map(|c| {
                let ctx = p.context(&m, &c).unwrap();
                (
                    c.issuer,
                    ctx.tenant().map(str::to_owned),
                    ctx.scopes().len(),
                )
            })
        };
        let kind = |extra: &str| tenant(extra).map_err(|e| e.kind()).err();
        assert_eq!(
            tenant(r#""iss":"https://t.example/a/v2","tid":"a""#).unwrap(),
            (2, Some("a".into()), 0)
        );
        assert_eq!(
            tenant(r#""iss":"https://org.example/","org":"x-1","perms":["p"]"#).unwrap(),
            (3, Some("x-1".into()), 1)
        );
        // A later template accepts what an earlier one refused.
        assert_eq!(
            tenant(r#""iss":"https://t.example/c""#).unwrap(),
            (4, Some("c".into()), 0)
        );
        for (extra, want) in [
            (
                r#""iss":"https://t.example/z/v2","tid":"z""#,
                AuthErrorKind::TenantNotAllowed,
            ),
            (
                r#""iss":"https://t.example/a/v2","tid":"b""#,
                AuthErrorKind::TenantMismatch,
            ),
            (
                r#""iss":"https://t.example/a/v2","tid":["a"]"#,
                AuthErrorKind::TenantMismatch,
            ),
            (
                r#""iss":"https://t.example/a/v2""#,
                AuthErrorKind::TenantMismatch,
            ),
            (
                r#""iss":"https://t.example/a.b/v2","tid":"a.b""#,
                AuthErrorKind::TenantInvalid,
            ),
            (
                r#""iss":"https://t.example//v2""#,
                AuthErrorKind::TenantInvalid,
            ),
            (
                r#""iss":"https://org.example/""#,
                AuthErrorKind::TenantInvalid,
            ),
            (
                r#""iss":"https://org.example/","org":"a/b""#,
                AuthErrorKind::TenantInvalid,
            ),
            (
                r#""iss":"https://org.example/x","org":"a""#,
                AuthErrorKind::InvalidIssuer,
            ),
            (r#""iss":"https://t.example""#, AuthErrorKind::InvalidIssuer),
            (
                r#""iss":"https://other.example/a/v2""#,
                AuthErrorKind::InvalidIssuer,
            ),
        ] {
            assert_eq!(kind(extra), Some(want), "{extra}");
        }
        assert!(p.issuer(2).is_none());
        assert!(p.rules(9).is_none());
        // An introspection answer without `iss` is about the endpoint's
        // (fixed) issuer; a template has no concrete issuer to name.
        let text = format!("{{{base}}}");
        let m = Members::parse(&text).unwrap();
        let intro = Source::Introspection {
            issuer: 2,
            only_own: true,
        };
        let checked = p.check(&m, 1_000, intro).unwrap();
        assert_eq!(
            p.context(&m, &checked).err().map(|e| e.kind()),
            Some(AuthErrorKind::InvalidIssuer)
        );
    }

    #[test]
    fn absurd_dates_are_refused_without_panicking() {
        let p = policy(|b| b);
        let intro = Source::Introspection {
            issuer: 0,
            only_own: true,
        };
        for (exp, kind) in [
            ("1e300", AuthErrorKind::InvalidClaims),
            ("1e30", AuthErrorKind::InvalidClaims),
            ("-5", AuthErrorKind::InvalidClaims),
            ("\"soon\"", AuthErrorKind::InvalidClaims),
            ("18446744073709551615", AuthErrorKind::LifetimeTooLong),
        ] {
            let claims = format!(
                r#"{{"sub":"a","aud":"https://mcp.example.com/mcp","exp":{exp},"iat":18446744073709551615}}"#
            );
            let got = check(&p, &claims, intro);
            // A huge `iat` is in the future: refused either way, no overflow.
            assert!(
                got == Err(kind) || got == Err(AuthErrorKind::NotYetValid),
                "{exp}: {got:?}"
            );
        }
    }
}
