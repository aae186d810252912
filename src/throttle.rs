//! Failed-authentication throttling: failures counted per client address
//! (an IPv6 address by its /64) and per token fingerprint (the first 16 bytes of the token's SHA-256, in
//! hex; never the token) in the [`SharedStore`], in fixed windows. Once a
//! key reaches its limit, every further request from that address (or with
//! that token) is answered 429 with `Retry-After` before any verification
//! work, until its window passes. Requests without credentials are counted
//! on their own key with their own limit (the retry-storm case).
//!
//! Off unless a limit is configured. The client address is the socket
//! peer's; `X-Forwarded-For` (or, without it, `Forwarded`) is read only when
//! the peer is a configured trusted proxy, and then the right-most address
//! that is not itself a trusted proxy is the client (the left part of the
//! header is written by the client and can be anything).
//!
//! Verifications that wait (a key fetch, an introspection call) count
//! against the address's failure limit while they are in flight, one per
//! distinct token: the failures of a burst sent at once are only known
//! once its verifications end, so without this one address got a whole
//! burst per window through (found from outside: 100 made-up opaque tokens
//! on one HTTP/2 connection made 100 introspection calls against a limit
//! of 3). Kept in this process (a replica counts its own).
//!
//! When the store fails, throttling fails open: the request goes on to be
//! verified as usual (security never depends on the throttle), the failure
//! is logged and counted (`store_errors`).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use http::HeaderMap;
use ipnet::IpNet;

use crate::error::ConfigError;
use crate::store::{SharedStore, StoreError};

/// A limit: `count` failures per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    pub(crate) count: u64,
    pub(crate) window: Duration,
}

impl RateLimit {
    /// Longest window accepted.
    pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

    /// Parses `<count>/<seconds>` (the environment form).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let form = "must be <count>/<seconds>, for example 20/60";
        let (count, secs) = text.trim().split_once('/').ok_or(form)?;
        let count: u64 = count.trim().parse().map_err(|_| form.to_owned())?;
        let secs: u64 = secs.trim().parse().map_err(|_| form.to_owned())?;
        Self::new(count, Duration::from_secs(secs))
    }

    /// A checked limit: a count of at least 1, a window of 1 s to 24 h.
    pub(crate) fn new(count: u64, window: Duration) -> Result<Self, String> {
        if count == 0 {
            return Err("the count must be at least 1".to_owned());
        }
        if window < Duration::from_secs(1) || window > Self::MAX_WINDOW {
            return Err("the window must be from 1 to 86400 seconds".to_owned());
        }
        Ok(Self { count, window })
    }
}

/// The header a trusted proxy writes the client's address in (see
/// [`AuthConfigBuilder::forwarded_header`](crate::AuthConfigBuilder::forwarded_header)). Only that one is read: the
/// other is whatever the client sent, passed on by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (the default): what nginx, Envoy, HAProxy,
    /// Traefik and the cloud load balancers append to.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = ConfigError;

    /// `x-forwarded-for` or `forwarded` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(ConfigError::new(
                "forwarded_header",
                format!("{s:?} is not one of x-forwarded-for, forwarded"),
            )),
        }
    }
}

/// The throttle settings of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ThrottleSettings {
    /// Failed authentications per address and per token fingerprint.
    pub(crate) failed: Option<RateLimit>,
    /// Requests without credentials per address.
    pub(crate) missing: Option<RateLimit>,
    /// Peers whose forwarded header is believed.
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// The header they write the client's address in.
    pub(crate) forwarded_header: ForwardedHeader,
}

/// Parses a trusted proxy: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a single
/// address. A network of every address (`0.0.0.0/0`, `::/0`) is refused:
/// it would believe the `X-Forwarded-For` any client writes, so each
/// request could name its own client address and escape every limit (or
/// be counted as someone else).
pub(crate) fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|net| ipv4_of_mapped(net.trunc()))
        .map_err(|_| format!("{text:?} is not a CIDR (10.0.0.0/8) or an IP address"))?;
    if net.prefix_len() == 0 {
        return Err(format!(
            "{text:?} trusts every address: any client's X-Forwarded-For would be believed; \
             list the proxies' own addresses or networks (10.0.0.0/8)"
        ));
    }
    Ok(net)
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network
/// it maps (`10.0.0.0/8`): client addresses are compared in their IPv4 form
/// ([`canonical`]), so the mapped form never matched, and its whole range
/// (`::ffff:0:0/96`) escaped the check for networks of every address
/// (found from outside).
fn ipv4_of_mapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .network()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

