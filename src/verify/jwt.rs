//! [`JwtVerifier`]: RFC 9068 JWT access tokens verified with the issuer's JWKS.
//!
//! Order of checks, cheapest first, so that garbage never costs a signature
//! check or a network fetch:
//! 1. structure: three base64url parts (five parts is a JWE: refused);
//! 2. header: `alg` on the configured allowlist (never `none`, never HMAC),
//!    `typ` per [`TypPolicy`], no `crit`, `b64` or `cty`; `jku`, `x5u`, `jwk`
//!    and `x5c` are ignored and never fetched (RFC 8725 section 3.1);
//! 3. claims: `iss` one of the configured issuers exactly, `exp` present and
//!    not past, `nbf`/`iat` not in the future (with leeway), `aud` containing
//!    this resource exactly (RFC 8707), `sub` a string;
//! 4. key: from that issuer's key set, chosen by `kid` and matching the
//!    algorithm (`kty`, `crv`, the JWK's own `alg`, `use`); an unknown `kid`
//!    refetches the set at most once per cooldown;
//! 5. signature.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::crypto::verify_signature;
use super::{TokenVerifier, VerifyFuture};
use crate::bearer::BearerToken;
use crate::config::{AuthConfig, TypPolicy};
use crate::context::AuthContext;
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::jwks::cache::{CachePolicy, JwksCache, Lookup};
use crate::jwks::fetch::Fetcher;

