//! The load client of `examples/loadbench`: stateless `tools/call whoami`
//! requests over keep-alive connections, timed per request, with every
//! answer checked (a JSON-RPC error or a tool error counts as an error, so a
//! server that does less work cannot look faster), and the CPU time the
//! server used during the round.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The subject of every benchmark token (and of the unprotected server's
/// fixed caller).
pub(crate) const SUBJECT: &str = "bench";

/// Longest wait for one response: a stuck server cannot hold a round open.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which revision of the MCP protocol a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// 2026-07-28: stateless, the version and client capabilities in the
    /// request's `_meta`, `Mcp-Method` and `Mcp-Name` headers.
    Stateless2026,
    /// An earlier revision (2025-06-18, 2025-11-25) on a stateless server:
    /// `MCP-Protocol-Version` only, no `initialize`, no `Mcp-Session-Id`.
    Legacy(&'static str),
}

impl Protocol {
    /// The revisions `--python-protocol` accepts.
    pub(crate) fn parse(version: &str) -> Option<Self> {
        match version {
            "2026-07-28" => Some(Self::Stateless2026),
            "2025-11-25" => Some(Self::Legacy("2025-11-25")),
            "2025-06-18" => Some(Self::Legacy("2025-06-18")),
            _ => None,
        }
    }

    /// The `MCP-Protocol-Version` header value.
    pub(crate) fn version(self) -> &'static str {
        match self {
            Self::Stateless2026 => "2026-07-28",
            Self::Legacy(version) => version,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Self::Stateless2026 => {
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#
            }
            Self::Legacy(_) => {
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#
            }
        }
    }
}

/// One server under load.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// Name in the report.
    pub(crate) name: String,
    /// The MCP endpoint.
    pub(crate) url: String,
    /// Bearer token, if the server wants one.
    pub(crate) token: Option<String>,
    pub(crate) protocol: Protocol,
    /// The server's `/proc/.../stat` (a process, or the server's one thread),
    /// to measure the CPU it used; `None` where there is no procfs.
    pub(crate) cpu_stat: Option<PathBuf>,
}

impl Target {
    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut req = client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", self.protocol.version())
            .body(self.protocol.body());
        if self.protocol == Protocol::Stateless2026 {
            req = req
                .header("mcp-method", "tools/call")
                .header("mcp-name", "whoami");
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// One request, before any timing: fails unless the server answers a
    /// successful `whoami` whose subject is [`SUBJECT`].
    pub(crate) async fn probe(&self) -> Result<(), BoxError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let resp = self.request(&client).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        let text = String::from_utf8_lossy(&body);
        let fail = |why: &str| -> BoxError {
            format!(
                "{} ({} {}): {why}; status {status}, body {text}",
                self.name,
                self.url,
                self.protocol.version()
            )
            .into()
        };
        if !status.is_success() {
            return Err(fail("not a success"));
        }
        let result = tool_result(&body).ok_or_else(|| fail("not a successful tool result"))?;
        let subject = result["content"][0]["text"]
            .as_str()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|who| who["subject"].as_str().map(str::to_owned));
        if subject.as_deref() != Some(SUBJECT) {
            return Err(fail(&format!("whoami subject is not {SUBJECT:?}")));
        }
        Ok(())
    }
}

/// The `result` of a JSON-RPC response that succeeded: no `error` member
/// and no `"isError": true` in the result.
fn tool_result(body: &[u8]) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    if v.get("error").is_some() {
        return None;
    }
    let result = v.get_mut("result")?.take();
    if !result.is_object() || result.get("isError") == Some(&Value::Bool(true)) {
        return None;
    }
    Some(result)
}

/// What one round measured.
#[derive(Debug)]
pub(crate) struct RoundResult {
    /// Successful requests.
    pub(crate) requests: usize,
    /// Failed requests: transport errors, non-2xx statuses, JSON-RPC or tool
    /// errors, unreadable bodies.
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
    /// Latencies of the successful requests, sorted, in microseconds.
    pub(crate) latencies_us: Vec<u64>,
    /// CPU time the server used, in cores (CPU seconds per second).
    pub(crate) server_cores: Option<f64>,
    /// CPU time this process used apart from the server, in cores: the load
    /// client (near 1.0, the client is the bottleneck, not the server).
    pub(crate) client_cores: Option<f64>,
    /// CPU time every other process of the machine used, in cores: well
    /// above 0, something else ran and the round is not a clean sample.
    pub(crate) other_cores: Option<f64>,
}

impl RoundResult {
    pub(crate) fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile (0.0 to 1.0) of the latencies, in microseconds.
    pub(crate) fn percentile_us(&self, p: f64) -> u64 {
        let sorted = &self.latencies_us;
        if sorted.is_empty() {
            return 0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }
}

/// Drives `target` with `connections` concurrent request loops for
/// `seconds`, then waits for the requests in flight (each bounded by
/// [`REQUEST_TIMEOUT`]).
pub(crate) async fn drive(target: &Target, connections: usize, seconds: u64) -> RoundResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default();
    let target = Arc::new(target.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let own_stat = PathBuf::from("/proc/self/stat");
    let machine_before = machine_cpu_seconds();
    let own_before = cpu_seconds(&own_stat);
    let cpu_before = target.cpu_stat.as_deref().and_then(cpu_seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = client.clone();
        let target = Arc::clone(&target);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match target.request(&client).send().await {
                    Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                        Ok(body) => tool_result(&body).is_some(),
                        Err(_) => false,
                    },
                    _ => false,
                };
                if ok {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            latencies_us.extend(lat);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    let cpu_after = target.cpu_stat.as_deref().and_then(cpu_seconds);
    let own_after = cpu_seconds(&own_stat);
    let machine_after = machine_cpu_seconds();
    latencies_us.sort_unstable();
    let server = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| after - before);
    let own = own_before
        .zip(own_after)
        .map(|(before, after)| after - before);
    // An rmcp server is a thread of this process: its time is not the client's.
    let in_process = target
        .cpu_stat
        .as_deref()
        .is_some_and(|stat| stat.starts_with(format!("/proc/{}/", std::process::id())));
    let client = match (own, server) {
        (Some(own), Some(server)) if in_process => Some(own - server),
        (own, _) if !in_process => own,
        _ => None,
    };
    let machine = machine_before
        .zip(machine_after)
        .map(|(before, after)| after - before);
    let other = match (machine, own, server) {
        (Some(m), Some(own), Some(_)) if in_process => Some(m - own),
        (Some(m), Some(own), Some(server)) => Some(m - own - server),
        _ => None,
    };
    let secs = elapsed.as_secs_f64();
    RoundResult {
        requests: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
        server_cores: server.map(|s| s / secs),
        client_cores: client.map(|c| c / secs),
        other_cores: other.map(|o| (o / secs).max(0.0)),
    }
}

/// User, nice and system CPU seconds of the whole machine, from the first
/// line of `/proc/stat` (interrupt time, which no process is charged for,
/// left out), in the same 1/100 s ticks.
fn machine_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let mut fields = text.lines().next()?.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let mut ticks = 0u64;
    for _ in 0..3 {
        ticks += fields.next()?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

/// User plus system CPU seconds from a `/proc/<pid>/stat` (the whole
/// process) or `/proc/<pid>/task/<tid>/stat` (one thread) file, in clock
/// ticks of 1/100 s (Linux's `USER_HZ` on every architecture it exports).
fn cpu_seconds(stat: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces;
    // fields 14 and 15 (utime, stime) are the 12th and 13th after it.
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}
