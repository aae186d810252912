//! [`DpopClient`]: a DPoP key pair that signs proofs (RFC 9449 section 4),
//! so tests can call a server that accepts or requires DPoP-bound tokens.

use std::fmt;

use serde_json::{Map, Value, json};

use super::plumbing::{random_b64, unix_now};
use crate::dpop::proof::ath;
use crate::dpop::sign::SigningKey;

/// A DPoP client key (ES256 by default, or Ed25519) that signs proofs.
///
/// Its [`thumbprint`](Self::thumbprint) is what a token bound to it carries
/// in `cnf.jkt`: get one from [`TestIssuer`](super::TestIssuer)'s token
/// endpoint by sending [`proof`](Self::proof) for it in a `DPoP` header, or
/// mint one with [`TokenBuilder::dpop_bound_to`](super::TokenBuilder::dpop_bound_to).
///
/// ```
/// use mcp_oauth2::testing::DpopClient;
///
/// let client = DpopClient::new();
/// // The proof for a call to https://mcp.example.com/mcp with `token`:
/// let proof = client.proof("POST", "https://mcp.example.com/mcp", Some("token"));
/// assert_eq!(proof.split('.').count(), 3);
/// // A hostile one: made for another method, with a chosen `iat`.
/// let stale = client.proof_builder("GET", "https://mcp.example.com/mcp")
///     .access_token("token")
///     .issued_at(0)
///     .sign();
/// # let _ = stale;
/// ```
///
/// `Debug` output is redacted.
pub struct DpopClient {
    key: SigningKey,
}

impl fmt::Debug for DpopClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopClient")
            .field("alg", &self.key.alg())
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl Default for DpopClient {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopClient {
    /// A fresh ES256 (P-256) key.
    ///
    /// # Panics
    ///
    /// Panics if aws-lc-rs cannot generate a key (no system randomness).
    pub fn new() -> Self {
        match SigningKey::es256() {
            Some(key) => Self { key },
            None => panic!("DpopClient: key generation failed"),
        }
    }

    /// A fresh Ed25519 key (`alg` EdDSA).
    ///
    /// # Panics
    ///
    /// Panics if aws-lc-rs cannot generate a key (no system randomness).
    pub fn ed25519() -> Self {
        match SigningKey::ed25519() {
            Some(key) => Self { key },
            None => panic!("DpopClient: key generation failed"),
        }
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url: the
    /// `cnf.jkt` of tokens bound to this key.
    pub fn thumbprint(&self) -> String {
        self.key.thumbprint()
    }

    /// The public JWK, as the proofs carry it in their header.
    pub fn public_jwk(&self) -> Value {
        serde_json::from_str(&self.key.public_jwk()).unwrap_or(Value::Null)
    }

    /// The `alg` of the proofs (`ES256` or `EdDSA`).
    pub fn alg(&self) -> &'static str {
        self.key.alg()
    }

    /// A proof for `method` on `uri` (query and fragment belong out of
    /// it), issued now with a fresh `jti`, and with `ath` for
    /// `access_token` when given (a resource request; a token request has none).
    pub fn proof(&self, method: &str, uri: &str, access_token: Option<&str>) -> String {
        let mut b = self.proof_builder(method, uri);
        if let Some(token) = access_token {
            b = b.access_token(token);
        }
        b.sign()
    }

    /// A proof to adjust before [`ProofBuilder::sign`]: any claim or
    /// header member can be set or removed, for hostile tests.
    pub fn proof_builder(&self, method: &str, uri: &str) -> ProofBuilder<'_> {
        let mut claims = Map::new();
        claims.insert("htm".to_owned(), Value::from(method));
        claims.insert("htu".to_owned(), Value::from(uri));
        ProofBuilder {
            key: &self.key,
            claims,
            header: Map::new(),
        }
    }

    /// Signs `header` and `claims` exactly as given (JSON texts), for
    /// proofs no builder can express (a repeated member, ...).
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        self.key.sign_raw(header, claims)
    }
}

/// A DPoP proof being built; see [`DpopClient::proof_builder`].
///
/// Defaults: header `{"typ": "dpop+jwt", "alg": <the key's>, "jwk": <its
/// public key>}`; claims `htm`, `htu`, `iat` = now, `jti` = 16 random bytes
/// (base64url). Later calls override earlier ones; [`Value::Null`] removes
/// a member.
#[must_use = "a proof builder does nothing until `sign` is called"]
pub struct ProofBuilder<'a> {
    key: &'a SigningKey,
    claims: Map<String, Value>,
    header: Map<String, Value>,
}

impl fmt::Debug for ProofBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofBuilder").finish_non_exhaustive()
    }
}

impl ProofBuilder<'_> {
    /// `ath`: the base64url SHA-256 of `access_token`.
    pub fn access_token(self, access_token: &str) -> Self {
        self.claim("ath", Value::from(ath(access_token)))
    }

    /// `iat`, in Unix seconds (default now).
    pub fn issued_at(self, unix_secs: i64) -> Self {
        self.claim("iat", Value::from(unix_secs))
    }

    /// `jti` (default 16 random bytes, base64url).
    pub fn jti(self, jti: &str) -> Self {
        self.claim("jti", Value::from(jti))
    }

    /// `nonce`: the server's `DPoP-Nonce`.
    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", Value::from(nonce))
    }

    /// Sets (or, with [`Value::Null`], removes) any claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    /// Sets (or, with [`Value::Null`], removes) any header member.
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header.insert(name.to_owned(), value);
        self
    }

    /// The proof, signed with the client's key whatever the header says.
    ///
    /// # Panics
    ///
    /// Panics if aws-lc-rs cannot produce randomness (for `jti`).
    pub fn sign(self) -> String {
        let jti = match random_b64(16) {
            Ok(jti) => jti,
            Err(error) => panic!("DpopClient: {error}"),
        };
        let jwk: Value = serde_json::from_str(&self.key.public_jwk()).unwrap_or(Value::Null);
        let mut header = json!({"typ": "dpop+jwt", "alg": self.key.alg(), "jwk": jwk});
        let mut claims = json!({"iat": unix_now(), "jti": jti});
        for (target, overrides) in [(&mut header, self.header), (&mut claims, self.claims)] {
            if let Value::Object(members) = target {
                for (name, value) in overrides {
                    if value.is_null() {
                        members.remove(&name);
                    } else {
                        members.insert(name, value);
                    }
                }
            }
        }
        self.key.sign_raw(&header.to_string(), &claims.to_string())
    }
}
