//! Failed-authentication throttling (issue 17, item 3) against a real
//! `McpServer` on 127.0.0.1:0 and a real `TestIssuer`: the first N failures
//! of a window are answered as usual, then 429 with `Retry-After` before
//! any verification work (counted on the issuer's key endpoint and in the
//! metrics), until the window passes; per client address and per token
//! fingerprint; forwarded addresses believed from trusted proxies only;
//! requests without credentials on their own limit; successful callers from
//! other addresses never affected.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth2::store::{SharedStore, StoreError, StoreFuture, WindowCount};

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, McpServer};
use serde_json::Value;
use support::fixture::{EchoServer, Harness};

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
const STATELESS: &[(&str, &str)] = &[
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/list"),
];

/// A token signed by another key (a forgery): refused by signature.
fn forged(h: &Harness) -> String {
    let good = h.token("mallory");
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[2] = "AAAA";
    parts.join(".")
}

async fn post(h: &Harness, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut headers = STATELESS.to_vec();
    headers.extend_from_slice(extra);
    h.post(&headers, LIST).await
}

async fn assert_throttled(response: reqwest::Response, reason: &str) -> u64 {
    assert_eq!(response.status(), 429, "expected 429 ({reason})");
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    assert_eq!(body["reason"], reason);
    assert_eq!(body["request_id"], request_id.as_str());
    retry
}

// The first N failures are answered as usual (401 with the challenge), the
// next is 429 before any verification: no key fetch, no verification.
#[tokio::test]
async fn failures_past_the_limit_get_429_before_any_verification_work() {
    let h = Harness::start(|b| b.failed_auth_limit(3, Duration::from_secs(60))).await;
    let bad = forged(&h);
    for i in 0..3 {
        let r = post(&h, &[("authorization", &format!("Bearer {bad}"))]).await;
        assert_eq!(r.status(), 401, "failure {i} answered as usual");
        assert!(r.headers().get("www-authenticate").is_some());
    }
    let jwks_before = h.issuer.jwks_hits();
    // The same token, now with a fresh key set available: still no work.
    let retry = assert_throttled(
        post(&h, &[("authorization", &format!("Bearer {bad}"))]).await,
        "failed_auth_limit",
    )
    .await;
    assert!((1..=60).contains(&retry), "{retry}");
    // Another bad token from the same address: the address is throttled.
    let other = h
        .issuer
        .token()
        .subject("x")
        .audience("https://elsewhere")
        .sign();
    assert_throttled(
        post(&h, &[("authorization", &format!("Bearer {other}"))]).await,
        "failed_auth_limit",
    )
    .await;
    // Even a valid token from that address waits (every further request
    // from the address), and no verification happened for any of them: this
    // one is signed by a key the server has not seen, so verifying it would
    // fetch the key set again.
    h.issuer.rotate_key();
    let good = h.token("alice");
    assert_throttled(
        post(&h, &[("authorization", &format!("Bearer {good}"))]).await,
        "failed_auth_limit",
    )
    .await;
    // A token in the query as well (found from outside: answered 400
    // `token_in_query`, as if the address were not throttled).
    let in_query = post_to(
        &format!("{}?access_token=x", h.resource),
        &format!("Bearer {bad}"),
    )
    .await;
    assert_throttled(in_query, "failed_auth_limit").await;
    assert_eq!(
        h.issuer.jwks_hits(),
        jwks_before,
        "no key fetch while throttled"
    );
}

// A burst sent at once (found from outside: 100 made-up tokens on one
// connection made 100 introspection calls against a limit of 3): the
// failures of verifications that wait are known only when they end, so
// while they are in flight each distinct token counts under its address.
// With the key server hanging (every unknown kid waits for the refetch),
// twenty different bad tokens at once: three reach verification, the rest
// are 429 at once; the three end 401 once the key server answers. Control:
// twenty requests at once with one new valid token (a joined verification,
// one token) all pass.
/// A server throttling at 3 failures a minute, its key set held (one call
/// served).
async fn warm_harness() -> Harness {
    let h = Harness::start(|b| b.failed_auth_limit(3, Duration::from_secs(60))).await;
    let warm = h.token("warm");
    assert_eq!(
        post(&h, &[("authorization", &format!("Bearer {warm}"))])
            .await
            .status(),
        200
    );
    h
}

