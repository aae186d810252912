//! Criterion benchmarks of the authentication layer (issue 7), each next to
//! its baseline in the same run.
//!
//! ```sh
//! cargo bench --bench auth                                            # full run
//! cargo bench --bench auth -- --warm-up-time 1 --measurement-time 3   # short run
//! python3 scripts/bench-ratios.py                                     # ratios table
//! ```
//!
//! | id | measures | baseline |
//! |----|----------|----------|
//! | `overhead/block_on_empty` | `rt.block_on(async {})` on a current-thread runtime | subtracted from every per-call `block_on` bench |
//! | `baseline/read_header` | reading `Authorization: Bearer ...` from a `HeaderMap` inside one `block_on` | for `warm/*` and `flood/*` |
//! | `baseline/build_header` | building that `HeaderMap` from the token | for reference |
//! | `bare/{RS256,ES256,EdDSA}` | aws-lc-rs `ParsedPublicKey::verify_sig` over the same pool (key prepared once, signature pre-decoded) | for `cold/*` |
//! | `cold/verify/{alg}` | `JwtVerifier::verify` of a token it has never seen (cache on: verification plus insertion) | `bare/{alg}`, target at most 1.15x |
//! | `cold/verify_nocache/{alg}` | the same with `verified_cache_max_entries(0)` | `bare/{alg}` |
//! | `cold/authenticate/{alg}` | `AuthLayer::authenticate` (header, verification, scopes) of a never-seen token | `bare/{alg}` |
//! | `warm/authenticate/{alg}` | `AuthLayer::authenticate` of the same token again (cache hit) | `overhead/block_on_empty`, target at most 2 us net |
//! | `warm/authenticate_amortized/ES256` | the same, many calls per `block_on` (no overhead to subtract) | target at most 2 us |
//! | `challenge/{initial,invalid_token}` | `testing::bearer_challenge` | `challenge/format_baseline` (a plain `format!`) |
//! | `metadata/auth_layer` | GET of the RFC 9728 document through `AuthLayer` via `oneshot`, body collected | `metadata/plain_route` (axum route, same bytes) |
//! | `flood/{malformed,wrong_issuer,expired,bad_signature}` | `AuthLayer::authenticate` of distinct garbage tokens (cache on, the default) | `flood_nocache/*`, target at most 1.0x; net of `overhead/block_on_empty` |
//! | `flood_nocache/*` | the same with `verified_cache_max_entries(0)` | |
//! | `e2e/rmcp` | in process (`oneshot`, no sockets): a stateless `tools/call` of a `ping` tool to an rmcp streamable HTTP server configured as in the load benchmark | for `e2e/*` |
//! | `e2e/rmcp_after` | `e2e/rmcp` again after the authenticated ones: the two bracket them and show drift | |
//! | `e2e/{auth_layer,mcp_server}/{RS256,ES256}` | the same call with a reused token through `AuthLayer` over that router, and through `McpServer::into_router` | `e2e/rmcp`, target at most 1/0.95 = 1.05x |
//! | `dpop/bearer/ES256` | the `e2e` call through `McpServer` (defaults: DPoP allowed, replay detection on) with a reused Bearer token | for `dpop/dpop` |
//! | `dpop/dpop/ES256` | the same call with a reused DPoP-bound token (`cnf.jkt`) and a fresh ES256 proof per call (signed outside the timed region): one proof check, one replay-store insert | `dpop/bearer/ES256` |
//! | `dpop/client_sign_proof/ES256` | what the client pays to sign one proof (`testing::DpopClient`), for reference | |
//!
//! Cold path: every measured call uses a token the verifier has never seen.
//! A pool of distinct tokens (distinct `jti`) is minted up front; the timed
//! loop walks it once per fresh verifier (a new verifier, and so an empty
//! verified-token cache, is built outside the timed region whenever the
//! pool is used up), so no cache can turn a cold measurement into a hit.
//! Each fresh verifier first verifies one extra "primer" token, untimed, so
//! that work done once per verifier (a key prepared on first use) is not
//! charged to the cold calls.
//! The cold loops run many calls inside one `block_on`, so they carry no
//! per-call runtime overhead and compare directly with the bare check,
//! which walks the same pool the same way and runs just before them.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main,
};
use http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use mcp_oauth2::testing::bearer_challenge;
use mcp_oauth2::testing::{DpopClient, SigningAlg, TestIssuer};
use mcp_oauth2::{
    AuthConfig, AuthErrorKind, AuthLayer, BearerToken, ErrorCode, JwtVerifier, McpServer,
    TokenVerifier,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;
use tokio::runtime::Runtime;
use tower::{Layer as _, ServiceExt as _};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const SCOPE: &str = "mcp:tools";
/// Distinct tokens per algorithm for the cold path (RS256 minting costs
/// about 1-2 ms each, so this is a few seconds of setup).
const COLD_POOL: usize = 2_000;
/// Distinct tokens per kind of garbage.
const FLOOD_POOL: usize = 500;
const ALGS: [SigningAlg; 3] = [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa];

fn runtime() -> Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build the Tokio runtime: {e}"),
    }
}

