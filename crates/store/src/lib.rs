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

mod batch;
mod compaction;
mod error;
mod export;
mod flush;
mod forget;
mod identity;
mod memtable;
mod read;
mod segment;
mod state;
mod stored;
mod types;
mod wal;
mod writer;

pub use batch::EventBatch;
pub use error::{DiskFault, Result, StoreError};
pub use identity::{
    is_forgotten_key, ArrivalIdentity, EdgeReason, IdentityGraph, IdentityWarning, Interner,
    LinkOutcome, MergeEdge,
};
pub use read::property_of;
pub use segment::derived_message_id;
pub use types::{
    AppendOutcome, CustomerView, FailedEvent, SequencedEvent, StoreOptions, StoreStats,
    TimelineEntry,
};

use batch::*;
use compaction::*;
use flush::*;
use forget::*;
use memtable::*;
use read::PropertyReader;
use state::*;
use writer::*;

use identity::IdentitySnapshot;
use parking_lot::{Mutex, RwLock};
use segment::{Columns, SegmentFile, SegmentRow};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use wal::WalWriter;
use waymark_model::{
    Event, Identifier, JourneySet, PropertyColumn, PropertyColumnBuilder, RowRef, Timestamp,
    WrittenRow,
};

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

struct Shared {
    dir: PathBuf,
    options: StoreOptions,
    state: RwLock<State>,
    appended_total: AtomicU64,
    /// Bumped whenever what journeys contain changes (events appended, identities linked or unlinked).
    version: AtomicU64,
    /// Recently built journey views, one per set of property columns, newest last.
    views: Mutex<Vec<CachedView>>,
    /// Journey views built from every segment, and views extended with the rows appended since (observability).
    views_rebuilt: AtomicU64,
    views_extended: AtomicU64,
    /// The disk fault the last write met (full, read-only), until a write succeeds again.
    disk_fault: Mutex<Option<(error::DiskFault, String)>>,
}

impl Shared {
    /// Remembers (and logs, once per fault) that the disk refused a write.
    pub(crate) fn note_disk_fault(&self, error: &StoreError) {
        let Some(fault) = error.disk_fault() else {
            return;
        };
        let mut held = self.disk_fault.lock();
        if held.is_none() {
            tracing::error!(%error, "the disk refused a write; refusing writes until it takes them again (reads go on)");
        }
        *held = Some((fault, error.for_another().to_string()));
    }

    /// A write succeeded: the disk takes writes again.
    pub(crate) fn clear_disk_fault(&self) {
        let mut held = self.disk_fault.lock();
        if held.take().is_some() {
            tracing::info!("the disk takes writes again; ingest resumed");
        }
    }
}

/// A journey view with the store version it was built at, its property columns, and what it was built from (so the
/// next version can extend it).
#[derive(Clone)]
struct CachedView {
    version: u64,
    names: Vec<String>,
    view: Arc<JourneySet>,
    basis: Arc<read::ViewBasis>,
}
/// One event of a customer: (time, arrival, location, row), locations the segments then the in-memory tables.
type CustomerRow = (i64, u64, usize, u32);

/// Journey views kept for reuse (each distinct set of property columns is one).
const CACHED_VIEWS: usize = 4;

/// An open journey store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    _lock: File,
}

/// The 64-bit key duplicates are recognised by: a derived id's own hash, else the id's xxh3.
pub(crate) fn message_hash(message_id: &str) -> u64 {
    segment::derived_id_hash(message_id)
        .unwrap_or_else(|| xxhash_rust::xxh3::xxh3_64(message_id.as_bytes()))
}

