//! Fetching issuer metadata and key sets over HTTPS, defensively: no
//! redirects (refused even when a caller-supplied client would follow them),
//! a total deadline per request (enforced here, whatever the client's own
//! timeouts), status 200 only, a JSON media type, and a cap on the body that
//! is enforced while reading. `Cache-Control` is read so that the cache can
//! honour the key server's `max-age` within configured bounds.
//!
//! A leaf below `jwks` and `verify`: the one default HTTP client
//! ([`default_client`]) and the bounded JSON body reader serve key sets,
//! discovery and token introspection alike.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use url::Url;

use crate::config::check_https;
use crate::config::introspection::{ClientAuthMethod, ClientSecret};
use crate::error::ConfigError;
use crate::json::{self, Members};

/// Why a fetch failed. Cheap to clone (shared by everyone waiting on a
/// single-flight fetch); never contains a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub(crate) struct FetchError {
    message: Arc<str>,
    kind: FetchErrorKind,
}

/// What a [`FetchError`] says of the document asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchErrorKind {
    /// No answer, or not a usable one (an outage, a server error, a
    /// document refused).
    Failed,
    /// 404 or 410: nothing at that URL (a discovery URL the issuer does
    /// not serve).
    NotFound,
    /// The issuer's metadata was read and names no such endpoint: an
    /// answer, not an outage (see [`Fetcher::discover_endpoint`]).
    Absent,
    /// A key set was read and holds no usable key: an answer too (an
    /// issuer of opaque tokens may sign nothing), kept apart so that
    /// readiness can tell it from an outage.
    NoKeys,
}

impl FetchError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self::of(FetchErrorKind::Failed, msg)
    }

    fn of(kind: FetchErrorKind, msg: impl Into<String>) -> Self {
        Self {
            message: Arc::from(msg.into()),
            kind,
        }
    }

    /// Whether the issuer's metadata was read and has no such endpoint.
    pub(crate) fn is_absent(&self) -> bool {
        self.kind == FetchErrorKind::Absent
    }

    /// A key set read whole that holds no usable key.
    pub(crate) fn no_keys(msg: impl Into<String>) -> Self {
        Self::of(FetchErrorKind::NoKeys, msg)
    }

    /// Whether a key set was read and holds no usable key.
    pub(crate) fn is_no_keys(&self) -> bool {
        self.kind == FetchErrorKind::NoKeys
    }
}

/// The one default HTTP client of the crate, for key sets, discovery and
/// introspection: rustls with the platform's roots, no redirects, `timeout`
/// as total and connect deadline, and the environment's proxy settings
/// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) for every
/// destination but loopback (see [`HttpClient`]).
pub(crate) fn default_client(timeout: Duration) -> Result<HttpClient, ConfigError> {
    client_with(timeout, reqwest::redirect::Policy::none)
}

/// The crate's client with `timeout` and the redirect policy `redirect`
/// makes (one per inner client): [`default_client`] follows none, the
/// downstream client its own origin only.
pub(crate) fn client_with(
    timeout: Duration,
    redirect: impl Fn() -> reqwest::redirect::Policy,
) -> Result<HttpClient, ConfigError> {
    let builder = || {
        reqwest::Client::builder()
            .redirect(redirect())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("mcp-oauth2/", env!("CARGO_PKG_VERSION")))
    };
    HttpClient::new(builder(), builder())
}

/// An HTTP client that reaches loopback destinations directly. `http://`
/// is only ever allowed to a loopback host (`allow_insecure_http_for_loopback`),
/// on the promise that the plain text never leaves the machine; a proxy of
/// the environment (`HTTP_PROXY=http://proxy.corp:3128`, common on company
/// machines and CI) would otherwise receive it, key sets, client secrets and
/// tokens included, and could answer in the server's place. Other
/// destinations go through the environment's proxies, as reqwest does. A
/// caller's own client (`with_http_client`) is used as it is, for every
/// destination.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    /// For every destination but loopback.
    any: reqwest::Client,
    /// For loopback destinations: no proxy.
    loopback: reqwest::Client,
}