/// The bench configuration; `cache` false turns the verified-token cache
/// off (`verified_cache_max_entries(0)`).
fn config(issuer: &TestIssuer, cache: bool) -> AuthConfig {
    let mut builder = AuthConfig::builder();
    if !cache {
        builder = builder.verified_cache_max_entries(0);
    }
    match builder
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .required_scopes([SCOPE])
        .allow_insecure_http_for_loopback(true)
        .build()
    {
        Ok(config) => config,
        Err(e) => panic!("bench configuration: {e}"),
    }
}

fn bearer_headers(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|e| panic!("token is not a header value: {e}"));
    headers.insert(AUTHORIZATION, value);
    headers
}

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64url in fixture: {e}"))
}

/// One algorithm's issuer, key set, token pool and bare verification key.
struct AlgFixture {
    alg: SigningAlg,
    issuer: TestIssuer,
    config: AuthConfig,
    /// The same with the verified-token cache off.
    config_nocache: AuthConfig,
    jwks: Vec<u8>,
    /// Distinct valid tokens (distinct `jti`).
    tokens: Vec<String>,
    /// One more, verified by every fresh verifier before its timed pass so
    /// that one-time work (such as preparing a key on first use) stays out
    /// of the cold numbers.
    primer: String,
    /// The same tokens as (signing input, decoded signature).
    split: Vec<(Vec<u8>, Vec<u8>)>,
    /// The issuer's public key, prepared once.
    bare: ParsedPublicKey,
}

impl AlgFixture {
    fn new(rt: &Runtime, alg: SigningAlg) -> Self {
        let issuer = rt
            .block_on(TestIssuer::start_with_alg(alg))
            .unwrap_or_else(|e| panic!("test issuer: {e}"));
        let (config, config_nocache) = (config(&issuer, true), config(&issuer, false));
        let jwks = issuer.jwks().to_string().into_bytes();
        let mut tokens: Vec<String> = (0..=COLD_POOL)
            .map(|_| {
                issuer
                    .token()
                    .audience(RESOURCE)
                    .scopes([SCOPE])
                    .expires_in(Duration::from_secs(6 * 3600))
                    .sign()
            })
            .collect();
        let primer = tokens.pop().unwrap_or_default();
        let split = tokens
            .iter()
            .map(|t| {
                let (input, sig) = t.rsplit_once('.').unwrap_or_else(|| panic!("not a JWS"));
                (input.as_bytes().to_vec(), b64d(sig))
            })
            .collect();
        let bare = bare_key(alg, &issuer.public_jwk().unwrap_or_else(|e| panic!("{e}")));
        Self {
            alg,
            issuer,
            config,
            config_nocache,
            jwks,
            tokens,
            primer,
            split,
            bare,
        }
    }

    fn name(&self) -> &'static str {
        self.alg.as_str()
    }

    fn config(&self, cache: bool) -> &AuthConfig {
        if cache {
            &self.config
        } else {
            &self.config_nocache
        }
    }

    /// A new verifier: fresh state, so nothing it has seen before.
    fn verifier(&self, cache: bool) -> JwtVerifier {
        JwtVerifier::with_static_jwks(self.config(cache), &self.jwks)
            .unwrap_or_else(|e| panic!("static key set: {e}"))
    }

    fn layer(&self, cache: bool) -> AuthLayer {
        AuthLayer::with_verifier(self.config(cache).clone(), self.verifier(cache))
    }

    /// A fresh verifier that has verified the primer (and nothing of the pool).
    fn primed_verifier(&self, rt: &Runtime, cache: bool) -> JwtVerifier {
        let verifier = self.verifier(cache);
        let primed = rt.block_on(verifier.verify(BearerToken::new(&self.primer)));
        assert!(primed.is_ok(), "primer token rejected");
        verifier
    }

    /// A fresh layer that has authenticated the primer (and nothing of the pool).
    fn primed_layer(&self, rt: &Runtime) -> AuthLayer {
        let layer = self.layer(true);
        let primed = rt.block_on(layer.authenticate(&bearer_headers(&self.primer)));
        assert!(primed.is_ok(), "primer token rejected");
        layer
    }
}

