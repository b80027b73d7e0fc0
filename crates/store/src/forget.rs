//! The right to be forgotten: deleting a customer's every byte (rows, identifiers, merges, failed events) and
//! the deletion record (`FORGOTTEN`) that keeps them out of everything appended, replayed or imported later.
//!
//! The record holds salted SHA-256 digests of the deleted identifier keys, never the keys: it is written
//! (atomically) before anything is removed, so a crash part-way leaves a record that the next open finds still
//! unapplied (an identifier it names is still known) and applies again. Applying it flushes the in-memory table
//! (so the log holds none of the customer's frames), rewrites every segment holding one of the customer's rows
//! without them (a new file each; the old ones are deleted), writes an identity checkpoint with the customer's
//! identifiers replaced by stand-ins, and rewrites `failed.log` without the refused events that name them.

use super::*;
use sha2::{Digest, Sha256};

/// The deletion record's file in the data directory.
pub(crate) const FORGOTTEN_FILE: &str = "FORGOTTEN";

/// A digest of one deleted identifier key.
pub(crate) type KeyDigest = [u8; 16];

/// One deletion, as the record keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deletion {
    /// When the deletion was asked for.
    pub(crate) at: Timestamp,
    /// Hex digests of the customer's identifier keys.
    pub(crate) identifiers: Vec<String>,
}

/// The deletion record: the salt and every deletion so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ForgottenFile {
    /// Hex of 16 random bytes, chosen when the first customer is deleted.
    pub(crate) salt: String,
    pub(crate) deletions: Vec<Deletion>,
}

/// The deletion record as the writer checks against it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forgotten {
    pub(crate) file: ForgottenFile,
    salt: Vec<u8>,
    digests: HashSet<KeyDigest>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

impl Forgotten {
    /// Reads the record, if there is one.
    pub(crate) fn load(dir: &Path) -> Result<Forgotten> {
        let path = dir.join(FORGOTTEN_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Forgotten::default())
            }
            Err(error) => {
                return Err(StoreError::Io {
                    path,
                    source: error,
                })
            }
        };
        let file: ForgottenFile = serde_json::from_slice(&bytes)
            .map_err(|error| StoreError::corrupt(&path, error.to_string()))?;
        let salt = unhex(&file.salt)
            .ok_or_else(|| StoreError::corrupt(&path, "the salt is not hexadecimal"))?;
        let mut digests = HashSet::new();
        for deletion in &file.deletions {
            for digest in &deletion.identifiers {
                let bytes = unhex(digest)
                    .and_then(|bytes| KeyDigest::try_from(bytes).ok())
                    .ok_or_else(|| {
                        StoreError::corrupt(&path, format!("{digest:?} is not a 16-byte digest"))
                    })?;
                digests.insert(bytes);
            }
        }
        Ok(Forgotten {
            file,
            salt,
            digests,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    fn digest(&self, key: &str) -> KeyDigest {
        let mut hasher = Sha256::new();
        hasher.update(&self.salt);
        hasher.update(key.as_bytes());
        let full = hasher.finalize();
        let mut digest = KeyDigest::default();
        digest.copy_from_slice(&full[..16]);
        digest
    }

    /// Whether identifier key `key` (`user:…`, `anon:…`) was deleted.
    pub(crate) fn holds(&self, key: &str) -> bool {
        !self.digests.is_empty() && self.digests.contains(&self.digest(key))
    }

    /// Whether an event with these keys belongs to a deleted customer: it is filed under, or links, a deleted
    /// identifier.
    pub(crate) fn holds_event(&self, keys: &EventKeys) -> bool {
        !self.digests.is_empty()
            && (self.holds(&keys.primary)
                || keys
                    .links
                    .iter()
                    .any(|(a, b)| self.holds(a) || self.holds(b)))
    }

    /// Whether a refused event names a deleted identifier: any of its values (JSON strings and numbers, or a
    /// delimited line's fields) read as a `userId` or an `anonymousId`.
    pub(crate) fn holds_failed(&self, failed: &FailedEvent) -> bool {
        !self.digests.is_empty()
            && [&failed.raw, &failed.message].iter().any(|text| {
                mentioned_values(text)
                    .iter()
                    .any(|value| self.holds_value(value))
            })
    }

    fn holds_value(&self, value: &str) -> bool {
        self.holds(&format!("user:{value}")) || self.holds(&format!("anon:{value}"))
    }

    /// Adds a deletion of `keys` and writes the record (atomically) before returning.
    pub(crate) fn record(&mut self, dir: &Path, keys: &[String], at: Timestamp) -> Result<()> {
        if self.salt.is_empty() {
            self.salt = rand::random::<[u8; 16]>().to_vec();
            self.file.salt = hex(&self.salt);
        }
        let digests: Vec<KeyDigest> = keys.iter().map(|key| self.digest(key)).collect();
        self.file.deletions.push(Deletion {
            at,
            identifiers: digests.iter().map(|digest| hex(digest)).collect(),
        });
        write_atomically(
            &dir.join(FORGOTTEN_FILE),
            &serde_json::to_vec_pretty(&self.file).expect("the record serialises"),
        )?;
        self.digests.extend(digests);
        Ok(())
    }
}

/// Whether a refused event names an identifier key `known` accepts: any value of its text or message read as a
/// `userId` or an `anonymousId`.
pub(crate) fn names_any(failed: &FailedEvent, known: &dyn Fn(&str) -> bool) -> bool {
    [&failed.raw, &failed.message].iter().any(|text| {
        mentioned_values(text)
            .iter()
            .any(|value| known(&format!("user:{value}")) || known(&format!("anon:{value}")))
    })
}

/// The values a refused event's text could name a person by: every string and number of it read as JSON, else
/// every field of it read as a delimited line (commas, semicolons, tabs), and the quoted parts of a message.
fn mentioned_values(text: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(text) => out.push(text.clone()),
            serde_json::Value::Number(number) => out.push(number.to_string()),
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            serde_json::Value::Object(map) => map.values().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&value, &mut out);
        return out;
    }
    for field in text.split([',', ';', '\t', '\n']) {
        let field = field.trim().trim_matches('"').trim();
        if !field.is_empty() {
            out.push(field.to_string());
        }
    }
    for quote in ['"', '\'', '`'] {
        out.extend(
            text.split(quote)
                .skip(1)
                .step_by(2)
                .map(|part| part.to_string()),
        );
    }
    out
}

