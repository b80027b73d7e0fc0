//! Waymark's embedded journey store: one data directory holding a write-ahead log, immutable columnar segments
//! clustered by customer and time, the identity graph, and a failed-events log.
//!
//! Writes go through one writer thread that does *group commit*: it drains every pending append, frames them into
//! the log, makes them durable with a single `fdatasync`, applies them to the in-memory state and only then
//! acknowledges. Identity merges are derived from events in log order, so recovery (replaying the log over the last
//! checkpoint) rebuilds exactly the same customers. When the in-memory table grows past
//! [`StoreOptions::flush_rows`], it is written as a segment, the identity graph is checkpointed, and the covered log
//! files are deleted. See `ARCHITECTURE.md` for the invariants.
//!
//! ```
//! use waymark_model::{Event, IngestContext, Timestamp};
//! use waymark_store::{Store, StoreOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! let json = serde_json::json!({"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m1"});
//! let event = Event::from_segment_json(&json, &IngestContext::at(Timestamp::now())).unwrap();
//! let outcome = store.append(vec![event.clone()], vec![]).unwrap();
//! assert_eq!((outcome.accepted, outcome.duplicates), (1, 0));
//! assert_eq!(store.append(vec![event], vec![]).unwrap().duplicates, 1);
//! assert_eq!(store.customer("u1").unwrap().unwrap().events.len(), 1);
//! ```

mod error;
mod export;
mod identity;
mod segment;
mod wal;

pub use error::{Result, StoreError};
pub use identity::{EdgeReason, IdentityGraph, IdentityWarning, Interner, LinkOutcome, MergeEdge};
pub use segment::derived_message_id;

use identity::IdentitySnapshot;
use parking_lot::{Mutex, RwLock};
use segment::{SegmentFile, SegmentRow};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use wal::WalWriter;
use waymark_model::{
    Event, Identifier, JourneySet, PropertyColumnBuilder, RowRef, Timestamp, WrittenRow,
};

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

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

/// A decoded payload block: its first row and the payloads of its rows.
type DecodedBlock = (u32, Vec<Vec<u8>>);

/// Hot columns with process-global dictionary codes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Columns {
    pub ident: Vec<u32>,
    pub ts: Vec<i64>,
    pub seq: Vec<u64>,
    pub step: Vec<u32>,
    pub channel: Vec<u16>,
    pub msg_hash: Vec<u64>,
}