impl HttpClient {
    /// `any` as configured; `loopback` without proxies.
    pub(crate) fn new(
        any: reqwest::ClientBuilder,
        loopback: reqwest::ClientBuilder,
    ) -> Result<Self, ConfigError> {
        let build = |b: reqwest::ClientBuilder| {
            b.build().map_err(|e| {
                ConfigError::new("http_client", format!("cannot build the HTTP client: {e}"))
            })
        };
        Ok(Self {
            any: build(any)?,
            loopback: build(loopback.no_proxy())?,
        })
    }

    /// The client for `url`.
    fn client(&self, url: &Url) -> &reqwest::Client {
        if crate::config::url::is_loopback(url) {
            &self.loopback
        } else {
            &self.any
        }
    }

    /// A request to `url`.
    pub(crate) fn request(&self, method: http::Method, url: &Url) -> reqwest::RequestBuilder {
        self.client(url).request(method, url.clone())
    }

    /// A GET of `url`.
    pub(crate) fn get(&self, url: &Url) -> reqwest::RequestBuilder {
        self.client(url).get(url.clone())
    }

    /// A POST to `url`.
    pub(crate) fn post(&self, url: &Url) -> reqwest::RequestBuilder {
        self.client(url).post(url.clone())
    }
}

impl From<reqwest::Client> for HttpClient {
    /// A caller's client, used for every destination.
    fn from(client: reqwest::Client) -> Self {
        Self {
            any: client.clone(),
            loopback: client,
        }
    }
}

/// The instant `timeout` from now; a timeout past the clock's range (a
/// caller's `http_timeout(Duration::MAX)`) is a deadline in the far future,
/// never an overflow.
pub(crate) fn deadline_after(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(now)
}

/// The HTTP client used for metadata and keys.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: HttpClient,
    max_bytes: usize,
    allow_loopback_http: bool,
    timeout: Duration,
}

/// A fetched JSON document.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    /// The freshness the server asked for: `max-age`, or zero for
    /// `no-cache` / `no-store`; `None` without a `Cache-Control` directive.
    pub(crate) max_age: Option<Duration>,
}

