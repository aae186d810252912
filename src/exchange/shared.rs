//! [`SealedExchangeStore`]: the second level of the exchange cache in the
//! replicas' [`SharedStore`] (Redis), every token sealed with AES-256-GCM.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::cache::{ExchangeStore, StoredToken};
use crate::handle::{HandleKeys, Purpose, Sealing, open, seal};
use crate::store::{SharedStore, hashed_key};

/// The namespace of exchanged tokens in the shared store.
const NAMESPACE: &str = "mcp_oauth2:exchange:";

/// The sealed payload: the token, its scopes, until when it may be reused
/// (milliseconds since the Unix epoch).
#[derive(Serialize, Deserialize)]
struct Payload {
    t: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    u: u64,
}

/// Exchanged tokens shared by the replicas of one server through their
/// [`SharedStore`] (the Redis store): a token one replica obtained is reused
/// by the others until it is due for renewal, so a user calling through a
/// load balancer costs one exchange, not one per replica.
///
/// **What is stored.** Under `mcp_oauth2:exchange:<hex of an HMAC-SHA256
/// of the cache key>` (the cache key is a SHA-256 digest of issuer, subject,
/// clients, tenant, scopes, the caller's `act`, `may_act`, `acr`, `amr` and
/// `auth_time`, grant and audience; the HMAC's key is derived from the
/// secret for this purpose alone, neither of the sealing keys), a string
/// sealed with AES-256-GCM under `keys` (the [`HandleKeys`] format, always
/// [`Sealing::Encrypted`]) whose authenticated data include the cache key
/// and the reuse deadline. Whoever reads the store sees neither the token
/// nor whom it is for: without the secret, a guessed user's fields cannot
/// be turned into the name of their entry (a plain SHA-256 of them could:
/// found from outside, it told whether a guessed user held a token and
/// until when). Whoever writes to it cannot move a sealed token to another
/// key (another user) or extend its life: such an entry fails to open and
/// is ignored. Entries expire in the store when they are due. What the
/// store does see: how many entries there are, their sizes and expiries.
///
/// **Keys.** Every replica must hold the same secret
/// ([`HandleKey::from_secret`](crate::HandleKey::from_secret), 32 bytes or
/// more from a secret store). An entry sealed with a key a replica does not
/// hold is ignored, and entries are named under the ring's current key:
/// rotating the secret costs one exchange per user and audience, nothing
/// more. No ring is needed; a ring's previous keys find nothing here (an
/// entry named under the old secret is not looked up).
///
/// **Failures.** The shared level is only a cache in front of the token
/// endpoint, which stays the authority: a store that is down or slow, an
/// entry that does not open, all mean a new exchange (logged at `warn`,
/// without the token); never a refusal, never a token for someone else.
#[derive(Clone)]
pub struct SealedExchangeStore {
    store: Arc<dyn SharedStore>,
    keys: HandleKeys,
}

impl std::fmt::Debug for SealedExchangeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedExchangeStore")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .finish()
    }
}

impl SealedExchangeStore {
    /// Exchanged tokens in `store`, sealed with `keys` (in
    /// [`Sealing::Encrypted`] mode whatever the ring says).
    pub fn new(store: Arc<dyn SharedStore>, keys: impl Into<HandleKeys>) -> Self {
        Self {
            store,
            keys: keys.into().with_sealing(Sealing::Encrypted),
        }
    }

    /// The name in the store of the entry for cache key `key`: the
    /// namespace, then the hex of an HMAC-SHA256 of the key under the
    /// current key's exchange-store MAC key. Replicas holding the same
    /// secret agree on it; nobody without the secret can link it to a user.
    pub(crate) fn store_key(&self, key: &[u8; 32]) -> String {
        let tag = hmac::sign(self.keys.current().exchange_store_mac(), key);
        hashed_key(NAMESPACE, tag.as_ref())
    }
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ExchangeStore for SealedExchangeStore {
    fn get<'a>(&'a self, key: &'a [u8; 32]) -> BoxFuture<'a, Option<StoredToken>> {
        Box::pin(async move {
            let sealed = match self.store.get(&self.store_key(key)).await {
                Ok(Some(sealed)) => sealed,
                Ok(None) => return None,
                Err(e) => {
                    crate::store::log_store_error!(&e, error = %e, "shared exchange cache unavailable: exchanging again");
                    return None;
                }
            };
            let opened = std::str::from_utf8(&sealed)
                .ok()
                .and_then(|s| {
                    open(
                        &self.keys,
                        ("", "", None, None),
                        Purpose::Exchanged { key },
                        s,
                    )
                    .ok()
                })
                .and_then(|payload| serde_json::from_str::<Payload>(&payload).ok());
            let Some(payload) = opened else {
                tracing::warn!(
                    "a shared exchanged token did not open (another key, altered, expired): exchanging again"
                );
                return None;
            };
            Some(StoredToken::new(
                payload.t,
                UNIX_EPOCH + Duration::from_millis(payload.u),
                payload.s,
            ))
        })
    }

    fn put<'a>(&'a self, key: &'a [u8; 32], token: StoredToken) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(ttl) = token.reuse_until.duration_since(SystemTime::now()) else {
                return;
            };
            let payload = Payload {
                t: token.token,
                s: token.scope,
                u: unix_millis(token.reuse_until),
            };
            let sealed = serde_json::to_string(&payload).ok().and_then(|p| {
                seal(
                    &self.keys,
                    ("", "", None, None),
                    Purpose::Exchanged { key },
                    &p,
                    ttl,
                )
                .ok()
            });
            let Some(sealed) = sealed else {
                // A token over the sealed size cap (8 KiB), or a lifetime
                // over a year: kept in this replica only.
                tracing::debug!("an exchanged token was not shared (too large or too long-lived)");
                return;
            };
            if let Err(e) = self
                .store
                .put(&self.store_key(key), sealed.as_bytes(), ttl)
                .await
            {
                crate::store::log_store_error!(&e, error = %e, "shared exchange cache unavailable: token kept in this replica only");
            }
        })
    }
}