impl Columns {
    fn with_capacity(rows: usize) -> Columns {
        Columns {
            ident: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            seq: Vec::with_capacity(rows),
            step: Vec::with_capacity(rows),
            channel: Vec::with_capacity(rows),
            msg_hash: Vec::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.ts.len()
    }
}

struct LoadedSegment {
    file: SegmentFile,
    columns: Columns,
    rows_by_ident: RowIndex,
}

#[derive(Default)]
struct Memtable {
    columns: Columns,
    payloads: Payloads,
    rows_by_ident: RowIndex,
}

impl Memtable {
    /// A table with room for `rows` rows (at most 4M), so that filling it never moves its columns: growing them by
    /// doubling copied each into freshly zeroed pages, a third of the writer's time in large imports. The room is
    /// only address space until rows arrive.
    fn with_capacity(rows: usize) -> Memtable {
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
struct Payloads {
    chunks: Vec<Vec<u8>>,
    /// Per row: (chunk, start, end).
    spans: Vec<(u32, u32, u32)>,
}

impl Payloads {
    /// Bytes per buffer; a larger payload gets a buffer of its own.
    const CHUNK: usize = 1 << 20;

    fn push(&mut self, payload: &[u8]) {
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
    fn push_chunk(&mut self, chunk: Vec<u8>, ranges: Vec<std::ops::Range<usize>>) {
        let index = self.chunks.len() as u32;
        self.spans.extend(
            ranges
                .into_iter()
                .map(|range| (index, range.start as u32, range.end as u32)),
        );
        self.chunks.push(chunk);
    }

    /// Adds a row whose payload [`Payloads::fill`] gives later.
    fn push_later(&mut self) {
        self.spans.push((0, 0, 0));
    }

    /// Gives row `row`, added by [`Payloads::push_later`], its payload.
    fn fill(&mut self, row: usize, payload: &[u8]) {
        let span = self.spans.len();
        self.push(payload);
        self.spans.swap(row, span);
        self.spans.pop();
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn get(&self, row: usize) -> &[u8] {
        let (chunk, start, end) = self.spans[row];
        &self.chunks[chunk as usize][start as usize..end as usize]
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|row| self.get(row))
    }
}

/// The rows of each identifier in one table, as chains: the identifier's last row, and per row the previous row of
/// the same identifier. Appending a row is one map update, with no vector per identifier to grow (those were one
/// allocation per customer and a tenth of the writer's time during imports), and it costs 4 bytes per row.
#[derive(Default)]
struct RowIndex {
    last: rustc_hash::FxHashMap<u32, u32>,
    previous: Vec<u32>,
}

impl RowIndex {
    /// Marks the end of a chain.
    const NONE: u32 = u32::MAX;

    fn of(idents: &[u32]) -> RowIndex {
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
    fn push(&mut self, ident: u32) {
        let row = self.previous.len() as u32;
        let previous = self.last.insert(ident, row).unwrap_or(RowIndex::NONE);
        self.previous.push(previous);
    }

    /// The rows of `ident`, last first.
    fn rows(&self, ident: u32) -> impl Iterator<Item = u32> + '_ {
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

/// The set of stored events' dedup keys. The keys are already hashes, but senders choose `messageId`s, so the
/// table hashes them again with a per-process random key (foldhash: a few instructions, unlike std's SipHash).
type SeenSet = HashSet<u64, foldhash::fast::RandomState>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SegmentEntry {
    id: u64,
    rows: u64,
    bytes: u64,
}

/// The atomically replaced description of what is durable outside the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    segments: Vec<SegmentEntry>,
    /// Log files with a lower index are covered by segments and the identity snapshot.
    wal_start: u64,
    /// Name of the identity snapshot file in `identity/`, if any.
    identity_snapshot: Option<String>,
    next_segment_id: u64,
    next_seq: u64,
}

struct State {
    identity: IdentityGraph,
    steps: Interner,
    channels: Interner,
    /// Shared so that a background merge can read them without a lock.
    segments: Vec<Arc<LoadedSegment>>,
    /// A full in-memory table being written as a segment by the background flusher; still readable.
    frozen: Option<Arc<Memtable>>,
    memtable: Memtable,
    next_seq: u64,
    manifest: Manifest,
    wal_bytes: u64,
    failed_events: u64,
}

/// Events on their way into the store, in order. Each is either already in stored form, written by the caller
/// ([`EventBatch::push_row`], an import's fast path), or an [`Event`] that [`Store::append_batch`] serialises on
/// the calling thread, so that serialisation runs on the callers' threads instead of on the single writer. The
/// writer gets each event's keys (with the dedup hash) and stored form; the payloads share buffers, like a table's.
#[derive(Default)]
pub struct EventBatch {
    payloads: Payloads,
    keys: Vec<EventKeys>,
    /// Events still to serialise, with their rows.
    deferred: Vec<(usize, Event)>,
}

impl EventBatch {
    pub fn with_capacity(events: usize) -> EventBatch {
        EventBatch {
            payloads: Payloads::default(),
            keys: Vec::with_capacity(events),
            deferred: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds an event, serialised when the batch is appended.
    pub fn push_event(&mut self, event: Event) {
        self.deferred.push((self.keys.len(), event));
        self.payloads.push_later();
        self.keys.push(EventKeys::later());
    }

    /// Adds a mapped row's `track` event in stored form: `payload` is what [`Event::write_row`] wrote for `row`, and
    /// `written` what it returned. `id_hash` is the 64-bit hash its derived `messageId` was made from
    /// ([`derived_message_id`]).
    pub fn push_row(
        &mut self,
        row: &RowRef<'_>,
        id_hash: u64,
        written: WrittenRow,
        payload: &[u8],
    ) {
        debug_assert_eq!(id_hash, message_hash(row.message_id));
        self.payloads.push(payload);
        self.keys.push(EventKeys {
            message_id: row.message_id.to_string(),
            hash: id_hash,
            event_type: waymark_model::EventType::Track,
            timestamp: written.timestamp,
            primary: ["user:", row.user_id.unwrap_or_default()].concat(),
            links: Vec::new(),
            step: row.event.unwrap_or_default().to_string(),
            channel: written.channel,
        });
    }

    /// Serialises the deferred events into their rows.
    fn prepare(&mut self) {
        // Each payload is written into one reusable buffer and copied into the shared ones.
        let mut scratch = Vec::with_capacity(4096);
        for (row, event) in std::mem::take(&mut self.deferred) {
            scratch.clear();
            serde_json::to_writer(&mut scratch, &event).expect("events serialise");
            self.payloads.fill(row, &scratch);
            self.keys[row] = EventKeys::of(&event);
        }
    }
}

/// What the writer thread needs of an event besides its payload, taken on the caller's thread: the writer then
/// neither walks nor frees the event's property maps (freeing them was a tenth of its time during imports).
struct EventKeys {
    message_id: String,
    hash: u64,
    event_type: waymark_model::EventType,
    timestamp: Timestamp,
    /// The key of the identifier the event is stored under.
    primary: String,
    /// Keys of the identifiers the event links (`identify`, `alias`, a user and an anonymous id together).
    links: Vec<(String, String)>,
    step: String,
    channel: String,
}

impl EventKeys {
    /// Stands in for the keys of an event not serialised yet (no allocation).
    fn later() -> EventKeys {
        EventKeys {
            message_id: String::new(),
            hash: 0,
            event_type: waymark_model::EventType::Track,
            timestamp: Timestamp(0),
            primary: String::new(),
            links: Vec::new(),
            step: String::new(),
            channel: String::new(),
        }
    }

    fn of(event: &Event) -> EventKeys {
        EventKeys {
            message_id: event.message_id.clone(),
            hash: message_hash(&event.message_id),
            event_type: event.event_type,
            timestamp: event.timestamp,
            primary: event.primary_identifier().key(),
            links: event
                .identity_links()
                .into_iter()
                .map(|(a, b)| (a.key(), b.key()))
                .collect(),
            step: event.step(),
            channel: event.channel.clone(),
        }
    }
}

/// Operations the writer thread performs, in order, each durable before its reply.
enum Command {
    Append {
        events: EventBatch,
        /// Whether the events go through the log (see [`Store::append_batch_unlogged`]).
        logged: bool,
        failed: Vec<FailedEvent>,
        reply: mpsc::SyncSender<Result<AppendOutcome>>,
    },
    Merge {
        a: String,
        b: String,
        reply: mpsc::SyncSender<Result<LinkOutcome>>,
    },
    Unmerge {
        edge: u32,
        reply: mpsc::SyncSender<Result<bool>>,
    },
    Flush {
        reply: mpsc::SyncSender<Result<()>>,
    },
    Compact {
        reply: mpsc::SyncSender<Result<()>>,
    },
    /// Build the dedup set now, so that the first append does not wait for it (no reply).
    PrepareWrites,
}

/// Record kinds in the log.
const RECORD_EVENTS: u8 = 1;
const RECORD_MERGE: u8 = 2;
const RECORD_UNMERGE: u8 = 3;

#[derive(Serialize, Deserialize)]
struct MergeRecord {
    a: String,
    b: String,
    at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct UnmergeRecord {
    edge: u32,
    at: Timestamp,
}

struct Shared {
    dir: PathBuf,
    options: StoreOptions,
    state: RwLock<State>,
    appended_total: AtomicU64,
    /// Bumped whenever what journeys contain changes (events appended, identities linked or unlinked).
    version: AtomicU64,
    /// Recently built journey views: (version, property names, view), newest last.
    views: Mutex<Vec<CachedView>>,
}

/// A journey view with the store version it was built at and its property columns.
type CachedView = (u64, Vec<String>, Arc<JourneySet>);

/// Journey views kept for reuse (each distinct set of property columns is one).
const CACHED_VIEWS: usize = 4;

/// An open journey store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    _lock: File,
}

impl LoadedSegment {
    /// The payloads of block `block_index`, whole: the fields stored only in the columns are given back from this
    /// segment's columns (`steps` names their process-global step codes).
    fn read_block(&self, block_index: usize, steps: &Interner) -> Result<DecodedBlock> {
        let columns = &self.columns;
        self.file.read_block(block_index, |row| segment::RowKey {
            msg_hash: columns.msg_hash[row],
            ts: columns.ts[row],
            step: steps.name(columns.step[row]),
        })
    }
}

/// The 64-bit key duplicates are recognised by: a derived id's own hash, else the id's xxh3.
pub(crate) fn message_hash(message_id: &str) -> u64 {
    segment::derived_id_hash(message_id)
        .unwrap_or_else(|| xxhash_rust::xxh3::xxh3_64(message_id.as_bytes()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(StoreError::io(&tmp))?;
    file.write_all(bytes).map_err(StoreError::io(&tmp))?;
    file.sync_all().map_err(StoreError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(StoreError::io(path))?;
    wal::sync_dir(path.parent().expect("file in a directory"))
}

impl Store {
    /// Opens (creating if needed) the store in `dir`: takes the directory lock, checks the format version, loads
    /// and verifies every segment, restores the identity checkpoint and replays the log, cutting off a torn tail.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        for sub in ["", "wal", "segments", "identity"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(StoreError::io(dir.join(sub)))?;
        }
        let lock_path = dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(StoreError::io(&lock_path))?;
        fs2::FileExt::try_lock_exclusive(&lock).map_err(|_| StoreError::Locked(dir.clone()))?;

        let format_path = dir.join("FORMAT");
        match std::fs::read_to_string(&format_path) {
            Ok(text) => {
                let found = text
                    .trim()
                    .strip_prefix("waymark-store ")
                    .and_then(|version| version.parse::<u32>().ok())
                    .ok_or_else(|| {
                        StoreError::corrupt(&format_path, format!("unrecognised content {text:?}"))
                    })?;
                if found != FORMAT_VERSION {
                    return Err(StoreError::UnsupportedFormat {
                        path: format_path,
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                write_atomically(
                    &format_path,
                    format!("waymark-store {FORMAT_VERSION}\n").as_bytes(),
                )?;
            }
            Err(error) => {
                return Err(StoreError::Io {
                    path: format_path,
                    source: error,
                })
            }
        }

        let manifest_path = dir.join("MANIFEST");
        let manifest: Manifest = match std::fs::read(&manifest_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| StoreError::corrupt(&manifest_path, error.to_string()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Manifest {
                format: FORMAT_VERSION,
                wal_start: 1,
                next_segment_id: 1,
                ..Manifest::default()
            },
            Err(error) => {
                return Err(StoreError::Io {
                    path: manifest_path,
                    source: error,
                })
            }
        };

        let identity = match &manifest.identity_snapshot {
            Some(name) => {
                let path = dir.join("identity").join(name);
                let mut bytes = std::fs::read(&path).map_err(StoreError::io(&path))?;
                if bytes.starts_with(&segment::ZSTD_MAGIC) {
                    bytes = zstd::stream::decode_all(&bytes[..])
                        .map_err(|error| StoreError::corrupt(&path, error.to_string()))?;
                }
                let snapshot: IdentitySnapshot = serde_json::from_slice(&bytes)
                    .map_err(|error| StoreError::corrupt(&path, error.to_string()))?;
                IdentityGraph::restore(snapshot)
            }
            None => IdentityGraph::default(),
        };
        let mut state = State {
            identity,
            steps: Interner::default(),
            channels: Interner::default(),
            segments: Vec::new(),
            frozen: None,
            memtable: Memtable::with_capacity(options.flush_rows),
            next_seq: manifest.next_seq,
            manifest: manifest.clone(),
            wal_bytes: 0,
            failed_events: 0,
        };
        remove_unlisted_files(&dir, &manifest)?;
        for entry in &manifest.segments {
            let segment = load_segment(&dir, entry.id, &mut state)?;
            state.segments.push(Arc::new(segment));
        }
        // The dedup set of every stored event's key is built when the first write needs it (replaying logged
        // events here, or the writer thread's first append): opening for reading only (queries, exports, stats)
        // skips it — on a 10M-event store it was a fifth of the opening time and 150 MB.
        let mut seen: Option<SeenSet> = None;

        let wal_dir = dir.join("wal");
        let wal_files = wal::list_wal_files(&wal_dir)?;
        let mut writer_index = manifest.wal_start;
        let mut writer_len = 0;
        let n_files = wal_files.len();
        for (position, (index, path)) in wal_files.into_iter().enumerate() {
            if index < manifest.wal_start {
                std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
                continue;
            }
            let (records, valid_len, torn) = wal::read_wal_file(&path)?;
            let is_last = position + 1 == n_files;
            if torn && !is_last {
                return Err(StoreError::corrupt(
                    &path,
                    format!(
                        "invalid record at byte {valid_len} in a log file that is not the newest"
                    ),
                ));
            }
            if torn {
                tracing::warn!(path = %path.display(), valid_len, "cutting off a torn write at the end of the log");
            }
            for record in records {
                state.replay_record(&record, &path, &mut seen)?;
            }
            state.wal_bytes += valid_len;
            writer_index = index;
            writer_len = valid_len;
        }
        let failed_path = dir.join("failed.log");
        if failed_path.exists() {
            let (records, valid_len, torn) = wal::read_wal_file(&failed_path)?;
            if torn {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&failed_path)
                    .map_err(StoreError::io(&failed_path))?;
                file.set_len(valid_len)
                    .map_err(StoreError::io(&failed_path))?;
            }
            state.failed_events = records.len() as u64;
        }
        let wal_writer = WalWriter::open(&wal_dir, writer_index, writer_len)?;
        let failed_len = std::fs::metadata(&failed_path)
            .map(|meta| meta.len())
            .unwrap_or(0);
        let failed_writer = FailedLog::open(&failed_path, failed_len)?;

        let shared = Arc::new(Shared {
            dir,
            options,
            state: RwLock::new(state),
            appended_total: AtomicU64::new(0),
            version: AtomicU64::new(0),
            views: Mutex::new(Vec::new()),
        });
        let (sender, receiver) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("waymark-store-writer".into())
            .spawn(move || writer_loop(thread_shared, receiver, wal_writer, failed_writer, seen))
            .map_err(StoreError::io("writer thread"))?;
        Ok(Store {
            shared,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            _lock: lock,
        })
    }

    fn send<T>(&self, make: impl FnOnce(mpsc::SyncSender<Result<T>>) -> Command) -> Result<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let sender = self.sender.lock();
            let sender = sender
                .as_ref()
                .ok_or_else(|| StoreError::WriterStopped("the store is closed".into()))?;
            sender
                .send(make(reply))
                .map_err(|_| StoreError::WriterStopped("the writer thread has exited".into()))?;
        }
        answer.recv().map_err(|_| {
            StoreError::WriterStopped("the writer thread exited before answering".into())
        })?
    }

    /// Appends events (and failed-event records) durably. Returns once they are on disk and visible to readers.
    /// Events whose `messageId` is already stored are counted as duplicates and not stored again.
    pub fn append(&self, events: Vec<Event>, failed: Vec<FailedEvent>) -> Result<AppendOutcome> {
        let mut batch = EventBatch::with_capacity(events.len());
        for event in events {
            batch.push_event(event);
        }
        self.append_batch(batch, failed)
    }

    /// [`Store::append`] of a batch built by the caller; its events are serialised on this thread.
    pub fn append_batch(
        &self,
        events: EventBatch,
        failed: Vec<FailedEvent>,
    ) -> Result<AppendOutcome> {
        self.append_with(events, failed, true)
    }

    /// [`Store::append_batch`] without the write-ahead log, for bulk loads that can be read again: the events are
    /// stored and visible at once, but durable only once the next [`Store::flush`] (or background flush) has
    /// written them to a segment; a crash before that loses them, and only them. Writing every imported event
    /// twice, to the log and then to a segment, was a fifth of a large import's time. Failed events are still
    /// logged.
    pub fn append_batch_unlogged(
        &self,
        events: EventBatch,
        failed: Vec<FailedEvent>,
    ) -> Result<AppendOutcome> {
        self.append_with(events, failed, false)
    }

    fn append_with(
        &self,
        mut events: EventBatch,
        failed: Vec<FailedEvent>,
        logged: bool,
    ) -> Result<AppendOutcome> {
        events.prepare();
        self.send(|reply| Command::Append {
            events,
            logged,
            failed,
            reply,
        })
    }

    /// Forces two identifiers (keys like `user:ann` or bare values) into one customer, bypassing the guards.
    pub fn merge(&self, a: &str, b: &str) -> Result<LinkOutcome> {
        let (a, b) = (self.resolve_key(a), self.resolve_key(b));
        self.send(|reply| Command::Merge { a, b, reply })
    }

    /// Undoes merge edge `edge`. Returns false when it does not exist or is already undone.
    pub fn unmerge(&self, edge: u32) -> Result<bool> {
        self.send(|reply| Command::Unmerge { edge, reply })
    }

    /// Writes the in-memory table out as a segment and checkpoints, so the log can be dropped.
    pub fn flush(&self) -> Result<()> {
        self.send(|reply| Command::Flush { reply })
    }

    /// Has the writer build its dedup set (every stored event's key) in the background now, instead of at the
    /// first append, which would wait for it (about a second per 30M stored events). Servers call it at start;
    /// opening for reading only never builds the set.
    pub fn prepare_writes(&self) {
        if let Some(sender) = self.sender.lock().as_ref() {
            let _ = sender.send(Command::PrepareWrites);
        }
    }

    /// Flushes, then merges all segments into one, re-clustered by the current customers.
    pub fn compact(&self) -> Result<()> {
        self.send(|reply| Command::Compact { reply })
    }

    /// Flushes and stops the writer. Further appends fail. Called by `Drop` too.
    pub fn close(&self) -> Result<()> {
        let result = if self.sender.lock().is_some() {
            self.flush()
        } else {
            Ok(())
        };
        self.sender.lock().take();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
        result
    }

    /// Stops the writer *without* flushing, as a crash would: the next open must recover from the log alone.
    /// For tests of recovery.
    #[doc(hidden)]
    pub fn simulate_crash(self) {
        self.sender.lock().take();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Maps a user-supplied identifier to a key: `user:…`/`anon:…` as given, else the known `userId`, else the
    /// known `anonymousId`, else a `userId` key.
    fn resolve_key(&self, text: &str) -> String {
        let state = self.shared.state.read();
        resolve_key(&state.identity, text)
    }

    /// Counts for dashboards and `/metrics`.
    pub fn stats(&self) -> StoreStats {
        let state = self.shared.state.read();
        let segment_events: usize = state
            .segments
            .iter()
            .map(|segment| segment.columns.len())
            .sum();
        let in_memory: usize = state
            .in_memory_tables()
            .iter()
            .map(|table| table.columns.len())
            .sum();
        StoreStats {
            events: (segment_events + in_memory) as u64,
            customers: state.identity.n_customers() as u64,
            identifiers: state.identity.n_identifiers() as u64,
            segments: state.segments.len() as u64,
            memtable_events: in_memory as u64,
            segment_bytes: state
                .segments
                .iter()
                .map(|segment| segment.file.bytes)
                .sum(),
            wal_bytes: state.wal_bytes,
            failed_events: state.failed_events,
            merge_edges: state
                .identity
                .edges()
                .iter()
                .filter(|edge| edge.is_active())
                .count() as u64,
            identity_warnings: state.identity.warnings().len() as u64,
            steps: state.steps.len() as u64,
            channels: state.channels.len() as u64,
        }
    }

    /// The customer that `identifier` (a `userId`, an `anonymousId`, or a `user:`/`anon:` key) belongs to, with
    /// all its identifiers, merge history and time-ordered journey. `None` when the identifier is unknown.
    pub fn customer(&self, identifier: &str) -> Result<Option<CustomerView>> {
        let state = self.shared.state.read();
        let key = resolve_key(&state.identity, identifier);
        let Some(id) = state.identity.lookup(&key) else {
            return Ok(None);
        };
        let root = state.identity.customer_of(id);
        let members: HashSet<u32> = state.identity.members(root).iter().copied().collect();
        let mut member_keys: Vec<&str> = members.iter().map(|id| state.identity.key(*id)).collect();
        member_keys.sort_unstable();
        let key_set: HashSet<&str> = member_keys.iter().copied().collect();

        // (ts, seq, location, row) of every event of the customer. Locations are the segments, then the in-memory
        // tables (location `segments.len() + table index`).
        let in_memory = state.in_memory_tables();
        let sources = state
            .segments
            .iter()
            .map(|segment| (&segment.columns, &segment.rows_by_ident))
            .chain(
                in_memory
                    .iter()
                    .map(|table| (&table.columns, &table.rows_by_ident)),
            );
        let mut rows: Vec<(i64, u64, usize, u32)> = Vec::new();
        for (location, (columns, rows_by_ident)) in sources.enumerate() {
            for member in &members {
                for row in rows_by_ident.rows(*member) {
                    let row_index = row as usize;
                    rows.push((columns.ts[row_index], columns.seq[row_index], location, row));
                }
            }
        }
        rows.sort_unstable();
        let mut block_cache: HashMap<(usize, usize), DecodedBlock> = HashMap::new();
        let mut events = Vec::with_capacity(rows.len());
        for (_, _, location, row) in rows {
            let (columns, payload): (&Columns, Vec<u8>) = if location >= state.segments.len() {
                let table = in_memory[location - state.segments.len()];
                (&table.columns, table.payloads.get(row as usize).to_vec())
            } else {
                let segment = &state.segments[location];
                let block_index = row as usize / segment::ROWS_PER_BLOCK;
                let entry = match block_cache.entry((location, block_index)) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(segment.read_block(block_index, &state.steps)?)
                    }
                };
                (&segment.columns, entry.1[(row - entry.0) as usize].clone())
            };
            let event: Event = serde_json::from_slice(&payload).map_err(|error| {
                StoreError::corrupt(
                    &self.shared.dir,
                    format!("stored event does not parse: {error}"),
                )
            })?;
            let row_index = row as usize;
            events.push(TimelineEntry {
                time: Timestamp(columns.ts[row_index]),
                channel: state
                    .channels
                    .name(columns.channel[row_index] as u32)
                    .to_string(),
                step: state.steps.name(columns.step[row_index]).to_string(),
                identifier: state.identity.key(columns.ident[row_index]).to_string(),
                device: event.device_label(),
                event,
            });
        }
        let merges = state
            .identity
            .edges()
            .iter()
            .filter(|edge| key_set.contains(edge.a.as_str()) || key_set.contains(edge.b.as_str()))
            .cloned()
            .collect();
        let warnings = state
            .identity
            .warnings()
            .iter()
            .filter(|warning| {
                key_set.contains(warning.a.as_str()) || key_set.contains(warning.b.as_str())
            })
            .cloned()
            .collect();
        Ok(Some(CustomerView {
            customer_id: state.identity.display_id(root),
            identifiers: member_keys
                .iter()
                .map(|key| Identifier::from_key(key))
                .collect(),
            merges,
            warnings,
            events,
        }))
    }

    /// All merge edges, active and undone, with provenance.
    pub fn merge_edges(&self) -> Vec<MergeEdge> {
        self.shared.state.read().identity.edges().to_vec()
    }

    /// The failed events recorded so far, oldest first.
    pub fn failed_events(&self, limit: usize) -> Result<Vec<FailedEvent>> {
        let path = self.shared.dir.join("failed.log");
        if !path.exists() {
            return Ok(Vec::new());
        }
        let (records, _, _) = wal::read_wal_file(&path)?;
        records
            .iter()
            .take(limit)
            .map(|record| {
                serde_json::from_slice(record)
                    .map_err(|error| StoreError::corrupt(&path, error.to_string()))
            })
            .collect()
    }

    /// Total events appended through this handle (for metrics).
    pub fn appended_total(&self) -> u64 {
        self.shared.appended_total.load(Ordering::Relaxed)
    }

    /// Visits every stored event in storage order (segments, then the in-memory table) with its current customer id.
    /// After [`Store::compact`], storage order is journey order: by customer, then time, then arrival.
    pub fn for_each_event(&self, mut visit: impl FnMut(&str, &[u8]) -> Result<()>) -> Result<()> {
        self.for_each_stored(|customer, _, payload| visit(customer, payload))
    }

    /// [`Store::for_each_event`] with each event's step name (its `step` column, which is `Event::step` of the
    /// event as stored).
    pub(crate) fn for_each_stored(
        &self,
        mut visit: impl FnMut(&str, &str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let state = self.shared.state.read();
        let mut display_cache: HashMap<u32, String> = HashMap::new();
        let mut customer_name = |ident: u32| -> String {
            let root = state.identity.customer_of(ident);
            display_cache
                .entry(root)
                .or_insert_with(|| state.identity.display_id(root))
                .clone()
        };
        for segment in &state.segments {
            for block_index in 0..segment.file.n_blocks() {
                let (first_row, payloads) = segment.read_block(block_index, &state.steps)?;
                for (offset, payload) in payloads.iter().enumerate() {
                    let row = first_row as usize + offset;
                    let step = state.steps.name(segment.columns.step[row]);
                    visit(&customer_name(segment.columns.ident[row]), step, payload)?;
                }
            }
        }
        for table in state.in_memory_tables() {
            for (row, payload) in table.payloads.iter().enumerate() {
                let step = state.steps.name(table.columns.step[row]);
                visit(&customer_name(table.columns.ident[row]), step, payload)?;
            }
        }
        Ok(())
    }
}

pub use export::export_parquet;

impl Store {
    /// The journeys with the named property columns, shared: built once and reused until events are appended or
    /// identities change, so repeated queries on a warm store start at memory speed.
    pub fn journey_view(&self, properties: &[String]) -> Result<Arc<JourneySet>> {
        let mut wanted = properties.to_vec();
        wanted.sort();
        wanted.dedup();
        let version = self.shared.version.load(Ordering::Acquire);
        {
            let mut views = self.shared.views.lock();
            if let Some(position) = views
                .iter()
                .position(|(at, names, _)| *at == version && *names == wanted)
            {
                let entry = views.remove(position);
                let view = Arc::clone(&entry.2);
                views.push(entry);
                return Ok(view);
            }
        }
        let view = Arc::new(self.journeys_with(&wanted)?);
        let mut views = self.shared.views.lock();
        views.retain(|(at, names, _)| *at == version && *names != wanted);
        views.push((version, wanted, Arc::clone(&view)));
        if views.len() > CACHED_VIEWS {
            views.remove(0);
        }
        Ok(view)
    }

    /// Every step name the store has seen.
    pub fn step_names(&self) -> Vec<String> {
        self.shared.state.read().steps.values().to_vec()
    }

    /// Every journey, columnar, in (customer, time, arrival) order — what analyses read. Identifiers are mapped to
    /// their customers as of now, so a merge shows in the next call. The sort is skipped when the rows are already
    /// in that order (a compacted store with no merges since).
    pub fn journeys(&self) -> JourneySet {
        self.journeys_with(&[])
            .expect("loading no property columns reads no payloads")
    }

    /// [`Store::journeys`] plus the named property columns (see [`property_of`] for how names resolve). Loading a
    /// property decodes the payloads, so it costs a pass over them; the hot columns alone do not.
    pub fn journeys_with(&self, properties: &[String]) -> Result<JourneySet> {
        let state = self.shared.state.read();
        let mut customer: Vec<u32> = Vec::new();
        let mut ts: Vec<i64> = Vec::new();
        let mut seq: Vec<u64> = Vec::new();
        let mut step: Vec<u32> = Vec::new();
        let mut channel: Vec<u16> = Vec::new();
        let memtables = state.in_memory_tables();
        // Payload sources in storage order: every block of every segment, then the in-memory tables.
        let mut sources: Vec<PayloadSource<'_>> = Vec::new();
        for segment in &state.segments {
            push_columns(
                &mut (&mut customer, &mut ts, &mut seq, &mut step, &mut channel),
                &segment.columns,
                &state.identity,
            );
            sources.extend(
                (0..segment.file.n_blocks()).map(|block| PayloadSource::Block(segment, block)),
            );
        }
        for table in &memtables {
            push_columns(
                &mut (&mut customer, &mut ts, &mut seq, &mut step, &mut channel),
                &table.columns,
                &state.identity,
            );
            sources.push(PayloadSource::Memory(&table.payloads));
        }
        let builders = if properties.is_empty() {
            Vec::new()
        } else {
            load_property_columns(&self.shared.dir, &sources, &state.steps, properties)?
        };
        let key = |row: usize| (customer[row], ts[row], seq[row]);
        let sorted = (1..ts.len()).all(|row| key(row - 1) <= key(row));
        let order: Vec<usize> = if sorted {
            (0..ts.len()).collect()
        } else {
            let mut order: Vec<usize> = (0..ts.len()).collect();
            order.sort_unstable_by_key(|row| key(*row));
            order
        };
        let mut set = JourneySet {
            step_names: state.steps.values().to_vec(),
            channel_names: state.channels.values().to_vec(),
            offsets: vec![0],
            ..JourneySet::default()
        };
        set.ts = order.iter().map(|row| ts[*row]).collect();
        set.step = order.iter().map(|row| step[*row]).collect();
        set.channel = order.iter().map(|row| channel[*row]).collect();
        set.properties = builders
            .into_iter()
            .map(|builder| {
                let mut column = builder.finish();
                if !sorted {
                    column.codes = order.iter().map(|row| column.codes[*row]).collect();
                }
                column
            })
            .collect();
        for position in 1..=order.len() {
            if position == order.len() || customer[order[position]] != customer[order[position - 1]]
            {
                set.customer_ids
                    .push(&state.identity.display_id(customer[order[position - 1]]));
                set.offsets.push(position);
            }
        }
        Ok(set)
    }
}

type ColumnSinks<'a> = (
    &'a mut Vec<u32>,
    &'a mut Vec<i64>,
    &'a mut Vec<u64>,
    &'a mut Vec<u32>,
    &'a mut Vec<u16>,
);

/// Appends one table's hot columns, with identifiers resolved to their customers.
fn push_columns(sinks: &mut ColumnSinks<'_>, columns: &Columns, identity: &IdentityGraph) {
    let (customer, ts, seq, step, channel) = sinks;
    customer.extend(
        columns
            .ident
            .iter()
            .map(|ident| identity.customer_of(*ident)),
    );
    ts.extend_from_slice(&columns.ts);
    seq.extend_from_slice(&columns.seq);
    step.extend_from_slice(&columns.step);
    channel.extend_from_slice(&columns.channel);
}

/// Where stored payloads are read from, in storage order.
enum PayloadSource<'a> {
    Block(&'a LoadedSegment, usize),
    Memory(&'a Payloads),
}

/// Decodes the named properties of every payload, on every core: each thread codes a contiguous run of sources
/// with its own dictionaries, and the runs are joined in order with their codes remapped.
fn load_property_columns(
    dir: &Path,
    sources: &[PayloadSource<'_>],
    steps: &Interner,
    properties: &[String],
) -> Result<Vec<PropertyColumnBuilder>> {
    let reader = PropertyReader::new(properties);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = sources.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<PropertyColumnBuilder>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = sources
            .chunks(chunk)
            .map(|part| {
                let reader = &reader;
                scope.spawn(move || -> Result<Vec<PropertyColumnBuilder>> {
                    let mut builders: Vec<PropertyColumnBuilder> = properties
                        .iter()
                        .map(|name| PropertyColumnBuilder::new(name.clone()))
                        .collect();
                    let mut read = |payload: &[u8]| -> Result<()> {
                        reader.read(payload, &mut builders).map_err(|error| {
                            StoreError::corrupt(
                                dir,
                                format!("stored event does not parse: {error}"),
                            )
                        })
                    };
                    for source in part {
                        match source {
                            PayloadSource::Block(segment, block) => {
                                for payload in &segment.read_block(*block, steps)?.1 {
                                    read(payload)?;
                                }
                            }
                            PayloadSource::Memory(payloads) => {
                                for payload in payloads.iter() {
                                    read(payload)?;
                                }
                            }
                        }
                    }
                    Ok(builders)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("property decoders do not panic"))
            .collect()
    });
    let mut joined: Option<Vec<PropertyColumnBuilder>> = None;
    for part in parts {
        let part = part?;
        match joined.as_mut() {
            None => joined = Some(part),
            Some(builders) => {
                for (builder, other) in builders.iter_mut().zip(part) {
                    builder.append(other.finish());
                }
            }
        }
    }
    Ok(joined.unwrap_or_else(|| {
        properties
            .iter()
            .map(|name| PropertyColumnBuilder::new(name.clone()))
            .collect()
    }))
}

/// Reads named properties from stored events without building the whole JSON tree: the top level is split into
/// borrowed raw values, and only `properties` and the top-level fields a name's path starts with are parsed.
struct PropertyReader {
    /// Per name: its path parts.
    paths: Vec<Vec<String>>,
}

impl PropertyReader {
    fn new(names: &[String]) -> PropertyReader {
        PropertyReader {
            paths: names
                .iter()
                .map(|name| name.split('.').map(String::from).collect())
                .collect(),
        }
    }

    fn read(
        &self,
        payload: &[u8],
        builders: &mut [PropertyColumnBuilder],
    ) -> serde_json::Result<()> {
        let top: StoredFields<'_> = serde_json::from_slice(payload)?;
        // `properties` split into borrowed raw values (falling back to a full parse for escaped keys).
        let properties: Option<Result<HashMap<&str, &RawValue>, serde_json::Value>> =
            match top.properties {
                None => None,
                Some(raw) => Some(
                    match serde_json::from_str::<HashMap<&str, &RawValue>>(raw.get()) {
                        Ok(map) => Ok(map),
                        Err(_) => Err(serde_json::from_str(raw.get())?),
                    },
                ),
            };
        let in_properties = |path: &[String]| -> serde_json::Result<Option<serde_json::Value>> {
            match &properties {
                None => Ok(None),
                Some(Ok(map)) => match map.get(path[0].as_str()) {
                    None => Ok(None),
                    Some(raw) => {
                        let value: serde_json::Value = serde_json::from_str(raw.get())?;
                        Ok(walk(&value, &path[1..]))
                    }
                },
                Some(Err(value)) => Ok(walk(value, path)),
            }
        };
        for (builder, path) in builders.iter_mut().zip(&self.paths) {
            // The whole name as one key under properties, then as a path under properties, then from the root.
            let mut found = if path.len() > 1 {
                let name = builder.name();
                match &properties {
                    Some(Ok(map)) => map
                        .get(name)
                        .map(|raw| serde_json::from_str(raw.get()))
                        .transpose()?,
                    Some(Err(value)) => value.get(name).cloned(),
                    None => None,
                }
            } else {
                None
            };
            if found.is_none() {
                found = in_properties(path)?;
            }
            if found.is_none() {
                if let Some(raw) = top.field(&path[0]) {
                    let value: serde_json::Value = serde_json::from_str(raw.get())?;
                    found = walk(&value, &path[1..]);
                }
            }
            builder.push(found.as_ref());
        }
        Ok(())
    }
}

use serde_json::value::RawValue;

fn walk(root: &serde_json::Value, parts: &[String]) -> Option<serde_json::Value> {
    parts
        .iter()
        .try_fold(root, |value, part| value.get(part))
        .cloned()
}

/// The top-level fields of a stored event, borrowed unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredFields<'a> {
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traits: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    anonymous_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    group_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    received_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message_id: Option<&'a RawValue>,
}

impl<'a> StoredFields<'a> {
    fn field(&self, name: &str) -> Option<&'a RawValue> {
        match name {
            "properties" => self.properties,
            "traits" => self.traits,
            "context" => self.context,
            "channel" => self.channel,
            "event" => self.event,
            "name" => self.name,
            "type" => self.event_type,
            "userId" => self.user_id,
            "anonymousId" => self.anonymous_id,
            "groupId" => self.group_id,
            "timestamp" => self.timestamp,
            "receivedAt" => self.received_at,
            "messageId" => self.message_id,
            _ => None,
        }
    }
}

/// The value a property name refers to in a stored event: `plan` is `properties.plan`; a dotted name is a path,
/// looked up under `properties` first (`cart.total`) and then from the event's root (`context.os.name`,
/// `traits.plan`, `channel`).
pub fn property_of<'e>(event: &'e serde_json::Value, name: &str) -> Option<&'e serde_json::Value> {
    let properties = event.get("properties");
    if let Some(value) = properties.and_then(|properties| properties.get(name)) {
        return Some(value);
    }
    let path = |root: Option<&'e serde_json::Value>| {
        name.split('.')
            .try_fold(root?, |value, part| value.get(part))
    };
    path(properties).or_else(|| path(Some(event)))
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::error!(%error, "flushing the store at close failed; the log still holds every event appended through it");
        }
    }
}

fn resolve_key(identity: &IdentityGraph, text: &str) -> String {
    if (text.starts_with("user:") || text.starts_with("anon:")) && identity.lookup(text).is_some() {
        return text.to_string();
    }
    let user = format!("user:{text}");
    if identity.lookup(&user).is_some() {
        return user;
    }
    let anonymous = format!("anon:{text}");
    if identity.lookup(&anonymous).is_some() {
        return anonymous;
    }
    if text.starts_with("user:") || text.starts_with("anon:") {
        text.to_string()
    } else {
        user
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("segments").join(format!("{id:020}.seg"))
}

/// Deletes segment and snapshot files the manifest does not list (left by a crash mid-flush) and temporaries.
fn remove_unlisted_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    let listed: HashSet<PathBuf> = manifest
        .segments
        .iter()
        .map(|entry| segment_path(dir, entry.id))
        .collect();
    let segments_dir = dir.join("segments");
    for entry in std::fs::read_dir(&segments_dir).map_err(StoreError::io(&segments_dir))? {
        let path = entry.map_err(StoreError::io(&segments_dir))?.path();
        if !listed.contains(&path) {
            std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
        }
    }
    let identity_dir = dir.join("identity");
    for entry in std::fs::read_dir(&identity_dir).map_err(StoreError::io(&identity_dir))? {
        let path = entry.map_err(StoreError::io(&identity_dir))?.path();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().to_string());
        if name != manifest.identity_snapshot {
            std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
        }
    }
    Ok(())
}

fn load_segment(dir: &Path, id: u64, state: &mut State) -> Result<LoadedSegment> {
    let (file, local) = SegmentFile::open(&segment_path(dir, id))?;
    let ident_map: Vec<u32> = local
        .identifiers
        .iter()
        .map(|key| state.identity.intern(key))
        .collect();
    let step_map: Vec<u32> = local
        .steps
        .iter()
        .map(|name| state.steps.intern(name))
        .collect();
    let channel_map: Vec<u16> = local
        .channels
        .iter()
        .map(|name| state.channels.intern(name) as u16)
        .collect();
    let segment = attach_segment(file, local, &ident_map, &step_map, &channel_map);
    if let Some(max_seq) = segment.columns.seq.iter().max() {
        state.next_seq = state.next_seq.max(max_seq + 1);
    }
    Ok(segment)
}

/// Turns a segment's local dictionary codes into global ones (`*_map[local] = global`) and indexes its rows by
/// identifier.
fn attach_segment(
    file: SegmentFile,
    local: segment::SegmentColumns,
    ident_map: &[u32],
    step_map: &[u32],
    channel_map: &[u16],
) -> LoadedSegment {
    let columns = Columns {
        ident: local
            .ident
            .iter()
            .map(|code| ident_map[*code as usize])
            .collect(),
        ts: local.ts,
        seq: local.seq,
        step: local
            .step
            .iter()
            .map(|code| step_map[*code as usize])
            .collect(),
        channel: local
            .channel
            .iter()
            .map(|code| channel_map[*code as usize])
            .collect(),
        msg_hash: local.msg_hash,
    };
    let rows_by_ident = RowIndex::of(&columns.ident);
    LoadedSegment {
        file,
        columns,
        rows_by_ident,
    }
}

impl State {
    /// The in-memory tables, oldest first: the one being flushed (if any), then the live one.
    fn in_memory_tables(&self) -> Vec<&Memtable> {
        self.frozen
            .as_deref()
            .into_iter()
            .chain(std::iter::once(&self.memtable))
            .collect()
    }

    /// Applies one event that passed de-duplication: identity links first (so the event is filed under the merged
    /// customer), then the row.
    fn apply_event(&mut self, event: &EventKeys, payload: &[u8], seq: u64) {
        let ident = self.identity.intern(&event.primary);
        for (a, b) in &event.links {
            let (a, b) = (self.identity.intern(a), self.identity.intern(b));
            let (reason, forced) = match event.event_type {
                waymark_model::EventType::Alias => (EdgeReason::Alias, true),
                _ => (EdgeReason::Identify, false),
            };
            // A refusal is an expected data-quality event, kept in the graph and served by the API: log it once.
            let outcome =
                self.identity
                    .link(a, b, reason, &event.message_id, event.timestamp, forced);
            if let LinkOutcome::Refused {
                warning,
                repeated: false,
            } = outcome
            {
                tracing::info!(code = %warning.code, "{}", warning.message);
            }
        }
        let step = self.steps.intern(&event.step);
        let channel = self.channels.intern(&event.channel) as u16;
        let hash = event.hash;
        let memtable = &mut self.memtable;
        memtable.columns.ident.push(ident);
        memtable.columns.ts.push(event.timestamp.micros());
        memtable.columns.seq.push(seq);
        memtable.columns.step.push(step);
        memtable.columns.channel.push(channel);
        memtable.columns.msg_hash.push(hash);
        memtable.payloads.push(payload);
        memtable.rows_by_ident.push(ident);
        debug_assert_eq!(
            memtable.rows_by_ident.previous.len(),
            memtable.columns.len()
        );
        self.next_seq = self.next_seq.max(seq + 1);
    }

    fn apply_merge(&mut self, record: &MergeRecord) -> LinkOutcome {
        let (a, b) = (
            self.identity.intern(&record.a),
            self.identity.intern(&record.b),
        );
        self.identity
            .link(a, b, EdgeReason::Manual, "", record.at, true)
    }

    /// Every stored event's dedup key (segments, the table being flushed, the in-memory table), in a set sized
    /// for them at once.
    fn stored_keys(&self) -> SeenSet {
        let tables = self
            .segments
            .iter()
            .map(|segment| &segment.columns)
            .chain(self.frozen.as_ref().map(|frozen| &frozen.columns))
            .chain(std::iter::once(&self.memtable.columns));
        let stored = tables.clone().map(Columns::len).sum();
        let mut seen = SeenSet::with_capacity_and_hasher(stored, Default::default());
        for columns in tables {
            seen.extend(columns.msg_hash.iter().copied());
        }
        seen
    }

    fn replay_record(
        &mut self,
        record: &[u8],
        path: &Path,
        seen: &mut Option<SeenSet>,
    ) -> Result<()> {
        let corrupt = |detail: String| StoreError::corrupt(path, detail);
        match record.first() {
            Some(&RECORD_EVENTS) => {
                let seen = seen.get_or_insert_with(|| self.stored_keys());
                for (seq, payload) in decode_events_record(record)
                    .ok_or_else(|| corrupt("malformed events record".into()))?
                {
                    let event: Event = serde_json::from_slice(payload)
                        .map_err(|error| corrupt(format!("logged event: {error}")))?;
                    if seen.insert(message_hash(&event.message_id)) {
                        self.apply_event(&EventKeys::of(&event), payload, seq);
                    }
                }
            }
            Some(&RECORD_MERGE) => {
                let merge: MergeRecord = serde_json::from_slice(&record[1..])
                    .map_err(|error| corrupt(error.to_string()))?;
                self.apply_merge(&merge);
            }
            Some(&RECORD_UNMERGE) => {
                let unmerge: UnmergeRecord = serde_json::from_slice(&record[1..])
                    .map_err(|error| corrupt(error.to_string()))?;
                self.identity.unmerge(unmerge.edge, unmerge.at);
            }
            other => return Err(corrupt(format!("unknown record kind {other:?}"))),
        }
        Ok(())
    }
}

/// Events record: `kind | u32 count | count × (u64 seq | u32 len | payload)`.
fn encode_events_record<'a>(events: impl Iterator<Item = (u64, &'a [u8])> + Clone) -> Vec<u8> {
    let (count, total) = events
        .clone()
        .fold((0usize, 0usize), |(count, total), (_, payload)| {
            (count + 1, total + payload.len() + 12)
        });
    let mut record = Vec::with_capacity(5 + total);
    record.push(RECORD_EVENTS);
    record.extend_from_slice(&(count as u32).to_le_bytes());
    for (seq, payload) in events {
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(payload);
    }
    record
}

fn decode_events_record(record: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let count = u32::from_le_bytes(record.get(1..5)?.try_into().ok()?) as usize;
    let mut events = Vec::with_capacity(count);
    let mut offset = 5;
    for _ in 0..count {
        let seq = u64::from_le_bytes(record.get(offset..offset + 8)?.try_into().ok()?);
        let len =
            u32::from_le_bytes(record.get(offset + 8..offset + 12)?.try_into().ok()?) as usize;
        events.push((seq, record.get(offset + 12..offset + 12 + len)?));
        offset += 12 + len;
    }
    (offset == record.len()).then_some(events)
}

/// The failed-events log: same framing as the write-ahead log, never truncated.
struct FailedLog {
    writer: Option<WalWriter>,
    path: PathBuf,
    len: u64,
}

impl FailedLog {
    fn open(path: &Path, len: u64) -> Result<FailedLog> {
        Ok(FailedLog {
            writer: None,
            path: path.to_path_buf(),
            len,
        })
    }