impl Fetcher {
    /// A fetcher around an existing client. Redirects are refused and
    /// `timeout` bounds each request, whatever the client is configured to do.
    pub(crate) fn with_client(
        client: HttpClient,
        max_bytes: usize,
        allow_loopback_http: bool,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            max_bytes,
            allow_loopback_http,
            timeout,
        }
    }

    /// GETs `url`: status 200, a JSON media type, at most `max_bytes`, all
    /// within the deadline.
    pub(crate) async fn get_json(&self, url: &Url) -> Result<Fetched, FetchError> {
        self.get_json_until(url, deadline_after(self.timeout)).await
    }

    /// [`get_json`](Self::get_json) within `deadline` (and the fetcher's
    /// timeout, whichever comes first).
    async fn get_json_until(
        &self,
        url: &Url,
        deadline: tokio::time::Instant,
    ) -> Result<Fetched, FetchError> {
        check_https(url, self.allow_loopback_http, "url")
            .map_err(|e| FetchError::new(e.message().to_owned()))?;
        let deadline = deadline.min(deadline_after(self.timeout));
        match tokio::time::timeout_at(deadline, self.get_json_inner(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::new(format!("{}: timed out", Logged(url)))),
        }
    }

    async fn get_json_inner(&self, url: &Url) -> Result<Fetched, FetchError> {
        let response = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::new(format!("{}: timed out", Logged(url)))
                } else {
                    FetchError::new(format!(
                        "{}: request failed: {}",
                        Logged(url),
                        request_error(e)
                    ))
                }
            })?;
        // A client that follows redirects (a caller's own) would hand us the
        // final response: refuse it, the key set must come from where it was
        // configured or discovered.
        if response.url() != url {
            return Err(FetchError::new(format!(
                "{}: the response came from another URL (redirects are not followed)",
                Logged(url)
            )));
        }
        let max_age = freshness_left(response.headers());
        let kind = match response.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => FetchErrorKind::NotFound,
            _ => FetchErrorKind::Failed,
        };
        let body = read_json_body(response, self.max_bytes)
            .await
            .map_err(|e| FetchError::of(kind, format!("{}: {e}", Logged(url))))?;
        Ok(Fetched { body, max_age })
    }

    /// Finds the issuer's `jwks_uri` through RFC 8414 / OpenID Connect
    /// discovery. The document's `issuer` must equal `issuer` exactly
    /// (RFC 8414 section 3.3), or the document is rejected.
    pub(crate) async fn discover_jwks_uri(&self, issuer: &str) -> Result<Url, FetchError> {
        self.discover_endpoint(issuer, "jwks_uri").await
    }

    /// Finds the URL named `member` (`jwks_uri`, `token_endpoint`) in the
    /// issuer's RFC 8414 / OpenID Connect metadata. The document must be
    /// one JSON object that repeats no member name at any depth, and its
    /// `issuer` must equal `issuer` exactly (RFC 8414 section 3.3), or the
    /// document is rejected; the URL must be `https://` (or loopback `http://` when
    /// allowed). The discovery URLs share one deadline (the fetcher's
    /// timeout): an issuer that does not answer costs that once, not once
    /// per URL. A document without `member` sends discovery on to the next
    /// URL; when none has it, the error [is absent](FetchError::is_absent).
    pub(crate) async fn discover_endpoint(
        &self,
        issuer: &str,
        member: &'static str,
    ) -> Result<Url, FetchError> {
        // What each URL gave: a document without the member is the issuer's
        // answer only if every other URL had nothing there (404, 410);
        // one that failed otherwise (5xx, 429, a timeout, an unreadable
        // body) may be the one naming it, and makes this an outage (found
        // from outside: a 500 beside a document without the member was
        // taken for "none" for five minutes).
        let mut failures: Vec<FetchError> = Vec::new();
        let mut absent: Option<FetchError> = None;
        let deadline = deadline_after(self.timeout);
        for url in discovery_urls(issuer)? {
            if tokio::time::Instant::now() >= deadline {
                failures.push(FetchError::new(format!(
                    "{url}: not tried, the discovery timed out (one deadline for every discovery URL)"
                )));
                break;
            }
            let body = match self.get_json_until(&url, deadline).await {
                Ok(fetched) => fetched.body,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            // One object without repeated member names at any depth: two
            // copies of `issuer` or `jwks_uri` would let the one checked and
            // the one used differ, depending on the reader.
            let doc = std::str::from_utf8(&body)
                .map_err(|_| json::ObjectError::Malformed)
                .and_then(Members::parse)
                .map_err(|e| match e {
                    json::ObjectError::Malformed => {
                        FetchError::new(format!("{url}: metadata is not a JSON object"))
                    }
                    json::ObjectError::Duplicate => FetchError::new(format!(
                        "{url}: metadata repeats a member name (RFC 8259 section 4)"
                    )),
                })?;
            let named = doc.str("issuer").ok().flatten();
            if named.as_deref() != Some(issuer) {
                // The document's own issuer, cleaned, and what differs when
                // it is a trailing `/` (found from outside: the message did
                // not say, and every token was then refused).
                let slash = named
                    .as_deref()
                    .is_some_and(|n| n.trim_end_matches('/') == issuer.trim_end_matches('/'));
                return Err(FetchError::new(format!(
                    "{url}: the document's issuer {} does not equal the configured issuer {issuer} (RFC 8414 section 3.3){}",
                    named.as_deref().map_or_else(
                        || "(none)".to_owned(),
                        |n| format!("{:?}", crate::error::Diagnosis::clean(n))
                    ),
                    if slash {
                        ": they differ only by a trailing '/'; configure the issuer exactly as the document names it"
                    } else {
                        ""
                    }
                )));
            }
            // A document without the member: the next discovery URL may
            // have it (an OpenID Connect document beside a thinner RFC 8414
            // one); without it anywhere, the issuer has none to offer.
            let Some(found) = doc.str(member).ok().flatten() else {
                absent = Some(FetchError::of(
                    FetchErrorKind::Absent,
                    format!("{url}: metadata has no {member}"),
                ));
                continue;
            };
            let found = Url::parse(&found)
                .map_err(|_| FetchError::new(format!("{url}: {member} is not a URL")))?;
            // Checked first: its message never repeats user information,
            // where `check_https`'s shows the URL (found from outside: a
            // discovered `jwks_uri` with a password was fetched, refused
            // as "redirected", and its password written in two WARN lines).
            crate::config::url::check_url_parts(
                &found,
                crate::config::url::UrlParts::Endpoint,
                member,
            )
            // Named by the member, whose URL the message leaves out (found
            // from outside: read as a fault of the document's own URL).
            .map_err(|e| FetchError::new(format!("{url}: its {member} {}", e.message())))?;
            check_https(&found, self.allow_loopback_http, member)
                .map_err(|e| FetchError::new(format!("{url}: {}", e.message())))?;
            return Ok(found);
        }
        let failed = failures.iter().any(|e| e.kind != FetchErrorKind::NotFound);
        match absent {
            Some(absent) if !failed => Err(absent),
            _ => {
                // Every URL's error, so that the log names the one that
                // matters (found from outside: only the last was said).
                let said: Vec<String> = absent
                    .iter()
                    .chain(&failures)
                    .map(ToString::to_string)
                    .collect();
                Err(FetchError::new(format!(
                    "no usable metadata document for issuer {issuer}: {}",
                    said.join("; ")
                )))
            }
        }
    }
}

