//! Reading the bearer token from the `Authorization` header (RFC 6750 section 2.1).
//!
//! Only the header is read: tokens in the query string or a form body are never
//! accepted (RFC 6750 sections 2.2 and 2.3 are not supported, as OAuth 2.1
//! section 5.2 and the MCP specification require). A form body is not looked
//! at; an `access_token` query parameter is refused with `invalid_request`
//! ([`query_names_access_token`]), as the token in it has already leaked.

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::{AuthError, AuthErrorKind};

/// Default cap on the length of a bearer token, in bytes.
pub(crate) const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A bearer token borrowed from a request. Its `Debug` output is redacted, so
/// it can sit in structs that are logged without leaking the credential.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BearerToken<'a>(&'a str);

impl<'a> BearerToken<'a> {
    /// Wrap a token string (for custom verifiers and tests).
    pub fn new(token: &'a str) -> Self {
        Self(token)
    }

    /// The token text. Handle with care: never log it.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for BearerToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken([redacted; {} bytes])", self.0.len())
    }
}

/// The outcome of reading credentials from a request.
#[derive(Debug)]
pub(crate) enum Credentials<'a> {
    /// No `Authorization` header, or one with a scheme other than Bearer.
    None,
    /// A syntactically valid bearer token.
    Bearer(BearerToken<'a>),
    /// `Authorization: DPoP <token>` with exactly one `DPoP` proof header
    /// (RFC 9449 section 7.1), when DPoP is read.
    Dpop {
        /// The access token.
        token: BearerToken<'a>,
        /// The proof JWT, not yet checked.
        proof: &'a str,
    },
}

/// Whether a URI query names an `access_token` parameter (RFC 6750
/// section 2.3), which is refused rather than ignored: a token in a URL
/// leaks into logs and histories, and a request that also sends one in the
/// header uses two methods (RFC 6750 section 2).
///
/// Parameters are separated by `&` or `;`; a name is what comes before the
/// first `=`, compared after percent-decoding (`access%5Ftoken`) and `+` as
/// a space, ignoring ASCII case (some frameworks match names that way),
/// and as PHP reads names ([`php_name`]: `access_token[]`,
/// `access.token`, `access token`; found from outside). Every parameter is
/// looked at, so a repeated one is found too.
pub(crate) fn query_names_access_token(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        php_name(&percent_decoded(name.as_bytes())).eq_ignore_ascii_case(b"access_token")
    })
}

/// A parameter name as PHP reads it (`$_GET`, `parse_str`), which Rails
/// and others follow for subscripts: surrounding whitespace dropped, a
/// `[...]` subscript cut off, and `.`, a space and a `[` without its `]`
/// read as `_` (found from outside: `access.token`, `access token` and
/// `access[token` all reach a PHP application as `access_token`).
fn php_name(decoded: &[u8]) -> Vec<u8> {
    let trimmed = decoded.trim_ascii();
    let mut name = Vec::with_capacity(trimmed.len());
    for (i, &b) in trimmed.iter().enumerate() {
        match b {
            b'[' if trimmed
                .get(i + 1..)
                .is_some_and(|rest| rest.contains(&b']')) =>
            {
                break;
            }
            b'[' | b'.' | b' ' => name.push(b'_'),
            _ => name.push(b),
        }
    }
    name
}

/// `raw` percent-decoded (RFC 3986 section 2.1, `+` as a space; a `%` not
/// followed by two hex digits kept as it is).
fn percent_decoded(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((byte, tail)) = decode_one(rest) {
        out.push(byte);
        rest = tail;
    }
    out
}

/// The first byte of `raw` decoded (a `%XX` escape, `+` as a space, else
/// the byte itself) and what follows it; `None` at the end.
fn decode_one(raw: &[u8]) -> Option<(u8, &[u8])> {
    let (&b, tail) = raw.split_first()?;
    Some(match (b, tail) {
        (b'%', [hi, lo, after @ ..]) => match (hex_value(*hi), hex_value(*lo)) {
            (Some(hi), Some(lo)) => ((hi << 4) | lo, after),
            _ => (b, tail),
        },
        (b'+', _) => (b' ', tail),
        _ => (b, tail),
    })
}

