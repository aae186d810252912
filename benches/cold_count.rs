//! Instruction counts of the cold path (issue 13), for callgrind: one cold
//! `JwtVerifier::verify` per token against the bare aws-lc-rs check of the
//! same token, the two in their own functions so that
//! `callgrind_annotate --inclusive=yes` gives each one's total.
//!
//! ```sh
//! cargo bench --bench cold_count --no-run
//! valgrind --tool=callgrind --callgrind-out-file=cold.cg \
//!     target/release/deps/cold_count-<hash> RS256 200
//! callgrind_annotate --inclusive=yes --threshold=100 cold.cg | grep -E 'cold_count::(bare|cold|warm|layer)_pass'
//! ```
//!
//! Divide each pass's inclusive count by the number of tokens (the second
//! argument, 200 by default). `warm_pass` verifies the first token again as
//! many times (cache hits, outside any connection's memory of its last
//! token, so each hit hashes the token); `layer_pass` authenticates the
//! second token as many times through `AuthLayer::authenticate`. Both passes walk the same tokens; the cold
//! pass uses a fresh verifier (empty verified-token cache, its key prepared
//! by one primer token outside the pass), as `cold/verify/{alg}` in
//! `benches/auth.rs` does. Instruction counts do not depend on the other
//! processes on the machine, unlike criterion's wall-clock figures.
// Driver code: a panic here is a failed run, so unwrap and indexing are allowed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_oauth2::testing::{SigningAlg, TestIssuer};
use mcp_oauth2::{AuthConfig, AuthLayer, BearerToken, JwtVerifier, TokenVerifier};

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[inline(never)]
fn bare_pass(key: &ParsedPublicKey, split: &[(Vec<u8>, Vec<u8>)]) -> usize {
    split
        .iter()
        .filter(|(input, sig)| black_box(key.verify_sig(black_box(input), black_box(sig))).is_ok())
        .count()
}

#[inline(never)]
fn cold_pass(rt: &tokio::runtime::Runtime, verifier: &JwtVerifier, tokens: &[String]) -> usize {
    rt.block_on(async {
        let mut ok = 0;
        for t in tokens {
            if black_box(verifier.verify(BearerToken::new(black_box(t))).await).is_ok() {
                ok += 1;
            }
        }
        ok
    })
}

/// The same token again and again: every call after the first is a hit of
/// the verified-token cache (the warm path of `JwtVerifier::verify`).
#[inline(never)]
fn warm_pass(
    rt: &tokio::runtime::Runtime,
    verifier: &JwtVerifier,
    token: &str,
    count: usize,
) -> usize {
    rt.block_on(async {
        let mut ok = 0;
        for _ in 0..count {
            if black_box(verifier.verify(BearerToken::new(black_box(token))).await).is_ok() {
                ok += 1;
            }
        }
        ok
    })
}

/// `AuthLayer::authenticate` of the same token again and again (what
/// `warm/authenticate/{alg}` measures): header, cache hit, scopes.
#[inline(never)]
fn layer_pass(
    rt: &tokio::runtime::Runtime,
    layer: &AuthLayer,
    headers: &http::HeaderMap,
    count: usize,
) -> usize {
    rt.block_on(async {
        let mut ok = 0;
        for _ in 0..count {
            if black_box(layer.authenticate(black_box(headers)).await).is_ok() {
                ok += 1;
            }
        }
        ok
    })
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let alg = match args.next().as_deref() {
        Some("ES256") => SigningAlg::Es256,
        _ => SigningAlg::Rs256,
    };
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = rt.block_on(TestIssuer::start_with_alg(alg)).unwrap();
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .required_scopes(["mcp:tools"])
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let jwks = issuer.jwks().to_string().into_bytes();
    let mut tokens: Vec<String> = (0..=count)
        .map(|_| {
            issuer
                .token()
                .audience(RESOURCE)
                .scopes(["mcp:tools"])
                .expires_in(Duration::from_secs(6 * 3600))
                .sign()
        })
        .collect();
    let primer = tokens.pop().unwrap();
    let split: Vec<(Vec<u8>, Vec<u8>)> = tokens
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            (input.as_bytes().to_vec(), b64d(sig))
        })
        .collect();
    let jwk = issuer.public_jwk().unwrap();
    let member = |name: &str| b64d(jwk[name].as_str().unwrap());
    let key = match alg {
        SigningAlg::Rs256 => {
            let (n, e) = (member("n"), member("e"));
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .unwrap()
        }
        _ => {
            let mut point = vec![0x04];
            point.extend(member("x"));
            point.extend(member("y"));
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).unwrap()
        }
    };
    let verifier = JwtVerifier::with_static_jwks(&config, &jwks).unwrap();
    assert!(
        rt.block_on(verifier.verify(BearerToken::new(&primer)))
            .is_ok()
    );
    let bare = bare_pass(&key, &split);
    let cold = cold_pass(&rt, &verifier, &tokens);
    let warm = warm_pass(&rt, &verifier, &tokens[0], count);
    assert_eq!(
        (bare, cold, warm),
        (count, count, count),
        "every token verifies"
    );
    assert_eq!(verifier.cached_tokens(), count + 1, "every call was cold");
    let layer = AuthLayer::with_verifier(config.clone(), verifier.clone());
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {}", tokens[1])).unwrap(),
    );
    assert!(rt.block_on(layer.authenticate(&headers)).is_ok());
    assert_eq!(layer_pass(&rt, &layer, &headers, count), count);
    println!("{count} tokens: bare and cold passes done");
}
