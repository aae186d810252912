//! HTTP-level rules of the MCP streamable HTTP transport that the layer
//! enforces before (or instead of) authentication: one `Host`, an allowed
//! `Origin`, CORS preflights answered here, the protocol revision of a
//! request, and the non-OAuth error responses (JSON-RPC `-32020`, 403, 429).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, CONNECTION, CONTENT_ENCODING, CONTENT_TYPE, HOST, ORIGIN,
    RETRY_AFTER, TRANSFER_ENCODING, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

/// The first protocol revision without sessions, whose requests carry
/// `Mcp-Method` / `Mcp-Name`.
pub(crate) const STATELESS_REVISION: &str = "2026-07-28";
// Header names as `HeaderName` constants: a lookup by a `&str` name parses
// and hashes the name on every request.
pub(crate) const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
pub(crate) const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
pub(crate) use crate::operation::METHOD_HEADER;

/// Headers a browser client may send to the MCP endpoint (its own
/// correlation id included).
const ALLOW_HEADERS: &str = "authorization, content-type, accept, mcp-protocol-version, \
mcp-session-id, mcp-method, mcp-name, last-event-id, dpop, x-request-id";
/// Response headers a browser client may read: the challenge, the session,
/// the DPoP nonce, the correlation id (to quote in a report).
const EXPOSE_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, \
Retry-After, DPoP-Nonce, X-Request-Id";
const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// The methods a server without sessions (`stateless_only`) takes: its GET
/// and DELETE are 405 (found from outside: the preflight named them).
const ALLOW_METHODS_STATELESS: &str = "POST, OPTIONS";

/// A request-level refusal that is not about the token: no Bearer
/// challenge, a JSON body with a stable `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// RFC 9112 section 3.2: more than one `Host` field.
    DuplicateHost,
    /// More than one `MCP-Protocol-Version` field on an MCP request: which
    /// revision rules it cannot be told (rmcp reads the first; the
    /// layer's rules would read none).
    DuplicateProtocolVersion,
    /// RFC 9112 section 3.2: an HTTP/1.1 request without a `Host` field;
    /// RFC 9113 section 8.3.1: an HTTP/2 one without `Host` or
    /// `:authority`; an MCP request naming no host at all (HTTP/1.0).
    MissingHost,
    /// RFC 9112 section 3.2: a `Host` value (or, without one, an HTTP/2
    /// `:authority`) that is not `uri-host [":" port]`.
    InvalidHost,
    /// RFC 9112 section 3.2.2 / RFC 9113 section 8.3.1: the request target
    /// names an authority (absolute form, HTTP/2 `:authority`) other than
    /// the `Host` field.
    HostMismatch,
    /// RFC 9112 section 3.2.2 / RFC 9113 section 8.3.1: an absolute-form
    /// target (or HTTP/2 `:scheme`) naming a scheme other than `http` or
    /// `https` (`POST ftp://host/mcp`): the request is not for an HTTP
    /// resource, so not for this one.
    InvalidTargetScheme,
    /// MCP streamable HTTP (DNS rebinding): the request's host (`Host`,
    /// else the target's authority) is not one `McpServer` serves.
    HostNotAllowed,
    /// MCP streamable HTTP: `Origin` present and not allowed.
    OriginNotAllowed,
    /// RFC 9110 section 15.5.14: a body over the cap of the body read for
    /// per-operation rules (`max_body_bytes`).
    BodyTooLarge,
    /// A body holding more JSON values than the layer reads
    /// (`max_json_values`): what rmcp would build from it is a hundred
    /// times its size.
    BodyTooComplex,
    /// RFC 9110 section 8.4: a request body with a content coding (neither
    /// the layer nor rmcp decodes one).
    UnsupportedContentEncoding,
    /// RFC 9112 section 6.1: a `Transfer-Encoding` other than `chunked`
    /// alone (`gzip, chunked`, `chunked, chunked`, ...). hyper undoes the
    /// chunking and hands the rest on still coded, and something in front
    /// that reads the field otherwise frames or decodes the body otherwise.
    UnsupportedTransferCoding,
    /// A session cap is reached (see `max_sessions_per_principal`).
    TooManySessions(&'static str),
    /// The caller's user holds `max_listens_per_principal` open
    /// `subscriptions/listen` streams already.
    TooManyListens,
    /// The caller's user (the peer, unauthenticated) has
    /// `max_pending_bodies_per_principal` bodies waited for already, or
    /// they would hold more than `max_pending_body_bytes_per_principal`.
    TooManyPendingBodies,
    /// The process waits for `max_pending_bodies` bodies already, or they
    /// would hold more than `max_pending_body_bytes`.
    PendingBodiesFull,
    /// The caller's user has answers not yet taken by its clients holding
    /// `max_unsent_answer_bytes_per_principal` (this answer dropped).
    TooManyUnsentAnswers,
    /// The process has answers not yet taken holding
    /// `max_unsent_answer_bytes` (this answer dropped).
    UnsentAnswersFull,
    /// The caller's user has `max_answer_streams_per_principal` event-stream
    /// answers in progress (this one dropped).
    TooManyAnswerStreams,
    /// Sessions are off (`stateless_only`) and the request names one.
    SessionsDisabled,
    /// The shared store holding session owners did not answer in time:
    /// the session cannot be checked (or bound), so it is refused.
    SessionStoreUnavailable,
    /// The store of task owners did not answer (or could not record a new
    /// task's owner): the task request cannot be checked, so it is refused.
    TaskStoreUnavailable,
}

