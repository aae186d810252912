//! A short memory of tokens refused for good, so that a client (or an
//! attacker) sending the same bad token again and again costs one full
//! verification per [`REMEMBER_SECS`], not one per request.
//!
//! Why: a flood of one bad token (a retry loop with a tampered or expired
//! token, or an attack) made the server check an RSA signature for every
//! request (issue 13: 5,500 such requests a second took a third of a core
//! and tripled the accepted calls' p99). With this memory the second and
//! later copies are refused after a keyed hash of the token's tail and one
//! SHA-256, before any parsing or signature check.
//!
//! What is remembered, and why that is safe:
//! - only refusals the token's bytes decide under a fixed configuration:
//!   malformed, encrypted, forbidden header, wrong `typ`, algorithm not
//!   allowed, bad signature, wrong issuer or audience, expired, bad claims,
//!   repeated members ([`lasting`]). Never a refusal that can change with
//!   time or with the issuer: an unknown key (the key set may rotate in),
//!   not yet valid, keys or introspection unavailable, a custom verifier's
//!   `Rejected`, any refusal of an introspected token (it judged the
//!   endpoint's answer, which may change: its audience, issuer, expiry,
//!   activity; found from outside), anything about DPoP proofs
//!   or scopes. An unknown kind added later is not remembered;
//! - a refusal is the same answer the full verification gave (the same
//!   kind, so the same status, error code, reason and challenge);
//! - entries live at most [`REMEMBER_SECS`] seconds (a key replaced under the
//!   same `kid`, which RFC 7517 implementations should not do, can keep a
//!   token refused that long) and are bounded in number ([`CAPACITY`]), so
//!   a flood of distinct tokens only evicts older entries;
//! - no token is kept: an entry is found by a SipHash (per-process random
//!   keys) of the token's last bytes and confirmed by the SHA-256 of the
//!   whole token, as in the verified-token cache.

use std::hash::RandomState;
use std::sync::Arc;

use quick_cache::sync::Cache;

use crate::error::{AuthError, AuthErrorKind, Diagnosis};

/// How long a refusal is remembered, in seconds.
pub(super) const REMEMBER_SECS: u64 = 30;

/// How many refused tokens are remembered at most.
pub(super) const CAPACITY: usize = 4096;

/// Whether a refusal of this kind holds for the same token bytes as long as
/// the configuration does (see the module documentation).
pub(super) fn lasting(kind: AuthErrorKind) -> bool {
    matches!(
        kind,
        AuthErrorKind::MalformedToken
            | AuthErrorKind::EncryptedToken
            | AuthErrorKind::UnsupportedHeader
            | AuthErrorKind::InvalidType
            | AuthErrorKind::NotAnAccessToken
            | AuthErrorKind::DisallowedAlgorithm
            | AuthErrorKind::InvalidSignature
            | AuthErrorKind::InvalidIssuer
            | AuthErrorKind::InvalidAudience
            | AuthErrorKind::Expired
            | AuthErrorKind::InvalidClaims
            | AuthErrorKind::DuplicateMember
    )
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    kind: AuthErrorKind,
    /// What the token claimed, for the audit event (its audience, its
    /// untrusted issuer's digest): a remembered refusal is written as the
    /// first was (found from outside: `token_audience`, `expected_audience`
    /// and `hint` were on the first `invalid_audience` line only).
    diagnosis: Option<Arc<Diagnosis>>,
    /// Unix seconds after which the entry is ignored.
    until: u64,
}

/// The memory of refused tokens (see the module documentation).
pub(super) struct RefusedTokens {
    map: Cache<u64, Entry>,
    probe_keys: RandomState,
}

