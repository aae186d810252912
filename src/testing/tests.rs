//! Tests for the in-process issuer: everything goes over real HTTP on
//! loopback, and signatures are checked with jsonwebtoken's own crypto
//! provider, an implementation independent of the signer.

use std::str::FromStr as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{SigningAlg, TestIssuer};

use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER as PROVIDER;

const ALL_ALGS: [SigningAlg; 3] = [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa];

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get_json(url: &str) -> (reqwest::StatusCode, Option<String>, Value) {
    let response = client().get(url).send().await.expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json::<Value>().await.expect("JSON body");
    (status, content_type, body)
}

async fn fetch_jwks(issuer: &TestIssuer) -> Value {
    let (status, content_type, body) = get_json(&issuer.jwks_uri()).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    body
}

/// Decodes one base64url JSON segment of a compact JWS.
fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("segment");
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

fn jws_header(token: &str) -> Value {
    segment(token, 0)
}

fn jws_claims(token: &str) -> Value {
    segment(token, 1)
}

/// Verifies `token` against the key named by its `kid` in `jwks`, using the
/// algorithm the JWK declares (never the token header's `alg`).
fn verifies(token: &str, jwks: &Value) -> bool {
    let kid = jws_header(token)["kid"].clone();
    let jwk_value = jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .find(|key| key["kid"] == kid)
        .expect("kid published")
        .clone();
    let alg = jsonwebtoken::Algorithm::from_str(jwk_value["alg"].as_str().expect("alg"))
        .expect("known alg");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk_value).expect("valid JWK");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let verifier = (PROVIDER.verifier_factory)(&alg, &key).expect("verifier");

    let (signing_input, signature) = token.rsplit_once('.').expect("three segments");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    verifier
        .verify(signing_input.as_bytes(), &signature)
        .is_ok()
}

#[test]
fn alg_names_match_rfc_7518() {
    // RFC 7518 section 3.1 and RFC 8037 section 3.1.
    assert_eq!(SigningAlg::Rs256.as_str(), "RS256");
    assert_eq!(SigningAlg::Es256.as_str(), "ES256");
    assert_eq!(SigningAlg::EdDsa.as_str(), "EdDSA");
    assert_eq!(SigningAlg::default(), SigningAlg::Rs256);
    assert_eq!(SigningAlg::EdDsa.to_string(), "EdDSA");
}

#[tokio::test]
async fn urls_are_loopback_without_trailing_slash() {
    let issuer = TestIssuer::start().await.expect("start");
    let base = issuer.issuer().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(!base.ends_with('/'));
    assert_eq!(issuer.jwks_uri(), format!("{base}/jwks"));
    assert_eq!(
        issuer.metadata_url(),
        format!("{base}/.well-known/oauth-authorization-server")
    );
    assert_eq!(
        issuer.openid_configuration_url(),
        format!("{base}/.well-known/openid-configuration")
    );
    assert_eq!(issuer.current_alg(), SigningAlg::Rs256);
}

#[tokio::test]
async fn serves_rfc_8414_metadata_on_both_well_known_paths() {
    let issuer = TestIssuer::start().await.expect("start");
    assert_eq!(issuer.metadata_hits(), 0);

    for url in [issuer.metadata_url(), issuer.openid_configuration_url()] {
        let (status, content_type, doc) = get_json(&url).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        // RFC 8414 section 3.3: `issuer` is identical to the issuer identifier.
        assert_eq!(doc["issuer"], issuer.issuer());
        assert_eq!(doc["jwks_uri"], issuer.jwks_uri());
        // RFC 8414 section 2: response_types_supported is REQUIRED.
        assert!(doc["response_types_supported"].is_array());
        // The authorization server's endpoints and capabilities.
        let base = issuer.issuer();
        assert_eq!(doc["authorization_endpoint"], format!("{base}/authorize"));
        assert_eq!(doc["token_endpoint"], format!("{base}/token"));
        assert_eq!(doc["registration_endpoint"], format!("{base}/register"));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            doc["grant_types_supported"],
            json!([
                "authorization_code",
                "client_credentials",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ])
        );
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["none", "client_secret_basic", "client_secret_post"])
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        // CIMD is not implemented, so not advertised.
        assert!(doc.get("client_id_metadata_document_supported").is_none());
    }
    assert_eq!(issuer.metadata_hits(), 2);
    assert_eq!(issuer.jwks_hits(), 0);
}

