//! Reading and checking one DPoP proof (RFC 9449 section 4.3), cheapest
//! checks first:
//!
//! 1. the size cap, then the compact JWS shape (three base64url parts);
//! 2. the JOSE header, read strictly (a repeated member is refused):
//!    `typ` is `dpop+jwt`; `alg` is on the allowlist (asymmetric only);
//!    no `crit`, `b64`, `cty`, `enc` nor `zip`; `jwk` is a public key (no
//!    private member) of the shape the `alg` needs, whose own `alg`, `use`
//!    and `key_ops`, when present, allow verifying with that `alg`;
//! 3. the claims, read strictly: `htm` equals the request method; `htu`
//!    equals the request URI (see [`Expected`]); `iat` (a NumericDate)
//!    within the window;
//!    `jti` a non-empty string; `ath` the base64url SHA-256 of the access
//!    token; `nonce` when the caller demands one (checked by the caller);
//! 4. the signature, by the header's `jwk`;
//! 5. the RFC 7638 thumbprint of that key, for the caller to compare with
//!    the token's `cnf.jkt`.
//!
//! Nothing here logs or returns proof material: a refusal is a
//! [`ProofError`] and nothing else.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Algorithm;
use crate::json::{Members, as_str};

/// Default cap on a proof's length, in bytes (an RSA-4096 key in the header
/// fits in about 1.5 KiB).
pub(crate) const DEFAULT_MAX_PROOF_BYTES: usize = 4 * 1024;

/// Longest `jti` accepted, in bytes.
const MAX_JTI_BYTES: usize = 256;