impl std::fmt::Debug for RefusedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusedTokens")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl RefusedTokens {
    pub(super) fn new() -> Self {
        Self {
            map: Cache::new(CAPACITY),
            probe_keys: RandomState::new(),
        }
    }

    fn probe(&self, token: &str) -> u64 {
        crate::verify::token_cache::tail_probe(&self.probe_keys, token)
    }

    /// The remembered refusal of `token` at `now`, if any, with what the
    /// token claimed. A token never refused costs the probe alone (no
    /// SHA-256).
    pub(super) fn get(&self, token: &str, now: u64) -> Option<AuthError> {
        let entry = self.map.get(&self.probe(token))?;
        if now >= entry.until || entry.digest != crate::verify::token_cache::token_key(token) {
            return None;
        }
        let err = AuthError::from(entry.kind);
        Some(match &entry.diagnosis {
            Some(diagnosis) => err.with_diagnosis(Diagnosis::clone(diagnosis)),
            None => err,
        })
    }

    /// Remembers that `token` was refused with `err` at `now`, when that
    /// refusal lasts.
    pub(super) fn remember(&self, token: &str, err: &AuthError, now: u64) {
        let kind = err.kind();
        if !lasting(kind) {
            return;
        }
        self.map.insert(
            self.probe(token),
            Entry {
                digest: crate::verify::token_cache::token_key(token),
                kind,
                diagnosis: err.diagnosis().map(|d| Arc::new(d.clone())),
                until: now.saturating_add(REMEMBER_SECS),
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(r: &RefusedTokens, token: &str, now: u64) -> Option<AuthErrorKind> {
        r.get(token, now).map(|e| e.kind())
    }

    // A remembered refusal carries what the token claimed, as the first
    // did, for the audit line (its audience, its untrusted issuer).
    #[test]
    fn what_the_token_claimed_is_remembered_with_its_refusal() {
        let r = RefusedTokens::new();
        let diagnosis = Diagnosis {
            audience: vec!["https://other.example/mcp".to_owned()],
            ..Diagnosis::default()
        };
        let refused =
            AuthError::from(AuthErrorKind::InvalidAudience).with_diagnosis(diagnosis.clone());
        r.remember("a.b.c", &refused, 7);
        let again = r.get("a.b.c", 8).unwrap();
        assert_eq!(again.kind(), AuthErrorKind::InvalidAudience);
        assert_eq!(again.diagnosis(), Some(&diagnosis));
        r.remember("d.e.f", &AuthErrorKind::Expired.into(), 7);
        assert_eq!(r.get("d.e.f", 8).unwrap().diagnosis(), None);
    }

    #[test]
    fn remembers_lasting_refusals_for_a_while() {
        let r = RefusedTokens::new();
        r.remember("a.b.c", &AuthErrorKind::InvalidSignature.into(), 100);
        assert_eq!(
            kind_of(&r, "a.b.c", 100),
            Some(AuthErrorKind::InvalidSignature)
        );
        assert_eq!(
            kind_of(&r, "a.b.c", 100 + REMEMBER_SECS - 1),
            Some(AuthErrorKind::InvalidSignature)
        );
        assert_eq!(kind_of(&r, "a.b.c", 100 + REMEMBER_SECS), None);
        // Another token is not refused by this entry.
        assert_eq!(kind_of(&r, "a.b.d", 100), None);
    }

    #[test]
    fn passing_refusals_are_not_remembered() {
        let r = RefusedTokens::new();
        for kind in [
            AuthErrorKind::UnknownKey,
            AuthErrorKind::NotYetValid,
            AuthErrorKind::KeysUnavailable,
            AuthErrorKind::IntrospectionUnavailable,
            AuthErrorKind::TokenInactive,
            AuthErrorKind::Rejected,
            AuthErrorKind::InsufficientScope,
            AuthErrorKind::DpopReplay,
        ] {
            r.remember("x.y.z", &kind.into(), 1);
            assert_eq!(kind_of(&r, "x.y.z", 1), None, "{kind:?}");
        }
        assert_eq!(r.len(), 0);
    }

    // Two tokens sharing their last 32 bytes share a probe: the SHA-256
    // tells them apart, so a crafted token cannot inherit another's
    // refusal, nor evade its own by the other's.
    #[test]
    fn a_shared_tail_is_told_apart_by_the_digest() {
        let r = RefusedTokens::new();
        let tail = "T".repeat(crate::verify::token_cache::PROBE_BYTES);
        let bad = format!("bad.{tail}");
        let other = format!("other.{tail}");
        r.remember(&bad, &AuthErrorKind::Expired.into(), 5);
        assert_eq!(kind_of(&r, &other, 5), None);
        assert_eq!(kind_of(&r, &bad, 5), Some(AuthErrorKind::Expired));
    }

    #[test]
    fn bounded_in_number() {
        let r = RefusedTokens::new();
        for i in 0..(CAPACITY * 3) {
            r.remember(
                &format!("token-{i}"),
                &AuthErrorKind::MalformedToken.into(),
                1,
            );
        }
        assert!(r.len() <= CAPACITY, "{}", r.len());
        assert!(format!("{r:?}").starts_with("RefusedTokens"));
    }
}
