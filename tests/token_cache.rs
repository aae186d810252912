//! The verified-token cache: hits, expiry, key removal, bounds.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use std::time::Duration;

use fixture::{now, verify};
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{
    AuthConfig, AuthConfigBuilder, AuthErrorKind, BearerToken, JwtVerifier, TokenVerifier,
};
use serde_json::json;

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn verifier(
    issuer: &TestIssuer,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> JwtVerifier {
    let config = tweak(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(RESOURCE)
            .jwks_uri(issuer.jwks_uri())
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .unwrap();
    JwtVerifier::new(&config).unwrap()
}

#[tokio::test]
async fn a_token_is_verified_once_then_served_from_the_cache() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| b);
    let token = issuer
        .token()
        .subject("a")
        .audience(RESOURCE)
        .claim("tenant", json!("acme"))
        .sign();
    let first = verify(&v, &token).await.unwrap();
    assert_eq!(v.cached_tokens(), 1);
    let again = verify(&v, &token).await.unwrap();
    assert_eq!(v.cached_tokens(), 1);
    // The cached context carries the same verified facts.
    assert_eq!(again.subject(), first.subject());
    assert_eq!(again.claim("tenant"), Some(&json!("acme")));
    assert_eq!(again.audience(), [RESOURCE]);
    assert_eq!(again.token_id(), first.token_id());
    // The raw claims are the token's, members stored apart included.
    assert_eq!(again.claims(), first.claims());
    for name in [
        "iss",
        "sub",
        "exp",
        "iat",
        "jti",
        "aud",
        "client_id",
        "tenant",
    ] {
        assert!(again.claim(name).is_some(), "{name}");
    }
    assert_eq!(again.claim("iss"), Some(&json!(issuer.issuer())));
    // A token differing in one claim (so in its bytes) is verified on its own.
    let other = issuer.token().subject("b").audience(RESOURCE).sign();
    assert_eq!(verify(&v, &other).await.unwrap().subject(), "b");
    assert_eq!(v.cached_tokens(), 2);
    // A tampered copy of a cached token is not a hit.
    let mut tampered = token.clone();
    tampered.push('A');
    assert!(verify(&v, &tampered).await.is_err());
}

// An entry never outlives the token's exp.
#[tokio::test]
async fn an_entry_dies_with_the_token() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| b.leeway(Duration::ZERO));
    let token = issuer
        .token()
        .audience(RESOURCE)
        .expires_at(now() + 2)
        .sign();
    assert!(verify(&v, &token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(verify(&v, &token).await.err(), Some(AuthErrorKind::Expired));
}

// An entry never outlives the configured maximum age either: after it, the
// token is verified again in full (here: its key is gone by then).
#[tokio::test]
async fn an_entry_dies_at_the_maximum_age() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| {
        // 3 s, not 1: the two calls below must fall within it even on a
        // loaded CI machine (with 1 s the second call once came late and
        // missed).
        b.verified_cache_max_age(Duration::from_secs(3))
            .jwks_refresh_cooldown(Duration::from_millis(50))
    });
    let token = issuer.token().audience(RESOURCE).sign();
    assert!(verify(&v, &token).await.is_ok());
    assert!(verify(&v, &token).await.is_ok());
    let misses = |v: &JwtVerifier| {
        let mut m = mcp_oauth2::MetricsSnapshot::default();
        v.add_metrics(&mut m);
        (m.cache_hits, m.cache_misses)
    };
    assert_eq!(misses(&v), (1, 1));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(verify(&v, &token).await.is_ok());
    assert_eq!(
        misses(&v),
        (1, 2),
        "verified again in full after the maximum age"
    );
}

// Dropped when the key that verified it leaves the key set.
#[tokio::test]
async fn an_entry_dies_with_its_key() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| {
        b.jwks_refresh_cooldown(Duration::from_millis(50))
    });
    let old = issuer.token().audience(RESOURCE).sign();
    assert!(verify(&v, &old).await.is_ok());
    issuer.rotate_key();
    issuer.retire_old_keys();
    // A token with the new kid makes the verifier refetch the set.
    let new = issuer.token().audience(RESOURCE).sign();
    assert!(verify(&v, &new).await.is_ok());
    // The old token's key is gone: no longer served from the cache.
    assert_eq!(
        verify(&v, &old).await.err(),
        Some(AuthErrorKind::UnknownKey)
    );
}

#[tokio::test]
async fn the_cache_is_bounded_and_can_be_turned_off() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| b.verified_cache_max_entries(32));
    for i in 0..200 {
        let t = issuer
            .token()
            .subject(format!("user-{i}"))
            .audience(RESOURCE)
            .sign();
        assert!(verify(&v, &t).await.is_ok());
    }
    assert!(v.cached_tokens() <= 32, "{}", v.cached_tokens());
    let off = verifier(&issuer, |b| b.verified_cache_max_entries(0));
    let t = issuer.token().audience(RESOURCE).sign();
    assert!(verify(&off, &t).await.is_ok());
    assert!(verify(&off, &t).await.is_ok());
    assert_eq!(off.cached_tokens(), 0);
}

