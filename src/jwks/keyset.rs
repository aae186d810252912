//! Parsing a JWK Set (RFC 7517 section 5) into keys ready to verify with.
//!
//! Keys that cannot verify tokens for us are dropped when the set is loaded,
//! so the request path never looks at them: `use` other than `sig`,
//! `key_ops` without `verify`, symmetric (`oct`) keys, RSA moduli outside
//! 2048..=8192 bits or with an implausible exponent, EC curves other than
//! P-256/P-384 or coordinates of the wrong length, OKP curves other than
//! Ed25519, a JWK `alg` that does not fit the key, well-formed members no
//! key can have (an EC point off its curve, an even RSA modulus, anything
//! the crypto backend refuses), repeated member names, and anything
//! malformed. One bad key never poisons the others, and a set left with no
//! usable key is a failed fetch (the last good set is kept, see
//! [`super::cache`]).
//!
//! A key that carries private members (`d`, `p`, `q`, ...) is a publishing
//! mistake of the issuer: its public part is used and a warning is logged
//! (without the values).
//!
//! Several keys may share a `kid` (an RSA and an EC key, or a careless
//! issuer): each one that fits the token's `alg` is tried, in document
//! order. At most [`MAX_KEYS`] keys are kept.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::key::{KeyShape, Prepared, VerifyingKey};
use crate::json;

/// The most keys a set may hold; later ones are dropped. Real issuers
/// publish a handful.
pub(crate) const MAX_KEYS: usize = 100;

/// JWK members that only a private key has (RFC 7518 sections 6.2.2, 6.3.2;
/// RFC 8037 section 2).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth"];

/// A loaded key set.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Vec<usize>>,
    keys: Vec<VerifyingKey>,
    /// `kid`s of usable keys that were published with private members.
    private_members: Vec<Option<String>>,
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
    /// Well-formed members that make no valid key: an EC point off its
    /// curve, an Ed25519 point of small order or not canonically encoded
    /// (anyone can sign for it), an even RSA modulus, or anything else the
    /// crypto backend refuses.
    InvalidKey,
    DuplicateMember,
    TooManyKeys,
}

