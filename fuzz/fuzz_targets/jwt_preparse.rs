//! Token pre-parsing and header/claims policy through the public
//! `JwtVerifier` (with a fixed key set: no network). Never panics, never
//! accepts a token it was not signed for, and every refusal is an
//! `invalid_token` kind.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mcp_oauth2::{AuthConfig, BearerToken, ErrorCode, JwtVerifier, TokenVerifier};

/// The public key of RFC 7515 appendix A.2 as a JWK Set.
fn jwks() -> String {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../spec-fixtures/rfc7515-a2-rs256.json")).unwrap();
    let mut jwk = fixture["jwk"].clone();
    jwk["kid"] = "k1".into();
    serde_json::json!({ "keys": [jwk] }).to_string()
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    verifier: JwtVerifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            verifier: JwtVerifier::with_static_jwks(&config, jwks().as_bytes()).unwrap(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        // The input is the token text.
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_owned(),
            Err(_) => return,
        }
    } else {
        // The input is header JSON, claims JSON and signature bytes,
        // separated by 0xFF; they are encoded here, so the fuzzer works on
        // the JSON and the policy rather than on base64.
        let mut parts = rest.splitn(3, |&b| b == 0xff);
        let header = parts.next().unwrap_or_default();
        let claims = parts.next().unwrap_or_default();
        let signature = parts.next().unwrap_or_default();
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(signature)
        )
    };
    let result = f.rt.block_on(f.verifier.verify(BearerToken::new(&token)));
    let err = result.expect_err("a token no key signed was accepted");
    assert_eq!(err.kind().error_code(), Some(ErrorCode::InvalidToken));
});