    fn writer(&mut self) -> Result<&mut WalWriter> {
        if self.writer.is_none() {
            // The failed log reuses the WAL framing; it lives beside the data directory's other files.
            let dir = self
                .path
                .parent()
                .expect("failed.log lives in the data directory");
            let writer = WalWriter::open_path(dir, &self.path, self.len)?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("just opened"))
    }
}

/// What one group commit did for one request, to be answered after the sync.
enum Pending {
    Append {
        reply: mpsc::SyncSender<Result<AppendOutcome>>,
        outcome: AppendOutcome,
        count: usize,
    },
    Merge {
        reply: mpsc::SyncSender<Result<LinkOutcome>>,
        record: MergeRecord,
    },
    Unmerge {
        reply: mpsc::SyncSender<Result<bool>>,
        record: UnmergeRecord,
    },
}

fn writer_loop(
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<Command>,
    mut wal: WalWriter,
    mut failed_log: FailedLog,
    mut seen: Option<SeenSet>,
) {
    let mut stopped: Option<String> = None;
    let mut background = Background {
        flusher: Flusher::new(),
        compactor: Compactor::new(),
    };
    let stop = |stopped: &mut Option<String>, error: StoreError| {
        tracing::error!(%error, "the store's writer failed; refusing further writes");
        *stopped = Some(error.to_string());
    };
    loop {
        // Wake up now and then while idle to install a finished background flush or merge.
        let first = match receiver.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(command) => command,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if stopped.is_none() {
                    if let Err(error) = background.poll(&shared) {
                        stop(&mut stopped, error);
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut commands = vec![first];
        while let Ok(next) = receiver.try_recv() {
            commands.push(next);
            if commands.len() >= 4096 {
                break;
            }
        }
        if let Some(reason) = &stopped {
            for command in commands {
                reply_error(command, StoreError::WriterStopped(reason.clone()));
            }
            continue;
        }
        // Preparing changes nothing (no group commit: that would mark the journey views stale).
        let before = commands.len();
        commands.retain(|command| !matches!(command, Command::PrepareWrites));
        if commands.len() < before {
            seen.get_or_insert_with(|| shared.state.read().stored_keys());
        }
        if commands.is_empty() {
            continue;
        }
        let logs = (&mut wal, &mut failed_log);
        if let Err(error) = group_commit(&shared, commands, logs, &mut seen, &mut background) {
            stop(&mut stopped, error);
        }
    }
    // The store is closing: let a background flush finish and be installed (it holds unlogged imports), and stop a
    // merge (the next open plans it again), so that no file is left half-installed.
    if stopped.is_none() {
        if let Err(error) = background.flusher.wait(&shared) {
            tracing::error!(%error, "the last background flush failed; the log still holds its events");
        }
        if let Err(error) = background.compactor.abandon(&shared) {
            tracing::error!(%error, "the last background merge failed; its segments stay as they were");
        }
    }
}

fn reply_error(command: Command, error: StoreError) {
    let message = error.to_string();
    let stopped = || StoreError::WriterStopped(message.clone());
    match command {
        Command::Append { reply, .. } => drop(reply.send(Err(stopped()))),
        Command::Merge { reply, .. } => drop(reply.send(Err(stopped()))),
        Command::Unmerge { reply, .. } => drop(reply.send(Err(stopped()))),
        Command::Flush { reply } | Command::Compact { reply } => drop(reply.send(Err(stopped()))),
        Command::PrepareWrites => {}
    }
}

/// One group commit: frame every request, one sync, apply, answer; then run flushes/compactions in order.
/// `seen` holds every stored event's dedup key, built at the first append if it is not yet; a key is added when
/// its event is framed into the log (if the log then fails, the writer stops taking writes, and reopening rebuilds
/// the set from what is on disk).
fn group_commit(
    shared: &Shared,
    commands: Vec<Command>,
    (wal, failed_log): (&mut WalWriter, &mut FailedLog),
    seen: &mut Option<SeenSet>,
    background: &mut Background,
) -> Result<()> {
    let Background { flusher, compactor } = background;
    let mut pending = Vec::new();
    let mut maintenance = Vec::new();
    // The appended batches, and per new event its (seq, batch, index in the batch).
    let mut batches: Vec<EventBatch> = Vec::new();
    let mut new_events: Vec<(u64, usize, usize)> = Vec::new();
    let mut failed_written = 0u64;
    {
        let state = shared.state.read();
        let mut next_seq = state.next_seq;
        for command in commands {
            match command {
                Command::Append {
                    events,
                    logged,
                    failed,
                    reply,
                } => {
                    let first = new_events.len();
                    let mut outcome = AppendOutcome {
                        failed: failed.len(),
                        ..AppendOutcome::default()
                    };
                    let seen = seen.get_or_insert_with(|| state.stored_keys());
                    for (index, keys) in events.keys.iter().enumerate() {
                        if !seen.insert(keys.hash) {
                            outcome.duplicates += 1;
                            continue;
                        }
                        new_events.push((next_seq, batches.len(), index));
                        next_seq += 1;
                    }
                    outcome.accepted = new_events.len() - first;
                    if outcome.accepted > 0 && logged {
                        wal.push(&encode_events_record(
                            new_events[first..]
                                .iter()
                                .map(|(seq, _, index)| (*seq, events.payloads.get(*index))),
                        ));
                    }
                    batches.push(events);
                    if !failed.is_empty() {
                        let writer = failed_log.writer()?;
                        for record in &failed {
                            writer.push(
                                &serde_json::to_vec(record).expect("failed events serialise"),
                            );
                        }
                        failed_written += failed.len() as u64;
                    }
                    let count = new_events.len() - first;
                    pending.push(Pending::Append {
                        reply,
                        outcome,
                        count,
                    });
                }
                Command::Merge { a, b, reply } => {
                    let record = MergeRecord {
                        a,
                        b,
                        at: Timestamp::now(),
                    };
                    let mut bytes = vec![RECORD_MERGE];
                    bytes.extend(serde_json::to_vec(&record).expect("serialises"));
                    wal.push(&bytes);
                    pending.push(Pending::Merge { reply, record });
                }
                Command::Unmerge { edge, reply } => {
                    let record = UnmergeRecord {
                        edge,
                        at: Timestamp::now(),
                    };
                    let mut bytes = vec![RECORD_UNMERGE];
                    bytes.extend(serde_json::to_vec(&record).expect("serialises"));
                    wal.push(&bytes);
                    pending.push(Pending::Unmerge { reply, record });
                }
                maintenance_command => maintenance.push(maintenance_command),
            }
        }
    }
    if !pending.is_empty() {
        if let Err(error) = wal.sync().and_then(|_| match failed_log.writer.as_mut() {
            Some(writer) if failed_written > 0 => writer.sync(),
            _ => Ok(()),
        }) {
            let message = error.to_string();
            for item in pending {
                match item {
                    Pending::Append { reply, .. } => {
                        drop(reply.send(Err(StoreError::WriterStopped(message.clone()))))
                    }
                    Pending::Merge { reply, .. } => {
                        drop(reply.send(Err(StoreError::WriterStopped(message.clone()))))
                    }
                    Pending::Unmerge { reply, .. } => {
                        drop(reply.send(Err(StoreError::WriterStopped(message.clone()))))
                    }
                }
            }
            return Err(error);
        }
    }
    {
        let mut state = shared.state.write();
        shared.version.fetch_add(1, Ordering::Release);
        state.wal_bytes = wal.bytes_written;
        state.failed_events += failed_written;
        let mut events = new_events.into_iter();
        for item in pending {
            match item {
                Pending::Append {
                    reply,
                    outcome,
                    count,
                } => {
                    for (seq, batch, index) in events.by_ref().take(count) {
                        let batch = &batches[batch];
                        state.apply_event(&batch.keys[index], batch.payloads.get(index), seq);
                    }
                    shared
                        .appended_total
                        .fetch_add(outcome.accepted as u64, Ordering::Relaxed);
                    let _ = reply.send(Ok(outcome));
                }
                Pending::Merge { reply, record } => {
                    let outcome = state.apply_merge(&record);
                    let _ = reply.send(Ok(outcome));
                }
                Pending::Unmerge { reply, record } => {
                    let done = state.identity.unmerge(record.edge, record.at);
                    let _ = reply.send(Ok(done));
                }
            }
        }
    }
    for command in maintenance {
        let result = match &command {
            Command::Flush { .. } => flusher.flush_now(shared, wal),
            Command::Compact { .. } => flusher
                .flush_now(shared, wal)
                .and_then(|_| compactor.wait(shared))
                .and_then(|_| compact(shared, None)),
            _ => unreachable!("only maintenance commands are deferred"),
        };
        let failed = result.as_ref().err().map(|error| error.to_string());
        match command {
            Command::Flush { reply } | Command::Compact { reply } => drop(reply.send(result)),
            _ => unreachable!(),
        }
        if let Some(message) = failed {
            return Err(StoreError::WriterStopped(message));
        }
    }
    flusher.poll(shared)?;
    compactor.poll(shared)?;
    let (memtable_rows, n_segments) = {
        let state = shared.state.read();
        (state.memtable.columns.len(), state.segments.len())
    };
    if memtable_rows >= shared.options.flush_rows {
        flusher.start(shared, wal)?;
    }
    if n_segments > shared.options.max_segments {
        compactor.start(shared)?;
    }
    Ok(())
}

/// The writer thread's background work: one flush and one merge at most in flight.
struct Background {
    flusher: Flusher,
    compactor: Compactor,
}

impl Background {
    /// Installs whichever background job has finished.
    fn poll(&mut self, shared: &Shared) -> Result<()> {
        self.flusher.poll(shared)?;
        self.compactor.poll(shared)
    }
}

/// Writes the manifest atomically.
fn save_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    write_atomically(
        &dir.join("MANIFEST"),
        &serde_json::to_vec_pretty(manifest).expect("manifest serialises"),
    )
}

/// Orders rows by (customer, time, sequence): the clustering order of segments.
fn clustering_order(identity: &IdentityGraph, ident: &[u32], ts: &[i64], seq: &[u64]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..ts.len() as u32).collect();
    order.sort_unstable_by_key(|row| {
        let row = *row as usize;
        (identity.customer_of(ident[row]), ts[row], seq[row])
    });
    order
}

/// Row `index` of a segment to write: row `order[index]` of `columns`, with global codes turned back into names.
fn segment_row<'a>(
    identity: &'a IdentityGraph,
    steps: &'a Interner,
    channels: &'a Interner,
    columns: &'a Columns,
    payload: impl Fn(usize) -> segment::Payload<'a>,
    order: &'a [u32],
) -> impl Fn(usize) -> SegmentRow<'a> {
    move |index| {
        let row = order[index] as usize;
        SegmentRow {
            identifier: identity.key(columns.ident[row]),
            ts: columns.ts[row],
            seq: columns.seq[row],
            step: steps.name(columns.step[row]),
            channel: channels.name(columns.channel[row] as u32),
            msg_hash: columns.msg_hash[row],
            payload: payload(row),
        }
    }
}

