//! State handles bound to the caller.
//!
//! Servers that keep state across stateless (2026-07-28) requests mint
//! handles that clients pass back as tool arguments. The MCP security best
//! practices ask that a handle be bound to the authenticated principal and
//! that possession of a handle never count as authentication. A handle from
//! [`AuthContext::mint_handle`](crate::AuthContext::mint_handle) carries a
//! random part and your payload, authenticated with HMAC-SHA256 over the
//! principal (issuer, subject, client id), so it opens only for the same
//! principal and cannot be forged or altered.

use std::fmt;

use aws_lc_rs::{hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: &str = "h1";
const NONCE_LEN: usize = 16;
const MAX_HANDLE_LEN: usize = 4096;

/// The server-side secret that authenticates handles. Keep it stable across
/// restarts and replicas (load it from a secret store) if handles must
/// survive them; its `Debug` output is redacted.
#[derive(Clone)]
pub struct HandleKey(hmac::Key);

impl fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandleKey([redacted])")
    }
}

impl HandleKey {
    /// A fresh random key (handles die with the process).
    pub fn generate() -> Result<Self, HandleError> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret).map_err(|_| HandleError::Random)?;
        Ok(Self::from_secret(&secret))
    }

    /// A key from secret bytes (at least 32 random bytes are recommended).
    pub fn from_secret(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

/// Why a handle could not be minted or opened. Deliberately coarse: a
/// caller presenting someone else's handle learns nothing about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The handle is malformed, altered, or minted for another principal.
    #[error("the handle is not valid for this caller")]
    Invalid,
    /// The system random generator failed.
    #[error("random generation failed")]
    Random,
}

pub(crate) fn mint(
    key: &HandleKey,
    principal: (&str, &str, Option<&str>),
    payload: &str,
) -> Result<String, HandleError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce).map_err(|_| HandleError::Random)?;
    let mut body = Vec::with_capacity(NONCE_LEN + payload.len());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(payload.as_bytes());
    let tag = mac(key, principal, &body);
    Ok(format!(
        "{VERSION}.{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    ))
}

pub(crate) fn open(
    key: &HandleKey,
    principal: (&str, &str, Option<&str>),
    handle: &str,
) -> Result<String, HandleError> {
    if handle.len() > MAX_HANDLE_LEN {
        return Err(HandleError::Invalid);
    }
    let mut parts = handle.split('.');
    let (Some(VERSION), Some(body), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HandleError::Invalid);
    };
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| HandleError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| HandleError::Invalid)?;
    if body.len() < NONCE_LEN {
        return Err(HandleError::Invalid);
    }
    let input = mac_input(principal, &body);
    // Constant-time comparison inside aws-lc-rs.
    hmac::verify(&key.0, &input, &tag).map_err(|_| HandleError::Invalid)?;
    let payload = body.get(NONCE_LEN..).ok_or(HandleError::Invalid)?;
    String::from_utf8(payload.to_vec()).map_err(|_| HandleError::Invalid)
}

fn mac_input(principal: (&str, &str, Option<&str>), body: &[u8]) -> Vec<u8> {
    let (issuer, subject, client_id) = principal;
    let mut input = Vec::with_capacity(64 + body.len());
    input.extend_from_slice(VERSION.as_bytes());
    // Length-prefixed fields: no two different principals share an encoding.
    for field in [
        issuer.as_bytes(),
        subject.as_bytes(),
        client_id.unwrap_or("").as_bytes(),
        body,
    ] {
        input.extend_from_slice(&(field.len() as u64).to_be_bytes());
        input.extend_from_slice(field);
    }
    input
}

fn mac(key: &HandleKey, principal: (&str, &str, Option<&str>), body: &[u8]) -> hmac::Tag {
    hmac::sign(&key.0, &mac_input(principal, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: (&str, &str, Option<&str>) = ("https://iss", "alice", Some("app"));

    #[test]
    fn opens_only_for_the_same_principal_and_key() {
        let key = HandleKey::generate().unwrap();
        let h = mint(&key, ALICE, "cart-42").unwrap();
        assert_eq!(open(&key, ALICE, &h).unwrap(), "cart-42");
        for other in [
            ("https://iss", "bob", Some("app")),
            ("https://iss", "alice", Some("other-app")),
            ("https://iss", "alice", None),
            ("https://other", "alice", Some("app")),
            // Field boundaries are unambiguous.
            ("https://issa", "lice", Some("app")),
        ] {
            assert_eq!(
                open(&key, other, &h),
                Err(HandleError::Invalid),
                "{other:?}"
            );
        }
        let other_key = HandleKey::generate().unwrap();
        assert_eq!(open(&other_key, ALICE, &h), Err(HandleError::Invalid));
    }

    #[test]
    fn handles_are_unique_and_tamper_evident() {
        let key = HandleKey::from_secret(&[7; 32]);
        let a = mint(&key, ALICE, "x").unwrap();
        let b = mint(&key, ALICE, "x").unwrap();
        assert_ne!(a, b);
        let mut parts: Vec<String> = a.split('.').map(str::to_owned).collect();
        let mut body = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
        *body.last_mut().unwrap() ^= 1;
        parts[1] = URL_SAFE_NO_PAD.encode(body);
        assert_eq!(
            open(&key, ALICE, &parts.join(".")),
            Err(HandleError::Invalid)
        );
        for junk in [
            "",
            "h1",
            "h1..",
            "h2.AAAA.AAAA",
            "h1.!!.??",
            &"h1.".repeat(2000),
        ] {
            assert_eq!(open(&key, ALICE, junk), Err(HandleError::Invalid));
        }
        assert_eq!(format!("{key:?}"), "HandleKey([redacted])");
    }
}
