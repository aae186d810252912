//! DPoP on the wire (RFC 9449; the MCP DPoP profile): a real `McpServer`
//! behind the layer, a real `TestIssuer`, proofs signed by the testing
//! kit's `DpopClient`, every refusal with its status, OAuth error, reason
//! code and challenges.
// Test code: a panic here is a failed run, not an outage.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

use mcp_oauth2::testing::{
    ClientRegistration, DpopClient, parse_bearer_challenge, parse_dpop_challenge,
};
use mcp_oauth2::{Algorithm, DpopMode, DpopPolicy};
use serde_json::{Value, json};
use support::fixture::Harness;
use support::loopback::{seen_headers, serve_route};

/// An `initialize` request: answered 200 once the caller is admitted.
const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"dpop-test","version":"1"}}}"#;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token for the harness's resource bound to `client`'s key.
fn bound_token(h: &Harness, client: &DpopClient) -> String {
    h.issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .dpop_bound_to(client.thumbprint())
        .sign()
}

/// POSTs `tools/list` with `Authorization: DPoP <token>` and each proof as
/// a `DPoP` header.
async fn post_dpop(h: &Harness, token: &str, proofs: &[&str]) -> reqwest::Response {
    let auth = format!("DPoP {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    for p in proofs {
        headers.push(("dpop", p));
    }
    h.post(&headers, LIST).await
}

/// What a refusal said: status, the JSON body's `error` and `reason`, and
/// the `Bearer` and `DPoP` challenges (absent: `None`).
struct Refusal {
    status: u16,
    error: Option<String>,
    reason: String,
    bearer: Option<Vec<(String, String)>>,
    dpop: Option<Vec<(String, String)>>,
    nonce: Option<String>,
}

async fn refusal(resp: reqwest::Response) -> Refusal {
    let status = resp.status().as_u16();
    let mut bearer = None;
    let mut dpop = None;
    for v in resp.headers().get_all("www-authenticate") {
        let v = v.to_str().unwrap();
        if let Some(p) = parse_bearer_challenge(v) {
            assert!(bearer.replace(p).is_none(), "two Bearer challenges");
        } else if let Some(p) = parse_dpop_challenge(v) {
            assert!(dpop.replace(p).is_none(), "two DPoP challenges");
        } else {
            panic!("unexpected challenge {v}");
        }
    }
    let nonce = resp
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    Refusal {
        status,
        error: body["error"].as_str().map(str::to_owned),
        reason: body["reason"].as_str().unwrap().to_owned(),
        bearer,
        dpop,
        nonce,
    }
}

fn param<'a>(c: &'a Option<Vec<(String, String)>>, name: &str) -> Option<&'a str> {
    c.as_ref()?
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// RFC 9449 section 7.1: a proof error is `invalid_dpop_proof` on the
/// `DPoP` challenge (with `algs`); the `Bearer` challenge beside it names
/// no error.
fn assert_proof_refused(r: &Refusal, reason: &str) {
    assert_eq!(r.status, 401, "{reason}");
    assert_eq!(r.error.as_deref(), Some("invalid_dpop_proof"), "{reason}");
    assert_eq!(r.reason, reason);
    assert_eq!(
        param(&r.dpop, "error"),
        Some("invalid_dpop_proof"),
        "{reason}"
    );
    assert_eq!(
        param(&r.dpop, "algs"),
        Some("ES256 ES384 EdDSA PS256 RS256"),
        "{reason}"
    );
    assert!(param(&r.dpop, "resource_metadata").is_some());
    assert!(r.bearer.is_some(), "{reason}: Bearer challenge beside");
    assert_eq!(param(&r.bearer, "error"), None, "{reason}");
}

// RFC 9449 section 7.1: a bound token with a valid proof is accepted; a
// second request with a fresh proof too (the token comes from the
// verified-token cache; the proof is checked every time).
#[tokio::test]
async fn bound_token_with_a_valid_proof_is_accepted() {
    let h = Harness::start(|b| b).await;
    let client = DpopClient::new();
    let token = bound_token(&h, &client);
    for _ in 0..2 {
        let proof = client.proof("POST", &h.resource, Some(&token));
        let resp = post_dpop(&h, &token, &[&proof]).await;
        assert_eq!(resp.status(), 200);
    }
    // Ed25519 proofs too, and the scheme name is case-insensitive.
    let ed = DpopClient::ed25519();
    let token = bound_token(&h, &ed);
    let proof = ed.proof("POST", &h.resource, Some(&token));
    let auth = format!("dpop {token}");
    let resp = h
        .post(&[("authorization", &auth), ("dpop", &proof)], LIST)
        .await;
    assert_eq!(resp.status(), 200);
}