/// Whether `uri`'s query names an `access_token` parameter
/// ([`query_names_access_token`]); a URI without a query (every usual
/// request) is not scanned.
pub(crate) fn uri_names_access_token(uri: &http::Uri) -> bool {
    uri.query().is_some_and(query_names_access_token)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The `DPoP` proof header (RFC 9449 section 4.1).
pub(crate) const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

/// Reads the credentials of a request: [`bearer_of`], and with `dpop`
/// also the `DPoP` scheme (case-insensitive) with the same token syntax and
/// exactly one `DPoP` header (none: `dpop_proof_missing`; several:
/// `multiple_dpop_proofs`; not visible ASCII: `dpop_proof_malformed`).
/// Without `dpop`, a `DPoP` scheme is another scheme: no credentials.
///
/// `known` tells whether some bytes are a token already judged well formed
/// (the connection's last one: the layer passes
/// `verify::token_cache::is_last_well_formed_token`); such a token skips
/// the scan of its bytes, with the same answer.
pub(crate) fn read_credentials(
    headers: &HeaderMap,
    max_len: usize,
    dpop: bool,
    known: Known,
) -> Result<Credentials<'_>, AuthError> {
    // One lookup of `Authorization` for both schemes (the hot path).
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (first, second) = (values.next(), values.next());
    if dpop && let Some(value) = first {
        let bytes = value.as_bytes();
        if is_dpop_scheme(bytes) {
            // RFC 9449 section 7.1: every refusal of a `DPoP` request names
            // its error on the `DPoP` challenge, a tab after the scheme
            // included (malformed: RFC 9110 section 11.4 wants one space;
            // found from outside: named on the `Bearer` challenge).
            // Two headers are refused first, whatever they hold (RFC 6750
            // section 2.1; found by the property test in CI).
            let read = if second.is_some() {
                Err(AuthErrorKind::MultipleAuthorizationHeaders.into())
            } else if bytes.get(4) == Some(&b'\t') {
                Err(AuthErrorKind::MalformedAuthorizationHeader.into())
            } else {
                read_dpop(headers, bytes, max_len, known)
            };
            return read.map_err(|err| err.on_dpop_scheme(true));
        }
    }
    bearer_of(first, second, max_len, known)
}

/// Whether an `Authorization` value is of the `DPoP` scheme (any case),
/// followed by a space or a tab, or alone: the scheme alone
/// (`Authorization: DPoP`) is the scheme without a token, malformed as
/// `Bearer` alone is (found from outside: it was read as another scheme,
/// 401 `missing_token`).
pub(crate) fn is_dpop_scheme(bytes: &[u8]) -> bool {
    bytes
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"dpop"))
        && matches!(bytes.get(4), Some(b' ' | b'\t') | None)
}

/// Whether some bytes are a token already judged well formed (see
/// [`read_credentials`]).
pub(crate) type Known = fn(&[u8]) -> bool;

/// The `DPoP` scheme's credentials: `bytes` is the only `Authorization`
/// value.
fn read_dpop<'h>(
    headers: &'h HeaderMap,
    bytes: &'h [u8],
    max_len: usize,
    known: Known,
) -> Result<Credentials<'h>, AuthError> {
    let token = read_token(bytes.get(5..).unwrap_or_default(), max_len, known)?;
    let mut proofs = headers.get_all(DPOP).iter();
    let proof = proofs
        .next()
        .ok_or_else(|| AuthError::new(AuthErrorKind::DpopProofMissing))?;
    if proofs.next().is_some() {
        return Err(AuthErrorKind::MultipleDpopProofs.into());
    }
    let proof = proof
        .to_str()
        .map_err(|_| AuthError::new(AuthErrorKind::DpopProofMalformed))?;
    Ok(Credentials::Dpop { token, proof })
}