/// A frozen in-memory table and the dictionaries it must be written with. The clones share every code with the
/// live state (interning only appends), so the segment built from them can be attached without remapping twice.
struct FlushJob {
    table: Arc<Memtable>,
    identity: IdentityGraph,
    steps: Interner,
    channels: Interner,
    segment_id: u64,
    new_wal_index: u64,
    next_seq: u64,
}

/// A written (but not yet live) flush.
struct FlushOutput {
    segment: Option<(SegmentEntry, LoadedSegment)>,
    snapshot_name: String,
    new_wal_index: u64,
    next_seq: u64,
}

/// Starts a flush on the writer thread: new appends go to a fresh log file, and the in-memory table is frozen
/// (still readable) together with the identity graph as of this point in the log. `None` when there is nothing to
/// checkpoint.
fn freeze(shared: &Shared, wal: &mut WalWriter) -> Result<Option<FlushJob>> {
    let mut state = shared.state.write();
    debug_assert!(state.frozen.is_none(), "one flush at a time");
    if state.memtable.columns.len() == 0
        && state.manifest.wal_start == wal.index
        && state.manifest.identity_snapshot.is_some()
    {
        return Ok(None);
    }
    let new_wal_index = wal.index + 1;
    *wal = WalWriter::open(&shared.dir.join("wal"), new_wal_index, 0)?;
    state.wal_bytes = 0;
    let table = Arc::new(std::mem::replace(
        &mut state.memtable,
        Memtable::with_capacity(shared.options.flush_rows),
    ));
    state.frozen = Some(Arc::clone(&table));
    // The id is taken now: a compaction planned before this flush is installed must not pick it too.
    let segment_id = state.manifest.next_segment_id;
    state.manifest.next_segment_id += 1;
    Ok(Some(FlushJob {
        table,
        identity: state.identity.clone(),
        steps: state.steps.clone(),
        channels: state.channels.clone(),
        segment_id,
        new_wal_index,
        next_seq: state.next_seq,
    }))
}

