//! Stateless server nonces (RFC 9449 section 9): a nonce is the time it was
//! issued, sealed with AES-256-GCM under a key that rotates every
//! lifetime; a server checks one by opening it, so replicas
//! that share the secret need no shared state.
//!
//! Format (base64url): `epoch (8, big-endian) | IV (12) | ciphertext of the
//! issue time in Unix seconds (8) | tag (16)`. The epoch is the issue time
//! divided by the lifetime; it selects the key (derived from the secret with
//! HKDF-SHA256, the epoch as info) and is the AEAD's associated data. A
//! nonce opens under the key of its own epoch only, and only the current
//! and the previous epochs are accepted (and the next, for a nonce issued
//! within the clock leeway ahead: another replica's clock may run ahead),
//! so a key lives at most two lifetimes and the leeway.

use aws_lc_rs::{aead, hkdf, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const EPOCH_LEN: usize = 8;
const IV_LEN: usize = aead::NONCE_LEN;
const TIME_LEN: usize = 8;
const TAG_LEN: usize = 16;
const SEALED_LEN: usize = EPOCH_LEN + IV_LEN + TIME_LEN + TAG_LEN;

/// The secret behind the nonce keys, and how long a nonce is good for.
pub(crate) struct NonceKeys {
    prk: hkdf::Prk,
    lifetime: u64,
    /// How far ahead of this server's clock a nonce's issue time may be
    /// (the clock leeway, seconds): another replica's clock may run ahead.
    skew: u64,
}

impl std::fmt::Debug for NonceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKeys")
            .field("secret", &"[redacted]")
            .field("lifetime", &self.lifetime)
            .field("skew", &self.skew)
            .finish()
    }
}

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceError {
    /// No nonce in the proof.
    Missing,
    /// Not one of ours, or too old.
    Invalid,
}