/// [`bearer_of`] on `headers` (the tests' entry point).
#[cfg(test)]
pub(crate) fn read_bearer(
    headers: &HeaderMap,
    max_len: usize,
) -> Result<Credentials<'_>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    bearer_of(values.next(), values.next(), max_len, |_| false)
}

/// Reads the bearer token from a request's first two `Authorization`
/// values.
///
/// - no `Authorization` header, or another scheme (`Basic`, `DPoP`, ...):
///   [`Credentials::None`], answered with a plain challenge;
/// - several `Authorization` headers: `invalid_request`;
/// - `Bearer` (scheme case-insensitive, RFC 9110 section 11.1) followed by one
///   or more spaces and a single `b64token`: the token; anything else,
///   including a second token or a non-ASCII byte: `invalid_request`;
/// - a token longer than `max_len`: `invalid_token` (`token_too_large`),
///   decided before anything else looks at it.
fn bearer_of<'h>(
    first: Option<&'h http::HeaderValue>,
    second: Option<&'h http::HeaderValue>,
    max_len: usize,
    known: Known,
) -> Result<Credentials<'h>, AuthError> {
    let Some(value) = first else {
        return Ok(Credentials::None);
    };
    if second.is_some() {
        return Err(AuthErrorKind::MultipleAuthorizationHeaders.into());
    }
    let bytes = value.as_bytes();
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => bytes.split_at_checked(i).unwrap_or((bytes, &b""[..])),
        None => (bytes, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // RFC 6750 section 3.1: a request without Bearer credentials gets a
        // challenge without an error code. The scheme must still be a token
        // (RFC 9110 section 11.1), or the header is malformed.
        if scheme.is_empty() || !scheme.iter().all(|&b| is_tchar(b)) {
            return Err(AuthErrorKind::MalformedAuthorizationHeader.into());
        }
        return Ok(Credentials::None);
    }
    read_token(rest, max_len, known).map(Credentials::Bearer)
}

/// The `b64token` after the scheme (RFC 6750 section 2.1), after one or
/// more spaces.
fn read_token(rest: &[u8], max_len: usize, known: Known) -> Result<BearerToken<'_>, AuthError> {
    let token = trim_leading_spaces(rest);
    if token.is_empty() {
        return Err(AuthErrorKind::MalformedAuthorizationHeader.into());
    }
    if token.len() > max_len {
        return Err(AuthErrorKind::TokenTooLarge.into());
    }
    // A token already judged (the connection's last) is not scanned again.
    if !known(token) && !is_b64token(token) {
        return Err(AuthErrorKind::MalformedAuthorizationHeader.into());
    }
    // Safe: is_b64token accepts ASCII only.
    let token = std::str::from_utf8(token)
        .map_err(|_| AuthError::new(AuthErrorKind::MalformedAuthorizationHeader))?;
    Ok(BearerToken(token))
}

fn trim_leading_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
/// (RFC 6750 section 2.1).
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    // Every request pays this over the whole token: a branch-free test per
    // byte folded without an early exit, which the compiler vectorizes.
    body_len > 0
        && token
            .get(..body_len)
            .unwrap_or_default()
            .iter()
            .fold(true, |ok, &b| ok & is_b64token_char(b))
}

/// ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", without branches.
fn is_b64token_char(b: u8) -> bool {
    // `| 0x20` maps exactly the ASCII letters onto `a..=z`.
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// RFC 9110 section 5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    // RFC 6750 section 2.3: the parameter is found however it is spelled.
    #[test]
    fn query_access_token_is_found_in_every_spelling() {
        for query in [
            "access_token=x",
            "access_token",
            "access_token=",
            "a=1&access_token=x",
            "a=1;access_token=x",
            "access%5Ftoken=x",
            "access%5ftoken=x",
            "%61%63cess_token=x",
            "ACCESS_TOKEN=x",
            "access_token=x&access_token=y",
            "access_token[]=x",
            "access_token[0]=x",
            "access_token[a][b]=x",
            "access_token%5B%5D=x",
            "access_token%20=x",
            "access_token+=x",
            "+access_token=x",
            "%09access_token=x",
            "access.token=x",
            "access+token=x",
            "access%20token=x",
            "access[token=x",
            "access%5Btoken=x",
        ] {
            assert!(query_names_access_token(query), "{query}");
        }
        for query in [
            "",
            "x=access_token",
            "my_access_token=x",
            "access_token_hint=x",
            "access_toke=x",
            "access%5token=x",
            "access%255Ftoken=x",
            "access++token=x",
            "%",
            "access_token%",
            "access_token_[]=x",
            "[access_token]=x",
            "x[access_token]=y",
        ] {
            assert!(!query_names_access_token(query), "{query}");
        }
    }

    fn read(values: &[&[u8]]) -> Result<Option<String>, AuthErrorKind> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        match read_bearer(&headers, 64) {
            Ok(Credentials::None) => Ok(None),
            Ok(Credentials::Bearer(t)) => Ok(Some(t.as_str().to_owned())),
            Ok(Credentials::Dpop { .. }) => unreachable!("read_bearer never reads DPoP"),
            Err(e) => Err(e.kind()),
        }
    }

    // RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token
    #[test]
    fn accepts_bearer_case_insensitively() {
        assert_eq!(
            read(&[b"Bearer abc.def-ghi_~+/=="]),
            Ok(Some("abc.def-ghi_~+/==".into()))
        );
        assert_eq!(read(&[b"bearer abc"]), Ok(Some("abc".into())));
        assert_eq!(read(&[b"BEARER   abc"]), Ok(Some("abc".into())));
    }

    // RFC 6750 section 3.1: no credentials -> challenge without error code.
    #[test]
    fn other_schemes_and_absence_are_no_credentials() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[b"Basic dXNlcjpwYXNz"]), Ok(None));
        assert_eq!(read(&[b"DPoP abc"]), Ok(None));
    }

    #[test]
    fn malformed_headers_are_invalid_request() {
        use AuthErrorKind::*;
        assert_eq!(read(&[b"Bearer"]), Err(MalformedAuthorizationHeader));
        assert_eq!(read(&[b"Bearer "]), Err(MalformedAuthorizationHeader));
        assert_eq!(read(&[b"Bearer a b"]), Err(MalformedAuthorizationHeader));
        assert_eq!(read(&[b"Bearer a,b"]), Err(MalformedAuthorizationHeader));
        assert_eq!(read(&[b"Bearer ===="]), Err(MalformedAuthorizationHeader));
        assert_eq!(read(&[b"Bearer a=b"]), Err(MalformedAuthorizationHeader));
        assert_eq!(
            read(&[b"Bearer \xc3\xa9t\xc3\xa9"]),
            Err(MalformedAuthorizationHeader)
        );
        assert_eq!(read(&[b"Bearer a\tb"]), Err(MalformedAuthorizationHeader));
        assert_eq!(read(&[b"Bear\"er abc"]), Err(MalformedAuthorizationHeader));
        assert_eq!(read(&[b" Bearer abc"]), Err(MalformedAuthorizationHeader));
        assert_eq!(
            read(&[b"Bearer a", b"Bearer b"]),
            Err(MultipleAuthorizationHeaders)
        );
    }

    #[test]
    fn oversized_token_is_rejected_before_parsing() {
        let long = format!("Bearer {}", "a".repeat(65));
        assert_eq!(read(&[long.as_bytes()]), Err(AuthErrorKind::TokenTooLarge));
        let ok = format!("Bearer {}", "a".repeat(64));
        assert!(read(&[ok.as_bytes()]).is_ok());
    }

    // RFC 6750 section 2.1: the branch-free classifier agrees with the
    // grammar on every byte.
    #[test]
    fn b64token_chars_exactly() {
        for b in 0..=u8::MAX {
            let grammar =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_char(b), grammar, "byte {b:#04x}");
        }
        assert!(is_b64token(b"a.b-c_d~e+f/g=="));
        assert!(!is_b64token(b"=="));
        assert!(!is_b64token(b"a=b"));
        assert!(!is_b64token(b"a b"));
    }

    // RFC 9449 section 7.1: `Authorization: DPoP <token>` and exactly one
    // `DPoP` header.
    #[test]
    fn dpop_scheme_and_proof_header() {
        let read = |auth: &[&str], proofs: &[&str], dpop: bool| {
            let mut headers = HeaderMap::new();
            for v in auth {
                headers.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            for v in proofs {
                headers.append(DPOP, HeaderValue::from_str(v).unwrap());
            }
            match read_credentials(&headers, 64, dpop, |_| false) {
                Ok(Credentials::None) => Ok("none".to_owned()),
                Ok(Credentials::Bearer(t)) => Ok(format!("bearer {}", t.as_str())),
                Ok(Credentials::Dpop { token, proof }) => {
                    Ok(format!("dpop {} {proof}", token.as_str()))
                }
                Err(e) => Err(e.kind()),
            }
        };
        use AuthErrorKind::*;
        assert_eq!(
            read(&["DPoP tok"], &["p.r.f"], true),
            Ok("dpop tok p.r.f".into())
        );
        assert_eq!(read(&["dpop  tok"], &["p"], true), Ok("dpop tok p".into()));
        assert_eq!(read(&["Bearer tok"], &["p"], true), Ok("bearer tok".into()));
        assert_eq!(read(&["DPoP tok"], &["p"], false), Ok("none".into()));
        assert_eq!(read(&["DPoP tok"], &[], true), Err(DpopProofMissing));
        assert_eq!(
            read(&["DPoP tok"], &["a", "b"], true),
            Err(MultipleDpopProofs)
        );
        assert_eq!(
            read(&["DPoP a b"], &["p"], true),
            Err(MalformedAuthorizationHeader)
        );
        assert_eq!(
            read(&["DPoP "], &["p"], true),
            Err(MalformedAuthorizationHeader)
        );
        // The scheme alone, as `Bearer` alone (found from outside: read as
        // another scheme); named on the `DPoP` challenge.
        for alone in ["DPoP", "dpop"] {
            assert_eq!(
                read(&[alone], &["p"], true),
                Err(MalformedAuthorizationHeader),
                "{alone}"
            );
        }
        assert_eq!(read(&["DPoP"], &["p"], false), Ok("none".into()));
        assert_eq!(read(&["DPoPx tok"], &["p"], true), Ok("none".into()));
        assert_eq!(
            read(&["DPoP tok", "DPoP tok"], &["p"], true),
            Err(MultipleAuthorizationHeaders)
        );
        // Two headers are refused as two before either is read (the
        // property test `two_authorization_headers_are_never_read` found a
        // tabbed `DPoP` first named malformed).
        assert_eq!(
            read(&["DPoP\t", "Bearer"], &["p"], true),
            Err(MultipleAuthorizationHeaders)
        );
        assert_eq!(
            read(&["DPoP\ttok", "DPoP tok"], &["p"], true),
            Err(MultipleAuthorizationHeaders)
        );
        let long = format!("DPoP {}", "a".repeat(65));
        assert_eq!(read(&[long.as_str()], &["p"], true), Err(TokenTooLarge));
        // A tab after the scheme is malformed (RFC 9110 section 11.4: one
        // or more spaces), and named on the `DPoP` challenge (found from
        // outside: on the `Bearer` one).
        assert_eq!(
            read(&["DPoP\ttok"], &["p"], true),
            Err(MalformedAuthorizationHeader)
        );
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("DPoP\ttok"));
        let err = read_credentials(&headers, 64, true, |_| false).unwrap_err();
        assert!(err.is_dpop_scheme());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("DPoP tok extra"));
        headers.append(DPOP, HeaderValue::from_static("p"));
        let err = read_credentials(&headers, 64, true, |_| false).unwrap_err();
        assert!(err.is_dpop_scheme());
        assert!(!err.kind().description().contains("Bearer"));
    }

    #[test]
    fn debug_is_redacted() {
        let t = BearerToken::new("secret-token-value");
        assert_eq!(format!("{t:?}"), "BearerToken([redacted; 18 bytes])");
    }
}