impl Refused {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::DuplicateHost => "duplicate_host",
            Self::DuplicateProtocolVersion => "duplicate_protocol_version",
            Self::MissingHost => "missing_host",
            Self::InvalidHost => "invalid_host",
            Self::HostMismatch => "host_mismatch",
            Self::InvalidTargetScheme => "invalid_target_scheme",
            Self::HostNotAllowed => "host_not_allowed",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::UnsupportedContentEncoding => "unsupported_content_encoding",
            Self::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyTooComplex => "body_too_complex",
            Self::TooManySessions(code) => code,
            Self::TooManyListens => "too_many_listens_for_principal",
            Self::TooManyPendingBodies => "too_many_pending_bodies_for_principal",
            Self::PendingBodiesFull => "too_many_pending_bodies",
            Self::TooManyUnsentAnswers => "too_many_unsent_answers_for_principal",
            Self::UnsentAnswersFull => "too_many_unsent_answers",
            Self::TooManyAnswerStreams => "too_many_answer_streams_for_principal",
            Self::SessionsDisabled => "sessions_disabled",
            Self::SessionStoreUnavailable | Self::TaskStoreUnavailable => "store_unavailable",
        }
    }

    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::DuplicateHost => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request has more than one Host header field",
            ),
            Self::DuplicateProtocolVersion => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request has more than one MCP-Protocol-Version header field: send the revision once",
            ),
            Self::MissingHost => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request needs a Host header field (or an HTTP/2 :authority)",
            ),
            Self::InvalidHost => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The Host header field is not a host and optional port",
            ),
            Self::HostMismatch => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request target names another host than the Host header field",
            ),
            Self::InvalidTargetScheme => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request target names a scheme other than http or https",
            ),
            Self::HostNotAllowed => (
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                "The Host of this request is not one this server serves",
            ),
            Self::OriginNotAllowed => (
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "The Origin of this request is not allowed",
            ),
            Self::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "The request body is larger than this server accepts",
            ),
            Self::BodyTooComplex => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "The request body holds more JSON values than this server accepts",
            ),
            Self::UnsupportedContentEncoding => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "The request body has a Content-Encoding; send it uncompressed",
            ),
            Self::UnsupportedTransferCoding => (
                StatusCode::NOT_IMPLEMENTED,
                "invalid_request",
                "The request body has a transfer coding other than chunked; send it with Content-Length or chunked alone",
            ),
            Self::TooManySessions(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sessions",
                "Too many open sessions; close one or retry later",
            ),
            Self::TooManyListens => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_listens",
                "Too many open event streams (subscriptions/listen, or the GET stream of a legacy session) for this user; close one or retry later",
            ),
            Self::TooManyPendingBodies => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_pending_bodies",
                "Too many requests of this user, or too many bytes of theirs, are waiting for their bodies; retry later",
            ),
            Self::PendingBodiesFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server is waiting for too many request bodies; retry later",
            ),
            Self::TooManyUnsentAnswers => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_unsent_answers",
                "Too many bytes of this user's answers wait for their clients to read them; the call was carried out but its answer was dropped: read your answers, then retry",
            ),
            Self::UnsentAnswersFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server holds too many answers not yet taken by their clients; the call was carried out but its answer was dropped: retry later",
            ),
            Self::TooManyAnswerStreams => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_answer_streams",
                "This user has too many event-stream answers in progress; the call was carried out but its answer was dropped: read your streams, then retry",
            ),
            Self::SessionsDisabled => (
                StatusCode::NOT_FOUND,
                "session_not_found",
                "This server serves the stateless protocol only",
            ),
            Self::SessionStoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Session state is temporarily unavailable; retry later",
            ),
            Self::TaskStoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Task state is temporarily unavailable; retry later",
            ),
        }
    }

    pub(crate) fn response(self, request_id: Option<&str>) -> Response {
        let (status, error, description) = self.parts();
        let body =
            crate::challenge::json_error_body(Some(error), description, self.reason(), request_id);
        let mut response = (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response();
        crate::challenge::error_headers(response.headers_mut());
        let retry_after = match self {
            Self::TooManySessions(_) | Self::TooManyListens => Some("60"),
            Self::SessionStoreUnavailable
            | Self::TaskStoreUnavailable
            | Self::TooManyPendingBodies
            | Self::PendingBodiesFull
            | Self::TooManyUnsentAnswers
            | Self::UnsentAnswersFull
            | Self::TooManyAnswerStreams => Some("1"),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(secs));
        }
        if self == Self::UnsupportedTransferCoding {
            // RFC 9112 section 6.1: the message's framing is not one this
            // server shares with whatever sent it, so the bytes after it on
            // the connection are not trusted to start a request.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self == Self::UnsupportedContentEncoding {
            // RFC 9110 section 12.5.3: the codings a request may use.
            response
                .headers_mut()
                .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        response
    }
}

/// `,"request_id":"..."` for a JSON error body, or nothing (the id is
/// `[A-Za-z0-9._:-]` only).
pub(crate) fn request_id_member(request_id: Option<&str>) -> String {
    request_id.map_or_else(String::new, |id| format!(",\"request_id\":\"{id}\""))
}

/// The 429 of a throttled request: `Retry-After` in whole seconds, the JSON
/// body `{"error":"too_many_requests", ..., "reason", "request_id"}`.
pub(crate) fn throttled_response(
    reason: &str,
    retry_after: u64,
    request_id: Option<&str>,
) -> Response {
    let body = crate::challenge::json_error_body(
        Some("too_many_requests"),
        "Too many failed or unauthenticated requests; retry later",
        reason,
        request_id,
    );
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response();
    crate::challenge::error_headers(response.headers_mut());
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// RFC 9112 section 3.2: a request with more than one `Host`, an HTTP/1.1
/// request without one, or a `Host` value that is not `uri-host [":"
/// port]` is a 400. RFC 9113 section 8.3.1: an HTTP/2 (or later) request
/// without `Host` must carry `:authority`, itself without userinfo (the
/// same `uri-host [":" port]`). And the request has one host: a target
/// that names an authority (the absolute form of RFC 9112 section 3.2.2,
/// HTTP/2 `:authority`) must name the `Host` field's (compared without
/// case), so that nothing behind the layer judges a Host the target
/// contradicts (rmcp's DNS-rebinding check reads the field, else the
/// authority). An HTTP/1.0 request may name no host at all: see
/// [`names_no_host`].
pub(crate) fn check_host(version: Version, uri: &Uri, hosts: &FieldValues) -> Result<(), Refused> {
    let host = match (hosts.first(), hosts.repeated()) {
        (Some(_), true) => return Err(Refused::DuplicateHost),
        (Some(host), false) => host,
        (None, _) if version == Version::HTTP_11 => return Err(Refused::MissingHost),
        (None, _) => {
            return match uri.authority() {
                Some(authority) if !is_host_value(authority.as_str().as_bytes()) => {
                    Err(Refused::InvalidHost)
                }
                Some(_) if !http_scheme(uri) => Err(Refused::InvalidTargetScheme),
                Some(_) => Ok(()),
                None if version >= Version::HTTP_2 => Err(Refused::MissingHost),
                // HTTP/1.0 may omit it (judged on MCP requests only).
                None => Ok(()),
            };
        }
    };
    if !is_host_value(host.as_bytes()) {
        return Err(Refused::InvalidHost);
    }
    if !http_scheme(uri) {
        return Err(Refused::InvalidTargetScheme);
    }
    match uri.authority() {
        Some(authority)
            if !same_authority(uri.scheme_str(), authority.as_str(), host.as_bytes()) =>
        {
            Err(Refused::HostMismatch)
        }
        _ => Ok(()),
    }
}

/// Whether a target names no scheme (origin form) or `http` / `https`, in
/// any case (RFC 9110 section 4.2.3: the scheme is case-insensitive). Found
/// from outside: `POST ftp://host/mcp` was served as `/mcp`.
fn http_scheme(uri: &Uri) -> bool {
    uri.scheme_str()
        .is_none_or(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
}

/// Whether a target's authority and a `Host` value name the same host and
/// port: compared without case, and without the scheme's default port on
/// either side (RFC 9110 section 4.2.3: `https://h:443/` is `https://h/`;
/// found from outside: `POST https://h:443/mcp` with `Host: h` was refused
/// as a mismatch).
fn same_authority<'a>(scheme: Option<&str>, authority: &'a str, host: &'a [u8]) -> bool {
    let default: &[u8] = match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") => b":80",
        Some(s) if s.eq_ignore_ascii_case("https") => b":443",
        _ => b"",
    };
    let bare = |value: &'a [u8]| -> &'a [u8] {
        if default.is_empty() {
            value
        } else {
            value.strip_suffix(default).unwrap_or(value)
        }
    };
    bare(authority.as_bytes()).eq_ignore_ascii_case(bare(host))
}

