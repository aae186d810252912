//! [`AuthContext`]: who is calling, as established by a
//! [`TokenVerifier`](crate::TokenVerifier). It reaches handlers three ways:
//! `ctx.auth()` on rmcp's `RequestContext` ([`RequestContextExt`]), a tool
//! argument (rmcp `FromContextPart`), and an axum extractor.

mod step_up;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Map, Value};

use crate::error::AuthErrorKind;
use crate::handle::{HandleError, HandleKeys, Purpose};
use crate::scope::ScopeHierarchy;
pub(crate) use step_up::{StepUp, ask_in};

/// The verified identity and grants of the caller.
///
/// Cheap to clone (one reference count). Its `Debug` output lists who is
/// calling and which claim names are present, never claim values beyond the
/// identifiers below and never the token.
#[derive(Clone)]
pub struct AuthContext(
    Arc<Inner>,
    Option<Arc<ScopeHierarchy>>,
    /// This request's late step-up slot (set by the layer per request).
    Option<Arc<StepUp>>,
    /// The caller's own token, kept by the layer for the token exchange
    /// (set per request; never readable outside this crate).
    Option<SubjectToken>,
    /// This request's correlation id (set by the layer per request).
    Option<crate::correlation::RequestId>,
    /// The claims parsed from the token's text on first use, held by this
    /// handle (and its clones taken after), never by the shared block: a
    /// context from the verified-token cache is shared by every request of
    /// its token, and its weight there is fixed when it is stored. Parsed
    /// into the shared block, a 7 KB token of many tiny members held about
    /// 550 KB past that weight (found from outside: 1.7 GB from 3,600
    /// requests). Claims a custom verifier gave the builder stay shared.
    LazyClaims,
);

/// See the last field of [`AuthContext`].
#[derive(Default)]
struct LazyClaims(OnceLock<Box<Derived>>);

impl Clone for LazyClaims {
    fn clone(&self) -> Self {
        // Parsed again on first use by a clone that needs them: a clone
        // made to be stored (the verified-token cache) never carries them.
        Self::default()
    }
}

/// The caller's access token as the layer read it from the
/// `Authorization` header, kept (without a copy: the header value itself)
/// so that [`TokenExchanger`](crate::TokenExchanger) can send it as the
/// RFC 8693 `subject_token`. Nothing else reads it: no public accessor, no
/// `Serialize`, a redacted `Debug`.
#[derive(Clone)]
pub(crate) struct SubjectToken(http::HeaderValue);

impl SubjectToken {
    /// Keeps a verified `Authorization` header value (`Bearer <token>` or
    /// `DPoP <token>`).
    pub(crate) fn new(value: http::HeaderValue) -> Self {
        Self(value)
    }

    /// The `Authorization` header value the layer verified (marked
    /// sensitive), for a layer inside the one that admitted it.
    pub(crate) fn header_value(&self) -> &http::HeaderValue {
        &self.0
    }

    /// The token text after the scheme. The layer verified the header
    /// before keeping it, so this is `None` only for a value no verifier
    /// accepted.
    pub(crate) fn expose(&self) -> Option<&str> {
        let text = self.0.to_str().ok()?;
        let (_, token) = text.split_once(' ')?;
        Some(token.trim_matches(' ')).filter(|t| !t.is_empty())
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectToken([redacted])")
    }
}

/// Kept small: verified contexts are cached per token (up to 100,000 of
/// them), so the facts every request needs are stored directly and the rest
/// (raw claims, audience, token id) is derived from the claims JSON on first
/// use. The JSON kept is the payload without the members stored directly
/// (`iss`, `sub`, `exp`, `client_id`), which are put back when the claims
/// are asked for.
#[derive(Default)]
struct Inner {
    subject: Box<str>,
    issuer: Arc<str>,
    client_id: Option<Box<str>>,
    scopes: Box<[Box<str>]>,
    /// `exp` in Unix seconds; 0 when absent.
    expires_at: u64,
    /// The remaining claims as JSON text.
    rest: Option<Box<str>>,
    /// Whether `client_id` was taken out of `rest`.
    client_id_taken: bool,
    /// `cnf.jkt`: the RFC 7638 thumbprint of the key the token is bound to
    /// (RFC 9449 section 6).
    dpop_jkt: Option<Box<str>>,
    /// The tenant of a tenant issuer (shared with the allowlist).
    tenant: Option<Arc<str>>,
    derived: OnceLock<Box<Derived>>,
    /// The principal's digest (legacy session owners), computed on first
    /// use: a context from the verified-token cache is shared by every
    /// request of its token, so the hash is paid once per token.
    principal_key: OnceLock<[u8; 32]>,
    /// The user's digest (issuer, tenant, subject: what the per-user caps
    /// count), computed on first use, once per token as the principal's.
    user_key: OnceLock<[u8; 32]>,
}