/// Verifies JWT access tokens against the configured issuers' key sets.
///
/// Cheap to clone; clones share the key caches.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: Vec<(String, Arc<JwksCache>)>,
    resource: String,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    typ_policy: TypPolicy,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>(),
            )
            .field("resource", &self.inner.resource)
            .field("algorithms", &self.inner.algorithms)
            .field("backend", &super::crypto::backend_name())
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `config`, with the default HTTP client (rustls with the
    /// platform's trust roots, no redirects, the configured deadline).
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let client = Fetcher::default_client(config.http_timeout).map_err(|e| {
            ConfigError::new("http_client", format!("cannot build the HTTP client: {e}"))
        })?;
        Ok(Self::with_http_client(config, client))
    }

    /// A verifier that fetches metadata and keys with `client` (for custom
    /// trust roots or proxies). The client should not follow redirects and
    /// should have a total timeout.
    pub fn with_http_client(config: &AuthConfig, client: reqwest::Client) -> Self {
        let fetcher = Fetcher::with_client(
            client,
            config.max_document_bytes,
            config.allow_insecure_loopback,
        );
        let policy = CachePolicy {
            ttl: config.jwks_cache_ttl,
            cooldown: config.jwks_refresh_cooldown,
            max_stale: config.jwks_max_stale,
        };
        let issuers = config
            .issuers
            .iter()
            .map(|i| {
                let cache = JwksCache::new(
                    i.issuer.clone(),
                    i.jwks_uri.clone(),
                    fetcher.clone(),
                    policy,
                );
                (i.issuer.clone(), cache)
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                issuers,
                resource: config.resource.clone(),
                algorithms: config.algorithms.clone(),
                leeway: config.leeway.as_secs(),
                typ_policy: config.typ_policy,
            }),
        }
    }

    /// Fetches every issuer's key set now (discovery included). Returns the
    /// first error; the caches keep retrying on demand either way.
    pub async fn prefetch(&self) -> Result<(), crate::Error> {
        for (issuer, cache) in &self.inner.issuers {
            cache
                .refresh_now()
                .await
                .map_err(|e| crate::Error::KeysUnavailable(format!("issuer {issuer}: {e}")))?;
        }
        Ok(())
    }

    /// Whether every issuer's key set has been loaded at least once.
    pub fn is_ready(&self) -> bool {
        self.inner.issuers.iter().all(|(_, c)| c.is_loaded())
    }

    async fn verify_token(&self, token: &str) -> Result<AuthContext, AuthError> {
        let parsed = Parsed::split(token)?;
        let header = parsed.header()?;
        let alg = self.check_header(&header)?;
        let claims = parsed.claims()?;
        let cache = self.check_claims(&claims)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(AuthErrorKind::UnsupportedHeader.into()),
        };
        let keys = match cache.key_set(kid, alg).await {
            Lookup::Keys(keys) => keys,
            Lookup::Unavailable => return Err(AuthErrorKind::KeysUnavailable.into()),
        };
        let candidates = keys.candidates(kid, alg);
        if candidates.is_empty() {
            return Err(AuthErrorKind::UnknownKey.into());
        }
        let signature = URL_SAFE_NO_PAD
            .decode(parsed.signature)
            .map_err(|_| AuthError::new(AuthErrorKind::MalformedToken))?;
        if signature.is_empty() {
            return Err(AuthErrorKind::InvalidSignature.into());
        }
        if !candidates
            .iter()
            .any(|k| verify_signature(alg, &k.key, parsed.signing_input.as_bytes(), &signature))
        {
            return Err(AuthErrorKind::InvalidSignature.into());
        }
        context_from_claims(claims)
    }

    fn check_header(&self, header: &Map<String, Value>) -> Result<Algorithm, AuthError> {
        let alg = match header.get("alg") {
            Some(Value::String(a)) => a,
            _ => return Err(AuthErrorKind::MalformedToken.into()),
        };
        // Parsing is exact and case-sensitive: "none", "None", "HS256" with a
        // public key, ... are all refused here (RFC 8725 sections 2.1, 3.1).
        let alg = alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.inner.algorithms.contains(a))
            .ok_or_else(|| AuthError::new(AuthErrorKind::DisallowedAlgorithm))?;
        // RFC 7515 section 4.1.11: we understand no extension, so any `crit` is fatal.
        // RFC 7797 `b64` changes what is signed; `cty` announces a nested JWT.
        if ["crit", "b64", "cty", "enc", "zip"]
            .iter()
            .any(|k| header.contains_key(*k))
        {
            return Err(AuthErrorKind::UnsupportedHeader.into());
        }
        let typ = match header.get("typ") {
            None => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(_) => return Err(AuthErrorKind::InvalidType.into()),
        };
        if !typ_allowed(typ, self.inner.typ_policy) {
            return Err(AuthErrorKind::InvalidType.into());
        }
        Ok(alg)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<&Arc<JwksCache>, AuthError> {
        let cache = match claims.get("iss") {
            Some(Value::String(iss)) => self
                .inner
                .issuers
                .iter()
                .find(|(i, _)| i == iss)
                .map(|(_, c)| c)
                .ok_or_else(|| AuthError::new(AuthErrorKind::InvalidIssuer))?,
            _ => return Err(AuthErrorKind::InvalidIssuer.into()),
        };
        let now = now_unix();
        let leeway = self.inner.leeway;
        let exp = numeric_date(claims.get("exp"))?
            .ok_or_else(|| AuthError::new(AuthErrorKind::InvalidClaims))?;
        if now >= exp.saturating_add(leeway) {
            return Err(AuthErrorKind::Expired.into());
        }
        for name in ["nbf", "iat"] {
            if numeric_date(claims.get(name))?.is_some_and(|t| t > now.saturating_add(leeway)) {
                return Err(AuthErrorKind::NotYetValid.into());
            }
        }
        // RFC 8707 / RFC 9068 section 4: aud must contain our resource, exactly.
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.inner.resource,
            Some(Value::Array(auds)) => {
                if auds.iter().any(|a| !a.is_string()) {
                    return Err(AuthErrorKind::InvalidAudience.into());
                }
                auds.iter()
                    .any(|a| a.as_str() == Some(self.inner.resource.as_str()))
            }
            _ => false,
        };
        if !audience_ok {
            return Err(AuthErrorKind::InvalidAudience.into());
        }
        match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(AuthErrorKind::InvalidClaims.into()),
        }
        Ok(cache)
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        Box::pin(self.verify_token(token.as_str()))
    }
}

/// RFC 9068 section 2.1: `at+jwt`, compared case-insensitively, with or
/// without the `application/` prefix (RFC 7515 section 4.1.9).
fn typ_allowed(typ: Option<&str>, policy: TypPolicy) -> bool {
    let Some(typ) = typ else {
        return policy == TypPolicy::AllowJwt;
    };
    let t = typ.to_ascii_lowercase();
    let t = t.strip_prefix("application/").unwrap_or(&t);
    match t {
        "at+jwt" => true,
        "jwt" => policy == TypPolicy::AllowJwt,
        _ => false,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A NumericDate (RFC 7519 section 2): a non-negative JSON number, possibly
/// fractional (truncated). Anything else is an invalid claim.
fn numeric_date(v: Option<&Value>) -> Result<Option<u64>, AuthError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else {
                match n.as_f64() {
                    Some(f) if (0.0..1e15).contains(&f) => Ok(Some(f as u64)),
                    _ => Err(AuthErrorKind::InvalidClaims.into()),
                }
            }
        }
        Some(_) => Err(AuthErrorKind::InvalidClaims.into()),
    }
}

