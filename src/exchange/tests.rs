//! Unit tests of the exchange's small parts: error codes, reuse time, cache
//! keys, redaction.

use std::time::Duration;

use super::cache::{key, reuse_for};
use super::error::is_error_code;
use super::*;
use crate::context::SubjectToken;

// RFC 6749 section 5.2: the error codes mapped to kinds; anything else is
// `Refused` with its code kept.
#[test]
fn refusals_map_to_kinds() {
    for (code, kind) in [
        ("invalid_grant", ExchangeErrorKind::InvalidGrant),
        ("unauthorized_client", ExchangeErrorKind::UnauthorizedClient),
        ("invalid_client", ExchangeErrorKind::InvalidClient),
        ("invalid_target", ExchangeErrorKind::InvalidTarget),
        ("invalid_scope", ExchangeErrorKind::InvalidScope),
        ("temporarily_unavailable", ExchangeErrorKind::Refused),
        ("consent_required", ExchangeErrorKind::InteractionRequired),
        (
            "interaction_required",
            ExchangeErrorKind::InteractionRequired,
        ),
        ("login_required", ExchangeErrorKind::InteractionRequired),
        (
            "insufficient_user_authentication",
            ExchangeErrorKind::InteractionRequired,
        ),
    ] {
        let err = ExchangeError::refused(code, None);
        assert_eq!(err.kind(), kind);
        assert_eq!(
            err.needs_user_interaction(),
            kind == ExchangeErrorKind::InteractionRequired
        );
        assert_eq!(err.code(), code);
        assert!(err.to_string().contains(code));
        assert!(format!("{err:?}").contains(code));
    }
    // Entra ID: `invalid_grant` whose `suberror` asks for the user.
    for (suberror, kind) in [
        ("consent_required", ExchangeErrorKind::InteractionRequired),
        ("basic_action", ExchangeErrorKind::InteractionRequired),
        ("bad_token", ExchangeErrorKind::InvalidGrant),
    ] {
        let err = ExchangeError::refused("invalid_grant", Some(suberror));
        assert_eq!(err.kind(), kind, "{suberror}");
        assert_eq!(err.code(), "invalid_grant");
        assert_eq!(err.suberror(), Some(suberror));
        assert!(format!("{err:?}").contains(suberror));
    }
    let err = ExchangeError::new(ExchangeErrorKind::Transport, "down");
    assert_eq!(err.code(), "transport");
    assert_eq!(err.suberror(), None);
    assert_eq!(err.to_string(), "token exchange failed: transport: down");
    assert!(is_error_code("invalid_grant"));
    for bad in ["", "a\"b", "a\\b", "é", &"x".repeat(65), "a\nb"] {
        assert!(!is_error_code(bad), "{bad:?}");
    }
}

// Never past `expires_in` minus the margin; nothing kept without it.
#[test]
fn reuse_time() {
    let margin = Duration::from_secs(30);
    assert_eq!(reuse_for(Some(300), margin), Some(Duration::from_secs(270)));
    assert_eq!(reuse_for(Some(30), margin), None);
    assert_eq!(reuse_for(Some(10), margin), None);
    assert_eq!(reuse_for(None, margin), None);
    // A day at most, whatever the endpoint says (found from outside: a
    // huge `expires_in` overflowed the clock when stored).
    assert_eq!(
        reuse_for(Some(u64::MAX), Duration::ZERO),
        Some(super::cache::MAX_REUSE)
    );
    assert_eq!(
        reuse_for(Some(10u64.pow(18)), margin),
        Some(Duration::from_secs(86_400))
    );
}

