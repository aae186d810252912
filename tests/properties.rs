//! The fuzz targets' properties (issue 4), as proptest tests so that
//! `cargo test` exercises them on every run (the `fuzz/` crate runs the same
//! properties under libFuzzer):
//! - Authorization header parsing (RFC 6750 section 2.1) agrees with a
//!   small independent model and never panics;
//! - token pre-parsing and header/claims policy: a token is accepted exactly
//!   when every part of it is acceptable (a model over header, claims and
//!   signature choices), and an unknown issuer never costs a fetch;
//! - JWK Set parsing never panics, and junk keys never stop a good key from
//!   verifying;
//! - challenge building round-trips through the challenge parser
//!   (RFC 6750 section 3, RFC 9110 section 5.6.4 quoted-string);
//! - an `access_token` in the URI query, in any spelling, is found exactly
//!   when a small independent model finds it (RFC 6750 section 2.3);
//! - with per-operation scopes, no body that reaches the service behind
//!   `AuthLayer` (on any path, with any MCP headers) and that rmcp would
//!   read holds a call the token lacks the scope for, whichever copy of a
//!   repeated member wins.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::testing::{bearer_challenge, parse_bearer_challenge};
use mcp_oauth2::{
    AuthConfig, AuthContext, AuthError, AuthErrorKind, AuthLayer, BearerToken, ErrorCode,
    JwtVerifier, TokenVerifier, VerifyFuture,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Authorization header parsing
// ---------------------------------------------------------------------------

/// Records the token it is handed and refuses it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Option<String>>>);

impl TokenVerifier for Recorder {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        *self.0.lock().unwrap() = Some(token.as_str().to_owned());
        Box::pin(async { Err(AuthError::new(AuthErrorKind::Rejected)) })
    }
}

const MAX_TOKEN: usize = 64;

/// What RFC 6750 section 2.1 says about one header value, written
/// independently of `bearer.rs`.
fn model(value: &[u8]) -> Result<String, AuthErrorKind> {
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &b""[..]),
    };
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    // RFC 9449 section 7.1: `DPoP <token>` has the same token syntax and
    // needs a `DPoP` proof header (none here); `DPoP` alone is the scheme
    // without a token, as `Bearer` alone.
    let dpop = scheme.eq_ignore_ascii_case(b"DPoP");
    if !scheme.eq_ignore_ascii_case(b"Bearer") && !dpop {
        return if !scheme.is_empty() && scheme.iter().all(|&b| tchar(b)) {
            Err(AuthErrorKind::MissingToken)
        } else {
            Err(AuthErrorKind::MalformedAuthorizationHeader)
        };
    }
    let token: &[u8] = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
    if token.is_empty() {
        return Err(AuthErrorKind::MalformedAuthorizationHeader);
    }
    if token.len() > MAX_TOKEN {
        return Err(AuthErrorKind::TokenTooLarge);
    }
    let body = &token[..token.len() - token.iter().rev().take_while(|&&b| b == b'=').count()];
    let ok = !body.is_empty()
        && body
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if ok && dpop {
        Err(AuthErrorKind::DpopProofMissing)
    } else if ok {
        Ok(String::from_utf8(token.to_vec()).unwrap())
    } else {
        Err(AuthErrorKind::MalformedAuthorizationHeader)
    }
}

fn header_layer(recorder: Recorder) -> AuthLayer {
    let config = AuthConfig::builder()
        .issuer("https://as.example")
        .resource(RESOURCE)
        .max_token_bytes(MAX_TOKEN)
        .build()
        .unwrap();
    AuthLayer::with_verifier(config, recorder)
}