// RFC 9449 section 11.1: the same proof twice is refused.
#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let h = Harness::start(|b| b).await;
    let client = DpopClient::new();
    let token = bound_token(&h, &client);
    let proof = client.proof("POST", &h.resource, Some(&token));
    assert_eq!(post_dpop(&h, &token, &[&proof]).await.status(), 200);
    let r = refusal(post_dpop(&h, &token, &[&proof]).await).await;
    assert_proof_refused(&r, "dpop_replay");
    // With replay detection off, the `iat` window alone bounds a replay.
    let h = Harness::start(|b| b.dpop(DpopPolicy::default().replay_detection(0))).await;
    let token = bound_token(&h, &client);
    let proof = client.proof("POST", &h.resource, Some(&token));
    assert_eq!(post_dpop(&h, &token, &[&proof]).await.status(), 200);
    assert_eq!(post_dpop(&h, &token, &[&proof]).await.status(), 200);
}

/// A `ping` without a session: past authentication (the proof is checked
/// and remembered), then answered by the MCP service, whatever it says.
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;

// RFC 9449 section 11.1: one client flooding fresh proofs with its own key
// (and its own valid bound token) cannot make the replay memory forget
// another client's proof. Before the fix the memory evicted the least used
// entries, whoever they belonged to: the victim's captured proof was
// replayable within its `iat` window. A small memory (64 proofs) stands
// for the default 100,000 (about 170 proofs a second over the window).
#[tokio::test]
async fn a_client_flooding_its_own_proofs_cannot_make_another_clients_replayable() {
    let h = Harness::start(|b| b.dpop(DpopPolicy::default().replay_detection(64))).await;
    let victim = DpopClient::new();
    let victim_token = bound_token(&h, &victim);
    let flooder = DpopClient::new();
    let flooder_token = h
        .issuer
        .token()
        .subject("mallory")
        .audience(&h.resource)
        .dpop_bound_to(flooder.thumbprint())
        .sign();
    let auth = format!("DPoP {flooder_token}");
    let flood = |n: usize| {
        let (h, flooder, flooder_token, auth) = (&h, &flooder, &flooder_token, &auth);
        async move {
            let mut last = String::new();
            for _ in 0..n {
                last = flooder.proof("POST", &h.resource, Some(flooder_token));
                let resp = h
                    .post(&[("authorization", auth), ("dpop", &last)], PING)
                    .await;
                // A fast client is never refused for its rate.
                assert!(
                    !matches!(resp.status().as_u16(), 401 | 403 | 429 | 503),
                    "the flooder's fresh proof was refused: {}",
                    resp.status()
                );
            }
            last
        }
    };
    // The memory is full (a server that has been running), then the victim
    // sends a proof, which an attacker captures, then the flood goes on.
    flood(2 * 64).await;
    let captured = victim.proof("POST", &h.resource, Some(&victim_token));
    assert_eq!(
        post_dpop(&h, &victim_token, &[&captured]).await.status(),
        200
    );
    let last = flood(4 * 64).await;

    let replayed = post_dpop(&h, &victim_token, &[&captured]).await;
    assert_eq!(
        replayed.status(),
        401,
        "the victim's captured proof was replayed after the flood"
    );
    assert_proof_refused(&refusal(replayed).await, "dpop_replay");
    // The flooder's latest proofs are remembered too.
    let resp = h
        .post(&[("authorization", &auth), ("dpop", &last)], PING)
        .await;
    assert_proof_refused(&refusal(resp).await, "dpop_replay");
    // And the victim keeps working.
    let fresh = victim.proof("POST", &h.resource, Some(&victim_token));
    assert_eq!(post_dpop(&h, &victim_token, &[&fresh]).await.status(), 200);
}

