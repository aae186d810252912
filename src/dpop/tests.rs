use super::proof::{Expected, ProofError, ath, check, jwk_thumbprint};
use super::sign::SigningKey;
use super::*;

/// `spec-fixtures/rfc9449-dpop.json`: the RFC 9449 and RFC 7638 examples,
/// each with its section.
fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("../../spec-fixtures/rfc9449-dpop.json")).unwrap()
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap().to_owned()
}

fn all_algs() -> Vec<Algorithm> {
    crate::config::DpopPolicy::default().algorithms
}

fn expected<'a>(method: &'a str, htu: &'a url::Url, token: &'a str, now: u64) -> Expected<'a> {
    Expected {
        method,
        htu,
        access_token: Some(token),
        now,
        max_age: 300,
        nonces: None,
    }
}

// RFC 9449 section 7.1: the published resource request verifies, and its
// key's thumbprint is the `cnf.jkt` of section 6.1.
#[test]
fn rfc9449_resource_proof_example() {
    let f = fixture();
    let r = &f["resource_request"];
    let (resource_proof, access_token) = (&*text(&r["proof"]), &*text(&r["access_token"]));
    let jkt = &*text(&f["proof_key"]["jkt"]);
    let htu = url::Url::parse("https://resource.example.org/protectedresource").unwrap();
    let e = expected("GET", &htu, access_token, 1_562_262_618);
    let v = check(resource_proof, &all_algs(), 4096, &e).unwrap();
    assert_eq!(v.jkt, jkt);
    assert_eq!(v.jti, "e1j3V_bKic8-LAEB");
    assert_eq!(v.iat, 1_562_262_618);
    // RFC 9449 section 7.1: `ath` of the figure 12 token.
    assert_eq!(ath(access_token), text(&r["ath"]));
    // Another token, method, URI or time: refused with the precise reason.
    assert_eq!(
        check(
            resource_proof,
            &all_algs(),
            4096,
            &expected("GET", &htu, "other", 1_562_262_618)
        )
        .unwrap_err(),
        ProofError::Ath
    );
    assert_eq!(
        check(
            resource_proof,
            &all_algs(),
            4096,
            &expected("POST", &htu, access_token, 1_562_262_618)
        )
        .unwrap_err(),
        ProofError::Method
    );
    let other = url::Url::parse("https://resource.example.org/other").unwrap();
    assert_eq!(
        check(
            resource_proof,
            &all_algs(),
            4096,
            &expected("GET", &other, access_token, 1_562_262_618)
        )
        .unwrap_err(),
        ProofError::Uri
    );
    assert_eq!(
        check(
            resource_proof,
            &all_algs(),
            4096,
            &expected("GET", &htu, access_token, 1_562_262_919)
        )
        .unwrap_err(),
        ProofError::Expired
    );
    assert_eq!(
        check(
            resource_proof,
            &all_algs(),
            4096,
            &expected("GET", &htu, access_token, 1_562_262_317)
        )
        .unwrap_err(),
        ProofError::Future
    );
    assert_eq!(
        check(resource_proof, &[Algorithm::EdDSA], 4096, &e).unwrap_err(),
        ProofError::Algorithm
    );
    assert_eq!(
        check(resource_proof, &all_algs(), 100, &e).unwrap_err(),
        ProofError::TooLarge
    );
}

// RFC 9449 section 4.1: the token-request proof has no `ath`, which a
// resource server requires (section 7.1); a token endpoint accepts it.
#[test]
fn rfc9449_token_request_proof_example() {
    let f = fixture();
    let token_proof = &*text(&f["token_request_proof"]["proof"]);
    let jkt = &*text(&f["proof_key"]["jkt"]);
    let htu = url::Url::parse("https://server.example.com/token").unwrap();
    let e = expected("POST", &htu, "any", 1_562_262_616);
    // Without `ath`: a claim missing (`dpop_invalid_claims`).
    assert_eq!(
        check(token_proof, &all_algs(), 4096, &e).unwrap_err(),
        ProofError::Claims
    );
    // At a token endpoint (no access token yet) it verifies, with the key
    // of section 6.1.
    let e = Expected {
        access_token: None,
        ..e
    };
    let v = check(token_proof, &all_algs(), 4096, &e).unwrap();
    assert_eq!(v.jkt, jkt);
    assert_eq!(v.jti, "-BwC3ESc6acc2lTc");
}

