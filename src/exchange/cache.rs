//! The cache of exchanged tokens: keys are SHA-256 hashes of who asked for
//! what (never a token), entries never outlive `expires_in` minus the
//! margin, one exchange in flight per key (the others wait for it), bounded
//! by `quick_cache`.
//!
//! [`ExchangeStore`] is the seam for a second level shared between
//! processes (a Redis store, for example): asked on a local miss, inside the
//! single flight, and given every token worth keeping.

use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;

use super::error::ExchangeError;
use super::token::ExchangedToken;
use crate::context::AuthContext;

/// A cached outcome. `until` is never later than `expires_in` minus the
/// margin.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) outcome: Result<ExchangedToken, ExchangeError>,
    pub(super) until: Instant,
    /// When the exchange finished: a call that waited for it takes its
    /// outcome even when that is not to be kept.
    pub(super) produced: Instant,
    /// Not to be kept (a failure, or a token too short-lived): handed to
    /// the calls that waited, then dropped.
    pub(super) transient: bool,
}

impl Entry {
    pub(super) fn fresh(&self, now: Instant) -> bool {
        self.until > now
    }
}

/// The cache of outcomes, bounded in entries (`max_entries`) and in
/// bytes (see [`crate::weighed`]: 40 MB at the default 10,000): each entry
/// weighs its token and scope (found from outside: answers of up to 64 KiB
/// could hold about 640 MB at the entry cap).
pub(super) type Cache = crate::weighed::DigestCache<Entry>;

impl crate::weighed::HeldBytes for Entry {
    fn held_bytes(&self) -> usize {
        self.outcome.as_ref().map_or(0, |t| {
            t.token.len() + t.scope.as_deref().map_or(0, str::len)
        })
    }
}

/// A cache for `max_entries` outcomes, bounded in bytes too.
pub(super) fn cache(max_entries: usize) -> Cache {
    crate::weighed::digest_cache(max_entries)
}

/// An exchanged token as a shared [`ExchangeStore`] keeps it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredToken {
    /// The access token. Never log it.
    pub token: String,
    /// Until when it may be reused (already less the margin).
    pub reuse_until: SystemTime,
    /// The granted scopes, when known.
    pub scope: Option<String>,
}

impl StoredToken {
    /// A stored token.
    pub fn new(token: String, reuse_until: SystemTime, scope: Option<String>) -> Self {
        Self {
            token,
            reuse_until,
            scope,
        }
    }
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("token", &"[redacted]")
            .field("reuse_until", &self.reuse_until)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A second-level store of exchanged tokens shared between processes (the
/// seam for Redis): asked after a local miss, inside the single flight, and
/// given each token that may be reused. Keys are SHA-256 digests of
/// (issuer, subject, the caller's client, tenant and scopes, its `act`,
/// `may_act`, `acr`, `amr` and `auth_time` claims, this server's client, the
/// grant, the audience, the requested scopes). A store should encrypt or
/// otherwise protect the tokens it holds, and forget them at
/// `reuse_until`; an entry past it is ignored anyway.
///
/// **The key is not secret.** It is a plain SHA-256 of fields that can be
/// guessed (an issuer, a user's subject, a client id, an audience): whoever
/// reads a store that writes it as it is, guesses them and hashes them can
/// tell whether that user holds a token for that audience, and until when.
/// A store that others may read should name its entries with a keyed MAC
/// of the key, as [`SealedExchangeStore`](crate::SealedExchangeStore) does.
pub trait ExchangeStore: Send + Sync + 'static {
    /// The token stored under `key`, if any.
    fn get<'a>(&'a self, key: &'a [u8; 32]) -> BoxFuture<'a, Option<StoredToken>>;
    /// Stores `token` under `key`.
    fn put<'a>(&'a self, key: &'a [u8; 32], token: StoredToken) -> BoxFuture<'a, ()>;
}

/// The caller's claims besides its principal, tenant and scopes that an
/// exchange's answer may depend on (see [`key`]): who acts for the subject
/// (`act`), who may (`may_act`), how the user signed in (`acr`, `amr`,
/// `auth_time`).
const CALLER_CLAIMS: [&str; 5] = ["act", "may_act", "acr", "amr", "auth_time"];

/// The cache key of an exchange: a SHA-256 over length-prefixed fields, so
/// that no two different tuples share a digest input.
pub(super) fn key(
    caller: &AuthContext,
    client_id: &str,
    grant: &str,
    audience: &str,
    scopes: &[String],
) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    field(b"mcp-oauth2 token exchange v4");
    let (issuer, subject, caller_client) = caller.principal();
    field(issuer.as_bytes());
    field(subject.as_bytes());
    field(caller_client.unwrap_or_default().as_bytes());
    // The tenant too: one issuer may serve several tenants (Auth0
    // organizations), and `alice` of one is never `alice` of another.
    field(caller.tenant().unwrap_or_default().as_bytes());
    let mut granted: Vec<&str> = caller.scopes().iter().map(|s| &**s).collect();
    granted.sort_unstable();
    granted.dedup();
    // Each scope is a field of its own, after their count: a scope may
    // hold a space (an `scp` array entry), so `["a b"]` joined would read
    // as `["a", "b"]`.
    field(&(granted.len() as u64).to_be_bytes());
    granted.iter().for_each(|s| field(s.as_bytes()));
    // Who acts for the subject (`act`, RFC 8693 section 4.1), who may act
    // for it (`may_act`, section 4.4), and how the user signed in (`acr`,
    // `amr`, `auth_time`, RFC 9470): the token endpoint may answer them
    // otherwise (refuse a delegation, or an actor `may_act` does not name,
    // ask for a stronger sign-in), so a token exchanged for alice's own
    // call is never handed to "mallory acting for alice", nor to a token
    // of hers whose `may_act` excludes this server, nor to a weaker sign-in
    // (found from outside). Each is its JSON text, or nothing when absent.
    for claim in CALLER_CLAIMS {
        match caller.claim(claim) {
            Some(value) => field(value.to_string().as_bytes()),
            None => field(b""),
        }
    }
    field(client_id.as_bytes());
    field(grant.as_bytes());
    field(audience.as_bytes());
    field(&(scopes.len() as u64).to_be_bytes());
    scopes.iter().for_each(|s| field(s.as_bytes()));
    crate::verify::token_cache::digest_array(&ctx.finish())
}

/// The longest an exchanged token is reused, whatever its `expires_in`: a
/// day. A token endpoint's number is its text (`expires_in` of 10^18 s was
/// added to the clock when the token was shared in a store, and the call
/// panicked: found from outside), and a day is past any lifetime an
/// exchange gives.
pub(super) const MAX_REUSE: Duration = Duration::from_secs(86_400);

/// How long a token answered with `expires_in` may be reused: until
/// `expires_in - margin`, at most [`MAX_REUSE`]; `None` (not kept) without
/// `expires_in` or when that leaves nothing.
pub(super) fn reuse_for(expires_in: Option<u64>, margin: Duration) -> Option<Duration> {
    let ttl = Duration::from_secs(expires_in?).checked_sub(margin)?;
    (!ttl.is_zero()).then_some(ttl.min(MAX_REUSE))
}