/// The public JWK as an aws-lc-rs key, prepared once.
fn bare_key(alg: SigningAlg, jwk: &Value) -> ParsedPublicKey {
    let member = |name: &str| {
        b64d(
            jwk[name]
                .as_str()
                .unwrap_or_else(|| panic!("JWK without {name}")),
        )
    };
    let key = match alg {
        SigningAlg::Rs256 => {
            let (n, e) = (member("n"), member("e"));
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        }
        SigningAlg::Es256 => {
            let mut point = vec![0x04];
            point.extend(member("x"));
            point.extend(member("y"));
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        }
        SigningAlg::EdDsa => ParsedPublicKey::new(&ED25519, member("x")),
        other => panic!("no bare key for {other}"),
    };
    key.unwrap_or_else(|e| panic!("bare key: {e}"))
}

fn overhead_and_baselines(c: &mut Criterion, rt: &Runtime, token: &str) {
    c.bench_function("overhead/block_on_empty", |b| {
        b.iter(|| rt.block_on(async {}));
    });
    let headers = bearer_headers(token);
    c.bench_function("baseline/read_header", |b| {
        b.iter(|| {
            rt.block_on(async {
                black_box(&headers)
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::len)
            })
        });
    });
    c.bench_function("baseline/build_header", |b| {
        b.iter(|| bearer_headers(black_box(token)));
    });
}

/// Runs `iters` calls: walks the pool once per fresh `state` (built outside
/// the timed region); `pass` makes the first `n` calls of the pool (for the
/// async paths inside one `block_on`) and returns how many failed; `after`
/// checks the state, untimed.
fn cold_iters<S, F>(
    rt: &Runtime,
    pool: usize,
    iters: u64,
    fresh: impl Fn() -> S,
    pass: F,
    after: impl Fn(&S, usize),
) -> Duration
where
    F: Fn(&Runtime, &S, usize) -> usize,
{
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let state = fresh();
        let n = usize::try_from(left).map_or(pool, |l| l.min(pool));
        let start = Instant::now();
        let failures = pass(rt, &state, n);
        total += start.elapsed();
        assert_eq!(failures, 0, "a cold-path token was rejected");
        after(&state, n);
        left -= n as u64;
    }
    total
}

fn bench_cold_verify(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    fx: &AlgFixture,
    id: &str,
    cache: bool,
) {
    group.bench_function(BenchmarkId::new(id, fx.name()), |b| {
        b.iter_custom(|iters| {
            cold_iters(
                rt,
                fx.tokens.len(),
                iters,
                || fx.primed_verifier(rt, cache),
                |rt, v, n| {
                    rt.block_on(async {
                        let mut failures = 0;
                        for t in &fx.tokens[..n] {
                            if black_box(v.verify(BearerToken::new(black_box(t))).await).is_err() {
                                failures += 1;
                            }
                        }
                        failures
                    })
                },
                |v, n| {
                    // Every call was a miss: the pool and the primer, each once.
                    let expected = if cache { n + 1 } else { 0 };
                    assert_eq!(v.cached_tokens(), expected, "cold/{id}: not cold");
                },
            )
        });
    });
}

