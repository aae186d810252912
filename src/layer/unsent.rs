//! Answers not yet taken by their clients, bounded in bytes per user and
//! per process.
//!
//! Why: rmcp builds an answer whole before it is sent, and an answer its
//! client does not read stays in memory until the server gives up on the
//! connection (`response_write_timeout`, 30 s by default, and only once a
//! write has started). An HTTP/2 client may have 200 streams open on each
//! connection and set its flow-control window to zero: found from outside,
//! one token holder calling the reference server's `list_notes` (pages of
//! up to about 450 KB) on 200 streams of each connection held 90 MB a
//! connection, and connections are bounded only by the descriptor limit.
//!
//! Every answer frame of an admitted POST from [`METERED_FROM`] bytes up
//! (a JSON answer, an event of a stream) is counted under its caller's user
//! (issuer, tenant, subject: all its clients together, as the session and
//! listen caps count) and under the process, from the moment the layer has
//! it until it has been handed on, and is handed on in copies of at most
//! [`CHUNK`] bytes: what the server's HTTP/2 stream (which takes a frame as
//! soon as its window has one byte of room) or HTTP/1 write buffer holds
//! beyond the count is then one chunk, never the whole answer (a slice of
//! the answer would keep all of it alive). Smaller frames pass untouched
//! and uncounted: an answer that small costs about what any request's
//! answer costs (a 401 included), which the connection limit bounds; the
//! common call (a small JSON answer) pays one length check.
//!
//! Past
//! [`max_unsent_answer_bytes_per_principal`](crate::AuthConfigBuilder::max_unsent_answer_bytes_per_principal)
//! (429) or
//! [`max_unsent_answer_bytes`](crate::AuthConfigBuilder::max_unsent_answer_bytes)
//! (503) the answer is dropped: the call ran (its handler is done), and a
//! client that reads its answers never gets there. A JSON answer, or an
//! event stream's first event while its head is held (late step-up), is
//! replaced by the refusal; an event of a stream whose head has left ends
//! the stream with an error (HTTP/2 `RST_STREAM`, HTTP/1 the connection
//! closed), since its status cannot change any more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::Frame;

use super::sessions::{Owner, user_key};
use crate::context::AuthContext;

/// Answer frames from this size up are counted (see the module
/// documentation); smaller ones pass untouched.
pub(crate) const METERED_FROM: usize = 4 * 1024;

/// The largest copy handed on at once: HTTP/2's default frame size.
pub(crate) const CHUNK: usize = 16 * 1024;

/// The bytes of answers not yet handed on, per user and in all.
#[derive(Debug)]
pub(crate) struct UnsentAnswers {
    per_user: usize,
    total: usize,
    /// Locked only for an answer frame of [`METERED_FROM`] bytes or more.
    open: Mutex<Open>,
}

/// The process's bytes and each user's (only users with bytes are kept).
#[derive(Debug, Default)]
struct Open {
    bytes: usize,
    users: HashMap<Owner, usize>,
}

/// Which bound an answer found full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The caller's user holds `max_unsent_answer_bytes_per_principal`.
    Principal,
    /// The process holds `max_unsent_answer_bytes`.
    Process,
}

impl Full {
    /// The refusal of an answer dropped for this bound.
    pub(super) fn refused(self) -> super::http_rules::Refused {
        match self {
            Self::Principal => super::http_rules::Refused::TooManyUnsentAnswers,
            Self::Process => super::http_rules::Refused::UnsentAnswersFull,
        }
    }
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Principal => {
                "the user's answers not yet taken by their clients hold too many bytes"
            }
            Self::Process => "the answers not yet taken by their clients hold too many bytes",
        })
    }
}

impl std::error::Error for Full {}

impl UnsentAnswers {
    pub(crate) fn new(per_user: usize, total: usize) -> Self {
        Self {
            per_user,
            total,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `bytes` more of `user`'s, or names the bound that is full.
    fn take(&self, user: &Owner, bytes: usize) -> Result<(), Full> {
        let mut open = self.lock();
        let held = open.users.get(user).copied().unwrap_or(0);
        if held.saturating_add(bytes) > self.per_user {
            return Err(Full::Principal);
        }
        if open.bytes.saturating_add(bytes) > self.total {
            return Err(Full::Process);
        }
        open.bytes += bytes;
        *open.users.entry(*user).or_insert(0) += bytes;
        Ok(())
    }

    /// `bytes` of `user`'s were handed on (or dropped).
    fn give_back(&self, user: &Owner, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut open = self.lock();
        open.bytes = open.bytes.saturating_sub(bytes);
        if let Some(held) = open.users.get_mut(user) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                open.users.remove(user);
            }
        }
    }

