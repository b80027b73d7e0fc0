//! The read path: journey views (hot columns mapped to customers now, clustering order), property columns decoded from payloads.

use super::*;

impl Store {
    /// The journeys with the named property columns, shared: built once and reused until events are appended or
    /// identities change, so repeated queries on a warm store start at memory speed.
    pub fn journey_view(&self, properties: &[String]) -> Result<Arc<JourneySet>> {
        let mut wanted = properties.to_vec();
        wanted.sort();
        wanted.dedup();
        let version = self.shared.version.load(Ordering::Acquire);
        let previous = {
            let mut views = self.shared.views.lock();
            if let Some(position) = views
                .iter()
                .position(|view| view.version == version && view.names == wanted)
            {
                let entry = views.remove(position);
                let view = Arc::clone(&entry.view);
                views.push(entry);
                return Ok(view);
            }
            // The newest view of these columns, to extend with what was appended since.
            views
                .iter()
                .rev()
                .find(|view| view.names == wanted)
                .cloned()
        };
        let (view, basis) = match previous.and_then(|previous| self.extend_view(&previous, &wanted))
        {
            Some(extended) => {
                self.shared.views_extended.fetch_add(1, Ordering::Relaxed);
                extended?
            }
            None => {
                self.shared.views_rebuilt.fetch_add(1, Ordering::Relaxed);
                let (set, basis) = self.build_view(&wanted)?;
                (Arc::new(set), Arc::new(basis))
            }
        };
        let mut views = self.shared.views.lock();
        // One view per set of columns: the newest, which the next version extends.
        views.retain(|entry| entry.names != wanted);
        views.push(CachedView {
            version,
            names: wanted,
            view: Arc::clone(&view),
            basis,
        });
        if views.len() > CACHED_VIEWS {
            views.remove(0);
        }
        Ok(view)
    }

    /// Journey views built so far: (from every segment, extended with the rows appended since another).
    pub fn view_builds(&self) -> (u64, u64) {
        (
            self.shared.views_rebuilt.load(Ordering::Relaxed),
            self.shared.views_extended.load(Ordering::Relaxed),
        )
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
        Ok(self.build_view(properties)?.0)
    }

    /// A journey view from every segment and in-memory table, with what it was built from.
    fn build_view(&self, properties: &[String]) -> Result<(JourneySet, ViewBasis)> {
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
        let mut customers = Vec::new();
        for position in 1..=order.len() {
            if position == order.len() || customer[order[position]] != customer[order[position - 1]]
            {
                let root = customer[order[position - 1]];
                set.customer_ids.push(&state.identity.display_id(root));
                customers.push(root);
                set.offsets.push(position);
            }
        }
        let basis = ViewBasis {
            customers,
            max_seq: seq.iter().copied().max(),
            rows: ts.len(),
            identity: state.identity.generation(),
            splits: state.identity.splits(),
        };
        Ok((set, basis))
    }