// RFC 7638 section 3.1: the thumbprint of the example RSA key; RFC 9449
// section 6.1: the example EC key's; RFC 8037 appendix A.3: the Ed25519
// key's.
#[test]
fn rfc7638_thumbprint_examples() {
    let f = fixture();
    let ex = &f["rfc7638_example"];
    assert_eq!(
        jwk_thumbprint(&ex["jwk"].to_string()),
        Some(text(&ex["thumbprint"]))
    );
    let key = &f["proof_key"];
    assert_eq!(
        jwk_thumbprint(&key["jwk"].to_string()),
        Some(text(&key["jkt"]))
    );
    let ed: serde_json::Value =
        serde_json::from_str(include_str!("../../spec-fixtures/rfc8037-a4-ed25519.json")).unwrap();
    assert_eq!(
        jwk_thumbprint(&ed["jwk"].to_string()),
        Some(text(&ed["thumbprint_b64"]))
    );
    // Private members: not a public key.
    let mut private = key["jwk"].clone();
    private["d"] = serde_json::json!("AA");
    assert_eq!(jwk_thumbprint(&private.to_string()), None);
}

struct Fixture {
    key: SigningKey,
    htu: url::Url,
    now: u64,
}

impl Fixture {
    fn new(key: SigningKey) -> Self {
        Self {
            key,
            htu: url::Url::parse("https://mcp.example.com/mcp").unwrap(),
            now: 1_800_000_000,
        }
    }

    fn claims(&self, extra: &str) -> String {
        format!(
            r#"{{"htm":"POST","htu":"https://mcp.example.com/mcp","iat":{},"jti":"j1","ath":"{}"{extra}}}"#,
            self.now,
            ath("tok")
        )
    }

    fn run(&self, proof: &str) -> Result<super::proof::Verified, ProofError> {
        check(
            proof,
            &all_algs(),
            4096,
            &expected("POST", &self.htu, "tok", self.now),
        )
    }
}

#[test]
fn signed_proofs_of_each_shape_verify() {
    for key in [SigningKey::es256().unwrap(), SigningKey::ed25519().unwrap()] {
        let f = Fixture::new(key);
        let proof = f.key.sign_raw(&f.key.header(), &f.claims(""));
        let v = f.run(&proof).unwrap();
        assert_eq!(v.jkt, f.key.thumbprint());
        // A key that states limits allowing it, and an `iat` with a
        // fraction or an exponent (a NumericDate; found from outside:
        // refused before).
        let jwk = f.key.public_jwk();
        let alg = f.key.alg();
        let limited = jwk.replace(
            '}',
            &format!(r#","alg":"{alg}","use":"sig","key_ops":["verify"]}}"#),
        );
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"{alg}","jwk":{limited}}}"#);
        for iat in [
            format!("{}.75", f.now),
            format!("{}e0", f.now),
            format!("{}.0", f.now),
        ] {
            let claims = f
                .claims("")
                .replace(&format!("\"iat\":{}", f.now), &format!("\"iat\":{iat}"));
            let v = f.run(&f.key.sign_raw(&header, &claims)).unwrap();
            assert_eq!(v.iat, f.now, "{iat}");
            assert_eq!(
                v.jkt,
                f.key.thumbprint(),
                "the limits are not in the thumbprint"
            );
        }
    }
}

