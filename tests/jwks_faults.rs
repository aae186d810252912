//! The key endpoint misbehaving (issue 4): a real HTTP key server
//! ([`TestIssuer`]) that goes down, hangs, sends a huge or malformed body or
//! the wrong media type, redirects, publishes junk, and rotates keys. The
//! tests assert what the verifier answered and how often it hit the key
//! server; sleeps only let configured durations pass, no test asserts a
//! wall-clock time.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::realms::Realms;
use support::rig;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_oauth2::testing::{JwksFault, SigningAlg, TestIssuer};
use mcp_oauth2::{
    AuthConfig, AuthConfigBuilder, AuthContext, AuthErrorKind, BearerToken, JwtVerifier,
    TokenVerifier,
};
use rig::{Rig, eventually};
use serde_json::json;

const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A configuration for `issuer` with its key-set URL given (no discovery),
/// so `jwks_hits` counts every fetch.
fn config(
    issuer: &TestIssuer,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> AuthConfig {
    tweak(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .jwks_uri(issuer.jwks_uri())
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .expect("config")
}

fn verifier(
    issuer: &TestIssuer,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> JwtVerifier {
    JwtVerifier::new(&config(issuer, tweak)).expect("verifier")
}

async fn verify(v: &JwtVerifier, token: &str) -> Result<AuthContext, AuthErrorKind> {
    v.verify(BearerToken::new(token))
        .await
        .map_err(|e| e.kind())
}

fn token(issuer: &TestIssuer) -> String {
    issuer.token().audience(RESOURCE).sign()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// Issue 4 "Outage": no key set yet and the key server is down: fail closed
// with 503 and `Retry-After` (never 401, which would send clients to get a
// new token they do not need, and never 200). Within the retry interval
// further requests fail fast, without hitting the key server again.
#[tokio::test]
async fn down_before_the_first_fetch_fails_closed_with_503_and_retry_after() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_available(false);
    let rig = Rig::with_issuer(issuer, |b| b).await;
    for _ in 0..5 {
        let outcome = rig.send(&rig.token().sign()).await;
        assert_eq!(outcome.status, 503, "{outcome:?}");
        assert_eq!(outcome.retry_after.as_deref(), Some("5"));
        assert_eq!(outcome.reason.as_deref(), Some("keys_unavailable"));
        assert!(outcome.body.contains("temporarily_unavailable"));
    }
    assert_eq!(
        rig.issuer.jwks_hits(),
        1,
        "failed fetches are retried per interval, not per request"
    );
    assert!(!rig.verifier.is_ready());
}

// Issue 4 "Fetching: a total deadline": a key server that accepts and never
// answers is cut off by `http_timeout`, whatever the HTTP client's own
// settings; the verifier fails closed and retries only after the interval.
#[tokio::test]
async fn a_hanging_key_server_is_cut_off_by_the_deadline() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_fault(JwksFault::Hang);
    // The retry interval (the cooldown here) is longer than the deadline, so
    // the second request below comes within it.
    let tweak = |b: AuthConfigBuilder| b.http_timeout(ms(300)).jwks_refresh_cooldown(ms(1500));
    // A caller-supplied client without any timeout of its own.
    let v = JwtVerifier::with_http_client(&config(&issuer, tweak), reqwest::Client::new());
    let good = token(&issuer);
    assert_eq!(
        verify(&v, &good).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert_eq!(
        verify(&v, &good).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert_eq!(issuer.jwks_hits(), 1, "the second request failed fast");
    issuer.set_jwks_fault(JwksFault::None);
    tokio::time::sleep(ms(1600)).await;
    assert!(verify(&v, &good).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 2);
}

// A key server that hangs for longer than the retry interval (found from
// outside in round 2: the interval was counted from the start of the failed
// fetch, so with `http_timeout` past it every request started a new fetch
// and waited the whole deadline). The interval counts from the failure; and
// a retry after a failure is a probe that only its own request waits for:
// the others answer at once (503) while it hangs.
#[tokio::test]
async fn a_key_server_hanging_past_the_retry_interval_still_fails_fast() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_fault(JwksFault::Hang);
    // The deadline (2 s) is longer than the retry interval (the cooldown,
    // 800 ms).
    let tweak = |b: AuthConfigBuilder| b.http_timeout(ms(2000)).jwks_refresh_cooldown(ms(800));
    let v = Arc::new(verifier(&issuer, tweak));
    let good = token(&issuer);
    let unavailable = Some(AuthErrorKind::KeysUnavailable);
    // The first request starts the fetch and waits for its deadline.
    assert_eq!(verify(&v, &good).await.err(), unavailable);
    assert_eq!(issuer.jwks_hits(), 1);
    // Right after the failure: within the interval, whatever the deadline.
    for _ in 0..3 {
        assert_eq!(verify(&v, &good).await.err(), unavailable);
    }
    assert_eq!(
        issuer.jwks_hits(),
        1,
        "the retry interval counts from the failure, not from the start"
    );
    // After the interval one request probes the key server (and waits) ...
    tokio::time::sleep(ms(900)).await;
    let probe = tokio::spawn({
        let (v, good) = (Arc::clone(&v), good.clone());
        async move { verify(&v, &good).await.err() }
    });
    assert!(eventually(|| issuer.jwks_hits() == 2).await);
    // ... and the others do not join it.
    for _ in 0..3 {
        assert_eq!(verify(&v, &good).await.err(), unavailable);
    }
    assert!(
        !probe.is_finished(),
        "the other requests answered while the probe still waited"
    );
    assert_eq!(issuer.jwks_hits(), 2);
    assert_eq!(probe.await.unwrap(), unavailable);
    // The key server is back: the next retry after the interval loads the set.
    issuer.set_jwks_fault(JwksFault::None);
    tokio::time::sleep(ms(900)).await;
    assert!(verify(&v, &good).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 3);
}

// A blackholed issuer (accepts, never answers) costs one `http_timeout` for
// the whole discovery, not one per discovery URL: with a path, three URLs
// are tried in turn (RFC 8414 section 3.1, OpenID Connect Discovery), and
// each waiting its own deadline made the first request (and the start-up
// fetch) wait three times as long. Counted by the connections the
// blackhole accepts: the URLs after a timed-out one are not tried.
#[tokio::test]
async fn a_blackholed_issuer_costs_one_deadline_for_the_whole_discovery() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/tenant", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let blackhole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let config = AuthConfig::builder()
        .issuer(&issuer)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .http_timeout(ms(300))
        .build()
        .unwrap();
    let v = JwtVerifier::new(&config).unwrap();
    let signer = TestIssuer::start().await.unwrap();
    let forged = signer
        .token()
        .claim("iss", json!(issuer))
        .audience(RESOURCE)
        .sign();
    assert_eq!(
        verify(&v, &forged).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    // Whatever a URL still in flight does, nothing more is tried after the
    // deadline.
    tokio::time::sleep(ms(700)).await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one discovery URL tried within the deadline"
    );
    blackhole.abort();
}

// The control: a deadline past the clock's range (`Duration::MAX`) is no
// deadline, never an overflow, for discovery and the key set alike.
#[tokio::test]
async fn a_deadline_past_the_clocks_range_is_no_deadline() {
    let issuer = TestIssuer::start().await.unwrap();
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .http_timeout(Duration::MAX)
        .build()
        .unwrap();
    let v = JwtVerifier::new(&config).unwrap();
    assert!(verify(&v, &token(&issuer)).await.is_ok());
}

// Issue 4 "Fetching: a body size cap": enforced on a declared length and
// while streaming a chunked body; a body under the cap is fine.
#[tokio::test]
async fn a_huge_body_is_refused_with_or_without_content_length() {
    let issuer = TestIssuer::start().await.unwrap();
    let good = token(&issuer);
    for declare_length in [true, false] {
        issuer.set_jwks_fault(JwksFault::HugeBody {
            bytes: 8 * 1024 * 1024,
            declare_length,
        });
        let v = verifier(&issuer, |b| b.max_document_bytes(64 * 1024));
        assert_eq!(
            verify(&v, &good).await.err(),
            Some(AuthErrorKind::KeysUnavailable),
            "declare_length: {declare_length}"
        );
        issuer.set_jwks_fault(JwksFault::HugeBody {
            bytes: 60 * 1024,
            declare_length,
        });
        let v = verifier(&issuer, |b| b.max_document_bytes(64 * 1024));
        assert!(verify(&v, &good).await.is_ok(), "under the cap");
    }
    assert_eq!(issuer.jwks_hits(), 4);
}

// Issue 4 "Fetching: status 200 and a JSON body only".
#[tokio::test]
async fn malformed_json_wrong_media_type_or_another_status_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let good = token(&issuer);
    for fault in [
        JwksFault::Malformed,
        JwksFault::WrongContentType,
        JwksFault::Unavailable,
        JwksFault::EmptyKeySet,
    ] {
        issuer.set_jwks_fault(fault.clone());
        let v = verifier(&issuer, |b| b);
        assert_eq!(
            verify(&v, &good).await.err(),
            Some(AuthErrorKind::KeysUnavailable),
            "{fault:?}"
        );
        assert!(!v.is_ready(), "{fault:?}");
    }
    // A document that is JSON but not a key set.
    for doc in [
        json!([]),
        json!({"keys": {}}),
        json!({"key": []}),
        json!("keys"),
    ] {
        issuer.set_jwks_fault(JwksFault::None);
        issuer.set_jwks_document(Some(doc.clone()));
        let v = verifier(&issuer, |b| b);
        assert_eq!(
            verify(&v, &good).await.err(),
            Some(AuthErrorKind::KeysUnavailable),
            "{doc}"
        );
    }
}

// Issue 4 "Fetching: redirects not followed" (RFC 8725 section 3.10: the
// key set comes from where it was configured): not by the default client,
// and not even when a caller's client follows them, in which case the
// redirected answer is thrown away.
#[tokio::test]
async fn a_redirect_is_not_followed() {
    let issuer = TestIssuer::start().await.unwrap();
    let attacker = TestIssuer::start().await.unwrap();
    issuer.set_jwks_fault(JwksFault::Redirect(attacker.jwks_uri()));
    let forged = attacker
        .token()
        .claim("iss", json!(issuer.issuer()))
        .audience(RESOURCE)
        .sign();

    let v = verifier(&issuer, |b| b);
    assert_eq!(
        verify(&v, &forged).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert_eq!(
        attacker.total_hits(),
        0,
        "the default client followed a redirect"
    );

    let following = reqwest::Client::new(); // follows up to 10 redirects
    let v = JwtVerifier::with_http_client(&config(&issuer, |b| b), following);
    assert_eq!(
        verify(&v, &forged).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert!(!v.is_ready(), "keys from a redirect target were loaded");
    assert_eq!(issuer.jwks_hits(), 2);
}

// Issue 4 "the whole set replaced on success" and rotation: a new kid is
// fetched once (after the cooldown); once the old key is retired and the set
// refetched, tokens signed with it stop verifying.
#[tokio::test]
async fn rotation_is_picked_up_and_a_refetch_replaces_the_whole_set() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::Es256).await.unwrap();
    let v = verifier(&issuer, |b| b.jwks_refresh_cooldown(ms(500)));
    let old = token(&issuer);
    assert!(verify(&v, &old).await.is_ok());
    issuer.rotate_key();
    let new = token(&issuer);
    tokio::time::sleep(ms(600)).await;
    assert!(verify(&v, &new).await.is_ok(), "rotation not picked up");
    assert!(verify(&v, &old).await.is_ok(), "both keys are published");
    assert_eq!(issuer.jwks_hits(), 2);

    issuer.retire_old_keys();
    tokio::time::sleep(ms(600)).await;
    let unknown = issuer
        .token()
        .audience(RESOURCE)
        .header("kid", json!("k-next"))
        .sign();
    assert_eq!(
        verify(&v, &unknown).await.err(),
        Some(AuthErrorKind::UnknownKey)
    );
    assert_eq!(issuer.jwks_hits(), 3);
    assert_eq!(
        verify(&v, &old).await.err(),
        Some(AuthErrorKind::UnknownKey)
    );
    assert!(verify(&v, &new).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 3, "within the cooldown: no refetch");
}

// Issue 4: a fetch that yields no usable key is a failure, so one bad
// publication does not wipe the last good set. A key the set lacks cannot be
// judged meanwhile (the issuer may have rotated it in): 503
// `keys_unavailable`, on the refetch that failed and within the cooldown
// after it, not the 401 `unknown_key` that sends a client to sign in again
// for a token naming the same key; once the key server answers, the 401.
#[tokio::test]
async fn an_empty_or_unusable_set_keeps_the_last_good_one() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| b.jwks_refresh_cooldown(ms(100)));
    let good = token(&issuer);
    assert!(verify(&v, &good).await.is_ok());
    for fault in [JwksFault::EmptyKeySet, JwksFault::Malformed] {
        issuer.set_jwks_fault(fault);
        tokio::time::sleep(ms(150)).await;
        let unknown = issuer
            .token()
            .audience(RESOURCE)
            .header("kid", json!("new"))
            .sign();
        let hits = issuer.jwks_hits();
        assert_eq!(
            verify(&v, &unknown).await.err(),
            Some(AuthErrorKind::KeysUnavailable)
        );
        assert_eq!(issuer.jwks_hits(), hits + 1, "the refetch was asked");
        // Within the cooldown: no refetch, still not judged.
        assert_eq!(
            verify(&v, &unknown).await.err(),
            Some(AuthErrorKind::KeysUnavailable)
        );
        assert!(verify(&v, &good).await.is_ok(), "the good set was dropped");
    }
    assert_eq!(issuer.jwks_hits(), 3);
    // Well-formed members the crypto backend refuses are no usable key
    // either: EC points off their curve (full-length coordinates, SEC 1
    // section 3.2.2.1) and an even RSA modulus.
    let mut even = issuer.public_jwk().unwrap();
    even["kid"] = json!("even");
    even["n"] = json!(URL_SAFE_NO_PAD.encode([0xc2u8; 256]));
    let off = |crv: &str, len: usize| {
        json!({"kty": "EC", "kid": format!("off-{crv}"), "crv": crv,
               "x": URL_SAFE_NO_PAD.encode(vec![7u8; len]),
               "y": URL_SAFE_NO_PAD.encode(vec![7u8; len])})
    };
    issuer.set_jwks_fault(JwksFault::None);
    issuer.set_jwks_document(Some(
        json!({"keys": [off("P-256", 32), off("P-384", 48), even]}),
    ));
    tokio::time::sleep(ms(150)).await;
    let unknown = issuer
        .token()
        .audience(RESOURCE)
        .header("kid", json!("newer"))
        .sign();
    assert_eq!(
        verify(&v, &unknown).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert!(
        verify(&v, &good).await.is_ok(),
        "a set of keys the backend refuses replaced the good set"
    );
    assert_eq!(issuer.jwks_hits(), 4);
    // The key server publishes a good set again: a key it lacks is unknown.
    issuer.set_jwks_document(None);
    tokio::time::sleep(ms(150)).await;
    assert_eq!(
        verify(&v, &unknown).await.err(),
        Some(AuthErrorKind::UnknownKey)
    );
    assert_eq!(issuer.jwks_hits(), 5);
    assert!(verify(&v, &good).await.is_ok());
}

