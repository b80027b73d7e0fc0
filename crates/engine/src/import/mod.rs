//! Bulk import of event files: CSV, JSON Lines, Parquet and XES, optionally gzip-compressed, streamed in
//! constant memory and appended in file order (which is the tie-break for equal timestamps).
//!
//! Every row becomes a Segment `track` event: the customer column is the `userId`, the step column the `event`
//! name, the time column the `timestamp`, and the remaining columns its `properties`. Each row's `messageId` is
//! derived from the file name, the row's position and its content, so importing the same file twice stores it once.
//!
//! Imported events skip the store's write-ahead log and are flushed to segments before [`import_file`] returns: an
//! import that was interrupted is finished by importing the file again.

use serde_json::Value;
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;
use waymark_model::{Event, IngestContext, RowParts, RowRef, Timestamp, ValidationError};
use waymark_store::{EventBatch, FailedEvent, Store, StoreError};

mod csv;
mod jsonl;
mod parquet;
mod xes;

use self::csv::import_csv;
use jsonl::import_jsonl;
use parquet::import_parquet;
use xes::import_xes;

/// Supported file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    Csv,
    Jsonl,
    Parquet,
    Xes,
}

impl ImportFormat {
    /// From the file name: `.csv`/`.tsv`/`.txt`, `.jsonl`/`.ndjson`/`.json`, `.parquet`, `.xes`, each optionally `.gz`.
    pub fn detect(path: &Path) -> Option<ImportFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let extension = name.rsplit_once('.')?.1;
        Some(match extension {
            "csv" | "tsv" | "txt" => ImportFormat::Csv,
            "jsonl" | "ndjson" | "json" => ImportFormat::Jsonl,
            "parquet" | "pq" => ImportFormat::Parquet,
            "xes" => ImportFormat::Xes,
            _ => return None,
        })
    }

    pub fn parse(text: &str) -> Option<ImportFormat> {
        Some(match text.to_ascii_lowercase().as_str() {
            "csv" | "tsv" => ImportFormat::Csv,
            "jsonl" | "ndjson" | "json" => ImportFormat::Jsonl,
            "parquet" => ImportFormat::Parquet,
            "xes" => ImportFormat::Xes,
            _ => return None,
        })
    }
}

/// How to read a file. Unset columns are found by their usual names (see [`CUSTOMER_COLUMNS`] and friends).
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: Option<ImportFormat>,
    pub customer_column: Option<String>,
    pub step_column: Option<String>,
    pub time_column: Option<String>,
    pub channel_column: Option<String>,
    /// Channel for rows without one (e.g. `call_center` for a contact-centre export).
    pub default_channel: Option<String>,
    /// Columns to keep as properties; `None` keeps every column not mapped to a role.
    pub property_columns: Option<Vec<String>>,
    /// Record bad rows as failed events and go on, instead of stopping at the first.
    pub skip_invalid: bool,
    /// Events per append.
    pub batch_size: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: None,
            customer_column: None,
            step_column: None,
            time_column: None,
            channel_column: None,
            default_channel: None,
            property_columns: None,
            skip_invalid: false,
            batch_size: 20_000,
        }
    }
}

/// Usual names of the customer / case column, matched case-insensitively, first match wins.
pub const CUSTOMER_COLUMNS: &[&str] = &[
    "case:concept:name",
    "case_id",
    "caseid",
    "case",
    "customer_id",
    "customerid",
    "customer",
    "user_id",
    "userid",
    "anonymous_id",
];
/// Usual names of the step / activity column.
pub const STEP_COLUMNS: &[&str] = &[
    "concept:name",
    "activity",
    "event",
    "step",
    "event_name",
    "action",
    "activityid",
];
/// Usual names of the time column.
pub const TIME_COLUMNS: &[&str] = &[
    "time:timestamp",
    "timestamp",
    "time",
    "completetimestamp",
    "event_time",
    "datetime",
    "contactdate",
    "date",
];
/// Usual names of the channel column.
pub const CHANNEL_COLUMNS: &[&str] = &["channel", "context_channel", "case:channel"];

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    pub file: PathBuf,
    pub format: Option<ImportFormat>,
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    /// Rows of deleted customers (their identifiers are in the deletion record): not stored.
    pub suppressed: u64,
    pub invalid: u64,
    /// The first few problems, as `file:line: field: problem`.
    pub problems: Vec<String>,
    pub customer_column: Option<String>,
    pub step_column: Option<String>,
    pub time_column: Option<String>,
    pub channel_column: Option<String>,
}

