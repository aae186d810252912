//! URL rules of the configuration: `https://` everywhere (loopback `http://`
//! only on request), the canonical resource URI (RFC 8707 section 2), the
//! RFC 9728 well-known path, paths axum's router can serve literally,
//! browser origins (RFC 6454) and scope tokens (RFC 6749 section 3.3). A
//! leaf: the key-set fetcher, the layer and the server use these rules too.

use ::url::Url;

use crate::error::ConfigError;

/// The RFC 9728 section 3.1 well-known path for a resource URL.
pub(crate) fn metadata_path(resource: &Url) -> String {
    const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
    match resource.path() {
        "" | "/" => WELL_KNOWN.to_owned(),
        path => format!("{WELL_KNOWN}{path}"),
    }
}

/// Why axum's router (0.8) cannot serve `path` as a literal route, or
/// `None` when it can: a route must start with `/`; a segment starting with
/// `:` or `*` (axum 0.7's capture syntax) makes it panic; a brace is read as
/// a capture (`{x}`, `{*x}`), an escape (`{{`, `}}`) or is refused. Every
/// path the crate routes (the MCP path, the readiness probe, the metadata
/// paths) goes through this check when it is built, so that a mistake is a
/// `ConfigError`, never a panic or a route matching other paths.
pub(crate) fn route_path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("must start with '/'");
    }
    if path.contains(['{', '}']) {
        return Some(
            "must not contain '{' or '}' (the router reads them as a capture or an escape)",
        );
    }
    if path.split('/').any(|s| s.starts_with([':', '*'])) {
        return Some(
            "must not have a segment starting with ':' or '*' (the router refuses them as capture syntax)",
        );
    }
    // A route is matched against the request's path as sent: a query or a
    // fragment, a space or control character, a character outside ASCII
    // can never be in one as written, and a dot segment or an escape of an
    // unreserved character is one no client sends (they normalise it), so
    // such a route answers 404 for good (found from outside: a readiness
    // probe at `/readyz?x` or `/a/../readyz` started and never became
    // ready).
    if path.contains(['?', '#']) {
        return Some("must not hold '?' or '#' (a query or fragment is no part of a route)");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(
            "must be printable ASCII without spaces (a request's path holds them percent-encoded)",
        );
    }
    if has_dot_segment(path) {
        return Some("must not have a '.' or '..' segment (clients remove them before sending)");
    }
    // Found from outside: `/r%zz` was served as a readiness probe while
    // the resource's path refuses it (no client sends such a path: hyper
    // and the router take it as written, a proxy refuses or re-encodes it).
    if stray_percent(path).is_some() {
        return Some("must not hold a '%' that is not followed by two hexadecimal digits");
    }
    if lowercase_encoding(path).is_some() || encoded_unreserved(path).is_some() {
        return Some(
            "must be in normal form (RFC 3986 section 6.2.2: uppercase escapes, unreserved characters written plainly)",
        );
    }
    None
}

/// RFC 6749 section 3.3: a byte of a scope token (`NQCHAR = %x21 /
/// %x23-5B / %x5D-7E`), as the configuration and the token's scope claims
/// are held to it.
pub(crate) fn is_nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
/// `field` names the setting the scope came from.
pub(crate) fn validate_scope_token(field: &'static str, scope: &str) -> Result<(), ConfigError> {
    if scope.is_empty() || !scope.bytes().all(is_nqchar) {
        return Err(ConfigError::new(
            field,
            format!("{scope:?} is not a valid scope token (RFC 6749 section 3.3)"),
        ));
    }
    Ok(())
}

/// Whether a URL's host is a loopback name or address.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(::url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// What a configured URL may carry besides scheme, host, port and path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlParts {
    /// An issuer identifier (RFC 8414 section 2): no query, no fragment.
    Issuer,
    /// An endpoint the crate calls (key set, introspection): a query is
    /// part of it; a fragment is never sent, so it is a mistake.
    Endpoint,
    /// A link published for people (`resource_documentation`): a query
    /// and a fragment (`#section`) are part of it.
    Link,
}