/// What deleting a customer removed.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct ForgetOutcome {
    /// The customer's display id, as it was.
    pub customer_id: String,
    /// Every identifier the customer had.
    pub identifiers: Vec<Identifier>,
    /// Events removed.
    pub events: u64,
    /// Refused events removed from the failed-events log.
    pub failed_events: u64,
    /// Segments written again without the customer's rows.
    pub segments_rewritten: usize,
}

/// Which customer a forget command deletes.
pub(crate) enum ForgetTarget {
    /// The customer an identifier belongs to.
    Customer(String),
    /// Whatever the deletion record names that the store still holds (a deletion a crash interrupted).
    Recorded,
}

/// Deletes a customer (writer thread): records the deletion, then applies it. `None` when the identifier is
/// unknown.
pub(crate) fn forget(
    shared: &Shared,
    target: ForgetTarget,
    wal: &mut WalWriter,
    failed_log: &mut FailedLog,
    (flusher, compactor): (&mut Flusher, &mut Compactor),
    seen: &mut Option<SeenSet>,
) -> Result<Option<ForgetOutcome>> {
    flusher.wait(shared)?;
    compactor.wait(shared)?;
    let (ids, keys, customer_id) = {
        let state = shared.state.read();
        match &target {
            ForgetTarget::Customer(identifier) => {
                let key = resolve_key(&state.identity, identifier);
                let Some(id) = state.identity.lookup(&key) else {
                    return Ok(None);
                };
                let root = state.identity.customer_of(id);
                let ids = state.identity.members(root).to_vec();
                let keys: Vec<String> = ids
                    .iter()
                    .map(|id| state.identity.key(*id).to_string())
                    .collect();
                (ids, keys, state.identity.display_id(root))
            }
            ForgetTarget::Recorded => {
                let ids: Vec<u32> = (0..state.identity.n_identifiers() as u32)
                    .filter(|id| state.forgotten.holds(state.identity.key(*id)))
                    .collect();
                if ids.is_empty() {
                    return Ok(None);
                }
                let keys = ids
                    .iter()
                    .map(|id| state.identity.key(*id).to_string())
                    .collect();
                (ids, keys, String::new())
            }
        }
    };
    if matches!(target, ForgetTarget::Customer(_)) {
        let mut state = shared.state.write();
        let dir = shared.dir.clone();
        state.forgotten.record(&dir, &keys, Timestamp::now())?;
    }
    // The refused events first: a crash after this point still leaves the identifiers known, so the next open
    // applies the record again.
    let failed_events = rewrite_failed_log(shared, failed_log)?;
    // Every row in a segment, and a fresh log file that holds none of the customer's frames.
    flusher.flush_now(shared, wal)?;
    let (removed, segments_rewritten) = rewrite_segments(shared, &ids)?;
    // Their message ids are free again: the same as after a restart, which builds the set from what is stored.
    if let Some(seen) = seen.as_mut() {
        for hash in &removed {
            seen.remove(hash);
        }
    }
    let events = removed.len() as u64;
    tracing::info!(
        identifiers = ids.len(),
        events,
        failed_events,
        segments_rewritten,
        "deleted a customer"
    );
    Ok(Some(ForgetOutcome {
        customer_id,
        identifiers: keys.iter().map(|key| Identifier::from_key(key)).collect(),
        events,
        failed_events,
        segments_rewritten,
    }))
}