#[tokio::test]
async fn a_burst_of_waiting_verifications_counts_against_the_limit() {
    let h = warm_harness().await;
    h.issuer
        .set_jwks_fault(mcp_oauth2::testing::JwksFault::Hang);
    let burst: Vec<String> = (0..20)
        .map(|i| {
            h.issuer
                .token()
                .subject("mallory")
                .audience(&h.resource)
                .header("kid", serde_json::json!(format!("made-up-{i}")))
                .sign()
        })
        .collect();
    let release = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        h.issuer
            .set_jwks_fault(mcp_oauth2::testing::JwksFault::None);
    };
    let auths: Vec<String> = burst.iter().map(|t| format!("Bearer {t}")).collect();
    let headers: Vec<[(&str, &str); 1]> = auths
        .iter()
        .map(|auth| [("authorization", auth.as_str())])
        .collect();
    let calls = futures_util::future::join_all(headers.iter().map(|header| post(&h, header)));
    let (responses, ()) = tokio::join!(calls, release);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((refused, throttled), (3, 17), "{statuses:?}");
    // Their failures now count: the address is throttled.
    let again = h.issuer.token().subject("mallory").sign();
    assert_eq!(
        post(&h, &[("authorization", &format!("Bearer {again}"))])
            .await
            .status(),
        429
    );

    // Control, from a fresh server: one new token in twenty calls at once,
    // waiting on the same hanging fetch, is one verification in flight.
    let h = warm_harness().await;
    h.issuer.rotate_key();
    let fresh = h.token("alice");
    h.issuer
        .set_jwks_fault(mcp_oauth2::testing::JwksFault::Hang);
    let release = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        h.issuer
            .set_jwks_fault(mcp_oauth2::testing::JwksFault::None);
    };
    let auth = format!("Bearer {fresh}");
    let header = [("authorization", auth.as_str())];
    let calls = futures_util::future::join_all((0..20).map(|_| post(&h, &header)));
    let (responses, ()) = tokio::join!(calls, release);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

// Trusted proxy: the client is the right-most untrusted X-Forwarded-For
// hop. A spoofed left part neither escapes the limit nor frames the victim;
// a successful caller from another address is never affected.
#[tokio::test]
async fn forwarded_addresses_count_only_through_trusted_proxies() {
    let h = Harness::start(|b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
            .trusted_proxy("127.0.0.1/32")
    })
    .await;
    let bad = forged(&h);
    let good = h.token("victim");
    let auth_bad = format!("Bearer {bad}-1");
    // The attacker (198.51.100.66) writes the victim's address in front; the
    // proxy appends the real one.
    let spoofing = [
        ("authorization", auth_bad.as_str()),
        ("x-forwarded-for", "203.0.113.10, 198.51.100.66"),
    ];
    for _ in 0..2 {
        assert_eq!(post(&h, &spoofing).await.status(), 401);
    }
    // A new bad token each time: the address is what is counted.
    let auth_bad2 = format!("Bearer {bad}-2");
    let r = post(
        &h,
        &[
            ("authorization", auth_bad2.as_str()),
            ("x-forwarded-for", "198.51.100.66"),
        ],
    )
    .await;
    assert_throttled(r, "failed_auth_limit").await;
    // The victim (203.0.113.10) is not framed.
    let auth_good = format!("Bearer {good}");
    let r = post(
        &h,
        &[
            ("authorization", auth_good.as_str()),
            ("x-forwarded-for", "203.0.113.10"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "the victim is served");
    // Another spelling of the attacker's address (IPv4-mapped) does not escape.
    let r = post(
        &h,
        &[
            ("authorization", auth_good.as_str()),
            ("x-forwarded-for", "::ffff:198.51.100.66"),
        ],
    )
    .await;
    assert_eq!(r.status(), 429, "mapped spelling");
    // `Forwarded` is not read by default: a client behind an
    // `X-Forwarded-For` proxy cannot name another address in it.
    let r = post(
        &h,
        &[
            ("authorization", auth_good.as_str()),
            ("forwarded", "for=203.0.113.99"),
            ("x-forwarded-for", "198.51.100.66"),
        ],
    )
    .await;
    assert_eq!(r.status(), 429, "Forwarded is not read");
}

// Behind a proxy that writes `Forwarded` (`forwarded_header`), only that
// header names the client: an `X-Forwarded-For` the client sent, which the
// proxy passes on, names nobody (found from outside: it was read first, so
// the client chose its address, a victim's to lock out or a new one per
// request to escape the limit).
#[tokio::test]
async fn behind_a_forwarded_proxy_a_client_s_x_forwarded_for_is_ignored() {
    let h = Harness::start(|b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
            .trusted_proxy("127.0.0.1/32")
            .forwarded_header(mcp_oauth2::ForwardedHeader::Forwarded)
    })
    .await;
    let bad = forged(&h);
    // The attacker (198.51.100.66, as the proxy writes it) names the victim
    // and then a new address each time in its own X-Forwarded-For.
    for i in 0..4 {
        let auth = format!("Bearer {bad}-{i}");
        let spoof = format!("203.0.113.{}", if i == 0 { 10 } else { i });
        let r = post(
            &h,
            &[
                ("authorization", &auth),
                ("x-forwarded-for", &spoof),
                ("forwarded", "for=198.51.100.66;proto=https"),
            ],
        )
        .await;
        if i < 2 {
            assert_eq!(r.status(), 401, "attempt {i}");
        } else {
            assert_throttled(r, "failed_auth_limit").await;
        }
    }
    // The victim, as the proxy writes it, is served.
    let good = format!("Bearer {}", h.token("victim"));
    let r = post(
        &h,
        &[
            ("authorization", &good),
            ("forwarded", "for=203.0.113.10;proto=https"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "the victim is served");
}

// Untrusted peer: X-Forwarded-For is ignored, so a client cannot escape by
// rotating it, and the socket address is what is throttled.
#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let h = Harness::start(|b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
            .trusted_proxy("10.0.0.0/8")
    })
    .await;
    let bad = forged(&h);
    for i in 0..2 {
        let xff = format!("192.0.2.{i}");
        let auth = format!("Bearer {bad}{i}");
        let r = post(&h, &[("authorization", &auth), ("x-forwarded-for", &xff)]).await;
        assert_eq!(r.status(), 401);
    }
    let r = post(
        &h,
        &[
            ("authorization", "Bearer another"),
            ("x-forwarded-for", "192.0.2.99"),
        ],
    )
    .await;
    assert_throttled(r, "failed_auth_limit").await;
}