/// The cache finds entries by a short hash of the token's tail and confirms
/// a hit with the SHA-256 of the whole token: a token forged to end like a
/// cached one is verified in full (and refused), never served from the cache.
#[tokio::test]
async fn a_token_sharing_a_cached_tail_is_not_a_hit() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| b);
    let good = issuer.token().subject("alice").audience(RESOURCE).sign();
    assert_eq!(verify(&v, &good).await.unwrap().subject(), "alice");
    // Another payload (subject mallory) with alice's signature.
    let other = issuer.token().subject("mallory").audience(RESOURCE).sign();
    let (alice_input, alice_sig) = good.rsplit_once('.').unwrap();
    let (mallory_input, _) = other.rsplit_once('.').unwrap();
    assert_ne!(alice_input, mallory_input);
    let forged = format!("{mallory_input}.{alice_sig}");
    assert_eq!(
        verify(&v, &forged).await.err(),
        Some(AuthErrorKind::InvalidSignature)
    );
    // The forgery neither evicted nor replaced alice's entry.
    assert_eq!(v.cached_tokens(), 1);
    assert_eq!(verify(&v, &good).await.unwrap().subject(), "alice");
    // Hits and misses are each counted once per verification: alice's first
    // sight and the forgery missed, alice's second sight hit.
    let mut m = mcp_oauth2::MetricsSnapshot::default();
    v.add_metrics(&mut m);
    assert_eq!((m.cache_hits, m.cache_misses), (1, 2));
}

/// `verify_cached` answers only for tokens verified before, and with the
/// same context as `verify`.
#[tokio::test]
async fn verify_cached_answers_only_known_tokens() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| b);
    let token = issuer.token().subject("bob").audience(RESOURCE).sign();
    assert!(v.verify_cached(BearerToken::new(&token)).is_none());
    let verified = verify(&v, &token).await.unwrap();
    let cached = v.verify_cached(BearerToken::new(&token)).unwrap();
    assert_eq!(cached.subject(), verified.subject());
    assert_eq!(cached.scopes(), verified.scopes());
    assert!(v.verify_cached(BearerToken::new("garbage")).is_none());
    // With the cache off there is never a quick answer.
    let off = verifier(&issuer, |b| b.verified_cache_max_entries(0));
    assert!(verify(&off, &token).await.is_ok());
    assert!(off.verify_cached(BearerToken::new(&token)).is_none());
}

/// Issue 13: the cache is bounded in bytes, not only in entries. Tokens ten
/// times the typical size fill the byte budget (640 bytes per allowed
/// entry) long before the entry cap, so a flood of large valid tokens
/// cannot grow the cache's memory past the budget; typical tokens are
/// limited by the entry cap.
#[tokio::test]
async fn the_cache_is_bounded_in_bytes_not_only_in_entries() {
    let issuer = TestIssuer::start().await.unwrap();
    let cap = 256;
    let large = verifier(&issuer, |b| b.verified_cache_max_entries(cap));
    let padding = "x".repeat(4_000);
    for i in 0..cap {
        let t = issuer
            .token()
            .subject(format!("user-{i}"))
            .audience(RESOURCE)
            .claim("padding", json!(padding))
            .sign();
        assert!(verify(&large, &t).await.is_ok());
    }
    // 256 x 640 bytes of budget hold about 40 entries of 4 KB.
    assert!(
        large.cached_tokens() <= cap * 640 / 4_000 + 8,
        "{} large entries cached",
        large.cached_tokens()
    );
    assert!(large.cached_tokens() > 0);

    let small = verifier(&issuer, |b| b.verified_cache_max_entries(cap));
    for i in 0..cap {
        let t = issuer
            .token()
            .subject(format!("user-{i}"))
            .audience(RESOURCE)
            .sign();
        assert!(verify(&small, &t).await.is_ok());
    }
    assert!(
        (cap / 2..=cap).contains(&small.cached_tokens()),
        "{} small entries cached",
        small.cached_tokens()
    );
}

