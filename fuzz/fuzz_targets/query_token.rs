//! The URI query check (RFC 6750 sections 2 and 2.3) through the public
//! `AuthLayer::authenticate_request`: never panics, refuses a query naming
//! `access_token` (in any spelling) with `token_in_query` before the
//! header's token reaches the verifier, and agrees with an independent
//! model on which queries those are.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use mcp_oauth2::{
    AuthConfig, AuthError, AuthErrorKind, AuthLayer, BearerToken, TokenVerifier, VerifyFuture,
};

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

/// Parameters split on `&` and `;`, the name before the first `=`,
/// percent-decoded with `+` as a space, read as PHP reads it, compared
/// ignoring ASCII case.
fn model(query: &[u8]) -> bool {
    query.split(|&b| b == b'&' || b == b';').any(|pair| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < name.len() {
            match (name[i], hex(name.get(i + 1)), hex(name.get(i + 2))) {
                (b'%', Some(hi), Some(lo)) => {
                    decoded.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                (b'+', _, _) => {
                    decoded.push(b' ');
                    i += 1;
                }
                (b, _, _) => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        // As PHP reads names: trimmed, a `[...]` subscript cut off, `.`,
        // a space and a lone `[` read as `_`.
        let trimmed = decoded.trim_ascii();
        let mut php = Vec::new();
        for (i, &b) in trimmed.iter().enumerate() {
            if b == b'[' && trimmed[i + 1..].contains(&b']') {
                break;
            }
            php.push(if matches!(b, b'[' | b'.' | b' ') { b'_' } else { b });
        }
        php.eq_ignore_ascii_case(b"access_token")
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = http::Request::post(format!("/mcp?{query}"))
        .header(http::header::AUTHORIZATION, "Bearer abc")
        .body(())
    else {
        return;
    };
    let (parts, ()) = request.into_parts();
    // The query as the layer sees it (the URI parser may stop early).
    let seen = parts.uri.query().unwrap_or_default().as_bytes().to_vec();
    *f.recorder.0.lock().unwrap() = None;
    let kind = f
        .rt
        .block_on(f.layer.authenticate_request(&parts))
        .err()
        .map(|e| e.kind());
    let handed = f.recorder.0.lock().unwrap().take();
    if model(&seen) {
        assert_eq!(kind, Some(AuthErrorKind::TokenInQuery));
        assert_eq!(handed, None);
    } else {
        assert_eq!(kind, Some(AuthErrorKind::Rejected));
        assert_eq!(handed.as_deref(), Some("abc"));
    }
});