// The fingerprint follows the token across addresses (through a trusted
// proxy, each request from another client address).
#[tokio::test]
async fn a_token_is_throttled_by_its_fingerprint_from_any_address() {
    let h = Harness::start(|b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
            .trusted_proxy("127.0.0.1")
    })
    .await;
    let bad = format!("Bearer {}", forged(&h));
    for i in 0..2 {
        let xff = format!("192.0.2.{i}");
        assert_eq!(
            post(&h, &[("authorization", &bad), ("x-forwarded-for", &xff)])
                .await
                .status(),
            401
        );
    }
    let r = post(
        &h,
        &[("authorization", &bad), ("x-forwarded-for", "192.0.2.50")],
    )
    .await;
    assert_throttled(r, "failed_auth_limit").await;
    // A valid token from yet another address is served.
    let good = format!("Bearer {}", h.token("bob"));
    let r = post(
        &h,
        &[("authorization", &good), ("x-forwarded-for", "192.0.2.51")],
    )
    .await;
    assert_eq!(r.status(), 200);
}

// A failed proof of possession counts against the sender's address only:
// a thief holding a stolen DPoP-bound token, who cannot use it, cannot get
// it refused to its holder either (found from outside: after the thief's
// failures the holder got 429 with valid proofs from another address).
// Failures of the token itself still follow it across addresses.
#[tokio::test]
async fn a_stolen_bound_token_cannot_be_throttled_away_from_its_holder() {
    // DPoP allowed (the default) and required (found from outside: there
    // a `Bearer` request is refused before the token is read, and was
    // counted against the token).
    for mode in [
        mcp_oauth2::DpopMode::Allowed,
        mcp_oauth2::DpopMode::Required,
    ] {
        stolen_bound_token_in(mode).await;
    }
}

