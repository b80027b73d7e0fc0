//! Validating and normalising a Segment-spec JSON object into an [`Event`].

use super::{Event, EventType, IngestContext};
use crate::{infer_channel, is_junk_identifier, normalise_channel, Timestamp, ValidationError};
use serde_json::{Map, Value};

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field; numbers are accepted and turned into text (SDKs send numeric user ids).
fn optional_id(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ValidationError> {
    match object.get(field) {
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        _ => optional_string(object, field),
    }
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ValidationError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(ValidationError::WrongType {
            field: field.to_string(),
            expected: "a string",
            got: type_name(other),
        }),
    }
}

/// Moves an object field out of `object` (no copy of the map).
fn take_object(
    object: &mut Map<String, Value>,
    field: &str,
) -> Result<Map<String, Value>, ValidationError> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(ValidationError::WrongType {
            field: field.to_string(),
            expected: "an object",
            got: type_name(&other),
        }),
    }
}

fn optional_timestamp(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Timestamp>, ValidationError> {
    let invalid = |value: String| ValidationError::InvalidTimestamp {
        field: field.to_string(),
        value,
    };
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => timestamp_text(field, text).map(Some),
        Some(Value::Number(number)) => number
            .as_f64()
            .and_then(Timestamp::from_epoch_number)
            .map(Some)
            .ok_or_else(|| invalid(number.to_string())),
        Some(other) => Err(ValidationError::WrongType {
            field: field.to_string(),
            expected: "an ISO-8601 string",
            got: type_name(other),
        }),
    }
}

/// A timestamp sent as text in `field` (ISO-8601 or epoch seconds).
pub(super) fn timestamp_text(field: &str, text: &str) -> Result<Timestamp, ValidationError> {
    Timestamp::parse(text).ok_or_else(|| ValidationError::InvalidTimestamp {
        field: field.to_string(),
        value: text.to_string(),
    })
}

/// The error for an event without a usable identifier, naming the placeholder values that were ignored.
pub(super) fn missing_identifier(junk: &[String]) -> ValidationError {
    let junk = if junk.is_empty() {
        String::new()
    } else {
        format!(" (ignored placeholder values {junk:?})")
    };
    ValidationError::MissingIdentifier { junk }
}

impl IngestContext {
    /// An identifier as sent, or `None` (noted in `junk`) when it is a placeholder: imports may use any
    /// non-blank id; the collector refuses the junk list too.
    pub(super) fn keep_identifier(
        &self,
        raw: Option<String>,
        junk: &mut Vec<String>,
    ) -> Option<String> {
        match raw {
            Some(text) if self.is_placeholder(&text) => {
                junk.push(text);
                None
            }
            other => other,
        }
    }

    /// Whether an identifier is refused as a placeholder: blank always, the junk list unless placeholders are
    /// allowed.
    pub(super) fn is_placeholder(&self, text: &str) -> bool {
        (text.trim().is_empty() || !self.allow_placeholder_ids) && is_junk_identifier(text)
    }

    /// When the event happened: the client's time corrected for its clock skew (`timestamp + (receivedAt −
    /// sentAt)`), or the receive time when the client gave none; refused outside 1970–2099.
    pub(super) fn corrected_time(
        &self,
        explicit: Option<Timestamp>,
        sent_at: Option<Timestamp>,
    ) -> Result<Timestamp, ValidationError> {
        let timestamp = match (explicit, sent_at) {
            (Some(client_time), Some(sent)) => {
                Timestamp(client_time.micros() + (self.received_at.micros() - sent.micros()))
            }
            (Some(client_time), None) => client_time,
            (None, _) => self.received_at,
        };
        if !(0..4_102_444_800_000_000).contains(&timestamp.micros()) {
            return Err(ValidationError::InvalidTimestamp {
                field: "timestamp".to_string(),
                value: format!("{} after clock-skew correction", timestamp.micros()),
            });
        }
        Ok(timestamp)
    }

