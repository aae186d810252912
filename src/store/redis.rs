//! [`RedisStore`] (feature `redis`): a [`SharedStore`] that several
//! replicas share, on the `redis` crate's multiplexed `ConnectionManager`
//! (one connection per store, commands pipelined over it, reconnected in
//! the background after a failure).
//!
//! Each operation is one round trip, bounded by the store's timeout
//! ([`RedisStore::DEFAULT_TIMEOUT`] unless set): past it the operation
//! fails with [`StoreError::Timeout`] (the command may still run on the
//! server), and its connection is dropped: the next operation connects
//! again, so a connection that went silent without closing is not used
//! until the kernel gives up on it.
//!
//! # A Redis that does not answer is not waited for on every request
//!
//! An outage (no answer within the timeout, a connection lost or refused)
//! is followed by one probe (the next operation, on a new connection; the
//! operations meanwhile fail at once): a probe that is answered closes the
//! breaker, so a single connection gone silent costs one timeout. A probe
//! that fails too opens the breaker: every operation then fails at once
//! ([`StoreError::Unavailable`], "redis: not answering; ...") for 1 s,
//! then one operation probes again, the cooldown doubling to 5 s while
//! Redis stays away. So a frozen Redis (a stopped process, a hung host, a
//! partition) costs each store user one timeout every few seconds, not one
//! per request, and a Redis that is down (connections refused) no longer
//! costs each operation the client's reconnection attempts (about 60 ms):
//! throttling fails open and the users that fail closed answer 503 at once.
//! A restarted Redis is used again within the cooldown (at most 5 s). An
//! error reply (a refused password, `OOM`) is an answer, not an outage.
//! Reads and writes have a breaker each: a Redis can answer one and not
//! the other (`CLIENT PAUSE .. WRITE`, what a failover does), and a read's
//! answer must not close the breaker that writes time out behind.
//!
//! # Writes
//!
//! A counter `hit` is one Lua script (atomic, like `MULTI`):
//! `SET key 0 PX window NX` (the window starts at the first hit, and the
//! key expires with it), `INCR`, `PTTL`; so concurrent hits on several
//! replicas are all counted in one window. Every key gets the store's
//! prefix (empty unless set), so that several deployments can share one
//! Redis.
//!
//! # A write is applied once, even when its reply was lost
//!
//! An operation whose connection was lost is sent once more on the new
//! connection (within the same deadline). The command may have run before
//! the connection dropped, only its reply lost; run again, `put_if_absent`
//! would find its own write and answer "already present" (a fresh DPoP
//! proof refused as `dpop_replay`, a new session closed), and `hit` would
//! count one failure twice. So both writes are scripts that also record a
//! per-call marker: a key `mcp_oauth2:op:<128 random bits in hex>`,
//! living twice the operation timeout plus one second. Its retry finds the
//! marker and answers what the first application did (stored; the count
//! reached) without writing again; another call, with another marker, is
//! still refused or counted. The other operations are idempotent as they
//! are (`GET`, `PTTL`, `SET` of a value, `DEL`). Redis must allow `EVAL`
//! (Lua scripting, Redis 2.6 and later; not disabled by an ACL). The
//! scripts touch two keys (the key and the marker), which a single Redis
//! (what this store connects to) allows; a Redis Cluster would need both in
//! one slot.
//!
//! Redis must also keep what it is given: `maxmemory-policy noeviction`
//! (Redis' default). Under an eviction policy a full Redis forgets live
//! keys (used DPoP proofs, session owners), which a client flooding fresh
//! proofs can force; under `noeviction` it refuses writes, an error here
//! (`redis: extension error (OOM)`) on which the callers fail closed.
//!
//! The connection is made at the first operation (building a store needs
//! no Redis, and no runtime): a Redis that is down at start is an error of
//! each operation until it is up, not a failure to start.

use std::time::Duration;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::COOLING_DOWN;
use super::{SharedStore, StoreError, StoreFuture, WindowCount, millis_at_least_one};
use crate::breaker::{Breaker, Settle};