async fn stolen_bound_token_in(mode: mcp_oauth2::DpopMode) {
    use mcp_oauth2::testing::DpopClient;
    let h = Harness::start(|b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
            .trusted_proxy("127.0.0.1")
            .dpop(mcp_oauth2::DpopPolicy::default().mode(mode))
    })
    .await;
    let (holder, thief) = (DpopClient::new(), DpopClient::new());
    let token = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .dpop_bound_to(holder.thumbprint())
        .sign();
    let (dpop, bearer) = (format!("DPoP {token}"), format!("Bearer {token}"));
    let (basic, unknown) = (format!("Basic {token}"), format!("DPoPX {token}"));
    // Every way the thief can fail with the token, from its own addresses:
    // its own key's proof, a proof for another URI, no proof, a replayed
    // proof of the holder's (seen on the wire), the Bearer scheme.
    let seen = holder.proof("POST", &h.resource, Some(&token));
    assert_eq!(
        post(
            &h,
            &[
                ("authorization", &dpop),
                ("dpop", &seen),
                ("x-forwarded-for", "198.51.100.1")
            ]
        )
        .await
        .status(),
        200,
        "the holder's own call"
    );
    for i in 0..3 {
        let xff = format!("192.0.2.{i}");
        let own = thief.proof("POST", &h.resource, Some(&token));
        let elsewhere = holder.proof("POST", "http://127.0.0.1:1/other", Some(&token));
        for headers in [
            vec![("authorization", dpop.as_str()), ("dpop", own.as_str())],
            vec![
                ("authorization", dpop.as_str()),
                ("dpop", elsewhere.as_str()),
            ],
            vec![("authorization", dpop.as_str()), ("dpop", seen.as_str())],
            vec![("authorization", dpop.as_str())],
            vec![("authorization", bearer.as_str())],
            // The request around it: a second `Authorization` field (400
            // `invalid_request`, found from outside).
            vec![
                ("authorization", dpop.as_str()),
                ("authorization", dpop.as_str()),
                ("dpop", own.as_str()),
            ],
            vec![
                ("authorization", dpop.as_str()),
                ("authorization", "Basic eA=="),
            ],
            // Under another scheme (401 without a token, found from
            // outside).
            vec![("authorization", basic.as_str())],
            vec![("authorization", unknown.as_str()), ("dpop", own.as_str())],
        ] {
            let mut headers = headers;
            headers.push(("x-forwarded-for", &xff));
            let status = post(&h, &headers).await.status();
            assert!(status == 400 || status == 401 || status == 429, "{status}");
        }
        // And a token in the query beside it (400 `token_in_query`, or the
        // throttle's 429 once the thief's address has reached its limit).
        let own = thief.proof("POST", &h.resource, Some(&token));
        let status = reqwest::Client::new()
            .post(format!("{}?access_token=x", h.resource))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .header("authorization", &dpop)
            .header("dpop", &own)
            .header("x-forwarded-for", &xff)
            .body(LIST)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 400 || status == 429, "{status}");
        // The thief's address is throttled.
        let own = thief.proof("POST", &h.resource, Some(&token));
        let r = post(
            &h,
            &[
                ("authorization", &dpop),
                ("dpop", &own),
                ("x-forwarded-for", &xff),
            ],
        )
        .await;
        assert_throttled(r, "failed_auth_limit").await;
    }
    // The stolen token sent as `Bearer` alone, once from each of more
    // addresses than the limit (found from outside with DPoP required).
    for i in 10..14 {
        let xff = format!("192.0.2.{i}");
        let status = post(
            &h,
            &[
                ("authorization", bearer.as_str()),
                ("x-forwarded-for", &xff),
            ],
        )
        .await
        .status();
        assert_eq!(status, 401, "{mode:?}");
    }
    // The holder, from another address, with a fresh proof: served.
    for _ in 0..3 {
        let proof = holder.proof("POST", &h.resource, Some(&token));
        let r = post(
            &h,
            &[
                ("authorization", &dpop),
                ("dpop", &proof),
                ("x-forwarded-for", "198.51.100.2"),
            ],
        )
        .await;
        assert_eq!(r.status(), 200);
    }
}

