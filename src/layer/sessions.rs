//! Legacy sessions (`Mcp-Session-Id`, protocol 2025-11-25 and earlier) and
//! the principal that created each: ownership, caps, idle expiry.
//!
//! Why not a caching crate (`quick_cache`, `moka`): those evict under
//! pressure, and the rule here is the opposite: a full table refuses a new
//! session (429) and never drops a live binding, which would lock its owner
//! out. The table is touched only by requests that carry or create a
//! session (never by stateless 2026-07-28 calls), under one short lock.
//!
//! With a shared store ([`AuthConfigBuilder::shared_store`](crate::AuthConfigBuilder::shared_store)),
//! the owner of each session is also kept there (key
//! `mcp_oauth2:session:<SHA-256 of the id>`, value the owner's digest,
//! expiring after the idle timeout, refreshed by each use), and the store
//! decides ownership: a session created on one replica is bound on all.
//! The local table still enforces this replica's caps. A store that does
//! not answer refuses the request (503 `store_unavailable`, fail closed):
//! an owner that cannot be checked is not assumed. A new session that
//! cannot be recorded is closed and refused the same way.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};

use super::Shared;
use super::http_rules::{Refused, SESSION_HEADER};
use crate::config::SessionLimits;
use crate::context::AuthContext;
use crate::store::SharedStore;

/// The namespace of session owners in a shared store.
const SESSION_NS: &str = "mcp_oauth2:session:";

/// A session's key in the shared store: a hash of its id.
fn store_key(id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    crate::store::hashed_key(SESSION_NS, digest.as_ref())
}

/// Set on a request whose session the shared store found owned by the caller.
#[derive(Debug, Clone, Copy)]
pub(super) struct OwnedInStore;

/// Set on a request whose session the shared store found owned by another
/// principal: refused as unknown (404), logged as `session_not_owned`
/// rather than `session_unknown`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ForeignInStore;

/// A SHA-256 digest naming who a session belongs to ([`principal_key`]:
/// issuer, subject, client id, tenant) or the user it is counted against
/// ([`user_key`]: the same without the client).
pub(crate) type Owner = [u8; 32];

/// Closes a session in the MCP service (set by `McpServer`, which owns
/// rmcp's session manager), so that a refused or expired session does not
/// keep its worker alive.
pub(crate) type Closer = Arc<dyn Fn(String) + Send + Sync>;

/// Why a new session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The user (issuer, tenant, subject: whatever the client) holds
    /// `max_sessions_per_principal` sessions already.
    PrincipalCap,
    /// All principals together hold `max_sessions` sessions.
    TotalCap,
}

impl Refusal {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::PrincipalCap => "too_many_sessions_for_principal",
            Self::TotalCap => "too_many_sessions",
        }
    }
}

struct Entry {
    owner: Owner,
    /// The user it counts against (see [`user_key`]).
    user: Owner,
    last_used: Instant,
    /// JSON-RPC ids of the session's requests in flight (see
    /// [`Sessions::claim_ids`]).
    in_flight: HashSet<Box<str>>,
    /// Ids in flight whose call its client cancelled: kept claimed for the
    /// session's life (see [`Sessions::retire_ids`]).
    retired: HashSet<Box<str>>,
    /// Its client may have declared the tasks extension (SEP-2663) in its
    /// `initialize`: then rmcp lets a handler answer any of the session's
    /// calls with a task, and their answers are read for the tasks they
    /// create (`tasks.rs`). Without it, only a call that declares them in
    /// its own `_meta` may get one.
    tasks: bool,
    /// Its event streams open now (legacy GETs, see
    /// [`Sessions::open_stream`]).
    streams: usize,
    /// Its binding in the shared store was kept alive while it was busy
    /// (see [`Sessions::sweep_idle`]): restarted once more when that work
    /// ends, as the local idle clock is.
    kept_in_store: bool,
}

impl Entry {
    /// Whether the session has been unused for `idle` at `now`: no request
    /// for that long, and none still running (a call in flight that its
    /// client did not cancel). Found from outside: a tool call running
    /// past the idle timeout lost its answer (an empty stream) and the
    /// session was gone for the next call; the clock now also restarts
    /// when a call ends ([`Sessions::release_ids`]). An open event stream
    /// (a legacy GET) is a request still running too: found from outside,
    /// a client that only listened lost its session (and its
    /// subscriptions) at the timeout.
    fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        !self.busy() && now.duration_since(self.last_used) >= idle
    }

    /// An event stream open, or a call in flight that its client did not
    /// cancel.
    fn busy(&self) -> bool {
        self.streams > 0 || self.in_flight.len() > self.retired.len()
    }

    /// Work of the session (a call, an event stream) ended now: its idle
    /// clock restarts. `true` when its binding in the shared store, kept
    /// alive while it was busy, must restart too (no work is left).
    fn work_ended(&mut self) -> bool {
        self.last_used = Instant::now();
        let restart = self.kept_in_store && !self.busy();
        if restart {
            self.kept_in_store = false;
        }
        restart
    }
}

/// How many request ids one session may hold in flight (or keep reserved:
/// an id whose response was never read to its end stays reserved until its
/// handler answers; the id of a call cancelled while in flight, for the
/// session's life).
pub(crate) const MAX_IDS_IN_FLIGHT: usize = 1024;

/// Why a session's request ids were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdClaim {
    /// An id is in flight already (MCP: an id is never reused in a session).
    InUse,
    /// Two requests of the body (a batch) carry the same id.
    Repeated,
    /// The session holds [`MAX_IDS_IN_FLIGHT`] ids already.
    TooMany,
}

#[derive(Default)]
struct Table {
    sessions: HashMap<Box<str>, Entry>,
    /// Sessions per user: the per-principal cap counts users, not clients,
    /// so that one user cannot multiply it by registering clients.
    per_user: HashMap<Owner, usize>,
    /// When the whole table was last swept for idle sessions.
    last_sweep: Option<Instant>,
}

