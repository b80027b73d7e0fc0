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

/// The texts a payload may be stored without, in the order of their flag bits, written into `scratch`: the
/// derived message id of the row's hash, its timestamp, its step as a `track` event's name.
fn leave_out_texts(key: RowKey<'_>, scratch: &mut Vec<u8>) -> [std::ops::Range<usize>; 3] {
    scratch.clear();
    let mut ranges: [std::ops::Range<usize>; 3] = Default::default();
    ranges[0].start = scratch.len();
    scratch.extend_from_slice(b"\"messageId\":\"");
    scratch.extend_from_slice(DERIVED_ID_PREFIX.as_bytes());
    push_hex16(scratch, key.msg_hash);
    scratch.extend_from_slice(b"\",");
    ranges[0].end = scratch.len();
    ranges[1].start = scratch.len();
    scratch.extend_from_slice(b"\"timestamp\":");
    serde_json::to_writer(&mut *scratch, &key.ts).expect("an integer serialises");
    scratch.push(b',');
    ranges[1].end = scratch.len();
    ranges[2].start = scratch.len();
    scratch.extend_from_slice(b"\"event\":");
    serde_json::to_writer(&mut *scratch, key.step).expect("a string serialises");
    scratch.push(b',');
    ranges[2].end = scratch.len();
    ranges
}

/// The field names of the texts `leave_out_texts` writes, in the same order.
static LEAVE_OUT_FIELDS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 3]> =
    std::sync::LazyLock::new(|| {
        [
            b"\"messageId\":\"".as_slice(),
            b"\"timestamp\":",
            b"\"event\":",
        ]
        .map(memchr::memmem::Finder::new)
    });

/// Appends `payload` as stored to `out` (see the module documentation).
fn encode_payload(payload: &[u8], key: RowKey<'_>, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    let texts = leave_out_texts(key, scratch);
    // (offset, length, flag bit) of each field left out; they never overlap.
    let mut cuts: Vec<(usize, usize, usize)> = Vec::with_capacity(3);
    for (bit, range) in texts.iter().enumerate() {
        let text = &scratch[range.clone()];
        // The first place the whole text occurs: the first occurrence of its field name that goes on with it
        // (searchers for the three names are built once; one for each event's own text cost more than the search).
        let found = LEAVE_OUT_FIELDS[bit]
            .find_iter(payload)
            .find(|at| payload[*at..].starts_with(text));
        if let Some(at) = found {
            let apart = cuts
                .iter()
                .all(|(start, len, _)| at + text.len() <= *start || start + len <= at);
            if at <= usize::from(u16::MAX) && apart {
                cuts.push((at, text.len(), bit));
            }
        }
    }
    if cuts.is_empty() {
        if payload
            .first()
            .is_some_and(|first| (1..=WHOLE).contains(first))
        {
            out.push(WHOLE);
        }
        out.extend_from_slice(payload);
        return;
    }
    // `cuts` is in flag-bit order here (found in that order): flags, then the offsets in that order.
    out.push(cuts.iter().map(|(_, _, bit)| 1u8 << bit).sum());
    for (at, _, _) in &cuts {
        out.extend_from_slice(&(*at as u16).to_le_bytes());
    }
    cuts.sort_unstable();
    let mut kept_from = 0;
    for (at, len, _) in &cuts {
        out.extend_from_slice(&payload[kept_from..*at]);
        kept_from = at + len;
    }
    out.extend_from_slice(&payload[kept_from..]);
}

/// The payload a stored one stands for (`None`: it is malformed).
fn decode_payload(stored: &[u8], key: RowKey<'_>, scratch: &mut Vec<u8>) -> Option<Vec<u8>> {
    let flags = match stored.first() {
        Some(&WHOLE) => return Some(stored[1..].to_vec()),
        Some(flags @ 1..=7) => *flags,
        _ => return Some(stored.to_vec()),
    };
    let texts = leave_out_texts(key, scratch);
    let mut inserts: Vec<(usize, std::ops::Range<usize>)> = Vec::with_capacity(3);
    let mut position = 1;
    for (bit, text) in texts.into_iter().enumerate() {
        if flags & (1 << bit) != 0 {
            let offset = stored.get(position..position + 2)?;
            inserts.push((
                usize::from(u16::from_le_bytes([offset[0], offset[1]])),
                text,
            ));
            position += 2;
        }
    }
    inserts.sort_by_key(|(at, _)| *at);
    let rest = &stored[position..];
    let mut payload = Vec::with_capacity(rest.len() + scratch.len());
    let mut taken = 0;
    for (at, text) in inserts {
        let until = taken + at.checked_sub(payload.len())?;
        payload.extend_from_slice(rest.get(taken..until)?);
        payload.extend_from_slice(&scratch[text]);
        taken = until;
    }
    payload.extend_from_slice(rest.get(taken..)?);
    Some(payload)
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
    pub ident: Vec<u32>,
    pub ts: Vec<i64>,
    pub seq: Vec<u64>,
    pub step: Vec<u32>,
    pub channel: Vec<u16>,
    pub msg_hash: Vec<u64>,
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

fn to_bytes<T: Copy, const N: usize>(values: &[T], encode: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * N);
    for value in values {
        bytes.extend_from_slice(&encode(*value));
    }
    bytes
}