/// Whether a request names no host at all: no `Host` field and a target
/// without an authority (an HTTP/1.0 request may be so, RFC 9112 section
/// 3.2). rmcp cannot judge its DNS-rebinding rule on such a request and
/// refuses it in plain text after the token was verified; the layer
/// refuses it on MCP requests first (`missing_host`).
pub(crate) fn names_no_host(uri: &Uri, present: &Present) -> bool {
    uri.authority().is_none() && !present.host
}

/// Which of the fields the layer's rules read a request carries, found in
/// one pass over its field names (each name once, however many fields it
/// has). Most rules are about a field most requests do not carry (`Origin`,
/// `Content-Encoding`, `Transfer-Encoding`, `DPoP`, session fields on a
/// stateless call): with this, such a rule costs no hashed lookup in the
/// header map (about 110 to 200 instructions each; BENCHMARKS.md, twentieth
/// pass). A rule about a field that is present still reads every one of its
/// fields from the map.
///
/// Taken once, before anything changes the headers; the layer only removes
/// fields after that (and puts back an `Authorization` an outer layer took,
/// which [`Present::authorization`] does not see: it is read first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Present {
    pub(crate) host: bool,
    pub(crate) authorization: bool,
    pub(crate) dpop: bool,
    pub(crate) origin: bool,
    pub(crate) preflight_method: bool,
    pub(crate) content_encoding: bool,
    pub(crate) transfer_encoding: bool,
    pub(crate) session: bool,
    pub(crate) last_event_id: bool,
    pub(crate) method: bool,
    pub(crate) protocol: bool,
    /// A field that relays a caller's credential ([`relays_credentials`]).
    pub(crate) relayed_credentials: bool,
}

/// Whether a field besides `Authorization` and `DPoP` carries a caller's
/// credential or identity assertion to this server, by its name's ending
/// (`-` or `_` between words): `*authorization` (`Proxy-Authorization`,
/// RFC 9110 section 11.7.2, which a client or a proxy chain may send on;
/// Google ESPv2's `X-Forwarded-Authorization`, AWS API Gateway's
/// `X-Amzn-Remapped-Authorization`, `X-Authorization`), `*access-token`,
/// `*accesstoken`, `*refresh-token`, `*id-token` (oauth2-proxy's
/// `X-Forwarded-Access-Token` and `X-Auth-Request-Access-Token`, AWS ALB's
/// `X-Amzn-Oidc-Accesstoken`, Azure App Service's
/// `X-MS-TOKEN-AAD-ACCESS-TOKEN`, `-ID-TOKEN` and `-REFRESH-TOKEN`) and
/// `*-assertion` (Google IAP's `X-Goog-IAP-JWT-Assertion`, Cloudflare
/// Access's `Cf-Access-Jwt-Assertion`), `*auth-token` (`X-Auth-Token`,
/// `X-OAuth-Token`) and `*authentication` (`Authentication: Bearer ...`,
/// the misspelling some clients send; both found from outside), and AWS
/// ALB's
/// `X-Amzn-Oidc-Data`: the fields gateways put the caller's tokens in when
/// they take the `Authorization` header for themselves. None is read as a
/// credential; each is removed before the handlers see the request, as
/// `Authorization` is (no token passthrough), unless the unsafe forwarding
/// opt-out keeps them (marked sensitive). A name is a rule rather than a
/// list, so that the next gateway's spelling is caught too (found from
/// outside: a list of five missed Azure's, then an underscore).
pub(crate) fn relays_credentials(name: &HeaderName) -> bool {
    let name = name.as_str();
    if name == "x-amzn-oidc-data" {
        return true;
    }
    // `Authorization` itself is the credential, read and taken off apart.
    if name == "authorization" {
        return false;
    }
    // Every ending below ends in `n`: most names are told by one byte.
    if !name.ends_with('n') {
        return false;
    }
    let words = |ending: &str, separator: u8| -> bool {
        let Some(start) = name.len().checked_sub(ending.len()) else {
            return false;
        };
        name.as_bytes()
            .iter()
            .skip(start)
            .zip(ending.bytes())
            .all(|(&got, want)| got == want || (want == b'-' && got == separator))
    };
    [
        "authorization",
        "access-token",
        "accesstoken",
        "refresh-token",
        "id-token",
        "auth-token",
        "authentication",
        "-assertion",
    ]
    .iter()
    .any(|ending| words(ending, b'_'))
}

/// The values of one field as [`Present::scan`] found them: the first,
/// and whether another followed.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldValues {
    first: Option<HeaderValue>,
    repeated: bool,
}

impl FieldValues {
    fn see(&mut self, value: &HeaderValue) {
        if self.first.is_none() {
            self.first = Some(value.clone());
        } else {
            self.repeated = true;
        }
    }

    /// The first value (what `HeaderMap::get` answers).
    pub(crate) fn first(&self) -> Option<&HeaderValue> {
        self.first.as_ref()
    }

    /// The first value, taken out (the rest of what was seen stays).
    pub(crate) fn take_first(&mut self) -> Option<HeaderValue> {
        self.first.take()
    }

    /// The value when the field is there exactly once.
    pub(crate) fn single(&self) -> Option<&HeaderValue> {
        self.first.as_ref().filter(|_| !self.repeated)
    }