struct Derived {
    claims: Map<String, Value>,
    audience: Vec<String>,
    token_id: Option<String>,
}

impl Inner {
    /// The claims parsed from `rest` (see [`LazyClaims`]).
    fn parse_derived(&self) -> Derived {
        let mut claims: Map<String, Value> = self
            .rest
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or_default();
        if self.rest.is_some() {
            claims.insert("iss".to_owned(), Value::String(self.issuer.to_string()));
            claims.insert("sub".to_owned(), Value::String(self.subject.to_string()));
            if self.expires_at != 0 {
                claims.insert("exp".to_owned(), Value::from(self.expires_at));
            }
            if self.client_id_taken
                && let Some(c) = &self.client_id
            {
                claims.insert("client_id".to_owned(), Value::String(c.to_string()));
            }
        }
        Derived::new(claims, None, None)
    }
}

impl Derived {
    fn new(
        claims: Map<String, Value>,
        audience: Option<Vec<String>>,
        token_id: Option<String>,
    ) -> Self {
        let audience = audience.unwrap_or_else(|| match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        });
        let token_id =
            token_id.or_else(|| claims.get("jti").and_then(Value::as_str).map(str::to_owned));
        Self {
            claims,
            audience,
            token_id,
        }
    }
}

impl AuthContext {
    /// Starts an `AuthContext` for custom verifiers: `issuer` and `subject`
    /// are the two facts every context has.
    pub fn builder(issuer: impl Into<String>, subject: impl Into<String>) -> AuthContextBuilder {
        Self::builder_shared(Arc::from(issuer.into()), subject.into().into_boxed_str())
    }

    /// The same with an issuer string shared with other contexts of that
    /// issuer (one allocation fewer per verified token).
    pub(crate) fn builder_shared(issuer: Arc<str>, subject: Box<str>) -> AuthContextBuilder {
        AuthContextBuilder {
            inner: Inner {
                subject,
                issuer,
                client_id: None,
                scopes: Box::default(),
                expires_at: 0,
                rest: None,
                client_id_taken: false,
                dpop_jkt: None,
                tenant: None,
                derived: OnceLock::new(),
                principal_key: OnceLock::new(),
                user_key: OnceLock::new(),
            },
            claims: None,
            audience: None,
            token_id: None,
        }
    }