/// Why a request is throttled (the audit `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Too many failed authentications from the address or with the token.
    FailedAuth,
    /// Too many requests without credentials from the address.
    MissingAuth,
}

impl Limit {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::FailedAuth => "failed_auth_limit",
            Self::MissingAuth => "missing_auth_limit",
        }
    }
}

/// The decision on a request before verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// Answer 429, retry after this many seconds.
    Throttled(Limit, u64),
}

/// What the throttle knows of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    pub(crate) addr: Option<IpAddr>,
    /// The token's fingerprint, when the request carries one.
    pub(crate) fingerprint: Option<Box<str>>,
    /// No `Authorization` header at all.
    pub(crate) missing: bool,
}

/// A verdict not decided at once (the store must be waited for).
pub(crate) type PendingVerdict = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// The throttle of a layer: the settings, the store, the counters.
#[derive(Debug)]
pub(crate) struct Throttle {
    settings: ThrottleSettings,
    store: Arc<dyn SharedStore>,
    throttled: AtomicU64,
    store_errors: AtomicU64,
    /// Per address key: the distinct tokens whose verification is waiting,
    /// with how many requests of each.
    in_flight: Mutex<HashMap<String, HashMap<Box<str>, u32>>>,
    /// How many verifications are in flight in all: while none is, the
    /// check takes no lock (the common case: every call of a client that
    /// reuses its token is checked).
    in_flight_total: AtomicU64,
}