/// Why an import stopped.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: cannot tell the format from the file name; pass --format csv|jsonl|parquet|xes")]
    UnknownFormat(PathBuf),
    #[error(
        "{file}: no {role} column; tried {tried}; the file has {available}; pass --{role} COLUMN"
    )]
    MissingColumn {
        file: String,
        role: &'static str,
        tried: String,
        available: String,
    },
    #[error(
        "{file}:{line}: {field}: {problem} (use --skip-invalid to record bad rows and continue)"
    )]
    Row {
        file: String,
        line: u64,
        field: String,
        problem: String,
    },
    #[error("{file}: {detail}")]
    Malformed { file: String, detail: String },
    /// A failure after some rows were stored: what was stored, and how to resume.
    #[error("{}", stopped_message(.cause, *.accepted, *.duplicates))]
    Stopped {
        cause: Box<ImportError>,
        /// New events stored from the rows before the failure (durable).
        accepted: u64,
        /// Rows before the failure that were stored already (an earlier run).
        duplicates: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// The error behind a [`ImportError::Stopped`], or this one.
    pub fn cause(&self) -> &ImportError {
        match self {
            ImportError::Stopped { cause, .. } => cause,
            other => other,
        }
    }
}

/// What a stopped import stored and how to go on from there: the rows before the bad one are durable, and importing
/// the same file again after fixing (or deleting) that row stores the rest, the rows already stored being recognised
/// by their derived id (file name, line, content) or `messageId` and skipped.
fn stopped_message(cause: &ImportError, accepted: u64, duplicates: u64) -> String {
    let before = match cause {
        ImportError::Row { line, .. } if *line > 2 => format!("the rows before line {line}"),
        ImportError::Row { .. } => "the rows before it".to_string(),
        _ => "the rows read before the failure".to_string(),
    };
    let what = match cause {
        ImportError::Row { line, .. } => format!("fix or delete line {line}"),
        _ => "fix the file".to_string(),
    };
    let again = if duplicates > 0 {
        format!(" ({duplicates} of them were stored by an earlier run)")
    } else {
        String::new()
    };
    format!(
        "{cause}\nstored {accepted} new events from {before}{again}; {what} and run the same import again to resume: rows already stored are recognised and skipped"
    )
}

/// Counts bytes read from the underlying file, for progress reporting.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// One row before it becomes an event: its position and named cells, borrowed from the reader where it can lend
/// them (a Parquet column's strings, a CSV record, a JSON object), so that reading a row allocates little.
struct RawRow<'a> {
    line: u64,
    fields: Vec<(Cow<'a, str>, Cell<'a>)>,
}

/// A cell: text as read, or a JSON value (`null` for a missing one).
enum Cell<'a> {
    Text(Cow<'a, str>),
    Json(Cow<'a, Value>),
}

impl Cell<'_> {
    const NULL: Cell<'static> = Cell::Json(Cow::Owned(Value::Null));

    fn is_null(&self) -> bool {
        matches!(self, Cell::Json(value) if value.is_null())
    }

    /// Appends the cell as JSON: the same bytes as serialising the `Value` it stands for.
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Text(text) => waymark_model::write_json_string(out, text),
            Cell::Json(value) => {
                serde_json::to_writer(&mut *out, value.as_ref()).expect("JSON values serialise")
            }
        }
    }

    /// The cell as text for a role (customer, step, time, channel): `None` for null, other JSON as written.
    fn into_text(self) -> Option<String> {
        match self {
            Cell::Text(text) => Some(text.into_owned()),
            Cell::Json(value) => into_text(value.into_owned()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Cell::Text(text) => Value::String(text.into_owned()),
            Cell::Json(value) => value.into_owned(),
        }
    }
}

/// Decodes bytes as UTF-8, falling back to Latin-1 (common in European CSV exports).
fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|byte| *byte as char).collect(),
    }
}

struct Mapping {
    customer: String,
    step: String,
    time: String,
    channel: Option<String>,
}