#[tokio::test]
async fn publishes_public_jwks_for_each_algorithm() {
    for alg in ALL_ALGS {
        let issuer = TestIssuer::start_with_alg(alg).await.expect("start");
        let jwks = fetch_jwks(&issuer).await;
        let keys = jwks["keys"].as_array().expect("keys array");
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], alg.as_str());
        assert_eq!(key["kid"], issuer.current_kid());
        // RFC 7517 section 9.2 style hygiene: no private members published.
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{alg}: {private} published");
        }
        let decoded = |member: &str| {
            URL_SAFE_NO_PAD
                .decode(key[member].as_str().expect("string member"))
                .expect("base64url member")
        };
        match alg {
            SigningAlg::Rs256 => {
                assert_eq!(key["kty"], "RSA");
                // RFC 7518 section 6.3.1.1: no leading zero octet; 2048 bits.
                let n = decoded("n");
                assert_eq!(n.len(), 256);
                assert_ne!(n[0], 0);
                assert_eq!(decoded("e"), vec![1, 0, 1]);
            }
            SigningAlg::Es256 => {
                assert_eq!(key["kty"], "EC");
                assert_eq!(key["crv"], "P-256");
                // RFC 7518 section 6.2.1.2/6.2.1.3: full-length coordinates.
                assert_eq!(decoded("x").len(), 32);
                assert_eq!(decoded("y").len(), 32);
            }
            SigningAlg::EdDsa => {
                assert_eq!(key["kty"], "OKP");
                assert_eq!(key["crv"], "Ed25519");
                assert_eq!(decoded("x").len(), 32);
            }
        }
        assert_eq!(issuer.jwks(), jwks);
        assert_eq!(issuer.jwks_hits(), 1);
    }
}

#[tokio::test]
async fn independent_implementation_accepts_signatures_for_each_algorithm() {
    for alg in ALL_ALGS {
        let issuer = TestIssuer::start_with_alg(alg).await.expect("start");
        let jwks = fetch_jwks(&issuer).await;
        let token = issuer.token().audience("https://rs.example").sign();
        assert!(verifies(&token, &jwks), "{alg} signature rejected");

        // A flipped payload byte must break the signature, or the check above
        // proves nothing.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload = URL_SAFE_NO_PAD.decode(&parts[1]).expect("payload");
        payload[2] ^= 0x01;
        parts[1] = URL_SAFE_NO_PAD.encode(&payload);
        assert!(
            !verifies(&parts.join("."), &jwks),
            "{alg} tampering accepted"
        );
    }
}

#[tokio::test]
async fn overridden_alg_header_is_still_signed_with_the_real_algorithm() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::Es256)
        .await
        .expect("start");
    let jwks = fetch_jwks(&issuer).await;
    let token = issuer.token().header("alg", json!("HS256")).sign();
    assert_eq!(jws_header(&token)["alg"], "HS256");
    assert!(verifies(&token, &jwks));
}

#[tokio::test]
async fn default_header_and_claims() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::EdDsa)
        .await
        .expect("start");
    let before = super::plumbing::unix_now();
    let token = issuer.token().sign();
    let after = super::plumbing::unix_now();

    // RFC 9068 section 2.1: typ is "at+jwt".
    assert_eq!(
        jws_header(&token),
        json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": issuer.current_kid() })
    );
    let claims = jws_claims(&token);
    assert_eq!(claims["iss"], issuer.issuer());
    assert_eq!(claims["sub"], "test-user");
    assert_eq!(claims["client_id"], "test-client");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((before..=after).contains(&iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 300));
    for absent in ["aud", "scope", "nbf"] {
        assert!(claims.get(absent).is_none(), "{absent} present by default");
    }
    let jti = claims["jti"].as_str().expect("jti");
    assert_eq!(URL_SAFE_NO_PAD.decode(jti).expect("base64url").len(), 16);
    assert_ne!(
        issuer.token().sign().split('.').nth(1),
        token.split('.').nth(1),
        "jti must differ between tokens"
    );
}

#[tokio::test]
async fn builder_sets_and_removes_claims() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::EdDsa)
        .await
        .expect("start");

    let token = issuer
        .token()
        .subject("alice")
        .client_id("cli")
        .audience("https://rs.example/mcp")
        .scopes(["read", "write"])
        .issued_at(1_000)
        .expires_in(Duration::from_secs(60))
        .not_before(990)
        .claim("custom", json!({ "nested": true }))
        .claim("jti", Value::Null)
        .header("typ", json!("JWT"))
        .header("kid", Value::Null)
        .header("crit", json!(["exp"]))
        .sign();
    let claims = jws_claims(&token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "cli");
    assert_eq!(claims["aud"], "https://rs.example/mcp");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["iat"], 1_000);
    assert_eq!(claims["exp"], 1_060);
    assert_eq!(claims["nbf"], 990);
    assert_eq!(claims["custom"], json!({ "nested": true }));
    assert!(claims.get("jti").is_none());
    let header = jws_header(&token);
    assert_eq!(header["typ"], "JWT");
    assert!(header.get("kid").is_none());
    assert_eq!(header["crit"], json!(["exp"]));

    let token = issuer
        .token()
        .audiences(["a", "b"])
        .expires_at(42)
        .issued_at(7)
        .sign();
    let claims = jws_claims(&token);
    assert_eq!(claims["aud"], json!(["a", "b"]));
    assert_eq!(claims["iat"], 7);
    assert_eq!(claims["exp"], 42, "explicit exp is not relative to iat");

    // Later calls win: expires_in after expires_at restores a relative exp.
    let claims = jws_claims(
        &issuer
            .token()
            .issued_at(100)
            .expires_at(5)
            .expires_in(Duration::from_secs(10))
            .sign(),
    );
    assert_eq!(claims["exp"], 110);
}