/// Why a proof was refused. Each maps to one reason code (in
/// `crate::error`) and never carries proof material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// Longer than the cap.
    TooLarge,
    /// Not a compact JWS, bad base64url, not a JSON object, a repeated
    /// member.
    Malformed,
    /// A header member this reader does not honour (`crit`, `b64`, `cty`,
    /// `enc`, `zip`).
    Header,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` missing or not on the allowlist.
    Algorithm,
    /// `jwk` missing, malformed, or not fit for `alg` (its shape, or its
    /// own `alg`, `use`, `key_ops`).
    Key,
    /// `jwk` holds a private member.
    PrivateKey,
    /// `htm` names another method than the request's.
    Method,
    /// `htu` names another URI than the request's.
    Uri,
    /// `iat` too far in the past.
    Expired,
    /// `iat` too far in the future.
    Future,
    /// `htm`, `htu`, `jti`, `iat` (or, with a token, `ath`) missing or of
    /// the wrong type, or another claim malformed.
    Claims,
    /// `ath` is not the hash of the access token.
    Ath,
    /// Nonces are demanded and the proof has none.
    NonceMissing,
    /// The proof's nonce is not one of ours, or is stale.
    NonceInvalid,
    /// The signature does not verify.
    Signature,
}

/// What the request says the proof must match.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    /// The request method, as sent (`GET`, `POST`, ...).
    pub(crate) method: &'a str,
    /// The request URI as the proof must name it: the configured
    /// resource's scheme and authority plus the request path, normalised
    /// (see [`super::htu_matches`]).
    pub(crate) htu: &'a url::Url,
    /// The access token the proof must be bound to (`ath`); `None` at a
    /// token endpoint, where `ath` is not checked.
    pub(crate) access_token: Option<&'a str>,
    /// Unix seconds now.
    pub(crate) now: u64,
    /// The `iat` window, seconds either side of now.
    pub(crate) max_age: u64,
    /// The server's nonces, when it demands one: checked before the
    /// signature (see [`check`]).
    pub(crate) nonces: Option<&'a super::nonce::NonceKeys>,
}

/// A proof that passed every check.
#[derive(Debug)]
pub(crate) struct Verified {
    /// RFC 7638 SHA-256 thumbprint of the proof key, base64url.
    pub(crate) jkt: String,
    /// `jti`.
    pub(crate) jti: String,
    /// `iat`.
    pub(crate) iat: u64,
}

/// The proof key, checked against its `alg`.
#[derive(Debug)]
enum ProofKey {
    Ec {
        crv: &'static str,
        x: Vec<u8>,
        y: Vec<u8>,
        x64: String,
        y64: String,
    },
    Ed25519 {
        x: Vec<u8>,
        x64: String,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        n64: String,
        e64: String,
    },
}

/// Members a public JWK must not carry (RFC 7518 sections 6.2.2, 6.3.2,
/// 6.4; RFC 8037 section 2): private or symmetric key material.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks `proof` against `expected` (see the module documentation).
pub(crate) fn check(
    proof: &str,
    allowed: &[Algorithm],
    max_bytes: usize,
    expected: &Expected<'_>,
) -> Result<Verified, ProofError> {
    use ProofError as E;
    // 1. Size and shape.
    if proof.len() > max_bytes {
        return Err(E::TooLarge);
    }
    let mut parts = proof.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(E::Malformed);
    };
    let header_bytes = URL_SAFE_NO_PAD.decode(h64).map_err(|_| E::Malformed)?;
    let header_text = std::str::from_utf8(&header_bytes).map_err(|_| E::Malformed)?;
    let header = Members::parse(header_text).map_err(|_| E::Malformed)?;
    // 2. The header.
    match header.str("typ") {
        Ok(Some(t)) if is_dpop_typ(&t) => {}
        _ => return Err(E::Type),
    }
    let alg = match header.str("alg") {
        Ok(Some(a)) => a.parse::<Algorithm>().map_err(|_| E::Algorithm)?,
        _ => return Err(E::Algorithm),
    };
    if !allowed.contains(&alg) {
        return Err(E::Algorithm);
    }
    // The access token's rule: a header this reader cannot honour, not a
    // key problem. Found from outside: a proof with `b64: false` (without
    // the `crit` RFC 7797 section 6 asks for), `cty`, `enc` or `zip` was
    // taken, where an access token with one is refused.
    if crate::verify::jwt::UNSUPPORTED_HEADER_MEMBERS
        .iter()
        .any(|k| header.contains(k))
    {
        return Err(E::Header);
    }
    let jwk = header.get("jwk").ok_or(E::Key)?;
    let jwk = Members::parse(jwk.get()).map_err(|_| E::Key)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains(m)) {
        return Err(E::PrivateKey);
    }
    if !fit_to_verify(&jwk, alg) {
        return Err(E::Key);
    }
    let key = read_key(&jwk, alg)?;
    // 3. The claims.
    let claims_bytes = URL_SAFE_NO_PAD.decode(c64).map_err(|_| E::Malformed)?;
    let claims_text = std::str::from_utf8(&claims_bytes).map_err(|_| E::Malformed)?;
    let claims = Members::parse(claims_text).map_err(|_| E::Malformed)?;
    // A claim missing or not a string is a malformed proof
    // (`dpop_invalid_claims`); one naming another method, URI or token a
    // mismatch (found from outside: a missing `htm` was a mismatch).
    match claims.str("htm") {
        // RFC 9110 section 9.1: the method is case-sensitive.
        Ok(Some(m)) if m == expected.method => {}
        Ok(Some(_)) => return Err(E::Method),
        _ => return Err(E::Claims),
    }
    match claims.str("htu") {
        Ok(Some(u)) if super::htu_matches(&u, expected.htu) => {}
        Ok(Some(_)) => return Err(E::Uri),
        _ => return Err(E::Claims),
    }
    // A NumericDate, fractions included (RFC 9449 section 4.2 through RFC
    // 7519 section 2), as a token's (found from outside: `1733400000.5`
    // was refused).
    let iat = claims
        .get("iat")
        .and_then(crate::json::numeric_date)
        .ok_or(E::Claims)?;
    if iat.saturating_add(expected.max_age) < expected.now {
        return Err(E::Expired);
    }
    if iat > expected.now.saturating_add(expected.max_age) {
        return Err(E::Future);
    }
    let jti = match claims.str("jti") {
        Ok(Some(j)) if !j.is_empty() && j.len() <= MAX_JTI_BYTES => j.into_owned(),
        _ => return Err(E::Claims),
    };
    if let Some(token) = expected.access_token {
        match claims.str("ath") {
            Ok(Some(a)) if a == ath(token) => {}
            Ok(Some(_)) => return Err(E::Ath),
            _ => return Err(E::Claims),
        }
    }
    let nonce = match claims.str("nonce") {
        Ok(n) => n,
        Err(()) => return Err(E::Claims),
    };
    // RFC 9449 section 8: the nonce before the signature. Asking for one
    // is a step of the flow every client of a nonce-demanding server
    // takes (it is not counted as a failed authentication), so it is
    // answered without the signature's cost: a flood of proofs without a
    // nonce costs a parse each, as requests without a token do.
    if let Some(nonces) = expected.nonces {
        nonces
            .check(nonce.as_deref(), expected.now)
            .map_err(|e| match e {
                super::nonce::NonceError::Missing => E::NonceMissing,
                super::nonce::NonceError::Invalid => E::NonceInvalid,
            })?;
    }
    // 4. The signature over `header.claims`.
    let signature = URL_SAFE_NO_PAD.decode(s64).map_err(|_| E::Malformed)?;
    let signed_len = h64.len() + 1 + c64.len();
    let message = proof.as_bytes().get(..signed_len).ok_or(E::Malformed)?;
    if !verify(&key, alg, message, &signature) {
        return Err(E::Signature);
    }
    // 5. The thumbprint.
    Ok(Verified {
        jkt: thumbprint(&key),
        jti,
        iat,
    })
}

/// `dpop+jwt`, case-insensitively, with or without `application/`
/// (RFC 7515 section 4.1.9).
fn is_dpop_typ(typ: &str) -> bool {
    let prefix = "application/";
    let t = match (typ.get(..prefix.len()), typ.get(prefix.len()..)) {
        (Some(p), Some(rest)) if p.eq_ignore_ascii_case(prefix) => rest,
        _ => typ,
    };
    t.eq_ignore_ascii_case("dpop+jwt")
}

/// The base64url SHA-256 of an access token (RFC 9449 section 4.2, `ath`):
/// the digest the token cache finds the token by, so a connection repeating
/// its token does not hash it again (`token_cache::per_connection`).
pub(crate) fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(crate::verify::token_cache::token_key(access_token))
}

/// A base64url member of the JWK, decoded; the text is kept for the
/// thumbprint. Only the base64url alphabet (no padding) is accepted, so
/// the text needs no escaping in JSON.
fn b64_member(jwk: &Members<'_>, name: &str) -> Result<(Vec<u8>, String), ProofError> {
    let text = jwk
        .get(name)
        .and_then(|raw| as_str(raw).ok())
        .ok_or(ProofError::Key)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| ProofError::Key)?;
    Ok((bytes, text.into_owned()))
}

/// Whether the key's own limits (RFC 7517 sections 4.2 to 4.4), when it
/// states them, let it verify this proof: `alg` naming the header's
/// algorithm, `use` of `sig`, `key_ops` holding `verify` (found from
/// outside: a key saying `"alg":"ES384"` verified an ES256 proof; the
/// issuer's keys were held to theirs already).
fn fit_to_verify(jwk: &Members<'_>, alg: Algorithm) -> bool {
    let text = |name: &str| jwk.get(name).map(as_str);
    let alg_ok = match text("alg") {
        None => true,
        Some(Ok(named)) => named.parse::<Algorithm>().is_ok_and(|named| named == alg),
        Some(Err(_)) => false,
    };
    let use_ok = match text("use") {
        None => true,
        Some(Ok(named)) => named == "sig",
        Some(Err(_)) => false,
    };
    let ops_ok = jwk.get("key_ops").is_none_or(|raw| {
        serde_json::from_str::<Vec<String>>(raw.get())
            .is_ok_and(|ops| ops.iter().any(|op| op == "verify"))
    });
    alg_ok && use_ok && ops_ok
}

/// The key of a public JWK, refused unless it fits `alg`.
fn read_key(jwk: &Members<'_>, alg: Algorithm) -> Result<ProofKey, ProofError> {
    let kty = jwk
        .get("kty")
        .and_then(|raw| as_str(raw).ok())
        .ok_or(ProofError::Key)?;
    let crv = jwk.get("crv").and_then(|raw| as_str(raw).ok());
    match (&*kty, alg) {
        ("EC", Algorithm::ES256 | Algorithm::ES384) => {
            let (crv, size) = match (crv.as_deref(), alg) {
                (Some("P-256"), Algorithm::ES256) => ("P-256", 32),
                (Some("P-384"), Algorithm::ES384) => ("P-384", 48),
                _ => return Err(ProofError::Key),
            };
            let (x, x64) = b64_member(jwk, "x")?;
            let (y, y64) = b64_member(jwk, "y")?;
            if x.len() != size || y.len() != size {
                return Err(ProofError::Key);
            }
            // A point off its curve is no key (as key sets drop it), told
            // as such rather than as a bad signature (found from outside).
            let algorithm: &'static dyn sig::VerificationAlgorithm = if size == 32 {
                &sig::ECDSA_P256_SHA256_FIXED
            } else {
                &sig::ECDSA_P384_SHA384_FIXED
            };
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if sig::ParsedPublicKey::new(algorithm, point).is_err() {
                return Err(ProofError::Key);
            }
            Ok(ProofKey::Ec {
                crv,
                x,
                y,
                x64,
                y64,
            })
        }
        ("OKP", Algorithm::EdDSA) => {
            if crv.as_deref() != Some("Ed25519") {
                return Err(ProofError::Key);
            }
            let (x, x64) = b64_member(jwk, "x")?;
            // A point anyone can sign for binds nothing (found from
            // outside: a keyless signature passed with the identity point).
            if x.len() != 32 || crate::jwks::key::ed25519_point_is_weak(&x) {
                return Err(ProofError::Key);
            }
            Ok(ProofKey::Ed25519 { x, x64 })
        }
        (
            "RSA",
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            let (n, n64) = b64_member(jwk, "n")?;
            let (e, e64) = b64_member(jwk, "e")?;
            // RFC 7518 section 6.3.1: no leading zero octets; 2048 to 8192
            // bits counted in bits (a 2047-bit modulus has 256 octets), an
            // odd modulus and an odd exponent above 1 (found from outside:
            // such keys were told `dpop_invalid_signature`).
            let bits = n.first().map_or(0, |top| {
                (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
            });
            let above_one =
                e.iter().rev().skip(1).any(|&b| b != 0) || e.last().is_some_and(|&last| last > 1);
            let exponent_ok =
                e.len() <= 8 && e.last().is_some_and(|last| last & 1 == 1) && above_one;
            if n.first() == Some(&0)
                || !(2048..=8192).contains(&bits)
                || n.last().is_none_or(|last| last & 1 == 0)
                || !exponent_ok
            {
                return Err(ProofError::Key);
            }
            Ok(ProofKey::Rsa { n, e, n64, e64 })
        }
        _ => Err(ProofError::Key),
    }
}

fn verify(key: &ProofKey, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    match key {
        ProofKey::Ec { x, y, .. } => {
            let algorithm: &'static dyn sig::VerificationAlgorithm = match alg {
                Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
                _ => return false,
            };
            // SEC 1 uncompressed point: 0x04 || x || y.
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            UnparsedPublicKey::new(algorithm, point)
                .verify(message, signature)
                .is_ok()
        }
        ProofKey::Ed25519 { x, .. } => UnparsedPublicKey::new(&sig::ED25519, x)
            .verify(message, signature)
            .is_ok(),
        ProofKey::Rsa { n, e, .. } => {
            let params: &'static sig::RsaParameters = match alg {
                Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok()
        }
    }
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url): the required members
/// only, in lexicographic order, without whitespace. The member values are
/// base64url or fixed names, so they need no escaping.
fn thumbprint(key: &ProofKey) -> String {
    let json = match key {
        ProofKey::Ec { crv, x64, y64, .. } => {
            format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x64}","y":"{y64}"}}"#)
        }
        ProofKey::Ed25519 { x64, .. } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x64}"}}"#),
        ProofKey::Rsa { n64, e64, .. } => format!(r#"{{"e":"{e64}","kty":"RSA","n":"{n64}"}}"#),
    };
    URL_SAFE_NO_PAD.encode(digest(&SHA256, json.as_bytes()))
}

/// The RFC 7638 thumbprint of a public JWK given as JSON text, for any
/// algorithm its shape serves. `None` when it is not a usable public key.
/// (Used by the testing kit's proof signer and the tests.)
#[cfg(any(test, feature = "testing"))]
pub(crate) fn jwk_thumbprint(jwk: &str) -> Option<String> {
    let members = Members::parse(jwk).ok()?;
    if PRIVATE_MEMBERS.iter().any(|m| members.contains(m)) {
        return None;
    }
    let alg = match (
        members.str("kty").ok()??.as_ref(),
        members.str("crv").ok().flatten().as_deref(),
    ) {
        ("EC", Some("P-256")) => Algorithm::ES256,
        ("EC", Some("P-384")) => Algorithm::ES384,
        ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
        ("RSA", _) => Algorithm::RS256,
        _ => return None,
    };
    read_key(&members, alg).ok().map(|k| thumbprint(&k))
}
