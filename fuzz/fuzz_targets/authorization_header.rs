//! Authorization header parsing (RFC 6750 section 2.1) through the public
//! `AuthLayer::authenticate`: never panics, and agrees with an independent
//! model on which token (if any) reaches the verifier.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use mcp_oauth2::{
    AuthConfig, AuthError, AuthErrorKind, AuthLayer, BearerToken, TokenVerifier, VerifyFuture,
};

const MAX_TOKEN: usize = 64;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Option<String>>>);

impl TokenVerifier for Recorder {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        *self.0.lock().unwrap() = Some(token.as_str().to_owned());
        Box::pin(async { Err(AuthError::new(AuthErrorKind::Rejected)) })
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    layer: AuthLayer,
    recorder: Recorder,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let recorder = Recorder::default();
        let config = AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://mcp.example.com/mcp")
            .max_token_bytes(MAX_TOKEN)
            .build()
            .unwrap();
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            layer: AuthLayer::with_verifier(config, recorder.clone()),
            recorder,
        }
    })
}

/// RFC 6750 section 2.1, written independently of the crate.
fn model(value: &[u8]) -> Result<String, AuthErrorKind> {
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &b""[..]),
    };
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    // RFC 9449 section 7.1: `DPoP <token>` has the same token syntax and
    // needs a `DPoP` proof header (none here).
    let dpop = scheme.eq_ignore_ascii_case(b"DPoP") && !rest.is_empty();
    if !scheme.eq_ignore_ascii_case(b"Bearer") && !dpop {
        return if !scheme.is_empty() && scheme.iter().all(|&b| tchar(b)) {
            Err(AuthErrorKind::MissingToken)
        } else {
            Err(AuthErrorKind::MalformedAuthorizationHeader)
        };
    }
    let token = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
    if token.is_empty() {
        return Err(AuthErrorKind::MalformedAuthorizationHeader);
    }
    if token.len() > MAX_TOKEN {
        return Err(AuthErrorKind::TokenTooLarge);
    }
    let body = &token[..token.len() - token.iter().rev().take_while(|&&b| b == b'=').count()];
    if !body.is_empty()
        && body
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        if dpop {
            return Err(AuthErrorKind::DpopProofMissing);
        }
        Ok(String::from_utf8(token.to_vec()).unwrap())
    } else {
        Err(AuthErrorKind::MalformedAuthorizationHeader)
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // 0xFF separates several header values (it can never be in a valid one
    // we care about: it is accepted as obs-text, and then refused by us).
    let values: Vec<&[u8]> = data.split(|&b| b == 0xff).take(3).collect();
    let mut headers = http::HeaderMap::new();
    for v in &values {
        match http::HeaderValue::from_bytes(v) {
            Ok(h) => {
                headers.append(http::header::AUTHORIZATION, h);
            }
            Err(_) => return,
        }
    }
    *f.recorder.0.lock().unwrap() = None;
    let result = f.rt.block_on(f.layer.authenticate(&headers));
    let handed = f.recorder.0.lock().unwrap().take();
    assert!(
        result.is_err(),
        "authenticated without a verifier's consent"
    );
    let kind = result.err().map(|e| e.kind());
    match values.as_slice() {
        [] => unreachable!("split yields at least one item"),
        [one] => match model(one) {
            Ok(token) => {
                assert_eq!(handed.as_deref(), Some(token.as_str()));
                assert_eq!(kind, Some(AuthErrorKind::Rejected));
            }
            Err(expected) => {
                assert_eq!(handed, None);
                assert_eq!(kind, Some(expected));
            }
        },
        _ => {
            assert_eq!(handed, None);
            assert_eq!(kind, Some(AuthErrorKind::MultipleAuthorizationHeaders));
        }
    }
});
