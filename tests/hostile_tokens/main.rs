//! Hostile tokens and requests (issue 4): each is answered 401
//! `invalid_token` (or 400 `invalid_request` for a broken request), never 200
//! and never a panic, and never costs a key-set fetch it did not need. The
//! key server's hit counters prove the last point: the verifier is never
//! prefetched, so any fetch shows up.
//!
//! Every test names the rule it checks.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

#[path = "../support/mod.rs"]
mod support;

use support::rig;

mod claims;
mod header;
mod request;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcp_oauth2::testing::{SigningAlg, TestIssuer};
use rig::{Rig, assert_invalid_token, now};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Replaces a token's signature.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').expect("three parts");
    format!("{input}.{}", b64(signature))
}

/// The claims a valid token for `rig` carries, as JSON text without the
/// closing brace (so a test can append members).
fn claims_prefix(rig: &Rig) -> String {
    format!(
        r#"{{"iss":"{}","aud":"{}","sub":"alice","iat":{},"exp":{}"#,
        rig.issuer.issuer(),
        rig.resource,
        now(),
        now() + 300
    )
}

fn header_json(rig: &Rig) -> String {
    format!(
        r#"{{"alg":"RS256","typ":"at+jwt","kid":"{}"}}"#,
        rig.issuer.current_kid()
    )
}

/// A control: the rig accepts a good token (so refusals below mean something).
#[tokio::test]
async fn a_valid_token_is_accepted() {
    let rig = Rig::start(|b| b).await;
    let outcome = rig.send(&rig.token().subject("alice").sign()).await;
    assert_eq!(outcome.status, 200, "{outcome:?}");
    assert_eq!(outcome.body, "hello alice");
    assert_eq!(rig.issuer.jwks_hits(), 1);
}

// ---------------------------------------------------------------------------
// Algorithms and keys
// ---------------------------------------------------------------------------

// RFC 8725 sections 2.1 and 3.1; RFC 7518 section 3.6: `none` is never
// accepted, in any spelling, signed or not.
#[tokio::test]
async fn alg_none_in_any_case_is_refused_without_a_fetch() {
    let rig = Rig::start(|b| b).await;
    for alg in ["none", "None", "NONE", "nOnE", " none", "none "] {
        let unsigned = rig.token().header("alg", json!(alg)).unsigned().unwrap();
        for token in [
            format!("{unsigned}."),
            rig.token().header("alg", json!(alg)).sign(),
        ] {
            let outcome = rig.send(&token).await;
            assert_invalid_token(&outcome, "disallowed_algorithm", alg);
        }
    }
    // A token without `alg` at all is malformed.
    let outcome = rig
        .send(&rig.token().header("alg", Value::Null).sign())
        .await;
    assert_invalid_token(&outcome, "malformed_token", "no alg");
    assert_eq!(rig.issuer.total_hits(), 0);
}

fn hmac(alg: &str, secret: &[u8], message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let algorithm = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    hmac::sign(&hmac::Key::new(algorithm, secret), message)
        .as_ref()
        .to_vec()
}

// RFC 8725 sections 2.1 and 3.1 (key confusion): a token MACed with the
// issuer's public key, as PEM or as JWK text, is refused before any key is
// looked up; HMAC is not on the allowlist and cannot be put there.
#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let rig = Rig::start(|b| b).await;
    let pem = rig.issuer.public_key_pem().unwrap();
    let jwk = rig.issuer.public_jwk().unwrap().to_string();
    let n = rig.issuer.public_jwk().unwrap()["n"]
        .as_str()
        .unwrap()
        .to_owned();
    for alg in ["HS256", "HS384", "HS512"] {
        for secret in [
            pem.as_bytes(),
            pem.trim_end().as_bytes(),
            jwk.as_bytes(),
            n.as_bytes(),
        ] {
            let input = rig.token().header("alg", json!(alg)).unsigned().unwrap();
            let token = format!("{input}.{}", b64(&hmac(alg, secret, input.as_bytes())));
            let outcome = rig.send(&token).await;
            assert_invalid_token(&outcome, "disallowed_algorithm", alg);
        }
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    // And HMAC cannot be configured in the first place: `Algorithm` has no
    // HMAC variant, and its name is refused.
    let err = "HS256".parse::<mcp_oauth2::Algorithm>().unwrap_err();
    assert_eq!(err.field(), "algorithms");
    assert!(err.message().contains("symmetric"), "{err}");
}