/// The session table of one layer.
pub(crate) struct Sessions {
    limits: SessionLimits,
    table: Mutex<Table>,
    closer: Mutex<Option<Closer>>,
    /// Whether the task running [`sweep_idle`](Self::sweep_idle) is
    /// started (at the first session bound, where a runtime is).
    sweeping: std::sync::atomic::AtomicBool,
    /// The shared store of session owners, if any: the bindings of busy
    /// sessions are kept alive there (see [`sweep_idle`](Self::sweep_idle)).
    store: Option<Arc<dyn SharedStore>>,
}

impl Sessions {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            table: Mutex::new(Table::default()),
            closer: Mutex::new(None),
            sweeping: std::sync::atomic::AtomicBool::new(false),
            store: None,
        }
    }

    /// The same table, keeping busy sessions' bindings alive in `store`
    /// (the shared store of session owners, when there is one).
    pub(crate) fn with_store(mut self, store: Option<Arc<dyn SharedStore>>) -> Self {
        self.store = store;
        self
    }

    /// Restarts the bindings of `sessions` (id and owner) in the shared
    /// store, in a task, where they still hold their owner
    /// ([`SharedStore::refresh_if`]: a binding removed meanwhile, by a
    /// DELETE on another replica, stays removed).
    fn keep_in_store(&self, sessions: Vec<(Box<str>, Owner)>) {
        if sessions.is_empty() {
            return;
        }
        let Some(store) = self.store.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let idle = self.limits.idle_timeout;
        runtime.spawn(async move {
            for (id, owner) in sessions {
                if let Err(e) = store.refresh_if(&store_key(&id), &owner, idle).await {
                    crate::store::log_store_error!(
                        &e,
                        error = %e,
                        "could not keep a busy session's binding in the shared store; it expires with the idle timeout unless used"
                    );
                }
            }
        });
    }

    pub(crate) fn limits(&self) -> SessionLimits {
        self.limits
    }

    pub(crate) fn set_closer(&self, closer: Closer) {
        *self.closer.lock().unwrap_or_else(|e| e.into_inner()) = Some(closer);
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every
        // mutation is a single map operation), so a poisoned lock is usable.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes session `id` in the service (after it was unbound).
    pub(crate) fn close_one(&self, id: &str) {
        self.close(vec![id.into()]);
    }

    fn close(&self, ids: Vec<Box<str>>) {
        if ids.is_empty() {
            return;
        }
        let closer = self
            .closer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(closer) = closer {
            for id in ids {
                closer(id.into());
            }
        }
    }

    /// Whether `user` may open one more session now (a check before the
    /// request reaches the service; [`bind`](Self::bind) decides for good).
    pub(crate) fn may_open(&self, user: &Owner) -> Result<(), Refusal> {
        let (verdict, expired) = {
            let mut table = self.lock();
            let expired = self.sweep_if_full(&mut table, user);
            (self.check(&table, user), expired)
        };
        self.close(expired);
        verdict
    }

    fn check(&self, table: &Table, user: &Owner) -> Result<(), Refusal> {
        if table.per_user.get(user).copied().unwrap_or(0) >= self.limits.per_principal {
            return Err(Refusal::PrincipalCap);
        }
        if table.sessions.len() >= self.limits.total {
            return Err(Refusal::TotalCap);
        }
        Ok(())
    }

    /// Frees idle sessions when a cap is reached: the user's own first,
    /// the whole table at most once a second.
    fn sweep_if_full(&self, table: &mut Table, user: &Owner) -> Vec<Box<str>> {
        let now = Instant::now();
        let user_full = table.per_user.get(user).copied().unwrap_or(0) >= self.limits.per_principal;
        let total_full = table.sessions.len() >= self.limits.total;
        if !user_full && !total_full {
            return Vec::new();
        }
        let sweep_all = total_full
            && table
                .last_sweep
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if sweep_all {
            table.last_sweep = Some(now);
        }
        take_idle(table, now, self.limits.idle_timeout, |entry| {
            sweep_all || entry.user == *user
        })
    }

    /// Binds a session the service just created to `owner`, counted
    /// against `user`, within the caps; `tasks`: whether the `initialize`
    /// that opened it may have declared the tasks extension (see
    /// [`use_session`](Self::use_session)). `Err`: the session must not be
    /// used (the caller closes it and answers 429).
    pub(crate) fn bind(
        self: &Arc<Self>,
        id: &str,
        owner: Owner,
        user: Owner,
        tasks: bool,
    ) -> Result<(), Refusal> {
        self.start_sweeping();
        let (verdict, expired) = {
            let mut table = self.lock();
            let expired = self.sweep_if_full(&mut table, &user);
            let verdict = self.check(&table, &user);
            if verdict.is_ok() {
                let entry = Entry {
                    owner,
                    user,
                    last_used: Instant::now(),
                    in_flight: HashSet::new(),
                    retired: HashSet::new(),
                    tasks,
                    streams: 0,
                    kept_in_store: false,
                };
                if let Some(old) = table.sessions.insert(id.into(), entry) {
                    // A service that hands out one id twice: keep the counts right.
                    decrement(&mut table.per_user, &old.user);
                }
                *table.per_user.entry(user).or_insert(0) += 1;
            }
            (verdict, expired)
        };
        self.close(expired);
        if verdict.is_err() {
            self.close(vec![id.into()]);
        }
        verdict
    }

    /// Counts an event stream of session `id` (a legacy GET) as running
    /// until the returned guard is dropped (with the response's body): the
    /// session is not idle meanwhile, and its idle clock restarts when the
    /// stream ends. `None` for a session the table does not hold.
    pub(crate) fn open_stream(self: &Arc<Self>, id: &str) -> Option<SessionStream> {
        let mut table = self.lock();
        let entry = table.sessions.get_mut(id)?;
        entry.streams = entry.streams.saturating_add(1);
        Some(SessionStream {
            sessions: Arc::clone(self),
            id: id.into(),
        })
    }

    /// Ends every session idle now, in the table and (through the closer)
    /// in the service. `McpServer` runs it every
    /// [`sweep_interval`](Self::sweep_interval), rmcp's own keep-alive
    /// being off: rmcp counts messages, and ended a session whose only
    /// activity was an open event stream or a call that sent nothing for
    /// the timeout.
    ///
    /// With a shared store, the sessions busy now (an event stream open, a
    /// call in flight) have their bindings there restarted: a binding is
    /// restarted by each request, and work that runs longer than the idle
    /// timeout sends none (found from outside: a client listening on its
    /// event stream past the timeout found its session gone from the store
    /// and closed at its next call). The sweep runs at most a quarter of
    /// the timeout apart, so a busy session's binding never lapses.
    pub(crate) fn sweep_idle(&self) {
        let (expired, busy) = {
            let mut table = self.lock();
            let expired = take_idle(&mut table, Instant::now(), self.limits.idle_timeout, |_| {
                true
            });
            let busy: Vec<(Box<str>, Owner)> = if self.store.is_some() {
                table
                    .sessions
                    .iter_mut()
                    .filter(|(_, entry)| entry.busy())
                    .map(|(id, entry)| {
                        entry.kept_in_store = true;
                        (id.clone(), entry.owner)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            (expired, busy)
        };
        self.close(expired);
        self.keep_in_store(busy);
    }

    /// Starts the task that runs [`sweep_idle`](Self::sweep_idle) every
    /// [`sweep_interval`](Self::sweep_interval), once, on the current
    /// runtime; it ends when the table is dropped (it holds it weakly).
    fn start_sweeping(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.sweeping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let table = Arc::downgrade(self);
        let every = self.sweep_interval();
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match table.upgrade() {
                    Some(sessions) => sessions.sweep_idle(),
                    None => break,
                }
            }
        });
    }

    /// How often [`sweep_idle`](Self::sweep_idle) runs: a quarter of the
    /// idle timeout, from 250 ms to 30 s (a session ends at most that long
    /// after its timeout).
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.limits.idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
    }

    /// Whether `id` is a session the table holds, of any owner (which
    /// reason a refused session is logged with).
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.lock().sessions.contains_key(id)
    }

    /// Forgets a session (after a successful DELETE).
    pub(crate) fn unbind(&self, id: &str) {
        let mut table = self.lock();
        if let Some(entry) = table.sessions.remove(id) {
            decrement(&mut table.per_user, &entry.user);
        }
    }

    /// Whether `id` is a live session of `owner`; refreshes its idle clock.
    /// An idle-expired session is forgotten (and closed) and answers
    /// `None`. `Some(tasks)`: owned, and whether its client may have
    /// declared the tasks extension, in the `initialize` that opened it or
    /// in one sent since (`declares_tasks`: this request's; once declared,
    /// the session stays so).
    pub(crate) fn use_session(
        &self,
        id: &str,
        owner: &Owner,
        declares_tasks: bool,
    ) -> Option<bool> {
        let now = Instant::now();
        let mut expired = None;
        let owned = {
            let mut table = self.lock();
            let Table {
                sessions, per_user, ..
            } = &mut *table;
            match sessions.get_mut(id) {
                Some(entry) if entry.is_idle(now, self.limits.idle_timeout) => {
                    let user = entry.user;
                    sessions.remove(id);
                    decrement(per_user, &user);
                    expired = Some(Box::<str>::from(id));
                    None
                }
                Some(entry) if entry.owner == *owner => {
                    entry.last_used = now;
                    entry.tasks |= declares_tasks;
                    Some(entry.tasks)
                }
                _ => None,
            }
        };
        if let Some(id) = expired {
            self.close(vec![id]);
        }
        owned
    }

    /// Claims the JSON-RPC request ids of one request in session `id`:
    /// rmcp routes an answer by its id within the session, so a second
    /// request in flight with the id of another would receive that one's
    /// answer on its own response, judged by the layer as its own (late
    /// step-up, list filtering). All or nothing; an unknown session claims
    /// nothing (the service answers it).
    pub(crate) fn claim_ids(&self, id: &str, ids: &[Box<str>]) -> Result<(), IdClaim> {
        let mut table = self.lock();
        let Some(entry) = table.sessions.get_mut(id) else {
            return Ok(());
        };
        if entry.in_flight.len().saturating_add(ids.len()) > MAX_IDS_IN_FLIGHT {
            return Err(IdClaim::TooMany);
        }
        // A batch naming one id twice is refused as such, not as an id
        // in flight (found from outside: the message said so). The ids as
        // spelled (one spelling per id: `RequestIds`), hashed once each.
        if ids.len() > 1 {
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            if !ids.iter().all(|i| seen.insert(&**i)) {
                return Err(IdClaim::Repeated);
            }
        }
        // In flight already, or twice in this body (a batch): all or
        // nothing (the ids before the first taken one were all claimed
        // here).
        for (n, i) in ids.iter().enumerate() {
            if !entry.in_flight.insert(id_key(i).into()) {
                for claimed in ids.iter().take(n) {
                    entry.in_flight.remove(id_key(claimed).as_ref());
                }
                return Err(IdClaim::InUse);
            }
        }
        Ok(())
    }

    /// Releases ids claimed with [`claim_ids`](Self::claim_ids), but for
    /// retired ones.
    pub(crate) fn release_ids(&self, id: &str, ids: &[Box<str>]) {
        let mut table = self.lock();
        if let Some(entry) = table.sessions.get_mut(id) {
            for i in ids {
                let key = id_key(i);
                if !entry.retired.contains(key.as_ref()) {
                    entry.in_flight.remove(key.as_ref());
                }
            }
            // The idle clock counts from the end of the last call (and so
            // does the store's, for work kept alive there).
            if entry.work_ended() {
                let session = vec![(Box::from(id), entry.owner)];
                drop(table);
                self.keep_in_store(session);
            }
        }
    }

    /// Keeps the ids of session `id` that are in flight claimed for the
    /// session's life: their client cancelled them. rmcp ends a cancelled
    /// call's stream at once (so the claim would be released) while its
    /// handler runs on, and would route that handler's answer by the id to
    /// a later request that reused it. MCP never reuses an id within a
    /// session; such ids still count against [`MAX_IDS_IN_FLIGHT`].
    pub(crate) fn retire_ids(&self, id: &str, ids: &[Box<str>]) {
        let mut table = self.lock();
        if let Some(entry) = table.sessions.get_mut(id) {
            for i in ids {
                let key = id_key(i);
                if entry.in_flight.contains(key.as_ref()) {
                    entry.retired.insert(key.into());
                }
            }
        }
    }

    /// How many sessions are bound now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().sessions.len()
    }
}