// IPv6: one subscriber gets a /64 (RFC 6177, RFC 8273) and picks any of its
// 2^64 addresses freely, so addresses count per /64: rotating within it
// does not escape the limit, and the neighbouring /64 is not affected.
#[tokio::test]
async fn ipv6_clients_count_per_64_prefix() {
    let h = Harness::start(|b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
            .trusted_proxy("127.0.0.1")
    })
    .await;
    let bad = forged(&h);
    for i in 1..=2 {
        let xff = format!("2001:db8:1:2::{i:x}");
        let auth = format!("Bearer {bad}-{i}");
        let r = post(&h, &[("authorization", &auth), ("x-forwarded-for", &xff)]).await;
        assert_eq!(r.status(), 401, "{xff}");
    }
    // Another address of the same /64, a new bad token: throttled.
    let auth = format!("Bearer {bad}-3");
    let r = post(
        &h,
        &[
            ("authorization", auth.as_str()),
            ("x-forwarded-for", "2001:db8:1:2:ffff:1:2:3"),
        ],
    )
    .await;
    assert_throttled(r, "failed_auth_limit").await;
    // The next /64 is someone else: served.
    let good = format!("Bearer {}", h.token("neighbour"));
    let r = post(
        &h,
        &[
            ("authorization", good.as_str()),
            ("x-forwarded-for", "2001:db8:1:3::1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "the next /64 is not throttled");
}

// Requests without credentials count on their own limit; the window passes.
#[tokio::test]
async fn missing_credentials_have_their_own_limit_and_the_window_passes() {
    let h = Harness::start(|b| {
        b.missing_auth_limit(2, Duration::from_secs(1))
            .failed_auth_limit(100, Duration::from_secs(60))
    })
    .await;
    for _ in 0..2 {
        let r = post(&h, &[]).await;
        assert_eq!(r.status(), 401);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    let retry = assert_throttled(post(&h, &[]).await, "missing_auth_limit").await;
    assert_eq!(retry, 1);
    // A caller with a token from the same address is not held by it.
    let good = format!("Bearer {}", h.token("carol"));
    assert_eq!(post(&h, &[("authorization", &good)]).await.status(), 200);
    // Wait for the window to pass (on the clock; no speed assertion).
    let mut passed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if post(&h, &[]).await.status() == 401 {
            passed = true;
            break;
        }
    }
    assert!(
        passed,
        "the window passed and requests are answered as usual"
    );
}

// Off by default: any number of failures is answered as usual, and the
// metrics count throttled requests when on.
#[tokio::test]
async fn off_unless_configured_and_counted_in_the_metrics() {
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .missing_auth_limit(1, Duration::from_secs(60))
        .build()
        .unwrap();
    let server = McpServer::builder()
        .auth(config)
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap();
    let metrics = server.metrics();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let http = reqwest::Client::new();
    let send = |auth: Option<&str>| {
        let mut r = http
            .post(&resource)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .body(LIST);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    // No failed-auth limit configured: bad tokens are never throttled.
    for _ in 0..5 {
        assert_eq!(send(Some("Bearer bad")).await.unwrap().status(), 401);
    }
    assert_eq!(send(None).await.unwrap().status(), 401);
    assert_eq!(send(None).await.unwrap().status(), 429);
    assert_eq!(send(None).await.unwrap().status(), 429);
    let snap = metrics.snapshot();
    assert_eq!(snap.throttled, 2);
    assert_eq!(snap.store_errors, 0);
    assert_eq!(snap.rejected.get("missing_auth_limit"), Some(&2));
    ct.cancel();
}

// Configuration errors are precise.
#[test]
fn bad_limits_and_proxies_are_configuration_errors() {
    let base = || {
        AuthConfig::builder()
            .issuer("https://as.example")
            .resource("https://rs.example/mcp")
    };
    let e = base()
        .failed_auth_limit(0, Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "failed_auth_limit");
    let e = base()
        .missing_auth_limit(5, Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "missing_auth_limit");
    let e = base().trusted_proxy("proxy.internal").build().unwrap_err();
    assert_eq!(e.field(), "trusted_proxy");
    assert!(e.message().contains("not a CIDR"), "{e}");
    // Trusting every address believes any client's X-Forwarded-For: each
    // request could name its own client address and escape the limit.
    for every in ["0.0.0.0/0", "::/0", " 0.0.0.0/0 "] {
        let e = base().trusted_proxy(every).build().unwrap_err();
        assert_eq!(e.field(), "trusted_proxy", "{every}");
        assert!(e.message().contains("every address"), "{every}: {e}");
    }
    // Every address in pieces is every address too.
    for halves in [["0.0.0.0/1", "128.0.0.0/1"], ["::/1", "8000::/1"]] {
        let e = base()
            .trusted_proxy(halves[0])
            .trusted_proxy(halves[1])
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "trusted_proxy", "{halves:?}");
        assert!(e.message().contains("every"), "{halves:?}: {e}");
    }
    // The broadest private ranges are fine.
    base()
        .trusted_proxy("10.0.0.0/8")
        .trusted_proxy("fc00::/7")
        .build()
        .unwrap();
}

// The reference server, configured by environment only: throttling on with
// `MCP_OAUTH2_FAILED_AUTH_LIMIT`, audit events as JSON lines with
// `MCP_OAUTH2_LOG_FORMAT=json`.
#[tokio::test]
async fn reference_server_throttles_and_prints_json_audit_lines() {
    let issuer = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let mut server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_FAILED_AUTH_LIMIT", "1/60"),
            ("MCP_OAUTH2_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let send = || {
        http.post(&resource)
            .header("authorization", "Bearer not-a-token")
            .header("x-request-id", "ref-1")
            .header("content-type", "application/json")
            .body(LIST)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 401);
    let r = send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-request-id"], "ref-1");
    let mut seen = Vec::new();
    let throttled = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = server.lines.next_line().await.unwrap() {
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            seen.push(v["fields"]["event"].as_str().unwrap_or("").to_owned());
            if v["target"] == "mcp_oauth2::audit" && v["fields"]["event"] == "throttled" {
                return v;
            }
        }
        panic!("no throttled event");
    })
    .await
    .unwrap();
    assert!(seen.iter().any(|e| e == "auth.refused"), "{seen:?}");
    let f = &throttled["fields"];
    assert_eq!(f["reason"], "failed_auth_limit");
    assert_eq!(f["request_id"], "ref-1");
    assert_eq!(f["client_addr"], "127.0.0.1");
    assert_eq!(f["status"], 429);
    server.child.kill().await.unwrap();
}

