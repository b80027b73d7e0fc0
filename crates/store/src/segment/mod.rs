//! Immutable columnar segments: the events behind the log, clustered by customer and time.
//!
//! File layout (all integers little-endian):
//! ```text
//! "WMSEG001" | column sections | payload blocks | footer (JSON) | u32 footer length | u32 footer crc32 | "WMSEGEND"
//! ```
//! Columns (`ident` u32, `ts` i64 µs, `seq` u64, `step` u32, `channel` u16, `msg_hash` u64) are each one
//! zstd-compressed section with its own crc32; from format 2 on, `ts` and `seq` are stored as deltas divided by
//! their greatest common divisor (kept in the footer) and zigzag-coded, and every column but the random `msg_hash`
//! is byte-shuffled (all first bytes, then all second bytes, …) so zstd sees the runs of zero high bytes. `ident`,
//! `step` and `channel` hold indexes into dictionaries kept in the footer, so a segment is self-describing and its
//! codes are remapped to the process's global codes at load.
//! Payloads (the full event as JSON) are stored in zstd blocks of [`ROWS_PER_BLOCK`] rows, read on demand: a
//! block is `u32 count | count × u32 stored length (byte-shuffled) | stored payloads`. A payload is stored without
//! the fields its row's columns give back byte for byte — a derived message id (`"messageId":"imp-…",`, see
//! [`derived_message_id`]), `"timestamp":<ts>,` and `"event":<step>,` — as a flags byte (1–7), the u16 offset of
//! each left-out field, and the rest; byte 8 marks a payload stored whole that itself starts with a byte from 1 to
//! 8; anything else is a payload stored whole. Those fields are most of what zstd cannot squeeze out of an imported
//! row (16 random hex digits, a distinct timestamp). Format 1 (plain deltas, unshuffled columns, cumulative end
//! offsets, payloads whole) is still read.
//! Rows are sorted by (customer at write time, timestamp, sequence), so one customer's journey is contiguous.

use crate::error::{Result, StoreError};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

mod codec;
mod payload;
mod read;
#[cfg(test)]
mod tests;
mod write;

use codec::*;
use payload::*;
pub(crate) use write::*;

const MAGIC_HEAD: &[u8; 8] = b"WMSEG001";
const MAGIC_TAIL: &[u8; 8] = b"WMSEGEND";
/// Rows per payload block: small enough that one customer lookup decompresses little.
pub(crate) const ROWS_PER_BLOCK: usize = 256;
const ZSTD_LEVEL: i32 = 3;
/// How a zstd frame starts (a JSON footer starts with `{`).
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The segment format written; format 1 is still read.
const FORMAT: u32 = 2;

/// The first byte of a payload stored whole that itself starts with a byte that would read as flags.
const WHOLE: u8 = 8;

/// What a row's columns say of its event: enough to give back the fields its payload was stored without.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowKey<'a> {
    pub msg_hash: u64,
    pub ts: i64,
    pub step: &'a str,
}

/// How derived message ids start: `imp-` and 16 lowercase hex digits, which are the id's own hash.
pub(crate) const DERIVED_ID_PREFIX: &str = "imp-";

/// The message id Waymark gives an event whose source has none (an imported row), from a 64-bit hash of what
/// identifies it; its `msg_hash` is that hash.
pub fn derived_message_id(hash: u64) -> String {
    let mut id = Vec::with_capacity(DERIVED_ID_PREFIX.len() + 16);
    id.extend_from_slice(DERIVED_ID_PREFIX.as_bytes());
    push_hex16(&mut id, hash);
    String::from_utf8(id).expect("the prefix and hex digits are ASCII")
}

/// Appends `value` as 16 lower-case hex digits (what `{:016x}` writes, without the formatting machinery, which
/// was a tenth of deriving an imported row's id).
fn push_hex16(out: &mut Vec<u8>, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend(
        (0..16)
            .rev()
            .map(|nibble| DIGITS[(value >> (nibble * 4)) as usize & 15]),
    );
}