    /// Heap bytes this context holds, as the verified-token cache weighs it:
    /// the shared block and each string it owns, every allocation rounded
    /// up to 16 bytes plus 16 of allocator bookkeeping. The issuer and scope
    /// hierarchy are shared with other contexts and not counted; claims a
    /// custom verifier gave the builder count their whole tree (claims
    /// parsed from the token's text are held per handle, never here: see
    /// [`LazyClaims`]).
    pub(crate) fn retained_bytes(&self) -> usize {
        fn alloc(n: usize) -> usize {
            if n == 0 { 0 } else { n.div_ceil(16) * 16 + 16 }
        }
        /// A value's heap, as serde_json holds it: a map node per object
        /// (its members spread over B-tree nodes of 11), a string's bytes,
        /// an array's 32-byte slots.
        fn value_bytes(value: &Value) -> usize {
            match value {
                Value::String(s) => alloc(s.len()),
                Value::Array(items) => {
                    alloc(32 * items.len()) + items.iter().map(value_bytes).sum::<usize>()
                }
                Value::Object(map) => map_bytes(map),
                _ => 0,
            }
        }
        fn map_bytes(map: &Map<String, Value>) -> usize {
            // One B-tree leaf (11 keys and values) per started 11 members.
            map.len().div_ceil(11) * alloc(11 * (24 + 32) + 16)
                + map
                    .iter()
                    .map(|(k, v)| alloc(k.len()) + value_bytes(v))
                    .sum::<usize>()
        }
        let inner = &*self.0;
        let derived = inner.derived.get().map_or(0, |d| {
            alloc(std::mem::size_of::<Derived>())
                + map_bytes(&d.claims)
                + d.audience
                    .iter()
                    .map(|a| 24 + alloc(a.len()))
                    .sum::<usize>()
                + d.token_id.as_ref().map_or(0, |t| alloc(t.len()))
        });
        // The `Arc` block: two counts and `Inner`.
        alloc(16 + std::mem::size_of::<Inner>())
            + alloc(inner.subject.len())
            + inner.client_id.as_ref().map_or(0, |c| alloc(c.len()))
            + alloc(std::mem::size_of_val(&*inner.scopes))
            + inner.scopes.iter().map(|s| alloc(s.len())).sum::<usize>()
            + inner.rest.as_ref().map_or(0, |r| alloc(r.len()))
            + inner.dpop_jkt.as_ref().map_or(0, |j| alloc(j.len()))
            + derived
    }

    /// The claims, audience and token id: given to the builder (shared), or
    /// parsed from the token's text on first use by this handle.
    fn derived(&self) -> &Derived {
        match self.0.derived.get() {
            Some(given) => given,
            None => self.5.0.get_or_init(|| Box::new(self.0.parse_derived())),
        }
    }

