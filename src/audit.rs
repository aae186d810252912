//! The audit trail: one structured `tracing` event per authentication
//! decision, per authorization refusal, per throttled request and per
//! refused session, on the target [`TARGET`] (`mcp_oauth2::audit`), with
//! stable field names. Never token material: the fields are the verified
//! principal, the request's correlation id, its MCP operation and client
//! address, reason codes, and (for an operator's configuration problem) the
//! issuer or audience a refused token claimed, cut and cleaned.
//!
//! | field | meaning |
//! |---|---|
//! | `event` | `auth.accepted`, `auth.refused`, `authz.refused`, `throttled`, `session.refused`, `request.refused` (an HTTP rule: before authentication Host, `Origin`, body size or coding; after it, with the caller's fields, the session and listen caps, sessions off, a store that did not answer; a body read timeout) |
//! | `reason` | stable snake_case code (`ok`, an [`AuthErrorKind::code`](crate::AuthErrorKind::code), `issuer_not_trusted`, `failed_auth_limit`, `missing_auth_limit`, `session_not_owned`, `session_unknown`, `session_id_repeated`, ...) |
//! | `status` | the HTTP status answered |
//! | `issuer`, `subject`, `client_id`, `tenant`, `scopes` | the verified caller (`tenant`: the tenant its issuer template admitted, else its `tid` or `tenant` claim; `scopes` space-separated, each cleaned: printable ASCII only, a space inside a scope `?`) |
//! | `needed_scopes` | what the refused operation needs |
//! | `mcp_method`, `mcp_name` | the MCP operation (a POST's headers, or its body when it was read; none for another method) |
//! | `client_addr` | the client's IP address (see trusted proxies) |
//! | `request_id` | the correlation id (`X-Request-Id`) |
//! | `protocol_version` | `MCP-Protocol-Version` |
//! | `token_issuer` | `issuer_not_trusted`: `sha256:` and 16 hex digits of the issuer the token named (its text is the sender's, never logged); with a `hint` when it equals a trusted issuer but for a trailing `/` |
//! | `token_audience`, `expected_audience`, `hint` | `invalid_audience`: what the token carried (only when a trusted issuer signed it), what this server expects, and the setting that would accept it; `hint` also says which claim an `invalid_claims` refusal of the scope claims found wrong |
//! | `suppressed` | events of the same kind left unwritten by the refusal log limit since the last one written (absent when none) |
//!
//! **The refusal log limit.** A flood of refusals must not become a flood of
//! log lines: writing a WARN line cost about a third of a refused request's
//! CPU time (issue 13), and a log that grows as fast as an attacker sends is
//! a disk and pipeline problem of its own. Each refusal kind (`auth.refused`,
//! `authz.refused`, `throttled`, `session.refused`, `request.refused`; the
//! last split in two: before authentication, and naming a verified
//! caller) has its own budget,
//! 100 events a second by default
//! ([`audit_refusal_limit`](crate::AuthConfigBuilder::audit_refusal_limit),
//! `MCP_OAUTH2_AUDIT_REFUSAL_LIMIT`), so a flood of bad tokens cannot hide a
//! verified caller's `authz.refused`. The budget is spread over its window
//! (ten events at once, then one every `window / count`: see
//! `Budget::take`). Past the budget an event is counted,
//! not written: the next one written carries the count in `suppressed` (or,
//! when none is within a second, a line of its own, `audit.suppressed`,
//! naming the kind in `of`), and
//! the layer's metrics count every one (`audit_suppressed`,
//! `mcp_oauth2_audit_suppressed_total{event}`). The request counters
//! (`rejected`) count every refusal whatever the limit. `auth.accepted`
//! (INFO, off in the reference server) is never limited.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::AuthContext;
use crate::correlation::RequestId;
use crate::error::{
    AuthError, AuthErrorKind, REDACTED, holds_a_long_base64url_run, holds_a_random_run,
    looks_like_a_jwt,
};

/// The `tracing` target of every audit event.
pub(crate) const TARGET: &str = "mcp_oauth2::audit";

/// Longest header text (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`)
/// copied into an event.
const MAX_FIELD_LEN: usize = 128;

/// The kinds of audit event (the `event` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A request passed authentication and authorization.
    Accepted,
    /// A request's credentials were refused (or missing).
    Refused,
    /// A verified caller was refused the operation.
    AuthzRefused,
    /// A request was answered 429 before verification.
    Throttled,
    /// A legacy session was refused to the caller.
    SessionRefused,
    /// A request was refused by an HTTP rule before authentication: its
    /// Host or `Origin`, its body's size or coding, a session cap, a store
    /// that did not answer.
    RequestRefused,
}

impl Event {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "auth.accepted",
            Self::Refused => "auth.refused",
            Self::AuthzRefused => "authz.refused",
            Self::Throttled => "throttled",
            Self::SessionRefused => "session.refused",
            Self::RequestRefused => "request.refused",
        }
    }
}

