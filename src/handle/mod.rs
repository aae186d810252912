//! State handles and multi-round-trip request state, bound to the caller:
//! keys and the ring here, the sealed format in `seal`. What users read is
//! on [`HandleKeys`] (guarantees, modes, rotation).
//!
//! Servers that keep state across stateless (2026-07-28) requests give the
//! client a string to send back: a handle passed as a tool argument, or the
//! `requestState` of a multi-round-trip request. The MCP security best
//! practices ask that such a string be integrity-protected, carry the
//! principal, a lifetime and the originating request, be refused for anyone
//! else, and never count as authentication.

mod seal;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::{aead, hkdf, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(crate) use seal::{Principal, Purpose, open, seal};

/// The HKDF salt: these keys are for mcp-oauth2 state, format 2.
const KDF_SALT: &[u8] = b"mcp-oauth2 state keys v2";
/// The shortest secret accepted, in bytes.
const MIN_SECRET_BYTES: usize = 32;
/// The longest key id, in bytes.
const MAX_KEY_ID_BYTES: usize = 64;
/// Bytes of derived key id for [`HandleKey::from_secret`] (8 base64url characters).
const DERIVED_ID_BYTES: usize = 6;

/// One secret that seals and opens handles and request state, with its key
/// id. Cheap to clone; its `Debug` output shows the id, never the secret.
#[derive(Clone)]
pub struct HandleKey(Arc<KeyInner>);

struct KeyInner {
    id: Box<str>,
    mac: hmac::Key,
    aead: aead::LessSafeKey,
    /// HMAC-SHA256 naming exchanged tokens in a shared store
    /// ([`SealedExchangeStore`](crate::SealedExchangeStore)): a key of its
    /// own (HKDF info `exchange store key`), never the sealing ones.
    exchange_store: hmac::Key,
}

impl fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleKey")
            .field("id", &self.id())
            .field("secret", &format_args!("[redacted]"))
            .finish()
    }
}

/// An output length for HKDF (the key id).
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl HandleKey {
    /// A fresh random key with a random id: strings sealed with it die with
    /// the process (or with the ring that holds it).
    pub fn generate() -> Result<Self, HandleError> {
        let mut secret = [0u8; MIN_SECRET_BYTES];
        rand::fill(&mut secret).map_err(|_| HandleError::Random)?;
        let key = Self::from_secret(&secret);
        secret.fill(0);
        key
    }

    /// A key from secret bytes (at least 32, from a secure random source),
    /// with an id derived from the secret: replicas loading the same secret
    /// agree on it, and it reveals nothing about the secret. Fails with
    /// [`HandleError::ShortSecret`] for a shorter secret, and with
    /// [`HandleError::WeakKey`] for one that is a short pattern repeated
    /// (`aaaa...`, `abab...`) or holds fewer than six distinct bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, HandleError> {
        let prk = extract(secret)?;
        let mut id = [0u8; DERIVED_ID_BYTES];
        prk.expand(&[b"key id"], Len(DERIVED_ID_BYTES))
            .and_then(|okm| okm.fill(&mut id))
            .map_err(|_| HandleError::InvalidKey)?;
        Self::from_prk(URL_SAFE_NO_PAD.encode(id).into_boxed_str(), &prk)
    }

    /// A key from secret bytes (at least 32, random: see
    /// [`from_secret`](Self::from_secret)) with the id you choose, for
    /// rotation (see [`HandleKeys`]). The id is written in every sealed
    /// string, so it must not be secret: 1 to 64 characters of
    /// `A-Z a-z 0-9 - _`. Fails with [`HandleError::InvalidKeyId`]
    /// otherwise, and as [`from_secret`](Self::from_secret) for the secret.
    pub fn from_secret_with_id(id: &str, secret: &[u8]) -> Result<Self, HandleError> {
        if !valid_key_id(id) {
            return Err(HandleError::InvalidKeyId);
        }
        Self::from_prk(id.into(), &extract(secret)?)
    }

    /// The key id written in the strings this key seals.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    fn from_prk(id: Box<str>, prk: &hkdf::Prk) -> Result<Self, HandleError> {
        let mac: hmac::Key = prk
            .expand(&[b"hmac-sha256"], hmac::HMAC_SHA256)
            .map_err(|_| HandleError::InvalidKey)?
            .into();
        let aead: aead::UnboundKey = prk
            .expand(&[b"aes-256-gcm"], &aead::AES_256_GCM)
            .map_err(|_| HandleError::InvalidKey)?
            .into();
        let exchange_store: hmac::Key = prk
            .expand(&[b"exchange store key"], hmac::HMAC_SHA256)
            .map_err(|_| HandleError::InvalidKey)?
            .into();
        Ok(Self(Arc::new(KeyInner {
            id,
            mac,
            aead: aead::LessSafeKey::new(aead),
            exchange_store,
        })))
    }

    pub(crate) fn mac(&self) -> &hmac::Key {
        &self.0.mac
    }

    pub(crate) fn aead(&self) -> &aead::LessSafeKey {
        &self.0.aead
    }

    /// The HMAC-SHA256 key that names exchanged tokens in a shared store:
    /// derived from the secret for that purpose alone (neither the sealing
    /// HMAC key nor the AES-GCM key), so that a store key reveals nothing
    /// of them, and replicas holding the same secret agree on it.
    pub(crate) fn exchange_store_mac(&self) -> &hmac::Key {
        &self.0.exchange_store
    }
}

