//! Immutable columnar segments: the events behind the log, clustered by customer and time.
//!
//! File layout (all integers little-endian):
//! ```text
//! "WMSEG001" | column sections | payload blocks | footer (JSON) | u32 footer length | u32 footer crc32 | "WMSEGEND"
//! ```
//! Columns (`ident` u32, `ts` i64 µs, `seq` u64, `step` u32, `channel` u16, `msg_hash` u64) are each one
//! zstd-compressed section with its own crc32. `ident`, `step` and `channel` hold indexes into dictionaries kept in
//! the footer, so a segment is self-describing and its codes are remapped to the process's global codes at load.
//! Payloads (the full event as JSON) are stored in zstd blocks of [`ROWS_PER_BLOCK`] rows, read on demand. A
//! payload that opens with a derived message id (`{"messageId":"imp-` and the 16 hex digits of the row's
//! `msg_hash`, see [`derived_message_id`]) is stored without it, as the byte [`DERIVED_ID`] and the rest, and
//! read back whole: 16 bytes of entropy per imported event that the `msg_hash` column already holds.
//! Rows are sorted by (customer at write time, timestamp, sequence), so one customer's journey is contiguous.

use crate::error::{Result, StoreError};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC_HEAD: &[u8; 8] = b"WMSEG001";
const MAGIC_TAIL: &[u8; 8] = b"WMSEGEND";
/// Rows per payload block: small enough that one customer lookup decompresses little.
pub(crate) const ROWS_PER_BLOCK: usize = 256;
const ZSTD_LEVEL: i32 = 3;
/// The segment format written; format 1 (no stored-without-id payloads) is still read.
const FORMAT: u32 = 2;

/// The first byte of a payload stored without its derived message id (JSON never starts with it).
const DERIVED_ID: u8 = 1;

/// How derived message ids start: `imp-` and 16 lowercase hex digits, which are the id's own hash.
pub(crate) const DERIVED_ID_PREFIX: &str = "imp-";

/// The message id Waymark gives an event whose source has none (an imported row), from a 64-bit hash of what
/// identifies it; its `msg_hash` is that hash.
pub fn derived_message_id(hash: u64) -> String {
    format!("{DERIVED_ID_PREFIX}{hash:016x}")
}

/// The hash a derived message id stands for (`None` for any other id).
pub(crate) fn derived_id_hash(message_id: &str) -> Option<u64> {
    let hex = message_id.strip_prefix(DERIVED_ID_PREFIX)?;
    let lower_hex = hex.len() == 16
        && hex
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    lower_hex
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The bytes a serialised event with the derived id of `hash` starts with.
fn derived_head(hash: u64) -> [u8; 36] {
    let mut head = [0u8; 36];
    head[..18].copy_from_slice(b"{\"messageId\":\"imp-");
    for (index, digit) in head[18..34].iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(hash >> (60 - 4 * index)) as usize & 15];
    }
    head[34..].copy_from_slice(b"\",");
    head
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
    pub payload: &'a [u8],
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
    blocks: Vec<BlockRef>,
    pub n_rows: u32,
    pub bytes: u64,
}

struct Dictionary<'a> {
    index: std::collections::HashMap<&'a str, u32>,
    values: Vec<String>,
}