/// What the layer knows about a request before it is authenticated: the
/// fields every event of that request carries.
#[derive(Debug, Clone)]
pub(crate) struct RequestMeta {
    pub(crate) request_id: RequestId,
    pub(crate) client_addr: Option<IpAddr>,
    pub(crate) protocol_version: Option<Field>,
    pub(crate) mcp_method: Option<Field>,
    pub(crate) mcp_name: Option<Field>,
}

/// A text field of [`RequestMeta`], kept as it came (a header value shares
/// the request's buffer: no copy) and cleaned by [`Field::text`] only when
/// an event is emitted, which most requests never do.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    /// A request header's value.
    Header(http::HeaderValue),
    /// Text read from the body (the operation of a single call).
    Text(Box<str>),
}

impl Field {
    /// The field as log text (see [`clean`]). A header in the
    /// `=?base64?...?=` form of MCP 2026-07-28 is written as the text it
    /// encodes, cleaned alike (found from outside: `mcp_name` read
    /// `=?base64?YWRkX25vdGU=?=`, and a search for `add_note` missed it);
    /// one that does not decode is written as sent.
    pub(crate) fn text(&self) -> Box<str> {
        match self {
            Self::Header(value) => match value
                .to_str()
                .ok()
                .filter(|v| v.starts_with("=?base64?"))
                .and_then(crate::operation::decode_header_value)
            {
                Some(decoded) => clean(decoded.as_bytes()),
                None => clean(value.as_bytes()),
            },
            Self::Text(text) => clean(text.as_bytes()),
        }
    }
}

impl RequestMeta {
    /// The metadata of a request with these first values of
    /// `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`.
    pub(crate) fn new(
        request_id: RequestId,
        client_addr: Option<IpAddr>,
        protocol_version: Option<http::HeaderValue>,
        mcp_method: Option<http::HeaderValue>,
        mcp_name: Option<http::HeaderValue>,
    ) -> Self {
        Self {
            request_id,
            client_addr,
            protocol_version: protocol_version.map(Field::Header),
            mcp_method: mcp_method.map(Field::Header),
            mcp_name: mcp_name.map(Field::Header),
        }
    }
}

/// Header text for a log field: at most [`MAX_FIELD_LEN`] bytes, anything
/// but printable ASCII replaced by `?`; text that looks like a JWT, or
/// holds a long run of base64url characters (a token or a signature sent
/// in the wrong place), is not copied at all.
pub(crate) fn clean(bytes: &[u8]) -> Box<str> {
    let mut out = String::new();
    // Writing to a `String` cannot fail.
    let _ = write_clean(&mut out, bytes, true);
    out.into_boxed_str()
}

/// Writes `bytes` cleaned as [`clean`] says; a space is kept only when
/// `spaces` (a scope's inner space is written `?`, so that a space always
/// separates two scopes).
fn write_clean(out: &mut impl std::fmt::Write, bytes: &[u8], spaces: bool) -> std::fmt::Result {
    if looks_like_a_jwt(bytes) || holds_a_long_base64url_run(bytes) || holds_a_random_run(bytes) {
        return out.write_str(REDACTED);
    }
    for b in bytes.iter().take(MAX_FIELD_LEN) {
        out.write_char(if b.is_ascii_graphic() || (spaces && *b == b' ') {
            char::from(*b)
        } else {
            '?'
        })?;
    }
    Ok(())
}

/// One audit event about to be emitted.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) event: Event,
    pub(crate) reason: &'static str,
    /// The HTTP status answered (`None` for an accepted request: the
    /// service answers it).
    pub(crate) status: Option<u16>,
    pub(crate) meta: Option<&'a RequestMeta>,
    pub(crate) ctx: Option<&'a AuthContext>,
    pub(crate) needed: &'a [String],
    /// The refusal, for what the token claimed (issuer, audience).
    pub(crate) error: Option<&'a AuthError>,
    /// The resource this server expects as audience (for the hint).
    pub(crate) resource: &'a str,
}

impl<'a> Record<'a> {
    /// An event with no caller, needed scopes or error.
    pub(crate) fn new(
        event: Event,
        reason: &'static str,
        status: Option<u16>,
        resource: &'a str,
    ) -> Self {
        Self {
            event,
            reason,
            status,
            meta: None,
            ctx: None,
            needed: &[],
            error: None,
            resource,
        }
    }
}

/// The `reason` of a refusal: its kind's code, except a token from an
/// issuer this server does not trust (`issuer_not_trusted`, a cross-tenant
/// or cross-server attempt).
pub(crate) fn reason_of(err: &AuthError) -> &'static str {
    match err.diagnosis() {
        Some(d) if d.untrusted_issuer.is_some() && err.kind() == AuthErrorKind::InvalidIssuer => {
            "issuer_not_trusted"
        }
        // A tenant refusal keeps its own code (`tenant_not_allowed`,
        // `tenant_mismatch`, `tenant_invalid`: cross-tenant attempts); the
        // issuer's digest still goes out as `token_issuer`.
        _ => err.kind().code(),
    }
}

