//! The manifest and the store's mutable state, and opening what the manifest lists: segments loaded, verified and attached.

use super::*;

/// The set of stored events' dedup keys. The keys are already hashes, but senders choose `messageId`s, so the
/// table hashes them again with a per-process random key (foldhash: a few instructions, unlike std's SipHash).
pub(crate) type SeenSet = HashSet<u64, foldhash::fast::RandomState>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub(crate) id: u64,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

/// The atomically replaced description of what is durable outside the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) format: u32,
    pub(crate) segments: Vec<SegmentEntry>,
    /// Log files with a lower index are covered by segments and the identity snapshot.
    pub(crate) wal_start: u64,
    /// Name of the identity snapshot file in `identity/`, if any.
    pub(crate) identity_snapshot: Option<String>,
    pub(crate) next_segment_id: u64,
    pub(crate) next_seq: u64,
}

pub(crate) struct State {
    pub(crate) identity: IdentityGraph,
    pub(crate) steps: Interner,
    pub(crate) channels: Interner,
    /// Shared so that a background merge can read them without a lock.
    pub(crate) segments: Vec<Arc<LoadedSegment>>,
    /// A full in-memory table being written as a segment by the background flusher; still readable.
    pub(crate) frozen: Option<Arc<Memtable>>,
    pub(crate) memtable: Memtable,
    pub(crate) next_seq: u64,
    pub(crate) manifest: Manifest,
    pub(crate) wal_bytes: u64,
    pub(crate) failed_events: u64,
    /// The deletion record: customers deleted, whose events are not stored again.
    pub(crate) forgotten: Forgotten,
}

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join("segments").join(format!("{id:020}.seg"))
}

/// Deletes segment and snapshot files the manifest does not list (left by a crash mid-flush) and temporaries.
pub(crate) fn remove_unlisted_files(dir: &Path, manifest: &Manifest) -> Result<()> {
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

pub(crate) fn load_segment(dir: &Path, id: u64, state: &mut State) -> Result<LoadedSegment> {
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
pub(crate) fn attach_segment(
    file: SegmentFile,
    local: segment::SegmentColumns,
    ident_map: &[u32],
    step_map: &[u32],
    channel_map: &[u16],
) -> LoadedSegment {
    let mut columns = local.rows;
    for code in &mut columns.ident {
        *code = ident_map[*code as usize];
    }
    for code in &mut columns.step {
        *code = step_map[*code as usize];
    }
    for code in &mut columns.channel {
        *code = channel_map[*code as usize];
    }
    let rows_by_ident = RowIndex::of(&columns.ident);
    let max_seq = columns.seq.iter().copied().max().unwrap_or(0);
    LoadedSegment {
        file,
        columns,
        rows_by_ident,
        max_seq,
        recent: Mutex::new(Vec::new()),
    }
}

impl State {
    /// The in-memory tables, oldest first: the one being flushed (if any), then the live one.
    pub(crate) fn in_memory_tables(&self) -> Vec<&Memtable> {
        self.frozen
            .as_deref()
            .into_iter()
            .chain(std::iter::once(&self.memtable))
            .collect()
    }

    /// Applies one event that passed de-duplication: identity links first (so the event is filed under the merged
    /// customer), then the row.
    pub(crate) fn apply_event(&mut self, event: &EventKeys, payload: &[u8], seq: u64) {
        let ident = self.identity.intern(&event.primary);
        for outcome in self.identity.link_event(
            event.event_type,
            &event.links,
            &event.message_id,
            event.timestamp,
        ) {
            // A refusal is an expected data-quality event, kept in the graph and served by the API: log it once.
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

    pub(crate) fn apply_merge(&mut self, record: &MergeRecord) -> LinkOutcome {
        let (a, b) = (
            self.identity.intern(&record.a),
            self.identity.intern(&record.b),
        );
        self.identity
            .link(a, b, EdgeReason::Manual, "", record.at, true)
    }

    /// Every stored event's dedup key (segments, the table being flushed, the in-memory table), in a set sized
    /// for them at once.
    pub(crate) fn stored_keys(&self) -> SeenSet {
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

    pub(crate) fn replay_record(
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
                    let keys = EventKeys::of(&event);
                    // A deleted customer's event logged before the deletion was applied stays out.
                    if self.forgotten.holds_event(&keys) {
                        continue;
                    }
                    if seen.insert(message_hash(&event.message_id)) {
                        self.apply_event(&keys, payload, seq);
                    }
                }
            }
            Some(&RECORD_MERGE) => {
                let merge: MergeRecord = serde_json::from_slice(&record[1..])
                    .map_err(|error| corrupt(error.to_string()))?;
                if !self.forgotten.holds(&merge.a) && !self.forgotten.holds(&merge.b) {
                    self.apply_merge(&merge);
                }
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
