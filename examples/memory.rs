//! Memory of the verified-token cache: verifies N distinct live tokens and
//! reports the resident-set growth (Linux `/proc/self/statm`).
//!
//! ```sh
//! cargo run --release --example memory -- 100000          # typical tokens
//! cargo run --release --example memory -- 100000 2000     # each with 2,000 more bytes of claims
//! ```
//!
//! Tokens are EdDSA (fast to mint) with realistic claims (issuer, subject,
//! audience, client id, two scopes, jti, iat, exp): about 330 bytes each,
//! plus an optional `padding` claim of the second argument's length. The
//! cache has its default bounds (100,000 entries and 64 MB), raised in
//! proportion for more than 100,000 tokens: typical tokens all fit, large
//! ones are held to the byte budget.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use mcp_oauth2::testing::{SigningAlg, TestIssuer};
use mcp_oauth2::{AuthConfig, BearerToken, JwtVerifier, TokenVerifier};

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let padding: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(0);
    let issuer = TestIssuer::start_with_alg(SigningAlg::EdDsa).await?;
    let resource = "https://mcp.example.com/mcp";
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(resource)
        .verified_cache_max_entries(n.max(100_000))
        .max_token_bytes(padding + 4096)
        .allow_insecure_http_for_loopback(true)
        .build()?;
    let verifier = JwtVerifier::with_static_jwks(&config, issuer.jwks().to_string().as_bytes())?;
    // Mint first, so the tokens' own memory is not counted.
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let token = issuer.token();
            let token = if padding > 0 {
                token.claim("padding", "p".repeat(padding).into())
            } else {
                token
            };
            token
                .subject(format!("user-{i:08}"))
                .client_id("mcp-client-0123456789")
                .audience(resource)
                .scopes(["notes:read", "notes:write"])
                .sign()
        })
        .collect();
    let avg_len = tokens.iter().map(String::len).sum::<usize>() / n.max(1);
    let before = rss_bytes().unwrap_or(0);
    for t in &tokens {
        verifier.verify(BearerToken::new(t)).await?;
    }
    let after = rss_bytes().unwrap_or(0);
    let grown = after.saturating_sub(before);
    let entries = verifier.cached_tokens();
    println!("tokens verified:       {n} (average token {avg_len} bytes)");
    println!("entries in the cache:  {entries}");
    println!(
        "resident set growth:   {:.1} MB ({} bytes per entry)",
        grown as f64 / 1e6,
        grown / entries.max(1) as u64
    );
    Ok(())
}