impl NonceKeys {
    /// Keys from `secret` (any length; 32 random bytes are plenty), nonces
    /// good for `lifetime` seconds (at least 1), issued up to `skew`
    /// seconds ahead of this server's clock (by a replica whose clock runs
    /// ahead). `None` secret: a random one, good for this process only.
    pub(crate) fn new(secret: Option<&[u8]>, lifetime: u64, skew: u64) -> Self {
        let mut random = [0u8; 32];
        let secret = match secret {
            Some(s) => s,
            None => {
                // A failing system RNG leaves zeros: nonces are then only
                // as good as the timestamp, which the window bounds anyway.
                let _ = rand::fill(&mut random);
                &random
            }
        };
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"mcp-oauth2 dpop nonce v1");
        Self {
            prk: salt.extract(secret),
            lifetime: lifetime.max(1),
            skew,
        }
    }

    fn key(&self, epoch: u64) -> Option<aead::LessSafeKey> {
        let info = epoch.to_be_bytes();
        let info = [&info[..]];
        let okm = self.prk.expand(&info, &aead::AES_256_GCM).ok()?;
        Some(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
    }

    /// A fresh nonce issued at `now` (Unix seconds).
    pub(crate) fn issue(&self, now: u64) -> Option<String> {
        let epoch = now / self.lifetime;
        let key = self.key(epoch)?;
        let mut iv = [0u8; IV_LEN];
        rand::fill(&mut iv).ok()?;
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&iv);
        let mut body = now.to_be_bytes().to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(iv),
            aead::Aad::from(epoch.to_be_bytes()),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Whether `nonce` is one of ours, issued at most the lifetime
    /// ago and at most the skew ahead of `now`.
    pub(crate) fn check(&self, nonce: Option<&str>, now: u64) -> Result<(), NonceError> {
        let nonce = nonce.ok_or(NonceError::Missing)?;
        let invalid = NonceError::Invalid;
        if nonce.len() > 2 * SEALED_LEN {
            return Err(invalid);
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| invalid)?;
        if raw.len() != SEALED_LEN {
            return Err(invalid);
        }
        let (epoch, rest) = raw.split_at_checked(EPOCH_LEN).ok_or(invalid)?;
        let (iv, sealed) = rest.split_at_checked(IV_LEN).ok_or(invalid)?;
        let epoch = u64::from_be_bytes(epoch.try_into().map_err(|_| invalid)?);
        // The current and previous epochs, and the next one when the skew
        // reaches it (a replica whose clock runs ahead crossed over first).
        let current = now / self.lifetime;
        let latest = now.saturating_add(self.skew) / self.lifetime;
        if epoch.saturating_add(1) < current || epoch > latest {
            return Err(invalid);
        }
        let key = self.key(epoch).ok_or(invalid)?;
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| invalid)?;
        let mut body = sealed.to_vec();
        let opened = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(iv),
                aead::Aad::from(epoch.to_be_bytes()),
                &mut body,
            )
            .map_err(|_| invalid)?;
        let issued = u64::from_be_bytes((&*opened).try_into().map_err(|_| invalid)?);
        if issued > now.saturating_add(self.skew)
            || now.saturating_sub(issued) > self.lifetime
            || issued / self.lifetime != epoch
        {
            return Err(invalid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_opens_within_its_lifetime_only() {
        let keys = NonceKeys::new(Some(b"secret"), 300, 0);
        let n = keys.issue(1_000_000).unwrap();
        assert_eq!(keys.check(Some(&n), 1_000_000), Ok(()));
        assert_eq!(keys.check(Some(&n), 1_000_300), Ok(()));
        assert_eq!(keys.check(Some(&n), 1_000_301), Err(NonceError::Invalid));
        assert_eq!(keys.check(Some(&n), 999_999), Err(NonceError::Invalid));
        assert_eq!(keys.check(None, 1_000_000), Err(NonceError::Missing));
    }

    #[test]
    fn replicas_sharing_the_secret_agree_and_others_do_not() {
        let a = NonceKeys::new(Some(b"shared"), 60, 0);
        let b = NonceKeys::new(Some(b"shared"), 60, 0);
        let other = NonceKeys::new(None, 60, 0);
        let n = a.issue(6_000).unwrap();
        assert_eq!(b.check(Some(&n), 6_010), Ok(()));
        assert_eq!(other.check(Some(&n), 6_010), Err(NonceError::Invalid));
    }

    // Replicas' clocks differ a little, and a client's retry with the nonce
    // one handed out may land on another whose clock runs behind. Before
    // the fix a nonce issued even one second "in the future" of the
    // checking replica was refused (`dpop_nonce_invalid`), and one issued
    // in an epoch that replica had not reached yet too: with clocks a few
    // milliseconds apart, every nonce handed out across a second boundary
    // could be refused by the other replica. Up to the clock leeway ahead
    // is now taken; further ahead is not.
    #[test]
    fn a_replica_whose_clock_runs_behind_takes_the_others_nonces() {
        let a = NonceKeys::new(Some(b"shared"), 60, 5);
        let b = NonceKeys::new(Some(b"shared"), 60, 5);
        // Within an epoch, and across the epoch boundary (6_000 / 60 = 100).
        for issued in [6_030, 6_000] {
            let n = a.issue(issued).unwrap();
            assert_eq!(b.check(Some(&n), issued - 1), Ok(()), "{issued}");
            assert_eq!(b.check(Some(&n), issued - 5), Ok(()), "{issued}");
            assert_eq!(
                b.check(Some(&n), issued - 6),
                Err(NonceError::Invalid),
                "{issued}"
            );
        }
        // No leeway: the issuing second only.
        let strict = NonceKeys::new(Some(b"shared"), 60, 0);
        let n = strict.issue(6_000).unwrap();
        assert_eq!(strict.check(Some(&n), 5_999), Err(NonceError::Invalid));
    }

    #[test]
    fn tampered_and_foreign_nonces_are_refused() {
        let keys = NonceKeys::new(Some(b"secret"), 300, 0);
        let n = keys.issue(1_000_000).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&n).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let bad = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(keys.check(Some(&bad), 1_000_000), Err(NonceError::Invalid));
        for junk in ["", "abc", "!!!!", &"A".repeat(500)] {
            assert_eq!(keys.check(Some(junk), 1_000_000), Err(NonceError::Invalid));
        }
        assert!(format!("{keys:?}").contains("redacted"));
    }
}