/// A compact JWS split into its parts, not yet trusted.
struct Parsed<'a> {
    header_b64: &'a str,
    payload_b64: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

impl<'a> Parsed<'a> {
    fn split(token: &'a str) -> Result<Self, AuthError> {
        let dots = token.bytes().filter(|&b| b == b'.').count();
        if dots == 4 {
            return Err(AuthErrorKind::EncryptedToken.into());
        }
        if dots != 2 {
            return Err(AuthErrorKind::MalformedToken.into());
        }
        let mut parts = token.splitn(3, '.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AuthErrorKind::MalformedToken.into());
        };
        if h.is_empty() || p.is_empty() {
            return Err(AuthErrorKind::MalformedToken.into());
        }
        Ok(Self {
            header_b64: h,
            payload_b64: p,
            signature: s,
            signing_input: &token[..h.len() + 1 + p.len()],
        })
    }

    fn header(&self) -> Result<Map<String, Value>, AuthError> {
        decode_object(self.header_b64)
    }

    fn claims(&self) -> Result<Map<String, Value>, AuthError> {
        decode_object(self.payload_b64)
    }
}

fn decode_object(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::new(AuthErrorKind::MalformedToken))?;
    serde_json::from_slice::<Map<String, Value>>(&bytes)
        .map_err(|_| AuthError::new(AuthErrorKind::MalformedToken))
}

/// Scopes from `scope` (RFC 9068 section 2.2.3, a space-separated string) or,
/// when absent, `scp` (a string or an array of strings, as Entra ID and Okta
/// send). A scope claim of any other shape is refused.
fn scopes_from_claims(claims: &Map<String, Value>) -> Result<Vec<String>, AuthError> {
    let split = |s: &str| {
        s.split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => Ok(split(s)),
        (Some(_), _) => Err(AuthErrorKind::InvalidClaims.into()),
        (None, Some(Value::String(s))) => Ok(split(s)),
        (None, Some(Value::Array(items))) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| AuthError::new(AuthErrorKind::InvalidClaims))
            })
            .collect(),
        (None, Some(_)) => Err(AuthErrorKind::InvalidClaims.into()),
        (None, None) => Ok(Vec::new()),
    }
}

fn context_from_claims(claims: Map<String, Value>) -> Result<AuthContext, AuthError> {
    let str_claim = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let scopes = scopes_from_claims(&claims)?;
    let audience: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let (Some(issuer), Some(subject)) = (str_claim("iss"), str_claim("sub")) else {
        return Err(AuthErrorKind::InvalidClaims.into());
    };
    let mut b = AuthContext::builder(issuer, subject)
        .scopes(scopes)
        .audience(audience);
    if let Some(c) = str_claim("client_id").or_else(|| str_claim("azp")) {
        b = b.client_id(c);
    }
    if let Some(j) = str_claim("jti") {
        b = b.token_id(j);
    }
    if let Ok(Some(exp)) = numeric_date(claims.get("exp")) {
        b = b.expires_at_unix(exp);
    }
    Ok(b.claims(claims).build())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(Some(&serde_json::json!(5))).unwrap(), Some(5));
        assert_eq!(
            numeric_date(Some(&serde_json::json!(5.9))).unwrap(),
            Some(5)
        );
        assert!(numeric_date(Some(&serde_json::json!(-1))).is_err());
        assert!(numeric_date(Some(&serde_json::json!("5"))).is_err());
        assert!(numeric_date(Some(&serde_json::json!(1e300))).is_err());
    }

    #[test]
    fn split_shapes() {
        assert_eq!(
            Parsed::split("a.b.c.d.e").err().map(|e| e.kind()),
            Some(AuthErrorKind::EncryptedToken)
        );
        assert_eq!(
            Parsed::split("a.b").err().map(|e| e.kind()),
            Some(AuthErrorKind::MalformedToken)
        );
        assert_eq!(
            Parsed::split(".b.c").err().map(|e| e.kind()),
            Some(AuthErrorKind::MalformedToken)
        );
        let p = Parsed::split("aa.bb.cc").ok().unwrap();
        assert_eq!(p.signing_input, "aa.bb");
    }

    #[test]
    fn scope_claim_shapes() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            scopes_from_claims(&m(serde_json::json!({"scope": "a  b"}))).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            scopes_from_claims(&m(serde_json::json!({"scp": ["a", "b"]}))).unwrap(),
            ["a", "b"]
        );
        assert!(scopes_from_claims(&m(serde_json::json!({"scope": ["a"]}))).is_err());
        assert!(scopes_from_claims(&m(serde_json::json!({"scp": [1]}))).is_err());
    }
}
