//! Parsing Segment tracking-API request bodies into events, keeping every rejection with its reason.

use serde_json::Value;
use waymark_model::{
    Event, EventType, IngestContext, Timestamp, ValidationError, MAX_BATCH_BYTES, MAX_EVENT_BYTES,
};
use waymark_store::FailedEvent;

/// The result of parsing one request: events to store and events refused (to go to the failed-events log).
#[derive(Debug, Default)]
pub struct ParsedRequest {
    pub events: Vec<Event>,
    pub failed: Vec<FailedEvent>,
    /// For each of `failed` in a batch: its position in the batch (from 0) and its `messageId`, when it has one,
    /// so that a client can tell which of its events were refused.
    pub failed_at: Vec<(usize, Option<String>)>,
    /// The `writeKey` field of the body, when the sender put the key there instead of in basic auth.
    pub write_key: Option<String>,
}

fn failed_event(
    error: &ValidationError,
    raw: &str,
    received_at: Timestamp,
    source: &str,
) -> FailedEvent {
    FailedEvent {
        received_at,
        code: error.code().to_string(),
        message: error.to_string(),
        source: source.to_string(),
        raw: raw.chars().take(64 * 1024).collect(),
    }
}

fn write_key_of(value: &Value) -> Option<String> {
    value
        .get("writeKey")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Parses a single-event call (`/v1/track`, `/v1/identify`, …). The path gives the type when the body has none;
/// a body whose `type` contradicts the path is refused. Errors here reject the whole request.
pub fn parse_single(
    body: &[u8],
    path_type: EventType,
    received_at: Timestamp,
) -> Result<ParsedRequest, ValidationError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(ValidationError::EventTooLarge {
            bytes: body.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    let mut value: Value =
        serde_json::from_slice(body).map_err(|error| ValidationError::InvalidJson {
            detail: error.to_string(),
        })?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ValidationError::InvalidJson {
            detail: "expected a JSON object".into(),
        })?;
    match object.get("type") {
        None | Some(Value::Null) => {
            object.insert("type".into(), Value::String(path_type.as_str().into()));
        }
        Some(Value::String(text)) if EventType::parse(text) == Some(path_type) => {}
        Some(other) => {
            return Err(ValidationError::UnknownType {
                got: format!(
                    "{other} on the /v1/{} endpoint (leave `type` out or make it match)",
                    path_type.as_str()
                ),
            })
        }
    }
    let write_key = write_key_of(&value);
    let context = IngestContext::at(received_at);
    let event = Event::from_segment_value(value, &context)?;
    Ok(ParsedRequest {
        events: vec![event],
        write_key,
        ..ParsedRequest::default()
    })
}

/// Parses a `/v1/batch` body. Request-level problems (not JSON, too large, no `batch` array) reject the request;
/// each invalid event inside a valid batch becomes a [`FailedEvent`] while the valid ones are accepted.
pub fn parse_batch(body: &[u8], received_at: Timestamp) -> Result<ParsedRequest, ValidationError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(ValidationError::BatchTooLarge {
            bytes: body.len(),
            limit: MAX_BATCH_BYTES,
        });
    }
    #[derive(serde::Deserialize)]
    struct BatchBody<'a> {
        #[serde(borrow)]
        batch: Option<Vec<&'a serde_json::value::RawValue>>,
        #[serde(rename = "sentAt")]
        sent_at: Option<Value>,
        #[serde(rename = "writeKey")]
        write_key: Option<Value>,
        context: Option<Value>,
    }
    let parsed: BatchBody =
        serde_json::from_slice(body).map_err(|error| ValidationError::InvalidJson {
            detail: error.to_string(),
        })?;
    let items = parsed.batch.ok_or(ValidationError::MissingBatch)?;
    let batch_sent_at = match &parsed.sent_at {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(
                Timestamp::parse(text).ok_or_else(|| ValidationError::InvalidTimestamp {
                    field: "sentAt".into(),
                    value: text.clone(),
                })?,
            )
        }
        Some(Value::Number(number)) => Some(
            number
                .as_f64()
                .and_then(Timestamp::from_epoch_number)
                .ok_or_else(|| ValidationError::InvalidTimestamp {
                    field: "sentAt".into(),
                    value: number.to_string(),
                })?,
        ),
        Some(_) => {
            return Err(ValidationError::WrongType {
                field: "sentAt".into(),
                expected: "an ISO-8601 string",
                got: "another JSON type",
            })
        }
    };
    let context = IngestContext {
        received_at,
        batch_sent_at,
        default_channel: None,
        allow_placeholder_ids: false,
    };
    let mut request = ParsedRequest {
        write_key: parsed
            .write_key
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_string),
        ..ParsedRequest::default()
    };
    for (index, item) in items.into_iter().enumerate() {
        let raw = item.get();
        if raw.len() > MAX_EVENT_BYTES {
            let error = ValidationError::EventTooLarge {
                bytes: raw.len(),
                limit: MAX_EVENT_BYTES,
            };
            request
                .failed
                .push(failed_event(&error, raw, received_at, "http"));
            request.failed_at.push((index, None));
            continue;
        }
        let mut value: Value = match serde_json::from_str(raw) {
            Ok(value) => value,
            Err(error) => {
                let error = ValidationError::InvalidJson {
                    detail: error.to_string(),
                };
                request
                    .failed
                    .push(failed_event(&error, raw, received_at, "http"));
                request.failed_at.push((index, None));
                continue;
            }
        };
        // A batch-level context (RudderStack sends one) fills in what the event's own context lacks.
        if let (Some(Value::Object(shared)), Some(object)) =
            (&parsed.context, value.as_object_mut())
        {
            if let Value::Object(event_context) = object
                .entry("context")
                .or_insert_with(|| Value::Object(Default::default()))
            {
                for (key, shared_value) in shared {
                    event_context
                        .entry(key.clone())
                        .or_insert_with(|| shared_value.clone());
                }
            }
        }
        let message_id = value
            .get("messageId")
            .and_then(Value::as_str)
            .map(str::to_string);
        match Event::from_segment_value(value, &context) {
            Ok(event) => request.events.push(event),
            Err(error) => {
                request
                    .failed
                    .push(failed_event(&error, raw, received_at, "http"));
                request.failed_at.push((index, message_id));
            }
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-05-01T00:00:00Z").unwrap()
    }

    #[test]
    fn a_batch_keeps_valid_events_and_reports_invalid_ones() {
        let body = br#"{"batch": [
            {"type": "track", "event": "A", "userId": "u1"},
            {"type": "track", "userId": "u1"},
            {"type": "track", "event": "B", "anonymousId": "null"},
            {"type": "page", "name": "Home", "anonymousId": "a1", "timestamp": "not a time"}
        ], "sentAt": "2026-05-01T00:00:00Z"}"#;
        let parsed = parse_batch(body, now()).unwrap();
        assert_eq!(parsed.events.len(), 1);
        let codes: Vec<&str> = parsed
            .failed
            .iter()
            .map(|failed| failed.code.as_str())
            .collect();
        assert_eq!(
            codes,
            [
                "missing_event_name",
                "missing_identifier",
                "invalid_timestamp"
            ]
        );
        let at: Vec<usize> = parsed.failed_at.iter().map(|(index, _)| *index).collect();
        assert_eq!(at, [1, 2, 3], "each refused event's position in the batch");
    }

    #[test]
    fn request_level_problems_reject_the_request() {
        assert_eq!(
            parse_batch(b"{not json", now()).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            parse_batch(br#"{"events": []}"#, now()).unwrap_err().code(),
            "missing_batch"
        );
        let huge = vec![b' '; MAX_BATCH_BYTES + 1];
        assert_eq!(
            parse_batch(&huge, now()).unwrap_err().code(),
            "batch_too_large"
        );
    }

    #[test]
    fn the_path_gives_the_type() {
        let parsed = parse_single(
            br#"{"userId": "u", "traits": {"plan": "pro"}}"#,
            EventType::Identify,
            now(),
        )
        .unwrap();
        assert_eq!(parsed.events[0].event_type, EventType::Identify);
        let mismatch = parse_single(
            br#"{"type": "page", "userId": "u"}"#,
            EventType::Track,
            now(),
        );
        assert_eq!(mismatch.unwrap_err().code(), "unknown_type");
    }
}