/// The event of a refusal: `authz.refused` for a verified caller refused
/// the operation, `request.refused` for a body broken off on the wire (the
/// request's fault, not its token's: found from outside, a token holder
/// dropping bodies filled the `auth.refused` log budget and hid the lines
/// of real authentication failures), `auth.refused` otherwise.
pub(crate) fn event_of(kind: AuthErrorKind) -> Event {
    match kind {
        AuthErrorKind::InsufficientScope
        | AuthErrorKind::RequirementRefused
        | AuthErrorKind::RequirementFailed => Event::AuthzRefused,
        AuthErrorKind::BodyUnreadable => Event::RequestRefused,
        _ => Event::Refused,
    }
}

/// The default refusal log limit: events of one refusal kind written per
/// window (see the module documentation).
pub(crate) const DEFAULT_REFUSAL_LIMIT: (u64, std::time::Duration) =
    (100, std::time::Duration::from_secs(1));

/// The audit log of one layer: writes events and keeps the refusal log
/// limit (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct AuditLog {
    /// Events of one refusal kind written per window (`None`: all).
    limit: Option<Spacing>,
    /// One budget per refusal kind; `request.refused` has two, one for
    /// refusals before authentication and one for those naming a verified
    /// caller (found from outside: a flood without a token crowded a
    /// verified caller's cap refusals out of the log).
    refused: Arc<Budget>,
    authz_refused: Arc<Budget>,
    throttled: Arc<Budget>,
    session_refused: Arc<Budget>,
    request_refused: Arc<Budget>,
    request_refused_caller: Arc<Budget>,
}

/// The refusal log limit of one kind: `count` events per window, as the
/// spacing [`Budget::take`] keeps between them.
#[derive(Debug, Clone, Copy)]
struct Spacing {
    /// The window divided by the count: how far apart a flood's events
    /// are written, in nanoseconds (at least 1).
    interval_ns: u64,
    /// How far ahead of now the budget may run: the burst written at
    /// once, less one, times `interval_ns`.
    tolerance_ns: u64,
}

/// The most events of one refusal kind written at once (see
/// [`Budget::take`]).
const SPREAD_BURST: u32 = 10;

impl Spacing {
    /// `count` events per `window`, at most [`SPREAD_BURST`] (or `count`,
    /// when smaller) at once. A count of zero is taken as one (the builder
    /// refuses it).
    fn new(count: u32, window: std::time::Duration) -> Self {
        let count = count.max(1);
        let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        let interval_ns = (window_ns / u64::from(count)).max(1);
        let burst = count.min(SPREAD_BURST);
        Self {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst - 1)),
        }
    }
}

/// The budget of one refusal kind. Hand-rolled rather than a rate-limiting
/// crate: the rule (GCRA, a leaky bucket kept as one time) is one atomic,
/// and what is needed besides the yes/no (how many were left out since the
/// last line written, for its `suppressed` field) is not what those crates
/// keep.
#[derive(Debug, Default)]
struct Budget {
    /// When the budget is back to empty, in nanoseconds on the clock of
    /// [`crate::clock::monotonic_nanos`] (the "theoretical arrival time"
    /// of GCRA).
    due: AtomicU64,
    /// Events left unwritten since the last one written.
    missed: AtomicU64,
    /// Events left unwritten, ever (the metrics).
    total: AtomicU64,
    /// A task will write the count of events left unwritten if no line
    /// of this kind does first ([`AuditLog::emit`]).
    flush_pending: std::sync::atomic::AtomicBool,
}

impl Budget {
    /// Whether one more event may be written at `now_ns` (monotonic
    /// nanoseconds): `Some(events left out since the last one written)`,
    /// or `None` after counting this one as left out.
    ///
    /// `count` events per window, spread: a burst of up to
    /// [`SPREAD_BURST`] (or `count`, when smaller) is written at once, and
    /// a flood then gets one line each `window / count` (the default 100 a
    /// second: ten at once, then one every 10 ms). So a flood writes
    /// `count` lines per window in the long run and at most `count` plus
    /// nine in any one window. Why spread rather than the first `count` of
    /// each window: 100 of 5,000 refusals a second arrive within 20 ms, and
    /// written back to back they are a burst of work in front of the
    /// accepted calls waiting behind it (with the lines off, those calls'
    /// p99 under a flood was lower at the same CPU per refusal;
    /// BENCHMARKS.md, twenty-fifth pass); spread, the lines also sample the
    /// whole flood rather than each second's start.
    fn take(&self, spacing: Spacing, now_ns: u64) -> Option<u64> {
        let mut due = self.due.load(Ordering::Relaxed);
        loop {
            let from = due.max(now_ns);
            if from - now_ns > spacing.tolerance_ns {
                self.missed.fetch_add(1, Ordering::Relaxed);
                self.total.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match self.due.compare_exchange_weak(
                due,
                from.saturating_add(spacing.interval_ns),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.missed.swap(0, Ordering::Relaxed)),
                Err(now_due) => due = now_due,
            }
        }
    }
}