/// Refuses user information in any configured URL (a user name or
/// password would be published in the metadata, sent to the host or
/// written to logs; the message never repeats it), and the query or
/// fragment `parts` does not allow. Checked before [`check_https`], whose
/// message shows the URL.
pub(crate) fn check_url_parts(
    url: &Url,
    parts: UrlParts,
    field: &'static str,
) -> Result<(), ConfigError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            field,
            "must not contain user information (user@ or user:password@ before the host)",
        ));
    }
    match parts {
        UrlParts::Issuer if url.query().is_some() || url.fragment().is_some() => {
            Err(ConfigError::new(
                field,
                "must not have a query or fragment (RFC 8414 section 2)",
            ))
        }
        UrlParts::Endpoint if url.fragment().is_some() => Err(ConfigError::new(
            field,
            format!(
                "{}: must not have a fragment (it is never sent)",
                url.as_str().split('#').next().unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether `text` is written in the form of its own `url`: what the `url`
/// crate serializes, except that a root URL may leave out its `/`. A text
/// that is not (`https://http://h/`, the host `http` with an empty port; a
/// `../`; a space; a backslash) names another place than it reads, and an
/// issuer is compared as written (RFC 8414 section 3.3) while its keys are
/// fetched from the host its URL names.
pub(crate) fn written_as_url(text: &str, url: &Url) -> bool {
    let form = url.as_str();
    form == text || (url.path() == "/" && form.strip_suffix('/') == Some(text))
}

/// `https` everywhere; `http` only on loopback with the explicit opt-in.
pub(crate) fn check_https(
    url: &Url,
    allow_loopback_http: bool,
    field: &'static str,
) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_loopback_http && is_loopback(url) => Ok(()),
        "http" if allow_loopback_http => Err(ConfigError::new(
            field,
            format!("{url} uses http:// on a host that is not loopback; only https:// is allowed"),
        )),
        "http" => Err(ConfigError::new(
            field,
            format!(
                "{url} uses http://; use https:// (or allow_insecure_http_for_loopback for local development)"
            ),
        )),
        other => Err(ConfigError::new(
            field,
            format!("unsupported URL scheme {other:?}"),
        )),
    }
}

/// Canonical form of the resource URI (RFC 8707 section 2, MCP "Canonical
/// Server URI"): lowercase scheme and host (the `url` crate does this),
/// default port dropped, no fragment, no query, and no trailing slash for a
/// root path. A path's own trailing slash is kept: it is significant.
pub(super) fn canonical_resource(
    raw: &str,
    allow_loopback_http: bool,
) -> Result<(String, Url), ConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::new("resource", format!("{} is not a URL: {e}", shown(raw))))?;
    check_https(&url, allow_loopback_http, "resource")?;
    if url.fragment().is_some() {
        return Err(ConfigError::new(
            "resource",
            "must not contain a fragment (RFC 8707 section 2)",
        ));
    }
    if url.query().is_some() {
        return Err(ConfigError::new("resource", "must not contain a query"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            "resource",
            "must not contain user information",
        ));
    }
    // The path must name what it reads (RFC 3986 section 6.2.2): a dot
    // segment (`/a/../mcp`, also as `%2e`), a backslash or a tab or line
    // break (which the URL standard turns into `/` or drops), a
    // percent-encoded unreserved character (`/m%63p` for `/mcp`) or a
    // lowercase percent-encoding (`%2f` for `%2F`) reads as
    // one path and names another, so that the server would serve one
    // spelling while clients that normalise ask for the other, and the
    // metadata would advertise a resource nobody wrote. A character no URI
    // path holds is refused too (below, after the percent-encoding rules).
    let text = raw.trim();
    let after_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    let written = written_path(after_scheme);
    if after_scheme.contains(['\\', '\t', '\n', '\r']) || has_dot_segment(written) {
        return Err(ConfigError::new(
            "resource",
            format!(
                "{raw:?}: the path is not in its normal form (RFC 3986 section 6.2.2: no dot segment, backslash, tab or line break); it names {}, write that",
                url.path()
            ),
        ));
    }
    // RFC 3986 section 2.1: `%` only ever starts a percent-encoding. The
    // URL standard keeps a bare one (`/m%ZZ`, `/100%`) as written, which no
    // RFC 3986 reader takes as a URI (found from outside: served and
    // advertised so).
    if let Some(at) = stray_percent(url.path()) {
        return Err(ConfigError::new(
            "resource",
            format!(
                "{raw:?}: {:?} in the path is a `%` that starts no percent-encoding (RFC 3986 section 2.1: `%` and two hexadecimal digits); write a literal `%` as %25",
                url.path()
                    .get(at..)
                    .unwrap_or_default()
                    .chars()
                    .take(3)
                    .collect::<String>()
            ),
        ));
    }
    if let Some((encoded, plain)) = encoded_unreserved(url.path()) {
        return Err(ConfigError::new(
            "resource",
            format!(
                "{raw:?}: {encoded} in the path is the character {plain:?}, which is written plainly (RFC 3986 section 6.2.2.2)"
            ),
        ));
    }
    if let Some(encoded) = lowercase_encoding(url.path()) {
        return Err(ConfigError::new(
            "resource",
            format!(
                "{raw:?}: {encoded} in the path is written {} in normal form (RFC 3986 section 6.2.2.1: uppercase hexadecimal digits), as clients and the metadata write it",
                encoded.to_ascii_uppercase()
            ),
        ));
    }
    // `/m cp` would be served, advertised and required as the audience
    // `/m%20cp`, so the tokens for the resource as written would be refused
    // (found from outside, with a hint naming the setting as written).
    // Checked by RFC 3986's own list, after the rules above (so that the
    // form it names is one they accept), not by what the URL standard
    // happens to encode, which changes between versions of the `url`
    // crate (found from outside: `^` refused by one build and served by
    // another; `|`, `[` and `]` never encoded).
    if written.chars().any(|c| !is_path_char(c)) {
        return Err(ConfigError::new(
            "resource",
            format!(
                "{raw:?}: the path holds characters no URI holds (RFC 3986 section 3.3: a space, `|`, `^`, brackets, braces, quotes, characters outside ASCII); percent-encoded it is {}, the audience tokens carry: write that",
                encode_path(written)
            ),
        ));
    }
    // The scheme, host and port as the URL reads them: the resource is the
    // audience tokens carry, compared as written, so a spelling the URL
    // rewrites (capitals, an explicit default port, `127.1`, a port with
    // leading zeros, an empty port) would make the server advertise and
    // expect another text than the one the operator registered at the
    // authorization server, and refuse every token carrying it (found from
    // outside). The same rule as the issuer's.
    let written = scheme_and_authority(text);
    let form = scheme_and_authority(url.as_str());
    if written != form {
        return Err(ConfigError::new(
            "resource",
            format!(
                "{raw:?} is not written as its URL: its scheme, host and port read as {form:?}; \
                 tokens name the resource exactly as written (RFC 8707), so write it so"
            ),
        ));
    }
    if url.port() == Some(0) {
        return Err(ConfigError::new(
            "resource",
            format!("{raw:?} names port 0, which no client can reach"),
        ));
    }
    let mut canonical = url.to_string();
    if url.path() == "/" {
        canonical.pop();
    }
    Ok((canonical, url))
}

