//! Operating settings (issue 17): failed-authentication throttling, the
//! trusted proxies whose forwarded addresses are believed, and the caching
//! of the metadata document.

use std::time::Duration;

use super::AuthConfigBuilder;
use crate::error::ConfigError;
use crate::throttle::{ForwardedHeader, RateLimit, ThrottleSettings, parse_proxy};

/// Default `max-age` of the metadata document's `Cache-Control`.
pub(crate) const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(3600);

/// The operating settings as given to the builder, checked by `build`.
#[derive(Debug, Clone)]
pub(crate) struct WatchOptions {
    pub(crate) failed_auth_limit: Option<(u64, Duration)>,
    pub(crate) missing_auth_limit: Option<(u64, Duration)>,
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) forwarded_header: ForwardedHeader,
    pub(crate) metadata_max_age: Duration,
    /// `None`: every refusal event is written.
    pub(crate) audit_refusal_limit: Option<(u64, Duration)>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            failed_auth_limit: None,
            missing_auth_limit: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            audit_refusal_limit: Some(crate::audit::DEFAULT_REFUSAL_LIMIT),
        }
    }
}

impl WatchOptions {
    /// The checked throttle settings; errors name the builder setting.
    pub(crate) fn throttle(&self) -> Result<ThrottleSettings, ConfigError> {
        let trusted_proxies: Vec<ipnet::IpNet> = self
            .trusted_proxies
            .iter()
            .map(|p| parse_proxy(p).map_err(|m| ConfigError::new("trusted_proxy", m)))
            .collect::<Result<_, _>>()?;
        if let Some(net) = super::builder::first_repeated(&trusted_proxies) {
            return Err(ConfigError::new(
                "trusted_proxy",
                format!("{net} is listed twice"),
            ));
        }
        // Every address in pieces (`0.0.0.0/1` and `128.0.0.0/1`) is every
        // address too (a single `/0` is refused by `parse_proxy`).
        if ipnet::IpNet::aggregate(&trusted_proxies)
            .iter()
            .any(|net| net.prefix_len() == 0)
        {
            return Err(ConfigError::new(
                "trusted_proxy",
                "the trusted proxies together cover every IPv4 or every IPv6 address: \
                 any client's X-Forwarded-For would be believed; list the proxies' own \
                 addresses or networks",
            ));
        }
        Ok(ThrottleSettings {
            failed: checked_limit("failed_auth_limit", self.failed_auth_limit)?,
            missing: checked_limit("missing_auth_limit", self.missing_auth_limit)?,
            trusted_proxies,
            forwarded_header: self.forwarded_header,
        })
    }

    /// The checked refusal log limit.
    pub(crate) fn audit_refusal_limit(&self) -> Result<Option<RateLimit>, ConfigError> {
        checked_limit("audit_refusal_limit", self.audit_refusal_limit)
    }
}

/// A limit as given to the builder, checked; an error names `field`.
fn checked_limit(
    field: &'static str,
    raw: Option<(u64, Duration)>,
) -> Result<Option<RateLimit>, ConfigError> {
    raw.map(|(count, window)| RateLimit::new(count, window))
        .transpose()
        .map_err(|m| ConfigError::new(field, m))
}

impl AuthConfigBuilder {
    /// Throttles failed authentications (default off): after `count`
    /// failures within `window` (1 s to 24 h) from one client address, or
    /// with one token, every further request from that address or with that
    /// token is answered 429 `too_many_requests` with `Retry-After`, before
    /// any verification work, until the window passes. Behind a reverse
    /// proxy set [`trusted_proxy`](Self::trusted_proxy) first, or every
    /// client shares the proxy's address. An IPv6 client address counts by
    /// its /64 (one subscriber's network). Counters live in the shared store.
    pub fn failed_auth_limit(mut self, count: u64, window: Duration) -> Self {
        self.watch.failed_auth_limit = Some((count, window));
        self
    }

    /// Throttles requests without any credentials (default off), counted
    /// per client address apart from failed authentications: the retry
    /// storm of a client that never sends a token.
    pub fn missing_auth_limit(mut self, count: u64, window: Duration) -> Self {
        self.watch.missing_auth_limit = Some((count, window));
        self
    }

    /// A reverse proxy (a CIDR such as `10.0.0.0/8`, or one address) whose
    /// `X-Forwarded-For` (or `Forwarded`, see
    /// [`forwarded_header`](Self::forwarded_header)) header is believed
    /// (default none: the socket peer is the client). The client is then the right-most
    /// forwarded address that is not itself a trusted proxy. A network of
    /// every address (`0.0.0.0/0`, `::/0`) is refused at build time: any
    /// client's `X-Forwarded-For` would be believed.
    pub fn trusted_proxy(mut self, cidr: impl Into<String>) -> Self {
        self.watch.trusted_proxies.push(cidr.into());
        self
    }

    /// Which header the trusted proxies write the client's address in
    /// (default [`ForwardedHeader::XForwardedFor`]); the other one is never
    /// read. A proxy passes on the headers a client sent: were both read,
    /// a client behind a proxy that writes `Forwarded` would choose its own
    /// address with an `X-Forwarded-For` of its making (an address of
    /// someone else to lock out, or a new one per request to escape the
    /// limits). Set [`ForwardedHeader::Forwarded`] when the proxy writes
    /// only `Forwarded` (RFC 7239).
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.watch.forwarded_header = header;
        self
    }

    /// The refusal log limit (default 100 per second): `count` audit
    /// events of each refusal kind (`auth.refused`, `authz.refused`,
    /// `throttled`, `session.refused`) are written per `window` (1 s to
    /// 24 h), spread through it: up to ten (or `count`, when smaller) at
    /// once, then one every `window / count`, so a flood's lines are
    /// written evenly (at most `count` plus nine in any window) rather
    /// than in a burst that delays the calls behind it. The rest are
    /// counted, not written: the next event written
    /// carries their number in its `suppressed` field, and
    /// [`MetricsSnapshot::audit_suppressed`](crate::MetricsSnapshot::audit_suppressed)
    /// counts them all. A flood of bad tokens then costs no log line per
    /// request (README, "Audit events").
    pub fn audit_refusal_limit(mut self, count: u64, window: Duration) -> Self {
        self.watch.audit_refusal_limit = Some((count, window));
        self
    }

    /// Writes every refusal audit event, however many (turns the refusal
    /// log limit off).
    pub fn unlimited_audit_refusals(mut self) -> Self {
        self.watch.audit_refusal_limit = None;
        self
    }

    /// The `max-age` of the metadata document's
    /// `Cache-Control: public, max-age=<seconds>` (default 3600 s; at most
    /// 2147483648 s, RFC 9111 section 1.2.2, or [`build`](Self::build)
    /// refuses it).
    pub fn metadata_max_age(mut self, max_age: Duration) -> Self {
        self.watch.metadata_max_age = max_age;
        self
    }
}