impl AuditLog {
    /// An audit log writing `count` events of each refusal kind per
    /// `window`, spread ([`Budget::take`]; `None`: every one). A count past
    /// `u32::MAX` is capped.
    pub(crate) fn new(limit: Option<(u64, std::time::Duration)>) -> Self {
        let mut log = Self::default();
        log.limit = limit
            .map(|(count, window)| Spacing::new(u32::try_from(count).unwrap_or(u32::MAX), window));
        log
    }

    /// Every refusal budget, with the kind of event it counts.
    fn budgets(&self) -> [(&Arc<Budget>, Event); 6] {
        [
            (&self.refused, Event::Refused),
            (&self.authz_refused, Event::AuthzRefused),
            (&self.throttled, Event::Throttled),
            (&self.session_refused, Event::SessionRefused),
            (&self.request_refused, Event::RequestRefused),
            (&self.request_refused_caller, Event::RequestRefused),
        ]
    }

    /// Refusal events left unwritten by the limit, all kinds together.
    pub(crate) fn suppressed(&self) -> u64 {
        self.budgets()
            .iter()
            .map(|(b, _)| b.total.load(Ordering::Relaxed))
            .sum()
    }

    /// Emits `record` on [`TARGET`] (`auth.accepted` at INFO, the refusals
    /// at WARN) unless the refusal log limit leaves it out.
    pub(crate) fn emit(&self, record: &Record<'_>) {
        // Nothing is gathered, and nothing counted against a budget, for an
        // event no subscriber records (the reference server's default
        // filter leaves `auth.accepted` off).
        let on = match record.event {
            Event::Accepted => tracing::enabled!(target: TARGET, tracing::Level::INFO),
            _ => tracing::enabled!(target: TARGET, tracing::Level::WARN),
        };
        if !on {
            return;
        }
        let budget = match record.event {
            Event::Accepted => None,
            Event::Refused => Some(&self.refused),
            Event::AuthzRefused => Some(&self.authz_refused),
            Event::Throttled => Some(&self.throttled),
            Event::SessionRefused => Some(&self.session_refused),
            Event::RequestRefused if record.ctx.is_some() => Some(&self.request_refused_caller),
            Event::RequestRefused => Some(&self.request_refused),
        };
        let (Some(budget), Some(limit)) = (budget, self.limit) else {
            return write(record, None);
        };
        match budget.take(limit, crate::clock::monotonic_nanos()) {
            Some(missed) => write(record, (missed > 0).then_some(missed)),
            None => {
                crate::metrics::emit(
                    "mcp_oauth2_audit_suppressed_total",
                    "event",
                    record.event.as_str(),
                );
                flush_later(budget, record.event, limit);
            }
        }
    }
}

/// How long after an event is left unwritten its count is written on its
/// own line, unless a line of its kind written first carries it: a second,
/// or the limit's spacing when that is longer.
fn flush_delay(limit: Spacing) -> std::time::Duration {
    std::time::Duration::from_nanos(limit.interval_ns).max(std::time::Duration::from_secs(1))
}

/// Makes sure the events `budget` left unwritten are told: if no line of
/// their kind is written within [`flush_delay`], a WARN line of its own,
/// `event = "audit.suppressed"`, names the kind (`of`) and their count
/// (`suppressed`). Without it the tail of a flood was never told when no
/// later refusal of its kind came (found from outside: 17 of 20 refusals
/// were in no line, ever). One such task per kind at a time; none without
/// a runtime (the count then waits for the next line, as before).
fn flush_later(budget: &Arc<Budget>, event: Event, limit: Spacing) {
    if budget.flush_pending.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        budget.flush_pending.store(false, Ordering::Release);
        return;
    };
    let budget = Arc::clone(budget);
    runtime.spawn(async move {
        tokio::time::sleep(flush_delay(limit)).await;
        budget.flush_pending.store(false, Ordering::Release);
        tell_suppressed(&budget, event);
    });
}

/// Writes the `audit.suppressed` line of the events `budget` (of kind
/// `event`) left unwritten since its last line, if there are any.
fn tell_suppressed(budget: &Budget, event: Event) {
    let missed = budget.missed.swap(0, Ordering::Relaxed);
    if missed > 0 {
        tracing::warn!(
            target: TARGET,
            event = "audit.suppressed",
            reason = "refusal_log_limit",
            of = event.as_str(),
            suppressed = missed,
            "audit"
        );
    }
}

impl AuditLog {
    /// Tells at once what every kind left unwritten and no line has told
    /// yet (an `audit.suppressed` line each): at shutdown, when the server
    /// stops within the second the task of [`flush_later`] waits (found
    /// from outside: 17 of 20 refusals were in no line when the server was
    /// stopped right after them).
    pub(crate) fn flush_now(&self) {
        for (budget, event) in self.budgets() {
            tell_suppressed(budget, event);
        }
    }
}

/// A layer dropped (its last router and service gone) tells what it left
/// unwritten.
impl Drop for AuditLog {
    fn drop(&mut self) {
        self.flush_now();
    }
}

