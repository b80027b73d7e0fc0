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
                if let Some(value) = top.field(&path[0])? {
                    found = walk(&value, &path[1..]);
                }
            }
            builder.push(found.as_ref());
        }
        Ok(())
    }
}

use crate::stored::StoredEvent;
use serde_json::value::RawValue;

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