    /// What is counted: the process's bytes and `user`'s.
    #[cfg(test)]
    pub(crate) fn counts(&self, user: &Owner) -> (usize, usize) {
        let open = self.lock();
        (open.bytes, open.users.get(user).copied().unwrap_or(0))
    }
}

/// The metering of one answer: the bytes of a large frame not yet handed
/// on, counted under the caller's user, given back as they are copied out
/// and when dropped.
pub(super) struct Meter {
    table: Arc<UnsentAnswers>,
    ctx: AuthContext,
    /// The caller's user, computed at its first large frame.
    user: Option<Owner>,
    /// Counted already for frames not yet seen (a JSON answer counted
    /// before its head left).
    prepaid: usize,
    /// What is left to hand on of the frame being copied out, counted.
    rest: Bytes,
    /// The last copy handed on, still counted until the body is asked for
    /// its next frame (the server has sent it, or the window let it go) or
    /// dropped: found from outside, a stalled HTTP/2 stream took one copy
    /// whatever its window, and 4 to 16 KiB answers were never counted.
    out: usize,
}

impl Meter {
    pub(super) fn new(table: Arc<UnsentAnswers>, ctx: AuthContext) -> Self {
        Self {
            table,
            ctx,
            user: None,
            prepaid: 0,
            rest: Bytes::new(),
            out: 0,
        }
    }

    /// The server asked for the next frame: the copy handed on before is
    /// no longer held here.
    fn asked_again(&mut self) {
        if self.out > 0
            && let Some(user) = self.user
        {
            self.table.give_back(&user, self.out);
        }
        self.out = 0;
    }

    fn user(&mut self) -> Owner {
        *self.user.get_or_insert_with(|| user_key(&self.ctx))
    }

    /// Counts `bytes` now, for frames to come (a JSON answer whose size is
    /// known before its head leaves), or names the bound that is full.
    pub(super) fn prepay(&mut self, bytes: usize) -> Result<(), Full> {
        if bytes < METERED_FROM {
            return Ok(());
        }
        let user = self.user();
        self.table.take(&user, bytes)?;
        self.prepaid += bytes;
        Ok(())
    }

    /// Counts a frame held before the head leaves (an event stream held for
    /// late step-up), or names the bound that is full.
    pub(super) fn prepay_frame(&mut self, frame: &Frame<Bytes>) -> Result<(), Full> {
        match frame.data_ref() {
            Some(data) => self.prepay(data.len()),
            None => Ok(()),
        }
    }

    /// The next copy of the frame being handed on, if any (the server
    /// asked for a frame: the copy before it is given back).
    pub(super) fn next_chunk(&mut self) -> Option<Frame<Bytes>> {
        self.asked_again();
        if self.rest.is_empty() {
            return None;
        }
        let n = self.rest.len().min(CHUNK);
        let chunk = Bytes::copy_from_slice(self.rest.get(..n).unwrap_or_default());
        if n == self.rest.len() {
            // The last copy: the answer's own bytes go now.
            self.rest = Bytes::new();
        } else {
            let _ = self.rest.split_to(n);
        }
        // Still counted, as the copy, until the server asks again.
        self.out = n;
        Some(Frame::data(chunk))
    }

    /// A frame about to be handed on: as it is when small, else counted
    /// (or paid for already) and its first copy, or the bound that is full.
    pub(super) fn pass(&mut self, frame: Frame<Bytes>) -> Result<Frame<Bytes>, Full> {
        let len = frame.data_ref().map_or(0, Bytes::len);
        if len < METERED_FROM {
            return Ok(frame);
        }
        if self.prepaid >= len {
            self.prepaid -= len;
        } else {
            let user = self.user();
            self.table.take(&user, len)?;
        }
        // A data frame (its length is not zero).
        self.rest = frame.into_data().unwrap_or_default();
        Ok(self
            .next_chunk()
            .unwrap_or_else(|| Frame::data(Bytes::new())))
    }

    /// Nothing is left to copy out, and the last copy was taken: the body
    /// may end (until then the server asks once more, which gives the last
    /// copy back; a stalled stream keeps it counted).
    pub(super) fn is_done(&self) -> bool {
        self.rest.is_empty() && self.out == 0
    }

    /// Bytes counted and not handed on yet (the last copy included).
    fn held(&self) -> usize {
        self.rest.len() + self.prepaid + self.out
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let held = self.held();
        if let Some(user) = self.user {
            self.table.give_back(&user, held);
        }
    }
}

/// A body whose large frames are metered (see the module documentation).
pub(super) struct Metered {
    inner: Body,
    meter: Meter,
}