// RFC 9449 section 4.3, each check on the wire with its reason code.
#[tokio::test]
async fn every_proof_check_refuses_with_its_reason() {
    let h = Harness::start(|b| b).await;
    let client = DpopClient::new();
    let other = DpopClient::new();
    let token = bound_token(&h, &client);
    let uri = h.resource.as_str();
    let mut private_jwk = client.public_jwk();
    private_jwk["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // (x, x): not on P-256.
    let mut off_curve = client.public_jwk();
    off_curve["y"] = off_curve["x"].clone();
    // An RSA JWK of 256 octets: `top` first, `low` last, 0xff between.
    let rsa_jwk = |top: u8, low: u8, e: &str| {
        use base64::Engine as _;
        let mut n = vec![0xffu8; 256];
        n[0] = top;
        n[255] = low;
        json!({"kty": "RSA", "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&n), "e": e})
    };
    // A proof naming `jwk` for RS256 (signed by the client's own key: the
    // key is judged first).
    let rsa_proof = |jwk: Value| {
        client
            .proof_builder("POST", uri)
            .access_token(&token)
            .header("alg", json!("RS256"))
            .header("jwk", jwk)
            .sign()
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "dpop_method_mismatch",
            client.proof("GET", uri, Some(&token)),
        ),
        (
            "dpop_uri_mismatch",
            client.proof("POST", &format!("{}/other", h.base), Some(&token)),
        ),
        (
            "dpop_uri_mismatch",
            // The authority is the configured resource's, not a Host the
            // client chose.
            client.proof("POST", &uri.replace("127.0.0.1", "localhost"), Some(&token)),
        ),
        (
            "dpop_proof_expired",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .issued_at(now() - 330)
                .sign(),
        ),
        (
            "dpop_proof_not_yet_valid",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .issued_at(now() + 330)
                .sign(),
        ),
        (
            "dpop_ath_mismatch",
            client.proof("POST", uri, Some("another-token")),
        ),
        // Without `ath`: a claim missing, not a mismatch (found from
        // outside: it was `dpop_ath_mismatch`).
        ("dpop_invalid_claims", client.proof("POST", uri, None)),
        (
            "dpop_private_key",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .header("jwk", private_jwk)
                .sign(),
        ),
        (
            "dpop_invalid_signature",
            // The header names the bound key; another key signed.
            other
                .proof_builder("POST", uri)
                .access_token(&token)
                .header("jwk", client.public_jwk())
                .sign(),
        ),
        ("dpop_key_mismatch", other.proof("POST", uri, Some(&token))),
        (
            "dpop_invalid_type",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .header("typ", json!("JWT"))
                .sign(),
        ),
        // The access token's header rule holds for proofs (found from
        // outside: `b64: false` without `crit` was taken).
        (
            "dpop_unsupported_header",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .header("b64", json!(false))
                .sign(),
        ),
        (
            "dpop_unsupported_header",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .header("crit", json!(["b64"]))
                .sign(),
        ),
        (
            "dpop_disallowed_algorithm",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .header("alg", json!("HS256"))
                .sign(),
        ),
        (
            "dpop_invalid_claims",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .claim("jti", Value::Null)
                .sign(),
        ),
        ("dpop_proof_malformed", "not-a-jwt".to_owned()),
        // Keys that are no keys are told as such, not as a bad signature
        // (found from outside: `dpop_invalid_signature`): a point off its
        // curve, an RSA modulus of 2047 bits (256 octets), an even one, an
        // exponent of 1.
        (
            "dpop_invalid_key",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .header("jwk", off_curve)
                .sign(),
        ),
        ("dpop_invalid_key", rsa_proof(rsa_jwk(0x7f, 0x01, "AQAB"))),
        ("dpop_invalid_key", rsa_proof(rsa_jwk(0xc1, 0x02, "AQAB"))),
        ("dpop_invalid_key", rsa_proof(rsa_jwk(0xc1, 0x01, "AQ"))),
        (
            "dpop_proof_too_large",
            client
                .proof_builder("POST", uri)
                .access_token(&token)
                .claim("pad", json!("x".repeat(5000)))
                .sign(),
        ),
    ];
    for (reason, proof) in &cases {
        let r = refusal(post_dpop(&h, &token, &[proof]).await).await;
        assert_proof_refused(&r, reason);
    }
    // The token is still good with a proof of its own key.
    let proof = client.proof("POST", uri, Some(&token));
    assert_eq!(post_dpop(&h, &token, &[&proof]).await.status(), 200);
}

// RFC 9449 section 4.3 item 1 / section 7.1: exactly one `DPoP` header.
#[tokio::test]
async fn two_proof_headers_or_none_are_refused() {
    let h = Harness::start(|b| b).await;
    let client = DpopClient::new();
    let token = bound_token(&h, &client);
    let a = client.proof("POST", &h.resource, Some(&token));
    let b = client.proof("POST", &h.resource, Some(&token));
    let r = refusal(post_dpop(&h, &token, &[&a, &b]).await).await;
    assert_proof_refused(&r, "multiple_dpop_proofs");
    let r = refusal(post_dpop(&h, &token, &[]).await).await;
    assert_proof_refused(&r, "dpop_proof_missing");
}

// RFC 9449 section 7.1: `Authorization: DPoP` without a proof. The token
// need not be bound (this one is not): the description speaks of the
// scheme the request used, not of a binding the token may not have.
#[tokio::test]
async fn the_dpop_scheme_without_a_proof_names_the_scheme() {
    let h = Harness::start(|b| b).await;
    let unbound = h.token("bob");
    let r = refusal(post_dpop(&h, &unbound, &[]).await).await;
    assert_proof_refused(&r, "dpop_proof_missing");
    let said = "A DPoP proof header is required with the DPoP authorization scheme";
    assert_eq!(param(&r.dpop, "error_description"), Some(said));
}

// RFC 9449 section 7.2: a bound token presented as Bearer is refused as
// `invalid_token`; an unbound token presented with a proof too.
#[tokio::test]
async fn bound_as_bearer_and_unbound_as_dpop_are_invalid_tokens() {
    let h = Harness::start(|b| b).await;
    let client = DpopClient::new();
    let bound = bound_token(&h, &client);
    let r = refusal(
        h.post(&[("authorization", &format!("Bearer {bound}"))], LIST)
            .await,
    )
    .await;
    assert_eq!((r.status, r.error.as_deref()), (401, Some("invalid_token")));
    assert_eq!(r.reason, "sender_constrained_token");
    assert_eq!(param(&r.bearer, "error"), Some("invalid_token"));
    assert_eq!(param(&r.dpop, "error"), None);
    assert!(param(&r.dpop, "algs").is_some());

    let unbound = h.token("bob");
    let proof = client.proof("POST", &h.resource, Some(&unbound));
    let r = refusal(post_dpop(&h, &unbound, &[&proof]).await).await;
    assert_eq!((r.status, r.error.as_deref()), (401, Some("invalid_token")));
    assert_eq!(r.reason, "dpop_token_not_bound");
    assert_eq!(param(&r.dpop, "error"), Some("invalid_token"));
    // Bearer still works for an unbound token in the default mode.
    let resp = h
        .post(&[("authorization", &format!("Bearer {unbound}"))], LIST)
        .await;
    assert_eq!(resp.status(), 200);
}

// RFC 7800 section 3 and RFC 8705 section 3.1: a `cnf` that binds the
// token by another confirmation method beside `jkt` (a client certificate,
// `x5t#S256`) cannot be proven here, whatever the DPoP proof: refused as
// `sender_constrained_token` (401 `invalid_token` on the DPoP challenge),
// the way a `cnf` with `x5t#S256` alone is. A `jkt` that is not a string
// is refused the same way.
#[tokio::test]
async fn a_binding_beside_jkt_is_refused_even_with_a_valid_proof() {
    let h = Harness::start(|b| b).await;
    let client = DpopClient::new();
    let jkt = client.thumbprint();
    for cnf in [
        json!({"jkt": jkt, "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2", "jkt": jkt}),
        json!({"jkt": jkt, "jwk": client.public_jwk()}),
        json!({"jkt": jkt, "kid": "k1"}),
        json!({"jkt": [jkt]}),
    ] {
        let token = h
            .issuer
            .token()
            .subject("alice")
            .audience(&h.resource)
            .claim("cnf", cnf.clone())
            .sign();
        let proof = client.proof("POST", &h.resource, Some(&token));
        let r = refusal(post_dpop(&h, &token, &[&proof]).await).await;
        assert_eq!(
            (r.status, r.error.as_deref(), r.reason.as_str()),
            (401, Some("invalid_token"), "sender_constrained_token"),
            "{cnf}"
        );
        assert_eq!(param(&r.dpop, "error"), Some("invalid_token"), "{cnf}");
        let r = refusal(
            h.post(&[("authorization", &format!("Bearer {token}"))], LIST)
                .await,
        )
        .await;
        assert_eq!(
            (r.status, r.reason.as_str()),
            (401, "sender_constrained_token"),
            "{cnf}"
        );
    }
    // The control: `jkt` alone, with its proof.
    let token = bound_token(&h, &client);
    let proof = client.proof("POST", &h.resource, Some(&token));
    assert_eq!(post_dpop(&h, &token, &[&proof]).await.status(), 200);
}

async fn metadata(h: &Harness) -> Value {
    reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        h.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

// RFC 9728 section 2: the DPoP metadata members, per mode.
#[tokio::test]
async fn metadata_advertises_dpop() {
    let h = Harness::start(|b| b).await;
    let m = metadata(&h).await;
    assert_eq!(
        m["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "EdDSA", "PS256", "RS256"])
    );
    assert!(m.get("dpop_bound_access_tokens_required").is_none());
    let h = Harness::start(|b| {
        b.dpop(
            DpopPolicy::default()
                .mode(DpopMode::Required)
                .algorithms([Algorithm::ES256]),
        )
    })
    .await;
    let m = metadata(&h).await;
    assert_eq!(m["dpop_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(m["dpop_bound_access_tokens_required"], json!(true));
    let h = Harness::start(|b| b.dpop(DpopPolicy::default().mode(DpopMode::Off))).await;
    let m = metadata(&h).await;
    assert!(m.get("dpop_signing_alg_values_supported").is_none());
}

// The `required` mode: Bearer refused before verification, the DPoP
// challenge alone; a proof with an algorithm off the list refused.
#[tokio::test]
async fn required_mode_refuses_bearer() {
    let h = Harness::start(|b| {
        b.dpop(
            DpopPolicy::default()
                .mode(DpopMode::Required)
                .algorithms([Algorithm::ES256]),
        )
    })
    .await;
    let r = refusal(
        h.post(
            &[("authorization", &format!("Bearer {}", h.token("bob")))],
            LIST,
        )
        .await,
    )
    .await;
    assert_eq!((r.status, r.error.as_deref()), (401, Some("invalid_token")));
    assert_eq!(r.reason, "dpop_required");
    assert!(r.bearer.is_none());
    assert_eq!(param(&r.dpop, "error"), Some("invalid_token"));
    assert_eq!(param(&r.dpop, "algs"), Some("ES256"));

    let r = refusal(h.post(&[], LIST).await).await;
    assert_eq!((r.status, r.reason.as_str()), (401, "missing_token"));
    assert!(r.bearer.is_none());
    assert!(param(&r.dpop, "resource_metadata").is_some());
    assert_eq!(param(&r.dpop, "error"), None);

    let client = DpopClient::new();
    let token = bound_token(&h, &client);
    let proof = client.proof("POST", &h.resource, Some(&token));
    assert_eq!(post_dpop(&h, &token, &[&proof]).await.status(), 200);
    let ed = DpopClient::ed25519();
    let token = bound_token(&h, &ed);
    let proof = ed.proof("POST", &h.resource, Some(&token));
    let r = refusal(post_dpop(&h, &token, &[&proof]).await).await;
    assert_eq!(r.reason, "dpop_disallowed_algorithm");
    assert_eq!(param(&r.dpop, "error"), Some("invalid_dpop_proof"));
}

// The `off` mode: the DPoP scheme is not read; bound tokens stay refused.
#[tokio::test]
async fn off_mode_reads_no_dpop() {
    let h = Harness::start(|b| b.dpop(DpopPolicy::default().mode(DpopMode::Off))).await;
    let client = DpopClient::new();
    let token = bound_token(&h, &client);
    let proof = client.proof("POST", &h.resource, Some(&token));
    let r = refusal(post_dpop(&h, &token, &[&proof]).await).await;
    assert_eq!((r.status, r.reason.as_str()), (401, "missing_token"));
    assert!(r.dpop.is_none());
    let r = refusal(
        h.post(&[("authorization", &format!("Bearer {token}"))], LIST)
            .await,
    )
    .await;
    assert_eq!(r.reason, "sender_constrained_token");
}

// RFC 9449 section 9: server nonces. The first request gets 401
// `use_dpop_nonce` with a `DPoP-Nonce`; the retry with it succeeds. A
// replica sharing the secret accepts the nonce; one with another secret
// does not.
#[tokio::test]
async fn nonce_flow() {
    let secret: [u8; 32] = *b"nonce-secret:Vh2N1x7KpR0aZwEmU3y";
    let policy = DpopPolicy::default().nonce(true).nonce_secret(secret);
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| b.dpop(policy.clone())).await;
    let client = DpopClient::new();
    let token = bound_token(&h, &client);

    let proof = client.proof("POST", &h.resource, Some(&token));
    let r = refusal(post_dpop(&h, &token, &[&proof]).await).await;
    assert_eq!(
        (r.status, r.error.as_deref()),
        (401, Some("use_dpop_nonce"))
    );
    assert_eq!(r.reason, "dpop_nonce_required");
    assert_eq!(param(&r.dpop, "error"), Some("use_dpop_nonce"));
    assert_eq!(param(&r.bearer, "error"), None);
    let nonce = r.nonce.expect("DPoP-Nonce header");

    let proof = client
        .proof_builder("POST", &h.resource)
        .access_token(&token)
        .nonce(&nonce)
        .sign();
    let resp = post_dpop(&h, &token, &[&proof]).await;
    assert_eq!(resp.status(), 200);
    // RFC 9449 section 8.2: the next nonce comes with the answer.
    assert!(resp.headers().contains_key("dpop-nonce"));

    let junk = client
        .proof_builder("POST", &h.resource)
        .access_token(&token)
        .nonce("not-ours")
        .sign();
    let r = refusal(post_dpop(&h, &token, &[&junk]).await).await;
    assert_eq!(r.reason, "dpop_nonce_invalid");
    assert_eq!(r.error.as_deref(), Some("use_dpop_nonce"));
    assert!(r.nonce.is_some());

    // A second replica with the same secret (and the same issuer).
    let issuer2 = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let h2 = Harness::start_with_issuer(issuer2, |b| b.dpop(policy)).await;
    let token2 = bound_token(&h2, &client);
    let proof = client
        .proof_builder("POST", &h2.resource)
        .access_token(&token2)
        .nonce(&nonce)
        .sign();
    assert_eq!(post_dpop(&h2, &token2, &[&proof]).await.status(), 200);
    // One with its own random secret refuses it.
    let h3 = Harness::start(|b| b.dpop(DpopPolicy::default().nonce(true))).await;
    let token3 = bound_token(&h3, &client);
    let proof = client
        .proof_builder("POST", &h3.resource)
        .access_token(&token3)
        .nonce(&nonce)
        .sign();
    let r = refusal(post_dpop(&h3, &token3, &[&proof]).await).await;
    assert_eq!(r.reason, "dpop_nonce_invalid");
}

// RFC 9449 section 5: the test issuer binds a token to the key of the
// proof sent to its token endpoint (`token_type: DPoP`, `cnf.jkt`), and the
// server accepts that token with proofs of that key only.
#[tokio::test]
async fn token_endpoint_issues_dpop_bound_tokens() {
    let h = Harness::start(|b| b).await;
    h.issuer
        .register_client(ClientRegistration::confidential("svc", "s3cret"));
    let client = DpopClient::new();
    let token_request = |proofs: Vec<String>| {
        let mut req = reqwest::Client::new()
            .post(h.issuer.token_endpoint())
            .basic_auth("svc", Some("s3cret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&resource={}",
                url::form_urlencoded::byte_serialize(h.resource.as_bytes()).collect::<String>()
            ));
        for p in proofs {
            req = req.header("dpop", p);
        }
        req.send()
    };
    let proof = client.proof("POST", &h.issuer.token_endpoint(), None);
    let resp = token_request(vec![proof]).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();

    let proof = client.proof("POST", &h.resource, Some(&token));
    assert_eq!(post_dpop(&h, &token, &[&proof]).await.status(), 200);
    let r = refusal(
        h.post(&[("authorization", &format!("Bearer {token}"))], LIST)
            .await,
    )
    .await;
    assert_eq!(r.reason, "sender_constrained_token");

    // A proof for another endpoint, or two proofs: 400 invalid_dpop_proof.
    let wrong = client.proof("POST", &h.resource, None);
    let resp = token_request(vec![wrong]).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    let a = client.proof("POST", &h.issuer.token_endpoint(), None);
    let b = client.proof("POST", &h.issuer.token_endpoint(), None);
    let resp = token_request(vec![a, b]).await.unwrap();
    assert_eq!(resp.status(), 400);
    // Without a proof: a Bearer token, as before.
    let resp = token_request(vec![]).await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
}

// `AuthContext` tells a handler the token was DPoP-bound and by which key.
#[tokio::test]
async fn the_context_exposes_the_binding() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let route = axum::routing::get(|auth: mcp_oauth2::AuthContext| async move {
        format!(
            "{} {}",
            auth.is_dpop_bound(),
            auth.dpop_thumbprint().unwrap_or("-")
        )
    });
    let resource = serve_route(&issuer, "/api", |l| l, route).await;
    let client = DpopClient::new();
    let token = issuer
        .token()
        .audience(&resource)
        .dpop_bound_to(client.thumbprint())
        .sign();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let text = http
        .get(&resource)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", client.proof("GET", &resource, Some(&token)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, format!("true {}", client.thumbprint()));
    let plain = issuer.token().audience(&resource).sign();
    let text = http
        .get(&resource)
        .header("authorization", format!("Bearer {plain}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "false -");
}

// No token passthrough for proofs either: an admitted request's `DPoP`
// field is taken off before the handler runs, whatever its spelling, with a
// DPoP-bound token, and beside a Bearer token (admitted: a `DPoP` field is
// read only with the `DPoP` scheme). The handler lists the fields it sees.
#[tokio::test]
async fn a_proof_never_reaches_the_handler() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let resource = serve_route(&issuer, "/api", |l| l, seen_headers()).await;
    let client = DpopClient::new();
    let bound = issuer
        .token()
        .audience(&resource)
        .dpop_bound_to(client.thumbprint())
        .sign();
    let plain = issuer.token().audience(&resource).sign();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for (method, scheme, token, field) in [
        ("GET", "DPoP", &bound, "dpop"),
        ("POST", "DPoP", &bound, "DPoP"),
        ("GET", "Bearer", &plain, "DPoP"),
        ("POST", "Bearer", &plain, "dpop"),
    ] {
        let proof = client.proof(
            method,
            &resource,
            (scheme == "DPoP").then_some(token.as_str()),
        );
        let resp = http
            .request(method.parse().unwrap(), &resource)
            .header("authorization", format!("{scheme} {token}"))
            .header(field, proof)
            .header("x-seen", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} {scheme}");
        let seen = resp.text().await.unwrap();
        assert!(seen.contains("x-seen"), "{seen}");
        assert!(!seen.contains("dpop"), "{method} {scheme}: {seen}");
        assert!(!seen.contains("authorization"), "{method} {scheme}: {seen}");
    }
}

// RFC 9449 section 7.1: every refusal of a request made with the `DPoP`
// scheme names its error on the `DPoP` challenge, not only the proof's own
// errors: an expired or wrong-audience token (401 invalid_token), a token
// without the scope (403 insufficient_scope, from a fresh verification and
// from the verified-token cache), a malformed `DPoP` credential (400
// invalid_request). The `Bearer` challenge beside it names no error, as in
// the section's examples. A Bearer request still gets its error on the
// `Bearer` challenge (the control).
#[tokio::test]
async fn every_error_of_a_dpop_request_is_on_the_dpop_challenge() {
    let h = Harness::start(|b| b.required_scopes(["mcp:use"])).await;
    let client = DpopClient::new();
    let bound = |aud: &str, scopes: &[&str], exp: i64| {
        h.issuer
            .token()
            .subject("alice")
            .audience(aud)
            .scopes(scopes.iter().copied())
            .expires_at(exp)
            .dpop_bound_to(client.thumbprint())
            .sign()
    };
    let later = now() + 600;
    let good = bound(&h.resource, &["mcp:use"], later);
    let proof = client.proof("POST", &h.resource, Some(&good));
    assert_eq!(post_dpop(&h, &good, &[&proof]).await.status(), 200);
    let cases = [
        (
            "expired",
            bound(&h.resource, &["mcp:use"], now() - 600),
            401,
            "invalid_token",
        ),
        (
            "wrong audience",
            bound("https://other.example/mcp", &["mcp:use"], later),
            401,
            "invalid_token",
        ),
        (
            "no scope",
            bound(&h.resource, &[], later),
            403,
            "insufficient_scope",
        ),
        // The same token again: the refusal comes from the cache.
        (
            "no scope, cached",
            bound(&h.resource, &[], later),
            403,
            "insufficient_scope",
        ),
    ];
    let mut no_scope = None;
    for (what, token, status, error) in cases {
        let token = match (what, &no_scope) {
            ("no scope, cached", Some(first)) => String::clone(first),
            _ => token,
        };
        if what == "no scope" {
            no_scope = Some(token.clone());
        }
        let proof = client.proof("POST", &h.resource, Some(&token));
        let r = refusal(post_dpop(&h, &token, &[&proof]).await).await;
        assert_eq!(r.status, status, "{what}: {}", r.reason);
        assert_eq!(r.error.as_deref(), Some(error), "{what}");
        assert_eq!(param(&r.dpop, "error"), Some(error), "{what}");
        assert!(param(&r.dpop, "error_description").is_some(), "{what}");
        assert!(param(&r.dpop, "algs").is_some(), "{what}");
        assert!(param(&r.dpop, "resource_metadata").is_some(), "{what}");
        assert!(r.bearer.is_some(), "{what}: Bearer challenge beside");
        assert_eq!(param(&r.bearer, "error"), None, "{what}");
        if status == 403 {
            assert_eq!(param(&r.dpop, "scope"), Some("mcp:use"), "{what}");
        }
    }
    // A malformed DPoP credential (two tokens after the scheme).
    let auth = format!("DPoP {good} {good}");
    let proof = client.proof("POST", &h.resource, Some(&good));
    let r = refusal(
        h.post(&[("authorization", &auth), ("dpop", &proof)], LIST)
            .await,
    )
    .await;
    assert_eq!(
        (r.status, r.error.as_deref()),
        (400, Some("invalid_request"))
    );
    assert_eq!(param(&r.dpop, "error"), Some("invalid_request"));
    assert_eq!(param(&r.bearer, "error"), None);
    // The scheme alone: malformed, as `Bearer` alone (found from outside:
    // read as another scheme, 401 `missing_token`).
    let r = refusal(
        h.post(&[("authorization", "DPoP"), ("dpop", &proof)], LIST)
            .await,
    )
    .await;
    assert_eq!(
        (r.status, r.error.as_deref(), r.reason.as_str()),
        (
            400,
            Some("invalid_request"),
            "malformed_authorization_header"
        )
    );
    assert_eq!(param(&r.dpop, "error"), Some("invalid_request"));
    assert_eq!(param(&r.bearer, "error"), None);
    // A token in the query of a DPoP request (found from outside: named
    // on the `Bearer` challenge).
    let proof = client.proof("POST", &h.resource, Some(&good));
    let response = reqwest::Client::new()
        .post(format!("{}?access_token={good}", h.resource))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("DPoP {good}"))
        .header("dpop", &proof)
        .body(LIST)
        .send()
        .await
        .unwrap();
    let r = refusal(response).await;
    assert_eq!(
        (r.status, r.error.as_deref(), r.reason.as_str()),
        (400, Some("invalid_request"), "token_in_query")
    );
    assert_eq!(param(&r.dpop, "error"), Some("invalid_request"));
    assert_eq!(param(&r.bearer, "error"), None);
    // The control: a Bearer request's error stays on the Bearer challenge.
    let unbound = h.issuer.token().subject("bob").audience(&h.resource).sign();
    let r = refusal(
        h.post(&[("authorization", &format!("Bearer {unbound}"))], LIST)
            .await,
    )
    .await;
    assert_eq!(
        (r.status, r.error.as_deref()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(param(&r.bearer, "error"), Some("insufficient_scope"));
    assert_eq!(param(&r.dpop, "error"), None);
}

// RFC 9449 section 7.1 for the late step-up: a handler that asks for more
// scopes mid-call (the reference contract's export_notes) answers a DPoP
// caller with 403 insufficient_scope on the `DPoP` challenge, naming every
// scope the call needs.
#[tokio::test]
async fn a_late_step_up_of_a_dpop_caller_is_on_the_dpop_challenge() {
    let n = support::notes::Notes::start().await;
    let client = DpopClient::new();
    let token = n
        .issuer
        .token()
        .subject("alice")
        .audience(&n.resource)
        .scopes(["notes:read"])
        .dpop_bound_to(client.thumbprint())
        .sign();
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "export_notes", "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        }
    });
    let proof = client.proof("POST", &n.resource, Some(&token));
    let resp = reqwest::Client::new()
        .post(&n.resource)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "export_notes")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let r = refusal(resp).await;
    assert_eq!(
        (r.status, r.error.as_deref()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(param(&r.dpop, "error"), Some("insufficient_scope"));
    assert_eq!(param(&r.dpop, "scope"), Some("notes:read notes:export"));
    assert_eq!(param(&r.bearer, "error"), None);
}

// `AuthLayer::authenticate` (the layer's API for a stack of one's own)
// answers a token its verifier already trusts from the cache, as the
// server's fast path does, without reading the claims again; the rules are
// the same: a bound token in the cache, sent as Bearer, is still
// `sender_constrained_token`, and a plain one is admitted with its hit
// counted.
#[tokio::test]
async fn authenticate_answers_known_tokens_from_the_cache_with_the_same_rules() {
    let h = Harness::start(|b| b).await;
    let (_listener, resource, config) = support::loopback::bind_with_config(&h.issuer, |b| b).await;
    let verifier = mcp_oauth2::JwtVerifier::new(&config).unwrap();
    let layer = mcp_oauth2::AuthLayer::with_verifier(config, verifier.clone());
    let bearer = |token: &str| {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    };
    let issue = |bound: Option<&DpopClient>| {
        let token = h.issuer.token().subject("alice").audience(&resource);
        match bound {
            Some(client) => token.dpop_bound_to(client.thumbprint()).sign(),
            None => token.sign(),
        }
    };
    let plain = issue(None);
    for _ in 0..3 {
        let ctx = layer.authenticate(&bearer(&plain)).await.unwrap();
        assert_eq!(ctx.subject(), "alice");
    }
    assert_eq!(layer.metrics().snapshot().cache_hits, 2);

    let client = DpopClient::new();
    let bound = issue(Some(&client));
    // Verified once (as a DPoP request would have it), so it is cached.
    let ctx = mcp_oauth2::TokenVerifier::verify(&verifier, mcp_oauth2::BearerToken::new(&bound))
        .await
        .unwrap();
    assert!(ctx.is_dpop_bound());
    for _ in 0..2 {
        let err = layer.authenticate(&bearer(&bound)).await.unwrap_err();
        assert_eq!(
            err.kind(),
            mcp_oauth2::AuthErrorKind::SenderConstrainedToken
        );
    }
    assert_eq!(layer.metrics().snapshot().cache_hits, 4);
}

// Found from outside: a proof whose `jwk` is an Ed25519 point of small
// order passed with a signature made without any key (`R` = the identity,
// `S` = 0), so a token bound to such a key was bound to nothing. The key
// is refused (`dpop_invalid_key`) before anything is verified with it.
#[tokio::test]
async fn a_proof_key_anyone_can_sign_for_is_refused() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let sha256 = |bytes: &[u8]| {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
            .as_ref()
            .to_vec()
    };
    let h = Harness::start(|b| b).await;
    let uri = h.resource.as_str();
    let mut order_two = [0xffu8; 32]; // p - 1: the point of order 2.
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for point in [identity, order_two] {
        let x = b64(&point);
        // RFC 7638: the thumbprint of the required members, in order.
        let jkt = b64(&sha256(
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes(),
        ));
        let token = h
            .issuer
            .token()
            .subject("mallory")
            .audience(&h.resource)
            .dpop_bound_to(jkt)
            .sign();
        // R = the point itself, S = 0: valid whenever [k]A = -A, which for
        // the identity is always and for the point of order 2 is half the
        // messages; a few `jti`s make the forgery pass the backend's check.
        for jti in 0..8 {
            let header = format!(
                r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}}}"#
            );
            let claims = format!(
                r#"{{"jti":"forged-{jti}-{x}","htm":"POST","htu":"{uri}","iat":{},"ath":"{}"}}"#,
                now(),
                b64(&sha256(token.as_bytes()))
            );
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&point);
            let proof = format!(
                "{}.{}.{}",
                b64(header.as_bytes()),
                b64(claims.as_bytes()),
                b64(&signature)
            );
            let r = refusal(post_dpop(&h, &token, &[&proof]).await).await;
            assert_proof_refused(&r, "dpop_invalid_key");
        }
    }
}