/// Writes the frozen table as a segment and the identity checkpoint. Takes no lock, so it runs on the background
/// flusher while the writer keeps committing.
fn write_flush(dir: &Path, job: FlushJob) -> Result<FlushOutput> {
    let segment = if job.table.columns.len() > 0 {
        let columns = &job.table.columns;
        let order = clustering_order(&job.identity, &columns.ident, &columns.ts, &columns.seq);
        let row = segment_row(
            &job.identity,
            &job.steps,
            &job.channels,
            columns,
            |row| segment::Payload::Whole(job.table.payloads.get(row)),
            &order,
        );
        let path = segment_path(dir, job.segment_id);
        let written = segment::write_segment(&path, order.len(), row)?;
        let entry = SegmentEntry {
            id: job.segment_id,
            rows: order.len() as u64,
            bytes: written.bytes,
        };
        Some((
            entry,
            attach_written(written, &job.identity, &job.steps, &job.channels),
        ))
    } else {
        None
    };
    // The checkpoint as zstd-compressed JSON with a frame checksum (its identifiers and provenance compress
    // several times over; stores written before read their plain `.json` checkpoints still).
    let snapshot_name = format!("{:020}.json.zst", job.new_wal_index);
    let snapshot_path = dir.join("identity").join(&snapshot_name);
    let json = serde_json::to_vec(&job.identity.snapshot()).expect("serialises");
    use std::io::Write as _;
    let mut encoder =
        zstd::stream::Encoder::new(Vec::new(), 3).map_err(StoreError::io(&snapshot_path))?;
    encoder
        .include_checksum(true)
        .map_err(StoreError::io(&snapshot_path))?;
    encoder
        .write_all(&json)
        .map_err(StoreError::io(&snapshot_path))?;
    let compressed = encoder.finish().map_err(StoreError::io(&snapshot_path))?;
    write_atomically(&snapshot_path, &compressed)?;
    Ok(FlushOutput {
        segment,
        snapshot_name,
        new_wal_index: job.new_wal_index,
        next_seq: job.next_seq,
    })
}