/// Takes out of `table` the sessions `candidate` names that are idle at
/// `now` (unused for `idle`), freeing their users' slots; returns their ids
/// (to be closed in the service).
fn take_idle(
    table: &mut Table,
    now: Instant,
    idle: Duration,
    candidate: impl Fn(&Entry) -> bool,
) -> Vec<Box<str>> {
    let Table {
        sessions, per_user, ..
    } = table;
    let mut expired = Vec::new();
    sessions.retain(|id, entry| {
        if candidate(entry) && entry.is_idle(now, idle) {
            decrement(per_user, &entry.user);
            expired.push(id.clone());
            false
        } else {
            true
        }
    });
    expired
}

/// An open event stream of a session (see [`Sessions::open_stream`]).
pub(crate) struct SessionStream {
    sessions: Arc<Sessions>,
    id: Box<str>,
}

impl SessionStream {
    /// `response` with its body holding the stream's count until it is
    /// dropped (see [`hold_with_body`](super::listens::hold_with_body)).
    pub(super) fn hold(self, response: Response) -> Response {
        super::listens::hold_with_body(self, response)
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        let mut table = self.sessions.lock();
        if let Some(entry) = table.sessions.get_mut(&*self.id) {
            entry.streams = entry.streams.saturating_sub(1);
            // The idle clock counts from the end of the stream (and so
            // does the store's, for a stream kept alive there).
            if entry.work_ended() {
                let session = vec![(self.id.clone(), entry.owner)];
                drop(table);
                self.sessions.keep_in_store(session);
            }
        }
    }
}

