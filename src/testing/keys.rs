//! Signing keys: their algorithms, private material and public JWKs.

use std::fmt;
use std::io;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use serde_json::{Value, json};

use super::plumbing::{b64, crypto_error};

/// The signature algorithm of a [`TestIssuer`](super::TestIssuer) key.
///
/// The default is [`SigningAlg::Rs256`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit RSA key (RFC 7518 section 3.3).
    #[default]
    Rs256,
    /// ECDSA with P-256 and SHA-256 (RFC 7518 section 3.4).
    Es256,
    /// EdDSA with Ed25519 (RFC 8037 section 3.1).
    EdDsa,
}

impl SigningAlg {
    /// The JOSE `alg` name: `"RS256"`, `"ES256"` or `"EdDSA"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Private key material; never printed.
pub(super) enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key with its identifier and its public JWK.
pub(super) struct SigningKey {
    pub(super) kid: String,
    pub(super) alg: SigningAlg,
    pub(super) material: KeyMaterial,
    /// The public half as a JWK (RFC 7517 section 4, RFC 7518 section 6).
    pub(super) public_jwk: Value,
}

impl SigningKey {
    /// Generates a fresh key for `alg`.
    pub(super) fn generate(alg: SigningAlg, kid: String) -> io::Result<Self> {
        let (material, mut jwk) = match alg {
            SigningAlg::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| crypto_error("RSA key generation failed"))?;
                let public = pair.public_key();
                // RFC 7518 section 6.3.1: n and e are unsigned big-endian
                // integers without leading zero octets.
                let n = b64(public.modulus().big_endian_without_leading_zero());
                let e = b64(public.exponent().big_endian_without_leading_zero());
                let jwk = json!({ "kty": "RSA", "n": n, "e": e });
                (KeyMaterial::Rsa(pair), jwk)
            }
            SigningAlg::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| crypto_error("P-256 key generation failed"))?;
                // SEC 1 uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = match point {
                    [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => return Err(crypto_error("unexpected P-256 public key encoding")),
                };
                let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) });
                (KeyMaterial::Ec(pair), jwk)
            }
            SigningAlg::EdDsa => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| crypto_error("Ed25519 key generation failed"))?;
                let x = b64(pair.public_key().as_ref());
                let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x });
                (KeyMaterial::Ed(pair), jwk)
            }
        };
        if let Value::Object(members) = &mut jwk {
            members.insert("use".to_owned(), Value::from("sig"));
            members.insert("alg".to_owned(), Value::from(alg.as_str()));
            members.insert("kid".to_owned(), Value::from(kid.as_str()));
        }
        Ok(SigningKey {
            kid,
            alg,
            material,
            public_jwk: jwk,
        })
    }

    /// Whether `signature` (JWS encoding) is this key's signature of `message`.
    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
        };
        match &self.material {
            KeyMaterial::Rsa(pair) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
                    .verify(message, signature)
            }
            KeyMaterial::Ec(pair) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
                    .verify(message, signature)
            }
            KeyMaterial::Ed(pair) => UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref())
                .verify(message, signature),
        }
        .is_ok()
    }

    /// Signs `message` and returns the signature in its JWS encoding.
    pub(super) fn sign(&self, message: &[u8]) -> io::Result<Vec<u8>> {
        match &self.material {
            KeyMaterial::Rsa(pair) => {
                let mut signature = vec![0_u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| crypto_error("RSA signing failed"))?;
                Ok(signature)
            }
            KeyMaterial::Ec(pair) => {
                // The FIXED signing algorithm yields r || s, the JWS format
                // (RFC 7518 section 3.4), not ASN.1 DER.
                let signature = pair
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| crypto_error("ECDSA signing failed"))?;
                Ok(signature.as_ref().to_vec())
            }
            KeyMaterial::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// The published keys; the last one is the current signing key.
pub(super) struct KeyRing {
    /// Never empty: `start` installs one key and `retire_old_keys` keeps the last.
    pub(super) keys: Vec<Arc<SigningKey>>,
    /// Number of keys ever generated, used to build unique `kid`s.
    pub(super) generated: u64,
}

impl KeyRing {
    pub(super) fn current(&self) -> io::Result<Arc<SigningKey>> {
        self.keys
            .last()
            .cloned()
            .ok_or_else(|| crypto_error("the test issuer has no signing key"))
    }

    pub(super) fn next_kid(&mut self) -> String {
        self.generated += 1;
        format!("key-{}", self.generated)
    }
}