/// Attaches a segment this process just wrote, with dictionaries that already hold every name in it (snapshots
/// of the live ones, which share their codes: interning only appends).
fn attach_written(
    written: segment::Written,
    identity: &IdentityGraph,
    steps: &Interner,
    channels: &Interner,
) -> LoadedSegment {
    let local = written.columns;
    let known = |code: Option<u32>| code.expect("a written segment only holds interned names");
    let ident_map: Vec<u32> = local
        .identifiers
        .iter()
        .map(|key| known(identity.lookup(key)))
        .collect();
    let step_map: Vec<u32> = local
        .steps
        .iter()
        .map(|name| known(steps.get(name)))
        .collect();
    let channel_map: Vec<u16> = local
        .channels
        .iter()
        .map(|name| known(channels.get(name)) as u16)
        .collect();
    attach_segment(written.file, local, &ident_map, &step_map, &channel_map)
}

/// Makes a written flush live (writer thread): the manifest first, then the log files and checkpoint it covers
/// are removed and the segment replaces the frozen table for readers.
fn install_flush(shared: &Shared, output: FlushOutput) -> Result<()> {
    let dir = &shared.dir;
    let mut state = shared.state.write();
    let mut manifest = state.manifest.clone();
    if let Some((entry, _)) = &output.segment {
        // Its id was taken at freeze, so `next_segment_id` is already past it.
        manifest.segments.push(entry.clone());
    }
    let old_snapshot = manifest.identity_snapshot.replace(output.snapshot_name);
    manifest.wal_start = output.new_wal_index;
    manifest.next_seq = output.next_seq;
    save_manifest(dir, &manifest)?;
    for (index, path) in wal::list_wal_files(&dir.join("wal"))? {
        if index < output.new_wal_index {
            std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
        }
    }
    if let Some(old) = old_snapshot {
        let _ = std::fs::remove_file(dir.join("identity").join(old));
    }
    if let Some((_, segment)) = output.segment {
        state.segments.push(Arc::new(segment));
    }
    state.frozen = None;
    state.manifest = manifest;
    Ok(())
}