    /// Whether the field is there more than once.
    pub(crate) fn repeated(&self) -> bool {
        self.repeated
    }
}

/// The values of the fields every request's rules and audit events read
/// (`Host`, and the MCP fields `MCP-Protocol-Version`, `Mcp-Method`,
/// `Mcp-Name`), taken in the same pass as [`Present`]: each rule and the
/// audit metadata looked them up in the header map again (`Host` and
/// `MCP-Protocol-Version` twice a request, the others once; a hashed lookup
/// costs about 110 to 200 instructions; BENCHMARKS.md, twenty-fifth pass).
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    pub(crate) host: FieldValues,
    pub(crate) protocol: FieldValues,
    pub(crate) method: FieldValues,
    pub(crate) name: FieldValues,
}

impl Present {
    /// The fields of `headers` the rules read.
    #[cfg(test)]
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        Self::scan(headers).0
    }

    /// The fields of `headers` the rules read, and the values of those in
    /// [`Fields`]: one pass over the map's entries.
    pub(crate) fn scan(headers: &HeaderMap) -> (Self, Fields) {
        let mut present = Self::default();
        let mut fields = Fields::default();
        // `HeaderName` equality compares a standard name's tag, or a
        // custom name's length before its bytes: a few instructions a name.
        for (name, value) in headers {
            let flag = if name == HOST {
                fields.host.see(value);
                &mut present.host
            } else if name == http::header::AUTHORIZATION {
                &mut present.authorization
            } else if name == ORIGIN {
                &mut present.origin
            } else if name == CONTENT_ENCODING {
                &mut present.content_encoding
            } else if name == TRANSFER_ENCODING {
                &mut present.transfer_encoding
            } else if name == ACCESS_CONTROL_REQUEST_METHOD {
                &mut present.preflight_method
            } else if name == crate::bearer::DPOP {
                &mut present.dpop
            } else if name == SESSION_HEADER {
                &mut present.session
            } else if name == LAST_EVENT_ID {
                &mut present.last_event_id
            } else if name == METHOD_HEADER {
                fields.method.see(value);
                &mut present.method
            } else if name == PROTOCOL_HEADER {
                fields.protocol.see(value);
                &mut present.protocol
            } else if relays_credentials(name) {
                &mut present.relayed_credentials
            } else {
                if name == crate::operation::NAME_HEADER {
                    fields.name.see(value);
                }
                continue;
            };
            *flag = true;
        }
        (present, fields)
    }
}

/// Whether a `Last-Event-ID` names anything but the standalone stream:
/// rmcp's standalone (common) stream has event ids of digits only, a
/// 64-bit count; the stream of one request has `<index>/<request>`, and any
/// other spelling (an event store's ids, two fields) is judged as one, fail
/// closed. Digits past the count's range name no event either (found from
/// outside: rmcp answered them with a stream that ended at once, which an
/// SSE client reconnects to in a loop): removed too, a plain stream opens.
pub(crate) fn resumes_a_request_stream(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(LAST_EVENT_ID).iter();
    match (values.next(), values.next()) {
        (None, _) => false,
        (Some(v), None) => {
            let v = v.as_bytes();
            v.is_empty()
                || !v.iter().all(u8::is_ascii_digit)
                || std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_none()
        }
        (Some(_), Some(_)) => true,
    }
}

/// RFC 9110 section 8.4: whether the request body is content-coded: any
/// `Content-Encoding` member other than `identity` (no coding), in any of
/// its fields. Neither the layer nor rmcp decodes a body, so one that says
/// it is coded is never read as if it were not.
pub(crate) fn has_content_coding(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().any(|value| {
        value.as_bytes().split(|&c| c == b',').any(|member| {
            let member = member.trim_ascii();
            !member.is_empty() && !member.eq_ignore_ascii_case(b"identity")
        })
    })
}

/// RFC 9112 sections 6.1 and 7: whether a request's `Transfer-Encoding`
/// fields name anything but one `chunked` (any case). hyper refuses a list
/// whose last coding is not `chunked` (and the field on HTTP/1.0), but
/// undoes the chunking and hands the body on with any coding listed before
/// it still applied (`gzip, chunked`), and decodes `chunked, chunked` once:
/// neither the layer nor rmcp would read the body as sent.
pub(crate) fn has_transfer_coding(headers: &HeaderMap) -> bool {
    let mut fields = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if fields.peek().is_none() {
        return false;
    }
    let mut chunked = 0usize;
    for value in fields {
        for member in value.as_bytes().split(|&c| c == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            if !member.eq_ignore_ascii_case(b"chunked") {
                return true;
            }
            chunked += 1;
        }
    }
    chunked != 1
}

/// RFC 9110 section 7.2 / RFC 3986 section 3.2: `uri-host [":" port]`,
/// where `uri-host` is an IP literal in brackets or a reg-name (unreserved,
/// percent-encoded or sub-delims characters: never `@`, `/`, `?`, `#`, `:`
/// or a space) and `port` is digits. The host is never empty: the layer
/// serves `http(s)` resources, and RFC 9110 section 4.2.1 has a recipient
/// reject an `http` URI with an empty host.
fn is_host_value(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(end) = value.iter().position(|&c| c == b']') else {
            return false;
        };
        let (literal, rest) = value.split_at(end + 1);
        let inner = literal.get(1..end).unwrap_or_default();
        let literal_ok = !inner.is_empty()
            && inner
                .iter()
                // RFC 6874: an IPv6 zone id is `%25` and unreserved characters.
                .all(|&c| c.is_ascii_alphanumeric() || b":._~!$&'()*+,;=%-".contains(&c));
        if !literal_ok {
            return false;
        }
        match rest.split_first() {
            None => return true,
            Some((b':', port)) => (None, port),
            Some(_) => return false,
        }
    } else {
        match value.iter().rposition(|&c| c == b':') {
            Some(i) => (value.get(..i), value.get(i + 1..).unwrap_or_default()),
            None => (Some(value), &[][..]),
        }
    };
    let reg_name_ok = host.is_none_or(|host| {
        !host.is_empty()
            && host.iter().enumerate().all(|(i, &c)| match c {
                b'%' => host
                    .get(i + 1..i + 3)
                    .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)),
                c => c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c),
            })
    });
    reg_name_ok && is_port(port)
}

