//! The invariant of issue 12, item 6, tested as an attacker would: generated
//! request variants (path spellings, methods, `Authorization` spellings and
//! tokens, duplicated and re-cased `Mcp-Session-Id`, protocol versions,
//! lying `Mcp-Method`/`Mcp-Name` (plain or Base64 sentinel), content types,
//! body encodings, batches, legacy `resources/subscribe`, duplicate `Host`,
//! foreign `Origin`) are sent over raw HTTP/1.1 to a real `McpServer` whose
//! tools are protected only by `tool_scopes`.
//!
//! The oracle is the server's execution log, not the status codes:
//! - (a) an operation runs only for a verified token (one `Authorization`
//!   field, a token that is valid, unexpired, for this resource, from the
//!   configured issuer) holding every scope the operation needs, and the
//!   handler sees that token's subject;
//! - (b) a legacy session is only ever used by the subject that created it:
//!   every session id in the log or in a successful response belongs to
//!   exactly one subject, no other principal (or anonymous request) reaches
//!   it, opens its stream or ends it, and each owner can still use its
//!   session after every request that was not its own;
//! - (c) no response is a 5xx other than a documented 503, and every request
//!   gets its response head within the client timeout.
//!
//! Three builder settings: the default `/mcp` mount with resource
//! `http://127.0.0.1:PORT/mcp`, a root resource `http://127.0.0.1:PORT` with
//! the default mount, and `.path("/api/v1/mcp")` with a matching resource.
//! `PROPTEST_CASES` sets the number of cases per setting (default 128).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::attack;

use std::cell::RefCell;
use std::collections::HashMap;

use attack::{
    Exec, INITIALIZED, MODERN_META, Mount, PRIVATE_URI, Raw, RawResponse, Target, TokenKind,
    initialize_body, required_scopes,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

// ---------------------------------------------------------------------------
// What an attacker varies
// ---------------------------------------------------------------------------

/// Spellings of the mount path `m` (shown for `/mcp`).
#[derive(Debug, Clone, Copy)]
enum PathSpelling {
    /// `/mcp`
    Exact,
    /// `/mcp/`
    TrailingSlash,
    /// `/mcp/x`
    Sub,
    /// `/mcp//`
    DoubleSlashEnd,
    /// `//mcp`
    DoubleSlashStart,
    /// `/MCP`
    Upper,
    /// `/mcp%2F`
    EncodedSlash,
    /// `/%6Dcp`
    EncodedChar,
    /// `/mcp?x=1`
    Query,
    /// `/mcp;x`
    Semicolon,
    /// `/./mcp`
    DotSegment,
    /// `/mcp/..`
    DotDot,
    /// `/mcp/../mcp`
    DotDotBack,
}

impl PathSpelling {
    fn spell(self, m: &str) -> String {
        let (parent, last) = m.rsplit_once('/').unwrap_or(("", m));
        match self {
            PathSpelling::Exact => m.to_owned(),
            PathSpelling::TrailingSlash => format!("{m}/"),
            PathSpelling::Sub => format!("{m}/x"),
            PathSpelling::DoubleSlashEnd => format!("{m}//"),
            PathSpelling::DoubleSlashStart => format!("/{m}"),
            PathSpelling::Upper => m.to_ascii_uppercase(),
            PathSpelling::EncodedSlash => format!("{m}%2F"),
            PathSpelling::EncodedChar => {
                let mut chars = last.chars();
                let first = chars.next().map(|c| c as u32).unwrap_or(0x6d);
                format!("{parent}/%{first:02X}{}", chars.as_str())
            }
            PathSpelling::Query => format!("{m}?x=1"),
            PathSpelling::Semicolon => format!("{m};x"),
            PathSpelling::DotSegment => format!("/.{m}"),
            PathSpelling::DotDot => format!("{m}/.."),
            PathSpelling::DotDotBack => format!("{m}/../{last}"),
        }
    }
}

/// How the `Authorization` field is spelled.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    Bearer,
    Lower,
    Upper,
    ExtraSpaces,
    TrailingSpaces,
    Tab,
}