// Issue 4 "one fetch in flight at a time (single flight)": N concurrent
// requests on a cold cache cost one discovery and one key-set fetch. The key
// server holds the first fetch until every request has queued behind it.
#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let issuer = TestIssuer::start().await.unwrap();
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let v = Arc::new(JwtVerifier::new(&config).unwrap());
    issuer.set_jwks_fault(JwksFault::Hang);
    let good = token(&issuer);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let v = Arc::clone(&v);
            let good = good.clone();
            tokio::spawn(async move { verify(&v, &good).await.is_ok() })
        })
        .collect();
    assert!(eventually(|| issuer.jwks_hits() == 1).await);
    issuer.set_jwks_fault(JwksFault::None);
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(issuer.metadata_hits(), 1);
    assert_eq!(issuer.jwks_hits(), 1);
}

// Issue 4 / RFC 7517 section 4.5: unknown kids refetch at most once per
// cooldown; during the cooldown they fail fast with `unknown_key`; many
// concurrent unknown kids share that one refetch.
#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_cooldown() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = Arc::new(verifier(&issuer, |b| b.jwks_refresh_cooldown(ms(1000))));
    assert!(verify(&v, &token(&issuer)).await.is_ok());
    let unknown = |n: usize| {
        issuer
            .token()
            .audience(RESOURCE)
            .header("kid", json!(format!("unknown-{n}")))
            .sign()
    };
    for round in 0..2 {
        tokio::time::sleep(ms(1100)).await;
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let v = Arc::clone(&v);
                let t = unknown(n);
                tokio::spawn(async move { verify(&v, &t).await.err() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Some(AuthErrorKind::UnknownKey));
        }
        for n in 16..32 {
            assert_eq!(
                verify(&v, &unknown(n)).await.err(),
                Some(AuthErrorKind::UnknownKey)
            );
        }
        assert_eq!(issuer.jwks_hits(), 2 + round, "round {round}");
    }
}