fn extract(secret: &[u8]) -> Result<hkdf::Prk, HandleError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(HandleError::ShortSecret);
    }
    if crate::error::secret_weakness(secret).is_some() {
        return Err(HandleError::WeakKey);
    }
    Ok(hkdf::Salt::new(hkdf::HKDF_SHA256, KDF_SALT).extract(secret))
}

/// 1 to 64 bytes of `A-Z a-z 0-9 - _`: never a `.`, so a sealed string
/// splits one way only.
pub(crate) fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_BYTES).contains(&id.len()) && id.bytes().all(crate::error::is_base64url)
}

/// How the payload is protected. Both modes are tamper-evident and bound to
/// the principal; only [`Encrypted`](Self::Encrypted) hides the payload
/// (see [`HandleKeys`] for what each gives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sealing {
    /// HMAC-SHA256: tamper-evident, but the payload is readable by anyone
    /// holding the string (base64url, not encryption).
    Signed,
    /// AES-256-GCM with a random 96-bit nonce: confidential and
    /// tamper-evident. The default.
    #[default]
    Encrypted,
}

/// The keys that seal and open handles
/// ([`AuthContext::mint_handle`](crate::AuthContext::mint_handle)) and
/// multi-round-trip request state
/// ([`AuthContext::seal_request_state`](crate::AuthContext::seal_request_state)):
/// the current key seals, every key of the ring opens what it sealed (chosen
/// by the key id written in the string), all in one [`Sealing`] mode.
///
/// A handle or request state is never authentication: the caller still
/// presents a valid token on every request. What a sealed string is:
///
/// - **bound** to the principal (issuer, subject, client id), and request
///   state also to the originating request's method and name
///   (`"tools/call"`, `"export_notes"`): opening for anyone or anything else
///   fails with [`HandleError::Invalid`];
/// - **bounded in time**: the expiry is authenticated, and an authentic
///   string past it fails with [`HandleError::Expired`];
/// - **separated by purpose**: a handle never opens as request state, nor
///   the reverse;
/// - **rotatable**: each string names the key that sealed it (its key id,
///   authenticated too).
///
/// # What each mode gives
///
/// - [`Sealing::Encrypted`] (the default): AES-256-GCM with a random 96-bit
///   nonce. The payload is **confidential and tamper-evident**: whoever
///   holds the string sees the key id, the expiry and the payload's length,
///   not its content.
/// - [`Sealing::Signed`]: HMAC-SHA256. The payload is **tamper-evident but
///   readable**: it is only base64url-encoded, so anyone holding the string
///   (the client, its logs) can read it. Use it for identifiers the client
///   may see anyway.
///
/// In both modes the principal, the purpose, the key id, the expiry and (for
/// request state) the request are authenticated: a mismatch on any of them
/// fails verification, and tags are compared in constant time (aws-lc-rs).
/// Each [`HandleKey`] derives two independent subkeys from its secret with
/// HKDF-SHA256, one for HMAC and one for AES-GCM. Neither mode makes a
/// string single-use: within its lifetime the same principal can present it
/// again (keep a server-side record if replay matters).
///
/// Strings look like `h2e.<key id>.<base64url>` (`h` a handle, `r` request
/// state; `2` the format; `e` encrypted, `s` signed), at most
/// [`MAX_SEALED_BYTES`](Self::MAX_SEALED_BYTES) long; a longer one is
/// refused before it is parsed.
///
/// # Rotating keys
///
/// Load secrets from a secret store and give each key an id
/// ([`HandleKey::from_secret_with_id`]); every replica must hold the same
/// ring. To replace key `k1` by `k2` without refusing live strings:
///
/// 1. deploy `HandleKeys::new(k1).with_previous(k2)?` everywhere: every
///    replica can now open what `k2` seals;
/// 2. deploy `HandleKeys::new(k2).with_previous(k1)?`: new strings are sealed
///    with `k2`, and those sealed with `k1` still open;
/// 3. once the longest lifetime you seal with has passed, deploy
///    `HandleKeys::new(k2)`: strings sealed with `k1` now fail with
///    [`HandleError::UnknownKey`].
///
/// After a compromise, skip the waiting: remove the key at once. With
/// random 96-bit nonces, rotate well before one key has sealed 2^32 strings.
///
/// ```
/// use mcp_oauth2::{HandleKey, HandleKeys, Sealing};
/// # fn main() -> Result<(), mcp_oauth2::HandleError> {
/// # let secret_2026_12 = *b"k5Vh2N1x7KpR0aZ-wE_mU3yT8jLcB6sD";
/// # let secret_2026_11 = *b"Q9fGiOo4hN2xv7RkP0a-We_3yU8jLcB6";
/// // Each from a secure random source (a secret store, `head -c 32 /dev/urandom`).
/// let current = HandleKey::from_secret_with_id("2026-12", &secret_2026_12)?;
/// let previous = HandleKey::from_secret_with_id("2026-11", &secret_2026_11)?;
/// let keys = HandleKeys::new(current)
///     .with_previous(previous)?
///     .with_sealing(Sealing::Encrypted);
/// assert_eq!(keys.current_key_id(), "2026-12");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HandleKeys {
    current: HandleKey,
    previous: Vec<HandleKey>,
    sealing: Sealing,
}