/// A verification in flight, counted under its address until dropped
/// ([`Throttle::begin_verification`]).
pub(crate) struct InFlight {
    throttle: Arc<Throttle>,
    key: String,
    fingerprint: Box<str>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.throttle.in_flight_total.fetch_sub(1, Ordering::AcqRel);
        let mut map = self
            .throttle
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tokens) = map.get_mut(&self.key) {
            if let Some(n) = tokens.get_mut(&self.fingerprint) {
                *n -= 1;
                if *n == 0 {
                    tokens.remove(&self.fingerprint);
                }
            }
            if tokens.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

const PREFIX: &str = "mcp_oauth2:throttle:";

impl Throttle {
    pub(crate) fn new(settings: ThrottleSettings, store: Arc<dyn SharedStore>) -> Self {
        Self {
            settings,
            store,
            throttled: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            in_flight_total: AtomicU64::new(0),
        }
    }

    /// Counts `subject`'s verification as in flight under its address until
    /// the returned guard is dropped (after its failure, if it fails, has
    /// been counted). `None` when failures are not throttled or the
    /// request carries no token or address.
    pub(crate) fn begin_verification(self: &Arc<Self>, subject: &Subject) -> Option<InFlight> {
        self.settings.failed?;
        let (Some(addr), Some(fingerprint)) = (subject.addr, subject.fingerprint.as_ref()) else {
            return None;
        };
        let key = addr_key("addr", addr);
        self.in_flight_total.fetch_add(1, Ordering::AcqRel);
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .entry(fingerprint.clone())
            .or_default() += 1;
        Some(InFlight {
            throttle: Arc::clone(self),
            key,
            fingerprint: fingerprint.clone(),
        })
    }

    /// How many distinct tokens other than `own` are being verified for
    /// the address key `key` (a request with a token already in flight
    /// joins its verification and adds no work).
    fn in_flight_others(&self, key: &str, own: Option<&str>) -> u64 {
        if self.in_flight_total.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(key).map_or(0, |tokens| {
            let own = own.is_some_and(|fp| tokens.contains_key(fp));
            (tokens.len() - usize::from(own)) as u64
        })
    }

    /// Whether any limit is configured.
    pub(crate) fn enabled(&self) -> bool {
        self.settings.failed.is_some() || self.settings.missing.is_some()
    }

    /// Requests answered 429 so far.
    pub(crate) fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Store operations that failed so far.
    pub(crate) fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }

    /// The client's address: the socket peer, or (when the peer is a
    /// trusted proxy) the right-most forwarded address that is not a
    /// trusted proxy.
    pub(crate) fn client_addr(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let hops = forwarded_hops(headers, self.settings.forwarded_header);
        for hop in hops.iter().rev() {
            match hop {
                Some(addr) if self.trusted(*addr) => continue,
                Some(addr) => return Some(*addr),
                // A hop that is not an address: what is left of it was
                // written by someone untrusted; the last trusted hop is
                // the best known client.
                None => break,
            }
        }
        Some(peer)
    }

    fn trusted(&self, addr: IpAddr) -> bool {
        self.settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&addr))
    }

    /// The verdict for `subject` before verification: decided at once when
    /// the store answers at once (the memory store always does), else a
    /// future to wait for.
    pub(crate) fn check(self: &Arc<Self>, subject: &Subject) -> Result<Verdict, PendingVerdict> {
        let this = Arc::clone(self);
        let subject = subject.clone();
        let mut future: PendingVerdict = Box::pin(async move { this.verdict(&subject).await });
        match future.as_mut().now_or_never() {
            Some(verdict) => Ok(verdict),
            None => Err(future),
        }
    }

    async fn verdict(&self, subject: &Subject) -> Verdict {
        // (key, limit, reason, whether verifications in flight count on it)
        let mut keys: Vec<(String, RateLimit, Limit, bool)> = Vec::with_capacity(3);
        if let Some(limit) = self.settings.failed {
            if let Some(addr) = subject.addr {
                keys.push((addr_key("addr", addr), limit, Limit::FailedAuth, true));
            }
            if let Some(fp) = &subject.fingerprint {
                keys.push((
                    format!("{PREFIX}token:{fp}"),
                    limit,
                    Limit::FailedAuth,
                    false,
                ));
            }
        }
        if subject.missing
            && let (Some(limit), Some(addr)) = (self.settings.missing, subject.addr)
        {
            keys.push((addr_key("missing", addr), limit, Limit::MissingAuth, false));
        }
        for (key, limit, which, counts_in_flight) in keys {
            let in_flight = if counts_in_flight {
                self.in_flight_others(&key, subject.fingerprint.as_deref())
            } else {
                0
            };
            let throttled = match self.store.peek(&key).await {
                // A window longer than the limit's is none this crate
                // wrote (found from outside: a counter planted with a
                // year's expiry held an address throttled for that year):
                // not counted, and the next failure starts a fresh one.
                Ok(Some(window))
                    if window.resets_in <= limit.window
                        && window.count.saturating_add(in_flight) >= limit.count =>
                {
                    Some(retry_after(window.resets_in))
                }
                // Verifications in flight alone: they end within a
                // verification's deadline; their failures then count.
                Ok(_) if in_flight >= limit.count => Some(1),
                Ok(_) => None,
                Err(e) => {
                    self.store_failed(&e);
                    (in_flight >= limit.count).then_some(1)
                }
            };
            if let Some(secs) = throttled {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                crate::metrics::emit("mcp_oauth2_throttled_total", "reason", which.reason());
                return Verdict::Throttled(which, secs);
            }
        }
        Verdict::Pass
    }

    /// Counts a failed authentication of `subject` (a request without
    /// credentials on its own key). Done at once when the store answers at
    /// once, else in a task.
    pub(crate) fn record_failure(self: &Arc<Self>, subject: &Subject) {
        let mut keys: Vec<(String, Duration)> = Vec::with_capacity(2);
        if subject.missing {
            if let (Some(limit), Some(addr)) = (self.settings.missing, subject.addr) {
                keys.push((addr_key("missing", addr), limit.window));
            }
        } else if let Some(limit) = self.settings.failed {
            if let Some(addr) = subject.addr {
                keys.push((addr_key("addr", addr), limit.window));
            }
            if let Some(fp) = &subject.fingerprint {
                keys.push((format!("{PREFIX}token:{fp}"), limit.window));
            }
        }
        if keys.is_empty() {
            return;
        }
        let this = Arc::clone(self);
        let mut future: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            for (key, window) in keys {
                if let Err(e) = this.store.hit(&key, window).await {
                    this.store_failed(&e);
                }
            }
        });
        if future.as_mut().now_or_never().is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }

    /// Counts a failed store operation of `user` (the `store_errors`
    /// metric, shared by the layer's users of the store).
    pub(crate) fn count_store_error(&self, user: &'static str) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        crate::metrics::emit("mcp_oauth2_store_errors_total", "user", user);
    }

    fn store_failed(&self, error: &StoreError) {
        self.count_store_error("throttle");
        crate::store::log_store_error!(
            error,
            target: crate::audit::TARGET,
            event = "store.error",
            reason = "store_unavailable",
            user = "throttle",
            error = %error,
            "the shared store failed: throttling fails open for this request"
        );
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The counter key of a client address. An IPv6 client counts by its /64:
/// a subscriber is given a whole /64 (RFC 6177, RFC 8273) and can pick any
/// of its 2^64 addresses for each request, so counting /128s would give it
/// 2^64 budgets. IPv4 addresses count one by one.
fn addr_key(kind: &str, addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("{PREFIX}{kind}:{v4}"),
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & !(u128::MAX >> 64);
            format!("{PREFIX}{kind}:{}/64", std::net::Ipv6Addr::from(net))
        }
    }
}