/// `scheme://authority` of a URL's text: up to the first `/`, `?` or `#`
/// after `://` (the whole text without one).
fn scheme_and_authority(text: &str) -> &str {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    text.get(..scheme.len() + 3 + end).unwrap_or(text)
}

/// The path of a URL as written, given the text after its `scheme://`:
/// from the first `/` after the authority to the query, the fragment or
/// the end (empty when there is none).
fn written_path(after_scheme: &str) -> &str {
    let rest = after_scheme
        .find(['/', '?', '#'])
        .and_then(|at| after_scheme.get(at..))
        .unwrap_or_default();
    if !rest.starts_with('/') {
        return "";
    }
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

/// Whether `c` may stand as written in a URI's path (RFC 3986 section
/// 3.3: unreserved, sub-delims, `:`, `@`, `/`, and `%` of an encoding).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
}

/// `path` with every character [`is_path_char`] refuses percent-encoded
/// (its UTF-8 octets, uppercase hexadecimal digits).
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        if is_path_char(c) {
            encoded.push(c);
        } else {
            let mut octets = [0; 4];
            for octet in c.encode_utf8(&mut octets).bytes() {
                encoded.push_str(&format!("%{octet:02X}"));
            }
        }
    }
    encoded
}

/// Whether a path has a `.` or `..` segment, plain or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let plain = segment.to_ascii_lowercase().replace("%2e", ".");
        plain == "." || plain == ".."
    })
}