// Issue 4 "Outage": the last good set keeps serving for the bounded stale
// window (refreshes failing behind it), then requests fail closed with 503
// and `Retry-After`; when the key server is back, service resumes.
#[tokio::test]
async fn stale_window_then_fail_closed_then_recovery() {
    let rig = Rig::start(|b| {
        b.jwks_cache_ttl(ms(300))
            .jwks_max_stale(ms(1500))
            .jwks_refresh_cooldown(ms(100))
    })
    .await;
    let good = rig.token().sign();
    assert_eq!(rig.send(&good).await.status, 200);
    rig.issuer.set_jwks_available(false);
    tokio::time::sleep(ms(400)).await;
    // Stale but within the window: served, and a refresh is tried behind.
    assert_eq!(rig.send(&good).await.status, 200);
    assert!(eventually(|| rig.issuer.jwks_hits() >= 2).await);
    tokio::time::sleep(ms(1600)).await;
    // Beyond ttl + max_stale: fail closed.
    let outcome = rig.send(&good).await;
    assert_eq!(outcome.status, 503, "{outcome:?}");
    assert_eq!(outcome.retry_after.as_deref(), Some("5"));
    assert_eq!(outcome.reason.as_deref(), Some("keys_unavailable"));
    assert!(
        rig.verifier.is_ready(),
        "readiness is about the first load only"
    );
    rig.issuer.set_jwks_available(true);
    tokio::time::sleep(ms(150)).await;
    assert_eq!(rig.send(&good).await.status, 200);
}

