//! Request parameters of the authorization and token endpoints: the
//! `application/x-www-form-urlencoded` format of RFC 6749 appendix B, read
//! from a query string or a request body, and HTTP Basic client credentials
//! (RFC 6749 section 2.3.1).

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The parameter that may be repeated (RFC 8707 section 2).
const RESOURCE: &str = "resource";

/// Parameters of one request: each at most once, except `resource`.
#[derive(Debug, Default)]
pub(super) struct Params {
    values: HashMap<String, String>,
    resources: Vec<String>,
}

/// A parameter other than `resource` appeared twice (RFC 6749 section 3.1:
/// "Request and response parameters MUST NOT be included more than once").
#[derive(Debug)]
pub(super) struct RepeatedParameter;

impl Params {
    /// Parses `application/x-www-form-urlencoded` input. Parameters sent
    /// without a value are treated as omitted (RFC 6749 section 3.1).
    pub(super) fn parse(input: &[u8]) -> Result<Params, RepeatedParameter> {
        let mut params = Params::default();
        for (name, value) in url::form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if name == RESOURCE {
                params.resources.push(value.into_owned());
            } else if params
                .values
                .insert(name.into_owned(), value.into_owned())
                .is_some()
            {
                return Err(RepeatedParameter);
            }
        }
        Ok(params)
    }

    /// The value of `name`, if present and non-empty.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every `resource` value, in request order (RFC 8707 section 2).
    pub(super) fn resources(&self) -> &[String] {
        &self.resources
    }
}

/// Whether the request's `Content-Type` is `essence` (parameters such as
/// `charset` ignored, case-insensitive).
pub(super) fn has_content_type(headers: &HeaderMap, essence: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case(essence))
}

/// What the `Authorization` header of a token request says.
#[derive(Debug)]
pub(super) enum BasicCredentials {
    /// No `Authorization` header.
    Absent,
    /// `Basic` with a client identifier and secret.
    Present { client_id: String, secret: String },
    /// Another scheme, or a `Basic` value that does not decode.
    Malformed,
}

/// Reads HTTP Basic client credentials (RFC 6749 section 2.3.1: both parts
/// are form-urlencoded before being joined and base64-encoded).
pub(super) fn basic_credentials(headers: &HeaderMap) -> BasicCredentials {
    match headers.get(header::AUTHORIZATION) {
        None => BasicCredentials::Absent,
        Some(value) => decode_basic(value)
            .map_or(BasicCredentials::Malformed, |(client_id, secret)| {
                BasicCredentials::Present { client_id, secret }
            }),
    }
}

fn decode_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (client_id, secret) = decoded.split_once(':')?;
    let client_id = form_decode(client_id)?;
    if client_id.is_empty() {
        return None;
    }
    Some((client_id, form_decode(secret)?))
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a
/// space, `%XX` a byte. A `%` not followed by two hex digits is kept as is;
/// the result must be UTF-8.
fn form_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                match hex {
                    Some(decoded) => {
                        out.push(decoded);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_except_resource() {
        // RFC 6749 section 3.1; RFC 8707 section 2 allows several `resource`.
        let params = Params::parse(b"a=1&resource=x&resource=y&b=&b=").expect("parse");
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None, "empty values are omitted");
        assert_eq!(params.resources(), ["x", "y"]);
        assert!(Params::parse(b"a=1&a=2").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // RFC 6749 section 2.3.1.
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20client:s%3Ac+r%zz");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("header"),
        );
        match basic_credentials(&headers) {
            BasicCredentials::Present { client_id, secret } => {
                assert_eq!(client_id, "my client");
                assert_eq!(secret, "s:c r%zz");
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "Bearer abc",
            "Basic !!!",
            "Basic bm9jb2xvbg==",
            "Basic OnNlY3JldA==",
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert!(matches!(
                basic_credentials(&headers),
                BasicCredentials::Malformed
            ));
        }
        headers.remove(header::AUTHORIZATION);
        assert!(matches!(
            basic_credentials(&headers),
            BasicCredentials::Absent
        ));
    }

    proptest::proptest! {
        /// Hostile input never panics the parsers of the request path.
        #[test]
        fn parsers_never_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = Params::parse(&input);
            let _ = form_decode(&String::from_utf8_lossy(&input));
            let mut basic = b"Basic ".to_vec();
            basic.extend_from_slice(STANDARD.encode(&input).as_bytes());
            for value in [input.as_slice(), basic.as_slice()] {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::AUTHORIZATION, value);
                    let _ = basic_credentials(&headers);
                }
            }
        }
    }
}
