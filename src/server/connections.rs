//! The connection limit of [`McpServer::serve`](crate::McpServer::serve)
//! and its accept loop's handling of failed accepts.
//!
//! Each TCP connection costs a file descriptor and a task. Without a bound,
//! a client opening connections until the process reaches its descriptor
//! limit (`RLIMIT_NOFILE`) made every `accept` fail (`EMFILE`) for everyone,
//! and left no descriptor for the server's own outgoing work (key sets,
//! introspection, Redis). A connection takes one of
//! [`max_connections`](crate::McpServerBuilder::max_connections) slots
//! before it is accepted; at the limit the loop stops accepting, so new
//! connections wait in the kernel's listen backlog (and are accepted, in
//! order, as slots free up) instead of each costing a descriptor.
//!
//! A slot is held by the connection's task and by every request of the
//! connection still in progress when the connection ends: a client that
//! sends a slow call and closes its connection at once leaves rmcp's
//! handler running (rmcp spawns it in a task of its own), and that handler
//! keeps the connection's slot until it ends (see `stream_slots`). So the
//! connections open and the handlers of closed connections still running
//! together never exceed the limit.
//!
//! The default is three quarters of the process's soft descriptor limit
//! when the server starts serving (the other quarter is left for the
//! listener, the runtime, logs and the server's outgoing connections), or
//! [`FALLBACK_MAX_CONNECTIONS`] where that limit cannot be read or is
//! unlimited.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// One connection's slot, shared with the requests that outlive it.
pub(crate) type ConnectionSlot = Arc<OwnedSemaphorePermit>;

/// The limit where the descriptor limit cannot be read or is unlimited:
/// three quarters of 1,024, the usual soft limit on Linux.
pub(crate) const FALLBACK_MAX_CONNECTIONS: usize = 768;

/// The largest limit a builder accepts (Tokio's semaphore holds at most
/// this many permits).
pub(crate) const MAX_MAX_CONNECTIONS: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// The shortest and longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// At most one log line per this interval for failed accepts, and one for
/// the connection limit.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The default connection limit: three quarters of the soft
/// `RLIMIT_NOFILE`, at least 1.
pub(crate) fn default_max_connections() -> usize {
    soft_descriptor_limit()
        .map_or(FALLBACK_MAX_CONNECTIONS, |soft| {
            usize::try_from(soft / 4 * 3 + soft % 4 * 3 / 4).unwrap_or(FALLBACK_MAX_CONNECTIONS)
        })
        .clamp(1, MAX_MAX_CONNECTIONS)
}

#[cfg(unix)]
fn soft_descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn soft_descriptor_limit() -> Option<u64> {
    None
}

/// A log line at most once per [`LOG_INTERVAL`], telling how many events
/// were not logged since the last one.
#[derive(Default)]
pub(crate) struct Every {
    last: Option<Instant>,
    suppressed: u64,
}

impl Every {
    /// `Some(events not logged since the last line)` when a line is due.
    pub(crate) fn due(&mut self) -> Option<u64> {
        self.due_at(Instant::now())
    }

    fn due_at(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Accepts the next connection, pausing after failures.
///
/// An error of the connection itself (aborted or reset while waiting in the
/// backlog) is skipped at once. Any other (`EMFILE`, `ENFILE`, `ENOBUFS`,
/// `ENOMEM`) would fail again at once while the connection waits in the
/// backlog, so the loop pauses, 5 ms at first, doubling up to 1 s, and
/// starts again from 5 ms after an accept succeeds; such failures are
/// logged (warning, the error text only) at most once every 10 s, with the
/// count of those not logged.
pub(crate) async fn accept(
    listener: &TcpListener,
    backoff: &mut Duration,
    log: &mut Every,
) -> (TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                *backoff = ACCEPT_BACKOFF_MIN;
                return accepted;
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                if let Some(suppressed) = log.due() {
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = backoff.as_millis(),
                        failures_not_logged = suppressed,
                        "could not accept a connection (out of file descriptors or memory?): retrying after a pause"
                    );
                }
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// The first pause after a failed accept.
pub(crate) fn initial_backoff() -> Duration {
    ACCEPT_BACKOFF_MIN
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_three_quarters_of_the_descriptor_limit() {
        let limit = default_max_connections();
        assert!(limit >= 1);
        if let Some(soft) = soft_descriptor_limit() {
            assert!(u64::try_from(limit).unwrap_or(u64::MAX) <= soft);
        }
    }

    #[test]
    fn log_lines_are_rate_limited() {
        let start = Instant::now();
        let mut every = Every::default();
        assert_eq!(every.due_at(start), Some(0));
        assert_eq!(every.due_at(start), None);
        assert_eq!(every.due_at(start + LOG_INTERVAL / 2), None);
        assert_eq!(every.due_at(start + LOG_INTERVAL), Some(2));
        assert_eq!(every.due_at(start + LOG_INTERVAL), None);
    }
}