// A key the set lacks while the key server is down, on the wire: the set is
// fresh (the unknown kid's refetch fails) or stale within its window (the
// refresh fails): 503 `keys_unavailable` with `Retry-After` and no
// challenge, where it was 401 `invalid_token` (a client signing in again
// gets a token naming the same key); a token of a key the set has is still
// served. Back up, the unknown kid is 401 again.
#[tokio::test]
async fn a_key_the_set_lacks_during_an_outage_is_503_not_401() {
    let rig = Rig::start(|b| {
        b.jwks_cache_ttl(ms(400))
            .jwks_max_stale(Duration::from_secs(30))
            .jwks_refresh_cooldown(ms(100))
    })
    .await;
    let good = rig.token().sign();
    let rotated = rig.token().header("kid", json!("rotated-in")).sign();
    assert_eq!(rig.send(&good).await.status, 200);
    rig.issuer.set_jwks_available(false);
    tokio::time::sleep(ms(150)).await;
    // Fresh set, then stale set: the same answer.
    for _ in 0..2 {
        let outcome = rig.send(&rotated).await;
        assert_eq!(outcome.status, 503, "{outcome:?}");
        assert_eq!(outcome.reason.as_deref(), Some("keys_unavailable"));
        assert!(outcome.retry_after.is_some(), "{outcome:?}");
        assert!(
            outcome.error.is_none() && !outcome.challenged,
            "{outcome:?}"
        );
        assert_eq!(rig.send(&rig.token().sign()).await.status, 200);
        tokio::time::sleep(ms(400)).await;
    }
    rig.issuer.set_jwks_available(true);
    tokio::time::sleep(ms(150)).await;
    let outcome = rig.send(&rotated).await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(outcome.reason.as_deref(), Some("unknown_key"));
    assert_eq!(outcome.error.as_deref(), Some("invalid_token"));
}