/// One algorithm's crypto benches, run back to back so that the bare check
/// and the cold paths see the same machine: `bare/{alg}`, then
/// `cold/verify/{alg}` (cache on: verification plus the insertion),
/// `cold/verify_nocache/{alg}` (verification alone) and
/// `cold/authenticate/{alg}`.
fn crypto(c: &mut Criterion, rt: &Runtime, fx: &AlgFixture) {
    // Sanity: the baseline verifies real signatures.
    for (input, sig) in &fx.split {
        assert!(fx.bare.verify_sig(input, sig).is_ok(), "bare {}", fx.name());
    }
    let mut group = c.benchmark_group("bare");
    group.bench_function(fx.name(), |b| {
        b.iter_custom(|iters| {
            cold_iters(
                rt,
                fx.split.len(),
                iters,
                || (),
                |_, (), n| {
                    fx.split[..n]
                        .iter()
                        .filter(|(input, sig)| {
                            black_box(fx.bare.verify_sig(black_box(input), black_box(sig))).is_err()
                        })
                        .count()
                },
                |(), _| {},
            )
        });
    });
    group.finish();

    let mut group = c.benchmark_group("cold");
    bench_cold_verify(&mut group, rt, fx, "verify", true);
    bench_cold_verify(&mut group, rt, fx, "verify_nocache", false);
    let headers: Vec<HeaderMap> = fx.tokens.iter().map(|t| bearer_headers(t)).collect();
    group.bench_function(BenchmarkId::new("authenticate", fx.name()), |b| {
        b.iter_custom(|iters| {
            cold_iters(
                rt,
                headers.len(),
                iters,
                || fx.primed_layer(rt),
                |rt, layer, n| {
                    rt.block_on(async {
                        let mut failures = 0;
                        for h in &headers[..n] {
                            if black_box(layer.authenticate(black_box(h)).await).is_err() {
                                failures += 1;
                            }
                        }
                        failures
                    })
                },
                |layer, _| {
                    let hits = layer.metrics().snapshot().cache_hits;
                    assert_eq!(hits, 0, "cold/authenticate: a cache hit");
                },
            )
        });
    });
    group.finish();
}

fn warm(c: &mut Criterion, rt: &Runtime, fixtures: &[AlgFixture]) {
    let mut group = c.benchmark_group("warm");
    for fx in fixtures {
        let layer = fx.layer(true);
        let headers = bearer_headers(&fx.tokens[0]);
        // Prime: the first call verifies (and caches, where a cache exists).
        assert!(rt.block_on(layer.authenticate(&headers)).is_ok());
        assert!(rt.block_on(layer.authenticate(&headers)).is_ok());
        let hits = layer.metrics().snapshot().cache_hits;
        assert_eq!(hits, 1, "warm/{}: the second call was not a hit", fx.name());
        group.bench_function(BenchmarkId::new("authenticate", fx.name()), |b| {
            b.iter(|| {
                rt.block_on(async { black_box(layer.authenticate(black_box(&headers)).await) })
            });
        });
        if fx.alg == SigningAlg::Es256 {
            group.bench_function(BenchmarkId::new("authenticate_amortized", fx.name()), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let _ = black_box(layer.authenticate(black_box(&headers)).await);
                        }
                        start.elapsed()
                    })
                });
            });
        }
    }
    group.finish();
}

fn challenge(c: &mut Criterion, resource_metadata: &str) {
    let mut group = c.benchmark_group("challenge");
    group.bench_function("initial", |b| {
        b.iter(|| bearer_challenge(None, black_box(SCOPE), black_box(resource_metadata), None));
    });
    group.bench_function("invalid_token", |b| {
        b.iter(|| {
            bearer_challenge(
                Some(ErrorCode::InvalidToken),
                black_box(SCOPE),
                black_box(resource_metadata),
                Some(black_box("The access token expired")),
            )
        });
    });
    group.bench_function("format_baseline", |b| {
        b.iter(|| {
            format!(
                "Bearer resource_metadata=\"{}\", scope=\"{}\"",
                black_box(resource_metadata),
                black_box(SCOPE)
            )
        });
    });
    group.finish();
}