/// Rewrites `failed.log` without the refused events that name a deleted identifier; returns how many went.
fn rewrite_failed_log(shared: &Shared, failed_log: &mut FailedLog) -> Result<u64> {
    let path = shared.dir.join("failed.log");
    if !path.exists() {
        return Ok(0);
    }
    let (records, _, _) = wal::read_wal_file(&path)?;
    let forgotten = shared.state.read().forgotten.clone();
    let mut kept = Vec::with_capacity(records.len());
    for record in records {
        let failed: FailedEvent = serde_json::from_slice(&record)
            .map_err(|error| StoreError::corrupt(&path, error.to_string()))?;
        if !forgotten.holds_failed(&failed) {
            kept.push(record);
        }
    }
    let removed = shared.state.read().failed_events - kept.len() as u64;
    if removed == 0 {
        return Ok(0);
    }
    let mut framed = Vec::new();
    for record in &kept {
        framed.extend_from_slice(&(record.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
        framed.extend_from_slice(record);
    }
    // The writer's open handle points at the old file: drop it, and the next refused event reopens at the end.
    failed_log.writer = None;
    write_atomically(&path, &framed)?;
    failed_log.len = framed.len() as u64;
    shared.state.write().failed_events = kept.len() as u64;
    Ok(removed)
}

/// Writes every segment holding a row of identifiers `ids` again without those rows, checkpoints the identity
/// graph without the identifiers, and installs both at once. Returns (the removed rows' message hashes, segments
/// rewritten).
fn rewrite_segments(shared: &Shared, ids: &[u32]) -> Result<(Vec<u64>, usize)> {
    let dir = &shared.dir;
    let exclude: HashSet<u32> = ids.iter().copied().collect();
    // Which segments hold the customer, an id for each one's replacement, and the graph without the customer.
    let (jobs, identity, wal_start, hashes) = {
        let mut state = shared.state.write();
        let mut identity = state.identity.clone();
        identity.forget(ids, Timestamp::now());
        let mut jobs = Vec::new();
        let mut hashes = Vec::new();
        for index in 0..state.segments.len() {
            let segment = &state.segments[index];
            let before = hashes.len();
            for id in ids {
                hashes.extend(
                    segment
                        .rows_by_ident
                        .rows(*id)
                        .map(|row| segment.columns.msg_hash[row as usize]),
                );
            }
            let removed = hashes.len() - before;
            if removed == 0 {
                continue;
            }
            let kept = segment.columns.len() - removed;
            let new_id = (kept > 0).then(|| {
                let id = state.manifest.next_segment_id;
                state.manifest.next_segment_id += 1;
                id
            });
            jobs.push((index, removed, new_id));
        }
        (jobs, identity, state.manifest.wal_start, hashes)
    };
    // Written without a lock: only this (the writer) thread changes segments, and no merge is in flight.
    let mut written: Vec<(usize, Option<(SegmentEntry, LoadedSegment)>)> = Vec::new();
    for (index, _, new_id) in &jobs {
        let Some(new_id) = new_id else {
            written.push((*index, None));
            continue;
        };
        let (old_id, segment, steps, channels) = {
            let state = shared.state.read();
            (
                state.manifest.segments[*index].id,
                Arc::clone(&state.segments[*index]),
                state.steps.clone(),
                state.channels.clone(),
            )
        };
        let job = CompactJob {
            segments: vec![(old_id, segment)],
            identity: identity.clone(),
            steps,
            channels,
            segment_id: *new_id,
        };
        let output = write_compaction_without(dir, job, &exclude, &AtomicBool::new(false))?;
        written.push((*index, Some((output.entry, output.segment))));
    }
    let snapshot_name = format!("{wal_start:020}-{:x}.json.zst", Timestamp::now().micros());
    write_identity_snapshot(dir, &snapshot_name, &identity)?;

    let mut state = shared.state.write();
    let mut manifest = state.manifest.clone();
    let mut old_files = Vec::new();
    let mut segments = state.segments.clone();
    // Replace in place, then drop the emptied ones (highest position first, so positions stay valid).
    let mut emptied = Vec::new();
    for (index, replacement) in written {
        old_files.push(segment_path(dir, manifest.segments[index].id));
        match replacement {
            Some((entry, segment)) => {
                manifest.segments[index] = entry;
                segments[index] = Arc::new(segment);
            }
            None => emptied.push(index),
        }
    }
    emptied.sort_unstable_by(|a, b| b.cmp(a));
    for index in emptied {
        manifest.segments.remove(index);
        segments.remove(index);
    }
    let old_snapshot = manifest.identity_snapshot.replace(snapshot_name);
    save_manifest(dir, &manifest)?;
    for path in old_files {
        std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
    }
    if let Some(old) = old_snapshot {
        let path = dir.join("identity").join(old);
        std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
    }
    state.segments = segments;
    state.identity = identity;
    state.manifest = manifest;
    shared.version.fetch_add(1, Ordering::Release);
    shared.views.lock().clear();
    Ok((hashes, jobs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_event_is_matched_by_any_value_it_carries() {
        let dir = tempfile::tempdir().unwrap();
        let mut forgotten = Forgotten::default();
        forgotten
            .record(
                dir.path(),
                &["user:ann@example.com".into(), "anon:d-1".into()],
                Timestamp(1),
            )
            .unwrap();
        let failed = |raw: &str, message: &str| FailedEvent {
            received_at: Timestamp(1),
            code: "x".into(),
            message: message.into(),
            source: "http".into(),
            raw: raw.into(),
        };
        assert!(forgotten.holds_failed(&failed(r#"{"userId":"ann@example.com","event":1}"#, "")));
        assert!(forgotten.holds_failed(&failed(r#"{"context":{"x":["d-1"]}}"#, "")));
        assert!(forgotten.holds_failed(&failed("m1,2026-01-01, d-1 ,Viewed", "")));
        assert!(forgotten.holds_failed(&failed("{broken", "userId 'ann@example.com' is odd")));
        assert!(!forgotten.holds_failed(&failed(r#"{"userId":"bob"}"#, "")));
        // The record names digests only, and reads back the same.
        let text = std::fs::read_to_string(dir.path().join(FORGOTTEN_FILE)).unwrap();
        assert!(!text.contains("ann") && !text.contains("d-1"));
        let again = Forgotten::load(dir.path()).unwrap();
        assert!(again.holds("anon:d-1") && !again.holds("anon:d-2"));
    }
}

#[cfg(test)]
mod recovery_tests {
    use super::*;
    use waymark_model::IngestContext;

    fn event(message: &str, user: &str) -> Event {
        let json = serde_json::json!({"type": "track", "event": "Viewed", "userId": user, "messageId": message,
            "properties": {"email": format!("{user}@example.com")}});
        Event::from_segment_json(
            &json,
            &IngestContext::at(Timestamp::from_secs(1_700_000_000)),
        )
        .unwrap()
    }

    #[test]
    fn a_deletion_interrupted_after_its_record_is_finished_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store
            .append(vec![event("m1", "ann"), event("m2", "bob")], vec![])
            .unwrap();
        store.flush().unwrap();
        store.append(vec![event("m3", "ann")], vec![]).unwrap();
        store.simulate_crash();
        // As if the process died right after writing the record: nothing else was done.
        Forgotten::load(dir.path())
            .unwrap()
            .record(dir.path(), &["user:ann".into()], Timestamp(1))
            .unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert!(store.customer("ann").unwrap().is_none());
        assert_eq!(store.customer("bob").unwrap().unwrap().events.len(), 1);
        assert_eq!(store.stats().events, 1);
        // And what arrives later for the deleted customer is not stored.
        let outcome = store.append(vec![event("m4", "ann")], vec![]).unwrap();
        assert_eq!((outcome.accepted, outcome.suppressed), (0, 1));
    }
}
