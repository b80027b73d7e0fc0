//! Reading a segment: the footer and its checks, the hot columns, and payload blocks on demand.

use super::*;

/// Decompresses one section (a single zstd frame that states its size, as `write_segment` makes them) with this
/// thread's reused decompression context: a fresh context per 256-row payload block made reading blocks, and so
/// compaction, several times slower. Frames without a stated size go through the streaming decoder.
pub(super) fn decompress(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
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
    pub(super) fn read_exact_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buffer = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buffer, offset)
            .map_err(StoreError::io(&self.path))?;
        Ok(buffer)
    }

    pub(super) fn read_section(
        &self,
        section: &SectionRef,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>> {
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
            rows: Columns {
                ident,
                ts,
                seq: seq.into_iter().map(|value| value as u64).collect(),
                step,
                channel,
                msg_hash,
            },
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

    pub(super) fn malformed_block(&self, block_index: usize) -> StoreError {
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