/// The top level of a JWK Set: an object whose `keys` member (exactly one)
/// is an array. Other members are ignored (RFC 7517 section 5).
struct Document {
    keys: Vec<Box<RawValue>>,
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocVisitor;
        impl<'de> Visitor<'de> for DocVisitor {
            type Value = Document;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWK Set object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
                let mut keys = None;
                while let Some(name) = map.next_key::<String>()? {
                    if name == "keys" {
                        if keys.is_some() {
                            return Err(serde::de::Error::duplicate_field("keys"));
                        }
                        keys = Some(map.next_value::<Vec<Box<RawValue>>>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                keys.map(|keys| Document { keys })
                    .ok_or_else(|| serde::de::Error::missing_field("keys"))
            }
        }
        deserializer.deserialize_map(DocVisitor)
    }
}

impl KeySet {
    /// Parses a JWK Set document. `Err` only when the document itself is not
    /// a JSON object with a `keys` array.
    pub(crate) fn parse(body: &[u8]) -> Result<(Self, Vec<DroppedKey>), &'static str> {
        let doc: Document = serde_json::from_slice(body)
            .map_err(|_| "the key set is not a JSON object with one \"keys\" array")?;
        let mut set = KeySet::default();
        let mut dropped = Vec::new();
        for text in doc.keys {
            // Each key is read on its own, as strictly as a token's JSON: a
            // bad key is dropped, the others stay.
            let Ok(raw) = serde_json::from_str::<Value>(text.get()) else {
                dropped.push((None, Dropped::Malformed));
                continue;
            };
            let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
            match json::is_clean(text.get()) {
                Ok(true) => {}
                Ok(false) => {
                    dropped.push((kid, Dropped::DuplicateMember));
                    continue;
                }
                Err(_) => {
                    dropped.push((kid, Dropped::Malformed));
                    continue;
                }
            }
            if set.keys.len() >= MAX_KEYS {
                dropped.push((kid, Dropped::TooManyKeys));
                continue;
            }
            match prepare(&raw) {
                Ok(key) => {
                    if PRIVATE_MEMBERS.iter().any(|m| raw.get(*m).is_some()) {
                        set.private_members.push(key.kid.clone());
                    }
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

    /// `kid`s of usable keys that were published with private members (their
    /// public part is used; the caller warns).
    pub(crate) fn keys_with_private_members(&self) -> &[Option<String>] {
        &self.private_members
    }

    /// Whether a token with this `kid` and `alg` found nothing because the
    /// set may be out of date (worth a refetch), rather than because the
    /// token names a key we have for another algorithm (not worth one).
    ///
    /// With a `kid`: the `kid` is not in the set at all. Without: no key in
    /// the set fits `alg`.
    pub(crate) fn may_be_rotated_key(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        match kid {
            Some(kid) => !self.by_kid.contains_key(kid),
            None => !self.keys.iter().any(|k| k.accepts(alg)),
        }
    }

    /// Whether a key with this fingerprint is in the set.
    pub(crate) fn contains_fingerprint(&self, fingerprint: u64) -> bool {
        self.keys.iter().any(|k| k.fingerprint == fingerprint)
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
                .filter_map(|&i| self.keys.get(i))
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
    let mut material: Vec<u8> = Vec::new();
    let prepared;
    let shape = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = URL_SAFE_NO_PAD
                .decode(&p.n)
                .map_err(|_| Dropped::Malformed)?;
            let bits = rsa_bits(&n);
            if !(2048..=8192).contains(&bits) {
                return Err(Dropped::WeakOrHugeRsa);
            }
            // A product of two odd primes is odd (RFC 8017 section 3.1);
            // the backend does not check it when it parses the key.
            if n.last().is_none_or(|b| b % 2 == 0) {
                return Err(Dropped::InvalidKey);
            }
            let e = URL_SAFE_NO_PAD
                .decode(&p.e)
                .map_err(|_| Dropped::Malformed)?;
            if !plausible_rsa_exponent(&e) {
                return Err(Dropped::Malformed);
            }
            // RFC 7518 section 6.3.1.1 asks for no leading zero octets,
            // and notes that some libraries add one (a two's-complement
            // habit); the backend refuses them, so they are removed.
            let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
            material.extend_from_slice(b"RSA");
            material.extend_from_slice(n);
            material.extend_from_slice(e);
            prepared = Prepared::rsa(n.to_vec(), e.to_vec(), alg.unwrap_or(Algorithm::RS256))
                .ok_or(Dropped::InvalidKey)?;
            KeyShape::Rsa
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (shape, size) = match p.curve {
                EllipticCurve::P256 => (KeyShape::EcP256, 32),
                EllipticCurve::P384 => (KeyShape::EcP384, 48),
                _ => return Err(Dropped::UnsupportedCurve),
            };
            // RFC 7518 sections 6.2.1.2 and 6.2.1.3: full-length coordinates.
            let coordinate = |c: &str| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .filter(|bytes| bytes.len() == size)
                    .ok_or(Dropped::Malformed)
            };
            let (x, y) = (coordinate(&p.x)?, coordinate(&p.y)?);
            material.extend_from_slice(b"EC");
            material.extend_from_slice(&x);
            material.extend_from_slice(&y);
            let ec_alg = if shape == KeyShape::EcP256 {
                Algorithm::ES256
            } else {
                Algorithm::ES384
            };
            prepared = Prepared::ec(ec_alg, &x, &y).ok_or(Dropped::InvalidKey)?;
            shape
        }
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => {
                // RFC 8037 section 2: x is the 32-byte public key.
                let x = URL_SAFE_NO_PAD
                    .decode(&p.x)
                    .map_err(|_| Dropped::Malformed)?;
                if x.len() != 32 {
                    return Err(Dropped::Malformed);
                }
                material.extend_from_slice(b"OKP");
                material.extend_from_slice(&x);
                prepared = Prepared::ed25519(&x).ok_or(Dropped::InvalidKey)?;
                KeyShape::Ed25519
            }
            _ => return Err(Dropped::UnsupportedCurve),
        },
        // `oct` (symmetric) keys were dropped above, by their `kty`.
        _ => return Err(Dropped::UnsupportedType),
    };
    if alg.is_some_and(|a| !shape.fits(a)) {
        return Err(Dropped::NotForSignatures);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Dropped::Malformed)?;
    if let Some(kid) = &jwk.common.key_id {
        material.push(0);
        material.extend_from_slice(kid.as_bytes());
    }
    // The algorithm the JWK binds the key to is part of what it is: an
    // issuer pinning a key to one algorithm (RFC 8725 section 3.1) makes
    // it another key, and the verifications cached under the unpinned one
    // are no longer trusted (found from outside: a PS256 token verified
    // before the key was pinned to RS256 kept passing from the cache).
    if let Some(alg) = alg {
        material.push(1);
        material.extend_from_slice(format!("{alg:?}").as_bytes());
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material);
    let mut fp = [0u8; 8];
    for (out, byte) in fp.iter_mut().zip(digest.as_ref()) {
        *out = *byte;
    }
    Ok(VerifyingKey {
        kid: jwk.common.key_id,
        shape,
        alg,
        key,
        prepared,
        fingerprint: u64::from_be_bytes(fp),
    })
}

/// An odd public exponent of at least 3 and at most 32 bits (what the
/// crypto backends accept; RFC 8017 section 3.1).
fn plausible_rsa_exponent(e: &[u8]) -> bool {
    let e = strip_leading_zeros(e);
    if e.is_empty() || e.len() > 4 {
        return false;
    }
    let value = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    value >= 3 && value % 2 == 1
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

fn rsa_bits(n: &[u8]) -> usize {
    let n = strip_leading_zeros(n);
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

    // The JWK's `alg` is part of a key's fingerprint: pinning a key to an
    // algorithm ends the trust in verifications cached under it unpinned
    // (found from outside: a PS256 token kept passing from the cache).
    #[test]
    fn pinning_a_key_s_algorithm_changes_its_fingerprint() {
        let n = rsa_n(2048);
        let fingerprint = |alg: Option<&str>| {
            let mut jwk = json!({"kty": "RSA", "kid": "r1", "n": n, "e": "AQAB"});
            if let Some(alg) = alg {
                jwk["alg"] = json!(alg);
            }
            let doc = json!({ "keys": [jwk] }).to_string();
            let (set, _) = KeySet::parse(doc.as_bytes()).unwrap();
            set.keys[0].fingerprint
        };
        assert_eq!(fingerprint(None), fingerprint(None));
        assert_ne!(fingerprint(None), fingerprint(Some("RS256")));
        assert_ne!(fingerprint(Some("RS256")), fingerprint(Some("PS256")));
        assert_eq!(fingerprint(Some("RS256")), fingerprint(Some("RS256")));
    }

    #[test]
    fn rejects_documents_without_keys() {
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\": {}}").is_err());
        assert!(KeySet::parse(b"not json").is_err());
        assert_eq!(KeySet::parse(b"{\"keys\": []}").unwrap().0.len(), 0);
    }