impl fmt::Debug for HandleKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleKeys")
            .field("current", &self.current)
            .field("previous", &self.previous)
            .field("sealing", &self.sealing)
            .finish()
    }
}

impl From<HandleKey> for HandleKeys {
    fn from(key: HandleKey) -> Self {
        Self::new(key)
    }
}

impl HandleKeys {
    /// The lifetime of a handle from
    /// [`mint_handle`](crate::AuthContext::mint_handle): one hour.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
    /// The longest lifetime accepted when sealing: 366 days.
    pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
    /// The largest payload, in bytes (8 KiB). Keep larger state on the
    /// server and seal its id.
    pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024;
    /// The longest sealed string accepted when opening, in bytes: a
    /// largest payload sealed under a longest key id.
    pub const MAX_SEALED_BYTES: usize = seal::MAX_SEALED_BYTES;

    /// A ring of one key, sealing with [`Sealing::Encrypted`].
    pub fn new(current: HandleKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
            sealing: Sealing::default(),
        }
    }

    /// A ring of one fresh random key ([`HandleKey::generate`]): strings die
    /// with the process, and replicas do not share them.
    pub fn generate() -> Result<Self, HandleError> {
        HandleKey::generate().map(Self::new)
    }

    /// Adds a key that still opens but no longer seals (or does not seal
    /// yet). Fails with [`HandleError::DuplicateKeyId`] when the ring
    /// already holds a key with the same id.
    pub fn with_previous(mut self, key: HandleKey) -> Result<Self, HandleError> {
        if self.key(key.id()).is_some() {
            return Err(HandleError::DuplicateKeyId);
        }
        self.previous.push(key);
        Ok(self)
    }

    /// Sets the mode (default [`Sealing::Encrypted`]). Strings are opened in
    /// this mode only: changing it refuses the strings sealed before, as
    /// removing a key does.
    pub fn with_sealing(mut self, sealing: Sealing) -> Self {
        self.sealing = sealing;
        self
    }

    /// The mode strings are sealed and opened in.
    pub fn sealing(&self) -> Sealing {
        self.sealing
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// The ids of every key that opens, the current one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(HandleKey::id)
    }

    pub(crate) fn current(&self) -> &HandleKey {
        &self.current
    }

    pub(crate) fn key(&self, id: &str) -> Option<&HandleKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == id)
    }
}

/// Why a handle or request state could not be sealed or opened.
///
/// Deliberately coarse where it matters: a string sealed for someone else,
/// for another request or purpose, altered or forged is
/// [`Invalid`](Self::Invalid), so a caller presenting it learns nothing.
/// [`Expired`](Self::Expired) is only reported for a string that is
/// authentic for this caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// Malformed, altered, forged, sealed in another mode, or sealed for
    /// another principal, request or purpose.
    #[error("the handle is not valid for this caller")]
    Invalid,
    /// Authentic, but past its expiry.
    #[error("the handle has expired")]
    Expired,
    /// Sealed with a key id this ring does not hold (a retired key).
    #[error("the handle was sealed with a key that is no longer accepted")]
    UnknownKey,
    /// A payload over [`HandleKeys::MAX_PAYLOAD_BYTES`] (sealing), or a
    /// string over [`HandleKeys::MAX_SEALED_BYTES`] (opening).
    #[error("the handle or its payload is too large")]
    TooLarge,
    /// A lifetime of zero or over [`HandleKeys::MAX_TTL`].
    #[error("the handle lifetime must be positive and at most 366 days")]
    InvalidTtl,
    /// The key could not be derived from its secret (not expected: the
    /// cases a caller can cause have their own variants).
    #[error("the handle key is not acceptable")]
    InvalidKey,
    /// A secret under 32 bytes.
    #[error("the handle key's secret is too short: use at least 32 random bytes")]
    ShortSecret,
    /// A chosen key id that is not 1 to 64 characters of `A-Z a-z 0-9 - _`
    /// (it is written in every sealed string, between dots).
    #[error("the handle key id must be 1 to 64 characters of A-Z a-z 0-9 - _")]
    InvalidKeyId,
    /// A key whose id the ring already holds.
    #[error("the handle key ring already holds a key with this id")]
    DuplicateKeyId,
    /// A secret that is no random bytes: a short pattern repeated
    /// (`aaaa...`, `abab...`) or fewer than six distinct bytes. Anyone who
    /// guesses it seals handles the server accepts.
    #[error(
        "the handle key's secret is guessable (a short pattern repeated, or fewer than six distinct bytes): use 32 random bytes"
    )]
    WeakKey,
    /// The system random generator failed.
    #[error("random generation failed")]
    Random,
}