/// Longest request id kept as it is spelled in a session's claims.
const MAX_KEPT_ID_LEN: usize = 64;

/// The key a request id is claimed under: the id as spelled when it is at
/// most [`MAX_KEPT_ID_LEN`] bytes long (nearly every id), else `#` and the
/// hex SHA-256 of its spelling (65 bytes, so that no short id is the key of
/// a long one). A JSON-RPC id may be as long as the body cap, and a
/// cancelled call's id is kept for the session's life: kept whole, 1,024
/// ids of 4 MiB would pin gigabytes per session (found from outside: 2.4
/// MB held per cancelled 1 MB id).
fn id_key(id: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    if id.len() <= MAX_KEPT_ID_LEN {
        return id.into();
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    let mut key = String::with_capacity(1 + 2 * digest.as_ref().len());
    key.push('#');
    for b in digest.as_ref() {
        // Writing to a `String` cannot fail.
        let _ = write!(key, "{b:02x}");
    }
    key.into()
}

fn decrement(per_user: &mut HashMap<Owner, usize>, user: &Owner) {
    if let Some(n) = per_user.get_mut(user) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_user.remove(user);
        }
    }
}

/// A digest of (issuer, subject, client id, tenant), length-prefixed so
/// that no two principals share one (`alice` of tenant A is not `alice` of
/// tenant B, even under one issuer with the tenant in a claim).
pub(crate) fn principal_key(ctx: &AuthContext) -> Owner {
    ctx.principal_key_with(|ctx| {
        let (iss, sub, client) = ctx.principal();
        digest_of([Some(iss), Some(sub), client], ctx.tenant())
    })
}

/// The user `ctx` is: its principal without the client (issuer, subject,
/// tenant), what the per-user caps count (sessions, listens, answer
/// streams, unsent answers). Computed once per token (the cached context
/// keeps it).
pub(crate) fn user_key(ctx: &AuthContext) -> Owner {
    ctx.user_key_with(|ctx| {
        let (iss, sub, _) = ctx.principal();
        // "user" first: never the digest of a principal.
        digest_of([Some("user"), Some(iss), Some(sub)], ctx.tenant())
    })
}

/// The SHA-256 of `fields` and the tenant, each tagged as present or
/// absent and length-prefixed: no client and an empty one differ (a custom
/// verifier may set either), and no two lists of fields share a digest.
fn digest_of(fields: [Option<&str>; 3], tenant: Option<&str>) -> Owner {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let tenant = tenant.map(|t| ["tenant", t]);
    for field in fields
        .into_iter()
        .chain(tenant.into_iter().flatten().map(Some))
    {
        let field = field.map(str::as_bytes);
        digest.update(&[u8::from(field.is_some())]);
        let field = field.unwrap_or_default();
        digest.update(&(field.len() as u64).to_be_bytes());
        digest.update(field);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.finish().as_ref());
    out
}

impl Shared {
    /// The shared store of session owners, when sessions are bound and
    /// such a store is configured.
    pub(super) fn session_store(&self) -> Option<&Arc<dyn SharedStore>> {
        self.session_store
            .as_ref()
            .filter(|_| self.bind_sessions && self.sessions.limits().enabled)
    }

