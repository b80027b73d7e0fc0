//! The store's public types: options, stats, failed events, append outcomes, customer views.

use super::*;

/// Tuning knobs of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Rows in the in-memory table before it is written out as a segment.
    pub flush_rows: usize,
    /// Segments allowed before the smallest are compacted together.
    pub max_segments: usize,
    /// Automatic compaction merges at most this many rows at once, so its memory stays bounded however large the
    /// store grows (a merge holds the merged segments' payloads in memory).
    pub compact_max_rows: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush_rows: 1_000_000,
            max_segments: 8,
            compact_max_rows: 4_000_000,
        }
    }
}

/// An event that failed validation, kept with the reason so it can be inspected and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailedEvent {
    pub received_at: Timestamp,
    pub code: String,
    pub message: String,
    /// Where it came from: `http`, or `FILE:LINE` for imports.
    pub source: String,
    /// The event as received (truncated to 64 KiB).
    pub raw: String,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AppendOutcome {
    /// New events made durable.
    pub accepted: usize,
    /// Events whose `messageId` was already stored (or repeated within the request); stored once.
    pub duplicates: usize,
    /// Failed events recorded.
    pub failed: usize,
    /// Events of deleted customers (filed under or linking an identifier in the deletion record): not stored.
    pub suppressed: usize,
}

/// Counts describing a store.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct StoreStats {
    pub events: u64,
    pub customers: u64,
    pub identifiers: u64,
    pub segments: u64,
    pub memtable_events: u64,
    pub segment_bytes: u64,
    pub wal_bytes: u64,
    pub failed_events: u64,
    pub merge_edges: u64,
    pub identity_warnings: u64,
    pub steps: u64,
    pub channels: u64,
}

/// A stored event with its arrival sequence number and its customer's display id (see `Store::events_after`).
#[derive(Debug, Clone)]
pub struct SequencedEvent {
    pub seq: u64,
    pub customer: String,
    pub event: Event,
}

/// One event of a customer's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub time: Timestamp,
    pub channel: String,
    pub step: String,
    pub identifier: String,
    pub device: Option<String>,
    pub event: Event,
}

/// Everything known about one customer.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerView {
    pub customer_id: String,
    pub identifiers: Vec<Identifier>,
    pub merges: Vec<MergeEdge>,
    pub warnings: Vec<IdentityWarning>,
    pub events: Vec<TimelineEntry>,
}