#[tokio::test]
async fn rotation_keeps_old_keys_until_retired() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::Es256)
        .await
        .expect("start");
    let first_kid = issuer.current_kid();
    let old_token = issuer.token().sign();

    issuer.rotate_key();
    let second_kid = issuer.current_kid();
    assert_ne!(first_kid, second_kid);
    let new_token = issuer.token().sign();
    assert_eq!(jws_header(&new_token)["kid"], second_kid);

    let jwks = fetch_jwks(&issuer).await;
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| &key["kid"])
        .collect();
    assert_eq!(kids, [&json!(second_kid), &json!(first_kid)]);
    assert!(verifies(&old_token, &jwks));
    assert!(verifies(&new_token, &jwks));

    let third_kid = issuer
        .try_rotate_key_with_alg(SigningAlg::Rs256)
        .expect("rotate");
    assert_eq!(issuer.current_kid(), third_kid);
    assert_eq!(issuer.current_alg(), SigningAlg::Rs256);
    assert_eq!(jws_header(&issuer.token().sign())["alg"], "RS256");

    issuer.retire_old_keys();
    let jwks = fetch_jwks(&issuer).await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], third_kid);
    assert_eq!(issuer.jwks_hits(), 2);
}

#[tokio::test]
async fn jwks_outage_answers_503_and_hits_are_counted() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::EdDsa)
        .await
        .expect("start");
    fetch_jwks(&issuer).await;
    assert_eq!(issuer.jwks_hits(), 1);

    issuer.set_jwks_available(false);
    let (status, _, body) = get_json(&issuer.jwks_uri()).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.get("keys").is_none());
    assert_eq!(issuer.jwks_hits(), 2, "failed fetches are counted too");

    // Discovery is unaffected by the key-endpoint outage.
    let (status, _, _) = get_json(&issuer.metadata_url()).await;
    assert_eq!(status, reqwest::StatusCode::OK);

    issuer.set_jwks_available(true);
    fetch_jwks(&issuer).await;
    assert_eq!(issuer.jwks_hits(), 3);
    assert_eq!(issuer.metadata_hits(), 1);
}