fn from_bytes<T, const N: usize>(bytes: &[u8], decode: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| decode(chunk.try_into().expect("chunk of N")))
        .collect()
}

/// Byte-shuffles fixed-width values (every value's first byte, then every second byte, …): the high bytes of small
/// numbers become long runs that zstd squeezes out.
fn shuffle(bytes: &[u8], width: usize) -> Vec<u8> {
    let n = bytes.len() / width;
    let mut shuffled = vec![0u8; n * width];
    for (index, value) in bytes.chunks_exact(width).enumerate() {
        for (position, byte) in value.iter().enumerate() {
            shuffled[position * n + index] = *byte;
        }
    }
    shuffled
}

/// Undoes [`shuffle`] (a length that is no multiple of `width` is left for the length check to refuse).
fn unshuffle(bytes: &[u8], width: usize) -> Vec<u8> {
    if bytes.len() % width != 0 {
        return bytes.to_vec();
    }
    let n = bytes.len() / width;
    let mut values = vec![0u8; bytes.len()];
    for (index, value) in values.chunks_exact_mut(width).enumerate() {
        for (position, byte) in value.iter_mut().enumerate() {
            *byte = bytes[position * n + index];
        }
    }
    values
}

/// A fixed-width column as stored: little-endian values, byte-shuffled from format 2 on.
fn column_bytes<T: Copy, const N: usize>(
    values: &[T],
    encode: impl Fn(T) -> [u8; N],
    format: u32,
) -> Vec<u8> {
    let bytes = to_bytes(values, encode);
    if format >= 2 {
        shuffle(&bytes, N)
    } else {
        bytes
    }
}

/// Decodes a column as stored. A shuffled one is read straight from its byte planes into values, without an
/// unshuffled copy: opening a store allocates each column once (fresh pages are what opening mostly cost).
fn column_values<T, const N: usize>(
    bytes: &[u8],
    decode: impl Fn([u8; N]) -> T,
    format: u32,
) -> Vec<T> {
    if format < 2 || bytes.len() % N != 0 {
        // (A length that is no multiple of `N` is left for the length check to refuse.)
        return from_bytes(bytes, decode);
    }
    let n = bytes.len() / N;
    let planes: [&[u8]; N] = std::array::from_fn(|plane| &bytes[plane * n..(plane + 1) * n]);
    (0..n)
        .map(|index| decode(std::array::from_fn(|plane| planes[plane][index])))
        .collect()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// An i64 column from format 2 on: deltas divided by their greatest common divisor (the scale; times in whole
/// milliseconds are all multiples of 1,000 µs), zigzag-coded so that small negative deltas are small numbers too.
/// Deltas that overflow are kept wrapped, at scale 1.
fn scaled_deltas(values: &[i64]) -> (Vec<i64>, u64) {
    let exact: Option<Vec<i64>> = std::iter::once(&0)
        .chain(values)
        .zip(values)
        .map(|(previous, value)| value.checked_sub(*previous))
        .collect();
    let (deltas, scale) = match exact {
        Some(deltas) => {
            let scale = deltas
                .iter()
                .fold(0, |divisor, delta| gcd(divisor, delta.unsigned_abs()))
                .max(1);
            let scaled = deltas
                .iter()
                .map(|delta| (i128::from(*delta) / i128::from(scale)) as i64)
                .collect();
            (scaled, scale)
        }
        None => (delta_encode(values), 1),
    };
    let zigzag = deltas
        .iter()
        .map(|delta| ((delta << 1) ^ (delta >> 63)) as u64 as i64)
        .collect();
    (zigzag, scale)
}

/// Undoes [`scaled_deltas`].
fn unscaled_values(zigzag: Vec<i64>, scale: u64) -> Vec<i64> {
    let mut running = 0i64;
    zigzag
        .into_iter()
        .map(|coded| {
            let coded = coded as u64;
            let delta = ((coded >> 1) as i64) ^ -((coded & 1) as i64);
            running = running.wrapping_add(delta.wrapping_mul(scale as i64));
            running
        })
        .collect()
}

/// Delta-encodes a column so runs of nearby values (times within a journey, sequences) compress well.
fn delta_encode(values: &[i64]) -> Vec<i64> {
    let mut previous = 0i64;
    values
        .iter()
        .map(|value| {
            let delta = value.wrapping_sub(previous);
            previous = *value;
            delta
        })
        .collect()
}

fn delta_decode(deltas: Vec<i64>) -> Vec<i64> {
    let mut running = 0i64;
    deltas
        .into_iter()
        .map(|delta| {
            running = running.wrapping_add(delta);
            running
        })
        .collect()
}

struct SectionWriter {
    file: File,
    path: PathBuf,
    offset: u64,
    /// One compression context for the whole segment: creating one per section costs megabytes of allocation.
    compressor: zstd::bulk::Compressor<'static>,
}

impl SectionWriter {
    fn write(&mut self, raw: &[u8]) -> Result<SectionRef> {
        let compressed = self
            .compressor
            .compress(raw)
            .map_err(StoreError::io(&self.path))?;
        self.file
            .write_all(&compressed)
            .map_err(StoreError::io(&self.path))?;
        let section = SectionRef {
            offset: self.offset,
            len: compressed.len() as u64,
            crc: crc32fast::hash(&compressed),
        };
        self.offset += compressed.len() as u64;
        Ok(section)
    }
}

/// A segment just written: its size in bytes, the open file, and its columns as [`SegmentFile::open`] would read
/// them back (kept from the write instead of read, decompressed and decoded again).
pub(crate) struct Written {
    pub bytes: u64,
    pub file: SegmentFile,
    pub columns: SegmentColumns,
}

/// Writes `n_rows` rows (`row(i)` in clustering order) to `path` atomically: a temporary file, fsync, rename,
/// fsync of the directory. Rows are asked for, not handed over as a slice: a merge's or flush's rows gathered in
/// one vector were 96 B each of fresh memory.
pub(crate) fn write_segment<'r>(
    path: &Path,
    n_rows: usize,
    row: impl Fn(usize) -> SegmentRow<'r>,
) -> Result<Written> {
    write_segment_as(path, n_rows, row, FORMAT, None)
}

