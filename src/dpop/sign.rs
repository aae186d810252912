//! Signing DPoP proofs (tests and the testing kit only): a key pair, its
//! public JWK and thumbprint, and a proof over any header and claims.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A proof key: ES256 (P-256) or EdDSA (Ed25519).
pub(crate) enum SigningKey {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Es256(_) => "SigningKey::Es256([redacted])",
            Self::Ed25519(_) => "SigningKey::Ed25519([redacted])",
        })
    }
}

impl SigningKey {
    /// A fresh ES256 key. `None` only when the system RNG fails.
    pub(crate) fn es256() -> Option<Self> {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .ok()
            .map(Self::Es256)
    }

    /// A fresh Ed25519 key.
    pub(crate) fn ed25519() -> Option<Self> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).ok()?;
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .ok()
            .map(Self::Ed25519)
    }

    /// The JWS `alg`.
    pub(crate) fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Ed25519(_) => "EdDSA",
        }
    }

    /// The public JWK, as JSON text.
    pub(crate) fn public_jwk(&self) -> String {
        match self {
            Self::Es256(k) => {
                // SEC 1 uncompressed point: 0x04 || x (32) || y (32).
                let point = k.public_key().as_ref();
                let x = point.get(1..33).unwrap_or_default();
                let y = point.get(33..65).unwrap_or_default();
                format!(
                    r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(x),
                    URL_SAFE_NO_PAD.encode(y)
                )
            }
            Self::Ed25519(k) => format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(k.public_key().as_ref())
            ),
        }
    }

    /// The RFC 7638 thumbprint of the public key.
    pub(crate) fn thumbprint(&self) -> String {
        super::proof::jwk_thumbprint(&self.public_jwk()).unwrap_or_default()
    }

    /// A compact JWS over `header` and `claims` (JSON texts, used as given).
    pub(crate) fn sign_raw(&self, header: &str, claims: &str) -> String {
        let mut out = URL_SAFE_NO_PAD.encode(header);
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let signature = match self {
            Self::Es256(k) => k
                .sign(&SystemRandom::new(), out.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Self::Ed25519(k) => k.sign(out.as_bytes()).as_ref().to_vec(),
        };
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature));
        out
    }

    /// The usual proof header: `typ`, `alg`, `jwk`.
    #[cfg(test)]
    pub(crate) fn header(&self) -> String {
        format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#,
            self.alg(),
            self.public_jwk()
        )
    }
}
