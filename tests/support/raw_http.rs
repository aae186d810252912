//! A raw HTTP/1.1 client for the attack tests: it sends what reqwest cannot
//! (duplicate headers, exact path bytes) and reports a hang as an error.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::attack::HEAD_TIMEOUT;

/// A request written byte for byte: the target as given, header fields in
/// order (duplicates allowed). `Host` (unless one is given),
/// `Content-Length` and `Connection: close` are added.
#[derive(Debug, Clone)]
pub struct Raw {
    addr: SocketAddr,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Stop reading an event stream once its head is in (a GET stream never ends).
    pub head_only_for_streams: bool,
    /// Send no `Host` field at all (RFC 9112 section 3.2 tests).
    pub omit_host: bool,
    /// Send the body chunked (one chunk) under this `Transfer-Encoding`
    /// value instead of with a `Content-Length`.
    pub transfer_encoding: Option<String>,
    /// The request line's version (`HTTP/1.1` unless set).
    pub version: &'static str,
    /// Leave the connection open after the answer (no `Connection: close`),
    /// for [`Raw::send_on`] a connection several times.
    pub keep_alive: bool,
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was read to its end.
    pub complete: bool,
}

impl RawResponse {
    pub fn failed(e: &str) -> Self {
        Self {
            status: 0,
            headers: vec![("x-client-error".into(), e.to_owned())],
            ..Self::default()
        }
    }

    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the comma-separated list in the field `name` (a CORS
    /// header list) names `item`, in any case.
    pub fn lists(&self, name: &str, item: &str) -> bool {
        self.header(name)
            .unwrap_or_default()
            .split(',')
            .any(|h| h.trim().eq_ignore_ascii_case(item))
    }

    /// Every field named `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC messages of the body: the body itself when it is JSON,
    /// the `data:` lines of an event stream otherwise.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let text = self.text();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            return match v {
                serde_json::Value::Array(items) => items,
                v => vec![v],
            };
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    }

    /// A one-line summary for failure messages.
    pub fn summary(&self) -> String {
        let mut text = self.text();
        text.truncate(300);
        format!("{} {:?} {text:?}", self.status, self.headers)
    }
}

impl Raw {
    pub fn new(addr: SocketAddr, method: &str, target: &str) -> Self {
        Self {
            addr,
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            head_only_for_streams: true,
            omit_host: false,
            transfer_encoding: None,
            version: "HTTP/1.1",
            keep_alive: false,
        }
    }

    /// Sends no `Connection: close`: the connection stays open for the
    /// next request (see [`Raw::send_on`]).
    pub fn keep_alive(mut self) -> Self {
        self.keep_alive = true;
        self
    }

    /// Sends the request without any `Host` field.
    pub fn without_host(mut self) -> Self {
        self.omit_host = true;
        self
    }

    /// Appends a header field (a second one of the same name is a second field).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the request as HTTP/1.0 (which may omit `Host`, RFC 9112
    /// section 3.2).
    pub fn http_1_0(mut self) -> Self {
        self.version = "HTTP/1.0";
        self
    }

    /// Sends the body in one chunk with `Transfer-Encoding: value` (RFC
    /// 9112 section 7.1) instead of a `Content-Length`.
    pub fn chunked_as(mut self, value: &str) -> Self {
        self.transfer_encoding = Some(value.to_owned());
        self
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    /// The request's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        if !self.omit_host
            && !self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(format!("Host: {}\r\n", self.addr).as_bytes());
        }
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if let Some(coding) = &self.transfer_encoding {
            out.extend_from_slice(format!("Transfer-Encoding: {coding}\r\n").as_bytes());
            out.extend_from_slice(b"Connection: close\r\n\r\n");
            if !self.body.is_empty() {
                out.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
                out.extend_from_slice(&self.body);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            return out;
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        if !self.keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// The request's bytes with every `Authorization` value cut to its
    /// first characters, for failure messages.
    pub fn redacted(&self) -> String {
        let mut copy = self.clone();
        for (k, v) in &mut copy.headers {
            if k.eq_ignore_ascii_case("authorization") {
                let keep: String = v.chars().take(14).collect();
                *v = format!("{keep}...[redacted]");
            }
        }
        String::from_utf8_lossy(&copy.to_bytes()).into_owned()
    }

    /// Sends the request on a new connection. `Err` when no response head
    /// arrived within [`HEAD_TIMEOUT`] (a hang) or the connection failed.
    pub async fn send(&self) -> Result<RawResponse, String> {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        self.send_on(&mut stream).await
    }

    /// Sends the request on `stream`, an open connection (one request at a
    /// time: the answer to the previous one was read whole), and reads the
    /// answer.
    pub async fn send_on(&self, stream: &mut tokio::net::TcpStream) -> Result<RawResponse, String> {
        stream
            .write_all(&self.to_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = tokio::time::timeout(HEAD_TIMEOUT, async {
            loop {
                if let Some(i) = find(&buf, b"\r\n\r\n") {
                    return Ok(i);
                }
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err(format!(
                        "connection closed before a response head ({} bytes)",
                        buf.len()
                    ));
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        })
        .await
        .map_err(|_| format!("no response head within {HEAD_TIMEOUT:?}: the request hangs"))??;
        let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut response = RawResponse {
            status,
            headers,
            body: buf.get(head_end + 4..).unwrap_or_default().to_vec(),
            complete: false,
        };
        let is_stream = response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if self.method == "HEAD" || status == 204 || status == 304 {
            response.complete = true;
            return Ok(response);
        }
        if is_stream && self.method == "GET" && self.head_only_for_streams {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: Option<usize> = response
            .header("content-length")
            .and_then(|v| v.parse().ok());
        let mut raw = std::mem::take(&mut response.body);
        let done = |raw: &[u8]| match (length, chunked) {
            (Some(n), _) => raw.len() >= n,
            (None, true) => dechunk(raw).is_some(),
            (None, false) => false,
        };
        let read_body = tokio::time::timeout(HEAD_TIMEOUT, async {
            while !done(&raw) {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return length.is_none() && !chunked,
                    Ok(n) => raw.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
            }
            true
        })
        .await;
        response.complete = matches!(read_body, Ok(true));
        response.body = if chunked {
            dechunk(&raw).unwrap_or_else(|| lenient_dechunk(&raw))
        } else {
            raw
        };
        Ok(response)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body of a complete chunked message; `None` while it is incomplete.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size_text = String::from_utf8_lossy(rest.get(..line_end)?).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = rest.get(line_end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The chunks received so far of an unfinished chunked body.
fn lenient_dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(line_end) = find(rest, b"\r\n") {
        let Some(size) = rest
            .get(..line_end)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
        else {
            break;
        };
        let Some(after) = rest.get(line_end + 2..) else {
            break;
        };
        let take = size.min(after.len());
        out.extend_from_slice(after.get(..take).unwrap_or_default());
        rest = after.get(size + 2..).unwrap_or_default();
        if size == 0 || rest.is_empty() {
            break;
        }
    }
    out
}
