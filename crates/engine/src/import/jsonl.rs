//! JSON Lines: Segment events, or flat rows mapped like CSV columns.

use super::*;

pub(super) fn import_jsonl(sink: &mut Sink, input: Box<dyn BufRead>) -> Result<(), ImportError> {
    let mut mapping: Option<Mapping> = None;
    for (index, line) in input.split(b'\n').enumerate() {
        let line_number = index as u64 + 1;
        let bytes = line.map_err(|source| ImportError::Io {
            path: sink.report.file.clone(),
            source,
        })?;
        let text = decode_text(&bytes);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(Value::Object(object)) => Value::Object(object),
            Ok(_) => {
                sink.reject(line_number, "line", "is not a JSON object", text)?;
                continue;
            }
            Err(error) => {
                sink.reject(
                    line_number,
                    "line",
                    &format!("is not valid JSON: {error}"),
                    text,
                )?;
                continue;
            }
        };
        let is_segment = ["userId", "anonymousId", "type"]
            .iter()
            .any(|key| value.get(key).is_some());
        if is_segment {
            sink.report.rows += 1;
            let mut value = value;
            if value.get("type").is_none() {
                value["type"] = Value::String("track".into());
            }
            if value.get("messageId").is_none() {
                value["messageId"] = Value::String(sink.message_id(line_number, text.as_bytes()));
            }
            let field_of = |error: &ValidationError| match error {
                ValidationError::WrongType { field, .. }
                | ValidationError::InvalidTimestamp { field, .. } => field.clone(),
                ValidationError::MissingIdentifier { .. } => "userId".into(),
                ValidationError::MissingEventName => "event".into(),
                ValidationError::UnknownType { .. } => "type".into(),
                _ => "event".into(),
            };
            sink.push_json(line_number, value, &|| text.to_string(), &field_of)?;
        } else {
            let object = value.as_object().expect("checked above");
            if mapping.is_none() {
                let columns: Vec<String> = object.keys().cloned().collect();
                let resolved = resolve_mapping(&columns, sink.options, &sink.file_label)?;
                record_mapping(&mut sink.report, &resolved);
                mapping = Some(resolved);
            }
            let fields = object
                .iter()
                .map(|(key, value)| {
                    (
                        Cow::Borrowed(key.as_str()),
                        Cell::Json(Cow::Borrowed(value)),
                    )
                })
                .collect();
            sink.push_mapped(
                RawRow {
                    line: line_number,
                    fields,
                },
                mapping.as_ref().expect("set above"),
            )?;
        }
    }
    Ok(())
}