impl<'a> Dictionary<'a> {
    fn new() -> Self {
        Dictionary {
            index: std::collections::HashMap::new(),
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

/// Writes `rows` (already in clustering order) to `path` atomically: a temporary file, fsync, rename, fsync of
/// the directory. Returns the file's size in bytes.
pub(crate) fn write_segment(path: &Path, rows: &[SegmentRow<'_>]) -> Result<u64> {
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
    let ident: Vec<u32> = rows
        .iter()
        .map(|row| identifiers.code(row.identifier))
        .collect();
    let step: Vec<u32> = rows.iter().map(|row| steps.code(row.step)).collect();
    let channel: Vec<u16> = rows
        .iter()
        .map(|row| channels.code(row.channel) as u16)
        .collect();
    let ts: Vec<i64> = rows.iter().map(|row| row.ts).collect();
    let seq: Vec<i64> = rows.iter().map(|row| row.seq as i64).collect();
    let msg_hash: Vec<u64> = rows.iter().map(|row| row.msg_hash).collect();

    let ident_ref = writer.write(&to_bytes(&ident, u32::to_le_bytes))?;
    let ts_ref = writer.write(&to_bytes(&delta_encode(&ts), i64::to_le_bytes))?;
    let seq_ref = writer.write(&to_bytes(&delta_encode(&seq), i64::to_le_bytes))?;
    let step_ref = writer.write(&to_bytes(&step, u32::to_le_bytes))?;
    let channel_ref = writer.write(&to_bytes(&channel, u16::to_le_bytes))?;
    let msg_hash_ref = writer.write(&to_bytes(&msg_hash, u64::to_le_bytes))?;

    let mut blocks = Vec::with_capacity(rows.len() / ROWS_PER_BLOCK + 1);
    for (block_index, chunk) in rows.chunks(ROWS_PER_BLOCK).enumerate() {
        let mut raw = Vec::new();
        let mut end = 0u32;
        raw.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        // Each payload as stored: without its derived id when it opens with exactly the one of its hash.
        let stored: Vec<(bool, &[u8])> = chunk
            .iter()
            .map(
                |row| match row.payload.strip_prefix(&derived_head(row.msg_hash)) {
                    Some(rest) => (true, rest),
                    None => (false, row.payload),
                },
            )
            .collect();
        for (derived, payload) in &stored {
            end += u32::from(*derived) + payload.len() as u32;
            raw.extend_from_slice(&end.to_le_bytes());
        }
        for (derived, payload) in &stored {
            if *derived {
                raw.push(DERIVED_ID);
            }
            raw.extend_from_slice(payload);
        }
        let section = writer.write(&raw)?;
        blocks.push(BlockRef {
            offset: section.offset,
            len: section.len,
            crc: section.crc,
            first_row: (block_index * ROWS_PER_BLOCK) as u32,
            n_rows: chunk.len() as u32,
        });
    }

    let footer = Footer {
        format: FORMAT,
        n_rows: rows.len() as u32,
        min_ts: ts.iter().copied().min().unwrap_or(0),
        max_ts: ts.iter().copied().max().unwrap_or(0),
        min_seq: rows.iter().map(|row| row.seq).min().unwrap_or(0),
        max_seq: rows.iter().map(|row| row.seq).max().unwrap_or(0),
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
    };
    let footer_bytes = serde_json::to_vec(&footer).expect("footer serialises");
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
    Ok(bytes)
}

impl SegmentFile {
    fn read_exact_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buffer = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buffer, offset)
            .map_err(StoreError::io(&self.path))?;
        Ok(buffer)
    }

    fn read_section(&self, section: &SectionRef, what: &str) -> Result<Vec<u8>> {
        let compressed = self.read_exact_at(section.offset, section.len)?;
        if crc32fast::hash(&compressed) != section.crc {
            return Err(StoreError::corrupt(
                &self.path,
                format!("{what} fails its checksum"),
            ));
        }
        zstd::stream::decode_all(&compressed[..]).map_err(|error| {
            StoreError::corrupt(&self.path, format!("{what} does not decompress: {error}"))
        })
    }

    /// Opens a segment, checks its footer and every column checksum, and returns the file and its columns.
    pub(crate) fn open(path: &Path) -> Result<(SegmentFile, SegmentColumns)> {
        let file = File::open(path).map_err(StoreError::io(path))?;
        let bytes = file.metadata().map_err(StoreError::io(path))?.len();
        let mut segment = SegmentFile {
            path: path.to_path_buf(),
            file,
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
        let n = footer.n_rows as usize;
        let ident = from_bytes(
            &segment.read_section(&footer.ident, "ident column")?,
            u32::from_le_bytes,
        );
        let ts = delta_decode(from_bytes(
            &segment.read_section(&footer.ts, "ts column")?,
            i64::from_le_bytes,
        ));
        let seq = delta_decode(from_bytes(
            &segment.read_section(&footer.seq, "seq column")?,
            i64::from_le_bytes,
        ));
        let step = from_bytes(
            &segment.read_section(&footer.step, "step column")?,
            u32::from_le_bytes,
        );
        let channel = from_bytes(
            &segment.read_section(&footer.channel, "channel column")?,
            u16::from_le_bytes,
        );
        let msg_hash = from_bytes(
            &segment.read_section(&footer.msg_hash, "msg_hash column")?,
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

    /// Reads the payloads of a block: `(first_row, payloads)`. `msg_hash` is the segment's column, which gives
    /// back the derived ids its payloads were stored without.
    pub(crate) fn read_block(
        &self,
        block_index: usize,
        msg_hash: &[u64],
    ) -> Result<(u32, Vec<Vec<u8>>)> {
        let block = &self.blocks[block_index];
        let raw = self.read_section(
            &SectionRef {
                offset: block.offset,
                len: block.len,
                crc: block.crc,
            },
            &format!("payload block {block_index}"),
        )?;
        let corrupt = || {
            StoreError::corrupt(
                &self.path,
                format!("payload block {block_index} is malformed"),
            )
        };
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
        let mut payloads = Vec::with_capacity(count);
        let mut start = 0usize;
        for row in 0..count {
            let end_bytes = raw.get(4 + 4 * row..8 + 4 * row).ok_or_else(corrupt)?;
            let end = u32::from_le_bytes(end_bytes.try_into().expect("4 bytes")) as usize;
            let stored = raw
                .get(data_start + start..data_start + end)
                .ok_or_else(corrupt)?;
            payloads.push(match stored.split_first() {
                Some((&DERIVED_ID, rest)) => {
                    let hash = *msg_hash
                        .get(block.first_row as usize + row)
                        .ok_or_else(corrupt)?;
                    let mut payload = Vec::with_capacity(36 + rest.len());
                    payload.extend_from_slice(&derived_head(hash));
                    payload.extend_from_slice(rest);
                    payload
                }
                _ => stored.to_vec(),
            });
            start = end;
        }
        Ok((block.first_row, payloads))
    }

    /// The payload of one row.
    #[cfg(test)]
    pub(crate) fn read_payload(&self, row: u32, msg_hash: &[u64]) -> Result<Vec<u8>> {
        let block_index = row as usize / ROWS_PER_BLOCK;
        let (first_row, mut payloads) = self.read_block(block_index, msg_hash)?;
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

    #[test]
    fn derived_ids_are_stored_as_one_byte_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.seg");
        let hash = |index: usize| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(index as u64 + 1);
        // Rows 0, 3, 6, …: the derived id of their own hash (stored without it); 1, 4, …: a derived-looking id
        // of another hash; 2, 5, …: uppercase hex, which is not a derived id. All must read back byte for byte.
        let payloads: Vec<String> = (0..700)
            .map(|index| {
                let id = match index % 3 {
                    0 => derived_message_id(hash(index)),
                    1 => derived_message_id(hash(index) ^ 1),
                    _ => derived_message_id(hash(index)).to_uppercase(),
                };
                format!("{{\"messageId\":\"{id}\",\"type\":\"track\",\"n\":{index}}}")
            })
            .collect();
        let rows: Vec<SegmentRow> = (0..700)
            .map(|index| SegmentRow {
                identifier: "user:a",
                ts: index as i64,
                seq: index as u64,
                step: "view",
                channel: "web",
                msg_hash: hash(index),
                payload: payloads[index].as_bytes(),
            })
            .collect();
        let bytes = write_segment(&path, &rows).unwrap();
        let (segment, columns) = SegmentFile::open(&path).unwrap();
        for index in [0, 1, 2, 255, 256, 257, 699] {
            assert_eq!(
                segment
                    .read_payload(index as u32, &columns.msg_hash)
                    .unwrap(),
                payloads[index].as_bytes()
            );
        }
        // The derived id's 16 random hex digits are what zstd cannot squeeze: a third of them gone shows.
        let all_kept: Vec<SegmentRow> = rows
            .iter()
            .map(|row| SegmentRow {
                msg_hash: row.msg_hash ^ 2,
                ..*row
            })
            .collect();
        let kept_bytes = write_segment(&dir.path().join("2.seg"), &all_kept).unwrap();
        assert!(
            bytes + 700 / 3 * 6 < kept_bytes,
            "{bytes} bytes with derived ids left out, {kept_bytes} with all kept"
        );
        assert_eq!(derived_id_hash(&derived_message_id(42)), Some(42));
        assert_eq!(derived_id_hash("imp-000000000000002A"), None);
        assert_eq!(derived_id_hash("imp-2a"), None);
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
                payload: payloads[index].as_bytes(),
            })
            .collect();
        write_segment(&path, &rows).unwrap();
        let (segment, columns) = SegmentFile::open(&path).unwrap();
        assert_eq!(segment.n_rows, 600);
        assert_eq!(columns.ts[599], 1_000 + 599 * 7);
        assert_eq!(columns.identifiers[columns.ident[450] as usize], "anon:b");
        assert_eq!(columns.steps[columns.step[4] as usize], "cart");
        assert_eq!(
            segment.read_payload(513, &columns.msg_hash).unwrap(),
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