// A stale set that holds the token's key answers at once and is refreshed
// behind; while that refresh's failure is recent, the stale set keeps
// answering without another fetch (within the stale window).
#[tokio::test]
async fn stale_set_answers_at_once_and_refreshes_behind() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| {
        b.jwks_cache_ttl(ms(300))
            .jwks_max_stale(Duration::from_secs(30))
            .jwks_refresh_cooldown(Duration::from_secs(2))
    });
    assert!(verify(&v, &token(&issuer)).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 1);
    tokio::time::sleep(ms(400)).await;
    issuer.set_jwks_available(false);
    // A new token (not in the verified-token cache) with a known key.
    assert!(verify(&v, &token(&issuer)).await.is_ok());
    assert!(
        eventually(|| issuer.jwks_hits() == 2).await,
        "refreshed behind"
    );
    tokio::time::sleep(ms(50)).await;
    assert!(verify(&v, &token(&issuer)).await.is_ok());
    assert_eq!(
        issuer.jwks_hits(),
        2,
        "no refetch within the retry interval"
    );
}

// Beyond the stale window, with the key server still down: fail closed
// (503 `keys_unavailable`), and within the retry interval fail fast,
// without hitting the key server again.
#[tokio::test]
async fn beyond_the_stale_window_fails_closed_and_fast() {
    let issuer = TestIssuer::start().await.unwrap();
    let v = verifier(&issuer, |b| {
        b.jwks_cache_ttl(ms(200))
            .jwks_max_stale(ms(200))
            .jwks_refresh_cooldown(Duration::from_secs(2))
    });
    assert!(verify(&v, &token(&issuer)).await.is_ok());
    issuer.set_jwks_available(false);
    tokio::time::sleep(ms(500)).await;
    assert_eq!(
        verify(&v, &token(&issuer)).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    let hits = issuer.jwks_hits();
    assert_eq!(hits, 2, "one refetch was tried");
    assert_eq!(
        verify(&v, &token(&issuer)).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert_eq!(issuer.jwks_hits(), hits, "failed fast, no second fetch");
}

// Issue 4 "Cache-Control: max-age honoured within configured bounds"
// (RFC 9111 section 5.2.2.1).
#[tokio::test]
async fn cache_control_max_age_is_honoured_within_bounds() {
    // A long max-age outlives a short default TTL (up to jwks_cache_max_ttl).
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_cache_control(Some("public, max-age=3600"));
    let v = verifier(&issuer, |b| b.jwks_cache_ttl(ms(200)));
    let good = token(&issuer);
    assert!(verify(&v, &good).await.is_ok());
    tokio::time::sleep(ms(300)).await;
    assert!(verify(&v, &good).await.is_ok());
    tokio::time::sleep(ms(50)).await;
    assert_eq!(issuer.jwks_hits(), 1, "max-age=3600 was not honoured");

    // ... but not beyond jwks_cache_max_ttl.
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_cache_control(Some("max-age=3600"));
    let v = verifier(&issuer, |b| {
        b.jwks_cache_ttl(ms(100)).jwks_cache_max_ttl(ms(300))
    });
    let good = token(&issuer);
    assert!(verify(&v, &good).await.is_ok());
    tokio::time::sleep(ms(400)).await;
    assert!(verify(&v, &good).await.is_ok());
    assert!(
        eventually(|| issuer.jwks_hits() == 2).await,
        "max-age was not capped"
    );

    // no-store: as short as allowed (the cooldown), never a fetch per request.
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_cache_control(Some("no-store"));
    let v = verifier(&issuer, |b| b.jwks_refresh_cooldown(ms(500)));
    let good = token(&issuer);
    for _ in 0..10 {
        assert!(verify(&v, &good).await.is_ok());
    }
    assert_eq!(issuer.jwks_hits(), 1);
    tokio::time::sleep(ms(600)).await;
    assert!(verify(&v, &good).await.is_ok());
    assert!(eventually(|| issuer.jwks_hits() == 2).await);
}

// RFC 9111 section 4.2: a key set that spent time in a cache on the way (a
// CDN's `Age`) is fresh for `max-age` less that time (found from outside:
// `max-age=100000` with `Age: 99995` was kept for the whole max TTL, so a
// key the issuer withdrew could verify for an hour more); a `max-age` too
// large to read is bounded by the max TTL, not taken for absent.
#[tokio::test]
async fn the_age_of_a_cached_key_set_is_taken_off_its_freshness() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_cache_control(Some("max-age=100000"));
    issuer.set_jwks_age(Some(99_999));
    let v = verifier(&issuer, |b| {
        b.jwks_cache_ttl(Duration::from_secs(600))
            .jwks_refresh_cooldown(ms(100))
    });
    let good = token(&issuer);
    assert!(verify(&v, &good).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 1);
    tokio::time::sleep(ms(1_300)).await;
    assert!(verify(&v, &good).await.is_ok());
    assert!(
        eventually(|| issuer.jwks_hits() == 2).await,
        "a key set one second from stale was kept past it"
    );
    // Too large to read: the max TTL, not the (shorter) TTL.
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_cache_control(Some("max-age=99999999999999999999999"));
    let v = verifier(&issuer, |b| {
        b.jwks_cache_ttl(ms(200))
            .jwks_cache_max_ttl(Duration::from_secs(600))
    });
    let good = token(&issuer);
    assert!(verify(&v, &good).await.is_ok());
    tokio::time::sleep(ms(400)).await;
    assert!(verify(&v, &good).await.is_ok());
    tokio::time::sleep(ms(50)).await;
    assert_eq!(
        issuer.jwks_hits(),
        1,
        "an unreadably long max-age was taken for absent"
    );
}

// A key set padded with entries that cannot verify anything is logged in a
// few lines a fetch, not one a key (found from outside: 85,000 empty
// entries under the size cap wrote 85,000 WARN lines, 13 MB, a fetch, and
// anyone can cause a fetch a cooldown with a token naming an unknown
// `kid`); a long `kid` is cut in the log. The reference server, as users
// run it.
#[tokio::test]
async fn a_padded_key_set_is_logged_in_a_few_lines() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut long = issuer.public_jwk().unwrap();
    long["kid"] = json!("k".repeat(20_000));
    long["use"] = json!("enc");
    let mut keys = vec![long];
    keys.extend(std::iter::repeat_n(json!({}), 3_000));
    keys.push(issuer.public_jwk().unwrap());
    issuer.set_jwks_document(Some(json!({ "keys": keys })));
    let (server, resource) = support::reference::start_trusting(issuer.issuer(), &[]).await;
    let (mut child, lines) = server.gather();
    // The key set is fetched at start-up; a token naming an unknown `kid`
    // fetches it again once the cooldown allows.
    let client = reqwest::Client::new();
    let call = |token: String| {
        client
            .post(&resource)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .send()
    };
    let good = issuer
        .token()
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    let answered = call(good).await.unwrap();
    assert_ne!(answered.status(), 503, "the usable key was not loaded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().await.unwrap();
    let lines = lines.await.unwrap();
    let one_by_one = lines
        .iter()
        .filter(|l| l.contains("ignoring a key that cannot verify"))
        .count();
    let summed = lines
        .iter()
        .filter(|l| l.contains("ignoring more keys") && l.contains("more=2996"))
        .count();
    // One fetch or two (a start-up fetch racing the first call's).
    assert!(
        (5..=10).contains(&one_by_one),
        "{one_by_one} lines: {:#?}",
        &lines[..lines.len().min(20)]
    );
    assert!(
        (1..=2).contains(&summed),
        "{:#?}",
        &lines[..lines.len().min(20)]
    );
    assert!(lines.len() < 40, "{} lines", lines.len());
    assert!(
        lines.iter().all(|l| !l.contains(&"k".repeat(100))),
        "a long kid was logged whole"
    );
    assert!(
        lines.iter().any(|l| l.contains("...[+19936 bytes]")),
        "{:#?}",
        &lines[..lines.len().min(20)]
    );
}

// Issue 4 "On load, drop keys that cannot be used for us", over HTTP: the
// usable key still verifies (its private members ignored), tokens naming a
// dropped key do not; a set with nothing usable is a failed fetch.
#[tokio::test]
async fn unusable_keys_are_dropped_on_load() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut ours = issuer.public_jwk().unwrap();
    // A careless issuer publishing private members: use the public part.
    ours["d"] = json!("c2VjcmV0LWV4cG9uZW50");
    ours["p"] = json!("AQAB");
    let rsa = |kid: &str, extra: serde_json::Value| {
        let mut k = issuer.public_jwk().unwrap();
        k["kid"] = json!(kid);
        if let (Some(k), Some(extra)) = (k.as_object_mut(), extra.as_object()) {
            for (name, value) in extra {
                k.insert(name.clone(), value.clone());
            }
        }
        k
    };
    let doc = json!({"keys": [
        rsa("enc", json!({"use": "enc"})),
        rsa("ops", json!({"key_ops": ["encrypt", "wrapKey"]})),
        rsa("wrong-alg", json!({"alg": "ES256"})),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        {"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "kid": "bad-point", "crv": "P-256", "x": "AQAB", "y": "AQAB"},
        ours,
    ]});
    issuer.set_jwks_document(Some(doc));
    let v = verifier(&issuer, |b| b);
    let good = token(&issuer);
    assert!(verify(&v, &good).await.is_ok());
    for kid in ["enc", "ops", "wrong-alg", "weak"] {
        let t = issuer
            .token()
            .audience(RESOURCE)
            .header("kid", json!(kid))
            .sign();
        assert_eq!(
            verify(&v, &t).await.err(),
            Some(AuthErrorKind::UnknownKey),
            "{kid}"
        );
    }
    let hmac = issuer
        .token()
        .audience(RESOURCE)
        .header("kid", json!("hmac"))
        .header("alg", json!("HS256"))
        .sign();
    assert_eq!(
        verify(&v, &hmac).await.err(),
        Some(AuthErrorKind::DisallowedAlgorithm)
    );

    issuer.set_jwks_document(Some(json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"},
    ]})));
    let v = verifier(&issuer, |b| b);
    assert_eq!(
        verify(&v, &good).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
}