/// Writes `record` (a subscriber records it: see [`AuditLog::emit`]);
/// `suppressed`: events of its kind left out before it.
fn write(record: &Record<'_>, suppressed: Option<u64>) {
    let meta = record.meta;
    let ctx = record.ctx;
    // Joined as text only when a subscriber records the event (the field
    // values are read inside the event macro, behind its filter): an event
    // nobody's filter enables allocates nothing. Text, not `Display`: the
    // text format quotes and escapes a text field, and printed a displayed
    // one bare, so granted scopes such as `subject=root` (RFC 6749 allows
    // `=` in a scope; role names from a claim path may hold anything but
    // a control character) read as fields of their own (found from
    // outside).
    let scopes = ctx.map(|c| Scopes(c.scopes()));
    let needed = (!record.needed.is_empty()).then_some(Joined(record.needed));
    let tenant = ctx.and_then(tenant_of);
    let tenant = tenant.as_deref();
    let diagnosis = record.error.and_then(AuthError::diagnosis);
    let token_issuer = diagnosis.and_then(|d| d.untrusted_issuer.as_deref());
    let audience_refused = diagnosis.filter(|_| {
        record
            .error
            .is_some_and(|e| e.kind() == AuthErrorKind::InvalidAudience)
    });
    // Each audience value as a claim: a token or a signature placed in
    // `aud` is not written (found from outside: 200 characters of one
    // were).
    let token_audience = audience_refused.map(|d| {
        d.audience
            .iter()
            .map(|a| loggable(a))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let subject = ctx.map(|c| loggable(c.subject()));
    let client_id = ctx.and_then(AuthContext::client_id).map(loggable);
    let expected_audience = audience_refused.map(|_| record.resource);
    let hint = audience_refused
        .map(|d| {
            if d.names_no_client {
                "the token's audience does not name this server, and the token names no client \
(client_id, azp, cid, appid): an OpenID Connect ID token has its client's id as audience and is \
not an access token; have the client send an access token issued for this server (RFC 8707 \
resource), and do not accept a client's id as an audience"
            } else {
                "the token's audience does not name this server: if it is meant for this server, \
set MCP_OAUTH2_RESOURCE (AuthConfigBuilder::resource) to the audience the issuer puts in \
its tokens, or accept it with MCP_OAUTH2_ACCEPT_AUDIENCES (AuthConfigBuilder::accept_audience)"
            }
        })
        .or_else(|| diagnosis.and_then(|d| d.claim_hint))
        .or_else(|| {
            diagnosis.filter(|d| d.issuer_slash).map(|_| {
                "the token's issuer equals a trusted issuer but for a trailing '/': issuers are \
compared exactly (RFC 8414 section 3.3); set MCP_OAUTH2_ISSUER (AuthConfigBuilder::issuer) to \
the issuer exactly as the authorization server names itself in its metadata and tokens"
            })
        });
    let request_id = meta.map(|m| m.request_id.as_str());
    let client_addr = meta
        .and_then(|m| m.client_addr)
        .map(tracing::field::display);
    let text = |field: Option<&Field>| field.map(Field::text);
    let protocol_version = text(meta.and_then(|m| m.protocol_version.as_ref()));
    let protocol_version = protocol_version.as_deref();
    let mcp_method = text(meta.and_then(|m| m.mcp_method.as_ref()));
    let mcp_method = mcp_method.as_deref();
    let mcp_name = text(meta.and_then(|m| m.mcp_name.as_ref()));
    let mcp_name = mcp_name.as_deref();
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: TARGET,
                $level,
                event = record.event.as_str(),
                reason = record.reason,
                status = record.status,
                issuer = ctx.map(AuthContext::issuer),
                subject = subject.as_deref(),
                client_id = client_id.as_deref(),
                tenant = tenant.map(loggable).as_deref(),
                scopes = scopes.as_ref().map(ToString::to_string),
                needed_scopes = needed.as_ref().map(ToString::to_string),
                mcp_method,
                mcp_name,
                client_addr,
                request_id,
                protocol_version,
                token_issuer,
                token_audience,
                expected_audience,
                hint,
                suppressed,
                "audit"
            )
        };
    }
    match record.event {
        Event::Accepted => event!(tracing::Level::INFO),
        _ => event!(tracing::Level::WARN),
    }
}

/// The longest verified claim written whole in a log field; a longer one
/// is cut there (on a character boundary) and the bytes left out counted.
const MAX_CLAIM_LEN: usize = 256;