/// Work for a background thread.
type Job<T> = Box<dyn FnOnce() -> Result<T> + Send>;

/// A background thread's job queue and the results it sends back.
type Worker<T> = (mpsc::Sender<Job<T>>, mpsc::Receiver<Result<T>>);

/// One background job at a time whose result the writer thread installs (a flush, a merge), run on one
/// long-lived thread per kind of job: its allocator heap, and the memory a job freed, serve the next job. (A
/// thread per job gave its memory back to the system at exit and the next one faulted in fresh pages: mimalloc
/// purged 1.6 GB during a 10M-row import, and the kernel's page zeroing was a quarter of the import's CPU time.)
struct BackgroundJob<T> {
    in_flight: bool,
    /// The thread's name.
    name: &'static str,
    /// The thread's job queue and results, once it is started. Dropping the queue ends the thread.
    worker: Option<Worker<T>>,
}

impl<T: Send + 'static> BackgroundJob<T> {
    fn new(name: &'static str) -> BackgroundJob<T> {
        BackgroundJob {
            in_flight: false,
            name,
            worker: None,
        }
    }

    fn died(&self) -> StoreError {
        StoreError::WriterStopped(format!("the {} thread died", self.name))
    }

    fn spawn(&mut self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<()> {
        if self.worker.is_none() {
            let (jobs, queue) = mpsc::channel::<Job<T>>();
            let (done_sender, done) = mpsc::channel();
            std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || {
                    for job in queue {
                        if done_sender.send(job()).is_err() {
                            break;
                        }
                    }
                })
                .map_err(StoreError::io(self.name))?;
            self.worker = Some((jobs, done));
        }
        let (jobs, _) = self.worker.as_ref().expect("the worker was just started");
        jobs.send(Box::new(work)).map_err(|_| self.died())?;
        self.in_flight = true;
        Ok(())
    }

    /// The finished job's result, waiting for it when `wait`; `None` when none is in flight (or, without `wait`,
    /// still running).
    fn take(&mut self, wait: bool) -> Result<Option<Result<T>>> {
        let (true, Some((_, done))) = (self.in_flight, self.worker.as_ref()) else {
            return Ok(None);
        };
        let output = if wait {
            done.recv().map_err(|_| self.died())?
        } else {
            match done.try_recv() {
                Ok(output) => output,
                Err(mpsc::TryRecvError::Empty) => return Ok(None),
                Err(mpsc::TryRecvError::Disconnected) => return Err(self.died()),
            }
        };
        self.in_flight = false;
        Ok(Some(output))
    }

    /// Installs the finished job's result with `install`, if there is one (waiting for it when `wait`).
    fn install(&mut self, wait: bool, install: impl FnOnce(T) -> Result<()>) -> Result<()> {
        match self.take(wait)? {
            Some(output) => install(output?),
            None => Ok(()),
        }
    }
}

/// Drives background flushes from the writer thread: at most one in flight.
struct Flusher {
    job: BackgroundJob<FlushOutput>,
}

impl Flusher {
    fn new() -> Flusher {
        Flusher {
            job: BackgroundJob::new("waymark-store-flush"),
        }
    }

    /// Freezes the in-memory table and writes it on a background thread, unless a flush is already running.
    fn start(&mut self, shared: &Shared, wal: &mut WalWriter) -> Result<()> {
        if self.job.in_flight {
            return Ok(());
        }
        if let Some(job) = freeze(shared, wal)? {
            let dir = shared.dir.clone();
            self.job.spawn(move || write_flush(&dir, job))?;
        }
        Ok(())
    }

    /// Installs a finished background flush, if there is one.
    fn poll(&mut self, shared: &Shared) -> Result<()> {
        self.job
            .install(false, |output| install_flush(shared, output))
    }

    /// Waits for the background flush in flight, if any, and installs it.
    fn wait(&mut self, shared: &Shared) -> Result<()> {
        self.job
            .install(true, |output| install_flush(shared, output))
    }

    /// A complete flush on the calling thread, after any background one.
    fn flush_now(&mut self, shared: &Shared, wal: &mut WalWriter) -> Result<()> {
        self.wait(shared)?;
        if let Some(job) = freeze(shared, wal)? {
            install_flush(shared, write_flush(&shared.dir, job)?)?;
        }
        Ok(())
    }
}

/// Which segments a compaction merges, as positions in `state.segments`: all of them, or with `max_rows` the
/// smallest ones that fit together in that many rows. Empty when fewer than two would be merged.
fn choose_segments(state: &State, max_rows: Option<u64>) -> Vec<usize> {
    let chosen: Vec<usize> = match max_rows {
        None => (0..state.segments.len()).collect(),
        Some(limit) => {
            let mut by_size: Vec<usize> = (0..state.segments.len()).collect();
            by_size.sort_by_key(|index| state.segments[*index].columns.len());
            let mut total = 0u64;
            let mut chosen = Vec::new();
            for index in by_size {
                let rows = state.segments[index].columns.len() as u64;
                if total + rows > limit {
                    break;
                }
                total += rows;
                chosen.push(index);
            }
            chosen.sort_unstable();
            chosen
        }
    };
    if chosen.len() < 2 {
        Vec::new()
    } else {
        chosen
    }
}

/// A merge of segments: planned on the writer thread, written without holding any lock (the segments are shared,
/// the dictionaries are snapshots), installed on the writer thread.
struct CompactJob {
    /// The merged segments and their ids.
    segments: Vec<(u64, Arc<LoadedSegment>)>,
    identity: IdentityGraph,
    steps: Interner,
    channels: Interner,
    segment_id: u64,
}

/// A written (not yet live) merge.
struct CompactOutput {
    merged: Vec<u64>,
    entry: SegmentEntry,
    segment: LoadedSegment,
}

/// Chooses the segments to merge (see [`choose_segments`]) and takes an id for the result; `None` when there is
/// nothing to merge.
fn plan_compaction(shared: &Shared, max_rows: Option<u64>) -> Option<CompactJob> {
    let mut state = shared.state.write();
    let chosen = choose_segments(&state, max_rows);
    if chosen.is_empty() {
        return None;
    }
    let segment_id = state.manifest.next_segment_id;
    state.manifest.next_segment_id += 1;
    Some(CompactJob {
        segments: chosen
            .iter()
            .map(|index| {
                (
                    state.manifest.segments[*index].id,
                    Arc::clone(&state.segments[*index]),
                )
            })
            .collect(),
        identity: state.identity.clone(),
        steps: state.steps.clone(),
        channels: state.channels.clone(),
        segment_id,
    })
}