    /// The `tid` (Entra ID) or `tenant` claim, when a string, read from the
    /// token's text alone: nothing is kept (the audit's tenant field; found
    /// from outside: reading it through [`claim`](Self::claim) parsed every
    /// claim for each event written).
    pub(crate) fn tenant_claim(&self) -> Option<std::borrow::Cow<'_, str>> {
        use serde_json::value::RawValue;
        if let Some(given) = self.0.derived.get() {
            return ["tid", "tenant"]
                .iter()
                .find_map(|name| given.claims.get(*name).and_then(Value::as_str))
                .map(std::borrow::Cow::Borrowed);
        }
        #[derive(serde::Deserialize)]
        struct Tenant<'a> {
            #[serde(borrow)]
            tid: Option<&'a RawValue>,
            #[serde(borrow)]
            tenant: Option<&'a RawValue>,
        }
        let read: Tenant<'_> = serde_json::from_str(self.0.rest.as_deref()?).ok()?;
        [read.tid, read.tenant]
            .into_iter()
            .flatten()
            .find_map(|raw| serde_json::from_str::<std::borrow::Cow<'_, str>>(raw.get()).ok())
    }

    /// The `sub` claim: who the token is about.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The issuer that accepted the token (`iss`).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The OAuth client the token was issued to (`client_id`, RFC 9068 section 2.2).
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &[Box<str>] {
        &self.0.scopes
    }

    /// Whether the token grants `scope`, directly or through the configured
    /// scope hierarchy (implications, wildcards).
    pub fn has_scope(&self, scope: &str) -> bool {
        match &self.1 {
            Some(h) => h.grants(&self.0.scopes, scope),
            None => self.0.scopes.iter().any(|s| **s == *scope),
        }
    }

    /// The same context, judging scopes with `hierarchy` (the layer does
    /// this for every request).
    pub fn with_hierarchy(mut self, hierarchy: Arc<ScopeHierarchy>) -> Self {
        self.1 = Some(hierarchy);
        self
    }

    /// The same context, with this request's step-up slot.
    pub(crate) fn with_step_up(mut self, slot: Arc<StepUp>) -> Self {
        self.2 = Some(slot);
        self
    }

    /// The principal's digest, `compute`d once per context (the contexts
    /// of one cached token share it).
    pub(crate) fn principal_key_with(&self, compute: impl FnOnce(&Self) -> [u8; 32]) -> [u8; 32] {
        *self.0.principal_key.get_or_init(|| compute(self))
    }

    /// The user's digest, computed by `compute` the first time (see
    /// [`principal_key_with`](Self::principal_key_with)).
    pub(crate) fn user_key_with(&self, compute: impl FnOnce(&Self) -> [u8; 32]) -> [u8; 32] {
        *self.0.user_key.get_or_init(|| compute(self))
    }

    /// This request's step-up slot, when the layer made the context.
    pub(crate) fn step_up_slot(&self) -> Option<&Arc<StepUp>> {
        self.2.as_ref()
    }

    /// The same context, holding the caller's token for the exchange.
    pub(crate) fn with_subject_token(mut self, token: SubjectToken) -> Self {
        self.3 = Some(token);
        self
    }

    /// The caller's token, for the token exchange only.
    pub(crate) fn subject_token(&self) -> Option<&SubjectToken> {
        self.3.as_ref()
    }

    /// The same context, with this request's correlation id.
    pub(crate) fn with_request_id(mut self, id: crate::correlation::RequestId) -> Self {
        self.4 = Some(id);
        self
    }

    /// The correlation id of the request this context was handed to (the
    /// `X-Request-Id` echoed on its response, in its audit events and its
    /// error body); `None` for a context not handed out by the layer.
    pub fn request_id(&self) -> Option<&str> {
        self.4.as_ref().map(crate::correlation::RequestId::as_str)
    }

    /// The principal as (issuer, subject, client id). Sessions, handles and
    /// request state are bound to it and to the [`tenant`](Self::tenant),
    /// so `alice` of tenant A is never `alice` of tenant B.
    pub fn principal(&self) -> (&str, &str, Option<&str>) {
        (&self.0.issuer, &self.0.subject, self.0.client_id.as_deref())
    }

    /// The tenant of a token accepted by a tenant issuer
    /// ([`TenantIssuer`](crate::TenantIssuer)): the tenant id filled into
    /// the issuer template (or read from the tenant claim). `None` for
    /// other issuers.
    pub fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    /// The principal with its tenant, as handles and request state bind it.
    pub(crate) fn sealing_principal(&self) -> crate::handle::Principal<'_> {
        let (iss, sub, client) = self.principal();
        (iss, sub, client, self.tenant())
    }

    /// Mints a handle bound to this caller, carrying `payload` (for example
    /// a cart id), sealed with the ring's current key and valid for
    /// [`HandleKeys::DEFAULT_TTL`] (one hour). Only
    /// [`open_handle`](Self::open_handle) by the same principal with a ring
    /// holding that key gets the payload back. Whether the client can read
    /// the payload depends on the ring's [`Sealing`](crate::Sealing) mode;
    /// see [`HandleKeys`].
    pub fn mint_handle(&self, keys: &HandleKeys, payload: &str) -> Result<String, HandleError> {
        self.mint_handle_with_ttl(keys, payload, HandleKeys::DEFAULT_TTL)
    }

    /// [`mint_handle`](Self::mint_handle) valid for `ttl` (more than zero,
    /// at most [`HandleKeys::MAX_TTL`]).
    pub fn mint_handle_with_ttl(
        &self,
        keys: &HandleKeys,
        payload: &str,
        ttl: Duration,
    ) -> Result<String, HandleError> {
        crate::handle::seal(
            keys,
            self.sealing_principal(),
            Purpose::Handle,
            payload,
            ttl,
        )
    }

    /// Opens a handle minted by [`mint_handle`](Self::mint_handle). A handle
    /// minted for anyone else, altered, forged or sealed as request state is
    /// [`HandleError::Invalid`]; past its expiry, [`HandleError::Expired`];
    /// sealed with a key the ring no longer holds, [`HandleError::UnknownKey`].
    pub fn open_handle(&self, keys: &HandleKeys, handle: &str) -> Result<String, HandleError> {
        crate::handle::open(keys, self.sealing_principal(), Purpose::Handle, handle)
    }

    /// Seals the `requestState` of a multi-round-trip request (MCP
    /// 2026-07-28): `payload` bound to this caller and to the originating
    /// request's `method` and `name` (for example `"tools/call"` and
    /// `"export_notes"`; for `resources/read`, the URI), valid for `ttl`
    /// (more than zero, at most [`HandleKeys::MAX_TTL`]).
    pub fn seal_request_state(
        &self,
        keys: &HandleKeys,
        method: &str,
        name: &str,
        payload: &str,
        ttl: Duration,
    ) -> Result<String, HandleError> {
        let purpose = Purpose::RequestState { method, name };
        crate::handle::seal(keys, self.sealing_principal(), purpose, payload, ttl)
    }

    /// Opens `requestState` sealed by
    /// [`seal_request_state`](Self::seal_request_state), for the request
    /// being answered (its `method` and `name`). State sealed for another
    /// principal or another request, a handle, or anything altered is
    /// [`HandleError::Invalid`]; past its expiry, [`HandleError::Expired`].
    pub fn open_request_state(
        &self,
        keys: &HandleKeys,
        method: &str,
        name: &str,
        state: &str,
    ) -> Result<String, HandleError> {
        let purpose = Purpose::RequestState { method, name };
        crate::handle::open(keys, self.sealing_principal(), purpose, state)
    }

    /// Whether the token is DPoP-bound (RFC 9449): it carries `cnf.jkt`
    /// (or its introspection answer does). Behind the layer, a bound token
    /// was accepted only with a valid proof made with that key.
    pub fn is_dpop_bound(&self) -> bool {
        self.0.dpop_jkt.is_some()
    }

    /// The RFC 7638 SHA-256 thumbprint (base64url) of the key the token is
    /// bound to (`cnf.jkt`), when it is DPoP-bound.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.0.dpop_jkt.as_deref()
    }

    /// The audiences (`aud`) of the token.
    pub fn audience(&self) -> &[String] {
        &self.derived().audience
    }

    /// Expiry as seconds since the Unix epoch (`exp`).
    pub fn expires_at_unix(&self) -> Option<u64> {
        (self.0.expires_at != 0).then_some(self.0.expires_at)
    }

    /// Expiry as a [`SystemTime`], saturated at 9999-12-31T23:59:59Z (an
    /// absurd `exp` from a custom verifier never overflows).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at_unix().map(crate::clock::system_time)
    }

    /// The token identifier (`jti`).
    pub fn token_id(&self) -> Option<&str> {
        self.derived().token_id.as_deref()
    }

    /// Every claim of the token, for custom ones.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.derived().claims
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// Fails unless every scope in `scopes` is granted (hierarchy-aware):
    /// the check for a handler that learns mid-call that it needs more (after
    /// a lookup, from a backend's answer). Return the error from the handler
    /// (`auth.require_scopes(["notes:export"])?`).
    ///
    /// **Late step-up.** Behind the layer, a refused check turns the
    /// response into a real HTTP 403 with the challenge
    /// `Bearer error="insufficient_scope", scope="…"` naming everything the
    /// operation needs (what the layer required before dispatch, then every
    /// scope the handler asked for), so the client's step-up flow starts,
    /// as long as no byte of the response was sent: a JSON response, or an
    /// SSE stream whose first message is this error. After a notification
    /// was streamed (progress, logging), the HTTP status is gone and the
    /// call answers with the JSON-RPC error below, with the same scopes.
    ///
    /// A failed check marks the request as needing step-up even if the
    /// handler carries on and answers something else (after the head of a
    /// stream has left, the layer replaces every answer of the request with
    /// the error below): to test for a scope without asking for it, use
    /// [`has_scope`](Self::has_scope). In a
    /// batch, one handler's step-up answers the whole request with the 403.
    /// In the work of an MCP task (SEP-2663) that runs after its
    /// `tools/call` answered, a failed check makes every later `tasks/get`,
    /// `tasks/update` and `tasks/cancel` of the task need the scopes asked
    /// for (403 `insufficient_scope`), on the process running the work.
    ///
    /// The error is JSON-RPC `-32600` (invalid request) with the message
    /// `insufficient_scope: this operation needs the scope(s) <scopes>` and
    /// the data `{"error": "insufficient_scope", "scope": "<scopes>"}`,
    /// `<scopes>` space-separated as in the challenge.
    pub fn require_scopes<I, S>(&self, scopes: I) -> Result<(), rmcp::ErrorData>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let asked: Vec<S> = scopes.into_iter().collect();
        if asked.iter().all(|s| self.has_scope(s.as_ref())) {
            return Ok(());
        }
        let scope = step_up::ask_in(self.2.as_deref(), &asked).join(" ");
        Err(rmcp::ErrorData::invalid_request(
            format!("insufficient_scope: this operation needs the scope(s) {scope}"),
            Some(serde_json::json!({ "error": "insufficient_scope", "scope": scope })),
        ))
    }
}

