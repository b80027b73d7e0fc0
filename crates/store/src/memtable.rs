//! In-memory tables and loaded segments: hot columns with process-global codes, packed payloads, the per-identifier row index.

use super::*;

/// A decoded payload block: its first row and the payloads of its rows.
pub(crate) type DecodedBlock = (u32, Vec<Vec<u8>>);

pub(crate) struct LoadedSegment {
    pub(crate) file: SegmentFile,
    pub(crate) columns: Columns,
    pub(crate) rows_by_ident: RowIndex,
    /// The greatest arrival sequence number in the segment (0 when empty): a reader of the events after a
    /// sequence number skips the segments that end before it.
    pub(crate) max_seq: u64,
    /// The blocks decoded last for one customer's reads (a timeline, a re-score), newest last: a customer read
    /// again soon after (the next event of a session) or a neighbour in the segment's order (customers scored in
    /// a batch) finds its block decoded. Kept with the segment, so what a merge or a deletion replaces goes too.
    pub(crate) recent: Mutex<Vec<(usize, Arc<DecodedBlock>)>>,
}

/// How many decoded blocks each segment keeps for customer reads (a block is 256 payloads, tens of KiB).
pub(crate) const RECENT_BLOCKS: usize = 8;

#[derive(Default)]
pub(crate) struct Memtable {
    pub(crate) columns: Columns,
    pub(crate) payloads: Payloads,
    pub(crate) rows_by_ident: RowIndex,
}

impl Memtable {
    /// A table with room for `rows` rows (at most 4M), so that filling it never moves its columns: growing them by
    /// doubling copied each into freshly zeroed pages, a third of the writer's time in large imports. The room is
    /// only address space until rows arrive.
    pub(crate) fn with_capacity(rows: usize) -> Memtable {
        let rows = rows.min(1 << 22);
        Memtable {
            columns: Columns::with_capacity(rows),
            payloads: Payloads {
                chunks: Vec::new(),
                spans: Vec::with_capacity(rows),
            },
            rows_by_ident: RowIndex {
                last: Default::default(),
                previous: Vec::with_capacity(rows),
            },
        }
    }
}

/// Payloads kept in memory, in row order, packed into large shared buffers: one allocation per megabyte instead of
/// one per event (a table of a million events made a million of them, each freed by another thread later).
#[derive(Default)]
pub(crate) struct Payloads {
    pub(crate) chunks: Vec<Vec<u8>>,
    /// Per row: (chunk, start, end).
    pub(crate) spans: Vec<(u32, u32, u32)>,
}

impl Payloads {
    /// Bytes per buffer; a larger payload gets a buffer of its own.
    const CHUNK: usize = 1 << 20;

    pub(crate) fn push(&mut self, payload: &[u8]) {
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= payload.len());
        if !fits {
            self.chunks
                .push(Vec::with_capacity(payload.len().max(Payloads::CHUNK)));
        }
        let index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[index];
        let start = chunk.len();
        chunk.extend_from_slice(payload);
        self.spans
            .push((index as u32, start as u32, chunk.len() as u32));
    }

    /// Adds the payloads lying at `ranges` of `chunk`, taking the buffer as it is.
    pub(crate) fn push_chunk(&mut self, chunk: Vec<u8>, ranges: Vec<std::ops::Range<usize>>) {
        let index = self.chunks.len() as u32;
        self.spans.extend(
            ranges
                .into_iter()
                .map(|range| (index, range.start as u32, range.end as u32)),
        );
        self.chunks.push(chunk);
    }

    /// Adds a row whose payload [`Payloads::fill`] gives later.
    pub(crate) fn push_later(&mut self) {
        self.spans.push((0, 0, 0));
    }

    /// Gives row `row`, added by [`Payloads::push_later`], its payload.
    pub(crate) fn fill(&mut self, row: usize, payload: &[u8]) {
        let span = self.spans.len();
        self.push(payload);
        self.spans.swap(row, span);
        self.spans.pop();
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn get(&self, row: usize) -> &[u8] {
        let (chunk, start, end) = self.spans[row];
        &self.chunks[chunk as usize][start as usize..end as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|row| self.get(row))
    }
}

/// The rows of each identifier in one table, as chains: the identifier's last row, and per row the previous row of
/// the same identifier. Appending a row is one map update, with no vector per identifier to grow (those were one
/// allocation per customer and a tenth of the writer's time during imports), and it costs 4 bytes per row.
#[derive(Default)]
pub(crate) struct RowIndex {
    pub(crate) last: rustc_hash::FxHashMap<u32, u32>,
    pub(crate) previous: Vec<u32>,
}

impl RowIndex {
    /// Marks the end of a chain.
    const NONE: u32 = u32::MAX;

    pub(crate) fn of(idents: &[u32]) -> RowIndex {
        let mut index = RowIndex {
            previous: Vec::with_capacity(idents.len()),
            ..RowIndex::default()
        };
        for ident in idents {
            index.push(*ident);
        }
        index
    }

    /// Adds the next row, of identifier `ident`.
    pub(crate) fn push(&mut self, ident: u32) {
        let row = self.previous.len() as u32;
        let previous = self.last.insert(ident, row).unwrap_or(RowIndex::NONE);
        self.previous.push(previous);
    }

    /// The rows of `ident`, last first.
    pub(crate) fn rows(&self, ident: u32) -> impl Iterator<Item = u32> + '_ {
        let mut next = self.last.get(&ident).copied().unwrap_or(RowIndex::NONE);
        std::iter::from_fn(move || {
            let row = next;
            (row != RowIndex::NONE).then(|| {
                next = self.previous[row as usize];
                row
            })
        })
    }
}

impl LoadedSegment {
    /// The payloads of block `block_index`, whole: the fields stored only in the columns are given back from this
    /// segment's columns (`steps` names their process-global step codes).
    pub(crate) fn read_block(&self, block_index: usize, steps: &Interner) -> Result<DecodedBlock> {
        let columns = &self.columns;
        self.file.read_block(block_index, |row| segment::RowKey {
            msg_hash: columns.msg_hash[row],
            ts: columns.ts[row],
            step: steps.name(columns.step[row]),
        })
    }

    /// [`Self::read_block`] through the segment's recent blocks: what reads of one customer's rows use (a scan of
    /// every block would only push out what the next customer read needs).
    pub(crate) fn recent_block(
        &self,
        block_index: usize,
        steps: &Interner,
    ) -> Result<Arc<DecodedBlock>> {
        {
            let mut recent = self.recent.lock();
            if let Some(position) = recent.iter().position(|(at, _)| *at == block_index) {
                let entry = recent.remove(position);
                let block = Arc::clone(&entry.1);
                recent.push(entry);
                return Ok(block);
            }
        }
        let block = Arc::new(self.read_block(block_index, steps)?);
        let mut recent = self.recent.lock();
        if !recent.iter().any(|(at, _)| *at == block_index) {
            if recent.len() >= RECENT_BLOCKS {
                recent.remove(0);
            }
            recent.push((block_index, Arc::clone(&block)));
        }
        Ok(block)
    }
}