/// RFC 3986 section 3.2.3 `port = *DIGIT` (empty included, leading zeros
/// too), whose value a TCP port can hold (RFC 9293 section 3.1: 16 bits).
/// Found from outside: `127.0.0.1:99999` and `:4294967297` were served as
/// the resource's host, where the documentation says a `Host` that is not
/// a host and port is refused.
fn is_port(port: &[u8]) -> bool {
    port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |value, &digit| {
            value
                .saturating_mul(10)
                .saturating_add(u32::from(digit.wrapping_sub(b'0')))
        }) <= u32::from(u16::MAX)
}

/// The request's `Origin`, when present: `Ok(None)` absent, `Ok(Some)`
/// allowed, `Err` present and not allowed (also: two `Origin` fields,
/// `null`, not a tuple origin, not exactly its RFC 6454 serialization).
/// `present` says whether to look (most requests carry no `Origin`).
pub(crate) fn check_origin<'h>(
    present: &Present,
    headers: &'h HeaderMap,
    allowed: &Origins,
) -> Result<Option<&'h HeaderValue>, Refused> {
    if !present.origin {
        return Ok(None);
    }
    let mut origins = headers.get_all(ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(None);
    };
    if origins.next().is_some() {
        return Err(Refused::OriginNotAllowed);
    }
    // Only an exact RFC 6454 serialization is an origin (what browsers
    // send): another spelling of one (a trailing slash, an explicit or
    // zero-padded default port, uppercase) is refused, never echoed.
    let text = origin.to_str().map_err(|_| Refused::OriginNotAllowed)?;
    let normalized = crate::config::normalize_origin(text)
        .filter(|normalized| normalized == text)
        .ok_or(Refused::OriginNotAllowed)?;
    if allowed.list.contains(&normalized)
        || (allowed.any_loopback && crate::config::is_loopback_origin(&normalized))
    {
        Ok(Some(origin))
    } else {
        Err(Refused::OriginNotAllowed)
    }
}

/// The `Host` allowlist of the rmcp service behind `McpServer`, read as
/// rmcp reads it (its `allowed_hosts`): an entry is a host (any port) or
/// `host:port`; hosts compare without case and without IPv6 brackets; the
/// request's host is its first `Host` field, else its target's authority.
/// The layer applies it before the token, so that a request for another
/// host (a DNS-rebinding page's) gets the layer's documented 403 rather
/// than rmcp's plain-text one after its token was verified.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedHosts(Vec<(String, Option<u16>)>);

impl AllowedHosts {
    pub(crate) fn new(hosts: &[String]) -> Self {
        Self(
            hosts
                .iter()
                .map(|h| h.trim())
                .filter(|h| !h.is_empty())
                .map(|h| match http::uri::Authority::try_from(h) {
                    Ok(authority) => (normalize_host(authority.host()), authority.port_u16()),
                    Err(_) => (normalize_host(h), None),
                })
                .collect(),
        )
    }

    /// Whether the request's host is allowed (always, for an empty list,
    /// as rmcp). A host that cannot be read is not.
    /// `host`: the request's first `Host` value ([`FieldValues::first`]).
    pub(crate) fn admits(&self, uri: &Uri, host: Option<&HeaderValue>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let named = match host {
            Some(host) => {
                // The usual `Host` (a name or an IPv4 address, an optional
                // port) is compared in place: no parse into an `Authority`
                // and no lowercase copy on every request.
                if let Some((host, port)) = plain_host_port(host.as_bytes()) {
                    return self.admits_parts(host, port);
                }
                host.to_str()
                    .ok()
                    .and_then(|h| http::uri::Authority::try_from(h).ok())
            }
            None => uri.authority().cloned(),
        };
        let Some(named) = named else {
            return false;
        };
        self.admits_parts(&normalize_host(named.host()), named.port_u16())
    }

    /// `host` (without brackets; any case) and `port` against the list.
    fn admits_parts(&self, host: &str, port: Option<u16>) -> bool {
        self.0.iter().any(|(allowed, allowed_port)| {
            allowed.eq_ignore_ascii_case(host) && allowed_port.is_none_or(|p| Some(p) == port)
        })
    }
}

/// A `Host` value made only of a name (letters, digits, `.`, `-`) and an
/// optional port of one to five digits: its host and port as
/// [`http::uri::Authority`] reads them. `None` for anything else (IPv6
/// literals, percent-encoding, an empty port, ...), which takes the
/// general path.
fn plain_host_port(value: &[u8]) -> Option<(&str, Option<u16>)> {
    let (host, port) = match memchr::memchr(b':', value) {
        Some(i) => (value.get(..i)?, Some(value.get(i + 1..)?)),
        None => (value, None),
    };
    if host.is_empty()
        || !host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits)
            if (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            // Five digits over 65535 are a port `Authority` cannot read
            // as a u16 either.
            std::str::from_utf8(digits).ok()?.parse::<u16>().ok()
        }
        Some(_) => return None,
    };
    Some((std::str::from_utf8(host).ok()?, port))
}

/// A host as rmcp compares it: without IPv6 brackets, lowercase.
fn normalize_host(host: &str) -> String {
    host.trim_matches('[')
        .trim_matches(']')
        .to_ascii_lowercase()
}

/// The origins a layer allows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    /// Serialized origins (RFC 6454), compared exactly.
    pub(crate) list: Vec<String>,
    /// Every loopback origin too (the resource is on loopback).
    pub(crate) any_loopback: bool,
}

/// Whether an `OPTIONS` request is a CORS preflight.
pub(crate) fn is_preflight(method: &Method, present: &Present) -> bool {
    method == Method::OPTIONS && present.origin && present.preflight_method
}

/// The answer to an allowed CORS preflight (the layer answers it: a
/// preflight carries no credentials and never reaches the service); the
/// methods named are those of sessions only when `sessions` are on.
pub(crate) fn preflight_response(origin: &HeaderValue, sessions: bool) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(if sessions {
            ALLOW_METHODS
        } else {
            ALLOW_METHODS_STATELESS
        }),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    headers.insert(VARY, HeaderValue::from_static("Origin"));
    response
}

/// Lets a browser at an allowed origin read the response (the challenge
/// included).
pub(crate) fn add_cors(response: &mut Response, origin: &HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.append(VARY, HeaderValue::from_static("Origin"));
}

/// Whether the request declares the stateless revision (2026-07-28 or a
/// later dated revision) in `MCP-Protocol-Version`. Revisions are dates,
/// so they compare as strings; a malformed value is not stateless.
/// `value`: the request's `MCP-Protocol-Version` when it has exactly one
/// ([`FieldValues::single`]; two values are not trusted).
pub(crate) fn is_stateless_revision(value: Option<&HeaderValue>) -> bool {
    let Some(v) = value else {
        return false;
    };
    let Ok(v) = v.to_str() else { return false };
    let b = v.as_bytes();
    let dated = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    dated && v >= STATELESS_REVISION
}

