//! Writing a segment: rows in clustering order into column sections, payload blocks and the footer, gathering the hot columns it attaches.

use super::*;

pub(super) struct SectionWriter {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) offset: u64,
    /// One compression context for the whole segment: creating one per section costs megabytes of allocation.
    pub(super) compressor: zstd::bulk::Compressor<'static>,
}

impl SectionWriter {
    pub(super) fn write(&mut self, raw: &[u8]) -> Result<SectionRef> {
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
pub(super) fn write_segment_as<'r>(
    path: &Path,
    n_rows: usize,
    row: impl Fn(usize) -> SegmentRow<'r>,
    format: u32,
    cancel: Option<&AtomicBool>,
) -> Result<Written> {
    let written = write_segment_file(path, n_rows, row, format, cancel);
    if written.is_err() {
        // A full disk must not stay full of a segment that was never installed.
        let _ = std::fs::remove_file(path.with_extension("seg.tmp"));
    }
    written
}

fn write_segment_file<'r>(
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
            rows: Columns {
                ident,
                ts,
                seq: seq.into_iter().map(|value| value as u64).collect(),
                step,
                channel,
                msg_hash,
            },
        },
    })
}