#[test]
fn hostile_proofs_are_refused_with_their_reason() {
    let f = Fixture::new(SigningKey::es256().unwrap());
    let other = SigningKey::es256().unwrap();
    let jwk = f.key.public_jwk();
    let good_claims = f.claims("");
    let cases: Vec<(String, ProofError)> = vec![
        ("a.b".into(), ProofError::Malformed),
        ("a.b.c.d".into(), ProofError::Malformed),
        ("!!.!!.!!".into(), ProofError::Malformed),
        // Header rules.
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"JWT","alg":"ES256","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Type,
        ),
        (
            f.key
                .sign_raw(&format!(r#"{{"alg":"ES256","jwk":{jwk}}}"#), &good_claims),
            ProofError::Type,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"HS256","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Algorithm,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"none","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Algorithm,
        ),
        (
            f.key
                .sign_raw(r#"{"typ":"dpop+jwt","alg":"ES256"}"#, &good_claims),
            ProofError::Key,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES384","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Key,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES256","crit":["x"],"jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Header,
        ),
        // The access token's header rule (found from outside: each of
        // these passed in a proof, with a good signature).
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES256","b64":false,"jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Header,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES256","b64":true,"jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Header,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES256","cty":"JWT","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Header,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES256","enc":"A128GCM","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Header,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"zip":"DEF","typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Header,
        ),
        // The key's own limits, when it states them (found from outside:
        // a key saying ES384 verified an ES256 proof).
        (
            f.key.sign_raw(
                &format!(
                    r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                    jwk.replace('}', r#","alg":"ES384"}"#)
                ),
                &good_claims,
            ),
            ProofError::Key,
        ),
        (
            f.key.sign_raw(
                &format!(
                    r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                    jwk.replace('}', r#","alg":5}"#)
                ),
                &good_claims,
            ),
            ProofError::Key,
        ),
        (
            f.key.sign_raw(
                &format!(
                    r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                    jwk.replace('}', r#","use":"enc"}"#)
                ),
                &good_claims,
            ),
            ProofError::Key,
        ),
        (
            f.key.sign_raw(
                &format!(
                    r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                    jwk.replace('}', r#","key_ops":["sign"]}"#)
                ),
                &good_claims,
            ),
            ProofError::Key,
        ),
        (
            f.key.sign_raw(
                &format!(r#"{{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#),
                &good_claims,
            ),
            ProofError::Malformed,
        ),
        (
            f.key.sign_raw(
                &format!(
                    r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                    jwk.replace('}', r#","d":"AAAA"}"#)
                ),
                &good_claims,
            ),
            ProofError::PrivateKey,
        ),
        // Claims.
        (
            f.key
                .sign_raw(&f.key.header(), &good_claims.replace("\"jti\":\"j1\",", "")),
            ProofError::Claims,
        ),
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace("\"jti\":\"j1\"", "\"jti\":\"\""),
            ),
            ProofError::Claims,
        ),
        (
            f.key
                .sign_raw(&f.key.header(), &good_claims.replace("POST", "GET")),
            ProofError::Method,
        ),
        // `htm`, `htu`, `ath` missing or not a string: the claims are
        // malformed, not a mismatch (found from outside).
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace("\"htm\":\"POST\",", ""),
            ),
            ProofError::Claims,
        ),
        (
            f.key
                .sign_raw(&f.key.header(), &good_claims.replace("\"POST\"", "1")),
            ProofError::Claims,
        ),
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace("\"htu\":\"https://mcp.example.com/mcp\",", ""),
            ),
            ProofError::Claims,
        ),
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace(&format!(",\"ath\":\"{}\"", ath("tok")), ""),
            ),
            ProofError::Claims,
        ),
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace(&format!("\"{}\"", ath("tok")), "null"),
            ),
            ProofError::Claims,
        ),
        (
            f.key
                .sign_raw(&f.key.header(), &good_claims.replace("/mcp", "/other")),
            ProofError::Uri,
        ),
        (
            f.key.sign_raw(&f.key.header(), &f.claims(r#","jti":"j2""#)),
            ProofError::Malformed,
        ),
        (
            f.key.sign_raw(&f.key.header(), &f.claims(r#","nonce":5"#)),
            ProofError::Claims,
        ),
        // `iat` must be a NumericDate.
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace(&format!("\"iat\":{}", f.now), "\"iat\":\"1800000000\""),
            ),
            ProofError::Claims,
        ),
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace(&format!("\"iat\":{}", f.now), "\"iat\":-1"),
            ),
            ProofError::Claims,
        ),
        (
            f.key.sign_raw(
                &f.key.header(),
                &good_claims.replace(&format!("\"iat\":{}", f.now), "\"iat\":1e300"),
            ),
            ProofError::Claims,
        ),
        // Signature by another key than the header's.
        (
            other.sign_raw(&f.key.header(), &good_claims),
            ProofError::Signature,
        ),
    ];
    for (i, (proof, want)) in cases.iter().enumerate() {
        assert_eq!(f.run(proof).map(|v| v.jti).unwrap_err(), *want, "case {i}");
    }
}

