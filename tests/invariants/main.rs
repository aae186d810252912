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

#[path = "../support/mod.rs"]
mod support;

use support::attack;

mod variants;

use variants::*;

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