/// How long a response with these headers stays fresh (RFC 9111 section
/// 4.2): the shortest `Cache-Control` freshness ([`cache_max_age`]) less
/// the response's `Age` (section 5.1: the time it already spent in a cache
/// on the way, such as a CDN; found from outside, `max-age=100000` with
/// `Age: 99995` was kept for the whole max TTL instead of five seconds).
/// A list-based `Age` counts by its first member; one that is not a
/// number is ignored. `None`: no freshness given.
pub(crate) fn freshness_left(headers: &http::HeaderMap) -> Option<Duration> {
    let max_age = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(cache_max_age)
        .fold(None, |acc: Option<Duration>, d| match (acc, d) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })?;
    // RFC 9111 section 5.1: a list-based `Age` (two fields, or a comma in
    // one) counts by its first member (found from outside: a second field
    // undid the rule, the set kept for the whole max TTL).
    let age = headers
        .get(http::header::AGE)
        .and_then(|age| age.to_str().ok())
        .and_then(|age| age.split(',').next())
        .and_then(|first| delta_seconds(first.trim()));
    Some(age.map_or(max_age, |age| max_age.saturating_sub(age)))
}

/// RFC 9111 section 1.2.2: `delta-seconds`, digits only; a number too
/// large to read is 2^31 seconds ("a cache ... MUST consider the value to
/// be 2147483648"), not unreadable.
fn delta_seconds(text: &str) -> Option<Duration> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(
        text.parse::<u64>().unwrap_or(1 << 31).min(1 << 31),
    ))
}

/// The freshness a `Cache-Control` value asks of a private cache (RFC 9111
/// section 5.2.2): `no-store` or `no-cache` is zero, else `max-age`; `None`
/// when neither is present or `max-age` is not a number. A `max-age` too
/// large to read is 2^31 seconds ([`delta_seconds`]), which the cache's
/// max TTL then bounds (found from outside: it fell back to the shorter
/// TTL, as if absent).
pub(crate) fn cache_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Some(secs) = arg.and_then(delta_seconds)
        {
            max_age = Some(secs);
        }
    }
    max_age
}

/// The body of a response that must be a JSON document: status 200 (a
/// redirect is never followed), a JSON media type (`application/json` or
/// `application/*+json`), at most `max` bytes (announced or read). Errors
/// are short reasons; the caller names the URL.
pub(crate) async fn read_json_body(
    response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    let status = response.status();
    if status.is_redirection() {
        return Err(format!("HTTP status {status}: redirects are not followed"));
    }
    if status != StatusCode::OK {
        return Err(format!("HTTP status {status}, expected 200"));
    }
    read_json_any_status(response, max)
        .await
        .map_err(|(_, e)| e)
}

/// The body of a JSON response whatever its status (an OAuth error answer
/// is a JSON document too, RFC 6749 section 5.2): a JSON media type, at
/// most `max` bytes. An error is `(unusable, reason)`: `unusable` when the
/// answer came and is not such a document (another media type, too
/// large), not when reading it failed.
pub(crate) async fn read_json_any_status(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, (bool, String)> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !(essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json")))
    {
        return Err((true, format!("content type {essence:?} is not JSON")));
    }
    let too_large = || (true, format!("body larger than {max} bytes"));
    if response.content_length().is_some_and(|l| l > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err((false, "timed out".to_owned())),
            Err(e) => return Err((false, format!("reading body failed: {}", error_chain(&e)))),
        }
    }
}

