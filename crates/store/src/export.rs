//! Parquet export of the stored events, one row per event, in journey order (customer, time, arrival).

use crate::error::{Result, StoreError};
use crate::stored::StoredEvent;
use crate::Store;
use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::{mpsc, Arc};

const ROWS_PER_BATCH: usize = 65_536;

struct Builders {
    customer_id: StringBuilder,
    message_id: StringBuilder,
    event_type: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    received_at: TimestampMicrosecondBuilder,
    user_id: StringBuilder,
    anonymous_id: StringBuilder,
    step: StringBuilder,
    channel: StringBuilder,
    event: StringBuilder,
    name: StringBuilder,
    properties: StringBuilder,
    traits: StringBuilder,
    context: StringBuilder,
    rows: usize,
}

fn schema() -> Arc<Schema> {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let time = |name: &str| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        text("customer_id", false),
        text("message_id", false),
        text("type", false),
        time("timestamp"),
        time("received_at"),
        text("user_id", true),
        text("anonymous_id", true),
        text("step", false),
        text("channel", false),
        text("event", true),
        text("name", true),
        text("properties", true),
        text("traits", true),
        text("context", true),
    ]))
}

impl Builders {
    fn new() -> Builders {
        Builders {
            customer_id: StringBuilder::new(),
            message_id: StringBuilder::new(),
            event_type: StringBuilder::new(),
            timestamp: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            received_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            user_id: StringBuilder::new(),
            anonymous_id: StringBuilder::new(),
            step: StringBuilder::new(),
            channel: StringBuilder::new(),
            event: StringBuilder::new(),
            name: StringBuilder::new(),
            properties: StringBuilder::new(),
            traits: StringBuilder::new(),
            context: StringBuilder::new(),
            rows: 0,
        }
    }

    fn push(&mut self, customer_id: &str, step: &str, event: &StoredEvent<'_>) {
        let json = StoredEvent::map_text;
        self.customer_id.append_value(customer_id);
        self.message_id.append_value(&event.message_id);
        self.event_type.append_value(event.event_type.as_str());
        self.timestamp.append_value(event.timestamp.micros());
        self.received_at.append_value(event.received_at.micros());
        self.user_id.append_option(event.user_id.as_deref());
        self.anonymous_id
            .append_option(event.anonymous_id.as_deref());
        self.step.append_value(step);
        self.channel.append_value(&event.channel);
        self.event.append_option(event.event.as_deref());
        self.name.append_option(event.name.as_deref());
        self.properties.append_option(json(event.properties));
        self.traits.append_option(json(event.traits));
        self.context.append_option(json(event.context));
        self.rows += 1;
    }

    fn finish(&mut self, schema: &Arc<Schema>) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.customer_id.finish()),
            Arc::new(self.message_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.anonymous_id.finish()),
            Arc::new(self.step.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.event.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.properties.finish()),
            Arc::new(self.traits.finish()),
            Arc::new(self.context.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).expect("columns match the schema")
    }
}

/// Writes every event to a Parquet file at `path` (Snappy-compressed), after compacting so rows come out in
/// journey order. `progress` is called with the number of rows written so far. Returns the row count. Payloads are
/// decoded into column batches on the calling thread while a second thread encodes and writes the previous batch.
pub fn export_parquet(store: &Store, path: &Path, mut progress: impl FnMut(u64)) -> Result<u64> {
    store.compact()?;
    let schema = schema();
    let file = std::fs::File::create(path).map_err(StoreError::io(path))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let parquet_error = |error: parquet::errors::ParquetError| StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    };
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties)).map_err(parquet_error)?;
    std::thread::scope(|scope| {
        // Two batches in flight at most: the one being written and the next one waiting. `None` says every event
        // was decoded: only then is the file finished (after a failure it is left unfinished, not a valid file
        // holding part of the events).
        let (batches, queue) = mpsc::sync_channel::<Option<(RecordBatch, u64)>>(1);
        let (written, written_rows) = mpsc::channel::<u64>();
        let encoder = std::thread::Builder::new()
            .name("waymark-export".into())
            .spawn_scoped(scope, move || -> Result<()> {
                for message in queue {
                    let Some((batch, rows)) = message else {
                        return writer.close().map(drop).map_err(parquet_error);
                    };
                    writer.write(&batch).map_err(parquet_error)?;
                    let _ = written.send(rows);
                }
                Ok(())
            })
            .map_err(StoreError::io("export thread"))?;
        let mut builders = Builders::new();
        let mut total = 0u64;
        // A send fails only when the encoder stopped on an error, which joining it returns.
        let send = |builders: &mut Builders, total: u64| {
            batches
                .send(Some((builders.finish(&schema), total)))
                .is_ok()
        };
        let decoded = store.for_each_stored(|customer_id, step, payload| {
            let event = StoredEvent::parse(payload).map_err(|error| {
                StoreError::corrupt(store.dir(), format!("stored event does not parse: {error}"))
            })?;
            builders.push(customer_id, step, &event);
            total += 1;
            if builders.rows == ROWS_PER_BATCH {
                if !send(&mut builders, total) {
                    return Err(StoreError::WriterStopped(
                        "the Parquet encoder stopped".into(),
                    ));
                }
                while let Ok(rows) = written_rows.try_recv() {
                    progress(rows);
                }
            }
            Ok(())
        });
        if decoded.is_ok() && (builders.rows == 0 || send(&mut builders, total)) {
            let _ = batches.send(None);
        }
        drop(batches);
        let encoded = encoder.join().unwrap_or_else(|_| {
            Err(StoreError::WriterStopped(
                "the Parquet encoder panicked".into(),
            ))
        });
        // The encoder's error is the cause when both failed.
        encoded?;
        decoded?;
        progress(total);
        Ok(total)
    })
}
