//! JWK Set parsing (RFC 7517 section 5) through the public
//! `JwtVerifier::with_static_jwks`: any bytes are either refused or give a
//! ready verifier that can be asked about a token, and nothing panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_oauth2::{AuthConfig, BearerToken, JwtVerifier, TokenVerifier};

struct Fixture {
    rt: tokio::runtime::Runtime,
    config: AuthConfig,
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        rt: tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        config: AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://mcp.example.com/mcp")
            .build()
            .unwrap(),
        token: token(),
    })
}

/// A well-formed, current token for the fixture's issuer and resource with
/// a made-up signature of RSA length, so the key lookup and signature paths
/// run.
fn token() -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = r#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#;
    let claims = format!(
        r#"{{"iss":"https://as.example","aud":"https://mcp.example.com/mcp","sub":"a","iat":{now},"exp":{}}}"#,
        now + 3600
    );
    format!(
        "{}.{}.{}",
        B64.encode(header),
        B64.encode(claims),
        B64.encode([7u8; 256])
    )
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(verifier) = JwtVerifier::with_static_jwks(&f.config, data) {
        assert!(verifier.is_ready());
        let result = f.rt.block_on(verifier.verify(BearerToken::new(&f.token)));
        assert!(result.is_err());
    }
});