/// How a client authenticates at an authorization server endpoint (RFC
/// 6749 section 2.3.1): added to a form POST to `request`, whose form
/// parameters are `form`. Returns the request with the encoded body.
///
/// `caller_client`: `request` comes from a caller's client, which may
/// follow redirects. The body is then handed to reqwest as a stream, which
/// it cannot replay: such a client stops at a 307 or 308 instead of sending
/// the form (the token, `client_secret`) again to the URL the redirect
/// names, and after a 301, 302 or 303 it asks with an empty GET (reqwest
/// drops `Authorization` for another origin); the answer of a redirect is
/// refused by [`from_url`]. Our own clients never follow a redirect, so
/// their body stays replayable (reqwest retries a request an HTTP/2 server
/// refused before reading it).
pub(crate) fn client_form_post<'a>(
    request: reqwest::RequestBuilder,
    mut form: Vec<(&'a str, &'a str)>,
    method: ClientAuthMethod,
    client_id: &'a str,
    secret: &'a ClientSecret,
    caller_client: bool,
) -> reqwest::RequestBuilder {
    let request = match method {
        ClientAuthMethod::ClientSecretBasic => {
            // RFC 6749 section 2.3.1: form-encode id and secret, then Basic.
            request.basic_auth(form_encode(client_id), Some(form_encode(secret.secret())))
        }
        ClientAuthMethod::ClientSecretPost => {
            form.push(("client_id", client_id));
            form.push(("client_secret", secret.secret()));
            request
        }
    };
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    request
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(if caller_client {
            reqwest::Body::wrap(body)
        } else {
            reqwest::Body::from(body)
        })
}

/// `response`, unless a client that follows redirects fetched it from
/// another URL than `url` (the one asked): then an error, whatever its
/// status. The default clients never follow redirects; a caller's may.
pub(crate) fn from_url(
    response: reqwest::Response,
    url: &Url,
) -> Result<reqwest::Response, String> {
    if response.url() == url {
        Ok(response)
    } else {
        Err(format!(
            "{}: the response came from another URL (redirects are not followed)",
            Logged(url)
        ))
    }
}

/// A URL as errors and log lines write it: without its query and
/// fragment, said to be there (`?[query]`). An endpoint may carry a key in
/// its query (an API gateway's `?api_key=`, a function proxy's `?code=`):
/// found from outside, `MCP_OAUTH2_INTROSPECTION_URI` with one was written
/// whole in every failure line. User information is refused in every
/// configured URL already.
pub(crate) struct Logged<'a>(pub(crate) &'a Url);

impl std::fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Error paths only: a copy of the URL is cheap enough there.
        let mut shown = self.0.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        write!(f, "{shown}")?;
        if self.0.query().is_some() {
            f.write_str("?[query]")?;
        }
        Ok(())
    }
}

/// An HTTP client's error as the logs write it: without the URL it names
/// (see [`Logged`]), every cause in the chain.
pub(crate) fn request_error(e: reqwest::Error) -> String {
    error_chain(&e.without_url())
}