// RFC 8725 section 3.1: the algorithm must fit the key (`kty`, `crv`, the
// JWK's own `alg`). A mismatch with a known `kid` is `unknown_key` and costs
// no refetch: the set is not out of date, the token is lying.
#[tokio::test]
async fn alg_that_does_not_fit_the_key_is_refused_without_a_refetch() {
    // RSA key published with "alg": "RS256".
    let rig = Rig::start(|b| b).await;
    let cases: [(&str, usize); 5] = [
        ("PS256", 256), // same kty, other alg than the JWK pins
        ("RS384", 256),
        ("ES256", 64), // other kty
        ("ES384", 96),
        ("EdDSA", 64),
    ];
    for (alg, len) in cases {
        let token = rig.token().header("alg", json!(alg)).sign();
        let token = with_signature(&token, &vec![0x11; len]);
        let outcome = rig.send(&token).await;
        assert_invalid_token(&outcome, "unknown_key", alg);
    }
    assert_eq!(rig.issuer.jwks_hits(), 1, "one needed fetch, no refetch");

    // P-256 key: ES384 (other curve), RS256 and EdDSA (other kty).
    let issuer = TestIssuer::start_with_alg(SigningAlg::Es256).await.unwrap();
    let rig = Rig::with_issuer(issuer, |b| b).await;
    for (alg, len) in [("ES384", 96), ("RS256", 256), ("EdDSA", 64)] {
        let token = rig.token().header("alg", json!(alg)).sign();
        let token = with_signature(&token, &vec![0x11; len]);
        let outcome = rig.send(&token).await;
        assert_invalid_token(&outcome, "unknown_key", alg);
    }
    assert_eq!(rig.issuer.jwks_hits(), 1);
}

// CVE-2022-21449 ("psychic signatures"); RFC 8725 section 3.3; RFC 7518
// section 3.4: r = s = 0 (and r = s = n) never verify.
#[tokio::test]
async fn psychic_ecdsa_signatures_are_refused() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::Es256).await.unwrap();
    let rig = Rig::with_issuer(issuer, |b| b).await;
    let n = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let mut r_s_n = n.clone();
    r_s_n.extend_from_slice(&n);
    let mut one_zero = vec![0u8; 32];
    one_zero[31] = 1;
    one_zero.extend_from_slice(&[0u8; 32]);
    for (name, signature) in [
        ("r=s=0", vec![0u8; 64]),
        ("r=s=n", r_s_n),
        ("r=1,s=0", one_zero),
    ] {
        let token = with_signature(&rig.token().sign(), &signature);
        let outcome = rig.send(&token).await;
        assert_invalid_token(&outcome, "invalid_signature", name);
    }
    // The genuine signature still works (the key was usable all along).
    assert_eq!(rig.send(&rig.token().sign()).await.status, 200);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// RFC 7515 section 5.2 (validation); RFC 8725 section 3.3: empty and
// truncated signatures are refused, by length before any fetch when the
// length cannot be right for the algorithm.
#[tokio::test]
async fn empty_or_truncated_signatures_are_refused() {
    for alg in [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa] {
        let issuer = TestIssuer::start_with_alg(alg).await.unwrap();
        let rig = Rig::with_issuer(issuer, |b| b).await;
        let token = rig.token().sign();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        for (name, forged) in [
            ("empty", format!("{input}.")),
            (
                "one byte short",
                with_signature(&token, &sig[..sig.len() - 1]),
            ),
            ("half", with_signature(&token, &sig[..sig.len() / 2])),
        ] {
            let outcome = rig.send(&forged).await;
            assert_invalid_token(&outcome, "invalid_signature", &format!("{alg} {name}"));
        }
        // Base64 that is not canonical base64url is malformed.
        for (name, forged) in [
            ("padded", format!("{token}=")),
            (
                "std alphabet",
                format!("{input}.{}", STANDARD.encode(&sig).replace('=', "")),
            ),
            ("truncated text", token[..token.len() - 1].to_owned()),
        ] {
            if forged == token {
                continue;
            }
            let outcome = rig.send(&forged).await;
            assert_eq!(outcome.status, 401, "{alg} {name}: {outcome:?}");
            assert_eq!(
                outcome.error.as_deref(),
                Some("invalid_token"),
                "{alg} {name}"
            );
        }
        assert_eq!(
            rig.issuer.total_hits(),
            0,
            "{alg}: no fetch for a broken signature"
        );
        // A plausible-length signature of other bytes needs the key, then fails.
        let mut flipped = sig.clone();
        flipped[0] ^= 0x01;
        let outcome = rig.send(&with_signature(&token, &flipped)).await;
        assert_invalid_token(&outcome, "invalid_signature", &format!("{alg} flipped"));
        let long = with_signature(&token, &[&sig[..], &[0]].concat());
        assert_invalid_token(
            &rig.send(&long).await,
            "invalid_signature",
            &format!("{alg} long"),
        );
        assert_eq!(rig.issuer.jwks_hits(), 1);
    }
}