impl Metered {
    pub(super) fn new(inner: Body, meter: Meter) -> Self {
        Self { inner, meter }
    }
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.meter.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        match std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(this.meter.pass(frame).map_err(axum::Error::new))),
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.meter.is_done() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        size_with(self.inner.size_hint(), self.meter.rest.len() as u64)
    }
}

/// The size of a body of `inner`'s hint with `more` bytes in front of it.
pub(crate) fn size_with(inner: http_body::SizeHint, more: u64) -> http_body::SizeHint {
    let mut hint = http_body::SizeHint::new();
    hint.set_lower(inner.lower().saturating_add(more));
    if let Some(upper) = inner.upper() {
        hint.set_upper(upper.saturating_add(more));
    }
    hint
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    fn ctx(sub: &str) -> AuthContext {
        AuthContext::builder("https://iss", sub).build()
    }

    fn meter(table: &Arc<UnsentAnswers>, sub: &str) -> Meter {
        Meter::new(Arc::clone(table), ctx(sub))
    }

    #[test]
    fn small_frames_pass_uncounted_and_large_ones_are_counted_until_handed_on() {
        let table = Arc::new(UnsentAnswers::new(100_000, 1_000_000));
        let alice = user_key(&ctx("alice"));
        let mut m = meter(&table, "alice");
        let small = m.pass(Frame::data(Bytes::from(vec![b'a'; METERED_FROM - 1])));
        assert_eq!(small.unwrap().into_data().unwrap().len(), METERED_FROM - 1);
        assert_eq!(table.counts(&alice), (0, 0));
        // 40,000 bytes: counted whole, handed on in copies of 16 KiB.
        let answer: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = m
            .pass(Frame::data(Bytes::from(answer.clone())))
            .unwrap()
            .into_data()
            .unwrap()
            .to_vec();
        assert_eq!(out.len(), CHUNK);
        // The copy handed on still counts until the next is asked for.
        assert_eq!(table.counts(&alice), (40_000, 40_000));
        while let Some(chunk) = m.next_chunk() {
            let chunk = chunk.into_data().unwrap();
            assert!(chunk.len() <= CHUNK);
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out, answer);
        assert_eq!(table.counts(&alice), (0, 0));
        assert!(table.lock().users.is_empty());
    }

    #[test]
    fn each_user_and_the_process_are_bounded_and_a_dropped_answer_gives_back() {
        let table = Arc::new(UnsentAnswers::new(50_000, 80_000));
        let (alice, bob) = (user_key(&ctx("alice")), user_key(&ctx("bob")));
        let mut first = meter(&table, "alice");
        first.prepay(30_000).unwrap();
        let mut second = meter(&table, "alice");
        // Her second answer would pass her bound; his fits.
        assert_eq!(second.prepay(30_000), Err(Full::Principal));
        let mut his = meter(&table, "bob");
        his.prepay(40_000).unwrap();
        assert_eq!(table.counts(&bob), (70_000, 40_000));
        // Within her bound, past the process's.
        assert_eq!(second.prepay(15_000), Err(Full::Process));
        // A clone of her context is her user too (another client of hers
        // is counted with her: the user, not the token).
        assert_eq!(table.counts(&alice), (70_000, 30_000));
        // Prepaid bytes are spent by the frame that comes.
        let frame = first
            .pass(Frame::data(Bytes::from(vec![1; 30_000])))
            .unwrap();
        assert_eq!(frame.into_data().unwrap().len(), CHUNK);
        assert_eq!(table.counts(&alice), (70_000, 30_000));
        assert!(first.next_chunk().is_some());
        assert_eq!(table.counts(&alice), (70_000 - CHUNK, 30_000 - CHUNK));
        // Dropped before the end (the client went): all given back.
        drop(first);
        drop(his);
        assert_eq!(table.counts(&alice), (0, 0));
        assert!(table.lock().users.is_empty());
        second.prepay(15_000).unwrap();
    }

    #[tokio::test]
    async fn a_metered_body_reads_whole_and_fails_past_the_bound() {
        let table = Arc::new(UnsentAnswers::new(10_000, 1_000_000));
        let alice = user_key(&ctx("alice"));
        let body = Metered::new(Body::from(vec![7u8; 9_000]), meter(&table, "alice"));
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(9_000));
        let read = body.collect().await.unwrap().to_bytes();
        assert_eq!(&read[..], &[7u8; 9_000][..]);
        assert_eq!(table.counts(&alice), (0, 0));
        // Over her bound: the body fails, naming the bound.
        let body = Metered::new(Body::from(vec![7u8; 10_001]), meter(&table, "alice"));
        let e = body.collect().await.unwrap_err();
        assert!(e.to_string().contains("too many bytes"), "{e}");
        assert_eq!(table.counts(&alice), (0, 0));
    }
}