/// The hash a derived message id stands for (`None` for any other id).
pub(crate) fn derived_id_hash(message_id: &str) -> Option<u64> {
    let hex = message_id.strip_prefix(DERIVED_ID_PREFIX)?;
    if hex.len() != 16 {
        return None;
    }
    hex.bytes().try_fold(0u64, |hash, byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        Some(hash << 4 | u64::from(digit))
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SectionRef {
    offset: u64,
    len: u64,
    crc: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BlockRef {
    offset: u64,
    len: u64,
    crc: u32,
    first_row: u32,
    n_rows: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Footer {
    format: u32,
    n_rows: u32,
    min_ts: i64,
    max_ts: i64,
    min_seq: u64,
    max_seq: u64,
    identifiers: Vec<String>,
    steps: Vec<String>,
    channels: Vec<String>,
    ident: SectionRef,
    ts: SectionRef,
    seq: SectionRef,
    step: SectionRef,
    channel: SectionRef,
    msg_hash: SectionRef,
    blocks: Vec<BlockRef>,
    /// What the `ts` and `seq` deltas were divided by (format 2 on; absent, 1).
    #[serde(default)]
    ts_scale: u64,
    #[serde(default)]
    seq_scale: u64,
}

/// One row to write: the event's hot fields and its JSON payload.
#[derive(Clone, Copy)]
pub(crate) struct SegmentRow<'a> {
    pub identifier: &'a str,
    pub ts: i64,
    pub seq: u64,
    pub step: &'a str,
    pub channel: &'a str,
    pub msg_hash: u64,
    pub payload: Payload<'a>,
}

/// A row's payload: whole (as serialised), or already in the form a segment stores it for this row's key (read
/// from another segment of the current format by [`SegmentFile::block_rows`]), which is written as it is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    Whole(&'a [u8]),
    Stored(&'a [u8]),
}

/// The decoded columns of a segment, with dictionary codes still local to the segment.
pub(crate) struct SegmentColumns {
    pub identifiers: Vec<String>,
    pub steps: Vec<String>,
    pub channels: Vec<String>,
    /// The rows, with codes into the dictionaries above.
    pub rows: Columns,
}

/// The hot columns of rows: identifier, time, sequence, step, channel and message hash. Codes are a segment's own
/// (with its dictionaries, in [`SegmentColumns`]) or process-global (in memory tables and loaded segments).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Columns {
    pub ident: Vec<u32>,
    pub ts: Vec<i64>,
    pub seq: Vec<u64>,
    pub step: Vec<u32>,
    pub channel: Vec<u16>,
    pub msg_hash: Vec<u64>,
}

impl Columns {
    pub(crate) fn with_capacity(rows: usize) -> Columns {
        Columns {
            ident: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            seq: Vec::with_capacity(rows),
            step: Vec::with_capacity(rows),
            channel: Vec::with_capacity(rows),
            msg_hash: Vec::with_capacity(rows),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }
}

/// An open segment file: block index for payload reads.
pub(crate) struct SegmentFile {
    pub path: PathBuf,
    file: File,
    format: u32,
    blocks: Vec<BlockRef>,
    pub n_rows: u32,
    pub bytes: u64,
}

struct Dictionary<'a> {
    /// Keyed per process (the values come from senders); std's SipHash was 5 % of writing a segment.
    index: std::collections::HashMap<&'a str, u32, foldhash::fast::RandomState>,
    values: Vec<String>,
}

impl<'a> Dictionary<'a> {
    fn new() -> Self {
        Dictionary {
            index: Default::default(),
            values: Vec::new(),
        }
    }
    fn code(&mut self, value: &'a str) -> u32 {
        let next = self.values.len() as u32;
        *self.index.entry(value).or_insert_with(|| {
            self.values.push(value.to_string());
            next
        })
    }
}