/// Lowers the calling thread's CPU priority (nice 10, on Linux) for work that nobody waits on — segment merges,
/// live re-scoring — so that queries and ingest acknowledgements running at the same time take the cores first
/// (the Linux scheduler gives a nice-10 thread about a tenth of a contended core). Elsewhere it does nothing.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority on this thread's id only changes its nice value.
    unsafe {
        let thread = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 10) != 0 {
            tracing::debug!("could not lower a background thread's priority");
        }
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file or the new one, never a mix: writes a
/// sibling `.tmp`, syncs it, renames it over `path`, and syncs the directory.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written {
        // On a full disk the half-written copy would keep the space the retry needs.
        let _ = std::fs::remove_file(&tmp);
        return Err(error);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_atomically(path, bytes).map_err(StoreError::io(path))
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
            forgotten: Forgotten::load(&dir)?,
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
            views_rebuilt: AtomicU64::new(0),
            views_extended: AtomicU64::new(0),
            disk_fault: Mutex::new(None),
        });
        let (sender, receiver) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("waymark-store-writer".into())
            .spawn(move || writer_loop(thread_shared, receiver, wal_writer, failed_writer, seen))
            .map_err(StoreError::io("writer thread"))?;
        let store = Store {
            shared,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            _lock: lock,
        };
        // A deletion a crash interrupted (the record is written first) is finished before anything is read.
        let unfinished = {
            let state = store.shared.state.read();
            !state.forgotten.is_empty()
                && state
                    .identity
                    .names
                    .values()
                    .iter()
                    .any(|key| state.forgotten.holds(key))
        };
        if unfinished {
            tracing::warn!("finishing a customer deletion that was interrupted");
            store.send(|reply| Command::Forget {
                target: ForgetTarget::Recorded,
                reply,
            })?;
        }
        Ok(store)
    }

    /// Deletes the customer `identifier` belongs to, every byte of it: its events (from the log, the in-memory
    /// table and every segment, which are written again without them), its identifiers and merges (the identity
    /// checkpoint is written again), and the refused events that name it. A deletion record of salted digests of
    /// its identifiers, written first, keeps anything appended, replayed or imported later with those identifiers
    /// out, and finishes the deletion at the next open if a crash interrupts it. `None` when no customer has the
    /// identifier.
    pub fn forget(&self, identifier: &str) -> Result<Option<ForgetOutcome>> {
        let target = ForgetTarget::Customer(identifier.to_string());
        self.send(|reply| Command::Forget { target, reply })
    }

    /// Whether identifier key `key` (`user:…` or `anon:…`) belongs to a deleted customer.
    /// The disk fault the last write met (full or read-only) and its message, while writes are refused; `None`
    /// once a write succeeds again.
    pub fn disk_fault(&self) -> Option<(DiskFault, String)> {
        self.shared.disk_fault.lock().clone()
    }

    pub fn is_forgotten(&self, key: &str) -> bool {
        self.shared.state.read().forgotten.holds(key)
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
        let Some((root, member_keys, rows)) = self.customer_rows(&state, identifier) else {
            return Ok(None);
        };
        let key_set: HashSet<&str> = member_keys.iter().map(String::as_str).collect();
        let mut events = Vec::with_capacity(rows.len());
        self.customer_payloads(&state, &rows, true, |columns, row, payload| {
            let event: Event = serde_json::from_slice(payload).map_err(|error| {
                StoreError::corrupt(
                    &self.shared.dir,
                    format!("stored event does not parse: {error}"),
                )
            })?;
            events.push(TimelineEntry {
                time: Timestamp(columns.ts[row]),
                channel: state.channels.name(columns.channel[row] as u32).to_string(),
                step: state.steps.name(columns.step[row]).to_string(),
                identifier: state.identity.key(columns.ident[row]).to_string(),
                device: event.device_label(),
                event,
            });
            Ok(())
        })?;
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

    /// One customer's journey as analyses and models read it — the same steps, channels, order and property
    /// columns (`properties` as [`Store::journey_view`] reads them) as the customer's journey in the full view —
    /// without building the view: what scoring one customer as its events arrive needs.
    pub fn customer_journey(
        &self,
        identifier: &str,
        properties: &[String],
    ) -> Result<Option<JourneySet>> {
        let state = self.shared.state.read();
        let Some((root, _, rows)) = self.customer_rows(&state, identifier) else {
            return Ok(None);
        };
        let reader = PropertyReader::new(properties);
        let mut builders: Vec<PropertyColumnBuilder> = properties
            .iter()
            .map(|name| PropertyColumnBuilder::new(name.clone()))
            .collect();
        let mut events: Vec<(i64, u32, u16)> = Vec::with_capacity(rows.len());
        // No property asked for: the hot columns are all in memory, so no payload is decoded.
        let decode = !properties.is_empty();
        self.customer_payloads(&state, &rows, decode, |columns, row, payload| {
            if decode {
                reader.read(payload, &mut builders).map_err(|error| {
                    StoreError::corrupt(
                        &self.shared.dir,
                        format!("stored event does not parse: {error}"),
                    )
                })?;
            }
            events.push((columns.ts[row], columns.step[row], columns.channel[row]));
            Ok(())
        })?;
        let mut set = JourneySet {
            offsets: vec![0, events.len()],
            step_names: (0..state.steps.len() as u32)
                .map(|code| state.steps.name(code).to_string())
                .collect(),
            channel_names: (0..state.channels.len() as u32)
                .map(|code| state.channels.name(code).to_string())
                .collect(),
            ..JourneySet::default()
        };
        set.customer_ids.push(&state.identity.display_id(root));
        for (ts, step, channel) in events {
            set.ts.push(ts);
            set.step.push(step);
            set.channel.push(channel);
        }
        set.properties = builders
            .into_iter()
            .map(PropertyColumnBuilder::finish)
            .collect();
        Ok(Some(set))
    }

    /// The customer an identifier belongs to: its root, its members' keys (sorted), and every event's (time,
    /// arrival, location, row) in journey order — locations are the segments, then the in-memory tables.
    fn customer_rows(
        &self,
        state: &State,
        identifier: &str,
    ) -> Option<(u32, Vec<String>, Vec<CustomerRow>)> {
        let key = resolve_key(&state.identity, identifier);
        let id = state.identity.lookup(&key)?;
        let root = state.identity.customer_of(id);
        let members: HashSet<u32> = state.identity.members(root).iter().copied().collect();
        let mut member_keys: Vec<String> = members
            .iter()
            .map(|id| state.identity.key(*id).to_string())
            .collect();
        member_keys.sort_unstable();
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
        let mut rows: Vec<CustomerRow> = Vec::new();
        for (location, (columns, rows_by_ident)) in sources.enumerate() {
            for member in &members {
                for row in rows_by_ident.rows(*member) {
                    let row_index = row as usize;
                    rows.push((columns.ts[row_index], columns.seq[row_index], location, row));
                }
            }
        }
        rows.sort_unstable();
        Some((root, member_keys, rows))
    }

    /// Calls `each(columns, row, payload)` for the rows of [`Self::customer_rows`], in order, reading each
    /// segment block once; with `payloads` false no block is read and each payload is empty (the hot columns
    /// alone).
    fn customer_payloads(
        &self,
        state: &State,
        rows: &[CustomerRow],
        payloads: bool,
        mut each: impl FnMut(&Columns, usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let in_memory = state.in_memory_tables();
        let mut blocks: HashMap<(usize, usize), Arc<DecodedBlock>> = HashMap::new();
        for (_, _, location, row) in rows.iter().copied() {
            if location >= state.segments.len() {
                let table = in_memory[location - state.segments.len()];
                each(
                    &table.columns,
                    row as usize,
                    table.payloads.get(row as usize),
                )?;
            } else if !payloads {
                each(&state.segments[location].columns, row as usize, &[])?;
            } else {
                let segment = &state.segments[location];
                let block_index = row as usize / segment::ROWS_PER_BLOCK;
                let entry = match blocks.entry((location, block_index)) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(segment.recent_block(block_index, &state.steps)?)
                    }
                };
                each(
                    &segment.columns,
                    row as usize,
                    &entry.1[(row - entry.0) as usize],
                )?;
            }
        }
        Ok(())
    }

    /// Up to `limit` stored events that arrived after sequence number `after` (all of them for `None`), in
    /// arrival order, each with its sequence number and its customer's current display id: what a consumer that
    /// follows the store (the rules) reads after a restart or a wake-up. Segments ending before `after` are
    /// skipped without reading; the others' blocks are decoded once each.
    pub fn events_after(&self, after: Option<u64>, limit: usize) -> Result<Vec<SequencedEvent>> {
        let state = self.shared.state.read();
        let newer = |seq: u64| after.is_none_or(|after| seq > after);
        // (seq, location, row) of the wanted rows; locations are the segments, then the in-memory tables.
        let in_memory = state.in_memory_tables();
        let mut rows: Vec<(u64, usize, u32)> = Vec::new();
        for (location, segment) in state.segments.iter().enumerate() {
            if !newer(segment.max_seq) || segment.columns.seq.is_empty() {
                continue;
            }
            for (row, seq) in segment.columns.seq.iter().enumerate() {
                if newer(*seq) {
                    rows.push((*seq, location, row as u32));
                }
            }
        }
        for (index, table) in in_memory.iter().enumerate() {
            for (row, seq) in table.columns.seq.iter().enumerate() {
                if newer(*seq) {
                    rows.push((*seq, state.segments.len() + index, row as u32));
                }
            }
        }
        rows.sort_unstable();
        rows.truncate(limit);
        // In arrival order; the payload reader wants (time, seq, location, row) and keeps the given order.
        let rows: Vec<CustomerRow> = rows
            .into_iter()
            .map(|(seq, location, row)| (0, seq, location, row))
            .collect();
        let mut display_cache: HashMap<u32, String> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        let mut seqs = rows.iter().map(|row| row.1);
        self.customer_payloads(&state, &rows, true, |columns, row, payload| {
            let event: Event = serde_json::from_slice(payload).map_err(|error| {
                StoreError::corrupt(
                    &self.shared.dir,
                    format!("stored event does not parse: {error}"),
                )
            })?;
            let root = state.identity.customer_of(columns.ident[row]);
            let customer = display_cache
                .entry(root)
                .or_insert_with(|| state.identity.display_id(root))
                .clone();
            out.push(SequencedEvent {
                seq: seqs.next().unwrap_or_default(),
                customer,
                event,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// The sequence number of the latest stored event, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.shared.state.read().next_seq.checked_sub(1)
    }

    /// All merge edges, active and undone, with provenance.
    pub fn merge_edges(&self) -> Vec<MergeEdge> {
        // A deleted customer's edges keep their ids (so every other id stays valid) but are nobody's history.
        self.shared
            .state
            .read()
            .identity
            .edges()
            .iter()
            .filter(|edge| !is_forgotten_key(&edge.a))
            .cloned()
            .collect()
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

    /// The refused events that name any of identifier keys `keys` (a value of theirs read as a `userId` or an
    /// `anonymousId`, as a deletion matches them), oldest first.
    pub fn failed_events_naming(&self, keys: &[String]) -> Result<Vec<FailedEvent>> {
        let wanted: HashSet<&str> = keys.iter().map(String::as_str).collect();
        Ok(self
            .failed_events(usize::MAX)?
            .into_iter()
            .filter(|failed| forget::names_any(failed, &|key| wanted.contains(key)))
            .collect())
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
pub use forget::ForgetOutcome;

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

#[cfg(test)]
mod property_tests {
    use super::*;
    use serde_json::json;
    use waymark_model::IngestContext;

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
            json!({"type": "track", "event": "Viewed", "userId": "u1",
                   "properties": {"plan": "pro", "cart": {"total": 12.5}, "a.b": 1},
                   "context": {"channel": "app", "device": {"type": "android_app"}}, "traits": {"region": "North"}}),
            json!({"type": "page", "anonymousId": "a1", "properties": {"we\"ird": true, "plan": null}}),
            json!({"type": "identify", "userId": "u2", "traits": {"region": "South"}}),
        ]
        .map(|event| {
            let context = IngestContext::at(Timestamp(1_700_000_000_000_000));
            serde_json::to_value(Event::from_segment_json(&event, &context).unwrap()).unwrap()
        });
        let names: Vec<String> = [
            "plan",
            "cart.total",
            "a.b",
            "context.device.type",
            "traits.region",
            "channel",
            "type",
            "timestamp",
            "userId",
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
