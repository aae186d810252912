//! DPoP proof parsing (RFC 9449 section 4.3) through the public
//! `AuthLayer::authenticate_request`: never panics on any `DPoP` header, and
//! admits a request only with a proof made by the key the token is bound to.
//!
//! Input: arbitrary bytes used as the `DPoP` header; or, after a leading
//! `0x00`, a JOSE header and claims (separated by `0xff`) signed by the
//! bound key, so the checks after the signature see hostile JSON too.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_oauth2::testing::DpopClient;
use mcp_oauth2::{AuthConfig, AuthContext, AuthLayer, BearerToken, TokenVerifier, VerifyFuture};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const TOKEN: &str = "fuzz-token";

/// Every token is valid and bound to the fixture's key.
struct Bound(String);

impl TokenVerifier for Bound {
    fn verify<'a>(&'a self, _token: BearerToken<'a>) -> VerifyFuture<'a> {
        let ctx = AuthContext::builder("https://as.example", "fuzz")
            .dpop_thumbprint(self.0.clone())
            .build();
        Box::pin(async move { Ok(ctx) })
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    layer: AuthLayer,
    client: DpopClient,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let client = DpopClient::new();
        let config = AuthConfig::builder()
            .issuer("https://as.example")
            .resource(RESOURCE)
            .build()
            .unwrap();
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            layer: AuthLayer::with_verifier(config, Bound(client.thumbprint())),
            client,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let proof = match data.split_first() {
        Some((0, rest)) => {
            let mut parts = rest.splitn(2, |&b| b == 0xff);
            let header = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let claims = String::from_utf8_lossy(parts.next().unwrap_or_default());
            f.client.sign_raw(&header, &claims)
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    let Ok(value) = http::HeaderValue::from_str(&proof) else {
        return;
    };
    let (mut parts, ()) = http::Request::post(RESOURCE).body(()).unwrap().into_parts();
    parts.headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("DPoP {TOKEN}")).unwrap(),
    );
    parts.headers.insert("dpop", value);
    if let Ok(ctx) = f.rt.block_on(f.layer.authenticate_request(&parts)) {
        // Only a proof signed by the bound key can pass.
        assert!(data.first() == Some(&0), "an unsigned input was admitted");
        assert_eq!(ctx.dpop_thumbprint(), Some(f.client.thumbprint().as_str()));
    }
});
