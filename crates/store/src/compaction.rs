//! Merges: choosing segments, writing the merged one in the background (cancellable), installing it; full compaction.

use super::*;

/// Which segments a compaction merges, as positions in `state.segments`: all of them, or with `max_rows` the
/// smallest ones that fit together in that many rows. Empty when fewer than two would be merged.
pub(crate) fn choose_segments(state: &State, max_rows: Option<u64>) -> Vec<usize> {
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
pub(crate) struct CompactJob {
    /// The merged segments and their ids.
    pub(crate) segments: Vec<(u64, Arc<LoadedSegment>)>,
    pub(crate) identity: IdentityGraph,
    pub(crate) steps: Interner,
    pub(crate) channels: Interner,
    pub(crate) segment_id: u64,
}

/// A written (not yet live) merge.
pub(crate) struct CompactOutput {
    pub(crate) merged: Vec<u64>,
    pub(crate) entry: SegmentEntry,
    pub(crate) segment: LoadedSegment,
}

/// Chooses the segments to merge (see [`choose_segments`]) and takes an id for the result; `None` when there is
/// nothing to merge.
pub(crate) fn plan_compaction(shared: &Shared, max_rows: Option<u64>) -> Option<CompactJob> {
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
pub(crate) fn write_compaction(
    dir: &Path,
    job: CompactJob,
    cancel: &AtomicBool,
) -> Result<CompactOutput> {
    write_compaction_without(dir, job, &HashSet::new(), cancel)
}

/// [`write_compaction`] leaving out the rows of identifiers `exclude` (a deleted customer's).
pub(crate) fn write_compaction_without(
    dir: &Path,
    job: CompactJob,
    exclude: &HashSet<u32>,
    cancel: &AtomicBool,
) -> Result<CompactOutput> {
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
    let mut order = clustering_order(&job.identity, &columns.ident, &columns.ts, &columns.seq);
    if !exclude.is_empty() {
        order.retain(|row| !exclude.contains(&columns.ident[*row as usize]));
    }
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
pub(crate) fn install_compaction(shared: &Shared, output: CompactOutput) -> Result<()> {
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
    let merged_id = output.entry.id;
    manifest.segments.push(output.entry);
    if let Err(error) = save_manifest(dir, &manifest) {
        // The old manifest stands (it is replaced atomically): the merged file is nobody's.
        let _ = std::fs::remove_file(segment_path(dir, merged_id));
        return Err(error);
    }
    // Installed from here on: a merged file that cannot be removed now is only unreferenced space.
    for old_id in &output.merged {
        let path = segment_path(dir, *old_id);
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), %error, "could not remove a merged segment file");
        }
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
pub(crate) fn compact(shared: &Shared, max_rows: Option<u64>) -> Result<()> {
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
pub(crate) struct Compactor {
    pub(crate) job: BackgroundJob<CompactOutput>,
    /// Set to make the merge in flight give up (at close).
    pub(crate) cancel: Arc<AtomicBool>,
    /// After the disk refused a merge: no new one before this.
    resting_until: Option<std::time::Instant>,
}

/// How long merging rests after the disk refused one (a merge needs room for a copy of what it merges).
const MERGE_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

impl Compactor {
    pub(crate) fn new() -> Compactor {
        Compactor {
            // A merge is never waited on: queries and acknowledgements come first.
            job: BackgroundJob {
                low_priority: true,
                ..BackgroundJob::new("waymark-store-compact")
            },
            cancel: Arc::new(AtomicBool::new(false)),
            resting_until: None,
        }
    }

    /// Starts merging the smallest segments in the background, unless a merge is running.
    pub(crate) fn start(&mut self, shared: &Shared) -> Result<()> {
        if self.job.in_flight
            || self
                .resting_until
                .is_some_and(|until| std::time::Instant::now() < until)
        {
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
    pub(crate) fn abandon(&mut self, shared: &Shared) -> Result<()> {
        self.cancel.store(true, Ordering::Relaxed);
        match self.job.take(true)? {
            None | Some(Err(StoreError::Closing)) => Ok(()),
            Some(Err(error)) => Err(error),
            // It finished before it saw the flag: installing it costs only the manifest swap.
            Some(Ok(output)) => install_compaction(shared, output),
        }
    }

    /// Installs a finished background merge, if there is one. A merge the disk refused is dropped (its segments
    /// stay as they were; its temporary file is already removed) and merging rests for [`MERGE_RETRY`].
    pub(crate) fn poll(&mut self, shared: &Shared) -> Result<()> {
        match self
            .job
            .install(false, |output| install_compaction(shared, output))
        {
            Err(error) if error.disk_fault().is_some() => {
                shared.note_disk_fault(&error);
                self.resting_until = Some(std::time::Instant::now() + MERGE_RETRY);
                Ok(())
            }
            Ok(()) => {
                self.resting_until = None;
                Ok(())
            }
            other => other,
        }
    }

    /// Waits for the background merge in flight, if any, and installs it.
    pub(crate) fn wait(&mut self, shared: &Shared) -> Result<()> {
        self.job
            .install(true, |output| install_compaction(shared, output))
    }
}