/// Merges the job's segments into one, re-clustered by the customers as of planning. Gives up with
/// [`StoreError::Closing`] once `cancel` is set.
fn write_compaction(dir: &Path, job: CompactJob, cancel: &AtomicBool) -> Result<CompactOutput> {
    let started = std::time::Instant::now();
    // Gather the chosen rows with their payloads as stored: a payload's stored form depends only on its row's hash,
    // time and step name, which a merge keeps, so it is written again as it is, not decoded and encoded. The blocks
    // are kept as read (copying them into one buffer grew it to hundreds of MB by doubling); the columns are sized
    // once.
    let n_rows: usize = job
        .segments
        .iter()
        .map(|(_, segment)| segment.columns.len())
        .sum();
    let mut columns = Columns::with_capacity(n_rows);
    let mut payloads = Payloads::default();
    // Per merged segment: its first row among the gathered ones, and whether its payloads are in stored form (a
    // format-1 segment's are whole).
    let mut stored_from: Vec<(usize, bool)> = Vec::new();
    for (_, segment) in &job.segments {
        stored_from.push((payloads.len(), segment.file.stores_cut_payloads()));
        for block_index in 0..segment.file.n_blocks() {
            if cancel.load(Ordering::Relaxed) {
                return Err(StoreError::Closing);
            }
            let (_, raw, ranges) = segment.file.block_rows(block_index)?;
            payloads.push_chunk(raw, ranges);
        }
        columns.ident.extend_from_slice(&segment.columns.ident);
        columns.ts.extend_from_slice(&segment.columns.ts);
        columns.seq.extend_from_slice(&segment.columns.seq);
        columns.step.extend_from_slice(&segment.columns.step);
        columns.channel.extend_from_slice(&segment.columns.channel);
        columns
            .msg_hash
            .extend_from_slice(&segment.columns.msg_hash);
    }
    let order = clustering_order(&job.identity, &columns.ident, &columns.ts, &columns.seq);
    if cancel.load(Ordering::Relaxed) {
        return Err(StoreError::Closing);
    }
    let row = segment_row(
        &job.identity,
        &job.steps,
        &job.channels,
        &columns,
        |row| {
            let bytes = payloads.get(row);
            let segment = stored_from.partition_point(|(first, _)| *first <= row) - 1;
            if stored_from[segment].1 {
                segment::Payload::Stored(bytes)
            } else {
                segment::Payload::Whole(bytes)
            }
        },
        &order,
    );
    let path = segment_path(dir, job.segment_id);
    let written = segment::write_segment_unless(&path, order.len(), row, cancel)?;
    let bytes = written.bytes;
    drop(payloads);
    let segment = attach_written(written, &job.identity, &job.steps, &job.channels);
    tracing::debug!(
        segments = job.segments.len(),
        rows = order.len(),
        seconds = started.elapsed().as_secs_f64(),
        "compacted"
    );
    Ok(CompactOutput {
        merged: job.segments.iter().map(|(id, _)| *id).collect(),
        entry: SegmentEntry {
            id: job.segment_id,
            rows: order.len() as u64,
            bytes,
        },
        segment,
    })
}

/// Makes a written merge live (writer thread): the manifest swaps the merged segments for the new one atomically,
/// then their files are removed (readers that still hold one keep reading its open file).
fn install_compaction(shared: &Shared, output: CompactOutput) -> Result<()> {
    let dir = &shared.dir;
    let mut state = shared.state.write();
    let mut manifest = state.manifest.clone();
    // The manifest lists segments in the order of `state.segments`; only merges remove any, one at a time.
    let keep: Vec<bool> = manifest
        .segments
        .iter()
        .map(|entry| !output.merged.contains(&entry.id))
        .collect();
    assert_eq!(
        keep.iter().filter(|kept| !**kept).count(),
        output.merged.len(),
        "merged segments are still live until their merge is installed"
    );
    // The result's id was taken when the merge was planned, so `next_segment_id` is already past it.
    let mut kept = keep.iter();
    manifest
        .segments
        .retain(|_| *kept.next().expect("one flag per segment"));
    manifest.segments.push(output.entry);
    save_manifest(dir, &manifest)?;
    for old_id in &output.merged {
        let path = segment_path(dir, *old_id);
        std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
    }
    // The merged rows' sequence numbers were already below `next_seq`: nothing to advance.
    let mut kept = keep.iter();
    state
        .segments
        .retain(|_| *kept.next().expect("one flag per segment"));
    state.segments.push(Arc::new(output.segment));
    state.manifest = manifest;
    shared.version.fetch_add(1, Ordering::Release);
    Ok(())
}

/// A whole merge on the calling thread (see [`choose_segments`]).
fn compact(shared: &Shared, max_rows: Option<u64>) -> Result<()> {
    match plan_compaction(shared, max_rows) {
        Some(job) => install_compaction(
            shared,
            write_compaction(&shared.dir, job, &AtomicBool::new(false))?,
        ),
        None => Ok(()),
    }
}

/// Drives background merges from the writer thread: at most one in flight, so that appends go on while segments
/// are merged (a 4M-row merge held the writer, and every append, for seconds).
struct Compactor {
    job: BackgroundJob<CompactOutput>,
    /// Set to make the merge in flight give up (at close).
    cancel: Arc<AtomicBool>,
}

impl Compactor {
    fn new() -> Compactor {
        Compactor {
            job: BackgroundJob::new("waymark-store-compact"),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts merging the smallest segments in the background, unless a merge is running.
    fn start(&mut self, shared: &Shared) -> Result<()> {
        if self.job.in_flight {
            return Ok(());
        }
        if let Some(job) = plan_compaction(shared, Some(shared.options.compact_max_rows)) {
            let dir = shared.dir.clone();
            let cancel = Arc::clone(&self.cancel);
            self.job
                .spawn(move || write_compaction(&dir, job, &cancel))?;
        }
        Ok(())
    }

    /// Stops the merge in flight, if any: closing the store does not wait for a merge (a 4M-row one takes
    /// seconds), which the next open simply plans again. Its temporary file is removed (or, after a crash, by the
    /// next open). A merge that already finished is installed.
    fn abandon(&mut self, shared: &Shared) -> Result<()> {
        self.cancel.store(true, Ordering::Relaxed);
        match self.job.take(true)? {
            None | Some(Err(StoreError::Closing)) => Ok(()),
            Some(Err(error)) => Err(error),
            // It finished before it saw the flag: installing it costs only the manifest swap.
            Some(Ok(output)) => install_compaction(shared, output),
        }
    }

    /// Installs a finished background merge, if there is one.
    fn poll(&mut self, shared: &Shared) -> Result<()> {
        self.job
            .install(false, |output| install_compaction(shared, output))
    }

    /// Waits for the background merge in flight, if any, and installs it.
    fn wait(&mut self, shared: &Shared) -> Result<()> {
        self.job
            .install(true, |output| install_compaction(shared, output))
    }
}

#[cfg(test)]
mod property_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_written_row_has_the_keys_and_payload_of_its_event() {
        let ingest = waymark_model::IngestContext {
            default_channel: Some("store".into()),
            allow_placeholder_ids: true,
            ..waymark_model::IngestContext::at(Timestamp(1_780_000_000_000_000))
        };
        let properties: [(&str, &[u8]); 1] = [("plan", b"\"pro\"")];
        for channel in [None, Some("Contact Centre")] {
            let row = RowRef {
                message_id: "imp-00000000000000ab",
                user_id: Some("0"),
                event: Some("Order Completed"),
                timestamp: "2026-03-01T11:00:00Z",
                channel,
                properties: &properties,
            };
            let mut payload = Vec::new();
            let written = Event::write_row(&row, &ingest, &mut payload).expect("a valid row");
            let mut batch = EventBatch::default();
            batch.push_row(&row, 0xab, written, &payload);
            let event = Event::from_row(
                waymark_model::RowParts {
                    message_id: row.message_id.into(),
                    user_id: Some("0".into()),
                    event: Some("Order Completed".into()),
                    timestamp: row.timestamp.into(),
                    channel: channel.map(str::to_string),
                    properties: [("plan".to_string(), json!("pro"))].into_iter().collect(),
                },
                &ingest,
            )
            .unwrap();
            let mut expected = EventBatch::default();
            expected.push_event(event);
            expected.prepare();
            let keys = |batch: &EventBatch| {
                let keys = &batch.keys[0];
                (
                    keys.message_id.clone(),
                    keys.hash,
                    keys.event_type,
                    keys.timestamp,
                    keys.primary.clone(),
                    keys.links.clone(),
                    keys.step.clone(),
                    keys.channel.clone(),
                )
            };
            assert_eq!(keys(&batch), keys(&expected));
            assert_eq!(batch.payloads.get(0), expected.payloads.get(0));
        }
    }

    #[test]
    fn deferred_payloads_land_in_their_rows() {
        let mut payloads = Payloads::default();
        payloads.push(b"a");
        payloads.push_later();
        payloads.push(b"c");
        payloads.push_later();
        payloads.fill(3, b"d");
        payloads.fill(1, b"b");
        let all: Vec<&[u8]> = payloads.iter().collect();
        assert_eq!(all, [b"a", b"b", b"c", b"d"]);
    }

    #[test]
    fn the_borrowing_reader_finds_what_property_of_finds() {
        let events = [
            json!({"type": "track", "channel": "app", "properties": {"plan": "pro", "cart": {"total": 12.5}, "a.b": 1},
                   "context": {"device": {"type": "android_app"}}, "traits": {"region": "North"}}),
            json!({"type": "page", "channel": "web", "properties": {"we\"ird": true, "plan": null}}),
            json!({"type": "identify", "channel": "web", "traits": {"region": "South"}}),
        ];
        let names: Vec<String> = [
            "plan",
            "cart.total",
            "a.b",
            "context.device.type",
            "traits.region",
            "channel",
            "type",
            "we\"ird",
            "missing.path",
        ]
        .map(String::from)
        .to_vec();
        let reader = PropertyReader::new(&names);
        for event in &events {
            let mut builders: Vec<PropertyColumnBuilder> = names
                .iter()
                .map(|name| PropertyColumnBuilder::new(name.clone()))
                .collect();
            reader
                .read(event.to_string().as_bytes(), &mut builders)
                .unwrap();
            for (builder, name) in builders.into_iter().zip(&names) {
                let column = builder.finish();
                let expected = property_of(event, name)
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                assert_eq!(column.value(0), &expected, "{name} in {event}");
            }
        }
    }
}