/// Seconds to wait, rounded up, at least 1.
fn retry_after(left: Duration) -> u64 {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    secs.max(1)
}

/// The forwarded hops, left to right: every `X-Forwarded-For` field's
/// comma-separated items, or without one, every `Forwarded` element's
/// `for=` (RFC 7239). `None` for an item that is not an address.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    // Each element on its own: one that is not UTF-8 (or not an address)
    // is a hop of unknown address, not a reason to drop the elements the
    // proxy appended after it (found from outside: `\xff, 198.51.100.30`,
    // as nginx's `$proxy_add_x_forwarded_for` writes it, charged the
    // client's failures to the proxy).
    let elements = |name: http::HeaderName| {
        headers
            .get_all(name)
            .into_iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|element| std::str::from_utf8(element).ok())
    };
    match header {
        ForwardedHeader::XForwardedFor => elements(X_FORWARDED_FOR)
            .map(|item| parse_hop(item?.trim()))
            .collect(),
        ForwardedHeader::Forwarded => elements(http::header::FORWARDED)
            .map(|element| {
                element?.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    if name.trim().eq_ignore_ascii_case("for") {
                        Some(parse_hop(value.trim().trim_matches('"')))
                    } else {
                        None
                    }
                })?
            })
            .collect(),
    }
}

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// An address of a forwarded hop: `192.0.2.1`, `192.0.2.1:443`,
/// `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(item: &str) -> Option<IpAddr> {
    if let Ok(addr) = item.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    if let Ok(sock) = item.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    let inner = item.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// The fingerprint of the credential in an `Authorization` value: the