fn find_column(
    columns: &[String],
    chosen: &Option<String>,
    candidates: &[&str],
    role: &'static str,
    file: &str,
) -> Result<Option<String>, ImportError> {
    if let Some(name) = chosen {
        return match columns
            .iter()
            .find(|column| *column == name || column.eq_ignore_ascii_case(name))
        {
            Some(column) => Ok(Some(column.clone())),
            None => Err(ImportError::MissingColumn {
                file: file.to_string(),
                role,
                tried: format!("{name:?}"),
                available: format!("{columns:?}"),
            }),
        };
    }
    Ok(candidates
        .iter()
        .find_map(|candidate| {
            columns
                .iter()
                .find(|column| column.eq_ignore_ascii_case(candidate))
        })
        .cloned())
}

fn required(
    found: Option<String>,
    candidates: &[&str],
    role: &'static str,
    columns: &[String],
    file: &str,
) -> Result<String, ImportError> {
    found.ok_or_else(|| ImportError::MissingColumn {
        file: file.to_string(),
        role,
        tried: candidates.join(", "),
        available: format!("{columns:?}"),
    })
}

fn resolve_mapping(
    columns: &[String],
    options: &ImportOptions,
    file: &str,
) -> Result<Mapping, ImportError> {
    let customer = find_column(
        columns,
        &options.customer_column,
        CUSTOMER_COLUMNS,
        "customer",
        file,
    )?;
    let step = find_column(columns, &options.step_column, STEP_COLUMNS, "step", file)?;
    let time = find_column(columns, &options.time_column, TIME_COLUMNS, "time", file)?;
    let channel = find_column(
        columns,
        &options.channel_column,
        CHANNEL_COLUMNS,
        "channel",
        file,
    )?;
    Ok(Mapping {
        customer: required(customer, CUSTOMER_COLUMNS, "customer", columns, file)?,
        step: required(step, STEP_COLUMNS, "step", columns, file)?,
        time: required(time, TIME_COLUMNS, "time", columns, file)?,
        channel,
    })
}

fn into_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

/// Streams rows into the store in batches, turning each into an event.
/// A batch on its way to the appender thread.
type Batch = (EventBatch, Vec<FailedEvent>);

struct Sink<'a> {
    /// To the appender thread, which appends batches in order while the next one is parsed.
    batches: std::sync::mpsc::SyncSender<Batch>,
    options: &'a ImportOptions,
    file_label: String,
    /// Scratch space for hashing a row into its id.
    id_input: Vec<u8>,
    /// Scratch space for a row's values as JSON, and for its stored form.
    row_bytes: Vec<u8>,
    payload: Vec<u8>,
    /// How imported events are validated: received now, any non-blank id accepted, the import's default channel.
    ingest: IngestContext,
    batch: EventBatch,
    failed: Vec<FailedEvent>,
    report: ImportReport,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
    progress: &'a dyn Fn(u64, u64),
}