/// A [`SharedStore`] on Redis (feature `redis`). Cheap to share behind an `Arc`.
///
/// Each operation is bounded by [`timeout`](Self::timeout). A Redis that
/// stops answering, or is down, is not asked on every operation: an outage
/// (a timeout, a connection lost or refused) is followed by one probe on a
/// new connection, and when that fails too, every operation fails at once
/// ([`StoreError::Unavailable`], "redis: not answering; ...") for 1 s, then
/// one probes again, the cooldown doubling to 5 s while Redis stays away;
/// reads and writes each have their own breaker. An error reply is an
/// answer and never starts a cooldown.
///
/// ```no_run
/// # fn demo() -> Result<(), mcp_oauth2::store::StoreError> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use mcp_oauth2::store::RedisStore;
///
/// let store = RedisStore::new("redis://127.0.0.1:6379/0")?
///     .timeout(Duration::from_millis(200))
///     .prefix("my-server:");
/// let config = mcp_oauth2::AuthConfig::builder()
///     .issuer("https://auth.example.com")
///     .resource("https://mcp.example.com/mcp")
///     .shared_store(Arc::new(store));
/// # let _ = config; Ok(()) }
/// ```
pub struct RedisStore {
    client: redis::Client,
    /// The connection in use and its number; `None` before the first
    /// operation and after a timeout (see [`RedisStore::connection`]).
    connection: Mutex<Option<(u64, ConnectionManager)>>,
    /// Numbers the connections made, so that a timed-out operation drops
    /// its own connection only, never a newer one.
    made: AtomicU64,
    /// When a connection was last replaced after an error (see
    /// [`RedisStore::replace_after_error`]).
    replaced_at: Mutex<Option<std::time::Instant>>,
    /// Open when Redis does not answer reads, or writes (see the module's
    /// doc).
    reads: Breaker,
    writes: Breaker,
    timeout: Duration,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The address only: never the password of the URL.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStore")
            .field("addr", &info.addr().to_string())
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The default time allowed for one operation (one round trip): 250 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