/// Header values: mostly Bearer-shaped, with every kind of byte mixed in.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop_oneof![
        Just(b"Bearer".to_vec()),
        Just(b"bearer".to_vec()),
        Just(b"BEARER".to_vec()),
        Just(b"Basic".to_vec()),
        Just(b"DPoP".to_vec()),
        Just(b"Bear\"er".to_vec()),
        Just(Vec::new()),
    ];
    let spaces = prop_oneof![
        Just(b"".to_vec()),
        Just(b" ".to_vec()),
        Just(b"   ".to_vec())
    ];
    let token = proptest::collection::vec(
        prop_oneof![
            8 => proptest::sample::select(
                b"abcXYZ019-._~+/=".to_vec()
            ),
            1 => any::<u8>(),
            1 => proptest::sample::select(b" ,\t\"\\".to_vec()),
        ],
        0..80,
    );
    (scheme, spaces, token).prop_map(|(s, sp, t)| [s, sp, t].concat())
}

// RFC 6750 section 2.1; RFC 9110 section 11.1 (scheme is case-insensitive).
#[test]
fn authorization_header_parsing_matches_the_model() {
    let rt = runtime();
    let recorder = Recorder::default();
    let layer = header_layer(recorder.clone());
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&header_value(), |value| {
            let Ok(header) = http::HeaderValue::from_bytes(&value) else {
                return Ok(()); // not sendable over HTTP at all
            };
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, header);
            *recorder.0.lock().unwrap() = None;
            let result = rt.block_on(layer.authenticate(&headers));
            let handed = recorder.0.lock().unwrap().take();
            prop_assert!(result.is_err());
            match model(&value) {
                Ok(token) => {
                    prop_assert_eq!(handed.as_deref(), Some(token.as_str()));
                    prop_assert_eq!(
                        result.err().map(|e| e.kind()),
                        Some(AuthErrorKind::Rejected)
                    );
                }
                Err(kind) => {
                    prop_assert_eq!(handed, None);
                    prop_assert_eq!(result.err().map(|e| e.kind()), Some(kind));
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Whether a URI query names `access_token` (RFC 6750 section 2.3), written
/// independently of `bearer.rs`: parameters split on `&` and `;`, the name
/// before the first `=`, percent-decoded with `+` as a space, read as PHP
/// reads it (trimmed; cut at a `[` that a `]` follows; `.`, a space and a
/// lone `[` as `_`), compared ignoring ASCII case.
fn query_model(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let name = pair.split('=').next().unwrap().as_bytes();
        let mut decoded = Vec::new();
        let mut i = 0;
        while i < name.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            match name[i] {
                b'%' if name.get(i + 1).and_then(|b| hex(*b)).is_some()
                    && name.get(i + 2).and_then(|b| hex(*b)).is_some() =>
                {
                    let hi = hex(name[i + 1]).unwrap();
                    let lo = hex(name[i + 2]).unwrap();
                    decoded.push(u8::try_from(hi * 16 + lo).unwrap());
                    i += 3;
                }
                b'+' => {
                    decoded.push(b' ');
                    i += 1;
                }
                b => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        let trimmed = decoded.trim_ascii();
        let mut php = Vec::new();
        for (i, &b) in trimmed.iter().enumerate() {
            if b == b'[' && trimmed[i + 1..].contains(&b']') {
                break;
            }
            php.push(if matches!(b, b'[' | b'.' | b' ') {
                b'_'
            } else {
                b
            });
        }
        php.eq_ignore_ascii_case(b"access_token")
    })
}

/// Queries: parameters whose names are spellings of `access_token`, near
/// misses and noise, joined by `&` or `;`.
fn query_value() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("access_token".to_owned()),
        Just("ACCESS_Token".to_owned()),
        Just("access%5Ftoken".to_owned()),
        Just("access%5ftoken".to_owned()),
        Just("%61ccess_token".to_owned()),
        Just("access_toke".to_owned()),
        Just("access%5token".to_owned()),
        Just("access%255Ftoken".to_owned()),
        Just("my_access_token".to_owned()),
        Just("access+token".to_owned()),
        Just("access.token".to_owned()),
        Just("access[token".to_owned()),
        Just("access_token[]".to_owned()),
        Just("access_token%5B0%5D".to_owned()),
        Just("x[access_token]".to_owned()),
        Just(String::new()),
        "[a-z_%5F+.\\[\\]]{0,14}",
    ];
    let value = prop_oneof![Just(None), "[a-z0-9=.%_]{0,8}".prop_map(Some)];
    let separator = prop_oneof![Just("&"), Just(";")];
    proptest::collection::vec((name, value, separator), 1..5).prop_map(|params| {
        let mut query = String::new();
        for (i, (name, value, separator)) in params.into_iter().enumerate() {
            if i > 0 {
                query.push_str(separator);
            }
            query.push_str(&name);
            if let Some(value) = value {
                query.push('=');
                query.push_str(&value);
            }
        }
        query
    })
}