/// first 16 bytes of the SHA-256 of the token (after the scheme), in hex.
pub(crate) fn fingerprint(authorization: &[u8]) -> Box<str> {
    let token = match memchr::memchr(b' ', authorization) {
        Some(i) => authorization.get(i + 1..).unwrap_or_default().trim_ascii(),
        None => authorization,
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
    let short = digest.as_ref().get(..16).unwrap_or_default();
    crate::correlation::hex(short).into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn throttle(proxies: &[&str]) -> Arc<Throttle> {
        throttle_reading(proxies, ForwardedHeader::default())
    }

    fn throttle_reading(proxies: &[&str], header: ForwardedHeader) -> Arc<Throttle> {
        Arc::new(Throttle::new(
            ThrottleSettings {
                failed: Some(RateLimit::new(2, Duration::from_secs(60)).unwrap()),
                missing: Some(RateLimit::new(3, Duration::from_secs(60)).unwrap()),
                trusted_proxies: proxies.iter().map(|p| parse_proxy(p).unwrap()).collect(),
                forwarded_header: header,
            },
            Arc::new(MemoryStore::default()),
        ))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_parse_with_precise_errors() {
        let l = RateLimit::parse(" 20 / 60 ").unwrap();
        assert_eq!((l.count, l.window), (20, Duration::from_secs(60)));
        for bad in ["", "20", "x/60", "20/x", "20/60/1", "-1/60"] {
            assert!(
                RateLimit::parse(bad)
                    .unwrap_err()
                    .contains("<count>/<seconds>"),
                "{bad}"
            );
        }
        assert!(RateLimit::parse("0/60").unwrap_err().contains("at least 1"));
        assert!(RateLimit::parse("5/0").unwrap_err().contains("window"));
        assert!(RateLimit::parse("5/86401").unwrap_err().contains("window"));
        assert_eq!(parse_proxy("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_proxy("::1").unwrap().to_string(), "::1/128");
        // IPv4-mapped networks are read as the IPv4 networks they map,
        // as client addresses are (found from outside: they never
        // matched), and the whole mapped range trusts every IPv4 client.
        assert_eq!(
            parse_proxy("::ffff:127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(
            parse_proxy("::ffff:10.1.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(
            parse_proxy("::ffff:0:0/96")
                .unwrap_err()
                .contains("every address")
        );
        let t = throttle(&["::ffff:127.0.0.1"]);
        assert_eq!(
            t.client_addr(
                Some(ip("127.0.0.1")),
                &headers(&[("x-forwarded-for", "198.51.100.7")])
            ),
            Some(ip("198.51.100.7"))
        );
        assert!(
            parse_proxy("10.0.0.0/33")
                .unwrap_err()
                .contains("not a CIDR")
        );
    }

    // Forwarded headers count only from a trusted peer, and then the
    // right-most untrusted hop is the client.
    #[test]
    fn client_address_from_trusted_proxies_only() {
        let t = throttle(&["10.0.0.0/8", "fd00::/8"]);
        let spoof = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(
            t.client_addr(Some(ip("203.0.113.9")), &spoof),
            Some(ip("203.0.113.9"))
        );
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(
            t.client_addr(Some(ip("10.0.0.1")), &chain),
            Some(ip("198.51.100.7"))
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.3")]);
        assert_eq!(
            t.client_addr(Some(ip("10.0.0.1")), &all_trusted),
            Some(ip("10.0.0.1"))
        );
        let garbage = headers(&[("x-forwarded-for", "7.7.7.7, junk")]);
        assert_eq!(
            t.client_addr(Some(ip("10.0.0.1")), &garbage),
            Some(ip("10.0.0.1"))
        );
        let fwd = headers(&[(
            "forwarded",
            "for=5.5.5.5, for=\"[2001:db8::1]:443\";proto=https",
        )]);
        // `Forwarded` is read only when the proxies are said to write it.
        assert_eq!(
            t.client_addr(Some(ip("fd00::1")), &fwd),
            Some(ip("fd00::1"))
        );
        let reads_forwarded =
            throttle_reading(&["10.0.0.0/8", "fd00::/8"], ForwardedHeader::Forwarded);
        assert_eq!(
            reads_forwarded.client_addr(Some(ip("fd00::1")), &fwd),
            Some(ip("2001:db8::1"))
        );
        let port = headers(&[("x-forwarded-for", "192.0.2.1:5000")]);
        assert_eq!(
            t.client_addr(Some(ip("10.0.0.1")), &port),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            t.client_addr(Some(ip("::ffff:10.0.0.1")), &port),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(t.client_addr(None, &port), None);
    }

    // Only the configured header is read: a proxy passes on what the client
    // sent in the other one (found from outside: behind a proxy writing
    // `Forwarded`, a client's own `X-Forwarded-For` named any address). An
    // element that is not UTF-8 is one unknown hop, not the end of the
    // header (found from outside: the whole line was dropped).
    #[test]
    fn only_the_configured_header_names_the_client() {
        use ForwardedHeader;
        let both = headers(&[
            ("x-forwarded-for", "203.0.113.20"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        let xff = throttle_reading(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let fwd = throttle_reading(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        assert_eq!(
            xff.client_addr(Some(ip("10.0.0.1")), &both),
            Some(ip("203.0.113.20"))
        );
        assert_eq!(
            fwd.client_addr(Some(ip("10.0.0.1")), &both),
            Some(ip("198.51.100.7"))
        );
        // The other header alone names nobody: the peer is the client.
        let only_xff = headers(&[("x-forwarded-for", "203.0.113.20")]);
        assert_eq!(
            fwd.client_addr(Some(ip("10.0.0.1")), &only_xff),
            Some(ip("10.0.0.1"))
        );
        let mut odd = HeaderMap::new();
        odd.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 198.51.100.30").unwrap(),
        );
        assert_eq!(
            xff.client_addr(Some(ip("10.0.0.1")), &odd),
            Some(ip("198.51.100.30"))
        );
        let mut odd_last = HeaderMap::new();
        odd_last.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"198.51.100.30, \xff").unwrap(),
        );
        assert_eq!(
            xff.client_addr(Some(ip("10.0.0.1")), &odd_last),
            Some(ip("10.0.0.1")),
            "an unknown last hop: the proxy is the best known client"
        );
        let mut odd_fwd = HeaderMap::new();
        odd_fwd.append(
            "forwarded",
            http::HeaderValue::from_bytes(b"for=\xff, for=198.51.100.31").unwrap(),
        );
        assert_eq!(
            fwd.client_addr(Some(ip("10.0.0.1")), &odd_fwd),
            Some(ip("198.51.100.31"))
        );
        assert_eq!(
            "Forwarded".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::Forwarded
        );
        assert_eq!(
            " X-Forwarded-For ".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::XForwardedFor
        );
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }

    #[test]
    fn failures_throttle_after_the_limit_and_missing_counts_apart() {
        let t = throttle(&[]);
        let bad = Subject {
            addr: Some(ip("192.0.2.1")),
            fingerprint: Some(fingerprint(b"Bearer abc")),
            missing: false,
        };
        assert_eq!(t.check(&bad).ok().unwrap(), Verdict::Pass);
        t.record_failure(&bad);
        t.record_failure(&bad);
        let Ok(Verdict::Throttled(Limit::FailedAuth, secs)) = t.check(&bad) else {
            panic!("throttled");
        };
        assert!((59..=60).contains(&secs), "{secs}");
        // The same token from another address, by its fingerprint.
        let moved = Subject {
            addr: Some(ip("192.0.2.2")),
            ..bad.clone()
        };
        assert!(matches!(t.check(&moved), Ok(Verdict::Throttled(..))));
        // Without credentials from a fresh address: its own limit.
        let missing = Subject {
            addr: Some(ip("192.0.2.3")),
            fingerprint: None,
            missing: true,
        };
        for _ in 0..3 {
            assert_eq!(t.check(&missing).ok().unwrap(), Verdict::Pass);
            t.record_failure(&missing);
        }
        assert!(matches!(
            t.check(&missing),
            Ok(Verdict::Throttled(Limit::MissingAuth, _))
        ));
        assert_eq!(t.throttled(), 3);
        assert_eq!(t.store_errors(), 0);
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(2001)), 3);
    }

    // A window longer than the limit's is none the throttle wrote (a
    // counter planted in a shared store with a year's expiry): it throttles
    // nobody.
    #[test]
    fn a_window_longer_than_the_limits_is_not_counted() {
        let t = throttle(&[]);
        let subject = Subject {
            addr: Some(ip("192.0.2.40")),
            fingerprint: None,
            missing: false,
        };
        let key = addr_key("addr", ip("192.0.2.40"));
        for _ in 0..5 {
            let _ = t
                .store
                .hit(&key, Duration::from_secs(365 * 24 * 3600))
                .now_or_never();
        }
        assert_eq!(t.check(&subject).ok().unwrap(), Verdict::Pass);
    }

    // Verifications in flight count one per distinct token under their
    // address (a token already in flight joins it), and leave nothing
    // behind once dropped.
    #[test]
    fn verifications_in_flight_count_per_distinct_token() {
        let t = throttle(&[]);
        let subject = |token: &[u8], addr: &str| Subject {
            addr: Some(ip(addr)),
            fingerprint: Some(fingerprint(token)),
            missing: false,
        };
        let a = subject(b"Bearer a", "192.0.2.9");
        let b = subject(b"Bearer b", "192.0.2.9");
        let key = addr_key("addr", ip("192.0.2.9"));
        let first = t.begin_verification(&a).unwrap();
        let joined = t.begin_verification(&a).unwrap();
        assert_eq!(t.in_flight_others(&key, b.fingerprint.as_deref()), 1);
        assert_eq!(t.in_flight_others(&key, a.fingerprint.as_deref()), 0);
        let second = t.begin_verification(&b).unwrap();
        // Two distinct tokens in flight, the limit (2): a third is
        // throttled, one of the two is not; another address is not.
        let d = subject(b"Bearer d", "192.0.2.9");
        assert!(matches!(
            t.check(&d),
            Ok(Verdict::Throttled(Limit::FailedAuth, 1))
        ));
        assert_eq!(t.check(&a).ok().unwrap(), Verdict::Pass);
        assert_eq!(
            t.check(&subject(b"Bearer d", "192.0.2.10")).ok().unwrap(),
            Verdict::Pass
        );
        drop((first, second));
        assert_eq!(t.in_flight_others(&key, None), 1, "joined one remains");
        drop(joined);
        assert!(t.in_flight.lock().unwrap().is_empty());
        // Without a failure limit, or a token, nothing is counted.
        let missing = Subject {
            fingerprint: None,
            missing: true,
            ..a.clone()
        };
        assert!(t.begin_verification(&missing).is_none());
    }

    #[test]
    fn fingerprints_hash_the_token_only() {
        assert_eq!(fingerprint(b"Bearer abc"), fingerprint(b"DPoP abc"));
        assert_eq!(fingerprint(b"Bearer abc").len(), 32);
        assert_ne!(fingerprint(b"Bearer abc"), fingerprint(b"Bearer abd"));
        assert!(!fingerprint(b"Bearer abc").contains("abc"));
    }
}