/// The percent-encodings of `path` (`%` and two hexadecimal digits), each
/// as written and the octet it encodes.
fn encodings(path: &str) -> impl Iterator<Item = (&str, u8)> {
    path.match_indices('%').filter_map(|(at, _)| {
        let encoded = path.get(at..at + 3)?;
        let digits = encoded.get(1..)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some((encoded, u8::from_str_radix(digits, 16).ok()?))
    })
}

/// Where in `path` a `%` is not followed by two hexadecimal digits.
fn stray_percent(path: &str) -> Option<usize> {
    path.match_indices('%').map(|(at, _)| at).find(|at| {
        !path
            .get(at + 1..at + 3)
            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// The first percent-encoding of `path` written with a lowercase
/// hexadecimal digit (`%2f`): the same octet as `%2F`, which is its normal
/// form, but a different path to a router that compares paths exactly.
fn lowercase_encoding(path: &str) -> Option<&str> {
    encodings(path)
        .map(|(encoded, _)| encoded)
        .find(|encoded| encoded.bytes().any(|b| b.is_ascii_lowercase()))
}

/// The first percent-encoded unreserved character of `path` (RFC 3986
/// section 2.3: ALPHA, DIGIT, `-`, `.`, `_`, `~`), as written and decoded.
fn encoded_unreserved(path: &str) -> Option<(&str, char)> {
    encodings(path).find_map(|(encoded, byte)| {
        (byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'))
            .then_some((encoded, char::from(byte)))
    })
}

/// The ASCII serialization of a URL's origin (RFC 6454 section 6.2):
/// lowercase scheme and host, the port only when it is not the default.
/// URL text as an error repeats it, quoted, with what may be a password
/// left out: text between `://` and the last `@` of the authority is
/// written `[userinfo]`. For text that did not parse (the parser's own
/// reading cannot be used then; found from outside: `"http://u:secret@[::1"
/// is not a URL` printed the secret at start-up).
pub(crate) fn shown(text: &str) -> String {
    let masked = text.split_once("://").and_then(|(scheme, rest)| {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let at = rest.get(..end)?.rfind('@')?;
        Some(format!("{scheme}://[userinfo]{}", rest.get(at..)?))
    });
    format!("{:?}", masked.as_deref().unwrap_or(text))
}

pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// An `Origin` value in the form [`origin_of`] produces, or `None` when it
/// is not a tuple origin (`null`, a path, a query, userinfo, an opaque scheme).
pub(crate) fn normalize_origin(raw: &str) -> Option<String> {
    normalize(raw)
}

/// Whether an `Origin` names a loopback host (any scheme, any port).
pub(crate) fn is_loopback_origin(origin: &str) -> bool {
    Url::parse(origin).is_ok_and(|url| is_loopback(&url))
}

fn normalize(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
    {
        return None;
    }
    Some(origin_of(&url))
}

#[cfg(test)]
mod tests {

    #[test]
    fn shown_text_leaves_userinfo_out() {
        assert_eq!(shown("http://u:pw@[::1"), r#""http://[userinfo]@[::1""#);
        assert_eq!(shown("https://a@b@h/p@q"), r#""https://[userinfo]@h/p@q""#);
        assert_eq!(shown("https://h/p@q"), r#""https://h/p@q""#);
        assert_eq!(shown("no scheme@all"), r#""no scheme@all""#);
    }

    use super::*;
    use crate::config::AuthConfig;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn canonicalises_resource() {
        let base = || AuthConfig::builder().issuer("https://auth.example.com");
        // Another spelling of the scheme, host or port than the URL's own
        // is refused, naming the form to write (found from outside: tokens
        // for the configured text were refused, the rewritten one served).
        for other in [
            "HTTPS://MCP.Example.COM:443/mcp",
            "https://mcp.example.com:443/mcp",
            "https://MCP.example.com/mcp",
            "http://127.1:8080/mcp",
            "http://0x7f.1:8080/mcp",
            "http://127.0.0.1:08080/mcp",
            "http://127.0.0.1:/mcp",
            "http://127.0.0.1:80/mcp",
        ] {
            let err = base()
                .resource(other)
                .allow_insecure_http_for_loopback(true)
                .build()
                .unwrap_err();
            assert_eq!(err.field(), "resource", "{other}");
            assert!(
                err.to_string().contains("is not written as its URL"),
                "{other}: {err}"
            );
        }
        let err = base()
            .resource("http://127.0.0.1:0/mcp")
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("port 0"), "{err}");
        let c = base().resource("https://mcp.example.com/").build().unwrap();
        assert_eq!(c.resource(), "https://mcp.example.com");
        assert_eq!(
            c.resource_metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
        let c = base()
            .resource("https://mcp.example.com:8443/public/mcp")
            .build()
            .unwrap();
        // RFC 9728 section 3.1: well-known inserted between host and path.
        assert_eq!(
            c.resource_metadata_url(),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource/public/mcp"
        );
    }

    // RFC 8707 section 2: no fragment; no query or user information either.
    #[test]
    fn resource_refuses_fragment_query_and_userinfo() {
        for bad in [
            "https://h/mcp#x",
            "https://h/mcp?q=1",
            "https://u:p@h/mcp",
            "not a url",
        ] {
            let e = canonical_resource(bad, false).unwrap_err();
            assert_eq!(e.field(), "resource", "{bad}");
        }
        // Below the root a trailing slash is significant and kept.
        let (c, _) = canonical_resource("https://h/mcp/", false).unwrap();
        assert_eq!(c, "https://h/mcp/");
    }

    // RFC 3986 section 6.2.2: a path that reads as one path and names
    // another is refused, naming the form to write (found from outside in
    // round 2: `/m%63p` was served only as `/m%63p`, `/a/../mcp` became
    // `/mcp` silently).
    #[test]
    fn resource_path_must_be_written_in_normal_form() {
        for (bad, says) in [
            ("https://h/a/../mcp", "names /mcp, write that"),
            ("https://h/./mcp", "names /mcp, write that"),
            ("https://h/mcp/.", "names /mcp/, write that"),
            ("https://h/a/%2E%2e/mcp", "names /mcp, write that"),
            ("https://h/a/.%2e/mcp", "names /mcp, write that"),
            ("https://h\\mcp", "names /mcp, write that"),
            ("https://h/a\\mcp", "names /a/mcp, write that"),
            ("https://h/m\tcp", "names /mcp, write that"),
            ("https://h/m%63p", "%63 in the path is the character 'c'"),
            ("https://h/m%7Ecp", "%7E in the path is the character '~'"),
            ("https://h/m%7ecp", "%7e in the path is the character '~'"),
            ("https://h/m%6acp", "%6a in the path is the character 'j'"),
            ("https://h/mcp%2fx", "%2f in the path is written %2F"),
            ("https://h/caf%c3%a9", "%c3 in the path is written %C3"),
            (
                "https://h/%41pi/mcp",
                "%41 in the path is the character 'A'",
            ),
            ("https://h/mcp%2D1", "%2D in the path is the character '-'"),
            // A `%` that starts no encoding (found from outside: `/m%ZZ`
            // was served and advertised).
            (
                "https://h/m%ZZ",
                "\"%ZZ\" in the path is a `%` that starts no",
            ),
            (
                "https://h/mcp%",
                "\"%\" in the path is a `%` that starts no",
            ),
            ("https://h/100%/mcp", "\"%/m\" in the path"),
            ("https://h/m%4", "\"%4\" in the path"),
            // Characters no URI holds, which the URL standard encodes: the
            // audience would be the encoded text, not the one written
            // (found from outside); the message names the form to write.
            ("https://h/m cp", "percent-encoded it is /m%20cp"),
            ("https://h/{x}/mcp", "percent-encoded it is /%7Bx%7D/mcp"),
            ("https://h/caf\u{e9}", "percent-encoded it is /caf%C3%A9"),
            ("https://h/a\"b", "percent-encoded it is /a%22b"),
            // RFC 3986's list, not the URL standard's (a recheck from
            // outside: `|`, `^`, brackets).
            ("https://h/a|b", "percent-encoded it is /a%7Cb"),
            ("https://h/a^b", "percent-encoded it is /a%5Eb"),
            ("https://h/a[b]", "percent-encoded it is /a%5Bb%5D"),
            // Another rule first, so that the form named is accepted.
            ("https://h/\u{fc}%", "is a `%` that starts no"),
            ("https://h/a%7b c", "%7b in the path is written %7B"),
            ("https://h/a b%41", "%41 in the path is the character 'A'"),
        ] {
            let e = canonical_resource(bad, false).unwrap_err();
            assert_eq!(e.field(), "resource", "{bad}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        for (good, canonical) in [
            ("https://h", "https://h"),
            ("https://h/", "https://h"),
            ("https://h/mcp/", "https://h/mcp/"),
            ("https://h/a.b/..c/.well", "https://h/a.b/..c/.well"),
            // Reserved and non-ASCII characters stay encoded: they have no
            // plain form that means the same.
            ("https://h/a%2Fb", "https://h/a%2Fb"),
            ("https://h/caf%C3%A9", "https://h/caf%C3%A9"),
            ("https://h/100%25", "https://h/100%25"),
            ("  https://h/mcp  ", "https://h/mcp"),
        ] {
            let (c, _) = canonical_resource(good, false).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(c, canonical, "{good}");
        }
    }

    #[test]
    fn loopback_http_needs_the_opt_in_and_loopback() {
        let b = AuthConfig::builder()
            .issuer("http://127.0.0.1:1")
            .resource("http://localhost:2/mcp");
        assert!(b.clone().build().is_err());
        assert!(
            b.clone()
                .allow_insecure_http_for_loopback(true)
                .build()
                .is_ok()
        );
        let e = b
            .resource("http://example.com/mcp")
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "resource");
        assert!(is_loopback(&url("http://[::1]:1/")));
        assert!(is_loopback(&url("http://LOCALHOST/")));
        assert!(!is_loopback(&url("http://localhost.example/")));
        assert!(check_https(&url("ftp://127.0.0.1/"), true, "x").is_err());
    }

    // RFC 6749 section 3.3: no space, no `"`, no backslash, ASCII only, not empty.
    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(validate_scope_token("s", "notes:read").is_ok());
        for bad in ["", "a b", "a\"", "a\\b", "é"] {
            let e = validate_scope_token("required_scopes", bad).unwrap_err();
            assert_eq!(e.field(), "required_scopes");
        }
    }

    // RFC 6454 section 6.2: an origin is scheme://host[:port], nothing else.
    #[test]
    fn origins_are_tuple_origins() {
        assert_eq!(
            normalize_origin("HTTPS://App.Example.com:443").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            normalize_origin("http://localhost:5173/").as_deref(),
            Some("http://localhost:5173")
        );
        for bad in [
            "null",
            "https://h/path",
            "https://h?q",
            "https://u@h",
            "file:///x",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }
}