// RFC 9449 section 4.3 item 9 / RFC 3986 section 6.2.2: `htu` compared
// after normalisation, without query and fragment.
#[test]
fn htu_is_compared_after_normalisation() {
    let want = url::Url::parse("https://mcp.example.com/mcp/a~b").unwrap();
    for ok in [
        "https://mcp.example.com/mcp/a~b",
        "HTTPS://MCP.Example.COM/mcp/a~b",
        "https://mcp.example.com:443/mcp/a~b",
        "https://mcp.example.com/mcp/a%7Eb",
        "https://mcp.example.com/mcp/x/../a~b",
        "https://mcp.example.com/mcp/a~b?q=1",
        "https://mcp.example.com/mcp/a~b#f",
    ] {
        assert!(htu_matches(ok, &want), "{ok}");
    }
    for bad in [
        "http://mcp.example.com/mcp/a~b",
        "https://mcp.example.com:8443/mcp/a~b",
        "https://evil.example.com/mcp/a~b",
        "https://user@mcp.example.com/mcp/a~b",
        // Not RFC 3986 URIs, although the WHATWG reading takes them for
        // the resource (found from outside).
        "https://@mcp.example.com/mcp/a~b",
        "https://:@mcp.example.com/mcp/a~b",
        "https://mcp.example.com/m\tcp/a~b",
        "https://mcp.example.com/mcp/a~b\n",
        "https://mcp.example.com\\mcp\\a~b",
        "https://mcp.example.com/mcp\\a~b",
        " https://mcp.example.com/mcp/a~b",
        "https://mcp.example.com/mcp/a~b ",
        "https://mcp.example.com/mcp/a~b?q=a b",
        "https://mcp.example.com/mcp/a~b#{x}",
        "https://mcp.example.com/MCP/a~b",
        "https://mcp.example.com/mcp/a~b/",
        "/mcp/a~b",
        "",
    ] {
        assert!(!htu_matches(bad, &want), "{bad}");
    }
    // The host as RFC 3986 text: an IPv4 address only in its dotted
    // decimal form (found from outside: the WHATWG reading took these for
    // 127.0.0.1); a domain in any case; an IP literal as its address.
    let v4 = url::Url::parse("http://127.0.0.1:8080/mcp").unwrap();
    // RFC 3986 section 6.2.2.2: `%31` is `1`, the same text normalised.
    for ok in ["http://127.0.0.1:8080/mcp", "http://127.0.0.%31:8080/mcp"] {
        assert!(htu_matches(ok, &v4), "{ok}");
    }
    for bad in [
        "http://127.1:8080/mcp",
        "http://0x7f.1:8080/mcp",
        "http://2130706433:8080/mcp",
        "http://0177.0.0.1:8080/mcp",
        "http://127.000.000.001:8080/mcp",
        "http://0x7F000001:8080/mcp",
        "http://127.0.0.1.:8080/mcp",
        "http://[::ffff:127.0.0.1]:8080/mcp",
    ] {
        assert!(!htu_matches(bad, &v4), "{bad}");
    }
    assert!(htu_matches("https://MCP.ex%61mple.com/mcp/a~b", &want));
    assert!(!htu_matches("https://mcp.example.com./mcp/a~b", &want));
    let v6 = url::Url::parse("http://[::1]:8080/mcp").unwrap();
    for ok in ["http://[::1]:8080/mcp", "http://[0:0:0:0:0:0:0:1]:8080/mcp"] {
        assert!(htu_matches(ok, &v6), "{ok}");
    }
    assert!(!htu_matches("http://[::2]:8080/mcp", &v6));
    assert_eq!(normalize_path("/a%2fb%41"), "/a%2FbA");
    assert_eq!(normalize_path("/%zz%"), "/%zz%");
}

fn dpop_with(policy: crate::config::DpopPolicy) -> Dpop {
    let config = AuthConfig::builder()
        .issuer("https://auth.example.com")
        .resource("https://mcp.example.com/mcp")
        .dpop(policy)
        .build()
        .unwrap();
    Dpop::new(&config)
}