/// Whether `MCP-Protocol-Version` is absent (rmcp then takes its default
/// revision) or there once, naming a revision rmcp serves
/// ([`rmcp::model::ProtocolVersion::KNOWN_VERSIONS`], byte for byte: a
/// value that is not text is not known), from the values the request's one
/// pass over its fields kept. The newest revision is compared first: a
/// stateless call's answer is known after one comparison.
pub(crate) fn known_revision(protocol: &FieldValues) -> bool {
    match protocol.single() {
        Some(value) => rmcp::model::ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .rev()
            .any(|known| known.as_str().as_bytes() == value.as_bytes()),
        None => !protocol.repeated(),
    }
}

/// What is wrong with a 2026-07-28 request's `Mcp-Method` / `Mcp-Name`
/// headers (see [`header_mismatch_response`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderFault {
    /// A header is present and names another method or target than the
    /// body, or is repeated.
    Differs,
    /// A header the request needs is absent.
    Missing,
    /// A batch: 2026-07-28 has none, and one message's headers cannot
    /// describe several.
    Batch,
}

/// MCP 2026-07-28 "Transports": a header/body mismatch, a missing required
/// header included, is a 400 with the JSON-RPC error `-32020`
/// (HeaderMismatch), not an OAuth error, so that a modern client does not
/// mistake it for a legacy server. The message says which (found from
/// outside: a missing header was said not to match). `id` is the raw JSON
/// id of the single request, when there is one.
pub(crate) fn header_mismatch_response(
    fault: HeaderFault,
    id: Option<&str>,
    request_id: Option<&str>,
) -> Response {
    let message = match fault {
        HeaderFault::Differs => {
            "Header mismatch: the Mcp-Method or Mcp-Name header does not match the request body"
        }
        HeaderFault::Missing => {
            "Header mismatch: a required header is missing (Mcp-Method, and Mcp-Name for tools/call, prompts/get, resources/read, resources/subscribe, resources/unsubscribe, tasks/get, tasks/update and tasks/cancel)"
        }
        HeaderFault::Batch => {
            "Header mismatch: the 2026-07-28 revision has no batches; send one message per request with its Mcp-Method and Mcp-Name headers"
        }
    };
    jsonrpc_error(
        id,
        request_id,
        -32020,
        message,
        crate::error::AuthErrorKind::McpHeaderMismatch,
    )
}

/// A legacy session request whose JSON-RPC id cannot be used now
/// ([`AuthErrorKind::RequestIdInUse`](crate::error::AuthErrorKind::RequestIdInUse),
/// [`AuthErrorKind::TooManyRequestsInFlight`](crate::error::AuthErrorKind::TooManyRequestsInFlight)):
/// 400 with the JSON-RPC error invalid request `-32600`. `id` is the raw
/// JSON id of the single request, when there is one.
pub(crate) fn request_id_refused(
    kind: crate::error::AuthErrorKind,
    id: Option<&str>,
    request_id: Option<&str>,
) -> Response {
    let message = match kind {
        crate::error::AuthErrorKind::RequestIdInUse => {
            "Invalid Request: the request id is in use by another request of this session"
        }
        crate::error::AuthErrorKind::RequestIdRepeated => {
            "Invalid Request: two requests of this batch carry the same id"
        }
        _ => "Invalid Request: this session has too many requests in flight",
    };
    jsonrpc_error(id, request_id, -32600, message, kind)
}

/// A body the strict reader refuses (not JSON, repeated member names, too
/// deep, not a request): a JSON-RPC error naming the rule it broke (parse
/// error `-32700`, invalid request `-32600` or invalid params `-32602`,
/// see [`Unreadable`](crate::operation::Unreadable)), so that a
/// 2026-07-28 client reads a JSON-RPC answer rather than an OAuth one.
pub(crate) fn parse_error_response(
    why: crate::operation::Unreadable,
    id: Option<&str>,
    request_id: Option<&str>,
) -> Response {
    jsonrpc_error(
        id,
        request_id,
        why.jsonrpc_code(),
        why.message(),
        crate::error::AuthErrorKind::BodyUnreadable,
    )
}