/// A verified claim as a log field: a value that looks like a JWT, or
/// holds a run of more than 63 base64url characters (a `sub` or
/// `client_id` an issuer filled with a token or a signature), is written
/// [`REDACTED`], as in every other field; one over [`MAX_CLAIM_LEN`] bytes
/// is cut (`...[+N bytes]`); anything else as it is (the subscriber escapes
/// control characters). Found from outside: an 86-character random `sub`
/// and a 5,000-character one were written whole. Random runs of 32 to 63
/// are kept: Entra ID's subjects are random runs of 43.
pub(crate) fn loggable(value: &str) -> std::borrow::Cow<'_, str> {
    let bytes = value.as_bytes();
    if looks_like_a_jwt(bytes) || holds_a_long_base64url_run(bytes) {
        return REDACTED.into();
    }
    if value.len() <= MAX_CLAIM_LEN {
        return value.into();
    }
    let mut end = MAX_CLAIM_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let kept = value.get(..end).unwrap_or_default();
    format!("{kept}...[+{} bytes]", value.len() - end).into()
}

/// Scopes written space-separated when the event is recorded.
struct Joined<'a, T>(&'a [T]);

impl<T: AsRef<str>> std::fmt::Display for Joined<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s.as_ref())?;
        }
        Ok(())
    }
}

/// Granted scopes for a log field, joined by spaces. They come from the
/// token's claims (an `scp` or role array may hold any text), so each is
/// cleaned as header text is: at most [`MAX_FIELD_LEN`] bytes, anything
/// but printable ASCII `?` (a line break cannot start a forged log line),
/// and a space inside a scope `?` too, so that a space always separates
/// two scopes; one that looks like a JWT is redacted.
struct Scopes<'a, T>(&'a [T]);

impl<T: AsRef<str>> std::fmt::Display for Scopes<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            write_clean(f, scope.as_ref().as_bytes(), false)?;
        }
        Ok(())
    }
}

/// The caller's tenant: the one its tenant issuer admitted it for
/// ([`AuthContext::tenant`]), else the `tid` (Entra ID) or `tenant` claim
/// its token carries, read without parsing every claim (see
/// [`AuthContext::tenant_claim`]).
fn tenant_of(ctx: &AuthContext) -> Option<std::borrow::Cow<'_, str>> {
    ctx.tenant()
        .map(std::borrow::Cow::Borrowed)
        .or_else(|| ctx.tenant_claim())
}

#[cfg(test)]
mod tests {
    use super::*;

    // MCP 2026-07-28's base64 form of a header is logged as the name it
    // encodes, cleaned and redacted alike (found from outside: the encoded
    // text was logged).
    #[test]
    fn a_base64_header_is_logged_as_what_it_encodes() {
        use base64::Engine as _;
        let field = |text: &str| Field::Header(http::HeaderValue::from_str(text).unwrap()).text();
        let encode = |text: &str| {
            format!(
                "=?base64?{}?=",
                base64::engine::general_purpose::STANDARD.encode(text)
            )
        };
        assert_eq!(&*field(&encode("add_note")), "add_note");
        assert_eq!(&*field(&encode("evil\nname")), "evil?name");
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(&*field(&encode(jwt)), REDACTED);
        // Not base64 inside: written as sent.
        assert_eq!(&*field("=?base64?@@@?="), "=?base64?@@@?=");
        assert_eq!(&*field("whoami"), "whoami");
    }