/// A self-signed certificate in base64 (standard, as `x5c` wants).
fn some_certificate() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["attacker.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    STANDARD.encode(cert.der())
}

// RFC 8725 section 3.10 (do not trust received claims: `jku`/`x5u` are SSRF)
// and section 3.1: keys offered by the token itself through `jku`, `x5u`,
// `jwk` or `x5c` are ignored and never fetched; only the configured
// issuer's key set counts. The attacker's server proves it was never asked.
#[tokio::test]
async fn attacker_keys_in_jku_x5u_jwk_x5c_are_ignored_and_never_fetched() {
    let rig = Rig::start(|b| b).await;
    let attacker = TestIssuer::start().await.unwrap();
    let forge = |header: (&str, Value)| {
        attacker
            .token()
            .claim("iss", json!(rig.issuer.issuer()))
            .audience(&rig.resource)
            .header(header.0, header.1)
            .sign()
    };
    let cases = [
        ("jku", json!(attacker.jwks_uri())),
        ("x5u", json!(format!("{}/cert.pem", attacker.issuer()))),
        ("jwk", attacker.public_jwk().unwrap()),
        ("x5c", json!([some_certificate()])),
    ];
    for (name, value) in cases {
        let outcome = rig.send(&forge((name, value))).await;
        assert_invalid_token(&outcome, "invalid_signature", name);
    }
    // All four at once, without a kid (so only the embedded key could match).
    let token = attacker
        .token()
        .claim("iss", json!(rig.issuer.issuer()))
        .audience(&rig.resource)
        .header("kid", Value::Null)
        .header("jku", json!(attacker.jwks_uri()))
        .header("x5u", json!(format!("{}/cert.pem", attacker.issuer())))
        .header("jwk", attacker.public_jwk().unwrap())
        .header("x5c", json!([some_certificate()]))
        .sign();
    assert_invalid_token(&rig.send(&token).await, "invalid_signature", "all");
    assert_eq!(
        attacker.total_hits(),
        0,
        "the attacker's server was contacted"
    );
    assert_eq!(rig.issuer.jwks_hits(), 1, "only the needed fetch");
}

// RFC 8725 section 3.10 and RFC 7515 section 4.1.4 (`kid` is a hint): an
// attacker's key published under our `kid` (both issuers name their first
// key "key-1") does not verify for our issuer.
#[tokio::test]
async fn an_attacker_key_reusing_our_kid_is_refused() {
    let rig = Rig::start(|b| b).await;
    let attacker = TestIssuer::start().await.unwrap();
    assert_eq!(attacker.current_kid(), rig.issuer.current_kid());
    let token = attacker
        .token()
        .claim("iss", json!(rig.issuer.issuer()))
        .audience(&rig.resource)
        .sign();
    assert_invalid_token(&rig.send(&token).await, "invalid_signature", "same kid");
    // Injection-looking kids are just unknown kids: at most one refetch per
    // cooldown.
    for kid in ["../../jwks", "' OR 1=1 --", "key-1\u{0}", "key-1 "] {
        let token = attacker
            .token()
            .claim("iss", json!(rig.issuer.issuer()))
            .audience(&rig.resource)
            .header("kid", json!(kid))
            .sign();
        assert_invalid_token(&rig.send(&token).await, "unknown_key", kid);
    }
    assert_eq!(attacker.total_hits(), 0);
    assert_eq!(
        rig.issuer.jwks_hits(),
        2,
        "the needed fetch and one unknown-kid refetch"
    );
}

// ---------------------------------------------------------------------------