/// A store that answers only after yielding (as a remote store does), or
/// not at all (`down`).
#[derive(Debug, Default)]
struct RemoteLike {
    inner: mcp_oauth2::store::MemoryStore,
    down: bool,
}

impl RemoteLike {
    fn unavailable<T>() -> Result<T, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

impl SharedStore for RemoteLike {
    fn hit(&self, key: &str, window: Duration) -> StoreFuture<'_, WindowCount> {
        let key = key.to_owned();
        Box::pin(async move {
            tokio::task::yield_now().await;
            if self.down {
                return Self::unavailable();
            }
            self.inner.hit(&key, window).await
        })
    }
    fn peek(&self, key: &str) -> StoreFuture<'_, Option<WindowCount>> {
        let key = key.to_owned();
        Box::pin(async move {
            tokio::task::yield_now().await;
            if self.down {
                return Self::unavailable();
            }
            self.inner.peek(&key).await
        })
    }
    fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        self.inner.put_if_absent(key, value, ttl)
    }
    fn get(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, ()> {
        self.inner.put(key, value, ttl)
    }
    fn delete(&self, key: &str) -> StoreFuture<'_, ()> {
        self.inner.delete(key)
    }
}

async fn server_with_store(store: RemoteLike) -> Harness {
    Harness::start(|b| {
        b.stateless_only(true)
            .failed_auth_limit(2, Duration::from_secs(60))
            .shared_store(Arc::new(store))
    })
    .await
}

async fn post_to(resource: &str, auth: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(resource)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(LIST)
        .send()
        .await
        .unwrap()
}

