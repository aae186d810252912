//! [`TokenBuilder`]: minting signed JWT access tokens in process.

use std::fmt;
use std::io;
use std::time::Duration;

use serde_json::{Map, Value};

use super::issuer::Shared;
use super::keys::SigningKey;
use super::plumbing::{b64, random_b64, unix_now};

/// Default `sub` claim of minted tokens.
pub(super) const DEFAULT_SUBJECT: &str = "test-user";
/// Default `client_id` claim of minted tokens.
const DEFAULT_CLIENT_ID: &str = "test-client";
/// Default lifetime of minted tokens (`exp - iat`).
pub(super) const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Default `typ` header of minted tokens (RFC 9068 section 2.1).
const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Builder for a signed JWT access token; see [`TestIssuer::token`](super::TestIssuer::token).
///
/// Defaults:
///
/// - header: `{"alg": <current key's algorithm>, "typ": "at+jwt", "kid": <current kid>}`;
/// - claims: `iss` = [`TestIssuer::issuer`](super::TestIssuer::issuer), `sub` = `"test-user"`,
///   `client_id` = `"test-client"`, `iat` = now, `exp` = `iat` + 5 minutes,
///   `jti` = 16 random bytes in base64url. No `aud`, `scope` or `nbf`
///   unless set.
///
/// Later calls override earlier ones. [`claim`](Self::claim) and
/// [`header`](Self::header) can set any member, including the defaults, and
/// remove one with [`Value::Null`]. Members are serialized in a
/// deterministic order.
///
/// Whatever the header says (for example an overridden `alg`), the token is
/// signed with the current key's real algorithm, so that tests can forge
/// algorithm-confusion attempts.
///
/// `Debug` output is redacted.
#[must_use = "a token builder does nothing until `sign` is called"]
pub struct TokenBuilder<'a> {
    shared: &'a Shared,
    /// Explicit `iat`; `None` means now.
    issued_at: Option<i64>,
    /// `exp - iat` unless `exp` is set in `claims`.
    lifetime: Duration,
    /// Claim overrides; `Null` removes the member.
    claims: Map<String, Value>,
    /// Header overrides; `Null` removes the member.
    header: Map<String, Value>,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl<'a> TokenBuilder<'a> {
    pub(super) fn new(shared: &'a Shared) -> Self {
        TokenBuilder {
            shared,
            issued_at: None,
            lifetime: DEFAULT_LIFETIME,
            claims: Map::new(),
            header: Map::new(),
        }
    }

    /// Sets the `sub` claim (default `"test-user"`).
    pub fn subject(self, sub: impl Into<String>) -> Self {
        self.claim("sub", Value::String(sub.into()))
    }

    /// Sets the `aud` claim to a single string. There is no `aud` by default.
    pub fn audience(self, aud: impl Into<String>) -> Self {
        self.claim("aud", Value::String(aud.into()))
    }

    /// Sets the `aud` claim to an array of strings.
    pub fn audiences<I, S>(self, auds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let auds = auds
            .into_iter()
            .map(|aud| Value::String(aud.into()))
            .collect();
        self.claim("aud", Value::Array(auds))
    }

    /// Sets the `scope` claim: the scopes joined by single spaces
    /// (RFC 9068 section 2.2.3, RFC 8693 section 4.2). There is no `scope`
    /// by default.
    pub fn scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let joined = scopes
            .into_iter()
            .map(Into::into)
            .collect::<Vec<String>>()
            .join(" ");
        self.claim("scope", Value::String(joined))
    }

    /// Sets the `client_id` claim (default `"test-client"`).
    pub fn client_id(self, id: impl Into<String>) -> Self {
        self.claim("client_id", Value::String(id.into()))
    }

    /// Sets the lifetime: `exp` = `iat` + `d` (default 5 minutes).
    ///
    /// Replaces an earlier [`expires_at`](Self::expires_at). Sub-second parts
    /// are truncated.
    pub fn expires_in(mut self, d: Duration) -> Self {
        self.lifetime = d;
        self.claims.remove("exp");
        self
    }

    /// Sets `iat` (Unix seconds; default now). Unless `exp` was set
    /// explicitly, `exp` stays relative to it.
    pub fn issued_at(mut self, unix_secs: i64) -> Self {
        self.issued_at = Some(unix_secs);
        self.claims.remove("iat");
        self
    }

    /// Sets `exp` to an absolute time (Unix seconds).
    pub fn expires_at(self, unix_secs: i64) -> Self {
        self.claim("exp", Value::from(unix_secs))
    }

    /// Sets `nbf` (Unix seconds). There is no `nbf` by default.
    pub fn not_before(self, unix_secs: i64) -> Self {
        self.claim("nbf", Value::from(unix_secs))
    }

    /// Sets or overrides any claim; [`Value::Null`] removes it.
    pub fn claim(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Sets or overrides any JOSE header member (`typ`, `kid`, `alg`, `crit`,
    /// ...); [`Value::Null`] removes it.
    ///
    /// Overriding `alg` changes only what the header claims: the signature is
    /// still made with the current key's algorithm.
    pub fn header(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.header.insert(name.into(), value);
        self
    }

    /// Binds the token to a DPoP key: `cnf: {"jkt": <thumbprint>}` (RFC 9449
    /// section 6.1), for example [`DpopClient::thumbprint`](super::DpopClient::thumbprint).
    pub fn dpop_bound_to(self, jkt: impl Into<String>) -> Self {
        self.claim("cnf", serde_json::json!({ "jkt": jkt.into() }))
    }

    /// The token without its signature: `base64url(header).base64url(claims)`,
    /// the JWS signing input. Append `.` and any signature to forge one.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to produce randomness (for `jti`).
    pub fn unsigned(self) -> io::Result<String> {
        let key = self.shared.current_key()?;
        let (header, claims) = self.into_parts(&key)?;
        Ok(format!("{}.{}", b64(&header), b64(&claims)))
    }

    /// Signs the token with the issuer's current key and returns the JWS
    /// compact serialization (RFC 7515 section 7.1).
    ///
    /// # Panics
    ///
    /// Panics if aws-lc-rs fails to produce randomness or a signature; see
    /// [`try_sign`](Self::try_sign) for a fallible version.
    #[must_use]
    pub fn sign(self) -> String {
        match self.try_sign() {
            Ok(token) => token,
            Err(error) => panic!("TestIssuer: signing failed: {error}"),
        }
    }

    /// Like [`sign`](Self::sign), returning an error instead of panicking.
    ///
    /// # Errors
    ///
    /// Fails if aws-lc-rs fails to produce randomness or a signature.
    pub fn try_sign(self) -> io::Result<String> {
        let key = self.shared.current_key()?;
        let (header, claims) = self.into_parts(&key)?;
        let mut token = format!("{}.{}", b64(&header), b64(&claims));
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64(&signature));
        Ok(token)
    }

    /// The serialized header and claims.
    fn into_parts(self, key: &SigningKey) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut header = Map::new();
        header.insert("alg".to_owned(), Value::from(key.alg.as_str()));
        header.insert("typ".to_owned(), Value::from(ACCESS_TOKEN_TYP));
        header.insert("kid".to_owned(), Value::from(key.kid.as_str()));
        apply_overrides(&mut header, self.header);

        let iat = self.issued_at.unwrap_or_else(unix_now);
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), Value::from(self.shared.issuer.as_str()));
        claims.insert("sub".to_owned(), Value::from(DEFAULT_SUBJECT));
        claims.insert("client_id".to_owned(), Value::from(DEFAULT_CLIENT_ID));
        claims.insert("iat".to_owned(), Value::from(iat));
        claims.insert("exp".to_owned(), Value::from(iat.saturating_add(lifetime)));
        claims.insert("jti".to_owned(), Value::from(random_jti()?));
        apply_overrides(&mut claims, self.claims);

        let header = serde_json::to_vec(&header).map_err(io::Error::other)?;
        let claims = serde_json::to_vec(&claims).map_err(io::Error::other)?;
        Ok((header, claims))
    }
}

/// Applies builder overrides: `Null` removes the member, anything else sets it.
fn apply_overrides(target: &mut Map<String, Value>, overrides: Map<String, Value>) {
    for (name, value) in overrides {
        if value.is_null() {
            target.remove(&name);
        } else {
            target.insert(name, value);
        }
    }
}

/// 16 random bytes, base64url.
fn random_jti() -> io::Result<String> {
    random_b64(16)
}
