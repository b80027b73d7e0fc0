//! The single writer thread: log records, group commit (one `fdatasync` per drained queue), applying to the in-memory state, the failed-events log.

use super::*;

/// Operations the writer thread performs, in order, each durable before its reply.
pub(crate) enum Command {
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
    Forget {
        target: ForgetTarget,
        reply: mpsc::SyncSender<Result<Option<ForgetOutcome>>>,
    },
    /// Build the dedup set now, so that the first append does not wait for it (no reply).
    PrepareWrites,
}

/// Record kinds in the log.
pub(crate) const RECORD_EVENTS: u8 = 1;
pub(crate) const RECORD_MERGE: u8 = 2;
pub(crate) const RECORD_UNMERGE: u8 = 3;

#[derive(Serialize, Deserialize)]
pub(crate) struct MergeRecord {
    pub(crate) a: String,
    pub(crate) b: String,
    pub(crate) at: Timestamp,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct UnmergeRecord {
    pub(crate) edge: u32,
    pub(crate) at: Timestamp,
}

/// Events record: `kind | u32 count | count × (u64 seq | u32 len | payload)`.
pub(crate) fn encode_events_record<'a>(
    events: impl Iterator<Item = (u64, &'a [u8])> + Clone,
) -> Vec<u8> {
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

pub(crate) fn decode_events_record(record: &[u8]) -> Option<Vec<(u64, &[u8])>> {
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
pub(crate) struct FailedLog {
    pub(crate) writer: Option<WalWriter>,
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
}

impl FailedLog {
    pub(crate) fn open(path: &Path, len: u64) -> Result<FailedLog> {
        Ok(FailedLog {
            writer: None,
            path: path.to_path_buf(),
            len,
        })
    }

    pub(crate) fn writer(&mut self) -> Result<&mut WalWriter> {
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
pub(crate) enum Pending {
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

pub(crate) fn writer_loop(
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

pub(crate) fn reply_error(command: Command, error: StoreError) {
    let error = || error.for_another();
    match command {
        Command::Append { reply, .. } => drop(reply.send(Err(error()))),
        Command::Merge { reply, .. } => drop(reply.send(Err(error()))),
        Command::Unmerge { reply, .. } => drop(reply.send(Err(error()))),
        Command::Flush { reply } | Command::Compact { reply } => drop(reply.send(Err(error()))),
        Command::Forget { reply, .. } => drop(reply.send(Err(error()))),
        Command::PrepareWrites => {}
    }
}

/// One group commit: frame every request, one sync, apply, answer; then run flushes/compactions in order.
/// `seen` holds every stored event's dedup key, built at the first append if it is not yet; a key is added when
/// its event is framed into the log (if the log then fails, the writer stops taking writes, and reopening rebuilds
/// the set from what is on disk).
pub(crate) fn group_commit(
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
    // Dedup keys added by this commit: taken out again if its write fails, so that the retry is stored.
    let mut inserted: Vec<u64> = Vec::new();
    let mut failed_records: Vec<FailedEvent> = Vec::new();
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
                        if state.forgotten.holds_event(keys) {
                            outcome.suppressed += 1;
                            continue;
                        }
                        if !seen.insert(keys.hash) {
                            outcome.duplicates += 1;
                            continue;
                        }
                        inserted.push(keys.hash);
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
                    // A deleted customer's refused events are not kept either.
                    failed_records.extend(
                        failed
                            .into_iter()
                            .filter(|record| !state.forgotten.holds_failed(record)),
                    );
                    let count = new_events.len() - first;
                    pending.push(Pending::Append {
                        reply,
                        outcome,
                        count,
                    });
                }
                Command::Merge { a, b, reply } => {
                    if state.forgotten.holds(&a) || state.forgotten.holds(&b) {
                        let _ = reply.send(Err(StoreError::NotFound(
                            "that identifier belongs to a deleted customer; it cannot be merged"
                                .into(),
                        )));
                        continue;
                    }
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
        // The refused events' records first, then the log: a request is answered only when both are durable.
        let synced = (|| {
            if !failed_records.is_empty() {
                let writer = failed_log.writer()?;
                for record in &failed_records {
                    writer.push(&serde_json::to_vec(record).expect("failed events serialise"));
                }
                writer.sync()?;
                failed_written = failed_records.len() as u64;
            }
            wal.sync()
        })();
        if let Err(error) = synced {
            // Nothing of this commit is applied or acknowledged: its frames are dropped (the log is cut back to
            // its last durable frame) and its keys leave the dedup set, so each refused request can be retried.
            wal.discard();
            if let Some(seen) = seen.as_mut() {
                for hash in &inserted {
                    seen.remove(hash);
                }
            }
            for item in pending {
                match item {
                    Pending::Append { reply, .. } => drop(reply.send(Err(error.for_another()))),
                    Pending::Merge { reply, .. } => drop(reply.send(Err(error.for_another()))),
                    Pending::Unmerge { reply, .. } => drop(reply.send(Err(error.for_another()))),
                }
            }
            for command in maintenance {
                reply_error(command, error.for_another());
            }
            if error.disk_fault().is_some() {
                // A full or read-only disk: refuse this commit, keep the writer; the next one tries again.
                shared.note_disk_fault(&error);
                return Ok(());
            }
            return Err(error);
        }
        shared.clear_disk_fault();
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
        if let Command::Forget { target, reply } = command {
            let result = forget(
                shared,
                target,
                wal,
                failed_log,
                (&mut *flusher, &mut *compactor),
                seen,
            );
            let failed = result.as_ref().err().map(|error| error.to_string());
            drop(reply.send(result));
            if let Some(message) = failed {
                return Err(StoreError::WriterStopped(message));
            }
            continue;
        }
        let result = match &command {
            Command::Flush { .. } => flusher.flush_now(shared, wal),
            Command::Compact { .. } => flusher
                .flush_now(shared, wal)
                .and_then(|_| compactor.wait(shared))
                .and_then(|_| compact(shared, None)),
            _ => unreachable!("only maintenance commands are deferred"),
        };
        // A disk that refuses the flush or merge refuses the request, not the writer: the log keeps everything.
        let failed = match &result {
            Err(error) if error.disk_fault().is_some() => {
                shared.note_disk_fault(error);
                None
            }
            Err(error) => Some(error.to_string()),
            Ok(()) => None,
        };
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
