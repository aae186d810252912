//! The sealed format: `<kind>.<key id>.<base64url blob>`.
//!
//! `kind` is `h2s`, `h2e`, `r2s` or `r2e`: handle or request state, format
//! 2, signed or encrypted (and `x1e`, an exchanged token in the shared
//! store, format 1, always encrypted). The blob is
//!
//! - signed: `expiry (8) | random (16) | payload | HMAC-SHA256 tag (32)`;
//! - encrypted: `expiry (8) | nonce (12) | AES-256-GCM ciphertext | tag (16)`.
//!
//! The expiry is milliseconds since the Unix epoch, big-endian. The
//! authenticated data (the HMAC input before the body, or the AEAD's
//! associated data) is a sequence of length-prefixed fields: a purpose label,
//! the kind, the key id, the expiry, the issuer, the subject, the client id
//! (with a presence byte) and, for request state, the method and the name;
//! for an exchanged token, its cache key.
//! Length prefixes make every field boundary unambiguous.

use std::time::Duration;

use aws_lc_rs::{aead, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{HandleError, HandleKeys, MAX_KEY_ID_BYTES, Sealing, valid_key_id};

/// The principal: issuer, subject, client id, tenant.
pub(crate) type Principal<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);

/// What a sealed string is for; part of the authenticated data, so a
/// string sealed for one purpose never opens for another.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// A handle passed back as a tool argument.
    Handle,
    /// The `requestState` of a multi-round-trip request, bound to the
    /// originating request's method and name.
    RequestState { method: &'a str, name: &'a str },
    /// An exchanged token kept in the replicas' shared store, bound to its
    /// cache key (a digest of who asked for what).
    Exchanged { key: &'a [u8; 32] },
}

impl Purpose<'_> {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Handle => b"mcp-oauth2 handle v2",
            Purpose::RequestState { .. } => b"mcp-oauth2 request state v2",
            Purpose::Exchanged { .. } => b"mcp-oauth2 exchanged token v1",
        }
    }

    fn kind(self, sealing: Sealing) -> &'static str {
        match (self, sealing) {
            (Purpose::Handle, Sealing::Signed) => "h2s",
            (Purpose::Handle, Sealing::Encrypted) => "h2e",
            (Purpose::RequestState { .. }, Sealing::Signed) => "r2s",
            (Purpose::RequestState { .. }, Sealing::Encrypted) => "r2e",
            (Purpose::Exchanged { .. }, Sealing::Signed) => "x1s",
            (Purpose::Exchanged { .. }, Sealing::Encrypted) => "x1e",
        }
    }
}

const EXPIRY_LEN: usize = 8;
const SIGNED_RANDOM_LEN: usize = 16;
const SIGNED_TAG_LEN: usize = 32;
const NONCE_LEN: usize = aead::NONCE_LEN;
const AEAD_TAG_LEN: usize = 16;
const KIND_LEN: usize = 3;

/// Base64url characters (no padding) for `n` bytes.
const fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

const MAX_BLOB_LEN: usize = {
    let signed = SIGNED_RANDOM_LEN + SIGNED_TAG_LEN;
    let encrypted = NONCE_LEN + AEAD_TAG_LEN;
    let overhead = if signed > encrypted {
        signed
    } else {
        encrypted
    };
    EXPIRY_LEN + overhead + HandleKeys::MAX_PAYLOAD_BYTES
};

/// The longest sealed string: a largest payload under a longest key id.
pub(super) const MAX_SEALED_BYTES: usize =
    KIND_LEN + 1 + MAX_KEY_ID_BYTES + 1 + b64_len(MAX_BLOB_LEN);

/// Seals `payload` for `principal` and `purpose` with the ring's current
/// key, valid for `ttl` from now.
pub(crate) fn seal(
    keys: &HandleKeys,
    principal: Principal<'_>,
    purpose: Purpose<'_>,
    payload: &str,
    ttl: Duration,
) -> Result<String, HandleError> {
    seal_at(
        keys,
        principal,
        purpose,
        payload,
        ttl,
        crate::clock::now_unix_millis(),
    )
}

/// Opens a string sealed by [`seal`] for the same principal and purpose.
pub(crate) fn open(
    keys: &HandleKeys,
    principal: Principal<'_>,
    purpose: Purpose<'_>,
    sealed: &str,
) -> Result<String, HandleError> {
    open_at(
        keys,
        principal,
        purpose,
        sealed,
        crate::clock::now_unix_millis(),
    )
}

/// [`seal`] at `now_ms` (milliseconds since the Unix epoch).
pub(super) fn seal_at(
    keys: &HandleKeys,
    principal: Principal<'_>,
    purpose: Purpose<'_>,
    payload: &str,
    ttl: Duration,
    now_ms: u64,
) -> Result<String, HandleError> {
    if payload.len() > HandleKeys::MAX_PAYLOAD_BYTES {
        return Err(HandleError::TooLarge);
    }
    if ttl.is_zero() || ttl > HandleKeys::MAX_TTL {
        return Err(HandleError::InvalidTtl);
    }
    // At most 366 days, so it fits; a part of a millisecond counts whole,
    // so a positive lifetime never seals an expired string.
    let ttl_ms = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    let expiry = now_ms.saturating_add(ttl_ms);
    let key = keys.current();
    let kind = purpose.kind(keys.sealing());
    let ad = associated_data(purpose, kind, key.id(), expiry, principal);
    let mut blob = Vec::with_capacity(MAX_BLOB_LEN.min(64 + payload.len()));
    blob.extend_from_slice(&expiry.to_be_bytes());
    match keys.sealing() {
        Sealing::Signed => {
            let mut random = [0u8; SIGNED_RANDOM_LEN];
            rand::fill(&mut random).map_err(|_| HandleError::Random)?;
            blob.extend_from_slice(&random);
            blob.extend_from_slice(payload.as_bytes());
            let tag = hmac::sign(key.mac(), &signed_input(ad, &blob));
            blob.extend_from_slice(tag.as_ref());
        }
        Sealing::Encrypted => {
            let mut nonce = [0u8; NONCE_LEN];
            rand::fill(&mut nonce).map_err(|_| HandleError::Random)?;
            let mut in_out = payload.as_bytes().to_vec();
            key.aead()
                .seal_in_place_append_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(ad),
                    &mut in_out,
                )
                // Fails only for inputs far beyond the payload cap.
                .map_err(|_| HandleError::TooLarge)?;
            blob.extend_from_slice(&nonce);
            blob.extend_from_slice(&in_out);
        }
    }
    Ok(format!(
        "{kind}.{}.{}",
        key.id(),
        URL_SAFE_NO_PAD.encode(&blob)
    ))
}

