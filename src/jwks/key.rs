//! A verification key and verification by it: [`VerifyingKey`] (a public
//! key from a JWK Set, parsed once) and the signature checks with
//! aws-lc-rs. Loading a set ([`super::keyset`]) builds these keys; this
//! module knows nothing of sets.
//!
//! aws-lc-rs is the only backend. A key is parsed once, when its set is
//! loaded ([`Prepared`]), and a key the backend refuses then is no key (its
//! set drops it). An RSA key is prepared for its other RSA algorithms on
//! first use; one it cannot be prepared for is verified through
//! jsonwebtoken's aws-lc-rs provider, called directly (never jsonwebtoken's
//! process-wide default, which panics at first use when feature
//! unification enables both of its backends).

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};

static PROVIDER: &CryptoProvider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;

/// The shape of a verification key, used to match it with a token's `alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyShape {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyShape {
    /// Whether a key of this shape can verify a token signed with `alg`.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
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

/// The field's prime, 2^255 - 19, little-endian (RFC 8032 section 5.1).
const ED25519_P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The `y` coordinates (little-endian, sign bit clear) of the Ed25519
/// points of small order, those `P` with `[8]P` the identity: 1 (the
/// identity, order 1), p - 1 (order 2), 0 (the two points of order 4), and
/// the roots of `d y^4 + 2 y^2 - 1 = 0` (the four points of order 8, whose
/// double is of order 4). Computed from the curve's equation (RFC 8032
/// section 5.1: `-x^2 + y^2 = 1 + d x^2 y^2`), each `x` from `x^2 = -y^2`.
const ED25519_SMALL_ORDER_Y: [[u8; 32]; 5] = [
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    {
        let mut p_minus_one = ED25519_P;
        p_minus_one[0] = 0xec;
        p_minus_one
    },
    [0; 32],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// Whether an Ed25519 public key (RFC 8032 encoding) is one anyone can
/// sign for: a point of small order, for which `R` = the identity (or the
/// key itself) and `S` = 0 verify any message in the cofactorless check
/// aws-lc-rs makes, or an encoding RFC 8032 section 5.1.3 says to refuse
/// (`y` not below p; `p` and `p + 1` are spellings of the small-order `y`s
/// 0 and 1). aws-lc-rs takes both (found from outside: a key set holding
/// the identity point let anyone mint tokens for any subject and scope).
///
/// Hand-written: the check is five constants and a comparison, and no
/// dependency of this crate decodes Ed25519 points (a curve arithmetic
/// crate for it would be far more code than this).
pub(crate) fn ed25519_point_is_weak(encoded: &[u8]) -> bool {
    let Ok(mut y) = <[u8; 32]>::try_from(encoded) else {
        return true;
    };
    // The top bit is the sign of x, not part of y.
    if let Some(top) = y.last_mut() {
        *top &= 0x7f;
    }
    // y >= p: compared from the most significant byte.
    let mut not_below_p = true;
    for (byte, p) in y.iter().rev().zip(ED25519_P.iter().rev()) {
        if byte != p {
            not_below_p = byte > p;
            break;
        }
    }
    not_below_p || ED25519_SMALL_ORDER_Y.contains(&y)
}

/// One usable public key.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) shape: KeyShape,
    /// The JWK's own `alg`, if it declared one (RFC 7517 section 4.4).
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
    /// The key parsed once for verification (aws-lc-rs).
    pub(crate) prepared: Prepared,
    /// Identifies this key material (and `kid`) across reloads of the set:
    /// cached verifications are trusted only while their key is still in it.
    pub(crate) fingerprint: u64,
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

/// Verifies `signature` over `message` with `key` under `alg`. Any failure
/// (wrong key type, malformed key, bad signature) is `false`.
///
/// The key was parsed once, when the key set was loaded ([`Prepared`]);
/// an RSA key that cannot be prepared for `alg` (another RSA algorithm
/// than the one it was loaded for) is parsed per call by the provider.
pub(crate) fn verify_signature(
    alg: Algorithm,
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> bool {
    if let Some(verdict) = key.prepared.verify(alg, message, signature) {
        return verdict;
    }
    verify_with_provider(alg, &key.key, message, signature)
}

/// Whether `alg` hashes its signing input with SHA-256, so that the
/// SHA-256 the verified-token cache needs can share that hashing
/// ([`verify_prehashed`]).
pub(crate) fn hashes_with_sha256(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256)
}

/// Verifies `signature` over the message whose SHA-256 is `digest`, for an
/// algorithm that [`hashes_with_sha256`]. `None` when this key cannot
/// verify a digest: then use [`verify_signature`].
pub(crate) fn verify_prehashed(
    alg: Algorithm,
    key: &VerifyingKey,
    digest: &aws_lc_rs::digest::Digest,
    signature: &[u8],
) -> Option<bool> {
    key.prepared.inner.verify_digest(alg, digest, signature)
}

/// The same through jsonwebtoken's provider (no preparation).
pub(crate) fn verify_with_provider(
    alg: Algorithm,
    key: &DecodingKey,
    message: &[u8],
    signature: &[u8],
) -> bool {
    match (PROVIDER.verifier_factory)(&alg, key) {
        Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
        Err(_) => false,
    }
}

/// A public key parsed once for the algorithms it serves (aws-lc-rs
/// `ParsedPublicKey`), so a verification does no key parsing.
pub(crate) struct Prepared {
    inner: prepared::Inner,
}

impl Prepared {
    /// An RSA key (`n`, `e` big-endian), prepared now for `primary` and
    /// lazily for the other RSA algorithms. `None` when the backend refuses
    /// the key for `primary` (an even modulus, for one): such a key can
    /// verify nothing, and is dropped when its set is loaded.
    pub(crate) fn rsa(n: Vec<u8>, e: Vec<u8>, primary: Algorithm) -> Option<Self> {
        let inner = prepared::Inner::rsa(n, e);
        inner.rsa_for(primary)?;
        Some(Self { inner })
    }

    /// An EC key from its coordinates, for `alg` (ES256 or ES384). `None`
    /// when the point is not on the curve (SEC 1 section 3.2.2.1).
    pub(crate) fn ec(alg: Algorithm, x: &[u8], y: &[u8]) -> Option<Self> {
        Some(Self {
            inner: prepared::Inner::ec(alg, x, y)?,
        })
    }

    /// An Ed25519 key. `None` when the backend refuses it, or when it is
    /// a point anyone can sign for ([`ed25519_point_is_weak`]).
    pub(crate) fn ed25519(x: &[u8]) -> Option<Self> {
        if ed25519_point_is_weak(x) {
            return None;
        }
        Some(Self {
            inner: prepared::Inner::ed25519(x)?,
        })
    }

    /// `Some(verdict)` when prepared for `alg`; `None` to fall back.
    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Option<bool> {
        self.inner.verify(alg, message, signature)
    }
}

mod prepared {
    use std::sync::OnceLock;

    use aws_lc_rs::signature::{
        self as sig, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents,
    };
    use jsonwebtoken::Algorithm;

    const RSA_ALGS: [Algorithm; 6] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    fn rsa_params(alg: Algorithm) -> Option<&'static RsaParameters> {
        Some(match alg {
            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    pub(super) enum Inner {
        Rsa {
            n: Vec<u8>,
            e: Vec<u8>,
            by_alg: Box<[OnceLock<Option<ParsedPublicKey>>; 6]>,
        },
        Single {
            alg: Algorithm,
            key: ParsedPublicKey,
        },
    }

    impl Inner {
        pub(super) fn rsa(n: Vec<u8>, e: Vec<u8>) -> Self {
            Self::Rsa {
                n,
                e,
                by_alg: Default::default(),
            }
        }

        pub(super) fn rsa_for(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
            let Self::Rsa { n, e, by_alg } = self else {
                return None;
            };
            let i = RSA_ALGS.iter().position(|a| *a == alg)?;
            by_alg
                .get(i)?
                .get_or_init(|| {
                    let params = rsa_params(alg)?;
                    RsaPublicKeyComponents {
                        n: n.as_slice(),
                        e: e.as_slice(),
                    }
                    .to_parsed_public_key(params)
                    .ok()
                })
                .as_ref()
        }

        pub(super) fn ec(alg: Algorithm, x: &[u8], y: &[u8]) -> Option<Self> {
            let algorithm: &'static dyn sig::VerificationAlgorithm = match alg {
                Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
                _ => return None,
            };
            // SEC 1 uncompressed point: 0x04 || x || y.
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            let key = ParsedPublicKey::new(algorithm, point).ok()?;
            Some(Self::Single { alg, key })
        }

        pub(super) fn ed25519(x: &[u8]) -> Option<Self> {
            let key = ParsedPublicKey::new(&sig::ED25519, x).ok()?;
            Some(Self::Single {
                alg: Algorithm::EdDSA,
                key,
            })
        }

        /// The prepared key for `alg`: `None` when it is not prepared for
        /// it (use the provider), `Some(None)` when this key never serves
        /// `alg` (refuse, as the key selection does; never reached through it).
        fn key_for(&self, alg: Algorithm) -> Option<Option<&ParsedPublicKey>> {
            match self {
                Self::Rsa { .. } => self.rsa_for(alg).map(Some),
                Self::Single { alg: a, key } if *a == alg => Some(Some(key)),
                Self::Single { .. } => Some(None),
            }
        }

        pub(super) fn verify(
            &self,
            alg: Algorithm,
            message: &[u8],
            signature: &[u8],
        ) -> Option<bool> {
            let key = self.key_for(alg)?;
            Some(key.is_some_and(|k| k.verify_sig(message, signature).is_ok()))
        }

        /// As [`Inner::verify`] for a message's SHA-256 (only algorithms
        /// that hash with SHA-256; aws-lc-rs refuses a digest of another
        /// algorithm than the key's parameters name).
        pub(super) fn verify_digest(
            &self,
            alg: Algorithm,
            digest: &aws_lc_rs::digest::Digest,
            signature: &[u8],
        ) -> Option<bool> {
            if !super::hashes_with_sha256(alg) {
                return None;
            }
            let key = self.key_for(alg)?;
            Some(key.is_some_and(|k| k.verify_digest_sig(digest, signature).is_ok()))
        }
    }
}

/// The name of the backend in use (for logs and diagnostics).
pub(crate) fn backend_name() -> &'static str {
    "aws-lc-rs"
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;
    use crate::jwks::keyset::KeySet;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    // RFC 7518 section 3.1: one RSA key (no `alg` pinned) verifies each RSA
    // algorithm's signatures, and only under the algorithm that made them.
    #[test]
    fn an_rsa_key_verifies_every_rsa_algorithm_it_signed_with() {
        let rng = SystemRandom::new();
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let doc =
            json!({"keys": [{"kty": "RSA", "kid": "r", "n": b64(&public.n), "e": b64(&public.e)}]});
        let (set, _) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        let message = b"header.payload";
        let cases: [(Algorithm, &'static dyn sig::RsaEncoding); 6] = [
            (Algorithm::RS256, &sig::RSA_PKCS1_SHA256),
            (Algorithm::RS384, &sig::RSA_PKCS1_SHA384),
            (Algorithm::RS512, &sig::RSA_PKCS1_SHA512),
            (Algorithm::PS256, &sig::RSA_PSS_SHA256),
            (Algorithm::PS384, &sig::RSA_PSS_SHA384),
            (Algorithm::PS512, &sig::RSA_PSS_SHA512),
        ];
        for (alg, encoding) in cases {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &rng, message, &mut signature).unwrap();
            let [key] = set.candidates(Some("r"), alg)[..] else {
                panic!("{alg:?}: one candidate");
            };
            assert!(verify_signature(alg, key, message, &signature), "{alg:?}");
            assert!(
                !verify_signature(alg, key, b"header.other", &signature),
                "{alg:?}"
            );
            let other = if alg == Algorithm::RS384 {
                Algorithm::PS384
            } else {
                Algorithm::RS384
            };
            assert!(
                !verify_signature(other, key, message, &signature),
                "{alg:?} as {other:?}"
            );
        }
    }

    /// Every spelling of an Ed25519 point anyone can sign for: the small-
    /// order `y`s with either sign bit, and every `y` from p to 2^255 - 1.
    fn weak_ed25519_points() -> Vec<[u8; 32]> {
        let mut points = Vec::new();
        for y in ED25519_SMALL_ORDER_Y {
            for sign in [0, 0x80] {
                let mut point = y;
                point[31] |= sign;
                points.push(point);
            }
        }
        // p + k for k in 0..19: the low byte of p is 0xed, so no carry.
        for k in 0..19u8 {
            for sign in [0, 0x80] {
                let mut point = ED25519_P;
                point[0] += k;
                point[31] |= sign;
                points.push(point);
            }
        }
        points
    }

    // Found from outside: aws-lc-rs verifies Ed25519 signatures without
    // refusing a public key of small order, so a key set (or a DPoP proof)
    // holding the identity point let anyone sign any token: `R` = the
    // identity and `S` = 0. Such points, and the encodings RFC 8032 refuses
    // (`y` >= p), are no key; real keys still are.
    #[test]
    fn ed25519_points_anyone_can_sign_for_are_no_key() {
        let identity = ED25519_SMALL_ORDER_Y[0];
        let mut keyless = [0u8; 64];
        keyless[..32].copy_from_slice(&identity);
        // The backend alone takes the forgery: what the check is for.
        assert!(
            sig::UnparsedPublicKey::new(&sig::ED25519, identity)
                .verify(b"any.message", &keyless)
                .is_ok()
        );
        let points = weak_ed25519_points();
        assert_eq!(points.len(), 48);
        for point in &points {
            assert!(ed25519_point_is_weak(point), "{point:02x?}");
            assert!(Prepared::ed25519(point).is_none(), "{point:02x?}");
            let doc =
                json!({"keys": [{"kty": "OKP", "kid": "w", "crv": "Ed25519", "x": b64(point)}]});
            let (set, dropped) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
            assert_eq!(set.len(), 0, "{point:02x?}");
            assert_eq!(
                dropped,
                [(
                    Some("w".to_owned()),
                    crate::jwks::keyset::Dropped::InvalidKey
                )]
            );
        }
        // Wrong lengths are never keys either.
        assert!(ed25519_point_is_weak(&[]));
        assert!(ed25519_point_is_weak(&[1; 31]));
        assert!(ed25519_point_is_weak(&[1; 33]));
        // Real keys, and the largest canonical y (p - 1 is of order 2; p - 2
        // is not): kept.
        let rng = SystemRandom::new();
        for _ in 0..200 {
            let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let pair = sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let public = pair.public_key().as_ref();
            assert!(!ed25519_point_is_weak(public), "{public:02x?}");
            let signature = pair.sign(b"header.payload");
            let doc =
                json!({"keys": [{"kty": "OKP", "kid": "e", "crv": "Ed25519", "x": b64(public)}]});
            let (set, _) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
            let [key] = set.candidates(Some("e"), Algorithm::EdDSA)[..] else {
                panic!("one candidate");
            };
            assert!(verify_signature(
                Algorithm::EdDSA,
                key,
                b"header.payload",
                signature.as_ref()
            ));
        }
        let mut p_minus_two = ED25519_P;
        p_minus_two[0] = 0xeb;
        assert!(!ed25519_point_is_weak(&p_minus_two));
    }

    // Some issuers publish `n` with a leading zero byte (a two's-complement
    // habit; RFC 7518 section 6.3.1.1 asks for none): the key still loads
    // and verifies.
    #[test]
    fn an_rsa_modulus_with_a_leading_zero_still_verifies() {
        let rng = SystemRandom::new();
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let mut n = vec![0u8];
        n.extend_from_slice(&public.n);
        let doc = json!({"keys": [{"kty": "RSA", "kid": "z", "n": b64(&n), "e": b64(&public.e)}]});
        let (set, dropped) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert!(dropped.is_empty(), "{dropped:?}");
        let message = b"header.payload";
        for (alg, encoding) in [
            (
                Algorithm::RS256,
                &sig::RSA_PKCS1_SHA256 as &'static dyn sig::RsaEncoding,
            ),
            (Algorithm::PS256, &sig::RSA_PSS_SHA256),
        ] {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &rng, message, &mut signature).unwrap();
            let [key] = set.candidates(Some("z"), alg)[..] else {
                panic!("{alg:?}: one candidate");
            };
            assert!(verify_signature(alg, key, message, &signature), "{alg:?}");
        }
    }

    // RFC 7518 section 3.4: a P-384 key verifies ES384 (fixed-length
    // signatures), and is never a candidate for ES256.
    #[test]
    fn a_p384_key_verifies_es384() {
        let rng = SystemRandom::new();
        let pair = sig::EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref();
        let (x, y) = point.get(1..).unwrap().split_at(48);
        let doc = json!({"keys": [
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": b64(x), "y": b64(y)},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": b64(&[7; 66]), "y": b64(&[7; 66])},
            {"kty": "OKP", "kid": "okp-p256", "crv": "P-256", "x": b64(&[7; 32])},
        ]});
        let (set, dropped) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1, "{dropped:?}");
        assert_eq!(
            dropped.len(),
            2,
            "unsupported curves are dropped: {dropped:?}"
        );
        let message = b"header.payload";
        let signature = pair.sign(&rng, message).unwrap();
        let [key] = set.candidates(Some("p384"), Algorithm::ES384)[..] else {
            panic!("one ES384 candidate");
        };
        assert!(verify_signature(
            Algorithm::ES384,
            key,
            message,
            signature.as_ref()
        ));
        assert!(!verify_signature(
            Algorithm::ES384,
            key,
            b"tampered",
            signature.as_ref()
        ));
        assert!(set.candidates(Some("p384"), Algorithm::ES256).is_empty());
    }
}
