//! The outage cooldown of an authorization server's endpoint (a circuit
//! breaker), shared by the introspection endpoint and the token endpoint of
//! the token exchange: after an outage is seen (no answer, a 5xx or 429,
//! the deadline; or a failed discovery of the endpoint), requests that
//! would need the endpoint are refused at once with the caller's
//! documented error (introspection: 503 `introspection_unavailable`; the
//! exchange: `ExchangeErrorKind::Transport`) instead of costing the
//! endpoint one request each, until a cooldown ends; then one request
//! probes the endpoint (half-open) while the others keep failing fast. A probe that gets an answer closes the breaker (the recovered
//! endpoint is used again at once); one that finds the endpoint still down
//! opens it again for twice as long, up to [`MAX_COOLDOWN`].
//!
//! The cooldowns follow the key sets' retry interval after a failed fetch
//! (`min(jwks_refresh_cooldown, 5 s)`): [`FIRST_COOLDOWN`] doubling up to
//! [`MAX_COOLDOWN`], fixed (short enough that a recovered endpoint is back
//! within seconds, long enough that an outage costs it a request every
//! few seconds, not one per token).
//!
//! The shared store's breakers ([`Breaker::probing_at_once`], one for
//! reads, one for writes) open on an outage (a timeout, a connection lost
//! or refused; an error reply is an answer) and probe at once after the
//! first one: a single connection gone silent costs one timeout and is
//! replaced by the probe's new connection without refusing anything for a
//! second; a store that keeps not answering is then cooled down as above.
//!
//! A small state machine under a plain mutex rather than a crate: it is
//! taken only before a request to the endpoint (a cache miss, a store
//! operation: each a network round trip), for a few field reads and writes, never
//! across an await; the circuit-breaker crates wrap the call itself (their
//! own futures, clocks and failure predicates), which does not fit a
//! lookup whose outcome is classified after the fact and whose probe may
//! be cancelled (a caller that goes away hands the probe to the next one).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cooldown after the first failure.
pub(crate) const FIRST_COOLDOWN: Duration = Duration::from_secs(1);

/// The longest cooldown (after failed probes; as the key sets' 5 s).
pub(crate) const MAX_COOLDOWN: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct State {
    /// Open until then; `None`: closed.
    open_until: Option<Instant>,
    /// Outages in a row (the backoff).
    failures: u32,
    /// A probe is in flight.
    probing: bool,
}

/// The breaker of one endpoint.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    /// Which endpoint, for the logs (`introspection`, `token_exchange`).
    service: &'static str,
    /// What a refused request gets, for the logs.
    refusal: &'static str,
    /// The first outage is followed by a probe at once (no cooldown);
    /// later ones by the cooldowns.
    probe_at_once: bool,
}

/// Leave to ask the endpoint, to be [`settled`](Pass::settle); a probe
/// dropped unsettled (its caller went away) hands the probe to the next
/// request.
#[derive(Debug)]
pub(crate) struct Pass<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

/// How a request to the endpoint ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// The endpoint answered (whatever it said).
    Answered,
    /// An outage: no answer, a 5xx or 429, the deadline.
    Outage,
}

impl Breaker {
    /// A closed breaker for the endpoint of `service`, whose refused
    /// requests get `refusal` (both only for the logs).
    pub(crate) fn new(service: &'static str, refusal: &'static str) -> Self {
        Self {
            state: Mutex::new(State::default()),
            service,
            refusal,
            probe_at_once: false,
        }
    }

    /// A breaker whose first outage is followed by a probe at once, and
    /// only a failed probe starts the cooldowns (1 s, 2 s, 4 s, then 5 s).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // the Redis store's
    pub(crate) fn probing_at_once(service: &'static str, refusal: &'static str) -> Self {
        Self {
            probe_at_once: true,
            ..Self::new(service, refusal)
        }
    }