impl Sink<'_> {
    /// The derived id of a row: the hash of `label \0 line \0 text`, built in a reusable buffer and hashed in
    /// one call (a streaming hasher's set-up and the line's formatting were a third of the cost).
    fn message_id(&mut self, line: u64, row_text: &[u8]) -> String {
        waymark_store::derived_message_id(self.id_hash(line, row_text))
    }

    /// The hash a row's derived id is made of.
    fn id_hash(&mut self, line: u64, row_text: &[u8]) -> u64 {
        let input = &mut self.id_input;
        input.clear();
        input.extend_from_slice(self.file_label.as_bytes());
        input.push(0);
        serde_json::to_writer(&mut *input, &line).expect("an integer serialises");
        input.push(0);
        input.extend_from_slice(row_text);
        xxhash_rust::xxh3::xxh3_64(input)
    }

    /// A row mapped onto roles (CSV, Parquet, flat JSON, XES). Valid rows are written straight into their stored
    /// form ([`Event::write_row`]); the rest go through [`Event::from_row`], which says what is wrong with them.
    fn push_mapped(&mut self, row: RawRow, mapping: &Mapping) -> Result<(), ImportError> {
        self.report.rows += 1;
        let mut customer = None;
        let mut step = None;
        let mut time = None;
        let mut channel = None;
        // Every value as JSON followed by \u{1} (the row's text, hashed into its id); the properties' values are
        // ranges of it.
        let mut row_bytes = std::mem::take(&mut self.row_bytes);
        row_bytes.clear();
        let mut properties: Vec<(Cow<str>, Cell, std::ops::Range<usize>)> = Vec::new();
        for (name, cell) in row.fields {
            let start = row_bytes.len();
            cell.write_json(&mut row_bytes);
            let range = start..row_bytes.len();
            row_bytes.push(1);
            if name == mapping.customer.as_str() {
                customer = cell.into_text();
            } else if name == mapping.step.as_str() {
                step = cell.into_text();
            } else if name == mapping.time.as_str() {
                time = cell.into_text();
            } else if mapping.channel.as_deref() == Some(name.as_ref()) {
                channel = cell.into_text();
            } else if self
                .options
                .property_columns
                .as_ref()
                .is_none_or(|keep| keep.iter().any(|kept| kept.as_str() == name.as_ref()))
                && !cell.is_null()
            {
                properties.push((name, cell, range));
            }
        }
        let id_hash = self.id_hash(row.line, &row_bytes);
        let message_id = waymark_store::derived_message_id(id_hash);
        // A row without a time is refused (it is not given the import's time).
        let time = time.filter(|text| !text.trim().is_empty());
        // Properties by name, as the event's map orders them; repeated names take the general path (the map
        // keeps the last).
        let mut sorted: Vec<(&str, &[u8])> = properties
            .iter()
            .map(|(name, _, range)| (name.as_ref(), &row_bytes[range.clone()]))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if sorted.windows(2).all(|pair| pair[0].0 != pair[1].0) {
            let fast = RowRef {
                message_id: &message_id,
                user_id: customer.as_deref(),
                event: step.as_deref(),
                timestamp: time.as_deref().unwrap_or_default(),
                channel: channel.as_deref(),
                properties: &sorted,
            };
            let mut payload = std::mem::take(&mut self.payload);
            payload.clear();
            let written = Event::write_row(&fast, &self.ingest, &mut payload)
                .map(|written| self.batch.push_row(&fast, id_hash, written, &payload))
                .is_some();
            self.payload = payload;
            if written {
                drop(sorted);
                self.row_bytes = row_bytes;
                return self.after_push();
            }
        }
        drop(sorted);
        let parts = RowParts {
            message_id,
            user_id: customer,
            event: step,
            timestamp: time.unwrap_or_default(),
            channel,
            properties: properties
                .into_iter()
                .map(|(name, cell, _)| (name.into_owned(), cell.into_value()))
                .collect(),
        };
        let field_of = |error: &ValidationError| match error {
            ValidationError::MissingIdentifier { .. } => mapping.customer.clone(),
            ValidationError::MissingEventName => mapping.step.clone(),
            ValidationError::InvalidTimestamp { .. } => mapping.time.clone(),
            ValidationError::WrongType { field, .. } => field.clone(),
            _ => "row".to_string(),
        };
        let row_text = String::from_utf8_lossy(&row_bytes).into_owned();
        self.row_bytes = row_bytes;
        // Each value in `row_text` is JSON followed by \u{1}; as a JSON array it is the row as read.
        let raw = || {
            format!(
                "[{}]",
                row_text.trim_end_matches('\u{1}').replace('\u{1}', ",")
            )
        };
        let event = Event::from_row(parts, &self.ingest);
        self.push_event(row.line, event, &raw, &field_of)
    }

    fn push_json(
        &mut self,
        line: u64,
        json: Value,
        raw: &dyn Fn() -> String,
        field_of: &dyn Fn(&ValidationError) -> String,
    ) -> Result<(), ImportError> {
        let event = Event::from_segment_value(json, &self.ingest);
        self.push_event(line, event, raw, field_of)
    }

    /// Keeps a valid event for the next batch, or records why the row was refused.
    fn push_event(
        &mut self,
        line: u64,
        event: Result<Event, ValidationError>,
        raw: &dyn Fn() -> String,
        field_of: &dyn Fn(&ValidationError) -> String,
    ) -> Result<(), ImportError> {
        match event {
            Ok(event) => self.batch.push_event(event),
            Err(error) => {
                let field = field_of(&error);
                let problem = match &error {
                    ValidationError::InvalidTimestamp { value, .. } if value.is_empty() => "empty; every row needs a time".to_string(),
                    ValidationError::InvalidTimestamp { value, .. } => format!("{value:?} is not a timestamp (ISO-8601 such as 2026-01-02T03:04:05Z, or epoch seconds)"),
                    ValidationError::MissingIdentifier { .. } => "empty or a placeholder value; every row needs a customer id".to_string(),
                    ValidationError::MissingEventName => "empty; every row needs a step name".to_string(),
                    other => other.to_string(),
                };
                self.reject(line, &field, &problem, &raw())?;
            }
        }
        self.after_push()
    }

    /// Sends the batch on once it is full.
    fn after_push(&mut self) -> Result<(), ImportError> {
        if self.batch.len() >= self.options.batch_size {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn reject(
        &mut self,
        line: u64,
        field: &str,
        problem: &str,
        raw: &str,
    ) -> Result<(), ImportError> {
        let error = ImportError::Row {
            file: self.file_label.clone(),
            line,
            field: field.to_string(),
            problem: problem.to_string(),
        };
        if !self.options.skip_invalid {
            // Rows before the bad one are kept: they are valid and were already read in order.
            self.flush_batch()?;
            return Err(error);
        }
        self.report.invalid += 1;
        let message = format!("{}:{line}: {field}: {problem}", self.file_label);
        if self.report.problems.len() < 20 {
            self.report.problems.push(message.clone());
        }
        self.failed.push(FailedEvent {
            received_at: self.ingest.received_at,
            code: "invalid_row".into(),
            message,
            source: format!("{}:{line}", self.file_label),
            raw: raw.chars().take(64 * 1024).collect(),
        });
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), ImportError> {
        if self.batch.is_empty() && self.failed.is_empty() {
            return Ok(());
        }
        // The next batch starts at full size: growing it from empty copied every event several times.
        let batch = (
            std::mem::replace(
                &mut self.batch,
                EventBatch::with_capacity(self.options.batch_size),
            ),
            std::mem::take(&mut self.failed),
        );
        if self.batches.send(batch).is_err() {
            // The appender stopped on a store error; `import_file` reports that error.
            return Err(ImportError::Store(StoreError::WriterStopped(
                "the import's appender stopped".into(),
            )));
        }
        (self.progress)(self.bytes_read.load(Ordering::Relaxed), self.total_bytes);
        Ok(())
    }
}

fn open_input(path: &Path, count: Arc<AtomicU64>) -> Result<Box<dyn BufRead>, ImportError> {
    let file = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut counted = BufReader::with_capacity(1 << 20, CountingReader { inner: file, count });
    let is_gzip = counted
        .fill_buf()
        .map(|head| head.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    Ok(if is_gzip {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(counted),
        ))
    } else {
        Box::new(counted)
    })
}