#[test]
fn binding_and_replay() {
    let d = dpop_with(crate::config::DpopPolicy::default());
    let key = SigningKey::es256().unwrap();
    let now = crate::clock::now_unix();
    let claims = format!(
        r#"{{"htm":"POST","htu":"https://mcp.example.com/mcp","iat":{now},"jti":"r1","ath":"{}"}}"#,
        ath("tok")
    );
    let proof = key.sign_raw(&key.header(), &claims);
    let v = d.check_proof(&proof, "POST", "/mcp", "tok", now).unwrap();
    assert_eq!(
        d.bind(&v, None, now).unwrap_err().kind(),
        AuthErrorKind::DpopTokenNotBound
    );
    assert_eq!(
        d.bind(&v, Some("other"), now).unwrap_err().kind(),
        AuthErrorKind::DpopKeyMismatch
    );
    d.bind(&v, Some(&key.thumbprint()), now).unwrap();
    assert_eq!(
        d.bind(&v, Some(&key.thumbprint()), now).unwrap_err().kind(),
        AuthErrorKind::DpopReplay
    );
    // Without replay detection, the window alone bounds a replay.
    let d = dpop_with(crate::config::DpopPolicy::default().replay_detection(0));
    d.bind(&v, Some(&key.thumbprint()), now).unwrap();
    d.bind(&v, Some(&key.thumbprint()), now).unwrap();
}

#[test]
fn nonces_are_demanded_when_configured() {
    let d = dpop_with(crate::config::DpopPolicy::default().nonce(true));
    let key = SigningKey::es256().unwrap();
    let now = crate::clock::now_unix();
    let proof_with = |extra: &str| {
        key.sign_raw(
            &key.header(),
            &format!(
                r#"{{"htm":"GET","htu":"https://mcp.example.com/mcp","iat":{now},"jti":"n1","ath":"{}"{extra}}}"#,
                ath("tok")
            ),
        )
    };
    let err = |p: &str| {
        d.check_proof(p, "GET", "/mcp", "tok", now)
            .unwrap_err()
            .kind()
    };
    assert_eq!(err(&proof_with("")), AuthErrorKind::DpopNonceRequired);
    assert_eq!(
        err(&proof_with(r#","nonce":"junk""#)),
        AuthErrorKind::DpopNonceInvalid
    );
    let nonce = d.fresh_nonce().unwrap();
    let ok = proof_with(&format!(r#","nonce":"{nonce}""#));
    assert!(d.check_proof(&ok, "GET", "/mcp", "tok", now).is_ok());
    assert_eq!(d.algs(), "ES256 ES384 EdDSA PS256 RS256");
}

// RFC 9449 section 11.1 across replicas whose clocks differ: the proof's
// first use is kept in the shared store for as long as any replica may
// still take the proof as fresh. Replica B's clock runs 3 s behind A's; A
// takes a proof at the end of its window. Before the fix its record lived
// until the window closed by A's clock only (1 s here): once it expired, B,
// for which the proof was still fresh, accepted it a second time. The
// record now outlives the window by the clock leeway (the skew tolerated
// between clocks everywhere else).
#[tokio::test]
async fn a_proof_replayed_to_a_replica_with_a_slower_clock_is_refused() {
    let store: Arc<dyn crate::store::SharedStore> = Arc::new(crate::store::MemoryStore::default());
    let replica = || {
        let config = AuthConfig::builder()
            .issuer("https://auth.example.com")
            .resource("https://mcp.example.com/mcp")
            .dpop(crate::config::DpopPolicy::default().max_age(std::time::Duration::from_secs(5)))
            .shared_store(Arc::clone(&store))
            .build()
            .unwrap();
        Dpop::new(&config)
    };
    let (a, b) = (replica(), replica());
    let key = SigningKey::es256().unwrap();
    let now_a = crate::clock::now_unix();
    let iat = now_a - 5;
    let claims = format!(
        r#"{{"htm":"POST","htu":"https://mcp.example.com/mcp","iat":{iat},"jti":"skew","ath":"{}"}}"#,
        ath("tok")
    );
    let proof = key.sign_raw(&key.header(), &claims);
    let v = a.check_proof(&proof, "POST", "/mcp", "tok", now_a).unwrap();
    a.bind(&v, Some(&key.thumbprint()), now_a).unwrap();
    a.first_use_shared(&v, now_a).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let now_b = crate::clock::now_unix() - 3;
    let v = b.check_proof(&proof, "POST", "/mcp", "tok", now_b).unwrap();
    b.bind(&v, Some(&key.thumbprint()), now_b).unwrap();
    assert_eq!(
        b.first_use_shared(&v, now_b).await.unwrap_err().kind(),
        AuthErrorKind::DpopReplay
    );
}