    fn coord(len: usize) -> String {
        URL_SAFE_NO_PAD.encode(vec![7u8; len])
    }

    /// The coordinates of a fresh P-256 public key (a point on the curve).
    fn p256() -> (String, String) {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref();
        let (x, y) = point.get(1..).unwrap().split_at(32);
        (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
    }

    // RFC 7517 sections 4.2, 4.3; RFC 7518 section 6; RFC 8725 section 3.1.
    #[test]
    fn drops_keys_with_bad_members() {
        let (x, y) = p256();
        let mut even_n = vec![0xc2u8; 256];
        even_n[0] = 0xc1;
        let doc = json!({"keys": [
            {"kty": "EC", "kid": "p256", "crv": "P-256", "x": x, "y": y},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": coord(31), "y": coord(32)},
            {"kty": "EC", "kid": "crv-vs-alg", "crv": "P-256", "x": x, "y": y, "alg": "ES384"},
            // SEC 1 section 3.2.2.1: full-length coordinates, not on the curve.
            {"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": coord(32), "y": coord(32)},
            {"kty": "EC", "kid": "off-curve-384", "crv": "P-384", "x": coord(48), "y": coord(48)},
            {"kty": "RSA", "kid": "n-even", "n": URL_SAFE_NO_PAD.encode(&even_n), "e": "AQAB"},
            {"kty": "EC", "kid": "p384-short", "crv": "P-384", "x": coord(32), "y": coord(32)},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": coord(32)},
            {"kty": "OKP", "kid": "ed-long", "crv": "Ed25519", "x": coord(33)},
            {"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": coord(32)},
            {"kty": "RSA", "kid": "e-even", "n": rsa_n(2048), "e": "AQAA"},
            {"kty": "RSA", "kid": "e-one", "n": rsa_n(2048), "e": "AQ"},
            {"kty": "RSA", "kid": "e-huge", "n": rsa_n(2048), "e": URL_SAFE_NO_PAD.encode([1u8; 9])},
            {"kty": "RSA", "kid": "n-not-b64", "n": "***", "e": "AQAB"},
            {"kty": "RSA", "kid": "n-number", "n": 5, "e": "AQAB"},
            {"kty": "RSA", "kid": 7, "n": rsa_n(2048), "e": "AQAB"},
            {"kty": "RSA", "kid": "ops-ok", "n": rsa_n(2048), "e": "AQAB", "key_ops": ["verify"]},
            {"kty": "RSA", "kid": "enc-alg", "n": rsa_n(2048), "e": "AQAB", "alg": "RSA-OAEP"},
        ]});
        let (set, dropped) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        let kept: Vec<_> = set.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kept, ["p256", "ed", "ops-ok"], "{dropped:?}");
        assert_eq!(dropped.len(), 15);
        for kid in ["off-curve", "off-curve-384", "n-even"] {
            assert!(
                dropped.contains(&(Some(kid.to_owned()), Dropped::InvalidKey)),
                "{kid}: {dropped:?}"
            );
        }
        assert!(set.candidates(Some("p256"), Algorithm::ES384).is_empty());
        assert_eq!(set.candidates(Some("p256"), Algorithm::ES256).len(), 1);
    }