impl Scheme {
    fn spell(self, token: &str) -> String {
        match self {
            Scheme::Bearer => format!("Bearer {token}"),
            Scheme::Lower => format!("bearer {token}"),
            Scheme::Upper => format!("BEARER {token}"),
            Scheme::ExtraSpaces => format!("Bearer    {token}"),
            Scheme::TrailingSpaces => format!("Bearer {token}   "),
            Scheme::Tab => format!("Bearer\t{token}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Auth {
    None,
    One(Scheme, TokenKind),
    /// Two `Authorization` fields.
    Two(TokenKind, TokenKind),
}

impl Auth {
    /// What the request may be granted: only a single field with a good token.
    fn grant(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Auth::One(_, kind) => kind.grant(),
            Auth::None | Auth::Two(..) => None,
        }
    }
}

/// Whose session id a `Mcp-Session-Id` field carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionRef {
    /// alice's own legacy session.
    Own,
    /// bob's legacy session.
    Victim,
    Garbage,
}

#[derive(Debug, Clone, Copy)]
enum SessionName {
    Canonical,
    Lower,
    Upper,
}

impl SessionName {
    fn spell(self) -> &'static str {
        match self {
            SessionName::Canonical => "Mcp-Session-Id",
            SessionName::Lower => "mcp-session-id",
            SessionName::Upper => "MCP-SESSION-ID",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Call(&'static str),
    /// `"\u0077rite_tool"`.
    UnicodeEscapedWrite,
    ToolsList,
    ReadPrivate,
    /// Legacy `resources/subscribe` to the protected resource.
    SubscribePrivate,
    Initialize,
    /// `"method":"tools/list","method":"tools/call"` calling write_tool.
    DuplicateMethod,
    /// `"name":"read_tool","name":"write_tool"`.
    DuplicateName,
    /// A JSON-RPC batch: read_tool then write_tool.
    Batch,
    /// write_tool with arguments nested deeper than any parser's limit.
    DeepNesting,
    Notification,
    Empty,
}

impl BodyKind {
    /// (method, name) an honest client would put in `Mcp-Method`/`Mcp-Name`
    /// (for ambiguous bodies: the reading an attacker hopes for).
    fn honest_headers(self) -> Option<(&'static str, Option<&'static str>)> {
        Some(match self {
            BodyKind::Call(t) => ("tools/call", Some(t)),
            BodyKind::UnicodeEscapedWrite | BodyKind::DeepNesting => {
                ("tools/call", Some("write_tool"))
            }
            BodyKind::ToolsList | BodyKind::DuplicateMethod => ("tools/list", None),
            BodyKind::ReadPrivate => ("resources/read", Some(PRIVATE_URI)),
            BodyKind::SubscribePrivate => ("resources/subscribe", None),
            BodyKind::Initialize => ("initialize", None),
            BodyKind::DuplicateName | BodyKind::Batch => ("tools/call", Some("read_tool")),
            BodyKind::Notification => ("notifications/initialized", None),
            BodyKind::Empty => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum McpHeaders {
    Absent,
    Honest,
    /// `Mcp-Method: tools/call`, `Mcp-Name: read_tool` whatever the body says.
    LieName,
    /// `Mcp-Method: tools/list` whatever the body says.
    LieMethod,
    /// The honest `Mcp-Name` in the `=?base64?...?=` sentinel form.
    HonestBase64,
    /// `Mcp-Name: =?base64?(read_tool)?=` whatever the body says.
    LieBase64,
}

#[derive(Debug, Clone, Copy)]
enum Hosts {
    One,
    SameTwice,
    OwnThenEvil,
    EvilThenOwn,
}

#[derive(Debug, Clone, Copy)]
enum Origin {
    None,
    Foreign,
    Own,
}

/// One generated request.
#[derive(Debug, Clone)]
struct Attack {
    method: &'static str,
    path: PathSpelling,
    auth: Auth,
    sessions: Vec<(SessionName, SessionRef)>,
    protocol: Option<&'static str>,
    body: BodyKind,
    modern_meta: bool,
    bom: bool,
    trailing_garbage: bool,
    mcp_headers: McpHeaders,
    content_type: Option<&'static str>,
    gzip: bool,
    hosts: Hosts,
    origin: Origin,
}

fn token_kind() -> impl Strategy<Value = TokenKind> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            TokenKind::AliceRead,
            TokenKind::AliceWrite,
            TokenKind::AliceAll,
            TokenKind::AliceNone,
            TokenKind::Bob,
        ]),
        1 => proptest::sample::select(vec![
            TokenKind::Expired,
            TokenKind::WrongAudience,
            TokenKind::ForeignIssuer,
            TokenKind::Garbage,
        ]),
    ]
}

fn auth() -> impl Strategy<Value = Auth> {
    let scheme = prop_oneof![
        4 => Just(Scheme::Bearer),
        1 => proptest::sample::select(vec![
        Scheme::Bearer,
        Scheme::Lower,
        Scheme::Upper,
        Scheme::ExtraSpaces,
        Scheme::TrailingSpaces,
        Scheme::Tab,
    ]),
    ];
    prop_oneof![
        1 => Just(Auth::None),
        8 => (scheme, token_kind()).prop_map(|(s, k)| Auth::One(s, k)),
        1 => (token_kind(), token_kind()).prop_map(|(a, b)| Auth::Two(a, b)),
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        24 => Just("POST"),
        2 => Just("GET"),
        2 => Just("DELETE"),
        1 => Just("PUT"),
        1 => Just("PATCH"),
        1 => Just("OPTIONS"),
        1 => Just("HEAD"),
    ]
}

fn path() -> impl Strategy<Value = PathSpelling> {
    use PathSpelling::*;
    prop_oneof![
        6 => Just(Exact),
        2 => Just(TrailingSlash),
        2 => Just(Sub),
        1 => proptest::sample::select(vec![
            DoubleSlashEnd,
            DoubleSlashStart,
            Upper,
            EncodedSlash,
            EncodedChar,
            Query,
            Semicolon,
            DotSegment,
            DotDot,
            DotDotBack,
        ]),
    ]
}

fn sessions() -> impl Strategy<Value = Vec<(SessionName, SessionRef)>> {
    let one = (
        proptest::sample::select(vec![
            SessionName::Canonical,
            SessionName::Lower,
            SessionName::Upper,
        ]),
        proptest::sample::select(vec![
            SessionRef::Victim,
            SessionRef::Own,
            SessionRef::Garbage,
        ]),
    );
    proptest::collection::vec(one, 0..=2)
}

fn body() -> impl Strategy<Value = BodyKind> {
    use BodyKind::*;
    prop_oneof![
        10 => proptest::sample::select(vec![
            Call("write_tool"),
            Call("read_tool"),
            Call("open_tool"),
        ]),
        1 => Just(UnicodeEscapedWrite),
        1 => Just(ToolsList),
        1 => Just(ReadPrivate),
        1 => Just(SubscribePrivate),
        1 => Just(Initialize),
        1 => Just(DuplicateMethod),
        1 => Just(DuplicateName),
        1 => Just(Batch),
        1 => Just(DeepNesting),
        1 => Just(Notification),
        1 => Just(Empty),
    ]
}

/// `Some(x)`: the attacker overrides what an honest client of the chosen
/// generation would send; `None`: the honest value. Mostly honest, so that
/// requests get far enough to run something.
fn deviation<T: Clone + std::fmt::Debug + 'static>(
    weight: u32,
    alternatives: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![
        weight => Just(None),
        1 => alternatives.prop_map(Some),
    ]
    .boxed()
}

fn attack() -> impl Strategy<Value = Attack> {
    // The generation an honest client would speak: 2026-07-28 stateless, or
    // a legacy session (alice's own).
    let modern = any::<bool>();
    let protocol = deviation(
        8,
        proptest::sample::select(vec![
            Some("2026-07-28"),
            Some("2025-11-25"),
            Some("2025-06-18"),
            None,
            Some("garbage"),
        ]),
    );
    let meta = deviation(10, any::<bool>());
    let mcp_headers = deviation(
        5,
        proptest::sample::select(vec![
            McpHeaders::Absent,
            McpHeaders::Honest,
            McpHeaders::LieName,
            McpHeaders::LieMethod,
            McpHeaders::HonestBase64,
            McpHeaders::LieBase64,
        ]),
    );
    let session_fields = deviation(2, sessions());
    let content_type = prop_oneof![
        16 => Just(Some("application/json")),
        1 => Just(Some("Application/JSON; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(None),
    ];
    let hosts = prop_oneof![
        20 => Just(Hosts::One),
        1 => proptest::sample::select(vec![Hosts::SameTwice, Hosts::OwnThenEvil, Hosts::EvilThenOwn]),
    ];
    let origin = prop_oneof![
        20 => Just(Origin::None),
        1 => Just(Origin::Foreign),
        1 => Just(Origin::Own),
    ];
    let rare = || prop_oneof![25 => Just(false), 1 => Just(true)];
    (
        (method(), path(), auth(), body(), modern),
        (protocol, meta, mcp_headers, session_fields),
        (rare(), rare(), rare(), content_type, hosts, origin),
    )
        .prop_map(
            |(
                (method, path, auth, body, modern),
                (protocol, meta, mcp_headers, session_fields),
                (bom, trailing_garbage, gzip, content_type, hosts, origin),
            )| {
                let (honest_protocol, honest_headers, honest_sessions) = if modern {
                    (Some("2026-07-28"), McpHeaders::Honest, Vec::new())
                } else {
                    (
                        Some("2025-11-25"),
                        McpHeaders::Absent,
                        vec![(SessionName::Canonical, SessionRef::Own)],
                    )
                };
                Attack {
                    method,
                    path,
                    auth,
                    sessions: session_fields.unwrap_or(honest_sessions),
                    protocol: protocol.unwrap_or(honest_protocol),
                    body,
                    modern_meta: meta.unwrap_or(modern),
                    bom,
                    trailing_garbage,
                    mcp_headers: mcp_headers.unwrap_or(honest_headers),
                    content_type,
                    gzip,
                    hosts,
                    origin,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// Building the bytes
// ---------------------------------------------------------------------------

fn body_bytes(a: &Attack, id: u64) -> Vec<u8> {
    let meta = if a.modern_meta { MODERN_META } else { "" };
    let params = |fields: &[&str]| {
        let mut all: Vec<&str> = fields.to_vec();
        if !meta.is_empty() {
            all.push(meta);
        }
        format!("{{{}}}", all.join(","))
    };
    let request = |method: &str, params: String, id: u64| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
    };
    let call = |name: &str, id: u64| {
        request(
            "tools/call",
            params(&[&format!(r#""name":{name}"#), r#""arguments":{}"#]),
            id,
        )
    };
    let text = match a.body {
        BodyKind::Call(tool) => call(&format!("\"{tool}\""), id),
        BodyKind::UnicodeEscapedWrite => call(r#""\u0077rite_tool""#, id),
        BodyKind::ToolsList => request("tools/list", params(&[]), id),
        BodyKind::ReadPrivate => request(
            "resources/read",
            params(&[&format!(r#""uri":"{PRIVATE_URI}""#)]),
            id,
        ),
        BodyKind::SubscribePrivate => request(
            "resources/subscribe",
            params(&[&format!(r#""uri":"{PRIVATE_URI}""#)]),
            id,
        ),
        BodyKind::Initialize => initialize_body(id),
        BodyKind::DuplicateMethod => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","method":"tools/call","params":{}}}"#,
            params(&[r#""name":"write_tool""#, r#""arguments":{}"#])
        ),
        BodyKind::DuplicateName => request(
            "tools/call",
            params(&[
                r#""name":"read_tool""#,
                r#""name":"write_tool""#,
                r#""arguments":{}"#,
            ]),
            id,
        ),
        BodyKind::Batch => format!(
            "[{},{}]",
            call("\"read_tool\"", id),
            call("\"write_tool\"", id + 1)
        ),
        BodyKind::DeepNesting => {
            let depth = 300;
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            request(
                "tools/call",
                params(&[
                    r#""name":"write_tool""#,
                    &format!(r#""arguments":{{"x":{nested}}}"#),
                ]),
                id,
            )
        }
        BodyKind::Notification => INITIALIZED.to_owned(),
        BodyKind::Empty => String::new(),
    };
    let mut bytes = Vec::new();
    if a.bom {
        bytes.extend_from_slice("\u{feff}".as_bytes());
    }
    bytes.extend_from_slice(text.as_bytes());
    if a.trailing_garbage {
        bytes.extend_from_slice(b" }{\"method\":\"tools/call\"} garbage");
    }
    bytes
}

/// The legacy sessions the run keeps open: alice's and bob's.
struct Sessions {
    own: String,
    victim: String,
}

fn session_value(r: SessionRef, s: &Sessions) -> String {
    match r {
        SessionRef::Own => s.own.clone(),
        SessionRef::Victim => s.victim.clone(),
        SessionRef::Garbage => "0123-garbage-session".to_owned(),
    }
}

fn build(t: &Target, a: &Attack, s: &Sessions) -> Raw {
    let own_host = t.addr.to_string();
    let mut raw = t.request(a.method, &a.path.spell(t.path()));
    match a.hosts {
        Hosts::One => {}
        Hosts::SameTwice => raw = raw.header("Host", &own_host).header("Host", &own_host),
        Hosts::OwnThenEvil => raw = raw.header("Host", &own_host).header("Host", "evil.example"),
        Hosts::EvilThenOwn => raw = raw.header("Host", "evil.example").header("Host", &own_host),
    }
    match a.auth {
        Auth::None => {}
        Auth::One(scheme, kind) => raw = raw.header("Authorization", &scheme.spell(t.token(kind))),
        Auth::Two(x, y) => {
            raw = raw
                .header("Authorization", &t.bearer(x))
                .header("Authorization", &t.bearer(y))
        }
    }
    raw = raw.header("Accept", "application/json, text/event-stream");
    if let Some(ct) = a.content_type {
        raw = raw.header("Content-Type", ct);
    }
    if let Some(v) = a.protocol {
        raw = raw.header("MCP-Protocol-Version", v);
    }
    for (name, r) in &a.sessions {
        raw = raw.header(name.spell(), &session_value(*r, s));
    }
    let headers = match a.mcp_headers {
        McpHeaders::Absent => None,
        McpHeaders::Honest | McpHeaders::HonestBase64 => a.body.honest_headers(),
        McpHeaders::LieName | McpHeaders::LieBase64 => Some(("tools/call", Some("read_tool"))),
        McpHeaders::LieMethod => Some(("tools/list", None)),
    };
    let base64 = matches!(
        a.mcp_headers,
        McpHeaders::HonestBase64 | McpHeaders::LieBase64
    );
    if let Some((method, name)) = headers {
        raw = raw.header("Mcp-Method", method);
        if let Some(name) = name {
            let value = if base64 {
                format!("=?base64?{}?=", BASE64.encode(name))
            } else {
                name.to_owned()
            };
            raw = raw.header("Mcp-Name", &value);
        }
    }
    if a.gzip {
        raw = raw.header("Content-Encoding", "gzip");
    }
    match a.origin {
        Origin::None => {}
        Origin::Foreign => raw = raw.header("Origin", "https://evil.example"),
        Origin::Own => raw = raw.header("Origin", &t.origin()),
    }
    if !matches!(a.method, "GET" | "HEAD" | "DELETE") || a.body != BodyKind::Empty {
        raw = raw.body(body_bytes(a, 11));
    }
    raw
}

// ---------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------

/// What the run has learnt: which subject owns which session id.
#[derive(Default)]
struct Owners(HashMap<String, String>);

impl Owners {
    /// Records `id` as `subject`'s; `Err` if it already belongs to another.
    fn claim(&mut self, id: &str, subject: &str, how: &str) -> Result<(), String> {
        match self.0.get(id) {
            Some(owner) if owner != subject => Err(format!(
                "(b) session {id} belongs to {owner} but {how} for {subject}"
            )),
            Some(_) => Ok(()),
            None => {
                self.0.insert(id.to_owned(), subject.to_owned());
                Ok(())
            }
        }
    }
}

/// Checks one request's outcome; returns every violation found.
fn judge(
    a: &Attack,
    response: &Result<RawResponse, String>,
    log: &[Exec],
    owners: &mut Owners,
    named: &[String],
) -> Vec<String> {
    let mut bad = Vec::new();
    let grant = a.auth.grant();
    // (a) and (b) from the log.
    for e in log {
        let Some((subject, scopes)) = grant else {
            bad.push(format!(
                "(a) {} ran without a verified token ({:?}): {e:?}",
                e.what, a.auth
            ));
            continue;
        };
        if e.subject.as_deref() != Some(subject) {
            bad.push(format!(
                "(a) {} ran for {:?}, the token is {subject}'s: {e:?}",
                e.what, e.subject
            ));
        }
        let missing: Vec<&str> = required_scopes(&e.what)
            .iter()
            .copied()
            .filter(|s| !scopes.contains(s))
            .collect();
        if !missing.is_empty() {
            bad.push(format!(
                "(a) {} ran for a token without {missing:?} (token scopes {scopes:?}): {e:?}",
                e.what
            ));
        }
        if let Some(creator) = &e.creator {
            if e.subject.as_ref() != Some(creator) {
                bad.push(format!(
                    "(b) {} ran for {:?} inside a session {creator} created: {e:?}",
                    e.what, e.subject
                ));
            }
            // rmcp routes by the first `Mcp-Session-Id` field.
            if let Some(id) = e.sessions.first()
                && let Err(v) = owners.claim(id, creator, "was used by an instance")
            {
                bad.push(v);
            }
        }
    }
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            bad.push(format!("(c) {e}"));
            return bad;
        }
    };
    // (c) no 5xx other than a documented 503.
    if response.status >= 500 && response.status != 503 {
        bad.push(format!(
            "(c) a {} answer: {}",
            response.status,
            response.summary()
        ));
    }
    let success = (200..300).contains(&response.status);
    // (b) a session id handed out belongs to the requester, who must be verified.
    if success && let Some(id) = response.header("mcp-session-id") {
        match grant {
            Some((subject, _)) => {
                if let Err(v) = owners.claim(id, subject, "was handed out") {
                    bad.push(v);
                }
            }
            None => bad.push(format!(
                "(b) session {id} handed out without a verified token: {}",
                response.summary()
            )),
        }
    }
    // (b) no stream opened on, or termination of, someone else's session
    // (rmcp acts on the first `Mcp-Session-Id` field; the post-check of
    // every owner's session covers the rest).
    if success
        && matches!(a.method, "GET" | "DELETE")
        && let Some(id) = named.first()
        && let Some(owner) = owners.0.get(id)
        && grant.map(|(s, _)| s) != Some(owner.as_str())
    {
        bad.push(format!(
            "(b) {} of {owner}'s session {id} answered {} for {:?}",
            a.method, response.status, a.auth
        ));
    }
    bad
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

/// Runs the property against a server mounted as `mount`.
fn invariant_holds(mount: Mount) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t = rt.block_on(Target::start(mount));
    let open = |kind: TokenKind| {
        let (id, response) = rt.block_on(t.open_session(kind));
        id.unwrap_or_else(|| {
            panic!(
                "{mount:?}: {kind:?} cannot open a session: {}",
                response.summary()
            )
        })
    };
    let sessions = RefCell::new(Sessions {
        own: open(TokenKind::AliceAll),
        victim: open(TokenKind::Bob),
    });
    let owners = RefCell::new(Owners::default());
    {
        let s = sessions.borrow();
        let mut o = owners.borrow_mut();
        o.0.insert(s.own.clone(), "alice".into());
        o.0.insert(s.victim.clone(), "bob".into());
    }
    let _ = t.log.take();
    // How many generated requests ran something, by operation: the property
    // is not vacuous.
    let executed: RefCell<HashMap<String, usize>> = RefCell::default();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(attack(), 1..=3), |attacks| {
        rt.block_on(async {
            let mut violations = Vec::new();
            let mut created: Vec<(String, TokenKind)> = Vec::new();
            for (i, a) in attacks.iter().enumerate() {
                let raw = {
                    let s = sessions.borrow();
                    build(&t, a, &s)
                };
                let named: Vec<String> = {
                    let s = sessions.borrow();
                    a.sessions.iter().map(|(_, r)| session_value(*r, &s)).collect()
                };
                let _ = t.log.take();
                let response = raw.send().await;
                let log = t.log.take();
                for e in &log {
                    *executed.borrow_mut().entry(e.what.clone()).or_default() += 1;
                }
                let found = judge(a, &response, &log, &mut owners.borrow_mut(), &named);
                if let (Ok(r), Auth::One(_, kind)) = (&response, a.auth)
                    && (200..300).contains(&r.status)
                    && let Some(id) = r.header("mcp-session-id")
                {
                    created.push((id.to_owned(), kind));
                }
                for v in found {
                    violations.push(format!(
                        "request {i}: {v}\n  sent: {:?}\n  got: {}",
                        raw.redacted(),
                        response.as_ref().map_or_else(|e| e.clone(), RawResponse::summary)
                    ));
                }
            }
            // Sessions the attack opened are ended by their creator (keeps
            // the per-principal count low).
            for (id, kind) in created {
                let _ = t
                    .request("DELETE", t.path())
                    .header("Authorization", &t.bearer(kind))
                    .header("Mcp-Session-Id", &id)
                    .header("MCP-Protocol-Version", attack::LEGACY)
                    .send()
                    .await;
            }
            // (b) each owner can still use its session unless one of the
            // requests was its own (then it may have ended it: reopen).
            let subjects: Vec<Option<&str>> = attacks.iter().map(|a| a.auth.grant().map(|g| g.0)).collect();
            for (subject, kind, is_own) in [("alice", TokenKind::AliceAll, true), ("bob", TokenKind::Bob, false)] {
                let id = {
                    let s = sessions.borrow();
                    if is_own { s.own.clone() } else { s.victim.clone() }
                };
                if t.session_works(kind, &id).await {
                    continue;
                }
                if !subjects.contains(&Some(subject)) {
                    violations.push(format!(
                        "(b) {subject}'s session {id} no longer works after requests that were not {subject}'s"
                    ));
                }
                let (new_id, response) = t.open_session(kind).await;
                let Some(new_id) = new_id else {
                    violations.push(format!("{subject} cannot open a new session: {}", response.summary()));
                    continue;
                };
                owners.borrow_mut().0.insert(new_id.clone(), subject.to_owned());
                let mut s = sessions.borrow_mut();
                if is_own { s.own = new_id } else { s.victim = new_id }
            }
            let _ = t.log.take();
            if violations.is_empty() {
                Ok(())
            } else {
                Err(TestCaseError::fail(violations.join("\n")))
            }
        })
    });
    if let Err(e) = result {
        panic!("{mount:?} (resource {}): {e}", t.resource);
    }
    let executed = executed.into_inner();
    eprintln!("{mount:?}: generated requests ran {executed:?}");
    assert!(
        ["read_tool", "write_tool", "open_tool"]
            .iter()
            .any(|w| executed.get(*w).is_some_and(|n| *n > 0)),
        "{mount:?}: no generated request ran a tool: {executed:?}"
    );
}

// Issue 12 item 6 with the default mount and resource `http://127.0.0.1:PORT/mcp`.
#[test]
fn tools_run_only_for_scoped_tokens_and_sessions_only_for_owners_default_mount() {
    invariant_holds(Mount::Default);
}

// Issue 12 item 6 with a root resource `http://127.0.0.1:PORT` and the default `/mcp` mount.
#[test]
fn tools_run_only_for_scoped_tokens_and_sessions_only_for_owners_root_resource() {
    invariant_holds(Mount::RootResource);
}

// Issue 12 item 6 with `.path("/api/v1/mcp")` and a matching resource.
#[test]
fn tools_run_only_for_scoped_tokens_and_sessions_only_for_owners_custom_mount() {
    invariant_holds(Mount::Custom);
}

// The oracle itself: a request the policy allows is seen running (so "no
// violation" is not "nothing ran"), and a forbidden one is caught.
#[test]
fn oracle_sees_allowed_runs_and_flags_forbidden_ones() {
    let base = Attack {
        method: "POST",
        path: PathSpelling::Exact,
        auth: Auth::One(Scheme::Bearer, TokenKind::AliceRead),
        sessions: Vec::new(),
        protocol: Some("2026-07-28"),
        body: BodyKind::Call("read_tool"),
        modern_meta: true,
        bom: false,
        trailing_garbage: false,
        mcp_headers: McpHeaders::Honest,
        content_type: Some("application/json"),
        gzip: false,
        hosts: Hosts::One,
        origin: Origin::None,
    };
    let ran = |what: &str, subject: &str| Exec {
        what: what.to_owned(),
        subject: Some(subject.to_owned()),
        scopes: Vec::new(),
        sessions: Vec::new(),
        creator: None,
        uri: "/".into(),
    };
    let ok = Ok(RawResponse {
        status: 200,
        ..RawResponse::default()
    });
    let mut owners = Owners::default();
    assert!(judge(&base, &ok, &[ran("read_tool", "alice")], &mut owners, &[]).is_empty());
    assert_eq!(
        judge(&base, &ok, &[ran("write_tool", "alice")], &mut owners, &[]).len(),
        1
    );
    assert_eq!(
        judge(&base, &ok, &[ran("read_tool", "bob")], &mut owners, &[]).len(),
        1
    );
    let anonymous = Attack {
        auth: Auth::Two(TokenKind::AliceAll, TokenKind::AliceAll),
        ..base.clone()
    };
    assert_eq!(
        judge(
            &anonymous,
            &ok,
            &[ran("open_tool", "alice")],
            &mut owners,
            &[]
        )
        .len(),
        1
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t = Target::start(Mount::Default).await;
        let s = Sessions {
            own: String::new(),
            victim: String::new(),
        };
        let response = build(&t, &base, &s).send().await;
        let log = t.log.take();
        assert_eq!(
            response.as_ref().map(|r| r.status).ok(),
            Some(200),
            "{response:?}"
        );
        assert!(log.iter().any(|e| e.what == "read_tool"), "{log:?}");
        assert!(judge(&base, &response, &log, &mut Owners::default(), &[]).is_empty());
    });
}