/// The file's format (as given, else from its name) and its size in bytes.
fn format_and_size(
    path: &Path,
    options: &ImportOptions,
) -> Result<(ImportFormat, u64), ImportError> {
    let format = options
        .format
        .or_else(|| ImportFormat::detect(path))
        .ok_or_else(|| ImportError::UnknownFormat(path.to_path_buf()))?;
    let total_bytes = std::fs::metadata(path)
        .map_err(|source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    Ok((format, total_bytes))
}

/// Imports one file into the store. `progress(bytes_read, total_bytes)` is called after every batch.
pub fn import_file(
    store: &Store,
    path: &Path,
    options: &ImportOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<ImportReport, ImportError> {
    let (format, total_bytes) = format_and_size(path, options)?;
    let bytes_read = Arc::new(AtomicU64::new(0));
    let (batches, receiver) = std::sync::mpsc::sync_channel::<Batch>(1);
    std::thread::scope(|scope| {
        // Appending a batch (serialisation, group commit) overlaps with parsing the next one. The events skip the
        // write-ahead log: the file can be read again, and the flush below makes them durable before the import
        // reports them (a crash before that loses only this import's events; importing again adds them).
        let appender = scope.spawn(move || -> Result<(u64, u64, u64), StoreError> {
            let (mut accepted, mut duplicates, mut suppressed) = (0u64, 0u64, 0u64);
            for (events, failed) in receiver {
                let outcome = store.append_batch_unlogged(events, failed)?;
                accepted += outcome.accepted as u64;
                duplicates += outcome.duplicates as u64;
                suppressed += outcome.suppressed as u64;
            }
            Ok((accepted, duplicates, suppressed))
        });
        let (parsed, mut report) = read_file(
            path,
            format,
            options,
            batches,
            (Arc::clone(&bytes_read), total_bytes),
            progress,
        );
        // `read_file` dropped its sender: the appender finishes the batches sent so far, including those before
        // a bad row.
        let appended = appender.join().expect("the appender thread does not panic");
        let (accepted, duplicates, suppressed) = appended?;
        // Durable before anything is reported, including the rows before a bad one.
        store.flush()?;
        if let Err(cause) = parsed {
            return Err(match cause {
                ImportError::Row { .. }
                | ImportError::Malformed { .. }
                | ImportError::Io { .. }
                    if accepted + duplicates > 0 =>
                {
                    ImportError::Stopped {
                        cause: Box::new(cause),
                        accepted,
                        duplicates,
                    }
                }
                cause => cause,
            });
        }
        report.accepted = accepted;
        report.duplicates = duplicates;
        report.suppressed = suppressed;
        progress(total_bytes, total_bytes);
        Ok(report)
    })
}

/// Parses `path` as `format` into batches sent to `batches` (dropped on return), as an import reads it: the
/// result of parsing, and the report of rows read and refused so far.
fn read_file(
    path: &Path,
    format: ImportFormat,
    options: &ImportOptions,
    batches: std::sync::mpsc::SyncSender<Batch>,
    counter: (Arc<AtomicU64>, u64),
    progress: &dyn Fn(u64, u64),
) -> (Result<(), ImportError>, ImportReport) {
    let file_label = path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().to_string(),
    );
    let (bytes_read, total_bytes) = counter;
    let mut sink = Sink {
        batches,
        options,
        file_label: file_label.clone(),
        id_input: Vec::with_capacity(512),
        row_bytes: Vec::with_capacity(512),
        payload: Vec::with_capacity(1024),
        ingest: IngestContext {
            received_at: Timestamp::now(),
            batch_sent_at: None,
            default_channel: options.default_channel.clone(),
            allow_placeholder_ids: true,
        },
        batch: EventBatch::with_capacity(options.batch_size),
        failed: Vec::new(),
        report: ImportReport {
            file: path.to_path_buf(),
            format: Some(format),
            ..ImportReport::default()
        },
        bytes_read: Arc::clone(&bytes_read),
        total_bytes,
        progress,
    };
    let parsed = match format {
        ImportFormat::Csv => {
            open_input(path, bytes_read).and_then(|input| import_csv(&mut sink, input))
        }
        ImportFormat::Jsonl => {
            open_input(path, bytes_read).and_then(|input| import_jsonl(&mut sink, input))
        }
        ImportFormat::Xes => {
            open_input(path, bytes_read).and_then(|input| import_xes(&mut sink, input))
        }
        ImportFormat::Parquet => import_parquet(&mut sink, path),
    }
    .and_then(|()| sink.flush_batch());
    (parsed, sink.report)
}

/// What importing `path` would do, without a store: every row parsed and validated as `import` would, the events
/// counted as `accepted` (nothing is stored, so none is a duplicate) and the refused rows as `invalid` with their
/// problems. The fuzz targets of the readers run through it.
pub fn check_file(path: &Path, options: &ImportOptions) -> Result<ImportReport, ImportError> {
    let (format, total_bytes) = format_and_size(path, options)?;
    let (batches, receiver) = std::sync::mpsc::sync_channel::<Batch>(1);
    std::thread::scope(|scope| {
        let counter = scope.spawn(move || {
            receiver
                .into_iter()
                .map(|(events, _)| events.len() as u64)
                .sum::<u64>()
        });
        let (parsed, mut report) = read_file(
            path,
            format,
            options,
            batches,
            (Arc::new(AtomicU64::new(0)), total_bytes),
            &|_, _| {},
        );
        report.accepted = counter.join().expect("the counter does not panic");
        parsed.map(|()| report)
    })
}

fn record_mapping(report: &mut ImportReport, mapping: &Mapping) {
    report.customer_column = Some(mapping.customer.clone());
    report.step_column = Some(mapping.step.clone());
    report.time_column = Some(mapping.time.clone());
    report.channel_column = mapping.channel.clone();
}