fn metadata(c: &mut Criterion, rt: &Runtime, fx: &AlgFixture) {
    let get_metadata = || {
        Request::get(METADATA_PATH)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("request: {e}"))
    };
    let app = Router::new().route("/mcp", post(|| async { "ok" }));
    let protected = fx.layer(true).layer(app);
    // The bytes and headers the layer serves, for the plain route.
    let (content_type, cache_control, body) = rt.block_on(async {
        let response = protected
            .clone()
            .oneshot(get_metadata())
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(response.status(), StatusCode::OK);
        let header = |name| response.headers().get(name).cloned();
        let (ct, cc) = (header(CONTENT_TYPE), header(CACHE_CONTROL));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("body: {e}"));
        (ct, cc, body)
    });
    let plain = Router::new().route(
        METADATA_PATH,
        get(move || {
            let mut headers = HeaderMap::new();
            for (name, value) in [
                (CONTENT_TYPE, &content_type),
                (CACHE_CONTROL, &cache_control),
            ] {
                if let Some(value) = value {
                    headers.insert(name, value.clone());
                }
            }
            let body = body.clone();
            async move { (headers, body) }
        }),
    );

    let mut group = c.benchmark_group("metadata");
    group.bench_function("auth_layer", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = protected
                    .clone()
                    .oneshot(get_metadata())
                    .await
                    .unwrap_or_else(|e| match e {});
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map(|b| b.len())
            })
        });
    });
    group.bench_function("plain_route", |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = plain
                    .clone()
                    .oneshot(get_metadata())
                    .await
                    .unwrap_or_else(|e| match e {});
                axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map(|b| b.len())
            })
        });
    });
    group.finish();
}

/// Garbage through `AuthLayer::authenticate`, each kind a pool of distinct
/// tokens, checked to be rejected for the expected reason before timing.
fn flood(c: &mut Criterion, rt: &Runtime, rs: &AlgFixture) {
    let other = rt
        .block_on(TestIssuer::start_with_alg(SigningAlg::Es256))
        .unwrap_or_else(|e| panic!("test issuer: {e}"));
    let now = unix_now();
    let malformed: Vec<String> = (0..FLOOD_POOL)
        .map(|i| format!("eyJhbGciOiJSUzI1NiJ9{i:06}.not json.{i:x}"))
        .collect();
    let wrong_issuer: Vec<String> = (0..FLOOD_POOL)
        .map(|_| other.token().audience(RESOURCE).scopes([SCOPE]).sign())
        .collect();
    let expired: Vec<String> = (0..FLOOD_POOL)
        .map(|_| {
            rs.issuer
                .token()
                .audience(RESOURCE)
                .scopes([SCOPE])
                .issued_at(now - 7200)
                .expires_at(now - 3600)
                .sign()
        })
        .collect();
    // Right issuer, right kid, right length, signature of another token.
    let bad_signature: Vec<String> = (0..FLOOD_POOL)
        .map(|i| {
            let (input, _) = rs.tokens[i].rsplit_once('.').unwrap_or_default();
            let (_, sig) = rs.tokens[i + 1].rsplit_once('.').unwrap_or_default();
            format!("{input}.{sig}")
        })
        .collect();

    let layers = [
        ("flood", rs.layer(true)),
        ("flood_nocache", rs.layer(false)),
    ];
    let kinds: [(&str, &[String], Option<AuthErrorKind>); 4] = [
        ("malformed", &malformed, None),
        (
            "wrong_issuer",
            &wrong_issuer,
            Some(AuthErrorKind::InvalidIssuer),
        ),
        ("expired", &expired, Some(AuthErrorKind::Expired)),
        (
            "bad_signature",
            &bad_signature,
            Some(AuthErrorKind::InvalidSignature),
        ),
    ];
    let headers: Vec<Vec<HeaderMap>> = kinds
        .iter()
        .map(|(_, tokens, _)| tokens.iter().map(|t| bearer_headers(t)).collect())
        .collect();
    // The same garbage with the layer's verified-token cache on (the
    // default) and off, back to back: the cache must not make a flood dearer.
    for ((name, _, expected), headers) in kinds.iter().zip(&headers) {
        for (group_name, layer) in &layers {
            for h in headers {
                match rt.block_on(layer.authenticate(h)) {
                    Ok(_) => panic!("{group_name}/{name}: a garbage token was accepted"),
                    Err(e) => {
                        if let Some(kind) = expected {
                            assert_eq!(e.kind(), *kind, "{group_name}/{name}");
                        }
                    }
                }
            }
            let hits = layer.metrics().snapshot().cache_hits;
            assert_eq!(hits, 0, "{group_name}/{name}: garbage hit the cache");
            let mut group = c.benchmark_group(*group_name);
            group.bench_function(*name, |b| {
                let mut i = 0;
                b.iter(|| {
                    let h = &headers[i];
                    i = (i + 1) % headers.len();
                    rt.block_on(async {
                        black_box(layer.authenticate(black_box(h)).await).is_err()
                    })
                });
            });
            group.finish();
        }
    }
    other.shutdown();
}

