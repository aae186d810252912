//! Signature verification with the crypto backend chosen by crate feature.
//!
//! jsonwebtoken picks its backend through a process-wide default that panics
//! at first use when both of its backends are enabled (feature unification
//! can do that behind our back). We never use that global: we call the
//! chosen provider's verifier factory directly, preferring aws-lc-rs when
//! both features are on. Decoding can therefore never panic over backends.

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!(
    "mcp-oauth2 needs a crypto backend: enable the `aws_lc_rs` (default) or `rust_crypto` feature"
);

#[cfg(feature = "aws_lc_rs")]
static PROVIDER: &CryptoProvider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
#[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
static PROVIDER: &CryptoProvider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;

/// Verifies `signature` over `message` with `key` under `alg`. Any failure
/// (wrong key type, malformed key, bad signature) is `false`.
pub(crate) fn verify_signature(
    alg: Algorithm,
    key: &DecodingKey,
    message: &[u8],
    signature: &[u8],
) -> bool {
    match (PROVIDER.verifier_factory)(&alg, key) {
        Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
        Err(_) => false,
    }
}

/// The name of the backend in use (for logs and diagnostics).
pub(crate) fn backend_name() -> &'static str {
    if cfg!(feature = "aws_lc_rs") {
        "aws-lc-rs"
    } else {
        "rust-crypto"
    }
}