// A store that must be waited for: the verdict is awaited before any
// verification, failures are counted in a task; the limit still holds.
#[tokio::test]
async fn a_store_that_must_be_waited_for_still_throttles() {
    let h = server_with_store(RemoteLike::default()).await;
    let (resource, metrics, issuer) = (&h.resource, &h.metrics, &h.issuer);
    for _ in 0..2 {
        assert_eq!(post_to(resource, "Bearer bad").await.status(), 401);
    }
    // The failures are counted in a task: wait for them on the clock.
    let mut throttled = None;
    for _ in 0..50 {
        let r = post_to(resource, "Bearer other").await;
        if r.status() == 429 {
            throttled = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_throttled(throttled.expect("throttled"), "failed_auth_limit").await;
    let good = issuer.token().audience(resource).sign();
    assert_eq!(
        post_to(resource, &format!("Bearer {good}")).await.status(),
        429
    );
    // A token in the query too: the throttle's 429 first, the store
    // waited for.
    let query = format!("{resource}?access_token=x");
    assert_eq!(post_to(&query, "Bearer other").await.status(), 429);
    assert!(metrics.snapshot().throttled >= 3);
    // From an address not throttled (another server, the same store
    // kind), the query token is the 400 it always was.
    let fresh = server_with_store(RemoteLike::default()).await;
    let query = format!("{}?access_token=x", fresh.resource);
    let refused = post_to(&query, "Bearer other").await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "token_in_query");
}

// A store that is down: throttling fails open (requests are verified and
// answered as usual), and every failed store operation is counted.
#[tokio::test]
async fn a_store_that_is_down_fails_open_and_is_counted() {
    let store = RemoteLike {
        down: true,
        ..RemoteLike::default()
    };
    let h = server_with_store(store).await;
    let (resource, metrics, issuer) = (&h.resource, &h.metrics, &h.issuer);
    for _ in 0..4 {
        assert_eq!(post_to(resource, "Bearer bad").await.status(), 401);
    }
    let good = issuer.token().audience(resource).sign();
    assert_eq!(
        post_to(resource, &format!("Bearer {good}")).await.status(),
        200
    );
    let snap = metrics.snapshot();
    assert_eq!(snap.throttled, 0);
    assert!(snap.store_errors >= 5, "{}", snap.store_errors);
    // The verification latency of the full verifications was recorded.
    assert!(snap.verify_latency.count >= 1);
    assert!(snap.jwks_fetch_latency.count >= 1);
}

// RFC 9449 section 8: a server demanding DPoP nonces answers a client's
// first request (no nonce yet) with 401 `use_dpop_nonce`, and the client
// retries with the nonce: a step of the flow, not a failed authentication.
// Found from outside: with a limit of five, five clients behind one address
// taking that step got every request from there 429, working clients'
// too. The step is not counted; a proof with a bad nonce is not either
// (a stale one is the same step again); a bad token with a good nonce is.
#[tokio::test]
async fn the_dpop_nonce_step_is_not_a_failed_authentication() {
    use mcp_oauth2::testing::DpopClient;
    let h = Harness::start(|b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
            .dpop(mcp_oauth2::DpopPolicy::default().nonce(true))
    })
    .await;
    let mut nonce = None;
    // Ten clients, each taking the nonce step, then calling with it.
    for i in 0..10 {
        let client = DpopClient::new();
        let token = h
            .issuer
            .token()
            .subject(format!("user{i}"))
            .audience(&h.resource)
            .dpop_bound_to(client.thumbprint())
            .sign();
        let auth = format!("DPoP {token}");
        let first = client.proof("POST", &h.resource, Some(&token));
        let r = post(&h, &[("authorization", &auth), ("dpop", &first)]).await;
        assert_eq!(r.status(), 401, "client {i}: the nonce step");
        let given = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["reason"], "dpop_nonce_required", "client {i}");
        // A nonce that is not ours: the same step again, not counted.
        let junk = client
            .proof_builder("POST", &h.resource)
            .access_token(&token)
            .nonce("not-ours")
            .sign();
        let r = post(&h, &[("authorization", &auth), ("dpop", &junk)]).await;
        assert_eq!(r.status(), 401, "client {i}: a bad nonce");
        let again = client
            .proof_builder("POST", &h.resource)
            .access_token(&token)
            .nonce(&given)
            .sign();
        let r = post(&h, &[("authorization", &auth), ("dpop", &again)]).await;
        assert_eq!(r.status(), 200, "client {i}: with the nonce");
        nonce = Some(given);
    }
    // The control: failed authentications with a good nonce still count
    // (a forged token under its own key: two answered, then 429).
    let nonce = nonce.unwrap();
    let mallory = DpopClient::new();
    let forged = forged(&h);
    let auth = format!("DPoP {forged}");
    for i in 0..3 {
        let proof = mallory
            .proof_builder("POST", &h.resource)
            .access_token(&forged)
            .nonce(&nonce)
            .sign();
        let r = post(&h, &[("authorization", &auth), ("dpop", &proof)]).await;
        if i < 2 {
            assert_eq!(r.status(), 401, "failure {i} answered as usual");
        } else {
            assert_throttled(r, "failed_auth_limit").await;
        }
    }
}