/// `McpServer` remembers, per connection, the digest of the last token it
/// hashed, so that a client repeating its token skips the SHA-256. On one
/// keep-alive connection, every request must still be judged on its own
/// bytes: two principals alternating, a forgery ending like a cached token
/// (its lookup finds that token's entry, so its digest is computed while
/// the connection remembers the real token), a one-byte change, and the
/// same token again once its key has left the key set.
#[tokio::test]
async fn tokens_on_one_connection_are_each_judged_on_their_own_bytes() {
    use support::attack::modern_tool_call_body;
    use support::notes::Notes;
    use support::raw_http::Raw;

    let notes = Notes::start_with(|b| b.jwks_refresh_cooldown(Duration::from_millis(50))).await;
    let addr: std::net::SocketAddr = notes
        .resource
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .unwrap();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let whoami = |token: &str| {
        Raw::new(addr, "POST", "/mcp")
            .keep_alive()
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "whoami")
            .body(modern_tool_call_body(1, "whoami"))
    };
    // The subject whoami reports, or the refusal's status.
    async fn call(conn: &mut tokio::net::TcpStream, raw: Raw) -> Result<String, u16> {
        let resp = raw
            .send_on(conn)
            .await
            .expect("an answer on the connection");
        assert!(resp.complete, "{}", resp.summary());
        if resp.status != 200 {
            return Err(resp.status);
        }
        let text = resp.messages()[0]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        let who: serde_json::Value = serde_json::from_str(&text).unwrap();
        Ok(who["subject"].as_str().unwrap().to_owned())
    }

    let alice = notes.token_for("alice", &[]);
    let bob = notes.token_for("bob", &[]);
    for expected in ["alice", "alice", "bob", "alice", "bob", "bob", "alice"] {
        let token = if expected == "alice" { &alice } else { &bob };
        assert_eq!(call(&mut conn, whoami(token)).await, Ok(expected.into()));
    }
    // Mallory's payload under alice's signature: the same tail as alice's
    // cached token.
    let mallory = notes.token_for("mallory", &[]);
    let (mallory_input, _) = mallory.rsplit_once('.').unwrap();
    let (_, alice_sig) = alice.rsplit_once('.').unwrap();
    let forged = format!("{mallory_input}.{alice_sig}");
    assert_eq!(call(&mut conn, whoami(&forged)).await, Err(401));
    assert_eq!(call(&mut conn, whoami(&alice)).await, Ok("alice".into()));
    // Alice's token with one character of its payload changed (same
    // length, same tail).
    let dot = alice.find('.').unwrap() + 5;
    let mut changed = alice.clone().into_bytes();
    changed[dot] = if changed[dot] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    assert_eq!(changed.len(), alice.len());
    assert_eq!(call(&mut conn, whoami(&changed)).await, Err(401));
    assert_eq!(call(&mut conn, whoami(&alice)).await, Ok("alice".into()));
    // The key that signed alice's token leaves the set: the token the
    // connection just presented is refused on the same connection.
    notes.issuer.rotate_key();
    notes.issuer.retire_old_keys();
    // Past the refresh cooldown, so that carol's new key id may be fetched
    // however fast the calls above were.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let carol = notes.token_for("carol", &[]);
    assert_eq!(call(&mut conn, whoami(&carol)).await, Ok("carol".into()));
    assert_eq!(call(&mut conn, whoami(&alice)).await, Err(401));
    assert_eq!(call(&mut conn, whoami(&carol)).await, Ok("carol".into()));
}

/// The reference server's resident memory, in bytes (Linux).
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

// Claims parsed for an audit event (the tenant field) or a handler were
// kept in the cached context, past the weight the verified-token cache
// gave it: distinct 7 KB tokens of many tiny members held about 500 KB
// each (found from outside: 748 MB after 1,500 accepted calls with JSON
// logs, every `auth.accepted` reading the tenant). The reference server
// as the README runs it, JSON logs, 1,500 such tokens: its resident memory
// grows by the cache's budget at most, not by half a gigabyte.
#[tokio::test]
async fn claims_read_for_the_log_are_not_kept_past_the_cache_budget() {
    let issuer = TestIssuer::start_with_alg(mcp_oauth2::testing::SigningAlg::EdDsa)
        .await
        .unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let env = [
        ("MCP_OAUTH2_ISSUER", issuer.issuer()),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
        ("MCP_OAUTH2_LOG_FORMAT", "json"),
        ("RUST_LOG", ""),
    ];
    let (child, _lines) = support::reference::start(port, &env).await.gather();
    let pid = child.id().unwrap();
    let pad = json!((0..700).map(|_| json!({"": 0})).collect::<Vec<_>>());
    let http = reqwest::Client::new();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let call = |token: String| {
        http.post(&resource)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
            .body(body)
            .send()
    };
    let token = |i: usize| {
        issuer
            .token()
            .subject(format!("user-{i}"))
            .audience(&resource)
            .claim("pad", pad.clone())
            .sign()
    };
    assert_eq!(call(token(0)).await.unwrap().status(), 200);
    let before = rss_of(pid);
    for i in 1..=1_500 {
        let response = call(token(i)).await.unwrap();
        assert_eq!(response.status(), 200, "{i}");
    }
    let grown = rss_of(pid).saturating_sub(before);
    assert!(grown < 250 << 20, "grew {} MB", grown >> 20);
    drop(child);
}