    /// Whether the request checks or binds a session in the shared store
    /// (a wait: the slow path). Any POST may create one.
    pub(super) fn session_waits(&self, req: &Request<Body>) -> bool {
        self.session_store().is_some()
            && (req.method() == http::Method::POST || req.headers().contains_key(SESSION_HEADER))
    }

    /// With a shared store: whether the store binds the request's session
    /// to the caller (then [`OwnedInStore`] is set on the request, and the
    /// binding's idle clock restarts on every replica). A session of
    /// another principal ([`ForeignInStore`] set), or unknown, is left to
    /// the session rules, which refuse it as without a store. `Err`: the
    /// store did not answer (503).
    pub(super) async fn check_session_in_store(
        &self,
        req: &mut Request<Body>,
        ctx: &AuthContext,
        seen: &super::service::Seen,
    ) -> Result<(), Box<Response>> {
        let Some(store) = self.session_store() else {
            return Ok(());
        };
        let mut ids = req.headers().get_all(SESSION_HEADER).iter();
        // None, or two (the session rules refuse two).
        let (Some(id), None) = (ids.next(), ids.next()) else {
            return Ok(());
        };
        let key = store_key(&String::from_utf8_lossy(id.as_bytes()));
        let owner = principal_key(ctx);
        let idle = self.sessions.limits().idle_timeout;
        let checked = match store.get(&key).await {
            Ok(Some(found)) if found.as_slice() == owner.as_slice() => {
                store.put(&key, &owner, idle).await.map(|()| Some(true))
            }
            Ok(Some(_)) => Ok(Some(false)),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match checked {
            Ok(found) => {
                match found {
                    Some(true) => {
                        req.extensions_mut().insert(OwnedInStore);
                    }
                    Some(false) => {
                        req.extensions_mut().insert(ForeignInStore);
                    }
                    None => {}
                }
                Ok(())
            }
            Err(e) => {
                self.throttle.count_store_error("sessions");
                crate::store::log_store_error!(
                    &e,
                    error = %e,
                    reason = "store_unavailable",
                    request_id = seen.request_id(),
                    "refused a session request: the shared session store did not answer (fail closed)"
                );
                Err(Box::new(self.refuse_caller(
                    Refused::SessionStoreUnavailable,
                    req,
                    &seen.meta,
                    ctx,
                )))
            }
        }
    }
}

/// Who would own a session the request creates.
pub(super) enum OwnerOf {
    /// Computed before the request (the caps were checked): the owner and
    /// the user it counts against, and the caller (for the audit event of a
    /// refusal over the caps).
    Known(Owner, Owner, AuthContext),
    /// Computed only if a session is created (a stateless call normally
    /// creates none, so it pays nothing).
    Later(AuthContext),
}

/// Session bookkeeping after the inner service answered.
pub(super) struct SessionHook {
    pub(super) shared: Arc<Shared>,
    pub(super) then: AfterResponse,
    /// The request's audit fields: its id goes in a refusal's body.
    pub(super) meta: Arc<crate::audit::RequestMeta>,
}

/// What a successful response settles.
pub(super) enum AfterResponse {
    /// A request that may create a session: bind it to its owner; and
    /// whether it may declare the tasks extension for the session
    /// ([`Sessions::bind`]).
    Bind(OwnerOf, bool),
    /// A DELETE: forget the session it ended.
    Forget(String),
}

impl SessionHook {
    /// [`after`](Self::after), then, with a shared store, the binding
    /// recorded there (or forgotten after a DELETE). A new session that
    /// cannot be recorded is closed and refused (503): unbound on the other
    /// replicas, it would be refused there anyway.
    pub(super) async fn after_shared(self, response: Response) -> Response {
        let Some(store) = self.shared.session_store().cloned() else {
            return self.after(response);
        };
        if !response.status().is_success() {
            return response;
        }
        let shared = Arc::clone(&self.shared);
        let meta = Arc::clone(&self.meta);
        let (owner, caller) = match &self.then {
            AfterResponse::Forget(id) => {
                if let Err(e) = store.delete(&store_key(id)).await {
                    crate::store::log_store_error!(&e, error = %e, "could not forget a closed session in the shared store; its binding expires with the idle timeout");
                }
                return self.after(response);
            }
            AfterResponse::Bind(OwnerOf::Known(owner, _, ctx), _) => (*owner, ctx.clone()),
            AfterResponse::Bind(OwnerOf::Later(ctx), _) => (principal_key(ctx), ctx.clone()),
        };
        let response = self.after(response);
        let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            // No session created, or refused over the caps (closed).
            return response;
        };
        let idle = shared.sessions.limits().idle_timeout;
        match store.put_if_absent(&store_key(&id), &owner, idle).await {
            Ok(true) => response,
            recorded => {
                // One line per outage, not per request: while the store's
                // breaker is open its refusals are DEBUG (found from
                // outside: a WARN per `initialize`), and the error is
                // written as the other store errors are.
                const WHY: &str = "closed a new session: its owner could not be recorded in the shared store (fail closed)";
                match &recorded {
                    Err(e) => {
                        crate::store::log_store_error!(e, error = %e, reason = "store_unavailable", "{WHY}")
                    }
                    Ok(_) => tracing::warn!(
                        error = "the session id is bound in the store already",
                        reason = "store_unavailable",
                        "{WHY}"
                    ),
                }
                shared.sessions.unbind(&id);
                shared.sessions.close(vec![id.into()]);
                shared.refused_by(Refused::SessionStoreUnavailable, &meta, Some(&caller))
            }
        }
    }