// RFC 7518 section 6.3.1.1: `n` and `e` carry no leading zero octets, and
// some libraries add one anyway. Such a key is read as the number it
// names, and the tokens it signed verify (they were all refused).
#[tokio::test]
async fn an_rsa_key_published_with_leading_zero_octets_verifies() {
    let issuer = TestIssuer::start_with_alg(SigningAlg::Rs256).await.unwrap();
    let mut jwk = issuer.public_jwk().unwrap();
    for member in ["n", "e"] {
        let mut bytes = vec![0u8];
        bytes.extend(
            URL_SAFE_NO_PAD
                .decode(jwk[member].as_str().unwrap())
                .unwrap(),
        );
        jwk[member] = json!(URL_SAFE_NO_PAD.encode(bytes));
    }
    issuer.set_jwks_document(Some(json!({ "keys": [jwk] })));
    let v = verifier(&issuer, |b| b);
    assert!(verify(&v, &token(&issuer)).await.is_ok());
    assert_eq!(issuer.jwks_hits(), 1);
}

// RFC 7517 section 4.5 (`kid` need not be unique): keys sharing a kid are
// all tried, in document order; tokens signed by either verify.
#[tokio::test]
async fn duplicate_kids_are_each_tried() {
    let issuer = TestIssuer::start().await.unwrap();
    let first = token(&issuer);
    issuer.try_add_key(SigningAlg::Rs256, "key-1").unwrap();
    issuer.try_add_key(SigningAlg::Es256, "key-1").unwrap();
    let ec = token(&issuer);
    let v = verifier(&issuer, |b| b);
    assert!(verify(&v, &first).await.is_ok(), "the older RSA key-1");
    assert!(verify(&v, &ec).await.is_ok(), "the EC key-1");
    let forged = TestIssuer::start().await.unwrap();
    let bad = forged
        .token()
        .claim("iss", json!(issuer.issuer()))
        .audience(RESOURCE)
        .sign();
    assert_eq!(
        verify(&v, &bad).await.err(),
        Some(AuthErrorKind::InvalidSignature)
    );
    assert_eq!(issuer.jwks_hits(), 1);
}

