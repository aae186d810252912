//! Key sets: fetching (with discovery), parsing, caching and rotation.

pub(crate) mod cache;
pub(crate) mod key;
pub(crate) mod keyset;