#[tokio::test]
async fn debug_output_never_shows_key_material() {
    let issuer = TestIssuer::start().await.expect("start");
    let jwks = issuer.jwks();
    let n = jwks["keys"][0]["n"].as_str().expect("n").to_owned();

    let issuer_debug = format!("{issuer:?}");
    assert!(issuer_debug.contains(issuer.issuer()));
    let builder = issuer.token().claim("secret", json!("hunter2"));
    let builder_debug = format!("{builder:?}");
    for debug in [&issuer_debug, &builder_debug] {
        assert!(!debug.contains(&n), "{debug}");
        assert!(!debug.contains("key-1"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::EdDsa)
        .await
        .expect("start");
    let url = issuer.jwks_uri();
    fetch_jwks(&issuer).await;
    issuer.shutdown_and_wait().await;
    assert!(client().get(&url).send().await.is_err());
}

#[tokio::test]
async fn drop_stops_serving() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::EdDsa)
        .await
        .expect("start");
    let url = issuer.metadata_url();
    drop(issuer);
    // Let the server task observe the signal and close the listener.
    for _ in 0..100 {
        if client().get(&url).send().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("issuer still serving after drop");
}

#[tokio::test]
async fn faults_answer_as_documented_and_every_request_is_counted() {
    use super::JwksFault;
    let issuer = TestIssuer::start_with_alg(SigningAlg::EdDsa)
        .await
        .expect("start");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let get = |url: String| {
        let client = no_redirects.clone();
        async move {
            let response = client.get(url).send().await.expect("request");
            let status = response.status().as_u16();
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header(reqwest::header::CONTENT_TYPE);
            let location = header(reqwest::header::LOCATION);
            let cache_control = header(reqwest::header::CACHE_CONTROL);
            let body = response.bytes().await.expect("body");
            (status, content_type, location, cache_control, body)
        }
    };

    issuer.set_jwks_fault(JwksFault::Malformed);
    let (status, ct, _, _, body) = get(issuer.jwks_uri()).await;
    assert_eq!((status, ct.as_deref()), (200, Some("application/json")));
    assert!(serde_json::from_slice::<Value>(&body).is_err());

    issuer.set_jwks_fault(JwksFault::WrongContentType);
    let (status, ct, _, _, body) = get(issuer.jwks_uri()).await;
    assert_eq!((status, ct.as_deref()), (200, Some("text/html")));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).ok(),
        Some(issuer.jwks())
    );

    issuer.set_jwks_fault(JwksFault::Redirect("http://127.0.0.1:9/x".into()));
    let (status, _, location, _, _) = get(issuer.jwks_uri()).await;
    assert_eq!(
        (status, location.as_deref()),
        (302, Some("http://127.0.0.1:9/x"))
    );

    issuer.set_jwks_fault(JwksFault::EmptyKeySet);
    let (_, _, _, _, body) = get(issuer.jwks_uri()).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).ok(),
        Some(json!({"keys": []}))
    );

    for declare_length in [true, false] {
        issuer.set_jwks_fault(JwksFault::HugeBody {
            bytes: 100_000,
            declare_length,
        });
        let (status, _, _, _, body) = get(issuer.jwks_uri()).await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), 100_000);
        assert_eq!(
            serde_json::from_slice::<Value>(&body).ok(),
            Some(issuer.jwks())
        );
    }

    // A hanging request is answered once the fault changes.
    issuer.set_jwks_fault(JwksFault::Hang);
    let hanging = tokio::spawn(get(issuer.jwks_uri()));
    for _ in 0..500 {
        if issuer.jwks_hits() == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!hanging.is_finished());
    issuer.set_jwks_fault(JwksFault::None);
    issuer.set_jwks_cache_control(Some("max-age=60"));
    let (status, _, _, cache_control, _) = hanging.await.expect("task");
    assert_eq!(status, 200);
    assert_eq!(cache_control.as_deref(), Some("max-age=60"));

    issuer.set_jwks_document(Some(json!({"keys": [{"kty": "oct"}]})));
    let (_, _, _, _, body) = get(issuer.jwks_uri()).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).ok(),
        Some(json!({"keys": [{"kty": "oct"}]}))
    );
    issuer.set_jwks_document(None);

    let (status, ..) = get(format!("{}/x5u", issuer.issuer())).await;
    assert_eq!(status, 404);
    assert_eq!(issuer.jwks_hits(), 8);
    assert_eq!(issuer.other_hits(), 1);
    assert_eq!(issuer.total_hits(), 9);
}

#[tokio::test]
async fn raw_signing_helpers_produce_verifiable_tokens() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::Es256)
        .await
        .expect("start");
    let jwks = issuer.jwks();
    let header = format!(
        r#"{{"alg":"ES256","kid":"{}","kid":"x"}}"#,
        issuer.current_kid()
    );
    // Repeated members are kept as given (serde_json would keep the last).
    let raw = issuer
        .try_sign_raw(header.as_bytes(), b"{\"a\":1,\"a\":2}")
        .expect("sign");
    let decoded = URL_SAFE_NO_PAD
        .decode(raw.split('.').next().expect("header"))
        .expect("b64");
    assert_eq!(decoded, header.as_bytes());

    let unsigned = issuer.token().subject("u").unsigned().expect("unsigned");
    assert_eq!(unsigned.split('.').count(), 2);
    let signature = issuer.sign_bytes(unsigned.as_bytes()).expect("sign");
    let token = format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(signature));
    assert!(verifies(&token, &jwks));

    let pem = issuer.public_key_pem().expect("pem");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(issuer.public_jwk().expect("jwk"), jwks["keys"][0]);

    issuer.try_add_key(SigningAlg::EdDsa, "key-1").expect("add");
    let kids: Vec<Value> = issuer.jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, [json!("key-1"), json!("key-1")]);
    assert_eq!(issuer.current_alg(), SigningAlg::EdDsa);
}

// A fixed port: the issuer URL names it and serves its metadata there; a
// second issuer on the same port fails to start (an error, not a panic).
#[tokio::test]
async fn an_issuer_listens_on_the_port_it_is_given() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = TestIssuer::builder().port(free).start().await.unwrap();
    assert_eq!(issuer.local_addr().port(), free);
    assert_eq!(issuer.local_addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_eq!(issuer.issuer(), format!("http://127.0.0.1:{free}"));
    let doc: Value = client()
        .get(issuer.metadata_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], issuer.issuer());
    let taken = TestIssuer::builder().port(free).start().await;
    assert_eq!(
        taken.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );
}