    /// The event's channel: the stated one (`context.channel`), else `properties.channel`, else the import's
    /// default, else inferred from the call type and library.
    pub(super) fn channel_of(
        &self,
        stated: Option<&str>,
        properties: &Map<String, Value>,
        event_type: EventType,
        library_name: Option<&str>,
    ) -> String {
        stated
            .and_then(normalise_channel)
            .or_else(|| {
                properties
                    .get("channel")
                    .and_then(Value::as_str)
                    .and_then(normalise_channel)
            })
            .or_else(|| self.default_channel.clone())
            .unwrap_or_else(|| infer_channel(event_type, library_name).to_string())
    }
}

impl Event {
    /// Validates a Segment-spec JSON object and normalises it: identifiers checked against the junk list,
    /// clock skew corrected, channel resolved (`context.channel`, then `properties.channel`, then the import's
    /// default, then inferred from the call type and library). A missing `messageId` is derived from the content,
    /// so a retried identical event is still stored once.
    ///
    /// Borrowing form of [`Event::from_segment_value`], which callers that own the JSON should prefer: it moves
    /// `properties`, `traits` and `context` into the event instead of copying them.
    pub fn from_segment_json(
        value: &Value,
        ingest: &IngestContext,
    ) -> Result<Event, ValidationError> {
        Event::from_segment_value(value.clone(), ingest)
    }

    /// [`Event::from_segment_json`], consuming the JSON.
    pub fn from_segment_value(
        value: Value,
        ingest: &IngestContext,
    ) -> Result<Event, ValidationError> {
        let mut object = match value {
            Value::Object(object) => object,
            other => {
                return Err(ValidationError::InvalidJson {
                    detail: format!("expected an object, got {}", type_name(&other)),
                })
            }
        };
        let object = &mut object;
        let type_text = optional_string(object, "type")?;
        let event_type = match type_text.as_deref().and_then(EventType::parse) {
            Some(event_type) => event_type,
            None => {
                return Err(ValidationError::UnknownType {
                    got: type_text.map_or("missing".to_string(), |text| format!("{text:?}")),
                })
            }
        };
        let raw_user_id = optional_id(object, "userId")?;
        let raw_anonymous_id = optional_id(object, "anonymousId")?;
        let mut junk = Vec::new();
        let user_id = ingest.keep_identifier(raw_user_id, &mut junk);
        let anonymous_id = ingest.keep_identifier(raw_anonymous_id, &mut junk);
        let previous_id = ingest.keep_identifier(optional_id(object, "previousId")?, &mut junk);
        let event = optional_string(object, "event")?.filter(|text| !text.trim().is_empty());
        let name = optional_string(object, "name")?.filter(|text| !text.trim().is_empty());
        let group_id = optional_id(object, "groupId")?;
        let properties = take_object(object, "properties")?;
        let traits = take_object(object, "traits")?;
        let context = take_object(object, "context")?;
        let explicit_timestamp = match optional_timestamp(object, "timestamp")? {
            Some(timestamp) => Some(timestamp),
            None => optional_timestamp(object, "originalTimestamp")?,
        };
        let sent_at = optional_timestamp(object, "sentAt")?.or(ingest.batch_sent_at);

        if user_id.is_none() && anonymous_id.is_none() {
            return Err(missing_identifier(&junk));
        }
        match event_type {
            EventType::Track if event.is_none() => return Err(ValidationError::MissingEventName),
            EventType::Alias if previous_id.is_none() || user_id.is_none() => {
                return Err(ValidationError::MissingPreviousId)
            }
            EventType::Group if group_id.as_deref().is_none_or(|id| id.trim().is_empty()) => {
                return Err(ValidationError::MissingGroupId)
            }
            _ => {}
        }
        let timestamp = ingest.corrected_time(explicit_timestamp, sent_at)?;

        let library_name = context
            .get("library")
            .and_then(|library| library.get("name"))
            .and_then(Value::as_str);
        let channel = ingest.channel_of(
            context.get("channel").and_then(Value::as_str),
            &properties,
            event_type,
            library_name,
        );

        let normalised = Event {
            message_id: String::new(),
            event_type,
            timestamp,
            original_timestamp: explicit_timestamp.filter(|original| *original != timestamp),
            sent_at,
            received_at: ingest.received_at,
            user_id,
            anonymous_id,
            event,
            name,
            channel,
            properties,
            traits,
            context,
            group_id,
            previous_id,
        };
        Ok(normalised.with_message_id(optional_id(object, "messageId")?))
    }
}