// Every element of the tuple changes the key; fields cannot be shifted
// into one another; the caller's scopes count in any order.
#[test]
fn cache_keys_separate_principals_and_requests() {
    let ctx = |iss: &str, sub: &str, client: &str, scopes: &[&str]| {
        crate::AuthContext::builder(iss, sub)
            .client_id(client)
            .scopes(scopes.iter().copied())
            .build()
    };
    let base = ctx("https://as", "alice", "app", &["a", "b"]);
    let k = |c: &crate::AuthContext, me: &str, grant: &str, aud: &str, scopes: &[&str]| {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        key(c, me, grant, aud, &scopes)
    };
    let reference = k(&base, "rs", "g", "https://api", &["read"]);
    // A granted scope holding a space (an `scp` array entry) is one scope,
    // not two: `["a b"]` and `["a", "b"]` are different callers' grants.
    assert_ne!(
        reference,
        k(
            &ctx("https://as", "alice", "app", &["a b"]),
            "rs",
            "g",
            "https://api",
            &["read"]
        )
    );
    assert_eq!(
        reference,
        k(
            &ctx("https://as", "alice", "app", &["b", "a", "a"]),
            "rs",
            "g",
            "https://api",
            &["read"]
        )
    );
    let other_tenant = crate::AuthContext::builder("https://as", "alice")
        .client_id("app")
        .scopes(["a", "b"])
        .tenant("org_other")
        .build();
    // Who acts for alice, and how she signed in (found from outside: a
    // token exchanged for her own call was handed to "mallory acting for
    // alice" and to a weaker sign-in).
    let with_claims = |claims: serde_json::Value| {
        let serde_json::Value::Object(claims) = claims else {
            unreachable!()
        };
        crate::AuthContext::builder("https://as", "alice")
            .client_id("app")
            .scopes(["a", "b"])
            .claims(claims)
            .build()
    };
    let acting = with_claims(serde_json::json!({"act": {"sub": "mallory"}}));
    let acting_other = with_claims(serde_json::json!({"act": {"sub": "trent"}}));
    // Who may act for alice (RFC 8693 section 4.4): a token of hers whose
    // `may_act` names another actor is refused by the token endpoint, so it
    // never gets the token exchanged for her unrestricted one (found from
    // outside).
    let may_act = with_claims(serde_json::json!({"may_act": {"sub": "rs"}}));
    let may_act_other = with_claims(serde_json::json!({"may_act": {"sub": "trent"}}));
    let weak = with_claims(serde_json::json!({"acr": "urn:acr:password"}));
    let strong = with_claims(serde_json::json!({"acr": "urn:acr:mfa"}));
    let amr = with_claims(serde_json::json!({"amr": ["pwd"]}));
    let signed_in = with_claims(serde_json::json!({"auth_time": 1_700_000_000}));
    let unrelated = with_claims(serde_json::json!({"department": "sales"}));
    assert_eq!(
        reference,
        k(&unrelated, "rs", "g", "https://api", &["read"]),
        "other claims do not split the cache"
    );
    let others = [
        k(&acting, "rs", "g", "https://api", &["read"]),
        k(&acting_other, "rs", "g", "https://api", &["read"]),
        k(&may_act, "rs", "g", "https://api", &["read"]),
        k(&may_act_other, "rs", "g", "https://api", &["read"]),
        k(&weak, "rs", "g", "https://api", &["read"]),
        k(&strong, "rs", "g", "https://api", &["read"]),
        k(&amr, "rs", "g", "https://api", &["read"]),
        k(&signed_in, "rs", "g", "https://api", &["read"]),
        k(&other_tenant, "rs", "g", "https://api", &["read"]),
        k(
            &ctx("https://as2", "alice", "app", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(
            &ctx("https://as", "bob", "app", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(
            &ctx("https://as", "alice", "app2", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(
            &ctx("https://as", "alice", "app", &["a"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
        k(&base, "rs2", "g", "https://api", &["read"]),
        k(&base, "rs", "g2", "https://api", &["read"]),
        k(&base, "rs", "g", "https://api2", &["read"]),
        k(&base, "rs", "g", "https://api", &["write"]),
        k(&base, "rs", "g", "https://api", &[]),
        // Shifting text between fields.
        k(
            &ctx("https://a", "salice", "app", &["a", "b"]),
            "rs",
            "g",
            "https://api",
            &["read"],
        ),
    ];
    for (i, other) in others.iter().enumerate() {
        assert_ne!(reference, *other, "{i}");
        for (j, another) in others.iter().enumerate().skip(i + 1) {
            assert_ne!(other, another, "{i} {j}");
        }
    }
}

// Nothing secret in Debug output; the subject token reads after its scheme.
#[test]
fn redacted_debug_and_subject_token() {
    let token = ExchangedToken {
        token: "secret-token-value".into(),
        expires_at: None,
        scope: Some("read".into()),
    };
    assert_eq!(token.secret(), "secret-token-value");
    assert_eq!(token.scope(), Some("read"));
    assert!(token.expires_at().is_none());
    assert!(!format!("{token:?}").contains("secret-token-value"));
    let stored = StoredToken::new(
        "secret-token-value".into(),
        std::time::SystemTime::now(),
        None,
    );
    assert!(!format!("{stored:?}").contains("secret-token-value"));
    for (header, expected) in [
        ("Bearer abc.def", Some("abc.def")),
        ("DPoP   abc", Some("abc")),
        ("Bearer ", None),
        ("Bearer", None),
    ] {
        let t = SubjectToken::new(http::HeaderValue::from_static(header));
        assert_eq!(t.expose(), expected, "{header}");
        assert_eq!(format!("{t:?}"), "SubjectToken([redacted])");
    }
    let ctx = crate::AuthContext::builder("i", "s")
        .build()
        .with_subject_token(SubjectToken::new(http::HeaderValue::from_static(
            "Bearer very-secret",
        )));
    assert!(!format!("{ctx:?}").contains("very-secret"));
    let request = ExchangeRequest::audience("https://api").scopes(["b", "a", "b"]);
    assert!(format!("{request:?}").contains("[\"a\", \"b\"]"));
}

// Without the layer (no step-up slot), an interaction-required refusal
// still names the scopes to authorize again with: the request's own, then
// the caller's, without repeats; other kinds stay internal errors.
#[test]
fn interaction_required_becomes_a_step_up_error() {
    let caller = crate::AuthContext::builder("https://as.example", "alice")
        .scopes(["notes:read", "mcp:tools"])
        .build();
    let err = ExchangeError::refused("consent_required", None).for_request(
        &caller,
        &["downstream:consent".to_owned(), "notes:read".to_owned()],
    );
    let data = rmcp::ErrorData::from(err);
    assert_eq!(data.code, rmcp::model::ErrorCode::INVALID_REQUEST);
    assert!(
        data.message.contains("consent_required"),
        "{}",
        data.message
    );
    assert_eq!(
        data.data,
        Some(serde_json::json!({
            "error": "consent_required",
            "scope": "downstream:consent notes:read mcp:tools"
        }))
    );
    let other = ExchangeError::refused("invalid_target", None).for_request(&caller, &[]);
    let data = rmcp::ErrorData::from(other);
    assert_eq!(data.code, rmcp::model::ErrorCode::INTERNAL_ERROR);
    assert_eq!(
        data.data,
        Some(serde_json::json!({ "error": "invalid_target" }))
    );
}

// The sealed shared level on its own: a round trip, bound to its key; an
// entry already due, a token over the sealed size cap, or garbage in the
// store are not shared (a miss, never an error).
#[tokio::test]
async fn sealed_store_round_trip_and_refusals() {
    use std::time::SystemTime;

    use crate::store::{MemoryStore, SharedStore};
    let memory: std::sync::Arc<dyn SharedStore> = std::sync::Arc::new(MemoryStore::default());
    let key = crate::HandleKey::from_secret(b"exchange-cache-key/2026-12/test!").unwrap();
    let store = SealedExchangeStore::new(memory.clone(), key);
    assert!(format!("{store:?}").contains("[redacted]"));
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let until = SystemTime::now() + Duration::from_secs(60);
    let token = StoredToken::new("downstream-token".into(), until, Some("read".into()));
    store.put(&k1, token.clone()).await;
    let back = store.get(&k1).await.unwrap();
    assert_eq!(back.token, "downstream-token");
    assert_eq!(back.scope.as_deref(), Some("read"));
    let drift = back
        .reuse_until
        .duration_since(until)
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_millis(2), "{drift:?}");
    assert!(store.get(&k2).await.is_none());
    // Moved to another key: does not open.
    let raw = memory.get(&store.store_key(&k1)).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("downstream-token"));
    let k2_name = store.store_key(&k2);
    memory
        .put(&k2_name, &raw, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.get(&k2).await.is_none());
    memory
        .put(&k2_name, b"\xff\xfe", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.get(&k2).await.is_none());
    // Not shared: already due, or too large to seal.
    let k3 = [3u8; 32];
    let past = SystemTime::now() - Duration::from_secs(1);
    store
        .put(&k3, StoredToken::new("t".into(), past, None))
        .await;
    store
        .put(&k3, StoredToken::new("x".repeat(9 * 1024), until, None))
        .await;
    assert!(store.get(&k3).await.is_none());
}

// The name of a sealed shared entry is a keyed MAC of the cache key, not
// the cache key (a plain SHA-256 of guessable fields: found from outside,
// whoever read Redis could recompute it for a guessed user and learn whether
// that user held a downstream token, and until when). Replicas holding the
// same secret agree on names; another secret names the same user otherwise.
#[tokio::test]
async fn sealed_store_keys_are_a_mac_of_the_cache_key() {
    use std::time::SystemTime;

    use crate::store::{MemoryStore, SharedStore};
    let memory = std::sync::Arc::new(MemoryStore::default());
    let shared: std::sync::Arc<dyn SharedStore> = memory.clone();
    let secret = b"exchange-cache-key/2026-12/test!";
    let other_secret = b"exchange-cache-key/2027-01/other";
    let a = SealedExchangeStore::new(
        shared.clone(),
        crate::HandleKey::from_secret(secret).unwrap(),
    );
    // Another replica, loading the same secret.
    let b = SealedExchangeStore::new(
        shared.clone(),
        crate::HandleKey::from_secret(secret).unwrap(),
    );
    let c = SealedExchangeStore::new(
        shared.clone(),
        crate::HandleKey::from_secret(other_secret).unwrap(),
    );
    let k1 = [1u8; 32];
    let until = SystemTime::now() + Duration::from_secs(60);
    a.put(&k1, StoredToken::new("token-a".into(), until, None))
        .await;
    // Not under the cache key itself (what anyone could recompute).
    assert!(
        shared
            .get(&crate::store::hashed_key("mcp_oauth2:exchange:", &k1))
            .await
            .unwrap()
            .is_none(),
        "the store key is the plain cache key"
    );
    let name = a.store_key(&k1);
    assert_ne!(name, crate::store::hashed_key("mcp_oauth2:exchange:", &k1));
    assert!(name.starts_with("mcp_oauth2:exchange:"));
    assert_eq!(name.len(), "mcp_oauth2:exchange:".len() + 64);
    // Replicas with the same secret agree.
    assert_eq!(b.store_key(&k1), name);
    assert_eq!(b.get(&k1).await.unwrap().token, "token-a");
    // Another secret: another name, so its entry stands beside A's
    // rather than over it.
    assert_ne!(c.store_key(&k1), name);
    c.put(&k1, StoredToken::new("token-c".into(), until, None))
        .await;
    assert_eq!(memory.len(), 2);
    assert_eq!(a.get(&k1).await.unwrap().token, "token-a");
    assert_eq!(c.get(&k1).await.unwrap().token, "token-c");
    // Another cache key, another name.
    assert_ne!(a.store_key(&[2u8; 32]), name);
}

// A token endpoint with user information is refused when the exchanger is
// built, without repeating it (found from outside: the password went out as
// Basic credentials in place of the client's, and into every log line and
// error naming the endpoint); so is a fragment, which is never sent.
#[test]
fn an_endpoint_with_user_information_or_a_fragment_is_refused() {
    for bad in [
        "https://svc:S3cr3tPw@as.example/token",
        "https://svc@as.example/token",
        "https://as.example/token#x",
    ] {
        let settings = ExchangeSettings::new("client", "secret")
            .endpoint(url::Url::parse(bad).unwrap_or_else(|e| panic!("{bad}: {e}")));
        let Err(err) = TokenExchanger::new(settings) else {
            panic!("{bad}: accepted");
        };
        assert_eq!(err.field(), "token_endpoint", "{bad}");
        assert!(!err.to_string().contains("S3cr3tPw"), "{err}");
    }
    let good = ExchangeSettings::new("client", "secret").endpoint(
        url::Url::parse("https://as.example/token?tenant=a").unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(TokenExchanger::new(good).is_ok());
}

// A tenant of an issuer template: its discovered token endpoint must be on
// its issuer's origin, since any tenant's administrator shapes its
// metadata and the client's secret is sent there (found from outside:
// with `MCP_OAUTH2_TENANTS=*` it went to whatever host a tenant named).
// A plain issuer's callers are unaffected.
#[tokio::test]
async fn a_tenant_s_discovered_token_endpoint_must_be_on_its_issuer_s_origin() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&elsewhere_hits);
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!("http://{}/token", elsewhere.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    http::StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"error": "invalid_grant"})),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(elsewhere, app).await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/t1");
    let metadata = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": elsewhere_url,
        "jwks_uri": format!("{base}/t1/jwks"),
    });
    let app = axum::Router::new().route(
        "/.well-known/oauth-authorization-server/t1",
        axum::routing::get(move || {
            let metadata = metadata.clone();
            async move { axum::Json(metadata) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let exchanger = TokenExchanger::new(
        ExchangeSettings::new("client", "client-secret").allow_insecure_http_for_loopback(true),
    )
    .unwrap();
    let caller = |tenant: Option<&str>| {
        let mut b = crate::AuthContext::builder(issuer.clone(), "alice");
        if let Some(t) = tenant {
            b = b.tenant(t);
        }
        b.build()
            .with_subject_token(SubjectToken::new(http::HeaderValue::from_static(
                "Bearer caller-token",
            )))
    };
    let err = exchanger
        .exchange_for(
            &caller(Some("t1")),
            ExchangeRequest::audience("https://api"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "issuer_not_allowed", "{err}");
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the secret went elsewhere"
    );
    // A plain issuer's discovered endpoint may be on another host (Google's
    // and Cognito's are).
    let exchanger = TokenExchanger::new(
        ExchangeSettings::new("client", "client-secret").allow_insecure_http_for_loopback(true),
    )
    .unwrap();
    let err = exchanger
        .exchange_for(&caller(None), ExchangeRequest::audience("https://api"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_grant", "{err}");
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 1);
}

// The cache of exchanged tokens is bounded in bytes too (found from
// outside: answers of up to 64 KiB could hold about 640 MB at the entry
// cap); small tokens are bounded by the entry count.
#[test]
fn the_cache_is_bounded_in_bytes() {
    let entry = |len: usize| {
        let now = std::time::Instant::now();
        super::cache::Entry {
            outcome: Ok(super::token::ExchangedToken {
                token: "t".repeat(len).into(),
                expires_at: None,
                scope: None,
            }),
            until: now + Duration::from_secs(60),
            produced: now,
            transient: false,
        }
    };
    let big = super::cache::cache(100);
    for i in 0..100u8 {
        big.insert([i; 32], entry(60_000));
    }
    assert!(
        big.weight() <= 100 * crate::weighed::BYTES_PER_ENTRY,
        "{}",
        big.weight()
    );
    assert!(big.len() < 10, "{} tokens of 60 KB kept", big.len());
    let small = super::cache::cache(100);
    for i in 0..50u8 {
        small.insert([i; 32], entry(100));
    }
    assert!(small.len() >= 45, "{}", small.len());
}