    /// A store for the Redis at `url` (`redis://[:password@]host[:port][/db]`,
    /// or `redis+unix:///path`; TLS `rediss://` is not built in). Checks the
    /// URL only: the connection is made at the first operation.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        // Said precisely, never repeating the URL (it may hold a password;
        // found from outside: every mistake read "invalid client config").
        let invalid = |why: &str| StoreError::Unavailable(format!("invalid Redis URL: {why}"));
        match url
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
        {
            Some(scheme) if matches!(scheme.as_str(), "redis" | "unix" | "redis+unix") => {}
            Some(scheme) if scheme == "rediss" => {
                return Err(invalid(
                    "rediss:// (TLS) is not built in; use redis:// and keep Redis on a private network",
                ));
            }
            _ => return Err(invalid("it must start with redis://")),
        }
        let client = redis::Client::open(url).map_err(|e| {
            invalid(&format!(
                "not redis://[user:password@]host[:port][/database] ({})",
                e.category()
            ))
        })?;
        if client.get_connection_info().redis_settings().db() < 0 {
            return Err(invalid("the database number must be 0 or more"));
        }
        Ok(Self {
            client,
            connection: Mutex::new(None),
            made: AtomicU64::new(0),
            replaced_at: Mutex::new(None),
            reads: Breaker::probing_at_once("redis_store_reads", "store_unavailable"),
            writes: Breaker::probing_at_once("redis_store_writes", "store_unavailable"),
            timeout: Self::DEFAULT_TIMEOUT,
            prefix: String::new(),
        })
    }

    /// The time allowed for one operation (default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)); at least one millisecond.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// A prefix put before every key (default: none), e.g. `"prod-eu:"`
    /// when several deployments share one Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A fresh marker key for one write (`mcp_oauth2:op:` and 128 random
    /// bits): the retry of that write recognises its own first application.
    fn marker(&self) -> Result<String, StoreError> {
        let mut random = [0u8; 16];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|_| StoreError::Unavailable("random generation failed".into()))?;
        Ok(self.key(&super::hashed_key("mcp_oauth2:op:", &random)))
    }

    /// How long a write's marker lives: past the operation's deadline (the
    /// retry is sent before it), with a margin for a first attempt that
    /// reaches Redis after its retry.
    fn marker_ms(&self) -> u64 {
        millis_at_least_one(self.timeout.saturating_mul(2) + Duration::from_secs(1))
    }

    /// The connection in use (made, lazily, when there is none) and its
    /// number.
    fn connection(&self) -> Result<(u64, ConnectionManager), StoreError> {
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((number, manager)) = slot.as_ref() {
            return Ok((*number, manager.clone()));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(5))
            .set_max_delay(Duration::from_millis(20));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(unavailable)?;
        let number = self.made.fetch_add(1, Ordering::Relaxed);
        *slot = Some((number, manager.clone()));
        Ok((number, manager))
    }

    /// Drops connection `number` if it is still the one in use: the next
    /// operation makes a new one.
    fn drop_connection(&self, number: u64) {
        let mut slot = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|(n, _)| *n == number) {
            *slot = None;
        }
    }

    /// Drops connection `number` after an operation failed, at most once
    /// per [`REPLACE_INTERVAL`]. The `redis` crate's `ConnectionManager`
    /// connects again only after an I/O error: a failed handshake (a
    /// refused login, `WRONGPASS`, `NOAUTH`, an `ERR` to `AUTH`, an unknown
    /// ACL user; an answer that is not Redis's protocol, something else on
    /// the port), on its first connection or on one it made after Redis
    /// restarted, was answered to every operation until the process
    /// restarted, even once the password was right or Redis was on the port
    /// (found from outside: a password rotated in the usual order, replicas
    /// first, left them 503 for good and throttling off). Which error came
    /// from the handshake cannot be told from the error alone, so any
    /// failure replaces the connection, once a second: a wrong password
    /// costs Redis one login a second, not one per request, and an error
    /// reply on a sound connection (`OOM`, `NOPERM`) one reconnection a
    /// second.
    fn replace_after_error(&self, number: u64) {
        let now = std::time::Instant::now();
        {
            let mut last = self.replaced_at.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| now.saturating_duration_since(t) < REPLACE_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        self.drop_connection(number);
    }

    /// Runs `query` (a command or a pipeline) within the timeout.
    ///
    /// An operation that times out drops its connection: a connection
    /// that went silent without closing (a NAT or load balancer that lost
    /// its state, a partition: no FIN, no RST) is never reported broken by
    /// the socket until the kernel gives up on it, minutes or hours later,
    /// and every operation sent on it would time out until then. The next
    /// operation connects again (a Redis that is merely slow costs one new
    /// connection per timeout). Timeouts open the store's breaker (see the
    /// module's doc): while it is open, the operation fails at once.
    async fn run<T: redis::FromRedisValue>(
        &self,
        kind: Kind,
        query: impl Into<Query>,
    ) -> Result<T, StoreError> {
        let breaker = match kind {
            Kind::Read => &self.reads,
            Kind::Write => &self.writes,
        };
        let Some(pass) = breaker.admit() else {
            return Err(StoreError::Unavailable(COOLING_DOWN.to_owned()));
        };
        let query = query.into();
        let (number, mut manager) = self.connection()?;
        let work = async {
            match query.send(&mut manager).await {
                // The connection was lost (Redis restarted, a network
                // blip): the failed answer starts a reconnection; one more
                // try within the same deadline, so that the first operation
                // after an outage is not refused.
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    query.send(&mut manager).await
                }
                result => result,
            }
        };
        let (result, outage) = match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(value)) => (Ok(value), false),
            // No answer from Redis (down, unreachable, the connection
            // lost again): an outage. An error reply (a refused password,
            // `OOM`, a script error) is an answer.
            Ok(Err(e)) => {
                let outage = e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout();
                self.replace_after_error(number);
                (Err(unavailable(e)), outage)
            }
            Err(_) => (Err(StoreError::Timeout), true),
        };
        if matches!(result, Err(StoreError::Timeout)) {
            self.drop_connection(number);
        }
        pass.settle(if outage {
            Settle::Outage
        } else {
            Settle::Answered
        });
        result
    }
}

/// How often a connection is replaced after a failed operation
/// ([`RedisStore::replace_after_error`]).
const REPLACE_INTERVAL: Duration = Duration::from_secs(1);