    pub(super) fn after(self, response: Response) -> Response {
        if !response.status().is_success() {
            return response;
        }
        let (owner, tasks) = match self.then {
            AfterResponse::Forget(id) => {
                self.shared.sessions.unbind(&id);
                return response;
            }
            AfterResponse::Bind(owner, tasks) => (owner, tasks),
        };
        let Some(new_id) = response.headers().get(SESSION_HEADER) else {
            return response;
        };
        let (owner, user, ctx) = match owner {
            OwnerOf::Known(owner, user, ctx) => (owner, user, ctx),
            OwnerOf::Later(ctx) => (principal_key(&ctx), user_key(&ctx), ctx),
        };
        let bound = match new_id.to_str() {
            Ok(id) => self.shared.sessions.bind(id, owner, user, tasks),
            // Unreachable with rmcp (its ids are ASCII); unbound means unusable.
            Err(_) => return response,
        };
        match bound {
            Ok(()) => response,
            Err(refusal) => {
                // Over a cap (a race, or an `initialize` that slipped past the
                // check): the session was closed; the client is told to wait,
                // and the operator's record names the caller like the check
                // before the request does.
                tracing::info!(
                    reason = refusal.code(),
                    request_id = self.meta.request_id.as_str(),
                    "refused a new session over the session caps"
                );
                self.shared.refused_by(
                    Refused::TooManySessions(refusal.code()),
                    &self.meta,
                    Some(&ctx),
                )
            }
        }
    }
}

pub(super) fn session_id(req: &Request<Body>) -> Option<String> {
    req.headers()
        .get(SESSION_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// What rmcp answers for an unknown session: clients start a new one.
pub(crate) fn session_not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
    crate::challenge::error_headers(response.headers_mut());
    response
}

/// The request ids of a legacy session request, held for as long as rmcp
/// has the call: released once rmcp's response body has ended (rmcp has
/// then routed the answer and forgotten the id). A body dropped before its
/// end (the client went away, the stream ended at the token's expiry, a
/// held answer abandoned) is read on to its end by a task of its own and
/// the ids released then, when the handler has answered: a client that
/// drops its calls does not use up its session's ids.
pub(super) struct InFlight {
    pub(super) shared: Arc<Shared>,
    pub(super) session: String,
    pub(super) ids: Vec<Box<str>>,
}

impl InFlight {
    /// `response` with its body wrapped so that its end releases the ids.
    pub(super) fn hold(self, response: Response) -> Response {
        response.map(|body| {
            Body::new(ReleaseAtEnd {
                body,
                in_flight: Some(self),
            })
        })
    }
}

/// A response body that releases its request's ids at its end (hyper
/// stops polling a body that says it has ended, so the end is also checked
/// after each frame and when the body is dropped).
struct ReleaseAtEnd {
    body: Body,
    in_flight: Option<InFlight>,
}

impl Drop for ReleaseAtEnd {
    fn drop(&mut self) {
        if self.in_flight.is_none() {
            return;
        }
        if http_body::Body::is_end_stream(&self.body) {
            release(&mut self.in_flight);
            return;
        }
        // What is ready now is read at once: an answer whose stream has
        // ended already (a held answer turned into a 403) frees its id
        // before the client can send the next request.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for _ in 0..64 {
            match http_body::Body::poll_frame(std::pin::Pin::new(&mut self.body), &mut cx) {
                std::task::Poll::Ready(Some(Ok(_))) => {}
                std::task::Poll::Ready(None) => {
                    release(&mut self.in_flight);
                    return;
                }
                std::task::Poll::Ready(Some(Err(_))) => return,
                std::task::Poll::Pending => break,
            }
        }
        // Dropped before its end: rmcp still runs the call and would route
        // its answer by the id, so the id stays claimed until rmcp's body
        // ends. Without a runtime (shutdown) nothing is left to serve the
        // session, and the ids stay with it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = std::mem::replace(&mut self.body, Body::empty());
        let in_flight = self.in_flight.take();
        runtime.spawn(drain_then_release(body, in_flight));
    }
}

/// Reads `body` to its end, discarding what it carries (its client is
/// gone), then releases the ids. An error from the body keeps them: rmcp
/// may still have the call.
async fn drain_then_release(mut body: Body, mut in_flight: Option<InFlight>) {
    use http_body_util::BodyExt as _;
    loop {
        match body.frame().await {
            Some(Ok(_)) => {}
            Some(Err(_)) => return,
            None => break,
        }
    }
    release(&mut in_flight);
}

fn release(in_flight: &mut Option<InFlight>) {
    if let Some(done) = in_flight.take() {
        done.shared.sessions.release_ids(&done.session, &done.ids);
    }
}