impl fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthContext")
            .field("subject", &self.0.subject)
            .field("issuer", &self.0.issuer)
            .field("client_id", &self.0.client_id)
            .field("tenant", &self.0.tenant)
            .field("scopes", &self.0.scopes)
            .field("audience", &self.audience())
            .field("expires_at", &self.0.expires_at)
            .field("claims", &self.claims().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Builder for [`AuthContext`], for custom [`TokenVerifier`](crate::TokenVerifier)s.
#[must_use]
pub struct AuthContextBuilder {
    inner: Inner,
    claims: Option<Map<String, Value>>,
    audience: Option<Vec<String>>,
    token_id: Option<String>,
}

impl fmt::Debug for AuthContextBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthContextBuilder")
            .field("subject", &self.inner.subject)
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthContextBuilder {
    /// Sets the client identifier.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.inner.client_id = Some(client_id.into().into_boxed_str());
        self
    }

    /// Sets the granted scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inner.scopes = scopes
            .into_iter()
            .map(|s| s.into().into_boxed_str())
            .collect();
        self
    }

    /// Sets the granted scopes, already boxed (no copy).
    pub(crate) fn boxed_scopes(mut self, scopes: Box<[Box<str>]>) -> Self {
        self.inner.scopes = scopes;
        self
    }

    /// Sets the audiences (default: from the `aud` of the claims).
    pub fn audience<I, S>(mut self, audience: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audience = Some(audience.into_iter().map(Into::into).collect());
        self
    }

    /// Marks the token as DPoP-bound to the key with this RFC 7638
    /// thumbprint (its `cnf.jkt`, RFC 9449 section 6). Behind the layer, such
    /// a token is accepted only with a DPoP proof made with that key.
    pub fn dpop_thumbprint(mut self, jkt: impl Into<String>) -> Self {
        self.inner.dpop_jkt = Some(jkt.into().into_boxed_str());
        self
    }

    /// Sets the tenant (see [`AuthContext::tenant`]).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.inner.tenant = Some(Arc::from(tenant.into()));
        self
    }

    /// Sets the tenant, shared with other contexts of that tenant.
    pub(crate) fn shared_tenant(mut self, tenant: Arc<str>) -> Self {
        self.inner.tenant = Some(tenant);
        self
    }

    /// Sets the expiry, in seconds since the Unix epoch.
    pub fn expires_at_unix(mut self, exp: u64) -> Self {
        self.inner.expires_at = exp;
        self
    }

    /// Sets the token identifier (default: from the `jti` of the claims).
    pub fn token_id(mut self, jti: impl Into<String>) -> Self {
        self.token_id = Some(jti.into());
        self
    }

    /// Sets the raw claims.
    pub fn claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims = Some(claims);
        self.inner.rest = None;
        self
    }

    /// The claims of a verified JWT, without the members stored directly
    /// (`iss`, `sub`, `exp` and, when `client_id_taken`, `client_id`), as
    /// JSON text; parsed only if a handler asks for the claims.
    pub(crate) fn rest_claims(mut self, json: Box<str>, client_id_taken: bool) -> Self {
        self.inner.rest = Some(json);
        self.inner.client_id_taken = client_id_taken;
        self.claims = None;
        self
    }

    /// Finishes the context.
    pub fn build(self) -> AuthContext {
        let inner = self.inner;
        if self.claims.is_some()
            || self.audience.is_some()
            || self.token_id.is_some()
            || inner.rest.is_none()
        {
            let derived = Derived::new(
                self.claims.unwrap_or_default(),
                self.audience,
                self.token_id,
            );
            // A fresh OnceLock: setting it cannot fail.
            let _ = inner.derived.set(Box::new(derived));
        }
        AuthContext(
            Arc::new(inner),
            None,
            None,
            None,
            None,
            LazyClaims::default(),
        )
    }
}

