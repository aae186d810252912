//! Late step-up: the per-request slot through which a handler that learns
//! mid-call that it needs more scopes asks for them
//! ([`AuthContext::require_scopes`](crate::AuthContext::require_scopes)).
//!
//! The layer gives every POST it admits a fresh slot holding the scopes it
//! required for the request (the required scopes, the declared and the
//! computed ones). A handler that asks for scopes the token lacks records
//! them here and answers with a JSON-RPC error; the layer, seeing the slot
//! filled before any byte of the response left, replaces the response with
//! a real HTTP 403 `insufficient_scope` challenge naming everything the
//! operation needs. Once bytes were sent (a notification on an SSE
//! stream), the JSON-RPC error stands, with the same scopes in its data.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::Arc;

/// One request's step-up slot.
#[derive(Debug)]
pub(crate) struct StepUp {
    /// What the layer required before dispatch.
    required: Arc<[String]>,
    /// Set once a handler asked for scopes the token lacks.
    asked: AtomicBool,
    /// The scopes handlers asked for, in order, without repeats.
    discovered: Mutex<Vec<String>>,
}

impl StepUp {
    /// A slot for a request that needed `required`.
    pub(crate) fn new(required: Arc<[String]>) -> Self {
        Self {
            required,
            asked: AtomicBool::new(false),
            discovered: Mutex::new(Vec::new()),
        }
    }

    /// Records that the handler needs `scopes` (which the token does not
    /// all grant); returns everything the operation needs: the layer's
    /// requirement, then every scope asked for so far.
    pub(crate) fn ask<S: AsRef<str>>(&self, scopes: &[S]) -> Vec<String> {
        let mut discovered = self
            .discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::scope::extend_unique(&mut discovered, scopes.iter().map(AsRef::as_ref));
        // Release: the handler's later response message is sent after this
        // store; the layer reads the flag once it sees that message.
        self.asked.store(true, Ordering::Release);
        union(&self.required, &discovered)
    }

    /// What the layer required before dispatch.
    pub(crate) fn required(&self) -> &[String] {
        &self.required
    }

    /// Whether a handler asked for more.
    pub(crate) fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire)
    }

    /// Everything the operation needs: required, then discovered.
    pub(crate) fn needed(&self) -> Vec<String> {
        let discovered = self
            .discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        union(&self.required, &discovered)
    }
}

/// Records `scopes` in the request's `slot` when the layer gave it one,
/// and returns everything the operation needs; without a slot, `scopes`
/// themselves (without repeats). What a handler's step-up error names.
pub(crate) fn ask_in<S: AsRef<str>>(slot: Option<&StepUp>, scopes: &[S]) -> Vec<String> {
    match slot {
        Some(slot) => slot.ask(scopes),
        None => {
            let mut out: Vec<String> = Vec::with_capacity(scopes.len());
            crate::scope::extend_unique(&mut out, scopes.iter().map(AsRef::as_ref));
            out
        }
    }
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(a.len() + b.len());
    crate::scope::extend_unique(&mut out, a.iter().chain(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_accumulate_after_the_requirement() {
        let slot = StepUp::new(vec!["notes:read".to_owned()].into());
        assert!(!slot.asked());
        assert_eq!(slot.needed(), ["notes:read"]);
        assert_eq!(
            slot.ask(&["notes:export", "notes:read"]),
            ["notes:read", "notes:export"]
        );
        assert_eq!(
            slot.ask(&["admin", "notes:export"]),
            ["notes:read", "notes:export", "admin"]
        );
        assert!(slot.asked());
        assert_eq!(slot.needed(), ["notes:read", "notes:export", "admin"]);
    }
}