/// [`write_segment`] that gives up as soon as `cancel` is set (checked before each payload block): the temporary
/// file is removed and the result is [`StoreError::Closing`]. Background merges use it so that closing the store
/// does not wait for one.
pub(crate) fn write_segment_unless<'r>(
    path: &Path,
    n_rows: usize,
    row: impl Fn(usize) -> SegmentRow<'r>,
    cancel: &AtomicBool,
) -> Result<Written> {
    write_segment_as(path, n_rows, row, FORMAT, Some(cancel))
}

/// [`write_segment`] in a given format: the current one, or 1 (cumulative end offsets, payloads whole), which
/// only tests write, to show it is still read.
fn write_segment_as<'r>(
    path: &Path,
    n_rows: usize,
    row: impl Fn(usize) -> SegmentRow<'r>,
    format: u32,
    cancel: Option<&AtomicBool>,
) -> Result<Written> {
    let tmp_path = path.with_extension("seg.tmp");
    let file = File::create(&tmp_path).map_err(StoreError::io(&tmp_path))?;
    let compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(StoreError::io(&tmp_path))?;
    let mut writer = SectionWriter {
        file,
        path: tmp_path.clone(),
        offset: 0,
        compressor,
    };
    writer
        .file
        .write_all(MAGIC_HEAD)
        .map_err(StoreError::io(&tmp_path))?;
    writer.offset = MAGIC_HEAD.len() as u64;

    let mut identifiers = Dictionary::new();
    let mut steps = Dictionary::new();
    let mut channels = Dictionary::new();
    let mut ident: Vec<u32> = Vec::with_capacity(n_rows);
    let mut step: Vec<u32> = Vec::with_capacity(n_rows);
    let mut channel: Vec<u16> = Vec::with_capacity(n_rows);
    let mut ts: Vec<i64> = Vec::with_capacity(n_rows);
    // Sequences as the signed values their deltas are taken of; turned back in place for the kept columns.
    let mut seq: Vec<i64> = Vec::with_capacity(n_rows);
    let mut msg_hash: Vec<u64> = Vec::with_capacity(n_rows);
    for index in 0..n_rows {
        let row = row(index);
        ident.push(identifiers.code(row.identifier));
        step.push(steps.code(row.step));
        channel.push(channels.code(row.channel) as u16);
        ts.push(row.ts);
        seq.push(row.seq as i64);
        msg_hash.push(row.msg_hash);
    }
    let ((ts_deltas, ts_scale), (seq_deltas, seq_scale)) = if format >= 2 {
        (scaled_deltas(&ts), scaled_deltas(&seq))
    } else {
        ((delta_encode(&ts), 1), (delta_encode(&seq), 1))
    };
    let ident_ref = writer.write(&column_bytes(&ident, u32::to_le_bytes, format))?;
    let ts_ref = writer.write(&column_bytes(&ts_deltas, i64::to_le_bytes, format))?;
    let seq_ref = writer.write(&column_bytes(&seq_deltas, i64::to_le_bytes, format))?;
    let step_ref = writer.write(&column_bytes(&step, u32::to_le_bytes, format))?;
    let channel_ref = writer.write(&column_bytes(&channel, u16::to_le_bytes, format))?;
    // Hashes are random: shuffling cannot help them.
    let msg_hash_ref = writer.write(&to_bytes(&msg_hash, u64::to_le_bytes))?;

    let mut blocks = Vec::with_capacity(n_rows / ROWS_PER_BLOCK + 1);
    let mut scratch = Vec::new();
    // One buffer for every block (its capacity reached, no block allocates).
    let mut raw = Vec::new();
    for first in (0..n_rows).step_by(ROWS_PER_BLOCK) {
        if cancel.is_some_and(|cancel| cancel.load(Ordering::Relaxed)) {
            drop(writer);
            std::fs::remove_file(&tmp_path).map_err(StoreError::io(&tmp_path))?;
            return Err(StoreError::Closing);
        }
        let chunk_len = ROWS_PER_BLOCK.min(n_rows - first);
        // Lengths first (small, alike numbers compress well), then the payloads as stored.
        raw.clear();
        raw.extend_from_slice(&(chunk_len as u32).to_le_bytes());
        raw.resize(4 + 4 * chunk_len, 0);
        for index in 0..chunk_len {
            let row = row(first + index);
            let before = raw.len();
            let key = RowKey {
                msg_hash: row.msg_hash,
                ts: row.ts,
                step: row.step,
            };
            match row.payload {
                Payload::Whole(payload) if format == 1 => raw.extend_from_slice(payload),
                Payload::Whole(payload) => encode_payload(payload, key, &mut scratch, &mut raw),
                Payload::Stored(stored) => {
                    assert!(
                        format >= 2,
                        "stored payloads are only written in the format they were read in"
                    );
                    raw.extend_from_slice(stored);
                }
            }
            let number = if format == 1 {
                raw.len() - (4 + 4 * chunk_len)
            } else {
                raw.len() - before
            };
            raw[4 + 4 * index..8 + 4 * index].copy_from_slice(&(number as u32).to_le_bytes());
        }
        if format >= 2 {
            // Lengths byte-shuffled like the columns: their zero high bytes become one run.
            let lengths = shuffle(&raw[4..4 + 4 * chunk_len], 4);
            raw[4..4 + 4 * chunk_len].copy_from_slice(&lengths);
        }
        let section = writer.write(&raw)?;
        blocks.push(BlockRef {
            offset: section.offset,
            len: section.len,
            crc: section.crc,
            first_row: first as u32,
            n_rows: chunk_len as u32,
        });
    }

    let footer = Footer {
        format,
        n_rows: n_rows as u32,
        min_ts: ts.iter().copied().min().unwrap_or(0),
        max_ts: ts.iter().copied().max().unwrap_or(0),
        min_seq: seq.iter().map(|value| *value as u64).min().unwrap_or(0),
        max_seq: seq.iter().map(|value| *value as u64).max().unwrap_or(0),
        identifiers: identifiers.values,
        steps: steps.values,
        channels: channels.values,
        ident: ident_ref,
        ts: ts_ref,
        seq: seq_ref,
        step: step_ref,
        channel: channel_ref,
        msg_hash: msg_hash_ref,
        blocks,
        ts_scale,
        seq_scale,
    };
    let footer_json = serde_json::to_vec(&footer).expect("footer serialises");
    // From format 2 on the footer is zstd-compressed: its dictionaries (every identifier of the segment) are
    // otherwise a byte or two per event.
    let footer_bytes = if format >= 2 {
        zstd::bulk::compress(&footer_json, ZSTD_LEVEL).map_err(StoreError::io(&tmp_path))?
    } else {
        footer_json
    };
    let mut tail = footer_bytes.clone();
    tail.extend_from_slice(&(footer_bytes.len() as u32).to_le_bytes());
    tail.extend_from_slice(&crc32fast::hash(&footer_bytes).to_le_bytes());
    tail.extend_from_slice(MAGIC_TAIL);
    writer
        .file
        .write_all(&tail)
        .map_err(StoreError::io(&tmp_path))?;
    writer.file.sync_all().map_err(StoreError::io(&tmp_path))?;
    let bytes = writer.offset + tail.len() as u64;
    drop(writer);
    std::fs::rename(&tmp_path, path).map_err(StoreError::io(path))?;
    crate::wal::sync_dir(path.parent().expect("segment files live in a directory"))?;
    let Footer {
        identifiers,
        steps,
        channels,
        blocks,
        ..
    } = footer;
    Ok(Written {
        bytes,
        file: SegmentFile {
            path: path.to_path_buf(),
            file: File::open(path).map_err(StoreError::io(path))?,
            format,
            blocks,
            n_rows: n_rows as u32,
            bytes,
        },
        columns: SegmentColumns {
            identifiers,
            steps,
            channels,
            ident,
            ts,
            seq: seq.into_iter().map(|value| value as u64).collect(),
            step,
            channel,
            msg_hash,
        },
    })
}

