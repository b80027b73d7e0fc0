//! Flushes: freezing the in-memory table, writing it as a segment on the long-lived background worker, installing it.

use super::*;

/// The writer thread's background work: one flush and one merge at most in flight.
pub(crate) struct Background {
    pub(crate) flusher: Flusher,
    pub(crate) compactor: Compactor,
}

impl Background {
    /// Installs whichever background job has finished.
    pub(crate) fn poll(&mut self, shared: &Shared) -> Result<()> {
        self.flusher.poll(shared)?;
        self.compactor.poll(shared)
    }
}

/// Writes the manifest atomically.
pub(crate) fn save_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    write_atomically(
        &dir.join("MANIFEST"),
        &serde_json::to_vec_pretty(manifest).expect("manifest serialises"),
    )
}

/// Orders rows by (customer, time, sequence): the clustering order of segments.
pub(crate) fn clustering_order(
    identity: &IdentityGraph,
    ident: &[u32],
    ts: &[i64],
    seq: &[u64],
) -> Vec<u32> {
    let mut order: Vec<u32> = (0..ts.len() as u32).collect();
    order.sort_unstable_by_key(|row| {
        let row = *row as usize;
        (identity.customer_of(ident[row]), ts[row], seq[row])
    });
    order
}

/// Row `index` of a segment to write: row `order[index]` of `columns`, with global codes turned back into names.
pub(crate) fn segment_row<'a>(
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
pub(crate) struct FlushJob {
    pub(crate) table: Arc<Memtable>,
    pub(crate) identity: IdentityGraph,
    pub(crate) steps: Interner,
    pub(crate) channels: Interner,
    pub(crate) segment_id: u64,
    pub(crate) new_wal_index: u64,
    pub(crate) next_seq: u64,
}

/// A written (but not yet live) flush.
pub(crate) struct FlushOutput {
    pub(crate) segment: Option<(SegmentEntry, LoadedSegment)>,
    pub(crate) snapshot_name: String,
    pub(crate) new_wal_index: u64,
    pub(crate) next_seq: u64,
}