    /// Leave to ask the endpoint now, or `None`: refuse at once.
    pub(crate) fn admit(&self) -> Option<Pass<'_>> {
        let mut state = self.lock();
        let probe = match state.open_until {
            None => false,
            Some(until) if Instant::now() < until || state.probing => return None,
            Some(_) => {
                state.probing = true;
                true
            }
        };
        Some(Pass {
            breaker: self,
            probe,
            settled: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pass<'_> {
    /// Records how the request ended.
    pub(crate) fn settle(mut self, how: Settle) {
        self.settled = true;
        let mut state = self.breaker.lock();
        if self.probe {
            state.probing = false;
        }
        match how {
            Settle::Answered => {
                if state.open_until.is_some() {
                    tracing::info!(
                        service = self.breaker.service,
                        "the endpoint answers again; it is asked again"
                    );
                }
                *state = State::default();
            }
            Settle::Outage => {
                let now = Instant::now();
                // Requests let through before the breaker opened that fail
                // afterwards do not lengthen the cooldown (nor, once it has
                // passed, start one without a probe): only a failure while
                // closed, or a failed probe, opens it (again).
                if !self.probe && state.open_until.is_some() {
                    return;
                }
                state.failures = state.failures.saturating_add(1);
                let cooldown = cooldown(
                    state
                        .failures
                        .saturating_sub(u32::from(self.breaker.probe_at_once)),
                );
                state.open_until = Some(crate::clock::deadline(now, cooldown));
                if cooldown.is_zero() {
                    tracing::warn!(
                        service = self.breaker.service,
                        failures = state.failures,
                        refusal = self.breaker.refusal,
                        "the endpoint did not answer; the next request probes it, the others meanwhile are refused at once"
                    );
                } else {
                    tracing::warn!(
                        service = self.breaker.service,
                        cooldown_ms = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
                        failures = state.failures,
                        refusal = self.breaker.refusal,
                        "the endpoint is unavailable; requests that need it are refused at once until one request finds it back after the cooldown"
                    );
                }
            }
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.lock().probing = false;
        }
    }
}

/// The cooldown after `failures` outages in a row: 1 s, 2 s, 4 s, then 5 s
/// (none for none: the probe at once of [`Breaker::probing_at_once`]).
fn cooldown(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = failures.saturating_sub(1).min(8);
    FIRST_COOLDOWN
        .saturating_mul(1 << doublings)
        .min(MAX_COOLDOWN)
}

/// A budget of requests to an upstream per second (a fixed window): with
/// anyone able to send tokens that each cost a request (a made-up tenant's
/// key set, a garbage opaque token's introspection), a flood would
/// otherwise cost the authorization server one request per token, and a
/// provider may throttle or block a server that floods it. A counter under
/// a mutex rather than a rate-limiting crate: it is taken only before such
/// a request (a network round trip), for a few field updates.
#[derive(Debug)]
pub(crate) struct PerSecond {
    per_second: u32,
    /// The window's start, what was taken in it, and what was refused.
    window: Mutex<(Instant, u32, u32)>,
}

/// What [`PerSecond::take`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Within the budget.
    Taken,
    /// Past it; `first` for the first refusal of the second (to log once).
    Refused { first: bool },
}

impl PerSecond {
    /// A budget of `per_second` requests a second.
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// One more request, if it fits this second's budget.
    pub(crate) fn take(&self) -> Take {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, 0, 0);
        }
        if window.1 < self.per_second {
            window.1 += 1;
            return Take::Taken;
        }
        window.2 = window.2.saturating_add(1);
        Take::Refused {
            first: window.2 == 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldowns_double_up_to_the_cap() {
        let secs: Vec<u64> = (1..=6).map(|n| cooldown(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 5, 5, 5]);
        assert_eq!(cooldown(0), Duration::ZERO);
        assert_eq!(cooldown(u32::MAX), MAX_COOLDOWN);
    }

    #[test]
    fn closed_open_half_open_closed() {
        let b = Breaker::new("test", "refused");
        // Closed: everyone passes; an outage opens it.
        let (p1, p2) = (b.admit().unwrap(), b.admit().unwrap());
        p1.settle(Settle::Outage);
        assert!(b.admit().is_none(), "open: refused at once");
        // A request let through before does not lengthen the cooldown.
        p2.settle(Settle::Outage);
        assert_eq!(b.lock().failures, 1);
        // Past the cooldown: one probe, the others refused.
        b.lock().open_until = Some(Instant::now());
        let probe = b.admit().unwrap();
        assert!(b.admit().is_none(), "one probe at a time");
        // A probe whose caller went away hands over to the next request.
        drop(probe);
        let probe = b.admit().unwrap();
        probe.settle(Settle::Outage);
        assert_eq!(b.lock().failures, 2, "a failed probe backs off");
        b.lock().open_until = Some(Instant::now());
        b.admit().unwrap().settle(Settle::Answered);
        assert!(b.lock().open_until.is_none(), "closed again");
        assert_eq!(b.lock().failures, 0);
    }

    // The store's breaker: the first outage leaves the next request to
    // probe at once (a connection gone silent is replaced without a second
    // of refusals); requests let through before that fail afterwards, even
    // after the probe started, neither open it nor back it off; a failed
    // probe starts the cooldowns at 1 s.
    #[test]
    fn probing_at_once_then_cooling_down() {
        let b = Breaker::probing_at_once("store", "refused");
        let (p1, p2) = (b.admit().unwrap(), b.admit().unwrap());
        p1.settle(Settle::Outage);
        let probe = b.admit().expect("a probe at once");
        assert!(b.admit().is_none(), "one probe at a time");
        p2.settle(Settle::Outage);
        assert_eq!(b.lock().failures, 1, "a late failure is not a probe's");
        probe.settle(Settle::Answered);
        assert!(b.lock().open_until.is_none(), "the probe closed it");
        // Down for good: the failed probe opens it for the first cooldown.
        b.admit().unwrap().settle(Settle::Outage);
        b.admit().unwrap().settle(Settle::Outage);
        assert_eq!(b.lock().failures, 2);
        let left = b.lock().open_until.unwrap() - Instant::now();
        assert!(left > Duration::from_millis(500), "{left:?}");
        assert!(b.admit().is_none(), "cooling down");
    }

    // A fixed window: `per_second` taken, then refused (the first refusal
    // of the second said once), and a new second's budget.
    #[test]
    fn a_budget_a_second() {
        let budget = PerSecond::new(2);
        assert_eq!(budget.take(), Take::Taken);
        assert_eq!(budget.take(), Take::Taken);
        assert_eq!(budget.take(), Take::Refused { first: true });
        assert_eq!(budget.take(), Take::Refused { first: false });
        std::thread::sleep(Duration::from_millis(1050));
        assert_eq!(budget.take(), Take::Taken);
        assert_eq!(budget.take(), Take::Taken);
        assert_eq!(budget.take(), Take::Refused { first: true });
    }
}