// Issue 4 "does not report ready before its first successful fetch unless
// configured to".
#[tokio::test]
async fn readiness_waits_for_the_first_successful_fetch() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_available(false);
    let v = verifier(&issuer, |b| b.jwks_refresh_cooldown(ms(100)));
    assert!(!v.is_ready());
    assert!(v.prefetch().await.is_err());
    assert!(!v.is_ready());
    issuer.set_jwks_available(true);
    tokio::time::sleep(ms(150)).await;
    v.prefetch().await.unwrap();
    assert!(v.is_ready());
    issuer.set_jwks_available(false);
    assert!(
        v.is_ready(),
        "a later outage is the stale window's business"
    );

    let v = verifier(&issuer, |b| b.require_keys_before_ready(false));
    assert!(v.is_ready(), "configured to report ready without keys");
}

// Issue 4: a static key set (no key server at all) verifies and is ready at
// once; it refuses several issuers and documents without usable keys.
#[tokio::test]
async fn a_static_key_set_never_fetches() {
    let issuer = TestIssuer::start().await.unwrap();
    let jwks = issuer.jwks().to_string();
    let config = config(&issuer, |b| b);
    let v = JwtVerifier::with_static_jwks(&config, jwks.as_bytes()).unwrap();
    assert!(v.is_ready());
    v.prefetch().await.unwrap();
    let known = token(&issuer);
    assert!(verify(&v, &known).await.is_ok());
    // A verified token is answered from the cache: its key is still in the set.
    let cached = v.verify_cached(BearerToken::new(&known)).expect("cached");
    assert_eq!(cached.issuer(), issuer.issuer());
    issuer.rotate_key();
    assert_eq!(
        verify(&v, &token(&issuer)).await.err(),
        Some(AuthErrorKind::UnknownKey)
    );
    assert_eq!(issuer.total_hits(), 0);
    assert!(JwtVerifier::with_static_jwks(&config, b"{\"keys\":[]}").is_err());
    assert!(JwtVerifier::with_static_jwks(&config, b"[]").is_err());
    let two = AuthConfig::builder()
        .issuer(issuer.issuer())
        .issuer("https://other.example")
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    assert!(JwtVerifier::with_static_jwks(&two, jwks.as_bytes()).is_err());
}