/// [`open`] at `now_ms` (milliseconds since the Unix epoch). Cheapest
/// checks first: length, shape, kind, key id; then the tag; the expiry is
/// judged only on an authentic string.
pub(super) fn open_at(
    keys: &HandleKeys,
    principal: Principal<'_>,
    purpose: Purpose<'_>,
    sealed: &str,
    now_ms: u64,
) -> Result<String, HandleError> {
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(HandleError::TooLarge);
    }
    let mut parts = sealed.split('.');
    let (Some(kind), Some(key_id), Some(blob), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HandleError::Invalid);
    };
    let expected_kind = purpose.kind(keys.sealing());
    if kind != expected_kind || !valid_key_id(key_id) {
        return Err(HandleError::Invalid);
    }
    let key = keys.key(key_id).ok_or(HandleError::UnknownKey)?;
    let mut blob = URL_SAFE_NO_PAD
        .decode(blob)
        .map_err(|_| HandleError::Invalid)?;
    let expiry: [u8; EXPIRY_LEN] = blob
        .get(..EXPIRY_LEN)
        .and_then(|e| e.try_into().ok())
        .ok_or(HandleError::Invalid)?;
    let expiry = u64::from_be_bytes(expiry);
    let ad = associated_data(purpose, expected_kind, key_id, expiry, principal);
    let payload: &[u8] = match keys.sealing() {
        Sealing::Signed => {
            let tag_at = blob
                .len()
                .checked_sub(SIGNED_TAG_LEN)
                .filter(|at| *at >= EXPIRY_LEN + SIGNED_RANDOM_LEN)
                .ok_or(HandleError::Invalid)?;
            let (body, tag) = blob.split_at(tag_at);
            // Constant-time comparison inside aws-lc-rs.
            hmac::verify(key.mac(), &signed_input(ad, body), tag)
                .map_err(|_| HandleError::Invalid)?;
            body.get(EXPIRY_LEN + SIGNED_RANDOM_LEN..)
                .ok_or(HandleError::Invalid)?
        }
        Sealing::Encrypted => {
            if blob.len() < EXPIRY_LEN + NONCE_LEN + AEAD_TAG_LEN {
                return Err(HandleError::Invalid);
            }
            let (head, in_out) = blob.split_at_mut(EXPIRY_LEN + NONCE_LEN);
            let nonce = head
                .get(EXPIRY_LEN..)
                .and_then(|n| aead::Nonce::try_assume_unique_for_key(n).ok())
                .ok_or(HandleError::Invalid)?;
            // The tag is checked in constant time inside aws-lc-rs.
            key.aead()
                .open_in_place(nonce, aead::Aad::from(ad), in_out)
                .map_err(|_| HandleError::Invalid)?
        }
    };
    if now_ms >= expiry {
        return Err(HandleError::Expired);
    }
    String::from_utf8(payload.to_vec()).map_err(|_| HandleError::Invalid)
}

/// The authenticated data: length-prefixed fields, so that no two
/// different (principal, request, key, expiry) share an encoding.
fn associated_data(
    purpose: Purpose<'_>,
    kind: &str,
    key_id: &str,
    expiry: u64,
    principal: Principal<'_>,
) -> Vec<u8> {
    let (issuer, subject, client_id, tenant) = principal;
    let mut ad = Vec::with_capacity(128 + issuer.len() + subject.len());
    let mut field = |bytes: &[u8]| {
        ad.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        ad.extend_from_slice(bytes);
    };
    field(purpose.label());
    field(kind.as_bytes());
    field(key_id.as_bytes());
    field(&expiry.to_be_bytes());
    field(issuer.as_bytes());
    field(subject.as_bytes());
    // No client id and an empty one are different principals.
    match client_id {
        None => field(&[0]),
        Some(c) => {
            field(&[1]);
            field(c.as_bytes());
        }
    }
    match purpose {
        Purpose::RequestState { method, name } => {
            field(method.as_bytes());
            field(name.as_bytes());
        }
        Purpose::Exchanged { key } => field(key),
        Purpose::Handle => {}
    }
    // The tenant last, only when there is one: handles of principals
    // without a tenant keep their encoding, and the field count differs
    // (every field is length-prefixed), so no two principals share one.
    if let Some(tenant) = tenant {
        field(b"tenant");
        field(tenant.as_bytes());
    }
    ad
}

/// The HMAC input: the authenticated data, then the body, length-prefixed.
fn signed_input(mut ad: Vec<u8>, body: &[u8]) -> Vec<u8> {
    ad.reserve(8 + body.len());
    ad.extend_from_slice(&(body.len() as u64).to_be_bytes());
    ad.extend_from_slice(body);
    ad
}
