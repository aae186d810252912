//! Correlation: the [`RequestId`] of a request, taken from `X-Request-Id`
//! (1 to 128 characters of `[A-Za-z0-9._:-]`, not shaped like a JWT), else from the W3C
//! `traceparent` trace id, else generated (32 hex digits, never repeated in
//! a process, unpredictable across processes). The layer
//! echoes it as `X-Request-Id` on every response, puts it in the JSON error
//! body (`request_id`), in every audit event and in the verification span,
//! and hands it to handlers in the request extensions and through
//! [`AuthContext::request_id`](crate::AuthContext::request_id).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The `X-Request-Id` header.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C Trace Context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Longest `X-Request-Id` taken from a client.
pub(crate) const MAX_REQUEST_ID_LEN: usize = 128;

/// The correlation id of one request: also a request extension, so a handler
/// (or an outer layer) reads it with `Extension<RequestId>`.
///
/// Always 1 to 128 characters of `[A-Za-z0-9._:-]`: safe in a header, a
/// JSON string and a log line without escaping.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The id of a request with these headers: a valid `X-Request-Id`
    /// (exactly one), else the trace id of a valid `traceparent`, else a
    /// fresh random id.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        // Most requests carry neither field: one pass over the field names
        // tells, where a lookup of each would hash its name (about 400
        // instructions a request; BENCHMARKS.md, twentieth pass).
        let (mut named, mut traced) = (false, false);
        for name in headers.keys() {
            named |= name == REQUEST_ID_HEADER;
            traced |= name == TRACEPARENT;
        }
        if !named && !traced {
            return Self::generate();
        }
        let mut given = headers.get_all(REQUEST_ID_HEADER).iter();
        if let (Some(value), None) = (given.next(), given.next())
            && let Some(id) = Self::parse(value.as_bytes())
        {
            return id;
        }
        let mut parents = headers.get_all(TRACEPARENT).iter();
        if let (Some(value), None) = (parents.next(), parents.next())
            && let Some(trace) = trace_id(value.as_bytes())
        {
            return Self(trace.into());
        }
        Self::generate()
    }

    /// The id of `req`: the one an outer layer put in its extensions, else
    /// one read from its headers (see [`from_headers`](Self::from_headers))
    /// and put there, so every layer after sees the same.
    pub(crate) fn of_request<B>(req: &mut http::Request<B>) -> Self {
        if let Some(id) = req.extensions().get::<Self>() {
            return id.clone();
        }
        let id = Self::from_headers(req.headers());
        req.extensions_mut().insert(id.clone());
        id
    }

    /// `value` as an id, when it is 1 to 128 characters of `[A-Za-z0-9._:-]`,
    /// does not look like a JWT (`eyJ` then a dot somewhere: a token sent in
    /// the wrong header) and holds no more than 63 base64url characters in a
    /// row (a JWT's signature alone, or a long opaque token, has no dot to
    /// give it away; found from outside: one was echoed and written in
    /// every audit line of its request). Such a value is never taken: it
    /// would be written as it is in the audit events, the spans and the
    /// error body, where token material must never appear. The rule is the
    /// one the audit applies to every other text of a request: no run of
    /// 32 base64url characters or more that looks like random bytes (a
    /// digit, letters switching case four times or more: found from
    /// outside, Ory's opaque tokens, `ory_at_` and runs of 43, went
    /// through the 63 rule; so would an HS256 signature, 43, or a GitHub
    /// token, 40). The ids of the field stay: UUIDs, W3C trace ids and hex
    /// digests are one case, ULIDs are 26 characters, KSUIDs 27, nanoids
    /// 21, and an id of one case with a prefix of another (`request_` and a
    /// ULID) switches once.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= MAX_REQUEST_ID_LEN
            && value
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
            && !crate::error::looks_like_a_jwt(value)
            && !crate::error::holds_a_long_base64url_run(value)
            && !crate::error::holds_a_random_run(value);
        // Checked ASCII above: the conversion cannot fail.
        ok.then(|| std::str::from_utf8(value).ok().map(|s| Self(s.into())))
            .flatten()
    }

    /// A fresh id: 32 lowercase hex digits, distinct for every call in a
    /// process and unpredictable across processes.
    ///
    /// An id is for correlation, not a secret (a client may choose its own
    /// with `X-Request-Id`), so it is not drawn from the system's random
    /// generator per request (about 3,000 instructions a call): a counter,
    /// keyed with 128 random bits drawn once per process, goes through a
    /// bijective mixer, so ids never repeat within a process and do not look
    /// sequential.
    pub fn generate() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static KEYS: std::sync::OnceLock<[u64; 2]> = std::sync::OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let keys = KEYS.get_or_init(|| {
            let mut bytes = [0u8; 16];
            // aws-lc-rs's system random; if it ever failed, the start time
            // still sets processes apart.
            if aws_lc_rs::rand::fill(&mut bytes).is_err() {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                bytes = nanos.to_be_bytes();
            }
            let (hi, lo) = bytes.split_at(8);
            let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
            [word(hi), word(lo)]
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // `mix` is a bijection, so distinct counters give distinct `lo`.
        let lo = mix(n ^ keys[1]);
        let hi = mix(lo ^ keys[0]);
        // 32 lowercase hex digits, `hi` then `lo`, written in place (about
        // 100 instructions; `hex` pushes each digit onto a `String`).
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 32];
        for (i, slot) in text.iter_mut().enumerate() {
            let word = if i < 16 { hi } else { lo };
            let nibble = (word >> (60 - 4 * (i % 16))) & 0xf;
            // A nibble is below 16: `get` never misses.
            *slot = DIGITS.get(nibble as usize).copied().unwrap_or(b'0');
        }
        // ASCII only: the conversion cannot fail.
        Self(std::str::from_utf8(&text).unwrap_or("0").into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value.
    pub(crate) fn header_value(&self) -> HeaderValue {
        // Only `[A-Za-z0-9._:-]`: always a valid header value.
        HeaderValue::from_str(&self.0).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestId").field(&&*self.0).finish()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A layer giving every request its [`RequestId`] (in the request
/// extensions, where the auth layer finds it) and echoing it as
/// `X-Request-Id` on the response: `McpServer` wraps its whole router with
/// it, so that metadata, readiness and 404 answers carry the id too.
///
/// A plain tower service rather than `axum::middleware::from_fn`: that one
/// boxes a future and clones the inner service for every request (about
/// 5,000 instructions a call in the callgrind profile of BENCHMARKS.md);
/// this one only wraps the inner future.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CorrelateLayer;

impl<S> tower_layer::Layer<S> for CorrelateLayer {
    type Service = Correlate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Correlate { inner }
    }
}

/// Marks a request whose [`RequestId`] an outer [`Correlate`] echoes on
/// the response, so the auth layer does not write the header a second time
/// (about 600 instructions a call).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Echoed;

/// The service of [`CorrelateLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Correlate<S> {
    inner: S,
}

impl<S, B> tower_service::Service<http::Request<B>> for Correlate<S>
where
    S: tower_service::Service<http::Request<B>, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = CorrelateFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let id = RequestId::of_request(&mut req);
        // Layers inside (the auth layer) leave the echo to this one.
        req.extensions_mut().insert(Echoed);
        CorrelateFuture {
            inner: self.inner.call(req),
            header: Some(id.header_value()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Correlate`]: the inner one, whose response
    /// gets the `X-Request-Id` header.
    pub(crate) struct CorrelateFuture<F> {
        #[pin]
        inner: F,
        header: Option<HeaderValue>,
    }
}

impl<F, E> std::future::Future for CorrelateFuture<F>
where
    F: std::future::Future<Output = Result<axum::response::Response, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut output = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(header)) = (&mut output, this.header.take()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, header);
        }
        std::task::Poll::Ready(output)
    }
}

/// The trace id of a W3C `traceparent` (`version-traceid-parentid-flags`,
/// lowercase hex of 2, 32, 16 and 2 digits; version `ff` and all-zero ids
/// are invalid; a future version may append fields after a `-`).
fn trace_id(value: &[u8]) -> Option<&str> {
    let mut parts = value.split(|b| *b == b'-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &[u8], n: usize| {
        s.len() == n
            && s.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |s: &[u8]| s.iter().any(|b| *b != b'0');
    let valid = lower_hex(version, 2)
        && version != b"ff"
        && lower_hex(trace, 32)
        && nonzero(trace)
        && lower_hex(parent, 16)
        && nonzero(parent)
        && lower_hex(flags, 2)
        // Version 00 has exactly four fields.
        && (version != b"00" || parts.next().is_none());
    if !valid {
        return None;
    }
    std::str::from_utf8(trace).ok()
}

/// The SplitMix64 finalizer (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", 2014): a bijection of `u64` that
/// scatters consecutive inputs. Hand-written: three lines, and the `rand`
/// crates would bring a generator with state for what is one function.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_valid_request_id_is_kept_and_a_bad_one_replaced() {
        let id = RequestId::from_headers(&headers(&[("x-request-id", "abc-1.2_3:4")]));
        assert_eq!(id.as_str(), "abc-1.2_3:4");
        let long = format!("{}.{}", "a".repeat(63), "b".repeat(64 - 1));
        assert_eq!(long.len(), 127);
        assert_eq!(
            RequestId::from_headers(&headers(&[("x-request-id", &long)])).as_str(),
            long
        );
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        assert_eq!(
            RequestId::from_headers(&headers(&[("x-request-id", uuid)])).as_str(),
            uuid
        );
        // A signature or an opaque token alone: more than 63 base64url
        // characters in a row (found from outside: echoed and logged).
        let signature = "Q".repeat(86);
        let run = format!("x.{}", "a".repeat(64));
        for bad in [
            "",
            "a b",
            "a/b",
            "é",
            "x\"y",
            &"a".repeat(129),
            &"a".repeat(128),
            &signature,
            &run,
        ] {
            let id = RequestId::from_headers(&headers(&[("x-request-id", bad)]));
            assert_ne!(id.as_str(), bad);
            assert_eq!(id.as_str().len(), 32, "{bad:?}");
        }
        // Random bytes in base64url, from 32 characters in a row: Ory's
        // opaque tokens (runs of 50 and 43), an HS256 signature (43), a
        // GitHub token (40), a Stripe key (32). Found from outside: they
        // passed the 63 rule.
        let ory = "ory_at_Xq3vN8Kc1TzR7bLm2WpYd9FsJhG4aE6uQoVi0nC5lBk.kT2mW9qXc4Rz7LpN1vHs8dJf3GbY6aEuQoVi0nC5lBt";
        let hs256 = "mV8rKq2Tz7XcN1bLs4WpYd9FhJgR3aE6uQoVi0nC5lB";
        let github = format!("ghp_{}", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1eF2hJ4");
        let stripe = "sk_live_Zx8Qw2Er4Ty6Ui8Op0As2Df4";
        assert_eq!(stripe.len(), 32);
        for bad in [ory, hs256, github.as_str(), stripe] {
            let id = RequestId::from_headers(&headers(&[("x-request-id", bad)]));
            assert_ne!(id.as_str(), bad);
        }
        // Ids of the field are kept: one case, shorter runs, one case with
        // a prefix of another (found from outside: a first version of the
        // rule replaced these).
        let kept = [
            "0ujtsYcgvSTl8PAuAdqWYSMnLOv",
            "V1StGXR8_Z5jdHi6B-myT",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "550E8400E29B41D4A716446655440000",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "request_2PM9WMAXWGE8NXFCHK99FMPAFM",
            "req-51B0D028-D54A-4CDD-AB65-5F3C4EB3DE4A",
            "RQ6b3e6f0bade65c3b188cc102ddb8379c",
            "20231206T055000Z-x10elxbbcvg645jcn0ivgxv479ns1v",
            "getUserNotificationPreferencesForAccount",
        ];
        for good in kept {
            let id = RequestId::from_headers(&headers(&[("x-request-id", good)]));
            assert_eq!(id.as_str(), good);
        }
        // 31 random characters pass (the rule's limit, documented).
        let short = "mV8rKq2Tz7XcN1bLs4WpYd9FhJgR3aE";
        assert_eq!(short.len(), 31);
        let id = RequestId::from_headers(&headers(&[("x-request-id", short)]));
        assert_eq!(id.as_str(), short);
        // Two ids: neither is trusted.
        let two =
            RequestId::from_headers(&headers(&[("x-request-id", "a"), ("x-request-id", "b")]));
        assert_eq!(two.as_str().len(), 32);
        assert_eq!(format!("{two:?}"), format!("RequestId({:?})", two.as_str()));
        assert_eq!(two.to_string(), two.as_str());
    }

    // W3C Trace Context section 3.2.
    #[test]
    fn traceparent_gives_its_trace_id_when_valid() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let id = RequestId::from_headers(&headers(&[("traceparent", tp)]));
        assert_eq!(id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // X-Request-Id wins.
        let id = RequestId::from_headers(&headers(&[("traceparent", tp), ("x-request-id", "r1")]));
        assert_eq!(id.as_str(), "r1");
        // A later version may add fields.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(
            trace_id(v1.as_bytes()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert_eq!(trace_id(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_distinct_hex() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(a.as_str().len(), 32);
        // Many ids from several threads: all distinct, and consecutive ones
        // share no common prefix or suffix beyond chance.
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..5000)
                            .map(|_| RequestId::generate().as_str().to_owned())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let (x, y) = (RequestId::generate(), RequestId::generate());
        assert_ne!(x.as_str().get(..8), y.as_str().get(..8));
        assert_ne!(x.as_str().get(24..), y.as_str().get(24..));
        assert_eq!(a.header_value(), a.as_str());
        assert_eq!(hex(&[0x00, 0xff, 0x1a]), "00ff1a");
    }
}