fn missing_context_error() -> rmcp::ErrorData {
    tracing::error!(
        reason = AuthErrorKind::NotAuthenticated.code(),
        "a handler asked for the AuthContext but no authentication layer ran for this request"
    );
    rmcp::ErrorData::internal_error(
        "no authenticated caller: this request did not pass through the mcp-oauth2 layer",
        None,
    )
}

fn from_rmcp_context(ctx: &RequestContext<RoleServer>) -> Option<&AuthContext> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<AuthContext>())
        .or_else(|| ctx.extensions.get::<AuthContext>())
}

/// `ctx.auth()` on rmcp's request context.
pub trait RequestContextExt {
    /// The caller's [`AuthContext`], or an rmcp internal error when the
    /// request did not pass through the authentication layer (fail closed).
    fn auth(&self) -> Result<&AuthContext, rmcp::ErrorData>;
}

impl RequestContextExt for RequestContext<RoleServer> {
    fn auth(&self) -> Result<&AuthContext, rmcp::ErrorData> {
        from_rmcp_context(self).ok_or_else(missing_context_error)
    }
}

/// An `AuthContext` can be a tool or prompt argument.
impl<C: AsRequestContext> FromContextPart<C> for AuthContext {
    fn from_context_part(context: &mut C) -> Result<Self, rmcp::ErrorData> {
        from_rmcp_context(context.as_request_context())
            .cloned()
            .ok_or_else(missing_context_error)
    }
}

