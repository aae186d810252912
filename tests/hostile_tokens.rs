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

mod support;

use support::rig;

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
    // And HMAC cannot be configured in the first place.
    let err = mcp_oauth2::AuthConfig::builder()
        .issuer("https://as.example")
        .resource("https://rs.example/mcp")
        .algorithms([mcp_oauth2::Algorithm::HS256])
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "algorithms");
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
// Header
// ---------------------------------------------------------------------------

// RFC 7515 section 4.1.11: we understand no extension, so any `crit` is
// fatal; RFC 7797 section 3: `b64` changes what is signed; RFC 7519 section
// 5.2 / RFC 8725 section 2.8: `cty` announces a nested JWT. Also `enc` and
// `zip`, which only a JWE has.
#[tokio::test]
async fn crit_b64_cty_enc_zip_headers_are_refused_without_a_fetch() {
    let rig = Rig::start(|b| b).await;
    let cases: Vec<(&str, Vec<(&str, Value)>)> = vec![
        ("crit exp", vec![("crit", json!(["exp"]))]),
        ("crit empty", vec![("crit", json!([]))]),
        ("crit string", vec![("crit", json!("b64"))]),
        (
            "b64 false",
            vec![("b64", json!(false)), ("crit", json!(["b64"]))],
        ),
        ("b64 false alone", vec![("b64", json!(false))]),
        ("b64 true", vec![("b64", json!(true))]),
        ("cty JWT", vec![("cty", json!("JWT"))]),
        ("cty at+jwt", vec![("cty", json!("at+jwt"))]),
        ("enc", vec![("enc", json!("A256GCM"))]),
        ("zip", vec![("zip", json!("DEF"))]),
        ("kid number", vec![("kid", json!(5))]),
    ];
    for (name, headers) in cases {
        let mut builder = rig.token();
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        assert_invalid_token(&rig.send(&builder.sign()).await, "unsupported_header", name);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 7516 section 9: five parts is a JWE. Only signed access tokens are
// accepted (RFC 9068 section 2.1 allows encryption; we do not decrypt).
#[tokio::test]
async fn jwe_five_parts_is_refused_without_a_fetch() {
    let rig = Rig::start(|b| b).await;
    let header = b64(br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","typ":"at+jwt"}"#);
    for token in [
        format!("{header}.AAAA.BBBB.CCCC.DDDD"),
        format!("{header}....",),
        "a.b.c.d.e".to_owned(),
    ] {
        assert_invalid_token(&rig.send(&token).await, "encrypted_token", &token);
    }
    for token in ["a.b.c.d", "a.b", "abc", "a.b.c.d.e.f"] {
        assert_invalid_token(&rig.send(token).await, "malformed_token", token);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 9068 sections 2.1 and 4; RFC 8725 section 3.11 (explicit typing): under
// the default policy only `at+jwt` / `application/at+jwt` are access tokens;
// ID tokens and other JWTs are refused.
#[tokio::test]
async fn typ_other_than_at_jwt_is_refused_by_default() {
    let rig = Rig::start(|b| b).await;
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("application/jwt"),
        json!("id_token+jwt"),
        json!("dpop+jwt"),
        json!("logout+jwt"),
        json!("at+jwt; charset=utf-8"),
        json!("application/at+jwt+x"),
        json!(""),
        json!(["at+jwt"]),
        json!(1),
        Value::Null, // removes typ
    ] {
        let outcome = rig
            .send(&rig.token().header("typ", typ.clone()).sign())
            .await;
        assert_invalid_token(&outcome, "invalid_type", &typ.to_string());
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    // RFC 7515 section 4.1.9: the media type is case-insensitive and the
    // "application/" prefix is optional.
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        let outcome = rig
            .send(&rig.token().header("typ", json!(typ)).sign())
            .await;
        assert_eq!(outcome.status, 200, "{typ}: {outcome:?}");
    }
}

// RFC 7515 section 4 and RFC 7519 section 4: member names must be unique; a
// parser must reject duplicates or take the last one. We reject, in the
// header and in the claims, at any depth, whatever the escaping.
#[tokio::test]
async fn duplicate_members_in_header_or_claims_are_refused() {
    let rig = Rig::start(|b| b).await;
    let kid = rig.issuer.current_kid();
    let claims = format!("{}}}", claims_prefix(&rig));
    // Control: the raw signing path produces accepted tokens.
    let ok = rig
        .issuer
        .try_sign_raw(header_json(&rig).as_bytes(), claims.as_bytes())
        .unwrap();
    assert_eq!(rig.send(&ok).await.status, 200);
    let hits = rig.issuer.total_hits();

    let headers = [
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#),
        format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}","alg":"RS256"}}"#),
        format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}","typ":"at+jwt"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","\u006bid":"other"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","x":{{"a":1,"a":2}}}}"#),
    ];
    for header in &headers {
        let token = rig
            .issuer
            .try_sign_raw(header.as_bytes(), claims.as_bytes())
            .unwrap();
        assert_invalid_token(&rig.send(&token).await, "duplicate_member", header);
    }
    let prefix = claims_prefix(&rig);
    let claim_cases = [
        format!(r#"{prefix},"sub":"admin"}}"#),
        format!(r#"{prefix},"aud":"https://other.example/mcp"}}"#),
        format!(r#"{prefix},"iss":"https://evil.example"}}"#),
        format!(r#"{prefix},"exp":9999999999}}"#),
        format!(r#"{prefix},"\u0073ub":"admin"}}"#),
        format!(r#"{prefix},"scope":"a","scope":"admin"}}"#),
        format!(r#"{prefix},"ext":{{"role":"user","role":"admin"}}}}"#),
        format!(r#"{prefix},"list":[{{"a":1,"a":1}}]}}"#),
    ];
    for claims in &claim_cases {
        let token = rig
            .issuer
            .try_sign_raw(header_json(&rig).as_bytes(), claims.as_bytes())
            .unwrap();
        assert_invalid_token(&rig.send(&token).await, "duplicate_member", claims);
    }
    assert_eq!(rig.issuer.total_hits(), hits, "no fetch for duplicates");
}

// RFC 7515 section 5.2 steps 2-4 and RFC 7519 section 7.2: header and
// claims must be base64url-encoded JSON objects.
#[tokio::test]
async fn non_object_or_broken_json_is_malformed() {
    let rig = Rig::start(|b| b).await;
    let header = header_json(&rig);
    let claims = format!("{}}}", claims_prefix(&rig));
    let cases: [(&str, &str); 6] = [
        (&header, "[]"),
        (&header, "\"string\""),
        (&header, "{\"sub\":"),
        ("[]", &claims),
        ("{\"alg\":\"RS256\"", &claims),
        (&header, "{\"exp\":1e999}"),
    ];
    for (h, c) in cases {
        let token = rig.issuer.try_sign_raw(h.as_bytes(), c.as_bytes()).unwrap();
        assert_invalid_token(
            &rig.send(&token).await,
            "malformed_token",
            &format!("{h} {c}"),
        );
    }
    // Not UTF-8 at all.
    let token = rig
        .issuer
        .try_sign_raw(header.as_bytes(), b"{\"sub\":\"\xff\"}")
        .unwrap();
    assert_invalid_token(&rig.send(&token).await, "malformed_token", "latin-1");
    // RFC 8259 section 8.2: an escaped lone surrogate is no character, in a
    // claim the verifier reads or in one it only keeps (a complete, signed,
    // otherwise valid token each time).
    let prefix = claims_prefix(&rig);
    for extra in [
        r#","tenant":"\ud800""#,
        r#","tenant":["a","\udc00"]"#,
        r#","ext":{"\ud800x":1}"#,
        r#","n":1e999"#,
    ] {
        let claims = format!("{prefix}{extra}}}");
        let token = rig
            .issuer
            .try_sign_raw(header.as_bytes(), claims.as_bytes())
            .unwrap();
        assert_invalid_token(&rig.send(&token).await, "malformed_token", extra);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    // A valid surrogate pair is a character like any other.
    let claims = format!(r#"{prefix},"tenant":"\ud83d\ude00"}}"#);
    let token = rig
        .issuer
        .try_sign_raw(header.as_bytes(), claims.as_bytes())
        .unwrap();
    assert_eq!(rig.send(&token).await.status, 200);
}

// ---------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------

// RFC 7519 section 4.1.4; RFC 9068 section 4: `exp` is required, numeric,
// in the future; and (our policy) not absurdly far: a configurable maximum
// lifetime.
#[tokio::test]
async fn exp_missing_past_non_numeric_or_absurd_is_refused() {
    let rig = Rig::start(|b| b).await;
    let t = now();
    let cases: [(&str, Value, &str); 9] = [
        ("missing", Value::Null, "invalid_claims"),
        ("past", json!(t - 3600), "token_expired"),
        ("past beyond leeway", json!(t - 61), "token_expired"),
        ("zero", json!(0), "token_expired"),
        ("string", json!((t + 300).to_string()), "invalid_claims"),
        ("negative", json!(-1), "invalid_claims"),
        ("boolean", json!(true), "invalid_claims"),
        (
            "ten years",
            json!(t + 10 * 365 * 86_400),
            "token_lifetime_too_long",
        ),
        (
            "year 33658",
            json!(999_999_999_999i64),
            "token_lifetime_too_long",
        ),
    ];
    for (name, exp, reason) in cases {
        let outcome = rig.send(&rig.token().claim("exp", exp).sign()).await;
        assert_invalid_token(&outcome, reason, name);
    }
    // exp - iat beyond the maximum, even if exp itself is near.
    let outcome = rig
        .send(
            &rig.token()
                .issued_at(t - 3 * 86_400)
                .expires_at(t + 60)
                .sign(),
        )
        .await;
    assert_invalid_token(&outcome, "token_lifetime_too_long", "old iat");
    // `exp: null` (only expressible as raw JSON).
    let claims = format!(
        r#"{{"iss":"{}","aud":"{}","sub":"a","exp":null}}"#,
        rig.issuer.issuer(),
        rig.resource
    );
    let token = rig
        .issuer
        .try_sign_raw(header_json(&rig).as_bytes(), claims.as_bytes())
        .unwrap();
    assert_invalid_token(&rig.send(&token).await, "invalid_claims", "null");
    assert_eq!(rig.issuer.total_hits(), 0);
    // Within the leeway (default 60 s) an expired-by-a-little token passes.
    let outcome = rig
        .send(&rig.token().claim("exp", json!(t - 20)).sign())
        .await;
    assert_eq!(outcome.status, 200, "{outcome:?}");
}

// Our policy (issue 4): the maximum lifetime is configurable.
#[tokio::test]
async fn maximum_token_lifetime_is_configurable() {
    let rig = Rig::start(|b| b.max_token_lifetime(Duration::from_secs(3600))).await;
    let long = rig.token().expires_in(Duration::from_secs(2 * 3600)).sign();
    assert_invalid_token(&rig.send(&long).await, "token_lifetime_too_long", "2 h");
    let ok = rig.token().expires_in(Duration::from_secs(50 * 60)).sign();
    assert_eq!(rig.send(&ok).await.status, 200);
    // The default (24 h) accepts a 2-hour token and refuses a 25-hour one.
    let rig = Rig::start(|b| b).await;
    let two_hours = rig.token().expires_in(Duration::from_secs(2 * 3600)).sign();
    assert_eq!(rig.send(&two_hours).await.status, 200);
    let day_plus = rig
        .token()
        .expires_in(Duration::from_secs(25 * 3600))
        .sign();
    assert_invalid_token(
        &rig.send(&day_plus).await,
        "token_lifetime_too_long",
        "25 h",
    );
    assert!(
        mcp_oauth2::AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://rs.example/mcp")
            .max_token_lifetime(Duration::ZERO)
            .build()
            .is_err()
    );
}

// RFC 7519 sections 4.1.5 and 4.1.6: `nbf` and `iat` in the future beyond
// the leeway are refused; within it they pass.
#[tokio::test]
async fn nbf_or_iat_in_the_future_beyond_leeway_is_refused() {
    let rig = Rig::start(|b| b.leeway(Duration::from_secs(30))).await;
    let t = now();
    let cases = [
        ("nbf +10 min", rig.token().not_before(t + 600).sign()),
        ("nbf +31 s", rig.token().not_before(t + 45).sign()),
        (
            "iat +10 min",
            rig.token().issued_at(t + 600).expires_at(t + 900).sign(),
        ),
    ];
    for (name, token) in cases {
        assert_invalid_token(&rig.send(&token).await, "token_not_yet_valid", name);
    }
    for (name, value) in [("nbf", json!("soon")), ("iat", json!([1]))] {
        let token = rig.token().claim(name, value).sign();
        assert_invalid_token(&rig.send(&token).await, "invalid_claims", name);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    let ok = rig.token().not_before(t + 10).sign();
    assert_eq!(rig.send(&ok).await.status, 200);
}

// RFC 8725 section 3.8; RFC 9068 section 4; RFC 8414 section 3.3: `iss`
// equals a configured issuer exactly. An unknown issuer never triggers a
// fetch (there is no key set to fetch for it).
#[tokio::test]
async fn iss_missing_array_other_case_or_trailing_slash_is_refused() {
    let rig = Rig::start(|b| b).await;
    let ours = rig.issuer.issuer().to_owned();
    let cases = [
        ("missing", Value::Null),
        ("array", json!([ours.clone()])),
        ("upper case", json!(ours.to_uppercase())),
        ("scheme case", json!(ours.replacen("http", "HTTP", 1))),
        ("trailing slash", json!(format!("{ours}/"))),
        ("path", json!(format!("{ours}/tenant"))),
        ("prefix", json!(&ours[..ours.len() - 1])),
        ("other", json!("https://evil.example")),
        ("number", json!(1)),
        ("empty", json!("")),
    ];
    for (name, iss) in cases {
        let outcome = rig.send(&rig.token().claim("iss", iss).sign()).await;
        assert_invalid_token(&outcome, "invalid_issuer", name);
    }
    assert_eq!(
        rig.issuer.total_hits(),
        0,
        "an unknown iss fetched something"
    );
}

// RFC 8707 section 2; RFC 9068 section 4; RFC 8725 section 3.9; MCP "Token
// Audience Binding": `aud` contains this resource exactly; never by prefix,
// suffix, parent or path case (MCP "Canonical Server URI": scheme and host
// case are insignificant).
#[tokio::test]
async fn aud_edge_cases_are_refused() {
    let rig = Rig::start(|b| b).await;
    let r = rig.resource.clone();
    let origin = r.trim_end_matches("/mcp").to_owned();
    let cases = [
        ("missing", Value::Null),
        ("empty string", json!("")),
        ("empty array", json!([])),
        ("number", json!(1)),
        ("object", json!({ "aud": r.clone() })),
        ("array of numbers", json!([1, 2])),
        ("array with null", json!([null])),
        ("ours plus a number", json!([r.clone(), 5])),
        ("ours nested", json!([[r.clone()]])),
        ("parent", json!(origin.clone())),
        ("parent slash", json!(format!("{origin}/"))),
        ("trailing slash", json!(format!("{r}/"))),
        ("prefix", json!(&r[..r.len() - 1])),
        ("longer name", json!(format!("{r}x"))),
        ("sub path", json!(format!("{r}/tools"))),
        ("query", json!(format!("{r}?x=1"))),
        ("fragment", json!(format!("{r}#x"))),
        ("path case", json!(r.replace("/mcp", "/MCP"))),
        ("other port", json!("http://127.0.0.1:1/mcp")),
        ("another server", json!("https://other.example/mcp")),
        ("space", json!(format!(" {r}"))),
    ];
    for (name, aud) in cases {
        let outcome = rig.send(&rig.token().claim("aud", aud).sign()).await;
        assert_invalid_token(&outcome, "invalid_audience", name);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    // Ours, alone or among others, is accepted.
    for aud in [
        json!(r.clone()),
        json!(["https://other.example/mcp", r.clone()]),
        json!(r.replacen("http", "HTTP", 1)),
    ] {
        let outcome = rig
            .send(&rig.token().claim("aud", aud.clone()).sign())
            .await;
        assert_eq!(outcome.status, 200, "{aud}: {outcome:?}");
    }
}

// RFC 9068 section 2.2: `sub` is required (a non-empty string).
#[tokio::test]
async fn sub_missing_or_not_a_string_is_refused() {
    let rig = Rig::start(|b| b).await;
    for (name, sub) in [
        ("missing", Value::Null),
        ("empty", json!("")),
        ("number", json!(42)),
        ("array", json!(["alice"])),
    ] {
        let outcome = rig.send(&rig.token().claim("sub", sub).sign()).await;
        assert_invalid_token(&outcome, "invalid_claims", name);
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 9449 section 7.2 / RFC 8705 section 3 / RFC 7800 section 3: a token
// bound to a key (`cnf`) is useless without the proof of possession;
// presented as a plain Bearer token it is refused.
#[tokio::test]
async fn a_key_bound_token_presented_as_bearer_is_refused() {
    let rig = Rig::start(|b| b).await;
    for cnf in [
        json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }),
        json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        json!({ "jwk": { "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" } }),
        json!({}),
        json!("garbage"),
    ] {
        let outcome = rig
            .send(&rig.token().claim("cnf", cnf.clone()).sign())
            .await;
        assert_invalid_token(&outcome, "sender_constrained_token", &cnf.to_string());
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// ---------------------------------------------------------------------------
// Size and grammar of the request
// ---------------------------------------------------------------------------

// RFC 6750 section 2.1 and our cap (8 KiB by default): an oversized token is
// refused before anything looks at it; a header far over the server's own
// limit never reaches us (431) or is cut off, never 200.
#[tokio::test]
async fn an_oversized_authorization_header_is_refused_cheaply() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    let padded = format!("{valid}{}", "A".repeat(9 * 1024));
    assert_invalid_token(&rig.send(&padded).await, "token_too_large", "9 KiB");
    assert_invalid_token(
        &rig.send(&"A".repeat(8 * 1024 + 1)).await,
        "token_too_large",
        "8 KiB + 1",
    );
    let huge = format!(
        "GET /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        rig.authority(),
        "A".repeat(1024 * 1024)
    );
    let status = tokio::task::spawn_blocking({
        let rig_request = huge.into_bytes();
        let authority = rig.authority();
        move || raw_status(&authority, &rig_request)
    })
    .await
    .unwrap();
    assert!(
        matches!(status, None | Some(400 | 401 | 431)),
        "1 MiB header: {status:?}"
    );
    assert_eq!(rig.issuer.total_hits(), 0);
}

fn raw_status(authority: &str, request: &[u8]) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let _ = stream.write_all(request);
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

// RFC 6750 sections 2.1 and 3.1: several Authorization headers or two
// tokens make a malformed request: 400 `invalid_request`.
#[tokio::test]
async fn several_authorization_headers_or_two_tokens_are_invalid_request() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    let two_headers = rig
        .http
        .get(&rig.resource)
        .header("authorization", format!("Bearer {valid}"))
        .header("authorization", format!("Bearer {valid}"));
    let outcome = rig.send_request(two_headers).await;
    assert_eq!(outcome.status, 400, "{outcome:?}");
    assert_eq!(outcome.error.as_deref(), Some("invalid_request"));
    assert_eq!(
        outcome.reason.as_deref(),
        Some("multiple_authorization_headers")
    );
    for value in [
        format!("Bearer {valid} {valid}"),
        format!("Bearer {valid}, Bearer {valid}"),
        format!("Bearer {valid},{valid}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer\t{valid}"),
        format!("Bearer \"{valid}\""),
    ] {
        let outcome = rig
            .send_request(rig.http.get(&rig.resource).header("authorization", value))
            .await;
        assert_eq!(outcome.status, 400, "{outcome:?}");
        assert_eq!(outcome.error.as_deref(), Some("invalid_request"));
        assert_eq!(
            outcome.reason.as_deref(),
            Some("malformed_authorization_header")
        );
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 6750 section 3.1; RFC 9728 section 5.1: a request with another scheme
// carries no Bearer credentials: 401 with a Bearer challenge, no error code.
#[tokio::test]
async fn other_schemes_get_a_plain_bearer_challenge() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("DPoP {valid}"),
        "Negotiate YIIB".to_owned(),
        format!("MAC {valid}"),
        "Digest username=\"x\"".to_owned(),
    ] {
        let outcome = rig
            .send_request(rig.http.get(&rig.resource).header("authorization", &value))
            .await;
        assert_eq!(outcome.status, 401, "{value}: {outcome:?}");
        assert!(outcome.challenged, "{value}");
        assert_eq!(outcome.error, None, "{value}");
        assert_eq!(outcome.reason.as_deref(), Some("missing_token"), "{value}");
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// RFC 6750 section 2.1 (b64token is ASCII) and RFC 9110 section 5.5: non-ASCII
// and control characters in the header are a malformed request (400), from
// us or from the HTTP parser; never accepted.
#[tokio::test]
async fn non_ascii_and_control_characters_are_refused() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    for value in [
        format!("Bearer {valid}\u{e9}").into_bytes(),
        format!("Bearer \u{2024}{valid}").into_bytes(),
        [b"Bearer ".as_ref(), valid.as_bytes(), b"\xff"].concat(),
    ] {
        let header = reqwest::header::HeaderValue::from_bytes(&value).unwrap();
        let outcome = rig
            .send_request(rig.http.get(&rig.resource).header("authorization", header))
            .await;
        assert_eq!(outcome.status, 400, "{outcome:?}");
        assert_eq!(
            outcome.reason.as_deref(),
            Some("malformed_authorization_header")
        );
    }
    // Control characters no client library will send: raw bytes.
    for control in [b"\x01".as_ref(), b"\x00", b"\x1b[31m", b"\x7f", b"\r"] {
        let request = [
            format!(
                "GET /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer ",
                rig.authority()
            )
            .as_bytes(),
            valid.as_bytes(),
            control,
            b"\r\nConnection: close\r\n\r\n",
        ]
        .concat();
        let authority = rig.authority();
        let status = tokio::task::spawn_blocking(move || raw_status(&authority, &request))
            .await
            .unwrap();
        assert!(
            matches!(status, None | Some(400)),
            "{control:?}: {status:?}"
        );
    }
    assert_eq!(rig.issuer.total_hits(), 0);
    // The server is still up and accepts a good token.
    assert_eq!(rig.send(&valid).await.status, 200);
}

// RFC 6750 sections 2.2 and 2.3 are not supported (OAuth 2.1 section 5.2;
// MCP "Access Token Usage": tokens in the query string MUST NOT be accepted):
// a valid token in the query or a form body is never read.
#[tokio::test]
async fn tokens_in_the_query_string_or_form_body_are_never_read() {
    let rig = Rig::start(|b| b).await;
    let valid = rig.token().sign();
    let query = rig
        .http
        .get(format!("{}?access_token={valid}", rig.resource));
    let form = rig
        .http
        .post(&rig.resource)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={valid}"));
    let json_body = rig
        .http
        .post(&rig.resource)
        .header("content-type", "application/json")
        .body(format!("{{\"access_token\":\"{valid}\"}}"));
    for request in [query, form, json_body] {
        let outcome = rig.send_request(request).await;
        assert_eq!(outcome.status, 401, "{outcome:?}");
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.reason.as_deref(), Some("missing_token"));
    }
    assert_eq!(rig.issuer.total_hits(), 0);
}

// Issue 4, "cheap checks first": size, structure, header policy, issuer and
// time claims are refused before any signature check or network fetch.
#[tokio::test]
async fn cheap_checks_come_before_any_fetch() {
    let rig = Rig::start(|b| b).await;
    let t = now();
    let hostile = vec![
        "A".repeat(9000),
        "not-a-jwt".to_owned(),
        "a.b.c.d.e".to_owned(),
        rig.token().header("alg", json!("none")).sign(),
        rig.token().header("crit", json!(["x"])).sign(),
        rig.token().header("typ", json!("JWT")).sign(),
        rig.token()
            .claim("iss", json!("https://evil.example"))
            .sign(),
        rig.token().expires_at(t - 3600).sign(),
        rig.token().not_before(t + 3600).sign(),
        rig.token()
            .claim("aud", json!("https://other.example"))
            .sign(),
        rig.token().claim("sub", Value::Null).sign(),
        rig.token().claim("cnf", json!({"jkt": "x"})).sign(),
        rig.token().expires_at(t + 400 * 86_400).sign(),
        with_signature(&rig.token().sign(), &[1, 2, 3]),
    ];
    for token in &hostile {
        let outcome = rig.send(token).await;
        assert_eq!(outcome.status, 401, "{outcome:?}");
    }
    assert_eq!(rig.issuer.total_hits(), 0, "a cheap rejection fetched keys");
    // The counter works: a good token costs exactly one fetch.
    assert_eq!(rig.send(&rig.token().sign()).await.status, 200);
    assert_eq!(rig.issuer.jwks_hits(), 1);
}