// RFC 8414 section 3: the key-set URL found by discovery is the issuer's to
// change (an upgrade, a new path). Once the old URL stops serving keys, the
// next attempt asks the metadata again, rather than retrying the old URL
// until a restart; the keys held meanwhile keep serving.
#[tokio::test]
async fn a_key_set_that_moved_is_found_again_through_discovery() {
    let realms = Realms::start(&["acme"]).await;
    let v = JwtVerifier::new(
        &AuthConfig::builder()
            .issuer(realms.issuer("acme"))
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true)
            .jwks_refresh_cooldown(ms(100))
            .build()
            .unwrap(),
    )
    .unwrap();
    let old = realms.token("acme").audience(RESOURCE).sign();
    assert!(verify(&v, &old).await.is_ok());
    assert_eq!(realms.discovery_hits("acme"), 1);
    realms.relocate_keys("acme");
    realms.signer("acme").rotate_key();
    let new = realms.token("acme").audience(RESOURCE).sign();
    tokio::time::sleep(ms(150)).await;
    // The old URL answers 404: that refetch fails, the held keys stay, and
    // the new key cannot be judged (503, not 401).
    assert_eq!(
        verify(&v, &new).await.err(),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert!(verify(&v, &old).await.is_ok());
    tokio::time::sleep(ms(150)).await;
    assert!(
        verify(&v, &new).await.is_ok(),
        "the moved key set was not found again"
    );
    assert!(verify(&v, &old).await.is_ok(), "both keys are published");
    assert_eq!(realms.discovery_hits("acme"), 2);
    assert_eq!(realms.hits("acme"), 3);
}
