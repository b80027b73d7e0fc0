//! CSV: delimiter sniffed, header row, UTF-8 or Latin-1 cells.

use super::*;

pub(super) fn import_csv(sink: &mut Sink, mut input: Box<dyn BufRead>) -> Result<(), ImportError> {
    let head = input.fill_buf().map_err(|source| ImportError::Io {
        path: sink.report.file.clone(),
        source,
    })?;
    let first_line = head.split(|byte| *byte == b'\n').next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|candidate| first_line.iter().filter(|byte| *byte == candidate).count())
        .unwrap_or(b',');
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(input);
    let malformed = |error: ::csv::Error| ImportError::Malformed {
        file: sink_label(&error),
        detail: error.to_string(),
    };
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(malformed)?
        .iter()
        .map(|header| {
            decode_text(header)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_string()
        })
        .collect();
    let mapping = resolve_mapping(&headers, sink.options, &sink.file_label)?;
    record_mapping(&mut sink.report, &mapping);
    let mut record = ::csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let line = error.position().map_or(0, |position| position.line());
                sink.reject(line, "row", &format!("not valid CSV: {error}"), "")?;
                continue;
            }
        }
        let line = record.position().map_or(0, |position| position.line());
        if record.len() != headers.len() {
            let problem = format!(
                "has {} fields, the header has {}",
                record.len(),
                headers.len()
            );
            let raw = record.iter().map(decode_text).collect::<Vec<_>>().join(",");
            sink.reject(line, "row", &problem, &raw)?;
            continue;
        }
        let fields = headers
            .iter()
            .zip(record.iter())
            .map(|(name, value)| {
                let cell = if value.is_empty() {
                    Cell::NULL
                } else {
                    Cell::Text(match std::str::from_utf8(value) {
                        Ok(text) => Cow::Borrowed(text),
                        Err(_) => Cow::Owned(decode_text(value)),
                    })
                };
                (Cow::Borrowed(name.as_str()), cell)
            })
            .collect();
        sink.push_mapped(RawRow { line, fields }, &mapping)?;
    }
    Ok(())
}

fn sink_label(error: &::csv::Error) -> String {
    error.position().map_or_else(
        || "input".to_string(),
        |position| format!("line {}", position.line()),
    )
}