    #[test]
    fn header_text_is_cut_and_cleaned() {
        assert_eq!(&*clean(b"tools/call"), "tools/call");
        assert_eq!(&*clean(b"a\x00b\xffc"), "a?b?c");
        assert_eq!(clean("x/".repeat(150).as_bytes()).len(), MAX_FIELD_LEN);
        assert_eq!(
            &*clean(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
            REDACTED
        );
        assert_eq!(&*clean(b"Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), REDACTED);
        assert_eq!(&*clean(b"eyJ-not-a-token"), "eyJ-not-a-token");
        // Inside a longer value, after any prefix (found from outside:
        // `user:<token>` was written whole).
        for value in [
            "user:eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
            "\"eyJhbGciOiJSUzI1NiJ9.e30.c2ln\"",
            "a eyJhbGciOiJSUzI1NiJ9.e30.c2ln b",
            "xeyJhbGciOiJSUzI1NiJ9.e30.c2ln",
            "eyJ eyJ0eXAiOiJKV1QifQ.e30",
        ] {
            assert_eq!(&*clean(value.as_bytes()), REDACTED, "{value}");
            assert_eq!(&*loggable(value), REDACTED, "{value}");
        }
        // A long run of base64url characters (a signature or an opaque
        // token alone) in request text is redacted too; shorter runs, and
        // long text broken by other characters, are kept.
        let signature = "c2lnbmF0dXJl".repeat(6);
        assert_eq!(&*clean(signature.as_bytes()), REDACTED);
        // A random run of 32 or more (a GitHub token as `Mcp-Name`, found
        // from outside) is not copied either; a long tool name in camel
        // case is.
        let github = "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1eF2hJ4";
        assert_eq!(&*clean(github.as_bytes()), REDACTED);
        let tool = "getUserNotificationPreferencesForAccount";
        assert_eq!(&*clean(tool.as_bytes()), tool);
        assert_eq!(&*clean(format!("tool-{signature}").as_bytes()), REDACTED);
        let short = "a".repeat(crate::error::MAX_BASE64URL_RUN);
        assert_eq!(&*clean(short.as_bytes()), short.as_str());
        let broken = format!("notes://shared/{}/{}", "a".repeat(50), "b".repeat(50));
        assert_eq!(&*clean(broken.as_bytes()), broken.as_str());
        // `eyJ` without a header's length of base64url, a dot and more is
        // no token (a name may hold it).
        for value in [
            "eyJ",
            "eyJ.",
            "key eyJ x.y",
            "surveyJan.report",
            "joeyJ.smith@example.com",
            "eyJhbGciOiJSUzI1NiJ9",
            "eyJhbGciOiJSUzI1NiJ9.",
            "eyJhbGciOiJSUzI1NiJ9. e30",
        ] {
            assert_eq!(&*loggable(value), value, "{value}");
        }
        // A claim holding a run of more than 63 base64url characters is not
        // written; an Entra ID subject (a random run of 43) is; a long
        // claim is cut, on a character boundary (found from outside: an
        // 86-character random `sub` and a 5,000-character one were written
        // whole).
        let random = "q5Vh2N1x7KpR0aZ-wE_mU3yT8jLcB6sD9fGiOo4hN2xv7RkP0a-We_3yU8jLcB6sDk5Vh2N1x7KpR0aZ-wE_mU3y";
        assert_eq!(&*loggable(random), REDACTED);
        let entra = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ";
        assert_eq!(&*loggable(entra), entra);
        let long = "user ".repeat(1000);
        let cut = loggable(&long);
        assert!(cut.starts_with("user user "), "{cut}");
        assert!(cut.ends_with("...[+4744 bytes]"), "{cut}");
        let wide = "\u{e9}".repeat(200);
        let cut = loggable(&wide);
        assert!(cut.ends_with("...[+144 bytes]"), "{cut}");
    }

    fn limit(count: u32, secs: u64) -> Spacing {
        Spacing::new(count, std::time::Duration::from_secs(secs))
    }

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;

    /// The refusal log limit: a count of at most [`SPREAD_BURST`] is
    /// written at once, the rest counted; the next event is written a
    /// window's share later (`window / count`), carrying their number once.
    #[test]
    fn refusal_budget_writes_a_small_count_at_once_and_carries_the_rest() {
        let budget = Budget::default();
        // Three per 10 s: one every 3.33 s, three at once.
        let l = limit(3, 10);
        let taken: Vec<_> = (0..7).map(|_| budget.take(l, 100 * SEC)).collect();
        assert_eq!(taken, [Some(0), Some(0), Some(0), None, None, None, None]);
        // Not before a third of the window has passed ...
        assert_eq!(budget.take(l, 103_333 * MS), None);
        // ... then one, carrying the five left out; the next ones nothing.
        assert_eq!(budget.take(l, 103_334 * MS), Some(5));
        assert_eq!(budget.take(l, 103_334 * MS), None);
        // After a quiet window, three at once again.
        let later: Vec<_> = (0..4).map(|_| budget.take(l, 200 * SEC)).collect();
        assert_eq!(later, [Some(1), Some(0), Some(0), None]);
        assert_eq!(budget.total.load(Ordering::Relaxed), 7);
        // A count beyond u32 is capped, not wrapped to zero; a zero count
        // (refused by the builder) writes one per window, not none, and a
        // count of one per day neither overflows nor writes more.
        let huge = AuditLog::new(Some((u64::MAX, std::time::Duration::from_secs(1))));
        assert_eq!(huge.limit.map(|s| s.interval_ns), Some(1));
        assert_eq!(limit(0, 1).interval_ns, SEC);
        let daily = Budget::default();
        let day = limit(1, 86_400);
        assert_eq!(daily.take(day, 5), Some(0));
        assert_eq!(daily.take(day, 86_400 * SEC + 4), None);
        assert_eq!(daily.take(day, 86_400 * SEC + 5), Some(1));
    }

    /// The default, 100 a second: ten at once, then one every 10 ms; a
    /// flood gets 100 lines a second in the long run, at most 109 in any
    /// one second; what is left out is carried as before.
    #[test]
    fn refusal_budget_spreads_a_flood() {
        let budget = Budget::default();
        let l = limit(100, 1);
        let t0 = 7 * SEC;
        // A flood's start: ten written at once, the other forty counted.
        assert_eq!((0..50).filter(|_| budget.take(l, t0).is_some()).count(), 10);
        // The next one 10 ms later, not 9.
        assert_eq!(budget.take(l, t0 + 9 * MS), None);
        assert_eq!(budget.take(l, t0 + 10 * MS), Some(41));
        assert_eq!(budget.take(l, t0 + 10 * MS), None);
        // One event a millisecond for the rest of the second, then for
        // nine more: one line every 10 ms.
        let written = |from: u64, to: u64| {
            (from..to)
                .step_by(usize::try_from(MS).unwrap())
                .filter(|&t| budget.take(l, t).is_some())
                .count()
        };
        assert_eq!(written(t0 + 11 * MS, t0 + SEC), 98);
        assert_eq!(written(t0 + SEC, t0 + 10 * SEC), 900);
        // Each line carried the nine left out before it.
        assert_eq!(budget.missed.load(Ordering::Relaxed), 9);
        // 100 ms of quiet (the burst's worth) and a burst is written at
        // once again, its first line carrying the nine.
        let after = t0 + 10 * SEC + 100 * MS;
        let burst: Vec<_> = (0..11).map(|_| budget.take(l, after)).collect();
        assert_eq!(burst[0], Some(9));
        assert_eq!(burst.iter().filter(|t| t.is_some()).count(), 10);
    }

    /// Threads racing on one budget write exactly the burst and count
    /// every other event; each event left out is reported once, by the
    /// next event written (a written event racing with the first misses
    /// may carry some of them: none is lost or told twice).
    #[test]
    fn refusal_budget_is_exact_under_contention() {
        let budget = std::sync::Arc::new(Budget::default());
        let l = limit(1_000, 60);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = std::sync::Arc::clone(&budget);
                std::thread::spawn(move || {
                    let (mut written, mut told) = (0u64, 0u64);
                    for _ in 0..2_000 {
                        if let Some(missed) = budget.take(l, 600 * SEC) {
                            written += 1;
                            told += missed;
                        }
                    }
                    (written, told)
                })
            })
            .collect();
        let (written, told) = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold((0, 0), |(w, t), (w2, t2)| (w + w2, t + t2));
        assert_eq!(written, u64::from(SPREAD_BURST));
        assert_eq!(budget.total.load(Ordering::Relaxed), 7_990);
        let next = budget.take(l, 660 * SEC).unwrap();
        assert_eq!(told + next, 7_990, "told in the burst {told}, after {next}");
    }

    /// Each refusal kind has its own budget; accepted events and an
    /// unlimited log are never counted.
    #[test]
    fn refusal_kinds_have_their_own_budgets() {
        let log = AuditLog::new(Some((1, std::time::Duration::from_secs(3600))));
        let record = |event| Record::new(event, "r", Some(401), "https://rs.example/mcp");
        // No subscriber: nothing is written, nothing is counted.
        log.emit(&record(Event::Refused));
        assert_eq!(log.suppressed(), 0);
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .finish(),
        );
        for event in [
            Event::Refused,
            Event::AuthzRefused,
            Event::Throttled,
            Event::SessionRefused,
            Event::RequestRefused,
            Event::Accepted,
        ] {
            log.emit(&record(event));
            log.emit(&record(event));
        }
        // One of each refusal kind left out (the next is due an hour later).
        assert_eq!(log.suppressed(), 5);
        let unlimited = AuditLog::new(None);
        for _ in 0..10 {
            unlimited.emit(&record(Event::Refused));
        }
        assert_eq!(unlimited.suppressed(), 0);
    }

