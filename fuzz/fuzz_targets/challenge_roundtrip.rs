//! Challenge building (RFC 6750 section 3, RFC 9728 section 5.1) round-trips
//! through the challenge parser: any parameter values make a valid header
//! value that parses back to them, minus what a quoted-string cannot carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_oauth2::ErrorCode;
use mcp_oauth2::testing::{bearer_challenge, parse_bearer_challenge};

fn sanitized(s: &str) -> String {
    s.chars()
        .filter(|c| *c == ' ' || *c == '\t' || c.is_ascii_graphic())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let error = match selector % 4 {
        0 => None,
        1 => Some(ErrorCode::InvalidRequest),
        2 => Some(ErrorCode::InvalidToken),
        _ => Some(ErrorCode::InsufficientScope),
    };
    let mut parts = rest.split(|&b| b == 0xff).map(String::from_utf8_lossy);
    let scope = parts.next().unwrap_or_default();
    let metadata = parts.next().unwrap_or_default();
    let description = parts.next();

    let built = bearer_challenge(error, &scope, &metadata, description.as_deref());
    assert!(http::HeaderValue::from_str(&built).is_ok(), "{built:?}");
    let parsed = parse_bearer_challenge(&built).expect("our own challenge parses");

    let mut expected: Vec<(String, String)> = Vec::new();
    if let Some(code) = error {
        expected.push(("error".into(), code.as_str().into()));
    } else {
        expected.push(("resource_metadata".into(), sanitized(&metadata)));
    }
    if !scope.is_empty() {
        expected.push(("scope".into(), sanitized(&scope)));
    }
    if error.is_some() {
        expected.push(("resource_metadata".into(), sanitized(&metadata)));
    }
    if let Some(d) = &description {
        expected.push(("error_description".into(), sanitized(d)));
    }
    assert_eq!(parsed, expected);
});
