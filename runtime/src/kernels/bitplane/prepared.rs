//! Codes prepared once: a bit-plane layer's `k`-plane codes rebuilt from its planes, in the
//! layouts the integer kernels read, kept per (node, plane count) for as long as a
//! [`crate::Session`] (or one [`crate::run_with`] call, across its batch chunks) lives.
//!
//! *Why:* rebuilding `q_k` from `k` planes and packing the conv panel costs a pass over every
//! weight per call, which at batch 1 is most of a small network's run. Only layers whose
//! weight inputs are graph constants are kept (the session checks), so an entry can never go
//! stale: the graph is borrowed for the session's lifetime and constants cannot change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use strata_ir::NodeId;

use super::byte_panel::CodeQuads;
use super::packed::PackedRows;
use super::panel::CodeRows;

/// One layer's codes at one plane count.
pub(super) struct PreparedCodes {
    /// `q_k`, row-major `[R, K]` (fully connected kernel, float path, conv rows' source).
    pub codes: Vec<i16>,
    /// Conv: the panel's code rows per group (a row of ones first), built on first use.
    pub rows: OnceLock<Vec<CodeRows>>,
    /// Conv: the byte panel's code rows per group (a row of ones first), built on first use.
    pub quads: OnceLock<Vec<CodeQuads>>,
    /// The codes in 2-, 4- or 8-bit fields (layers read once per call), built on first use.
    pub packed: OnceLock<PackedRows>,
}

impl PreparedCodes {
    pub fn new(codes: Vec<i16>) -> Self {
        PreparedCodes {
            codes,
            rows: OnceLock::new(),
            quads: OnceLock::new(),
            packed: OnceLock::new(),
        }
    }
}

/// Prepared codes by (node, plane count). Holds 2 bytes per weight (plus the conv panel's
/// copy: 2 bytes per weight for the int16 panel, 1 for the byte panel; or the packed fields,
/// `k/8` to 1 byte) for every plane count a run asked for.
#[derive(Default)]
pub struct PreparedCache {
    map: Mutex<HashMap<(NodeId, u8), Arc<PreparedCodes>>>,
}

impl PreparedCache {
    /// The entry for `(node, k)`, made by `make` the first time. The lock is not held while
    /// `make` runs; two racing calls build the same codes and the first insert wins.
    pub(super) fn get_or_make<E>(
        &self,
        key: (NodeId, u8),
        make: impl FnOnce() -> Result<PreparedCodes, E>,
    ) -> Result<Arc<PreparedCodes>, E> {
        let lock = || self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hit) = lock().get(&key) {
            return Ok(Arc::clone(hit));
        }
        let made = Arc::new(make()?);
        Ok(Arc::clone(lock().entry(key).or_insert(made)))
    }

    /// Number of (node, plane count) entries held.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing has been prepared yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
