//! Parquet: row groups read as Arrow batches, columns mapped like CSV columns.

use super::*;

/// The `parquet` crate panics on some malformed files (an offset + length that overflows in a damaged footer, found
/// by `fuzz/` target `import_parquet`) rather than returning its error; a hostile or damaged file must be refused
/// with a message naming it, never take the process (the server's import endpoint, the CLI) down. Rows read before
/// the failure stay imported, as before any other malformed row.
pub(super) fn import_parquet(sink: &mut Sink, path: &Path) -> Result<(), ImportError> {
    let file = sink.file_label.clone();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_parquet(sink, path)))
        .unwrap_or_else(|panic| {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no reason given".to_string());
            Err(ImportError::Malformed {
                file,
                detail: format!(
                    "not a readable Parquet file: the reader failed on its structure ({reason}); \
                     the file is damaged or was not written by a conforming Parquet writer"
                ),
            })
        })
}

fn read_parquet(sink: &mut Sink, path: &Path) -> Result<(), ImportError> {
    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let file = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_label = sink.file_label.clone();
    let malformed = |detail: String| ImportError::Malformed {
        file: file_label.clone(),
        detail,
    };
    let file_size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|error| malformed(format!("not a readable Parquet file: {error}")))?;
    // Every column chunk must lie inside the file: the reader asserts this instead of returning an error.
    for (g, group) in builder.metadata().row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let length = column.compressed_size();
            let inside = start >= 0
                && length >= 0
                && start
                    .checked_add(length)
                    .is_some_and(|end| end as u64 <= file_size);
            if !inside {
                return Err(malformed(format!(
                    "not a readable Parquet file: its footer puts column {c} of row group {g} at byte {start} with a \
                     length of {length}, outside the file's {file_size} bytes (the file is damaged or cut short)"
                )));
            }
        }
    }
    let columns: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let mapping = resolve_mapping(&columns, sink.options, &sink.file_label)?;
    record_mapping(&mut sink.report, &mapping);
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|error| malformed(error.to_string()))?;
    let options = FormatOptions::default().with_null("");
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|error| malformed(error.to_string()))?;
        sink.bytes_read.store(
            sink.total_bytes * row_number / total_rows,
            Ordering::Relaxed,
        );
        // Strings are read as they are; timestamps of any unit are converted to µs directly, and one with a named
        // zone (`UTC`) loses the name but keeps the value (formatting a named zone would need the time zone
        // database); other types go through arrow's display formatting.
        enum Column<'b> {
            Text(&'b arrow::array::StringArray),
            Micros(arrow::array::TimestampMicrosecondArray),
            Formatted(ArrayFormatter<'b>),
        }
        let readers: Vec<Column> = batch
            .columns()
            .iter()
            .map(|column| {
                use arrow::datatypes::{DataType, TimeUnit};
                Ok(match column.data_type() {
                    DataType::Utf8 => {
                        Column::Text(column.as_any().downcast_ref().expect("a Utf8 column"))
                    }
                    DataType::Timestamp(_, _) => Column::Micros(
                        arrow::compute::cast(
                            column,
                            &DataType::Timestamp(TimeUnit::Microsecond, None),
                        )?
                        .as_any()
                        .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                        .expect("cast to µs timestamps")
                        .clone(),
                    ),
                    _ => Column::Formatted(ArrayFormatter::try_new(column.as_ref(), &options)?),
                })
            })
            .collect::<Result<_, arrow::error::ArrowError>>()
            .map_err(|error| malformed(error.to_string()))?;
        for row in 0..batch.num_rows() {
            row_number += 1;
            let fields = columns
                .iter()
                .zip(&readers)
                .zip(batch.columns())
                .map(|((name, reader), column)| {
                    let cell = if column.is_null(row) {
                        Cell::NULL
                    } else {
                        Cell::Text(match reader {
                            Column::Text(strings) => Cow::Borrowed(strings.value(row)),
                            Column::Micros(times) => {
                                Cow::Owned(Timestamp(times.value(row)).to_rfc3339())
                            }
                            Column::Formatted(formatter) => {
                                Cow::Owned(formatter.value(row).to_string())
                            }
                        })
                    };
                    (Cow::Borrowed(name.as_str()), cell)
                })
                .collect();
            sink.push_mapped(
                RawRow {
                    line: row_number,
                    fields,
                },
                &mapping,
            )?;
        }
    }
    Ok(())
}
