//! Parsing a JWK Set (RFC 7517 section 5) into keys ready to verify with.
//!
//! Keys that cannot verify tokens for us are dropped when the set is loaded,
//! so the request path never looks at them: `use` other than `sig`,
//! `key_ops` without `verify`, symmetric (`oct`) keys, RSA moduli outside
//! 2048..=8192 bits, EC curves other than P-256/P-384, OKP curves other than
//! Ed25519, and anything malformed. One bad key never poisons the others.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The shape of a verification key, used to match it with a token's `alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyShape {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyShape {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (Self::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (Self::EcP256, ES256)
                | (Self::EcP384, ES384)
                | (Self::Ed25519, EdDSA)
        )
    }
}

/// One usable public key.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) shape: KeyShape,
    /// The JWK's own `alg`, if it declared one (RFC 7517 section 4.4).
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("shape", &self.shape)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Whether this key may verify a token signed with `alg`.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.shape.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// A loaded key set.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Vec<usize>>,
    keys: Vec<VerifyingKey>,
}

/// A key left out of a set: its `kid` and why.
pub(crate) type DroppedKey = (Option<String>, Dropped);

/// Why a key was dropped (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    Malformed,
    NotForSignatures,
    Symmetric,
    UnsupportedType,
    WeakOrHugeRsa,
    UnsupportedCurve,
}

impl KeySet {
    /// Parses a JWK Set document. `Err` only when the document itself is not
    /// a JSON object with a `keys` array.
    pub(crate) fn parse(body: &[u8]) -> Result<(Self, Vec<DroppedKey>), &'static str> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|_| "the key set is not valid JSON")?;
        let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
            return Err("the key set has no \"keys\" array");
        };
        let mut set = KeySet::default();
        let mut dropped = Vec::new();
        for raw in keys {
            let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
            match prepare(raw) {
                Ok(key) => {
                    if let Some(kid) = &key.kid {
                        set.by_kid
                            .entry(kid.clone())
                            .or_default()
                            .push(set.keys.len());
                    }
                    set.keys.push(key);
                }
                Err(why) => dropped.push((kid, why)),
            }
        }
        Ok((set, dropped))
    }

    /// Number of usable keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Keys that may verify a token with this `kid` and `alg`.
    ///
    /// With a `kid`: the keys with that `kid` (several keys may share one,
    /// for example an RSA and an EC key; each is tried in document order).
    /// Without a `kid`: the only key that fits `alg`, if exactly one does.
    pub(crate) fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&VerifyingKey> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .into_iter()
                .flatten()
                .map(|&i| &self.keys[i])
                .filter(|k| k.accepts(alg))
                .collect(),
            None => {
                let fitting: Vec<&VerifyingKey> =
                    self.keys.iter().filter(|k| k.accepts(alg)).collect();
                if fitting.len() == 1 {
                    fitting
                } else {
                    Vec::new()
                }
            }
        }
    }
}

fn prepare(raw: &Value) -> Result<VerifyingKey, Dropped> {
    let kty = raw
        .get("kty")
        .and_then(Value::as_str)
        .ok_or(Dropped::Malformed)?;
    if kty == "oct" {
        return Err(Dropped::Symmetric);
    }
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|_| Dropped::Malformed)?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err(Dropped::NotForSignatures);
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(Dropped::NotForSignatures);
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(Algorithm::try_from(a).map_err(|_| Dropped::NotForSignatures)?),
    };
    let shape = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = URL_SAFE_NO_PAD
                .decode(&p.n)
                .map_err(|_| Dropped::Malformed)?;
            let bits = rsa_bits(&n);
            if !(2048..=8192).contains(&bits) {
                return Err(Dropped::WeakOrHugeRsa);
            }
            KeyShape::Rsa
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyShape::EcP256,
            EllipticCurve::P384 => KeyShape::EcP384,
            _ => return Err(Dropped::UnsupportedCurve),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => KeyShape::Ed25519,
            _ => return Err(Dropped::UnsupportedCurve),
        },
        AlgorithmParameters::OctetKey(_) => return Err(Dropped::Symmetric),
        _ => return Err(Dropped::UnsupportedType),
    };
    if alg.is_some_and(|a| !shape.fits(a)) {
        return Err(Dropped::NotForSignatures);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Dropped::Malformed)?;
    Ok(VerifyingKey {
        kid: jwk.common.key_id,
        shape,
        alg,
        key,
    })
}

fn rsa_bits(n: &[u8]) -> usize {
    let n = &n[n.iter().take_while(|&&b| b == 0).count()..];
    match n.first() {
        None => 0,
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_n(bits: usize) -> String {
        let mut n = vec![0xffu8; bits / 8];
        n[0] = 0xc1;
        URL_SAFE_NO_PAD.encode(n)
    }

    #[test]
    fn drops_unusable_keys_and_keeps_the_rest() {
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "good", "n": rsa_n(2048), "e": "AQAB", "use": "sig", "alg": "RS256"},
            {"kty": "RSA", "kid": "enc", "n": rsa_n(2048), "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "kid": "weak", "n": rsa_n(1024), "e": "AQAB"},
            {"kty": "RSA", "kid": "huge", "n": rsa_n(8200), "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "ops", "n": rsa_n(2048), "e": "AQAB", "key_ops": ["encrypt"]},
            {"kty": "RSA", "kid": "mismatch", "n": rsa_n(2048), "e": "AQAB", "alg": "ES256"},
            {"kty": "XYZ", "kid": "what"},
            {"kid": "nokty"},
            "not an object"
        ]});
        let (set, dropped) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(dropped.len(), 10);
        assert_eq!(set.candidates(Some("good"), Algorithm::RS256).len(), 1);
        // The JWK's alg pins the algorithm (RFC 8725 section 3.1).
        assert!(set.candidates(Some("good"), Algorithm::PS256).is_empty());
        assert!(set.candidates(Some("good"), Algorithm::ES256).is_empty());
        assert!(set.candidates(Some("other"), Algorithm::RS256).is_empty());
        assert_eq!(set.candidates(None, Algorithm::RS256).len(), 1);
    }

    #[test]
    fn rejects_documents_without_keys() {
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\": {}}").is_err());
        assert!(KeySet::parse(b"not json").is_err());
        assert_eq!(KeySet::parse(b"{\"keys\": []}").unwrap().0.len(), 0);
    }

    #[test]
    fn rsa_bit_length() {
        assert_eq!(rsa_bits(&[0, 0x80, 0]), 16);
        assert_eq!(rsa_bits(&[0x01, 0]), 9);
        assert_eq!(rsa_bits(&[]), 0);
    }
}