/// Starts a flush on the writer thread: new appends go to a fresh log file, and the in-memory table is frozen
/// (still readable) together with the identity graph as of this point in the log. `None` when there is nothing to
/// checkpoint.
pub(crate) fn freeze(shared: &Shared, wal: &mut WalWriter) -> Result<Option<FlushJob>> {
    let mut state = shared.state.write();
    debug_assert!(state.frozen.is_none(), "one flush at a time");
    // (A log file holding only merges or unmerges is checkpointed too: deleting a customer relies on it.)
    if state.memtable.columns.len() == 0
        && wal.bytes_written == 0
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
pub(crate) fn write_flush(dir: &Path, job: &FlushJob) -> Result<FlushOutput> {
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
    let snapshot_name = format!("{:020}.json.zst", job.new_wal_index);
    write_identity_snapshot(dir, &snapshot_name, &job.identity)?;
    Ok(FlushOutput {
        segment,
        snapshot_name,
        new_wal_index: job.new_wal_index,
        next_seq: job.next_seq,
    })
}

/// Writes an identity checkpoint `identity/NAME` as zstd-compressed JSON with a frame checksum (its identifiers
/// and provenance compress several times over; stores written before read their plain `.json` checkpoints still).
pub(crate) fn write_identity_snapshot(
    dir: &Path,
    name: &str,
    identity: &IdentityGraph,
) -> Result<()> {
    let snapshot_path = dir.join("identity").join(name);
    let json = serde_json::to_vec(&identity.snapshot()).expect("serialises");
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
    write_atomically(&snapshot_path, &compressed)
}

/// Attaches a segment this process just wrote, with dictionaries that already hold every name in it (snapshots
/// of the live ones, which share their codes: interning only appends).
pub(crate) fn attach_written(
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
pub(crate) fn install_flush(shared: &Shared, output: FlushOutput) -> Result<()> {
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
    // From here on the flush is installed: a log file that cannot be removed now (a read-only disk) is removed
    // by the next open, which skips files below `wal_start`.
    match wal::list_wal_files(&dir.join("wal")) {
        Ok(files) => {
            for (index, path) in files {
                if index < output.new_wal_index {
                    if let Err(error) = std::fs::remove_file(&path) {
                        tracing::warn!(path = %path.display(), %error, "could not remove a checkpointed log file; the next open removes it");
                    }
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, "could not list the log files; the next open removes the checkpointed ones")
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
pub(crate) type Job<T> = Box<dyn FnOnce() -> Result<T> + Send>;

/// A background thread's job queue and the results it sends back.
pub(crate) type Worker<T> = (mpsc::Sender<Job<T>>, mpsc::Receiver<Result<T>>);

/// One background job at a time whose result the writer thread installs (a flush, a merge), run on one
/// long-lived thread per kind of job: its allocator heap, and the memory a job freed, serve the next job. (A
/// thread per job gave its memory back to the system at exit and the next one faulted in fresh pages: mimalloc
/// purged 1.6 GB during a 10M-row import, and the kernel's page zeroing was a quarter of the import's CPU time.)
pub(crate) struct BackgroundJob<T> {
    pub(crate) in_flight: bool,
    /// The thread's name.
    pub(crate) name: &'static str,
    /// Whether the thread runs at a lower CPU priority ([`lower_thread_priority`]).
    pub(crate) low_priority: bool,
    /// The thread's job queue and results, once it is started. Dropping the queue ends the thread.
    pub(crate) worker: Option<Worker<T>>,
}

impl<T: Send + 'static> BackgroundJob<T> {
    pub(crate) fn new(name: &'static str) -> BackgroundJob<T> {
        BackgroundJob {
            in_flight: false,
            name,
            low_priority: false,
            worker: None,
        }
    }

    pub(crate) fn died(&self) -> StoreError {
        StoreError::WriterStopped(format!("the {} thread died", self.name))
    }

    pub(crate) fn spawn(
        &mut self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<()> {
        if self.worker.is_none() {
            let (jobs, queue) = mpsc::channel::<Job<T>>();
            let (done_sender, done) = mpsc::channel();
            let low_priority = self.low_priority;
            std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || {
                    if low_priority {
                        lower_thread_priority();
                    }
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
    pub(crate) fn take(&mut self, wait: bool) -> Result<Option<Result<T>>> {
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
    pub(crate) fn install(
        &mut self,
        wait: bool,
        install: impl FnOnce(T) -> Result<()>,
    ) -> Result<()> {
        match self.take(wait)? {
            Some(output) => install(output?),
            None => Ok(()),
        }
    }
}

/// A background flush's job (kept, to be tried again) and what writing it gave.
pub(crate) struct FlushAttempt {
    job: FlushJob,
    output: Result<FlushOutput>,
}

/// How long a flush the disk refused waits before it is tried again.
const FLUSH_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Drives background flushes from the writer thread: at most one in flight. A flush the disk refuses (full,
/// read-only) is not lost: its events stay in the frozen table and in the log files, and it is tried again
/// every [`FLUSH_RETRY`] until the disk takes it.
pub(crate) struct Flusher {
    pub(crate) job: BackgroundJob<FlushAttempt>,
    retry: Option<(FlushJob, std::time::Instant)>,
}

impl Flusher {
    pub(crate) fn new() -> Flusher {
        Flusher {
            job: BackgroundJob::new("waymark-store-flush"),
            retry: None,
        }
    }

    fn spawn(&mut self, shared: &Shared, job: FlushJob) -> Result<()> {
        let dir = shared.dir.clone();
        self.job.spawn(move || {
            let output = write_flush(&dir, &job);
            Ok(FlushAttempt { job, output })
        })
    }

    /// Starts a background flush, unless one is running; a refused one is tried again once its wait is over.
    pub(crate) fn start(&mut self, shared: &Shared, wal: &mut WalWriter) -> Result<()> {
        if self.job.in_flight {
            return Ok(());
        }
        if let Some((_, due)) = &self.retry {
            if std::time::Instant::now() < *due {
                return Ok(());
            }
            let (job, _) = self.retry.take().expect("checked above");
            return self.spawn(shared, job);
        }
        match freeze(shared, wal) {
            Ok(Some(job)) => self.spawn(shared, job),
            Ok(None) => Ok(()),
            // Not even a new log file could be made: nothing changed; try again later.
            Err(error) if error.disk_fault().is_some() => {
                shared.note_disk_fault(&error);
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Installs a written flush, or keeps a refused one for a retry (after removing what it left on disk).
    fn settle(&mut self, shared: &Shared, attempt: FlushAttempt) -> Result<()> {
        let FlushAttempt { job, output } = attempt;
        match output.and_then(|output| install_flush(shared, output)) {
            Ok(()) => Ok(()),
            Err(error) if error.disk_fault().is_some() => {
                // The manifest was not replaced (it is written atomically), so neither file is referenced.
                let _ = std::fs::remove_file(segment_path(&shared.dir, job.segment_id));
                let snapshot = format!("{:020}.json.zst", job.new_wal_index);
                let _ = std::fs::remove_file(shared.dir.join("identity").join(snapshot));
                shared.note_disk_fault(&error);
                self.retry = Some((job, std::time::Instant::now() + FLUSH_RETRY));
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    fn take(&mut self, shared: &Shared, wait: bool) -> Result<()> {
        match self.job.take(wait)? {
            Some(attempt) => self.settle(shared, attempt?),
            None => Ok(()),
        }
    }

    /// Installs a finished background flush, if there is one. A refused one is not an error here: the writer
    /// goes on taking appends, and the flush is tried again.
    pub(crate) fn poll(&mut self, shared: &Shared) -> Result<()> {
        match self.take(shared, false) {
            Err(error) if error.disk_fault().is_some() => Ok(()),
            other => other,
        }
    }

    /// Waits for the background flush in flight, if any, and installs it.
    pub(crate) fn wait(&mut self, shared: &Shared) -> Result<()> {
        self.take(shared, true)
    }

    /// A complete flush on the calling thread, after any background one (and any refused one, tried again now).
    pub(crate) fn flush_now(&mut self, shared: &Shared, wal: &mut WalWriter) -> Result<()> {
        self.wait(shared)?;
        if let Some((job, _)) = self.retry.take() {
            let output = write_flush(&shared.dir, &job);
            self.settle(shared, FlushAttempt { job, output })?;
        }
        if let Some(job) = freeze(shared, wal)? {
            let output = write_flush(&shared.dir, &job);
            self.settle(shared, FlushAttempt { job, output })?;
        }
        Ok(())
    }
}