impl http_body::Body for ReleaseAtEnd {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => http_body::Body::is_end_stream(&this.body),
            _ => false,
        };
        if ended {
            release(&mut this.in_flight);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_flight_are_not_claimed_twice() {
        let s = Arc::new(Sessions::new(limits(2, 10, Duration::from_secs(300))));
        let a = [1u8; 32];
        assert!(s.bind("a1", a, a, true).is_ok());
        let five: Vec<Box<str>> = vec!["n:5".into()];
        assert_eq!(s.claim_ids("a1", &five), Ok(()));
        assert_eq!(s.claim_ids("a1", &five), Err(IdClaim::InUse));
        assert_eq!(s.claim_ids("unknown", &five), Ok(()));
        s.release_ids("a1", &five);
        assert_eq!(s.claim_ids("a1", &five), Ok(()));
        let twice: Vec<Box<str>> = vec!["n:7".into(), "n:7".into()];
        assert_eq!(s.claim_ids("a1", &twice), Err(IdClaim::Repeated));
        // Nothing of it was claimed.
        assert_eq!(s.claim_ids("a1", &twice[..1]), Ok(()));
        s.release_ids("a1", &twice[..1]);
        // Twice in the batch and in flight (5 is): the batch is what is
        // wrong.
        let again: Vec<Box<str>> = vec!["n:5".into(), "n:5".into()];
        assert_eq!(s.claim_ids("a1", &again), Err(IdClaim::Repeated));
        // Cancelled while in flight: kept for the session's life; an id
        // not in flight is not retired.
        let eight: Vec<Box<str>> = vec!["n:8".into()];
        assert_eq!(s.claim_ids("a1", &eight), Ok(()));
        s.release_ids("a1", &five);
        s.retire_ids("a1", &eight);
        s.retire_ids("a1", &five);
        s.release_ids("a1", &eight);
        assert_eq!(s.claim_ids("a1", &eight), Err(IdClaim::InUse));
        assert_eq!(s.claim_ids("a1", &five), Ok(()));
        s.release_ids("a1", &five);
        let many: Vec<Box<str>> = (0..MAX_IDS_IN_FLIGHT)
            .map(|i| format!("s:{i}").into())
            .collect();
        assert_eq!(s.claim_ids("a1", &many), Err(IdClaim::TooMany));
    }

    // A long id is kept as a digest (found from outside: cancelled ids of
    // 1 MB were kept whole for the session's life); claims, releases and
    // retirements behave as for a short one, and ids differing in one
    // byte stay apart.
    #[test]
    fn long_ids_are_kept_in_bounded_memory() {
        let s = Arc::new(Sessions::new(limits(2, 10, Duration::from_secs(300))));
        let a = [1u8; 32];
        assert!(s.bind("a1", a, a, true).is_ok());
        let long = "x".repeat(1_000_000);
        let one: Vec<Box<str>> = vec![format!("s:{long}1").into()];
        let two: Vec<Box<str>> = vec![format!("s:{long}2").into()];
        let edge: Vec<Box<str>> = vec!["e".repeat(MAX_KEPT_ID_LEN).into()];
        assert_eq!(s.claim_ids("a1", &one), Ok(()));
        assert_eq!(s.claim_ids("a1", &one), Err(IdClaim::InUse));
        assert_eq!(s.claim_ids("a1", &two), Ok(()));
        assert_eq!(s.claim_ids("a1", &edge), Ok(()));
        s.retire_ids("a1", &one);
        s.release_ids("a1", &one);
        s.release_ids("a1", &two);
        assert_eq!(s.claim_ids("a1", &one), Err(IdClaim::InUse), "retired");
        assert_eq!(s.claim_ids("a1", &two), Ok(()), "released");
        // A batch whose second id is taken claims nothing.
        let batch: Vec<Box<str>> = vec![format!("s:{long}3").into(), one[0].clone()];
        assert_eq!(s.claim_ids("a1", &batch), Err(IdClaim::InUse));
        assert_eq!(s.claim_ids("a1", &batch[..1]), Ok(()));
        let table = s.lock();
        let entry = &table.sessions["a1"];
        let kept = entry.in_flight.iter().chain(&entry.retired);
        assert!(kept.clone().all(|k| k.len() <= MAX_KEPT_ID_LEN + 1));
        assert!(
            kept.clone().any(|k| **k == *edge[0]),
            "a short id as spelled"
        );
        assert_eq!(entry.in_flight.len(), 4);
    }

    fn limits(per: usize, total: usize, idle: Duration) -> SessionLimits {
        SessionLimits {
            enabled: true,
            per_principal: per,
            total,
            idle_timeout: idle,
        }
    }

    #[test]
    fn caps_refuse_instead_of_evicting() {
        let s = Arc::new(Sessions::new(limits(2, 3, Duration::from_secs(300))));
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(s.bind("a1", a, a, true).is_ok());
        assert!(s.bind("a2", a, a, true).is_ok());
        assert_eq!(s.may_open(&a), Err(Refusal::PrincipalCap));
        assert_eq!(s.bind("a3", a, a, true), Err(Refusal::PrincipalCap));
        assert!(s.bind("b1", b, b, true).is_ok());
        assert_eq!(s.bind("b2", b, b, true), Err(Refusal::TotalCap));
        // Nothing live was evicted.
        assert!(
            s.use_session("a1", &a, false).is_some()
                && s.use_session("a2", &a, false).is_some()
                && s.use_session("b1", &b, false).is_some()
        );
        assert!(
            s.use_session("a1", &b, false).is_none(),
            "another principal never uses a session"
        );
        s.unbind("a1");
        assert!(s.may_open(&a).is_ok());
        assert_eq!(s.len(), 2);
    }

    // The per-principal cap counts the user, whatever the client: one user
    // with tokens of many clients (registered dynamically, say) cannot
    // multiply it; each session still belongs to its own client.
    #[test]
    fn the_cap_counts_the_user_across_clients() {
        let s = Arc::new(Sessions::new(limits(2, 10, Duration::from_secs(300))));
        let ctx = |client: &str| {
            AuthContext::builder("https://iss", "mallory")
                .client_id(client)
                .build()
        };
        let (one, two, three) = (ctx("c1"), ctx("c2"), ctx("c3"));
        assert_eq!(user_key(&one), user_key(&two));
        assert_ne!(principal_key(&one), principal_key(&two));
        assert_ne!(user_key(&one), principal_key(&one));
        assert!(
            s.bind("s1", principal_key(&one), user_key(&one), true)
                .is_ok()
        );
        assert!(
            s.bind("s2", principal_key(&two), user_key(&two), true)
                .is_ok()
        );
        assert_eq!(s.may_open(&user_key(&three)), Err(Refusal::PrincipalCap));
        assert_eq!(
            s.bind("s3", principal_key(&three), user_key(&three), true),
            Err(Refusal::PrincipalCap)
        );
        assert!(s.use_session("s1", &principal_key(&two), false).is_none());
        assert!(s.use_session("s2", &principal_key(&two), false).is_some());
        // Another user is not counted with them.
        let other = AuthContext::builder("https://iss", "alice")
            .client_id("c1")
            .build();
        assert!(s.may_open(&user_key(&other)).is_ok());
        s.unbind("s1");
        assert!(s.may_open(&user_key(&three)).is_ok());
    }

    // Issue 19: `alice` of one tenant is not `alice` of another, even under
    // one issuer with one client; no tenant and a tenant differ too.
    #[test]
    fn principal_keys_include_the_tenant() {
        let ctx = |tenant: Option<&str>| {
            let b = AuthContext::builder("https://iss", "alice").client_id("app");
            match tenant {
                Some(t) => b.tenant(t).build(),
                None => b.build(),
            }
        };
        let keys = [
            principal_key(&ctx(None)),
            principal_key(&ctx(Some("a"))),
            principal_key(&ctx(Some("b"))),
            principal_key(&ctx(Some(""))),
        ];
        for (i, k) in keys.iter().enumerate() {
            assert!(keys.iter().skip(i + 1).all(|other| other != k), "{i}");
        }
        assert_eq!(principal_key(&ctx(Some("a"))), keys[1]);
        assert_eq!(ctx(Some("a")).tenant(), Some("a"));
    }

    // No client and an empty client are two principals (a token cannot
    // carry an empty one, a custom verifier can set it); so are a client
    // named like the tenant marker and a tenant.
    #[test]
    fn principal_keys_tell_no_client_from_an_empty_one() {
        let no_client = AuthContext::builder("https://iss", "alice").build();
        let empty = AuthContext::builder("https://iss", "alice")
            .client_id("")
            .build();
        assert_ne!(principal_key(&no_client), principal_key(&empty));
        let tenant = AuthContext::builder("https://iss", "alice")
            .tenant("t")
            .build();
        let client = AuthContext::builder("https://iss", "alice")
            .client_id("tenant")
            .build();
        assert_ne!(principal_key(&tenant), principal_key(&client));
    }

    #[test]
    fn idle_sessions_expire_and_free_their_slot() {
        let s = Arc::new(Sessions::new(limits(1, 10, Duration::from_millis(20))));
        let a = [1u8; 32];
        assert!(s.bind("a1", a, a, true).is_ok());
        assert_eq!(s.may_open(&a), Err(Refusal::PrincipalCap));
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.may_open(&a).is_ok(), "the idle session no longer counts");
        assert!(
            s.use_session("a1", &a, false).is_none(),
            "an expired session answers 404"
        );
    }

    // Found from outside: a session whose call ran past the idle timeout
    // was forgotten while the call ran (its answer lost, the next call
    // 404). A call in flight keeps it; its end restarts the idle clock; a
    // cancelled call (retired id) does not keep it for ever.
    #[test]
    fn a_session_with_a_call_in_flight_is_not_idle() {
        let idle = Duration::from_millis(40);
        let s = Arc::new(Sessions::new(limits(1, 10, idle)));
        let a = [1u8; 32];
        assert!(s.bind("a1", a, a, false).is_ok());
        let ids: Vec<Box<str>> = vec!["n:1".into()];
        s.claim_ids("a1", &ids).unwrap();
        std::thread::sleep(idle * 2);
        assert_eq!(
            s.may_open(&a),
            Err(Refusal::PrincipalCap),
            "kept while busy"
        );
        assert!(s.use_session("a1", &a, false).is_some(), "still served");
        std::thread::sleep(idle * 2);
        s.release_ids("a1", &ids);
        assert!(
            s.use_session("a1", &a, false).is_some(),
            "the clock restarts when the call ends"
        );
        // A cancelled call keeps its id, not the session.
        let cancelled: Vec<Box<str>> = vec!["n:2".into()];
        s.claim_ids("a1", &cancelled).unwrap();
        s.retire_ids("a1", &cancelled);
        s.release_ids("a1", &cancelled);
        std::thread::sleep(idle * 2);
        assert!(s.may_open(&a).is_ok(), "idle again");
        assert!(s.use_session("a1", &a, false).is_none());
    }

    // Found from outside: a session whose client only listened lost it at
    // the timeout. An open event stream keeps its session out of the
    // sweep; its end restarts the clock; the sweep then closes it in the
    // service (through the closer) and frees its slot, without a request.
    #[test]
    fn an_open_stream_keeps_a_session_from_the_sweep() {
        let idle = Duration::from_millis(40);
        let s = Arc::new(Sessions::new(limits(2, 10, idle)));
        let closed = Arc::new(Mutex::new(Vec::<String>::new()));
        let record = Arc::clone(&closed);
        s.set_closer(Arc::new(move |id: String| {
            record.lock().unwrap().push(id);
        }));
        let a = [1u8; 32];
        assert!(s.bind("listening", a, a, false).is_ok());
        assert!(s.bind("quiet", a, a, false).is_ok());
        let stream = s.open_stream("listening").unwrap();
        assert!(s.open_stream("unknown").is_none());
        std::thread::sleep(idle * 2);
        s.sweep_idle();
        assert_eq!(*closed.lock().unwrap(), ["quiet"]);
        assert!(s.use_session("listening", &a, false).is_some());
        std::thread::sleep(idle * 2);
        drop(stream);
        s.sweep_idle();
        assert_eq!(closed.lock().unwrap().len(), 1, "the clock restarts");
        std::thread::sleep(idle * 2);
        s.sweep_idle();
        assert_eq!(*closed.lock().unwrap(), ["quiet", "listening"]);
        assert_eq!(s.len(), 0);
        assert!(s.may_open(&a).is_ok());
        // A quarter of the timeout, from 250 ms to 30 s.
        assert_eq!(s.sweep_interval(), Duration::from_millis(250));
        let long = Sessions::new(limits(1, 1, Duration::from_secs(300)));
        assert_eq!(long.sweep_interval(), Duration::from_secs(30));
    }
}