// RFC 6750 sections 2 and 2.3: a query naming `access_token`, in any
// spelling, is refused (`token_in_query`) before the header's token reaches
// the verifier; any other query changes nothing.
#[test]
fn query_access_token_detection_matches_the_model() {
    let rt = runtime();
    let recorder = Recorder::default();
    let layer = header_layer(recorder.clone());
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&query_value(), |query| {
            let Ok(request) = http::Request::post(format!("/mcp?{query}"))
                .header(http::header::AUTHORIZATION, "Bearer abc")
                .body(())
            else {
                return Ok(()); // not a valid request target
            };
            let (parts, ()) = request.into_parts();
            *recorder.0.lock().unwrap() = None;
            let kind = rt
                .block_on(layer.authenticate_request(&parts))
                .err()
                .map(|e| e.kind());
            let handed = recorder.0.lock().unwrap().take();
            if query_model(&query) {
                prop_assert_eq!(kind, Some(AuthErrorKind::TokenInQuery), "{}", query);
                prop_assert_eq!(handed, None);
            } else {
                prop_assert_eq!(kind, Some(AuthErrorKind::Rejected), "{}", query);
                prop_assert_eq!(handed.as_deref(), Some("abc"));
            }
            Ok(())
        })
        .unwrap();
}

// RFC 6750 section 2.1: two Authorization headers are never read, whatever
// they hold.
#[test]
fn two_authorization_headers_are_never_read() {
    let rt = runtime();
    let recorder = Recorder::default();
    let layer = header_layer(recorder.clone());
    let mut runner = TestRunner::new(Config {
        cases: 500,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(header_value(), header_value()), |(a, b)| {
            let (Ok(a), Ok(b)) = (
                http::HeaderValue::from_bytes(&a),
                http::HeaderValue::from_bytes(&b),
            ) else {
                return Ok(());
            };
            let mut headers = http::HeaderMap::new();
            headers.append(http::header::AUTHORIZATION, a);
            headers.append(http::header::AUTHORIZATION, b);
            let result = rt.block_on(layer.authenticate(&headers));
            prop_assert_eq!(
                result.err().map(|e| e.kind()),
                Some(AuthErrorKind::MultipleAuthorizationHeaders)
            );
            prop_assert!(recorder.0.lock().unwrap().is_none());
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Token pre-parsing and policy: a model over every part of the token
// ---------------------------------------------------------------------------

/// One choice per token part; `good` marks the acceptable ones.
#[derive(Debug, Clone)]
struct Choice {
    value: Option<Value>,
    good: bool,
}

fn choice(good: Vec<Option<Value>>, bad: Vec<Option<Value>>) -> impl Strategy<Value = Choice> {
    let good = proptest::sample::select(good).prop_map(|value| Choice { value, good: true });
    let bad = proptest::sample::select(bad).prop_map(|value| Choice { value, good: false });
    prop_oneof![7 => good, 1 => bad]
}

#[derive(Debug, Clone)]
struct TokenPlan {
    header: Vec<(&'static str, Choice)>,
    claims: Vec<(&'static str, Choice)>,
    extra_claim: Option<(String, Value)>,
    real_signature: bool,
}

impl TokenPlan {
    fn acceptable(&self) -> bool {
        self.real_signature
            && self.header.iter().all(|(_, c)| c.good)
            && self.claims.iter().all(|(_, c)| c.good)
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
    ]
}

fn token_plan(issuer: String, kid: String) -> impl Strategy<Value = TokenPlan> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let s = |v: &str| Some(json!(v));
    let header = (
        choice(
            vec![s("RS256")],
            vec![
                s("none"),
                s("HS256"),
                s("ES256"),
                s("rs256"),
                None,
                Some(json!(1)),
            ],
        ),
        choice(
            vec![s("at+jwt"), s("application/at+jwt"), s("AT+JWT")],
            vec![s("JWT"), None, s("id_token+jwt"), Some(json!(["at+jwt"]))],
        ),
        choice(
            vec![Some(json!(kid)), None],
            vec![s("other-kid"), Some(json!(7))],
        ),
        // `jku` is ignored whatever it says (RFC 8725 section 3.10).
        proptest::sample::select(vec![None, s("https://attacker.example/jwks")])
            .prop_map(|value| Choice { value, good: true }),
        choice(vec![None], vec![Some(json!(["exp"])), Some(json!([]))]),
        choice(vec![None], vec![Some(json!(false))]),
        choice(vec![None], vec![s("JWT")]),
    )
        .prop_map(|(alg, typ, kid, jku, crit, b64, cty)| {
            vec![
                ("alg", alg),
                ("typ", typ),
                ("kid", kid),
                ("jku", jku),
                ("crit", crit),
                ("b64", b64),
                ("cty", cty),
            ]
        });
    let claims = (
        choice(
            vec![Some(json!(issuer.clone()))],
            vec![
                None,
                Some(json!(format!("{issuer}/"))),
                Some(json!(issuer.to_uppercase())),
                Some(json!([issuer.clone()])),
                s("https://evil.example"),
            ],
        ),
        choice(
            vec![
                s(RESOURCE),
                Some(json!(["https://other.example", RESOURCE])),
            ],
            vec![
                None,
                s(""),
                Some(json!([])),
                Some(json!(5)),
                s("https://mcp.example.com"),
                s("https://mcp.example.com/mcp/"),
                Some(json!([RESOURCE, 1])),
            ],
        ),
        choice(
            vec![Some(json!(now + 300)), Some(json!(now + 3600))],
            vec![
                None,
                Some(json!(now - 3600)),
                Some(json!((now + 300).to_string())),
                Some(json!(now + 100 * 86_400)),
                Some(json!(-1)),
            ],
        ),
        choice(
            vec![None, Some(json!(now - 10))],
            vec![Some(json!(now + 3600)), s("soon")],
        ),
        choice(
            vec![s("alice"), s("ü-ser")],
            vec![None, s(""), Some(json!(3))],
        ),
        // RFC 9449 section 6: `cnf.jkt` verifies (bound; the layer demands
        // the proof); any other confirmation cannot be proven here.
        choice(
            vec![None, Some(json!({"jkt": "x"}))],
            vec![Some(json!({"x5t#S256": "x"})), Some(json!({}))],
        ),
    )
        .prop_map(|(iss, aud, exp, nbf, sub, cnf)| {
            vec![
                ("iss", iss),
                ("aud", aud),
                ("exp", exp),
                ("nbf", nbf),
                ("sub", sub),
                ("cnf", cnf),
            ]
        });
    let extra = proptest::option::of(("x_[a-z]{1,8}", json_leaf()));
    (header, claims, extra, proptest::bool::weighted(0.8)).prop_map(
        |(header, claims, extra_claim, real_signature)| TokenPlan {
            header,
            claims,
            extra_claim,
            real_signature,
        },
    )
}

fn object(members: &[(&'static str, Choice)]) -> Map<String, Value> {
    members
        .iter()
        .filter_map(|(k, c)| c.value.clone().map(|v| ((*k).to_owned(), v)))
        .collect()
}

// RFC 8725 sections 3.1, 3.8-3.11; RFC 9068 sections 2 and 4; RFC 7515
// section 4.1.11: a token is accepted iff every part is acceptable; an
// unknown issuer never costs a fetch.
#[test]
fn a_token_is_accepted_exactly_when_every_part_is_acceptable() {
    let rt = runtime();
    let issuer = rt.block_on(TestIssuer::start()).unwrap();
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .jwks_uri(issuer.jwks_uri())
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let verifier = JwtVerifier::new(&config).unwrap();
    let plans = token_plan(issuer.issuer().to_owned(), issuer.current_kid());
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&plans, |plan| {
            let header = Value::Object(object(&plan.header)).to_string();
            let mut claims = object(&plan.claims);
            if let Some((k, v)) = &plan.extra_claim {
                claims.insert(k.clone(), v.clone());
            }
            let claims = Value::Object(claims).to_string();
            let mut token = issuer
                .try_sign_raw(header.as_bytes(), claims.as_bytes())
                .unwrap();
            if !plan.real_signature {
                let (input, sig) = token.rsplit_once('.').unwrap();
                let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
                sig[10] ^= 0x40;
                token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
            }
            let hits_before = issuer.jwks_hits();
            let result: Result<AuthContext, AuthError> =
                rt.block_on(verifier.verify(BearerToken::new(&token)));
            prop_assert_eq!(
                result.is_ok(),
                plan.acceptable(),
                "{:?}",
                result.as_ref().err()
            );
            if let Err(e) = &result {
                prop_assert_ne!(e.kind(), AuthErrorKind::KeysUnavailable);
                prop_assert_eq!(e.kind().error_code(), Some(ErrorCode::InvalidToken));
            }
            let iss_good = plan.claims.iter().any(|(k, c)| *k == "iss" && c.good);
            if !iss_good {
                prop_assert_eq!(issuer.jwks_hits(), hits_before, "unknown iss fetched");
            }
            Ok(())
        })
        .unwrap();
}

/// A verifier with a fixed key set: no network at all.
fn static_verifier(
    issuer: &TestIssuer,
    jwks: &[u8],
) -> Result<JwtVerifier, mcp_oauth2::ConfigError> {
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    JwtVerifier::with_static_jwks(&config, jwks)
}

// RFC 7515 section 7.1 (compact serialization): arbitrary text in the shape
// of a token is refused with an `invalid_token` kind, never accepted, never
// a panic.
#[test]
fn arbitrary_token_text_is_refused() {
    let rt = runtime();
    let issuer = rt.block_on(TestIssuer::start()).unwrap();
    let verifier = static_verifier(&issuer, issuer.jwks().to_string().as_bytes()).unwrap();
    let good = issuer.token().audience(RESOURCE).sign();
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    let text = prop_oneof![
        "[A-Za-z0-9_.=+/-]{0,200}",
        // Mutations of a real token: one character replaced.
        (
            0..good.len(),
            proptest::sample::select(b"A_-.=+/x0".to_vec())
        )
            .prop_map({
                let good = good.clone();
                move |(i, c)| {
                    let mut t = good.clone().into_bytes();
                    t[i] = c;
                    String::from_utf8(t).unwrap()
                }
            }),
    ];
    runner
        .run(&text, |token| {
            let result = rt.block_on(verifier.verify(BearerToken::new(&token)));
            if token != good {
                let kind = result.err().map(|e| e.kind());
                prop_assert!(kind.is_some(), "accepted: {}", token);
                prop_assert_eq!(
                    kind.and_then(|k| k.error_code()),
                    Some(ErrorCode::InvalidToken)
                );
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// JWK Set parsing
// ---------------------------------------------------------------------------

fn junk_key() -> impl Strategy<Value = Value> {
    let kty = proptest::sample::select(vec!["RSA", "EC", "OKP", "oct", "XYZ", ""]);
    let member = proptest::sample::select(vec![
        "kid", "n", "e", "x", "y", "crv", "alg", "use", "key_ops", "d", "k", "x5c",
    ]);
    let value = prop_oneof![
        json_leaf(),
        "[A-Za-z0-9_-]{0,400}".prop_map(Value::String),
        proptest::collection::vec("[a-zA-Z]{0,8}".prop_map(Value::String), 0..3)
            .prop_map(Value::Array),
    ];
    (kty, proptest::collection::vec((member, value), 0..8)).prop_map(|(kty, members)| {
        let mut key = Map::new();
        key.insert("kty".into(), json!(kty));
        for (k, v) in members {
            key.insert(k.to_owned(), v);
        }
        Value::Object(key)
    })
}

// RFC 7517 section 5: any document is parsed without panicking; junk keys
// (with or without our kid) never stop the good key from verifying.
#[test]
fn junk_keys_never_poison_a_key_set() {
    let rt = runtime();
    let issuer = rt.block_on(TestIssuer::start()).unwrap();
    let ours = issuer.public_jwk().unwrap();
    let good = issuer.token().audience(RESOURCE).sign();
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let docs = (
        proptest::collection::vec(junk_key(), 0..20),
        proptest::collection::vec(junk_key(), 0..20),
    );
    runner
        .run(&docs, |(before, after)| {
            let mut keys = before;
            keys.push(ours.clone());
            keys.extend(after);
            let doc = json!({ "keys": keys }).to_string();
            let verifier = static_verifier(&issuer, doc.as_bytes());
            prop_assert!(verifier.is_ok(), "{:?}", verifier.err());
            let verifier = verifier.unwrap();
            prop_assert!(
                rt.block_on(verifier.verify(BearerToken::new(&good)))
                    .is_ok()
            );
            Ok(())
        })
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..300), |bytes| {
            let _ = static_verifier(&issuer, &bytes);
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------

/// What survives in a quoted-string: visible ASCII, space and tab.
fn sanitized(s: &str) -> String {
    s.chars()
        .filter(|c| *c == ' ' || *c == '\t' || c.is_ascii_graphic())
        .collect()
}

// RFC 6750 section 3; RFC 9728 section 5.1; RFC 9110 section 5.6.4: any
// parameter values make a valid header value that parses back to them
// (minus what a quoted-string cannot carry).
#[test]
fn challenges_round_trip_through_the_parser() {
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    let error = proptest::option::of(proptest::sample::select(vec![
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidToken,
        ErrorCode::InsufficientScope,
    ]));
    let text = || prop_oneof!["[ -~]{0,40}", any::<String>(), "[a-z\"\\\\, =]{0,20}",];
    runner
        .run(
            &(error, text(), text(), proptest::option::of(text())),
            |(error, scope, metadata, description)| {
                let built = bearer_challenge(error, &scope, &metadata, description.as_deref());
                prop_assert!(http::HeaderValue::from_str(&built).is_ok(), "{}", built);
                let parsed = parse_bearer_challenge(&built);
                prop_assert!(parsed.is_some(), "{}", built);
                let parsed = parsed.unwrap();
                let mut expected: Vec<(String, String)> = Vec::new();
                // An empty scope is left out; a non-empty one stays, even if
                // nothing of it survives sanitizing.
                let has_scope = !scope.is_empty();
                let scope = sanitized(&scope);
                match error {
                    None => {
                        expected.push(("resource_metadata".into(), sanitized(&metadata)));
                        if has_scope {
                            expected.push(("scope".into(), scope));
                        }
                    }
                    Some(code) => {
                        expected.push(("error".into(), code.as_str().into()));
                        if has_scope {
                            expected.push(("scope".into(), scope));
                        }
                        expected.push(("resource_metadata".into(), sanitized(&metadata)));
                    }
                }
                if let Some(d) = &description {
                    expected.push(("error_description".into(), sanitized(d)));
                }
                prop_assert_eq!(parsed, expected);
                Ok(())
            },
        )
        .unwrap();
}

// ---------------------------------------------------------------------------
// Per-operation scopes: no forbidden call reaches the service
// ---------------------------------------------------------------------------

#[path = "support/reach.rs"]
mod reach;

/// One JSON-RPC-like message: the members a call is judged by, in any
/// order, some repeated with another value, names and values in several
/// spellings (escapes), sometimes with a member of the wrong type.
fn message() -> impl Strategy<Value = String> {
    let method = proptest::sample::select(vec![
        r#""tools/call""#,
        r#""tools\/call""#,
        r#""tools/c\u0061ll""#,
        r#""prompts/get""#,
        r#""resources/read""#,
        r#""logging/setLevel""#,
        r#""completion/complete""#,
        r#""tools/list""#,
        r#""ping""#,
        "7",
        "null",
    ]);
    let name = proptest::sample::select(vec![
        r#""secret""#,
        r#""s\u0065cret""#,
        r#""public""#,
        r#""secret ""#,
        r#""SECRET""#,
        "1",
    ]);
    let uri = proptest::sample::select(vec![
        r#""secret://x""#,
        r#""secret:\/\/x""#,
        r#""public://x""#,
        r#""secret://x/""#,
    ]);
    // Each parameter at most once, in one of its spellings; now and then a
    // second copy under another spelling (a repeated member).
    let params = (
        proptest::option::weighted(
            0.7,
            (
                proptest::sample::select(vec![r#""name""#, r#""n\u0061me""#]),
                name.clone(),
            ),
        ),
        proptest::option::weighted(0.4, uri),
        proptest::option::weighted(0.3, Just(r#""arguments":{}"#)),
        proptest::option::weighted(0.1, name.clone()),
        proptest::option::weighted(
            0.3,
            proptest::sample::select(vec![
                r#"{"type":"ref/prompt","name":"secret"}"#,
                r#"{"type":"ref/prompt","n\u0061me":"secret"}"#,
                r#"{"type":"ref/resource","uri":"secret://x"}"#,
                r#"{"type":"ref/resource","uri":"public://x"}"#,
                r#"{"type":"ref/prompt","name":"public"}"#,
                r#"{"type":"ref/prompt"}"#,
            ]),
        ),
    )
        .prop_map(|(n, u, a, again, reference)| {
            let mut members = Vec::new();
            if let Some((key, value)) = n {
                members.push(format!("{key}:{value}"));
            }
            if let Some(u) = u {
                members.push(format!(r#""uri":{u}"#));
            }
            if let Some(a) = a {
                members.push(a.to_owned());
            }
            if let Some(value) = again {
                members.push(format!(r#""n\u0061me":{value}"#));
            }
            if let Some(reference) = reference {
                members.push(format!(r#""ref":{reference}"#));
            }
            format!("{{{}}}", members.join(","))
        });
    let member = prop_oneof![
        method.clone().prop_map(|m| format!(r#""method":{m}"#)),
        method.clone().prop_map(|m| format!(r#""m\u0065thod":{m}"#)),
        params.clone().prop_map(|p| format!(r#""params":{p}"#)),
        Just(r#""jsonrpc":"2.0""#.to_owned()),
        Just(r#""id":1"#.to_owned()),
        Just(r#""id":"a""#.to_owned()),
    ];
    // Mostly a well-formed call, sometimes with members added (repeated,
    // or in another spelling), sometimes built from members alone.
    let call = (
        method,
        params,
        proptest::collection::vec(member.clone(), 0..3),
    )
        .prop_map(|(m, p, extra)| {
            let mut members = vec![
                r#""jsonrpc":"2.0""#.to_owned(),
                r#""id":1"#.to_owned(),
                format!(r#""method":{m}"#),
                format!(r#""params":{p}"#),
            ];
            members.extend(extra);
            format!("{{{}}}", members.join(","))
        });
    prop_oneof![
        3 => call,
        1 => proptest::collection::vec(member, 1..7).prop_map(|m| format!("{{{}}}", m.join(","))),
    ]
}

/// A body: one message or a batch, sometimes damaged by one byte.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        3 => message(),
        1 => proptest::collection::vec(message(), 0..4).prop_map(|m| format!("[{}]", m.join(","))),
    ];
    let damage = proptest::option::weighted(0.2, (any::<usize>(), any::<u8>()));
    (text, damage).prop_map(|(text, damage)| {
        let mut bytes = text.into_bytes();
        if let Some((at, byte)) = damage
            && !bytes.is_empty()
        {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        bytes
    })
}

/// The headers a client may send with it (names in any case).
fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let content_type = proptest::option::weighted(
        0.9,
        proptest::sample::select(vec![
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/json ;x=1",
            "text/plain",
            "application/vnd.api+json",
        ]),
    );
    let version = proptest::option::weighted(
        0.4,
        proptest::sample::select(vec!["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]),
    );
    let method = proptest::option::weighted(
        0.3,
        proptest::sample::select(vec![
            "tools/call",
            "tools/list",
            "prompts/get",
            "resources/read",
            "logging/setLevel",
        ]),
    );
    let name = proptest::option::weighted(
        0.3,
        proptest::sample::select(vec![
            "secret",
            "public",
            "=?base64?c2VjcmV0?=",
            "secret://x",
        ]),
    );
    (content_type, version, method, name).prop_map(|(ct, v, m, n)| {
        let mut out = Vec::new();
        if let Some(ct) = ct {
            out.push(("content-type", ct.as_bytes().to_vec()));
        }
        if let Some(v) = v {
            out.push(("mcp-protocol-version", v.as_bytes().to_vec()));
        }
        if let Some(m) = m {
            out.push(("Mcp-Method", m.as_bytes().to_vec()));
        }
        if let Some(n) = n {
            out.push(("mcp-name", n.as_bytes().to_vec()));
        }
        out
    })
}

// Issue 12 and the routes rule: with per-operation rules, a body that
// reaches the service and that rmcp would read never holds a call the
// token lacks the scope for, on any path, with any headers, under every
// mount of `reach::MOUNTS` (root, deep and trailing-slash resources, a
// nested router, a route layer), read with either copy of a repeated
// member winning (the same property as `fuzz/fuzz_targets/layer_body.rs`).
#[test]
fn no_forbidden_call_reaches_the_service() {
    use tower::ServiceExt as _;
    let rt = runtime();
    let apps: Vec<_> = reach::MOUNTS.iter().map(reach::app_at).collect();
    let mount = 0..apps.len();
    // Half the requests go to the mount's own endpoint, spelled one of its
    // ways; the others to any of the paths.
    let path = (
        any::<bool>(),
        proptest::sample::select(reach::PATHS.to_vec()),
        any::<usize>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 9000,
        failure_persistence: None,
        ..Config::default()
    });
    let passed = std::cell::RefCell::new(vec![0u32; apps.len()]);
    runner
        .run(
            &(mount, path, headers(), body()),
            |(mount, (own, any_path, pick), headers, body)| {
                let (app, reached) = &apps[mount];
                let own_paths = reach::MOUNTS[mount].own;
                let path = if own {
                    own_paths[pick % own_paths.len()]
                } else {
                    any_path
                };
                let named: Vec<(&str, &[u8])> =
                    headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
                let Some(req) = reach::request(path, &named, body.clone()) else {
                    return Ok(());
                };
                let readable = reach::rmcp_reads(req.headers());
                *reached.lock().unwrap() = None;
                let response = rt.block_on(app.clone().oneshot(req)).unwrap();
                let handed = reached.lock().unwrap().take();
                if let Some(handed) = handed {
                    prop_assert_eq!(response.status(), 200);
                    prop_assert_eq!(
                        &handed[..],
                        &body[..],
                        "the body reached the service changed"
                    );
                    if readable {
                        passed.borrow_mut()[mount] += 1;
                        let found = reach::forbidden_call(&handed);
                        prop_assert!(
                            found.is_none(),
                            "{:?} reached the service on {} under {:?} with {:?}",
                            found,
                            path,
                            reach::MOUNTS[mount],
                            String::from_utf8_lossy(&body)
                        );
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    // The property is not vacuous: JSON bodies did reach the service under
    // every mount. The counts depend on the run's random cases: 15 to 76 a
    // mount in the runs seen (the route layer, which sees only its own four
    // paths, the fewest: about 30 on average), and a bound of 15 failed
    // once in CI. A handful is what proves the point; fewer than 4 where
    // about 30 are expected is under one run in a million.
    let passed = passed.into_inner();
    eprintln!("readable bodies that reached the service, by mount: {passed:?}");
    for (mount, passed) in passed.into_iter().enumerate() {
        assert!(
            passed >= 4,
            "only {passed} readable bodies reached the service under {:?}",
            reach::MOUNTS[mount]
        );
    }
}