    /// `previous` extended with the events appended since it was built, without reading the segments again: the
    /// new rows (arrivals after its newest) are taken from the in-memory tables and from the segments a flush or a
    /// merge wrote them to, their properties decoded, and merged into each customer's journey in (time, arrival)
    /// order. `None` when that cannot give what a rebuild would: two of its customers merged, or any unmerged or
    /// deleted since (old events would regroup), or rows gone.
    fn extend_view(
        &self,
        previous: &CachedView,
        properties: &[String],
    ) -> Option<Result<(Arc<JourneySet>, Arc<ViewBasis>)>> {
        let state = self.shared.state.read();
        let basis = &previous.basis;
        if state.identity.splits() != basis.splits {
            return None;
        }
        // Merges since: harmless while no two journeys of the view became one customer (a new identifier joining a
        // customer, the usual case), though a customer's display id may have changed.
        let merged = state.identity.generation() != basis.identity;
        // Each old journey's customer now, and the old journeys in the order of those customers.
        let roots: Vec<u32> = if merged {
            basis
                .customers
                .iter()
                .map(|root| state.identity.customer_of(*root))
                .collect()
        } else {
            basis.customers.clone()
        };
        let mut journeys: Vec<usize> = (0..roots.len()).collect();
        if merged {
            journeys.sort_unstable_by_key(|journey| roots[*journey]);
            if journeys
                .windows(2)
                .any(|pair| roots[pair[0]] == roots[pair[1]])
            {
                return None;
            }
        }
        let newer = |seq: u64| basis.max_seq.is_none_or(|max| seq > max);
        // Where the new rows are: (segment, its new rows) — a flush or a merge since may have written them out —
        // and per in-memory table where its new rows start (rows arrive in order, so they are its tail).
        let mut old_rows = 0usize;
        let mut in_segments: Vec<(&LoadedSegment, Vec<usize>)> = Vec::new();
        for segment in &state.segments {
            let seqs = &segment.columns.seq;
            if seqs.is_empty() || !newer(segment.max_seq) {
                old_rows += seqs.len();
                continue;
            }
            let fresh: Vec<usize> = (0..seqs.len()).filter(|row| newer(seqs[*row])).collect();
            old_rows += seqs.len() - fresh.len();
            in_segments.push((segment, fresh));
        }
        let memtables = state.in_memory_tables();
        let mut tails = Vec::new();
        for table in &memtables {
            let seqs = &table.columns.seq;
            let start = seqs.partition_point(|seq| !newer(*seq));
            if seqs[start..].iter().any(|seq| !newer(*seq)) {
                return None;
            }
            old_rows += start;
            tails.push((*table, start));
        }
        if old_rows != basis.rows {
            return None;
        }
        let mut rows: Vec<(u32, i64, u64, u32, u16)> = Vec::new();
        let mut take = |columns: &Columns, row: usize| {
            rows.push((
                state.identity.customer_of(columns.ident[row]),
                columns.ts[row],
                columns.seq[row],
                columns.step[row],
                columns.channel[row],
            ));
        };
        for (segment, fresh) in &in_segments {
            for row in fresh {
                take(&segment.columns, *row);
            }
        }
        for (table, start) in &tails {
            for row in *start..table.columns.seq.len() {
                take(&table.columns, row);
            }
        }
        let old = &previous.view;
        if rows.is_empty() && !merged {
            return Some(Ok((Arc::clone(old), Arc::clone(basis))));
        }
        // The new rows' properties, decoded from their payloads alone (in the rows' order): a segment's blocks
        // holding new rows are decoded once each.
        let mut builders: Vec<PropertyColumnBuilder> = properties
            .iter()
            .map(|name| PropertyColumnBuilder::new(name.clone()))
            .collect();
        if !properties.is_empty() {
            let reader = PropertyReader::new(properties);
            let corrupt = |error: serde_json::Error| {
                StoreError::corrupt(
                    &self.shared.dir,
                    format!("stored event does not parse: {error}"),
                )
            };
            for (segment, fresh) in &in_segments {
                let mut block: Option<(usize, DecodedBlock)> = None;
                for row in fresh {
                    let index = row / segment::ROWS_PER_BLOCK;
                    if block.as_ref().is_none_or(|(at, _)| *at != index) {
                        match segment.read_block(index, &state.steps) {
                            Ok(decoded) => block = Some((index, decoded)),
                            Err(error) => return Some(Err(error)),
                        }
                    }
                    let Some((_, (first, payloads))) = &block else {
                        unreachable!("the block was just decoded")
                    };
                    if let Err(error) = reader.read(&payloads[row - *first as usize], &mut builders)
                    {
                        return Some(Err(corrupt(error)));
                    }
                }
            }
            for (table, start) in &tails {
                for payload in table.payloads.iter().skip(*start) {
                    if let Err(error) = reader.read(payload, &mut builders) {
                        return Some(Err(corrupt(error)));
                    }
                }
            }
        }
        let added: Vec<PropertyColumn> = builders
            .into_iter()
            .map(|builder| builder.finish())
            .collect();
        // Each new column's codes in the old column's dictionary, new values appended to it.
        let mut columns: Vec<PropertyColumn> = Vec::with_capacity(added.len());
        let mut recode: Vec<Vec<u32>> = Vec::with_capacity(added.len());
        for (index, column) in added.iter().enumerate() {
            let mut merged = PropertyColumn {
                name: old.properties[index].name.clone(),
                codes: Vec::with_capacity(old.n_events() + rows.len()),
                values: old.properties[index].values.clone(),
            };
            let mut known: std::collections::HashMap<String, u32> = merged
                .values
                .iter()
                .enumerate()
                .map(|(code, value)| (value.to_string(), code as u32))
                .collect();
            let codes = column
                .values
                .iter()
                .map(|value| {
                    *known.entry(value.to_string()).or_insert_with(|| {
                        merged.values.push(value.clone());
                        (merged.values.len() - 1) as u32
                    })
                })
                .collect();
            recode.push(codes);
            columns.push(merged);
        }
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_unstable_by_key(|row| (rows[*row].0, rows[*row].1, rows[*row].2));
        let n = old.n_events() + rows.len();
        let mut set = JourneySet {
            step_names: state.steps.values().to_vec(),
            channel_names: state.channels.values().to_vec(),
            offsets: Vec::with_capacity(old.n_journeys() + 2),
            ts: Vec::with_capacity(n),
            step: Vec::with_capacity(n),
            channel: Vec::with_capacity(n),
            ..JourneySet::default()
        };
        set.offsets.push(0);
        let mut customers = Vec::with_capacity(basis.customers.len() + 1);
        let push_old = |set: &mut JourneySet, columns: &mut [PropertyColumn], event: usize| {
            set.ts.push(old.ts[event]);
            set.step.push(old.step[event]);
            set.channel.push(old.channel[event]);
            for (column, from) in columns.iter_mut().zip(&old.properties) {
                column.codes.push(from.codes[event]);
            }
        };
        let push_new = |set: &mut JourneySet, columns: &mut [PropertyColumn], row: usize| {
            let (_, ts, _, step, channel) = rows[row];
            set.ts.push(ts);
            set.step.push(step);
            set.channel.push(channel);
            for ((column, from), codes) in columns.iter_mut().zip(&added).zip(&recode) {
                column.codes.push(codes[from.codes[row] as usize]);
            }
        };
        let (mut position, mut next) = (0usize, 0usize);
        while position < journeys.len() || next < order.len() {
            let journey = journeys.get(position).copied().unwrap_or(usize::MAX);
            let old_customer = journeys.get(position).map(|journey| roots[*journey]);
            let new_customer = order.get(next).map(|row| rows[*row].0);
            let customer = match (old_customer, new_customer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => unreachable!("the loop runs while either is left"),
            };
            let events = if old_customer == Some(customer) {
                old.offsets[journey]..old.offsets[journey + 1]
            } else {
                0..0
            };
            if new_customer != Some(customer) {
                // A journey with nothing new is copied whole.
                set.ts.extend_from_slice(&old.ts[events.clone()]);
                set.step.extend_from_slice(&old.step[events.clone()]);
                set.channel.extend_from_slice(&old.channel[events.clone()]);
                for (column, from) in columns.iter_mut().zip(&old.properties) {
                    column.codes.extend_from_slice(&from.codes[events.clone()]);
                }
            } else {
                // Old events first at equal times: every new event arrived after them.
                let mut event = events.start;
                while next < order.len() && rows[order[next]].0 == customer {
                    let row = order[next];
                    while event < events.end && old.ts[event] <= rows[row].1 {
                        push_old(&mut set, &mut columns, event);
                        event += 1;
                    }
                    push_new(&mut set, &mut columns, row);
                    next += 1;
                }
                for event in event..events.end {
                    push_old(&mut set, &mut columns, event);
                }
            }
            if old_customer == Some(customer) {
                if merged {
                    set.customer_ids.push(&state.identity.display_id(customer));
                } else {
                    set.customer_ids.push(&old.customer_ids[journey]);
                }
                position += 1;
            } else {
                set.customer_ids.push(&state.identity.display_id(customer));
            }
            customers.push(customer);
            set.offsets.push(set.ts.len());
        }
        set.properties = columns;
        let basis = ViewBasis {
            customers,
            max_seq: rows.iter().map(|row| row.2).max().max(basis.max_seq),
            rows: n,
            identity: state.identity.generation(),
            splits: basis.splits,
        };
        Some(Ok((Arc::new(set), Arc::new(basis))))
    }
}