/// Which breaker an operation passes: reads and writes apart, since a Redis
/// can answer one and not the other (`CLIENT PAUSE WRITE`, what a failover
/// does): a read answered must not close the breaker that writes time out
/// behind.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `GET`, `GET` and `PTTL`.
    Read,
    /// The scripts, `SET`, `DEL`.
    Write,
}

/// `put_if_absent` as one atomic script: `SET NX PX` of the key and, when
/// it was stored, of this call's marker (`KEYS[2]`, short-lived). A key
/// already present counts as stored when the marker exists: this call's
/// own first attempt stored it and only the reply was lost.
const SET_ONCE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return 1
end
return redis.call('EXISTS', KEYS[2])
";

/// `hit` as one atomic script: when this call's marker (`KEYS[2]`) holds a
/// count, the hit was already counted (its reply was lost) and that count
/// is answered; otherwise `SET 0 PX window NX` (the window starts at the
/// first hit), `INCR`, and the count kept under the marker. A key without
/// an expiry, with one longer than the window, or holding a string that is
/// no count (negative, not a number) was not written by a window: it is
/// replaced, so that a counter planted in Redis can neither hold an
/// address throttled for good nor let failures through uncounted (found
/// from outside). A value of another type is left alone (the script then
/// fails: throttling fails open, as for any store error).
const HIT_ONCE: &str = r"
local done = redis.call('GET', KEYS[2])
if done then
  return {tonumber(done), redis.call('PTTL', KEYS[1])}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 or ttl > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
elseif ttl > 0 and redis.call('TYPE', KEYS[1]).ok == 'string' then
  local n = tonumber(redis.call('GET', KEYS[1]))
  if not n or n < 0 then
    redis.call('DEL', KEYS[1])
  end
end
redis.call('SET', KEYS[1], 0, 'PX', ARGV[1], 'NX')
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'PX', ARGV[2])
return {n, redis.call('PTTL', KEYS[1])}
";

/// `refresh_if` as one atomic script: `PEXPIRE` the key only while it holds
/// this value.
const REFRESH_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// What one operation sends: a command or a pipeline.
#[derive(Debug)]
enum Query {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
}

impl Query {
    async fn send<T: redis::FromRedisValue>(
        &self,
        connection: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        match self {
            Self::Cmd(cmd) => cmd.query_async(connection).await,
            Self::Pipe(pipe) => pipe.query_async(connection).await,
        }
    }
}

impl From<&mut redis::Cmd> for Query {
    fn from(cmd: &mut redis::Cmd) -> Self {
        Self::Cmd(cmd.clone())
    }
}

impl From<&mut redis::Pipeline> for Query {
    fn from(pipe: &mut redis::Pipeline) -> Self {
        Self::Pipe(pipe.clone())
    }
}

/// A Redis error as a store error: its kind and category, never a value.
/// An error code the client has no category for (`OOM` from a full Redis
/// under `noeviction`, ...) is named after the category: the server's code
/// word, never its message.
///
/// A category the client leaves empty (redis 1.8 has none for `NOPERM`, an
/// ACL that forbids `EVAL` or the key prefix) is named by the code alone
/// (found from outside: such refusals were logged `redis: `, no cause).
fn unavailable(e: redis::RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::Timeout;
    }
    let category = e.category();
    let code = e.code().filter(|c| {
        (1..=32).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    });
    match code {
        // A refused login, however the client classed it: RESP3's
        // `WRONGPASS` and a password-protected Redis's `NOAUTH` came as
        // extension errors, logged apart from the documented cause (found
        // from outside).
        Some(code @ ("WRONGPASS" | "NOAUTH")) => {
            StoreError::Unavailable(format!("redis: authentication failed ({code})"))
        }
        // A database number the server does not have (`/16` in the URL of
        // a Redis of 16 databases): a setting to fix, named as such (found
        // from outside: logged `redis: response error`).
        Some("ERR")
            if e.detail()
                .is_some_and(|d| d.contains("DB index is out of range")) =>
        {
            StoreError::Unavailable(
                "redis: the URL's database number is out of range for this server (ERR)".to_owned(),
            )
        }
        Some(code) if category.is_empty() => {
            StoreError::Unavailable(format!("redis: error reply ({code})"))
        }
        Some(code) if e.kind() == redis::ErrorKind::Extension => {
            StoreError::Unavailable(format!("redis: {category} ({code})"))
        }
        _ if category.is_empty() => StoreError::Unavailable("redis: unknown error".to_owned()),
        _ => StoreError::Unavailable(format!("redis: {category}")),
    }
}

