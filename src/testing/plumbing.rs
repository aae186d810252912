//! Small helpers shared by the issuer's rooms: locking, randomness,
//! base64url and the clock.

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Locks `m`, recovering from poisoning: no code path panics while holding
/// these locks, so the data is always consistent.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `len` random bytes, base64url.
pub(super) fn random_b64(len: usize) -> io::Result<String> {
    let mut bytes = vec![0_u8; len];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| crypto_error("random generation failed"))?;
    Ok(b64(&bytes))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Base64url without padding (RFC 7515 section 2).
pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn crypto_error(message: &'static str) -> io::Error {
    io::Error::other(message)
}