/// A 400 with a JSON-RPC error body; `message` is fixed ASCII without
/// quotes or backslashes, `id` raw JSON of a string or number.
fn jsonrpc_error(
    id: Option<&str>,
    request_id: Option<&str>,
    code: i32,
    message: &str,
    kind: crate::error::AuthErrorKind,
) -> Response {
    let body = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{{\"code\":{code},\"message\":\"{message}\",\"data\":{{\"reason\":\"{}\"{}}}}}}}",
        id.unwrap_or("null"),
        kind.code(),
        request_id_member(request_id)
    );
    let mut response = (
        StatusCode::BAD_REQUEST,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        Body::from(body),
    )
        .into_response();
    crate::challenge::error_headers(response.headers_mut());
    response.extensions_mut().insert(kind);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_stateless_revision` of a request with these headers, as the
    /// layer reads them.
    fn stateless(h: &HeaderMap) -> bool {
        is_stateless_revision(Present::scan(h).1.protocol.single())
    }

    /// Every refusal's JSON body, byte for byte as the `format!` spelling
    /// it replaced wrote it (the reference here), with and without a
    /// request id; the 429's too.
    #[test]
    fn refusal_bodies_are_spelled_as_before() {
        async fn body_of(response: Response) -> String {
            let bytes = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let all = [
            Refused::DuplicateHost,
            Refused::DuplicateProtocolVersion,
            Refused::MissingHost,
            Refused::InvalidHost,
            Refused::HostMismatch,
            Refused::HostNotAllowed,
            Refused::OriginNotAllowed,
            Refused::BodyTooLarge,
            Refused::BodyTooComplex,
            Refused::UnsupportedContentEncoding,
            Refused::UnsupportedTransferCoding,
            Refused::TooManySessions("too_many_sessions"),
            Refused::SessionsDisabled,
            Refused::SessionStoreUnavailable,
            Refused::TaskStoreUnavailable,
        ];
        for request_id in [Some("r-1"), Some("0a.B_c:d-9"), None] {
            for refused in all {
                let (status, error, description) = refused.parts();
                let expected = format!(
                    "{{\"error\":\"{error}\",\"error_description\":\"{description}\",\"reason\":\"{}\"{}}}",
                    refused.reason(),
                    request_id_member(request_id)
                );
                let response = refused.response(request_id);
                assert_eq!(response.status(), status, "{refused:?}");
                assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
                assert_eq!(runtime.block_on(body_of(response)), expected, "{refused:?}");
            }
            let expected = format!(
                "{{\"error\":\"too_many_requests\",\"error_description\":\"Too many failed or unauthenticated requests; retry later\",\"reason\":\"failed_auth\"{}}}",
                request_id_member(request_id)
            );
            let response = throttled_response("failed_auth", 7, request_id);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[RETRY_AFTER], "7");
            assert_eq!(runtime.block_on(body_of(response)), expected);
        }
    }

    // The one pass over the field names finds what a lookup of each name
    // finds, whatever the request's other fields, their order, their case
    // as sent, repeated fields, and names that differ from a rule's by one
    // character or a prefix.
    #[test]
    fn present_fields_are_those_a_lookup_finds() {
        use proptest::prelude::*;
        const NAMES: &[&str] = &[
            "Host",
            "authorization",
            "DPoP",
            "Origin",
            "access-control-request-method",
            "Content-Encoding",
            "transfer-encoding",
            "Mcp-Session-Id",
            "last-event-id",
            "MCP-Method",
            "mcp-protocol-version",
            "mcp-name",
            "x-request-id",
            "content-type",
            "hosts",
            "dpop2",
            "mcp-session-i",
            "origin-x",
            "x-mcp-method",
            "accept",
            "Proxy-Authorization",
            "x-forwarded-authorization",
            "X-Amzn-Oidc-AccessToken",
            "x-forwarded-access-tokens",
            "X-MS-TOKEN-AAD-ID-TOKEN",
            "x-authorization-hint",
            "proxy_authorization",
            "X-Goog-IAP-JWT-Assertion",
            "x-amzn-oidc-data",
        ];
        let names = proptest::collection::vec(0..NAMES.len(), 0..12);
        proptest!(|(picked in names)| {
            let mut headers = HeaderMap::new();
            // Each value tells its place, so the first is told apart.
            for (n, i) in picked.iter().enumerate() {
                let name = HeaderName::from_bytes(NAMES[*i].as_bytes()).unwrap();
                headers.append(name, HeaderValue::from_str(&format!("v{n}")).unwrap());
            }
            // The values the same pass keeps are the map's own: the first
            // (`get`), and whether there is a second.
            let (_, fields) = Present::scan(&headers);
            for (name, seen) in [
                ("host", &fields.host),
                ("mcp-protocol-version", &fields.protocol),
                ("mcp-method", &fields.method),
                ("mcp-name", &fields.name),
            ] {
                let all: Vec<_> = headers.get_all(name).iter().collect();
                prop_assert_eq!(seen.first(), all.first().copied(), "{}", name);
                prop_assert_eq!(seen.repeated(), all.len() > 1, "{}", name);
                prop_assert_eq!(seen.single(), (all.len() == 1).then(|| all[0]), "{}", name);
            }
            let expected = Present {
                host: headers.contains_key(HOST),
                authorization: headers.contains_key(http::header::AUTHORIZATION),
                dpop: headers.contains_key("dpop"),
                origin: headers.contains_key(ORIGIN),
                preflight_method: headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD),
                content_encoding: headers.contains_key(CONTENT_ENCODING),
                transfer_encoding: headers.contains_key(TRANSFER_ENCODING),
                session: headers.contains_key("mcp-session-id"),
                last_event_id: headers.contains_key("last-event-id"),
                method: headers.contains_key("mcp-method"),
                protocol: headers.contains_key("mcp-protocol-version"),
                relayed_credentials: headers.keys().any(relays_credentials),
            };
            prop_assert_eq!(Present::of(&headers), expected);
        });
    }

    // The in-place reading of a plain `Host` decides as the general one
    // (an `Authority`, a lowercase copy) on every spelling, including
    // those it hands to the general path.
    #[test]
    fn allowed_hosts_read_in_place_as_the_general_path_does() {
        fn general(list: &AllowedHosts, value: &str) -> bool {
            let Ok(named) = http::uri::Authority::try_from(value) else {
                return false;
            };
            let host = normalize_host(named.host());
            let port = named.port_u16();
            list.0.iter().any(|(allowed, allowed_port)| {
                *allowed == host && allowed_port.is_none_or(|p| Some(p) == port)
            })
        }
        let lists = [
            vec!["mcp.example.com".to_owned()],
            vec!["MCP.Example.COM:8443".to_owned(), "localhost".to_owned()],
            vec!["127.0.0.1:8080".to_owned(), "[::1]".to_owned()],
            vec!["xn--caf-dma.example".to_owned(), "h:0".to_owned()],
        ];
        let values = [
            "mcp.example.com",
            "MCP.EXAMPLE.COM",
            "mcp.example.com:8443",
            "mcp.example.com:08443",
            "mcp.example.com:99999",
            "mcp.example.com:",
            "mcp.example.com:x",
            "mcp.example.com.",
            "mcp.example.co",
            "mcp.example.com:8443:1",
            "localhost",
            "LocalHost:1",
            "127.0.0.1:8080",
            "127.0.0.1:80800",
            "127.0.0.1",
            "[::1]",
            "[::1]:8080",
            "[::2]",
            "h:0",
            "h:00000",
            "h",
            "xn--caf-dma.example",
            "caf%C3%A9.example",
            "user@mcp.example.com",
            "",
            ":8080",
        ];
        for list in &lists {
            let hosts = AllowedHosts::new(list);
            for value in values {
                let mut headers = HeaderMap::new();
                headers.insert(HOST, HeaderValue::from_str(value).unwrap());
                assert_eq!(
                    hosts.admits(
                        &Uri::from_static("/mcp"),
                        Present::scan(&headers).1.host.first()
                    ),
                    general(&hosts, value),
                    "{value:?} against {list:?}"
                );
            }
        }
    }

    // An absolute-form target names the Host's authority with or without
    // the scheme's default port (found from outside: `https://h:443/mcp`
    // with `Host: h` was a mismatch); another port, or another host, is
    // still one.
    #[test]
    fn a_default_port_names_the_same_authority() {
        let hosts = |value: &str| {
            let mut fields = FieldValues::default();
            fields.see(&HeaderValue::from_str(value).unwrap());
            fields
        };
        let check = |target: &str, host: &str| {
            check_host(Version::HTTP_11, &target.parse().unwrap(), &hosts(host))
        };
        for (target, host) in [
            ("https://h:443/mcp", "h"),
            ("https://h/mcp", "h:443"),
            ("http://H:80/mcp", "h"),
            ("http://h/mcp", "h:80"),
            ("http://[::1]:80/mcp", "[::1]"),
            ("http://h:8080/mcp", "H:8080"),
        ] {
            assert_eq!(check(target, host), Ok(()), "{target} {host}");
        }
        for (target, host) in [
            ("https://h:80/mcp", "h"),
            ("http://h:443/mcp", "h"),
            ("https://h:8443/mcp", "h"),
            ("https://h:443/mcp", "h:8443"),
            ("https://g:443/mcp", "h"),
        ] {
            assert_eq!(
                check(target, host),
                Err(Refused::HostMismatch),
                "{target} {host}"
            );
        }
    }

    // RFC 9112 section 3.2.2: an absolute-form target is for the resource
    // its scheme names; one that is not http or https is no request for
    // this server (found from outside: `POST ftp://h/mcp` was served), with
    // a Host or, HTTP/2 and HTTP/1.0, without one.
    #[test]
    fn a_target_of_another_scheme_is_refused() {
        let mut host = FieldValues::default();
        host.see(&HeaderValue::from_static("h"));
        for target in [
            "ftp://h/mcp",
            "FTP://h/mcp",
            "ws://h/mcp",
            "file://h/mcp",
            "httpx://h/mcp",
        ] {
            let uri: Uri = target.parse().unwrap();
            assert_eq!(
                check_host(Version::HTTP_11, &uri, &host),
                Err(Refused::InvalidTargetScheme),
                "{target}"
            );
            for version in [Version::HTTP_10, Version::HTTP_2] {
                assert_eq!(
                    check_host(version, &uri, &FieldValues::default()),
                    Err(Refused::InvalidTargetScheme),
                    "{target} {version:?}"
                );
            }
        }
        for target in ["http://h/mcp", "HTTPS://h/mcp", "HtTp://h/mcp", "/mcp"] {
            let uri: Uri = target.parse().unwrap();
            assert_eq!(
                check_host(Version::HTTP_11, &uri, &host),
                Ok(()),
                "{target}"
            );
        }
        assert_eq!(
            Refused::InvalidTargetScheme.response(None).status(),
            StatusCode::BAD_REQUEST
        );
    }

    // RFC 9110 section 7.2, RFC 3986 section 3.2.2: what a Host value is.
    #[test]
    fn host_values() {
        for ok in [
            "mcp.example.com",
            "MCP.example.com:443",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "h:",
            "[v1.x]",
            "[fe80::1%25eth0]:8080",
            "caf%C3%A9.example",
            "a_b~c!$&'()*+,;=",
            "127.0.0.1:65535",
            "127.0.0.1:0065535",
            "[::1]:0",
        ] {
            assert!(is_host_value(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "",
            ":8080",
            "user@host",
            "host/x",
            "host:1:2",
            "a b",
            "host?",
            "host#",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:8x",
            "host:80x",
            "%zz.example",
            "%4",
            "h\tx",
            // No TCP port (found from outside: served).
            "127.0.0.1:65536",
            "127.0.0.1:99999",
            "127.0.0.1:4294967297",
            "[::1]:184467440737095516160",
        ] {
            assert!(!is_host_value(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn stateless_revision_detection() {
        let mut h = HeaderMap::new();
        assert!(!stateless(&h));
        for (v, want) in [
            ("2026-07-28", true),
            ("2027-01-01", true),
            ("2025-11-25", false),
            ("2025-06-18", false),
            ("2026-07-2x", false),
            ("9999", false),
            ("2026-07-28 ", false),
        ] {
            h.insert(PROTOCOL_HEADER, HeaderValue::from_static(v));
            assert_eq!(stateless(&h), want, "{v}");
        }
        h.append(PROTOCOL_HEADER, HeaderValue::from_static("2026-07-28"));
        assert!(!stateless(&h), "two values: not trusted");
    }

    #[test]
    fn origins() {
        let allowed = Origins {
            list: vec!["https://mcp.example.com".to_owned()],
            any_loopback: false,
        };
        let mut h = HeaderMap::new();
        assert_eq!(check_origin(&Present::of(&h), &h, &allowed), Ok(None));
        for (v, ok) in [
            ("https://mcp.example.com", true),
            // Only the exact RFC 6454 serialization (what browsers send).
            ("HTTPS://MCP.EXAMPLE.COM", false),
            ("https://mcp.example.com:443", false),
            ("https://mcp.example.com:0443", false),
            ("https://mcp.example.com/", false),
            ("https://mcp.example.com:8443", false),
            ("http://mcp.example.com", false),
            ("https://evil.example", false),
            ("null", false),
            ("https://mcp.example.com.evil.example", false),
            ("https://mcp.example.com/path", false),
        ] {
            h.insert(ORIGIN, HeaderValue::from_static(v));
            assert_eq!(
                check_origin(&Present::of(&h), &h, &allowed).is_ok(),
                ok,
                "{v}"
            );
        }
        h.insert(ORIGIN, HeaderValue::from_static("https://mcp.example.com"));
        h.append(ORIGIN, HeaderValue::from_static("https://mcp.example.com"));
        assert!(
            check_origin(&Present::of(&h), &h, &allowed).is_err(),
            "two Origin fields"
        );
    }
}

#[cfg(test)]
mod loopback_tests {
    use super::*;

    // A local server is reached as localhost, 127.0.0.1 or [::1]: each is
    // its own origin, another port or another host is not.
    #[test]
    fn loopback_resources_allow_every_loopback_origin() {
        let resource = url::Url::parse("http://localhost:8080/mcp").unwrap();
        let allowed = Origins {
            list: vec![resource.origin().ascii_serialization()],
            any_loopback: true,
        };
        let mut h = HeaderMap::new();
        for (v, ok) in [
            ("http://localhost:8080", true),
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8080", true),
            ("http://127.0.0.1:6274", true),
            ("https://localhost", true),
            ("http://127.0.0.2:8080", true),
            ("http://localhost.evil.example:8080", false),
            ("http://evil.example:8080", false),
            ("null", false),
        ] {
            h.insert(ORIGIN, HeaderValue::from_static(v));
            assert_eq!(
                check_origin(&Present::of(&h), &h, &allowed).is_ok(),
                ok,
                "{v}"
            );
        }
        let public = url::Url::parse("https://mcp.example.com/mcp").unwrap();
        assert_eq!(
            public.origin().ascii_serialization(),
            "https://mcp.example.com"
        );
    }
}