/// Decompresses one section (a single zstd frame that states its size, as `write_segment` makes them) with this
/// thread's reused decompression context: a fresh context per 256-row payload block made reading blocks, and so
/// compaction, several times slower. Frames without a stated size go through the streaming decoder.
fn decompress(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    // Sections hold at most a few million rows' columns; a larger stated size is not trusted for an allocation.
    const LARGEST: u64 = 1 << 30;
    match zstd::zstd_safe::get_frame_content_size(compressed) {
        Ok(Some(size)) if size <= LARGEST => DECOMPRESSOR
            .with(|cell| {
                let mut cell = cell.borrow_mut();
                let decompressor = match cell.as_mut() {
                    Some(decompressor) => decompressor,
                    None => cell.insert(zstd::bulk::Decompressor::new()?),
                };
                decompressor.decompress(compressed, size as usize)
            })
            // E.g. several frames, whose first states only its own size.
            .or_else(|_| zstd::stream::decode_all(compressed)),
        _ => zstd::stream::decode_all(compressed),
    }
}

impl SegmentFile {
    fn read_exact_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buffer = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buffer, offset)
            .map_err(StoreError::io(&self.path))?;
        Ok(buffer)
    }

    fn read_section(&self, section: &SectionRef, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
        let compressed = self.read_exact_at(section.offset, section.len)?;
        if crc32fast::hash(&compressed) != section.crc {
            return Err(StoreError::corrupt(
                &self.path,
                format!("{} fails its checksum", what()),
            ));
        }
        decompress(&compressed).map_err(|error| {
            StoreError::corrupt(
                &self.path,
                format!("{} does not decompress: {error}", what()),
            )
        })
    }

    /// Opens a segment, checks its footer and every column checksum, and returns the file and its columns.
    pub(crate) fn open(path: &Path) -> Result<(SegmentFile, SegmentColumns)> {
        let file = File::open(path).map_err(StoreError::io(path))?;
        let bytes = file.metadata().map_err(StoreError::io(path))?.len();
        let mut segment = SegmentFile {
            path: path.to_path_buf(),
            file,
            format: FORMAT,
            blocks: Vec::new(),
            n_rows: 0,
            bytes,
        };
        if bytes < 24 {
            return Err(StoreError::corrupt(path, "file too short to be a segment"));
        }
        let head = segment.read_exact_at(0, 8)?;
        let tail = segment.read_exact_at(bytes - 16, 16)?;
        if head != MAGIC_HEAD || &tail[8..16] != MAGIC_TAIL {
            return Err(StoreError::corrupt(path, "missing segment magic bytes"));
        }
        let footer_len = u32::from_le_bytes(tail[0..4].try_into().expect("4 bytes")) as u64;
        let footer_crc = u32::from_le_bytes(tail[4..8].try_into().expect("4 bytes"));
        if footer_len + 24 > bytes {
            return Err(StoreError::corrupt(path, "footer length out of range"));
        }
        let footer_bytes = segment.read_exact_at(bytes - 16 - footer_len, footer_len)?;
        if crc32fast::hash(&footer_bytes) != footer_crc {
            return Err(StoreError::corrupt(path, "footer fails its checksum"));
        }
        let footer_bytes = if footer_bytes.starts_with(&ZSTD_MAGIC) {
            zstd::stream::decode_all(&footer_bytes[..]).map_err(|error| {
                StoreError::corrupt(path, format!("footer does not decompress: {error}"))
            })?
        } else {
            footer_bytes
        };
        let footer: Footer = serde_json::from_slice(&footer_bytes).map_err(|error| {
            StoreError::corrupt(path, format!("footer does not parse: {error}"))
        })?;
        if !(1..=FORMAT).contains(&footer.format) {
            return Err(StoreError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: footer.format,
                supported: FORMAT,
            });
        }
        segment.format = footer.format;
        let n = footer.n_rows as usize;
        let format = footer.format;
        let ident = column_values(
            &segment.read_section(&footer.ident, &|| "ident column".into())?,
            u32::from_le_bytes,
            format,
        );
        let deltas = |section: &SectionRef, name: &str| -> Result<Vec<i64>> {
            let bytes = segment.read_section(section, &|| name.to_string())?;
            Ok(column_values(&bytes, i64::from_le_bytes, format))
        };
        let (ts, seq) = if format >= 2 {
            (
                unscaled_values(deltas(&footer.ts, "ts column")?, footer.ts_scale.max(1)),
                unscaled_values(deltas(&footer.seq, "seq column")?, footer.seq_scale.max(1)),
            )
        } else {
            (
                delta_decode(deltas(&footer.ts, "ts column")?),
                delta_decode(deltas(&footer.seq, "seq column")?),
            )
        };
        let step = column_values(
            &segment.read_section(&footer.step, &|| "step column".into())?,
            u32::from_le_bytes,
            format,
        );
        let channel = column_values(
            &segment.read_section(&footer.channel, &|| "channel column".into())?,
            u16::from_le_bytes,
            format,
        );
        let msg_hash = from_bytes(
            &segment.read_section(&footer.msg_hash, &|| "msg_hash column".into())?,
            u64::from_le_bytes,
        );
        let lengths = [
            ident.len(),
            ts.len(),
            seq.len(),
            step.len(),
            channel.len(),
            msg_hash.len(),
        ];
        if lengths.iter().any(|length| *length != n) {
            return Err(StoreError::corrupt(
                path,
                format!("column lengths {lengths:?} differ from {n} rows"),
            ));
        }
        let dictionary_overflow = ident
            .iter()
            .any(|code| *code as usize >= footer.identifiers.len())
            || step.iter().any(|code| *code as usize >= footer.steps.len())
            || channel
                .iter()
                .any(|code| *code as usize >= footer.channels.len());
        if dictionary_overflow {
            return Err(StoreError::corrupt(
                path,
                "a dictionary code is out of range",
            ));
        }
        segment.blocks = footer.blocks;
        segment.n_rows = footer.n_rows;
        let columns = SegmentColumns {
            identifiers: footer.identifiers,
            steps: footer.steps,
            channels: footer.channels,
            ident,
            ts,
            seq: seq.into_iter().map(|value| value as u64).collect(),
            step,
            channel,
            msg_hash,
        };
        Ok((segment, columns))
    }

    /// Reads the payloads of a block: `(first_row, payloads)`. `key` tells, for a row of the segment, what its
    /// columns hold, which gives back the fields its payload was stored without.
    pub(crate) fn read_block<'k>(
        &self,
        block_index: usize,
        key: impl Fn(usize) -> RowKey<'k>,
    ) -> Result<(u32, Vec<Vec<u8>>)> {
        let (first_row, raw, ranges) = self.block_rows(block_index)?;
        let mut scratch = Vec::new();
        let payloads = ranges
            .into_iter()
            .enumerate()
            .map(|(row, range)| {
                let stored = &raw[range];
                if self.format == 1 {
                    return Ok(stored.to_vec());
                }
                decode_payload(stored, key(first_row as usize + row), &mut scratch)
                    .ok_or_else(|| self.malformed_block(block_index))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((first_row, payloads))
    }

    /// Whether payloads are stored without the fields the columns give back (format 2 on), as the current format
    /// writes them; a format-1 segment stores them whole.
    pub(crate) fn stores_cut_payloads(&self) -> bool {
        self.format >= 2
    }

    fn malformed_block(&self, block_index: usize) -> StoreError {
        StoreError::corrupt(
            &self.path,
            format!("payload block {block_index} is malformed"),
        )
    }

    /// A block's first row, its bytes (checksum verified) and where each row's payload lies in them *as stored*:
    /// what a merge writes into another segment unchanged ([`Payload::Stored`]) when
    /// [`SegmentFile::stores_cut_payloads`], else they are whole ([`Payload::Whole`]).
    pub(crate) fn block_rows(
        &self,
        block_index: usize,
    ) -> Result<(u32, Vec<u8>, Vec<std::ops::Range<usize>>)> {
        let block = &self.blocks[block_index];
        let raw = self.read_section(
            &SectionRef {
                offset: block.offset,
                len: block.len,
                crc: block.crc,
            },
            &|| format!("payload block {block_index}"),
        )?;
        let corrupt = || self.malformed_block(block_index);
        let count = u32::from_le_bytes(
            raw.get(0..4)
                .ok_or_else(corrupt)?
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        if count != block.n_rows as usize {
            return Err(corrupt());
        }
        let data_start = 4 + 4 * count;
        let numbers = raw.get(4..data_start).ok_or_else(corrupt)?;
        let numbers = if self.format >= 2 {
            unshuffle(numbers, 4)
        } else {
            numbers.to_vec()
        };
        let mut ranges = Vec::with_capacity(count);
        let mut start = 0usize;
        for row in 0..count {
            let number_bytes = &numbers[4 * row..4 * row + 4];
            let number = u32::from_le_bytes(number_bytes.try_into().expect("4 bytes")) as usize;
            // Format 1 lists where each payload ends; later formats, how long each is stored.
            let end = if self.format == 1 {
                number
            } else {
                start + number
            };
            if end < start || data_start + end > raw.len() {
                return Err(corrupt());
            }
            ranges.push(data_start + start..data_start + end);
            start = end;
        }
        Ok((block.first_row, raw, ranges))
    }

    /// The payload of one row.
    #[cfg(test)]
    pub(crate) fn read_payload<'k>(
        &self,
        row: u32,
        key: impl Fn(usize) -> RowKey<'k>,
    ) -> Result<Vec<u8>> {
        let block_index = row as usize / ROWS_PER_BLOCK;
        let (first_row, mut payloads) = self.read_block(block_index, key)?;
        Ok(std::mem::take(&mut payloads[(row - first_row) as usize]))
    }

    /// Number of payload blocks.
    pub(crate) fn n_blocks(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a segment's own columns say of row `row` (codes local to the segment).
    fn key_of(columns: &SegmentColumns, row: usize) -> RowKey<'_> {
        RowKey {
            msg_hash: columns.msg_hash[row],
            ts: columns.ts[row],
            step: &columns.steps[columns.step[row] as usize],
        }
    }

    #[test]
    fn fields_the_columns_hold_are_left_out_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let hash = |index: usize| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(index as u64 + 1);
        // By row number mod 3: 0, the derived id of the row's own hash, its timestamp and its step (all three
        // left out); 1, a derived-looking id of another hash, another time and step (all kept); 2, uppercase hex
        // (not a derived id), the timestamp in a nested object, and the step twice. Every payload must read back
        // byte for byte.
        let payloads: Vec<String> = (0..700)
            .map(|index| match index % 3 {
                0 => format!(
                    "{{\"messageId\":\"{}\",\"type\":\"track\",\"timestamp\":{index},\"event\":\"vi\\\"ew\",\"n\":{index}}}",
                    derived_message_id(hash(index))
                ),
                1 => format!(
                    "{{\"messageId\":\"{}\",\"type\":\"track\",\"timestamp\":{},\"event\":\"cart\",\"n\":{index}}}",
                    derived_message_id(hash(index) ^ 1),
                    index + 1
                ),
                _ => format!(
                    "{{\"messageId\":\"{}\",\"p\":{{\"timestamp\":{index},}},\"event\":\"vi\\\"ew\",\"event\":\"vi\\\"ew\",}}",
                    derived_message_id(hash(index)).to_uppercase()
                ),
            })
            .collect();
        let rows: Vec<SegmentRow> = (0..700)
            .map(|index| SegmentRow {
                identifier: "user:a",
                ts: index as i64,
                seq: index as u64,
                step: "vi\"ew",
                channel: "web",
                msg_hash: hash(index),
                payload: Payload::Whole(payloads[index].as_bytes()),
            })
            .collect();
        let bytes = write_segment(&dir.path().join("1.seg"), rows.len(), |row| rows[row])
            .unwrap()
            .bytes;
        // The same rows in format 1, as stores written before this one hold them, read back the same.
        write_segment_as(
            &dir.path().join("0.seg"),
            rows.len(),
            |row| rows[row],
            1,
            None,
        )
        .unwrap();
        let (old, old_columns) = SegmentFile::open(&dir.path().join("0.seg")).unwrap();
        let (segment, columns) = SegmentFile::open(&dir.path().join("1.seg")).unwrap();
        for index in (0..700).step_by(7).chain([1, 2, 255, 256, 257, 699]) {
            let payload = segment.read_payload(index as u32, |row| key_of(&columns, row));
            assert_eq!(payload.unwrap(), payloads[index].as_bytes(), "row {index}");
            let payload = old.read_payload(index as u32, |row| key_of(&old_columns, row));
            assert_eq!(
                payload.unwrap(),
                payloads[index].as_bytes(),
                "format 1, row {index}"
            );
        }
        // Payloads read as stored and written again as they are (as a merge does) make the same segment, byte for
        // byte; a format-1 segment's come back whole and are encoded again.
        let read_all = |file: &SegmentFile| {
            let (mut bytes, mut ends) = (Vec::new(), Vec::new());
            for block in 0..file.n_blocks() {
                let (_, raw, ranges) = file.block_rows(block).unwrap();
                for range in ranges {
                    bytes.extend_from_slice(&raw[range]);
                    ends.push(bytes.len());
                }
            }
            (bytes, ends, file.stores_cut_payloads())
        };
        let ((stored, stored_ends, is_stored), (whole, whole_ends, is_whole_stored)) =
            (read_all(&segment), read_all(&old));
        assert!(is_stored && !is_whole_stored);
        let slice =
            |ends: &[usize], row: usize| (if row == 0 { 0 } else { ends[row - 1] })..ends[row];
        let again: Vec<SegmentRow> = rows
            .iter()
            .enumerate()
            .map(|(index, row)| SegmentRow {
                payload: if index % 2 == 0 {
                    Payload::Stored(&stored[slice(&stored_ends, index)])
                } else {
                    Payload::Whole(&whole[slice(&whole_ends, index)])
                },
                ..*row
            })
            .collect();
        write_segment(&dir.path().join("3.seg"), again.len(), |row| again[row]).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("3.seg")).unwrap(),
            std::fs::read(dir.path().join("1.seg")).unwrap()
        );
        // The derived id's 16 random hex digits and the distinct timestamps are what zstd cannot squeeze: with
        // their columns saying otherwise, they are all kept, and the segment is larger.
        let all_kept: Vec<SegmentRow> = rows
            .iter()
            .map(|row| SegmentRow {
                msg_hash: row.msg_hash ^ 2,
                ts: row.ts + 1_000_000,
                step: "other",
                ..*row
            })
            .collect();
        let kept_bytes = write_segment(&dir.path().join("2.seg"), all_kept.len(), |row| {
            all_kept[row]
        })
        .unwrap()
        .bytes;
        assert!(
            bytes + 700 / 3 * 8 < kept_bytes,
            "{bytes} bytes with fields left out, {kept_bytes} with all kept"
        );
        // Row 0 is stored as flags, three offsets and what is left.
        let mut scratch = Vec::new();
        let texts = leave_out_texts(key_of(&columns, 0), &mut scratch);
        let mut stored = Vec::new();
        encode_payload(
            payloads[0].as_bytes(),
            key_of(&columns, 0),
            &mut Vec::new(),
            &mut stored,
        );
        let left_out: usize = texts.iter().map(|text| text.len()).sum();
        assert_eq!(stored.len(), payloads[0].len() - left_out + 1 + 3 * 2);
        assert_eq!(stored[0], 0b111);
        assert_eq!(derived_id_hash(&derived_message_id(42)), Some(42));
        assert_eq!(derived_id_hash("imp-000000000000002A"), None);
        assert_eq!(derived_id_hash("imp-2a"), None);
    }

    proptest::proptest! {
        /// Time and sequence columns read back exactly: any values (overflowing deltas too), and times on a
        /// coarse grid, which are stored divided by it.
        #[test]
        fn delta_columns_read_back_exactly(
            any_values in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..50),
            grid in proptest::collection::vec(-1_000_000i64..1_000_000, 1..50),
            step in 1i64..10_000_000,
        ) {
            let on_grid: Vec<i64> = grid.iter().map(|tick| (1_700_000_000 + tick) * step).collect();
            for values in [any_values, on_grid.clone()] {
                let (coded, scale) = scaled_deltas(&values);
                let bytes = column_bytes(&coded, i64::to_le_bytes, FORMAT);
                let read = unscaled_values(column_values(&bytes, i64::from_le_bytes, FORMAT), scale);
                proptest::prop_assert_eq!(read, values);
            }
            let (_, scale) = scaled_deltas(&on_grid);
            proptest::prop_assert_eq!(scale % step as u64, 0, "the grid divides every delta");
        }

        /// Any payload reads back byte for byte, whatever of the leave-out texts it holds, where, how often, and
        /// whatever its first byte (flags and the whole-payload marker are bytes 1 to 8).
        #[test]
        fn stored_payloads_read_back_whole(
            parts in proptest::collection::vec(0usize..8, 0..12),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
            ts in proptest::prelude::any::<i64>(),
            msg_hash in proptest::prelude::any::<u64>(),
        ) {
            let key = RowKey { msg_hash, ts, step: "Order \"Completed\"" };
            let mut scratch = Vec::new();
            let texts = leave_out_texts(key, &mut scratch);
            let mut payload = Vec::new();
            for part in parts {
                match part {
                    0..=2 => payload.extend_from_slice(&scratch[texts[part].clone()]),
                    3 => payload.extend_from_slice(&noise),
                    4 => payload.push(b'{'),
                    5 => payload.extend_from_slice(&[b'x'; 40_000]),
                    6 => payload.push(noise.first().copied().unwrap_or(1) % 9),
                    _ => payload.extend_from_slice(b"\"timestamp\":"),
                }
            }
            let mut stored = Vec::new();
            encode_payload(&payload, key, &mut Vec::new(), &mut stored);
            proptest::prop_assert!(stored.len() <= payload.len() + 1);
            proptest::prop_assert_eq!(decode_payload(&stored, key, &mut Vec::new()), Some(payload));
        }
    }

    #[test]
    fn a_cancelled_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.seg");
        let row = |index: usize| SegmentRow {
            identifier: "user:a",
            ts: index as i64,
            seq: index as u64,
            step: "view",
            channel: "web",
            msg_hash: index as u64,
            payload: Payload::Whole(b"{}"),
        };
        let cancel = AtomicBool::new(true);
        let result = write_segment_unless(&path, 1_000, row, &cancel);
        assert!(
            matches!(result, Err(StoreError::Closing)),
            "{:?}",
            result.err()
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        cancel.store(false, Ordering::Relaxed);
        let written = write_segment_unless(&path, 1_000, row, &cancel).unwrap();
        assert_eq!(SegmentFile::open(&path).unwrap().1.ts, written.columns.ts);
    }

    #[test]
    fn segment_round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.seg");
        let payloads: Vec<String> = (0..600).map(|index| format!("{{\"n\":{index}}}")).collect();
        let rows: Vec<SegmentRow> = (0..600)
            .map(|index| SegmentRow {
                identifier: if index < 300 { "user:a" } else { "anon:b" },
                ts: 1_000 + index as i64 * 7,
                seq: index as u64,
                step: ["view", "cart", "buy"][index % 3],
                channel: "web",
                msg_hash: index as u64 * 31,
                payload: Payload::Whole(payloads[index].as_bytes()),
            })
            .collect();
        let written = write_segment(&path, rows.len(), |row| rows[row]).unwrap();
        let (segment, columns) = SegmentFile::open(&path).unwrap();
        // What the write keeps is what reading the file gives back.
        let kept = &written.columns;
        assert_eq!(
            (&kept.identifiers, &kept.steps, &kept.channels),
            (&columns.identifiers, &columns.steps, &columns.channels)
        );
        assert_eq!(
            (&kept.ident, &kept.step, &kept.channel),
            (&columns.ident, &columns.step, &columns.channel)
        );
        assert_eq!(
            (&kept.ts, &kept.seq, &kept.msg_hash),
            (&columns.ts, &columns.seq, &columns.msg_hash)
        );
        assert_eq!(
            (
                written.bytes,
                written.file.n_rows,
                written.file.format,
                written.file.n_blocks()
            ),
            (
                segment.bytes,
                segment.n_rows,
                segment.format,
                segment.n_blocks()
            )
        );
        assert_eq!(
            written
                .file
                .read_payload(513, |row| key_of(kept, row))
                .unwrap(),
            b"{\"n\":513}"
        );
        assert_eq!(segment.n_rows, 600);
        assert_eq!(columns.ts[599], 1_000 + 599 * 7);
        assert_eq!(columns.identifiers[columns.ident[450] as usize], "anon:b");
        assert_eq!(columns.steps[columns.step[4] as usize], "cart");
        assert_eq!(
            segment
                .read_payload(513, |row| key_of(&columns, row))
                .unwrap(),
            b"{\"n\":513}"
        );

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            SegmentFile::open(&path),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