/// What a cached journey view was built from, so that a newer one can extend it: each journey's customer (its root
/// identifier), the newest arrival it holds, its rows, and the identity graph's generation and splits.
#[derive(Debug)]
pub(crate) struct ViewBasis {
    customers: Vec<u32>,
    max_seq: Option<u64>,
    rows: usize,
    identity: u64,
    splits: u64,
}

pub(crate) type ColumnSinks<'a> = (
    &'a mut Vec<u32>,
    &'a mut Vec<i64>,
    &'a mut Vec<u64>,
    &'a mut Vec<u32>,
    &'a mut Vec<u16>,
);

/// Appends one table's hot columns, with identifiers resolved to their customers.
pub(crate) fn push_columns(
    sinks: &mut ColumnSinks<'_>,
    columns: &Columns,
    identity: &IdentityGraph,
) {
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
pub(crate) enum PayloadSource<'a> {
    Block(&'a LoadedSegment, usize),
    Memory(&'a Payloads),
}

/// Decodes the named properties of every payload, on every core: each thread codes a contiguous run of sources
/// with its own dictionaries, and the runs are joined in order with their codes remapped.
pub(crate) fn load_property_columns(
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
pub(crate) struct PropertyReader {
    /// Per name: its path parts.
    pub(crate) paths: Vec<Vec<String>>,
}

impl PropertyReader {
    pub(crate) fn new(names: &[String]) -> PropertyReader {
        PropertyReader {
            paths: names
                .iter()
                .map(|name| name.split('.').map(String::from).collect())
                .collect(),
        }
    }

    pub(crate) fn read(
        &self,
        payload: &[u8],
        builders: &mut [PropertyColumnBuilder],
    ) -> serde_json::Result<()> {
        let top = StoredEvent::parse(payload)?;
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
                    Some(raw) => walk_raw(raw, &path[1..]),
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
                found = match top.map_field(&path[0]) {
                    Some(raw) => match raw {
                        Some(raw) => walk_raw(raw, &path[1..])?,
                        None => None,
                    },
                    None => match top.field(&path[0])? {
                        Some(value) => walk(&value, &path[1..]),
                        None => None,
                    },
                };
            }
            builder.push(found.as_ref());
        }
        Ok(())
    }
}

use crate::stored::StoredEvent;
use serde_json::value::RawValue;

/// The value at `parts` under the JSON text `raw`, parsing only the objects on the way (each split into its
/// members' borrowed text, the others skimmed) and the value found: a context or traits map holds much that a
/// property column does not read.
pub(crate) fn walk_raw(
    raw: &RawValue,
    parts: &[String],
) -> serde_json::Result<Option<serde_json::Value>> {
    let Some((first, rest)) = parts.split_first() else {
        return serde_json::from_str(raw.get()).map(Some);
    };
    let text = raw.get();
    if !text.starts_with('{') {
        return Ok(None);
    }
    match serde_json::from_str::<HashMap<&str, &RawValue>>(text) {
        Ok(members) => match members.get(first.as_str()) {
            Some(member) => walk_raw(member, rest),
            None => Ok(None),
        },
        // A key with an escape cannot be borrowed: the whole object parsed.
        Err(_) => {
            let value: serde_json::Value = serde_json::from_str(text)?;
            Ok(walk(&value, parts))
        }
    }
}

pub(crate) fn walk(root: &serde_json::Value, parts: &[String]) -> Option<serde_json::Value> {
    parts
        .iter()
        .try_fold(root, |value, part| value.get(part))
        .cloned()
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
