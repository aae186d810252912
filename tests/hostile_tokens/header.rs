//! Hostile JOSE headers.

use super::*;

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

// Found from outside: an issuer's key set holding an Ed25519 point of
// small order (the identity here, or p + 1, its spelling RFC 8032 section
// 5.1.3 refuses) was loaded, and aws-lc-rs's cofactorless check takes
// `R` = the identity, `S` = 0 for any message: anyone could mint a token
// for any subject and scope. Such a key is no key: the token is refused
// as signed by an unknown key, and a real Ed25519 key beside it still
// verifies (the control).
#[tokio::test]
async fn ed25519_keys_anyone_can_sign_for_are_no_keys() {
    let rig = Rig::start(|b| b).await;
    let real = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    use aws_lc_rs::signature::KeyPair as _;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // p + 1 = 2^255 - 18, little-endian.
    let mut p_plus_one = [0xffu8; 32];
    p_plus_one[0] = 0xee;
    p_plus_one[31] = 0x7f;
    rig.issuer.set_jwks_document(Some(json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "identity", "x": b64(&identity)},
        {"kty": "OKP", "crv": "Ed25519", "kid": "p-plus-one", "x": b64(&p_plus_one)},
        {"kty": "OKP", "crv": "Ed25519", "kid": "real", "x": b64(real.public_key().as_ref())},
    ]})));
    let claims = format!(r#"{},"scope":"admin"}}"#, claims_prefix(&rig));
    let signed = |kid: &str| {
        let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#);
        format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()))
    };
    // The control: a real key's signature is accepted.
    let input = signed("real");
    let token = format!("{input}.{}", b64(real.sign(input.as_bytes()).as_ref()));
    assert_eq!(rig.send(&token).await.status, 200);
    for kid in ["identity", "p-plus-one"] {
        let mut keyless = [0u8; 64];
        keyless[0] = 1; // R: the identity; S: 0.
        let token = format!("{}.{}", signed(kid), b64(&keyless));
        assert_invalid_token(&rig.send(&token).await, "unknown_key", kid);
    }
}
