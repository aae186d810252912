//! Clock helpers shared by the verifiers, the context and the handles: the
//! Unix time now, and saturating conversions, so that a hostile `exp` never
//! overflows [`Instant`] or [`SystemTime`]. A leaf: imports nothing from the crate.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it):
/// the expiry of handles and request state.
pub(crate) fn now_unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Nanoseconds on a monotonic clock that starts at the first call (never
/// steps back, whatever the system clock does): spacing events in time.
pub(crate) fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `now + after`, or `now` when that is not representable (a deadline that
/// cannot be computed is already due: fail closed, never panic).
pub(crate) fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or(now)
}

/// The time `after` from now, saturated at the latest time
/// [`system_time`] gives (never an overflow panic).
pub(crate) fn system_now_after(after: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(after)
        .filter(|t| *t <= system_time(LATEST_UNIX))
        .unwrap_or_else(|| system_time(LATEST_UNIX))
}

/// The latest time every platform's [`SystemTime`] can represent that we
/// use: 9999-12-31T23:59:59Z.
const LATEST_UNIX: u64 = 253_402_300_799;

/// `secs` after the Unix epoch as a [`SystemTime`], saturated at
/// 9999-12-31T23:59:59Z (never an overflow panic).
pub(crate) fn system_time(secs: u64) -> SystemTime {
    let d = Duration::from_secs(secs.min(LATEST_UNIX));
    UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Saturating time: no overflow panic, whatever the token says.
    #[test]
    fn time_arithmetic_saturates() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), now);
        assert_eq!(
            system_now_after(Duration::MAX),
            system_time(LATEST_UNIX),
            "a token endpoint's expires_in of 10^18 s panicked here"
        );
        assert_eq!(
            system_now_after(Duration::from_secs(10u64.pow(18))),
            system_time(LATEST_UNIX)
        );
        assert!(system_now_after(Duration::from_secs(60)) > SystemTime::now());
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(system_time(u64::MAX), system_time(LATEST_UNIX));
        assert_eq!(system_time(5), UNIX_EPOCH + Duration::from_secs(5));
    }
}