/// `application/x-www-form-urlencoded` encoding (WHATWG URL), via the url crate.
pub(crate) fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The metadata URLs tried for an issuer, in order (RFC 8414 section 3.1,
/// OpenID Connect Discovery 1.0 section 4, and the MCP specification's
/// "Authorization Server Metadata Discovery" order).
pub(crate) fn discovery_urls(issuer: &str) -> Result<Vec<Url>, FetchError> {
    let base = Url::parse(issuer).map_err(|_| FetchError::new("issuer is not a URL"))?;
    let path = base.path().trim_end_matches('/').to_owned();
    let with = |p: String| {
        let mut u = base.clone();
        u.set_path(&p);
        u.set_query(None);
        u
    };
    let mut urls = vec![
        with(format!("/.well-known/oauth-authorization-server{path}")),
        with(format!("/.well-known/openid-configuration{path}")),
    ];
    if !path.is_empty() {
        urls.push(with(format!("{path}/.well-known/openid-configuration")));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {

    // A query (an API key) is never written in an error or a log line
    // (found from outside: an introspection endpoint's was, in every
    // failure line).
    #[test]
    fn logged_urls_leave_the_query_out() {
        let url = Url::parse("https://as.example/i?api_key=QuerySecret#frag").unwrap();
        assert_eq!(Logged(&url).to_string(), "https://as.example/i?[query]");
        let url = Url::parse("https://as.example/i#frag").unwrap();
        assert_eq!(Logged(&url).to_string(), "https://as.example/i");
        let url = Url::parse("https://as.example:8443/i").unwrap();
        assert_eq!(Logged(&url).to_string(), "https://as.example:8443/i");
    }
    use super::*;

    // SPEC-NOTES "All authorization server endpoints are HTTPS": a plain
    // http:// URL is refused before any connection, unless it is loopback
    // and the escape hatch is set.
    #[tokio::test]
    async fn http_urls_are_refused_without_connecting() {
        let client = default_client(Duration::from_secs(1)).unwrap();
        let strict = Fetcher::with_client(client.clone(), 1024, false, Duration::from_secs(1));
        let loopback_ok = Fetcher::with_client(client, 1024, true, Duration::from_secs(1));
        for url in [
            "http://as.example/jwks",
            "http://127.0.0.1:9/jwks",
            "ftp://as.example/jwks",
        ] {
            let err = strict
                .get_json(&Url::parse(url).unwrap())
                .await
                .unwrap_err();
            assert!(!err.to_string().contains("request failed"), "{url}: {err}");
        }
        let err = loopback_ok
            .get_json(&Url::parse("http://as.example/jwks").unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not loopback"), "{err}");
    }

    // RFC 9111 sections 4.2 and 5.1: the freshness left is `max-age` less
    // `Age`, never below zero; an `Age` that is not one number is ignored.
    #[test]
    fn age_is_taken_off_the_freshness() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut h = http::HeaderMap::new();
            for (name, value) in pairs {
                h.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(value).unwrap(),
                );
            }
            h
        };
        let secs = |n| Some(Duration::from_secs(n));
        for (pairs, left) in [
            (
                &[("cache-control", "max-age=100000"), ("age", "99995")][..],
                secs(5),
            ),
            (
                &[("cache-control", "max-age=60"), ("age", "600")][..],
                secs(0),
            ),
            (&[("cache-control", "max-age=60")][..], secs(60)),
            (
                &[("cache-control", "max-age=60"), ("age", "soon")][..],
                secs(60),
            ),
            (
                &[("cache-control", "max-age=60"), ("age", "-5")][..],
                secs(60),
            ),
            // A list: its first member (RFC 9111 section 5.1).
            (
                &[("cache-control", "max-age=60"), ("age", "5"), ("age", "7")][..],
                secs(55),
            ),
            (
                &[("cache-control", "max-age=100000"), ("age", "99995, 1")][..],
                secs(5),
            ),
            (
                &[
                    ("cache-control", "max-age=100000"),
                    ("age", "1"),
                    ("age", "99995"),
                ][..],
                secs(99_999),
            ),
            (&[("cache-control", "no-store"), ("age", "5")][..], secs(0)),
            (&[("age", "5")][..], None),
            (&[][..], None),
        ] {
            assert_eq!(freshness_left(&headers(pairs)), left, "{pairs:?}");
        }
    }

    // RFC 9111 section 5.2.2.
    #[test]
    fn cache_control_directives() {
        assert_eq!(cache_max_age("max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(
            cache_max_age("public, MAX-AGE=\"120\", must-revalidate"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(cache_max_age("max-age=60, no-cache"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("max-age=soon"), None);
        assert_eq!(cache_max_age("max-age=-1"), None);
        assert_eq!(cache_max_age("max-age=+5"), None);
        assert_eq!(
            cache_max_age("max-age=99999999999999999999999"),
            Some(Duration::from_secs(1 << 31))
        );
        assert_eq!(cache_max_age("public"), None);
        assert_eq!(cache_max_age(""), None);
    }

    // RFC 8414 section 3.1 and the MCP spec's discovery order.
    #[test]
    fn discovery_order_with_and_without_path() {
        let urls: Vec<String> = discovery_urls("https://auth.example.com/tenant1")
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            urls,
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        let urls: Vec<String> = discovery_urls("https://auth.example.com")
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            urls,
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
    }
}