    #[test]
    fn events_and_reasons() {
        assert_eq!(Event::Throttled.as_str(), "throttled");
        assert_eq!(Event::SessionRefused.as_str(), "session.refused");
        assert_eq!(Event::RequestRefused.as_str(), "request.refused");
        assert_eq!(
            event_of(AuthErrorKind::RequirementRefused),
            Event::AuthzRefused
        );
        assert_eq!(event_of(AuthErrorKind::Expired), Event::Refused);
        assert_eq!(
            event_of(AuthErrorKind::BodyUnreadable),
            Event::RequestRefused
        );
        let plain = AuthError::new(AuthErrorKind::InvalidIssuer);
        assert_eq!(reason_of(&plain), "invalid_issuer");
        let untrusted = plain.with_diagnosis(crate::error::Diagnosis {
            untrusted_issuer: Some("https://other".into()),
            ..Default::default()
        });
        assert_eq!(reason_of(&untrusted), "issuer_not_trusted");
        // A cross-tenant refusal keeps its own reason.
        let tenant = AuthError::new(AuthErrorKind::TenantNotAllowed).with_diagnosis(
            crate::error::Diagnosis {
                untrusted_issuer: Some("sha256:0".into()),
                ..Default::default()
            },
        );
        assert_eq!(reason_of(&tenant), "tenant_not_allowed");
        let scopes = ["a".to_owned(), "b".to_owned()];
        assert_eq!(Joined(&scopes[..]).to_string(), "a b");
        assert_eq!(Joined::<String>(&[]).to_string(), "");
        let claimed = [
            "notes:read".to_owned(),
            "a\nWARN forged".to_owned(),
            "two words".to_owned(),
            "é".to_owned(),
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln".to_owned(),
            "x:".repeat(150),
        ];
        let written = Scopes(&claimed[..]).to_string();
        let words: Vec<&str> = written.split(' ').collect();
        assert_eq!(words.len(), claimed.len(), "{written}");
        assert_eq!(
            &words[..4],
            ["notes:read", "a?WARN?forged", "two?words", "??"]
        );
        assert_eq!(words[4], REDACTED);
        assert_eq!(words[5].len(), MAX_FIELD_LEN);
    }
}