/// A stateless (2026-07-28) `tools/call`, as the load benchmark sends it,
/// of a tool that does the same work with or without a caller.
const TOOLS_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

/// The MCP server of the end-to-end benches: one tool that needs no caller,
/// so the servers with and without authentication do the same work.
#[derive(Clone)]
struct Ping {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Ping {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Answers pong")]
    async fn ping(&self) -> Result<String, rmcp::ErrorData> {
        Ok("pong".to_owned())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Ping {}

fn tools_call(token: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/mcp")
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "ping");
    if let Some(token) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(Body::from(TOOLS_CALL))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// One in-process request through `service`: status and body length.
async fn call<S>(service: &S, req: Request<Body>) -> (StatusCode, usize)
where
    S: tower::Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone,
{
    let response = service
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("body: {e}"));
    (status, body.len())
}

/// End to end in process: an rmcp streamable HTTP server configured as in
/// the load benchmark (JSON responses, stateless) answering a `tools/call`,
/// without and with authentication (a reused token: cache hits), no
/// sockets. The difference is what authentication costs per request, free
/// of network and load-generator noise.
fn e2e(c: &mut Criterion, rt: &Runtime, fixtures: &[AlgFixture]) {
    let rmcp_config = || {
        StreamableHttpServerConfig::default()
            .with_json_response(true)
            .with_legacy_session_mode(false)
            .with_sse_keep_alive(None)
    };
    let plain: Router = Router::new().nest_service(
        "/mcp",
        StreamableHttpService::new(
            || Ok(Ping::new()),
            Arc::new(LocalSessionManager::default()),
            rmcp_config(),
        ),
    );
    // The plain server gets the same request, token included (ignored), so
    // that building and parsing it costs the same on both sides.
    let any_token = fixtures[0].tokens[0].as_str();
    let (status, len) = rt.block_on(call(&plain, tools_call(Some(any_token))));
    assert_eq!(status, StatusCode::OK, "e2e/rmcp");

    let mut group = c.benchmark_group("e2e");
    group.bench_function("rmcp", |b| {
        b.iter(|| rt.block_on(call(&plain, tools_call(Some(any_token)))));
    });
    for fx in fixtures.iter().filter(|fx| fx.alg != SigningAlg::EdDsa) {
        let token = fx.tokens[0].as_str();
        // The layer alone over the same rmcp router.
        let auth = fx.layer(true);
        let layered_metrics = auth.metrics();
        let layered = auth.layer(plain.clone());
        // The crate's server builder, as the load benchmark runs it.
        let server = McpServer::builder()
            .auth(fx.config.clone())
            .verifier(fx.verifier(true))
            .rmcp_config(move |_| rmcp_config())
            .service(|| Ok(Ping::new()))
            .build()
            .unwrap_or_else(|e| panic!("McpServer: {e}"));
        let server_metrics = server.metrics();
        let server = server.into_router();
        // The same answer as without authentication.
        for (name, answer) in [
            (
                "auth_layer",
                rt.block_on(call(&layered, tools_call(Some(token)))),
            ),
            (
                "mcp_server",
                rt.block_on(call(&server, tools_call(Some(token)))),
            ),
        ] {
            assert_eq!(answer, (StatusCode::OK, len), "e2e/{name}/{}", fx.name());
        }
        for (name, status) in [
            (
                "auth_layer",
                rt.block_on(call(&layered, tools_call(None))).0,
            ),
            ("mcp_server", rt.block_on(call(&server, tools_call(None))).0),
        ] {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "e2e/{name}: no token");
        }
        group.bench_function(BenchmarkId::new("auth_layer", fx.name()), |b| {
            b.iter(|| rt.block_on(call(&layered, tools_call(Some(token)))));
        });
        group.bench_function(BenchmarkId::new("mcp_server", fx.name()), |b| {
            b.iter(|| rt.block_on(call(&server, tools_call(Some(token)))));
        });
        // The token was verified once per server; every later call was a hit.
        for (name, metrics) in [
            ("auth_layer", &layered_metrics),
            ("mcp_server", &server_metrics),
        ] {
            let m = metrics.snapshot();
            assert_eq!(
                m.cache_misses,
                1,
                "e2e/{name}/{}: not a cache hit",
                fx.name()
            );
        }
    }
    // The plain server again: the two `e2e/rmcp*` figures bracket the
    // authenticated ones and show how much the process drifted meanwhile.
    group.bench_function("rmcp_after", |b| {
        b.iter(|| rt.block_on(call(&plain, tools_call(Some(any_token)))));
    });
    group.finish();
}

/// A `tools/call` with `Authorization: DPoP` and its proof.
fn tools_call_dpop(token: &str, proof: &str) -> Request<Body> {
    let mut req = tools_call(None);
    let headers = req.headers_mut();
    let auth = HeaderValue::from_str(&format!("DPoP {token}")).unwrap();
    headers.insert(AUTHORIZATION, auth);
    headers.insert("dpop", HeaderValue::from_str(proof).unwrap());
    req
}

/// DPoP end to end against Bearer in the same run (issue 16): the same
/// `McpServer` (defaults), the same call, a reused token (cache hits), and
/// for DPoP a fresh ES256 proof per call, signed in the untimed setup.
fn dpop(c: &mut Criterion, rt: &Runtime, fx: &AlgFixture) {
    let server = McpServer::builder()
        .auth(fx.config.clone())
        .verifier(fx.verifier(true))
        .rmcp_config(|_| {
            StreamableHttpServerConfig::default()
                .with_json_response(true)
                .with_legacy_session_mode(false)
                .with_sse_keep_alive(None)
        })
        .service(|| Ok(Ping::new()))
        .build()
        .unwrap_or_else(|e| panic!("McpServer: {e}"));
    let metrics = server.metrics();
    let server = server.into_router();
    let client = DpopClient::new();
    let bearer = fx.tokens[0].as_str();
    let bound = fx
        .issuer
        .token()
        .audience(RESOURCE)
        .scopes([SCOPE])
        .dpop_bound_to(client.thumbprint())
        .sign();
    let proof = || client.proof("POST", RESOURCE, Some(&bound));
    let (status, len) = rt.block_on(call(&server, tools_call(Some(bearer))));
    assert_eq!(status, StatusCode::OK, "dpop/bearer");
    let answer = rt.block_on(call(&server, tools_call_dpop(&bound, &proof())));
    assert_eq!(answer, (StatusCode::OK, len), "dpop/dpop");
    // A proof used twice is refused: the replay store is in the measured path.
    let once = proof();
    rt.block_on(call(&server, tools_call_dpop(&bound, &once)));
    let replay = rt.block_on(call(&server, tools_call_dpop(&bound, &once)));
    assert_eq!(replay.0, StatusCode::UNAUTHORIZED, "dpop: replay");

    let mut group = c.benchmark_group("dpop");
    group.bench_function(BenchmarkId::new("bearer", fx.name()), |b| {
        b.iter(|| rt.block_on(call(&server, tools_call(Some(bearer)))));
    });
    group.bench_function(BenchmarkId::new("dpop", fx.name()), |b| {
        b.iter_batched(
            proof,
            |p| rt.block_on(call(&server, tools_call_dpop(&bound, &p))),
            BatchSize::SmallInput,
        );
    });
    group.bench_function(BenchmarkId::new("client_sign_proof", fx.name()), |b| {
        b.iter(|| black_box(proof()));
    });
    group.finish();
    // Both tokens were verified once; every later call was a cache hit.
    assert_eq!(metrics.snapshot().cache_misses, 2, "dpop: not cache hits");
}

fn all(c: &mut Criterion) {
    let rt = runtime();
    let fixtures: Vec<AlgFixture> = ALGS.iter().map(|&alg| AlgFixture::new(&rt, alg)).collect();
    let rs = &fixtures[0];

    overhead_and_baselines(c, &rt, &rs.tokens[0]);
    for fx in &fixtures {
        crypto(c, &rt, fx);
    }
    warm(c, &rt, &fixtures);
    challenge(c, &rs.config.resource_metadata_url());
    metadata(c, &rt, rs);
    flood(c, &rt, rs);
    e2e(c, &rt, &fixtures);
    if let Some(es) = fixtures.iter().find(|fx| fx.alg == SigningAlg::Es256) {
        dpop(c, &rt, es);
    }

    for fx in fixtures {
        fx.issuer.shutdown();
    }
}

criterion_group!(benches, all);
criterion_main!(benches);