    // Private members are a publishing mistake: use the public part, report it.
    #[test]
    fn private_members_are_ignored_and_reported() {
        let (x, y) = p256();
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "leaky", "n": rsa_n(2048), "e": "AQAB", "d": "c2VjcmV0", "p": "AQ"},
            {"kty": "EC", "kid": "leaky-ec", "crv": "P-256", "x": x, "y": y, "d": coord(32)},
            {"kty": "RSA", "kid": "clean", "n": rsa_n(2048), "e": "AQAB"},
        ]});
        let (set, dropped) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert!(dropped.is_empty());
        assert_eq!(set.len(), 3);
        assert_eq!(
            set.keys_with_private_members(),
            [Some("leaky".to_owned()), Some("leaky-ec".to_owned())]
        );
        let debug = format!("{set:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }

    // RFC 7517 section 4.5: kids are hints; duplicates are tried in order.
    #[test]
    fn duplicate_kids_are_all_candidates_in_document_order() {
        let (x, y) = p256();
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "same", "n": rsa_n(2048), "e": "AQAB"},
            {"kty": "EC", "kid": "same", "crv": "P-256", "x": x, "y": y},
            {"kty": "RSA", "kid": "same", "n": rsa_n(4096), "e": "AQAB", "alg": "RS256"},
        ]});
        let (set, _) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.candidates(Some("same"), Algorithm::RS256).len(), 2);
        assert_eq!(set.candidates(Some("same"), Algorithm::PS256).len(), 1);
        assert_eq!(set.candidates(Some("same"), Algorithm::ES256).len(), 1);
        assert!(set.candidates(Some("same"), Algorithm::EdDSA).is_empty());
        // Without a kid, an ambiguous choice is no choice.
        assert!(set.candidates(None, Algorithm::RS256).is_empty());
        assert_eq!(set.candidates(None, Algorithm::ES256).len(), 1);
    }

    #[test]
    fn refetch_hint_only_for_unknown_kids() {
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": rsa_n(2048), "e": "AQAB", "alg": "RS256"},
        ]});
        let (set, _) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert!(set.may_be_rotated_key(Some("new"), Algorithm::RS256));
        // A known kid with another algorithm is an attack, not a rotation.
        assert!(!set.may_be_rotated_key(Some("r"), Algorithm::ES256));
        assert!(!set.may_be_rotated_key(Some("r"), Algorithm::PS256));
        assert!(!set.may_be_rotated_key(None, Algorithm::RS256));
        assert!(set.may_be_rotated_key(None, Algorithm::ES256));
    }

    // RFC 7515 section 4 style strictness for the key set itself.
    #[test]
    fn repeated_members_drop_the_key_or_the_document() {
        let one_dup = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"a","n":"{n}","e":"AQAB","e":"AQAA"}},{{"kty":"RSA","kid":"b","n":"{n}","e":"AQAB"}}]}}"#,
            n = rsa_n(2048)
        );
        let (set, dropped) = KeySet::parse(one_dup.as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(dropped, [(Some("a".to_owned()), Dropped::DuplicateMember)]);
        assert!(KeySet::parse(br#"{"keys":[],"keys":[]}"#).is_err());
        // Unknown top-level members are ignored (RFC 7517 section 5).
        assert!(KeySet::parse(br#"{"keys":[],"other":{"x":1}}"#).is_ok());
        // A top-level array is not a JWK Set, even if it looks like one.
        assert!(KeySet::parse(br#"[[]]"#).is_err());
    }

    // One unreadable key (a number out of range, an escaped lone surrogate,
    // nesting past the limit) is dropped; the others stay (RFC 7517 section 5).
    #[test]
    fn an_unreadable_key_is_dropped_alone() {
        let good = json!({"kty": "RSA", "kid": "good", "n": rsa_n(2048), "e": "AQAB"});
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let doc = format!(
            r#"{{"keys":[{{"kid":"big","kty":"RSA","x":1e999}},{good},{{"kid":"\ud800","kty":"RSA"}},{{"kty":"RSA","x":{deep}}}]}}"#
        );
        let (set, dropped) = KeySet::parse(doc.as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.candidates(Some("good"), Algorithm::RS256).len(), 1);
        assert_eq!(
            dropped,
            [
                (None, Dropped::Malformed),
                (None, Dropped::Malformed),
                (None, Dropped::Malformed)
            ]
        );
    }

    #[test]
    fn at_most_max_keys_are_kept() {
        let keys: Vec<Value> = (0..MAX_KEYS + 5)
            .map(|i| json!({"kty": "OKP", "crv": "Ed25519", "kid": i.to_string(), "x": coord(32)}))
            .collect();
        let (set, dropped) = KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), MAX_KEYS);
        assert_eq!(dropped.len(), 5);
        assert!(dropped.iter().all(|(_, why)| *why == Dropped::TooManyKeys));
    }

    #[test]
    fn rsa_exponent_plausibility() {
        assert!(plausible_rsa_exponent(&[1, 0, 1]));
        assert!(plausible_rsa_exponent(&[0, 0, 3]));
        assert!(!plausible_rsa_exponent(&[1]));
        assert!(!plausible_rsa_exponent(&[2]));
        assert!(!plausible_rsa_exponent(&[]));
        assert!(!plausible_rsa_exponent(&[1, 0, 0, 0, 1]));
    }

    #[test]
    fn rsa_bit_length() {
        assert_eq!(rsa_bits(&[0, 0x80, 0]), 16);
        assert_eq!(rsa_bits(&[0x01, 0]), 9);
        assert_eq!(rsa_bits(&[]), 0);
    }
}