/// Rejection of the axum extractor when no authentication layer ran: 500
/// `server_error` (reason `not_authenticated`), no challenge, fail closed.
/// The route is misconfigured, not the client's token: a 401 would send the
/// client to sign in again for nothing (found from outside). Logged at
/// ERROR. A tool reached without the layer answers the JSON-RPC internal
/// error (-32603) likewise.
#[derive(Debug)]
#[non_exhaustive]
pub struct MissingAuthContext;

impl IntoResponse for MissingAuthContext {
    fn into_response(self) -> Response {
        tracing::error!(
            reason = AuthErrorKind::NotAuthenticated.code(),
            "an axum handler asked for the AuthContext but no authentication layer ran"
        );
        crate::AuthError::new(AuthErrorKind::NotAuthenticated).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = MissingAuthContext;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthContext>()
            .cloned()
            .ok_or(MissingAuthContext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_identity_not_claim_values() {
        let mut claims = Map::new();
        claims.insert("email".into(), Value::String("alice@example.com".into()));
        let ctx = AuthContext::builder("https://iss", "alice")
            .scopes(["a"])
            .claims(claims)
            .build();
        let dbg = format!("{ctx:?}");
        assert!(dbg.contains("alice") && dbg.contains("email"));
        assert!(!dbg.contains("alice@example.com"));
    }

    // An absurd `exp` saturates instead of overflowing `SystemTime`.
    #[test]
    fn expires_at_never_overflows() {
        for exp in [u64::MAX, u64::MAX / 2, 1 << 40] {
            let ctx = AuthContext::builder("i", "s").expires_at_unix(exp).build();
            assert!(ctx.expires_at().is_some());
            assert_eq!(ctx.expires_at_unix(), Some(exp));
        }
        let ctx = AuthContext::builder("i", "s").expires_at_unix(5).build();
        assert_eq!(
            ctx.expires_at(),
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(5))
        );
    }

    // A custom verifier's explicit audience and token id win over the
    // claims; without them they come from `aud` (a string or the strings
    // of an array) and `jti`.
    #[test]
    fn audience_and_token_id_explicit_or_from_the_claims() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"aud":["https://a.example/mcp",5,"https://b.example/mcp"],"jti":"from-claims"}"#,
        )
        .unwrap();
        let derived = AuthContext::builder("i", "s")
            .claims(claims.clone())
            .build();
        assert_eq!(
            derived.audience(),
            ["https://a.example/mcp", "https://b.example/mcp"]
        );
        assert_eq!(derived.token_id(), Some("from-claims"));
        let explicit = AuthContext::builder("i", "s")
            .claims(claims)
            .audience(["https://c.example/mcp"])
            .token_id("explicit")
            .build();
        assert_eq!(explicit.audience(), ["https://c.example/mcp"]);
        assert_eq!(explicit.token_id(), Some("explicit"));
        assert_eq!(explicit.claim("jti"), Some(&Value::from("from-claims")));
        let single = AuthContext::builder("i", "s")
            .claims(serde_json::from_str(r#"{"aud":"https://a.example/mcp"}"#).unwrap())
            .build();
        assert_eq!(single.audience(), ["https://a.example/mcp"]);
        let bare = AuthContext::builder("i", "s").build();
        assert!(bare.audience().is_empty() && bare.token_id().is_none());
    }

    // A verified JWT keeps its other claims as text; parsed on first use,
    // they are put back whole, held by the handle that parsed them: the
    // shared block (what the verified-token cache keeps and weighs) never
    // grows past its weight (found from outside: 550 KB held by a cached
    // 7 KB token of many tiny members), and a clone starts without them.
    #[test]
    fn claims_parsed_on_first_use_are_complete_and_held_per_handle() {
        let ctx = AuthContext::builder("https://iss.example", "alice")
            .client_id("app-1")
            .expires_at_unix(2_000_000_000)
            .rest_claims(
                r#"{"aud":["https://rs.example/mcp"],"jti":"id-1","tenant":"acme"}"#.into(),
                true,
            )
            .build();
        let before = ctx.retained_bytes();
        assert_eq!(ctx.tenant_claim().as_deref(), Some("acme"));
        assert!(ctx.5.0.get().is_none(), "read without parsing");
        assert_eq!(ctx.audience(), ["https://rs.example/mcp"]);
        assert!(ctx.5.0.get().is_some());
        assert_eq!(ctx.retained_bytes(), before);
        assert!(ctx.clone().5.0.get().is_none());
        let claims = ctx.claims();
        assert_eq!(claims["iss"], "https://iss.example");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["exp"], 2_000_000_000_u64);
        assert_eq!(claims["client_id"], "app-1");
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(ctx.token_id(), Some("id-1"));
    }

    // Claims a custom verifier gives the builder are shared, and weighed
    // whole, values included.
    #[test]
    fn given_claims_are_weighed_with_their_values() {
        let weigh = |value: Value| {
            let mut claims = Map::new();
            claims.insert("x".into(), value);
            AuthContext::builder("i", "s")
                .claims(claims)
                .build()
                .retained_bytes()
        };
        let small = weigh(Value::Null);
        assert!(weigh(Value::String("a".repeat(10_000))) >= small + 10_000);
        let tiny_objects = Value::Array((0..700).map(|_| serde_json::json!({"": 0})).collect());
        assert!(weigh(tiny_objects) >= small + 700 * 600);
    }

    #[test]
    fn builder_debug_names_the_caller_only() {
        let mut claims = Map::new();
        claims.insert("email".into(), Value::String("alice@example.com".into()));
        let builder = AuthContext::builder("https://iss", "alice").claims(claims);
        let dbg = format!("{builder:?}");
        assert!(
            dbg.contains("alice") && dbg.contains("https://iss"),
            "{dbg}"
        );
        assert!(!dbg.contains("alice@example.com"), "{dbg}");
    }

    #[test]
    fn require_scopes_names_the_missing_ones() {
        let ctx = AuthContext::builder("i", "s").scopes(["a", "b"]).build();
        assert!(ctx.require_scopes(["a"]).is_ok());
        let err = ctx.require_scopes(["a", "c"]).unwrap_err();
        assert!(err.message.contains("c"));
    }
}