impl SharedStore for RedisStore {
    fn hit(&self, key: &str, window: Duration) -> StoreFuture<'_, WindowCount> {
        let key = self.key(key);
        let ms = millis_at_least_one(window);
        Box::pin(async move {
            let marker = self.marker()?;
            let (count, pttl): (u64, i64) = self
                .run(
                    Kind::Write,
                    redis::cmd("EVAL")
                        .arg(HIT_ONCE)
                        .arg(2)
                        .arg(&key)
                        .arg(&marker)
                        .arg(ms)
                        .arg(self.marker_ms()),
                )
                .await?;
            Ok(WindowCount::new(count, pttl_duration(pttl)))
        })
    }

    fn peek(&self, key: &str) -> StoreFuture<'_, Option<WindowCount>> {
        let key = self.key(key);
        Box::pin(async move {
            let (count, pttl): (Option<Vec<u8>>, i64) = self
                .run(
                    Kind::Read,
                    redis::pipe()
                        .atomic()
                        .cmd("GET")
                        .arg(&key)
                        .cmd("PTTL")
                        .arg(&key),
                )
                .await?;
            // Not a counter (absent, or a value that is no count), or one
            // without an expiry (no window writes one: planted, found from
            // outside to hold an address throttled for good): no window.
            if pttl == -1 {
                return Ok(None);
            }
            let count = count
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<u64>().ok());
            Ok(count.map(|n| WindowCount::new(n, pttl_duration(pttl))))
        })
    }

    fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        let key = self.key(key);
        let value = value.to_vec();
        let ms = millis_at_least_one(ttl);
        Box::pin(async move {
            let marker = self.marker()?;
            let stored: i64 = self
                .run(
                    Kind::Write,
                    redis::cmd("EVAL")
                        .arg(SET_ONCE)
                        .arg(2)
                        .arg(&key)
                        .arg(&marker)
                        .arg(&value)
                        .arg(ms)
                        .arg(self.marker_ms()),
                )
                .await?;
            Ok(stored == 1)
        })
    }

    fn get(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        let key = self.key(key);
        Box::pin(async move { self.run(Kind::Read, redis::cmd("GET").arg(&key)).await })
    }

    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, ()> {
        let key = self.key(key);
        let value = value.to_vec();
        let ms = millis_at_least_one(ttl);
        Box::pin(async move {
            self.run(
                Kind::Write,
                redis::cmd("SET").arg(&key).arg(&value).arg("PX").arg(ms),
            )
            .await
        })
    }

    fn delete(&self, key: &str) -> StoreFuture<'_, ()> {
        let key = self.key(key);
        Box::pin(async move {
            let _: i64 = self.run(Kind::Write, redis::cmd("DEL").arg(&key)).await?;
            Ok(())
        })
    }

    fn refresh_if(&self, key: &str, value: &[u8], ttl: Duration) -> StoreFuture<'_, bool> {
        let key = self.key(key);
        let value = value.to_vec();
        let ms = millis_at_least_one(ttl);
        Box::pin(async move {
            // Idempotent: a retry after a lost reply sets the same expiry.
            let done: i64 = self
                .run(
                    Kind::Write,
                    redis::cmd("EVAL")
                        .arg(REFRESH_IF)
                        .arg(1)
                        .arg(&key)
                        .arg(&value)
                        .arg(ms),
                )
                .await?;
            Ok(done == 1)
        })
    }
}

/// `PTTL`'s answer as the time left: -1 (no expiry, never set by this
/// crate) and -2 (gone meanwhile) as zero.
fn pttl_duration(pttl: i64) -> Duration {
    Duration::from_millis(u64::try_from(pttl).unwrap_or(0))
}
