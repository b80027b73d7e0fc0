//! Imported rows: a row already split into the roles of a `track` event, validated or written straight to its
//! stored form.

use super::validate::{missing_identifier, timestamp_text};
use super::{Event, EventType, IngestContext};
use crate::{Timestamp, ValidationError};
use serde_json::{Map, Value};

/// An imported row split into the roles of a `track` event (see [`Event::from_row`]).
#[derive(Debug, Clone, Default)]
pub struct RowParts {
    pub message_id: String,
    /// The customer column.
    pub user_id: Option<String>,
    /// The step column.
    pub event: Option<String>,
    /// The time column as written (a row without a time has `""`, which is refused).
    pub timestamp: String,
    /// The channel column as written.
    pub channel: Option<String>,
    pub properties: Map<String, Value>,
}

/// Appends `text` as a JSON string, exactly as `serde_json` writes it (which escapes only `"`, `\\` and control
/// characters): copied as it is when it needs no escape, the usual case, else written by `serde_json`.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
    {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("strings serialise");
    }
}

/// A mapped row borrowed, for [`Event::write_row`]: what [`RowParts`] holds, with each property already written
/// as JSON.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub message_id: &'a str,
    pub user_id: Option<&'a str>,
    pub event: Option<&'a str>,
    pub timestamp: &'a str,
    pub channel: Option<&'a str>,
    /// (name, value as JSON) of each property, sorted by name without repeats, no nulls.
    pub properties: &'a [(&'a str, &'a [u8])],
}

/// What the store needs of a row written by [`Event::write_row`] besides its stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenRow {
    pub timestamp: Timestamp,
    pub channel: String,
}

impl Event {
    /// Appends to `out` what serialising `Event::from_row` of the same row writes, byte for byte, without building
    /// the event (its maps and strings were a third of a bulk import's work). `None`, with `out` unchanged, when
    /// the row needs [`Event::from_row`]: it is invalid (`from_row` says why), its message id is blank, or it has
    /// a `channel` property (which can set the channel).
    pub fn write_row(
        row: &RowRef<'_>,
        ingest: &IngestContext,
        out: &mut Vec<u8>,
    ) -> Option<WrittenRow> {
        let user_id = row.user_id.filter(|id| !ingest.is_placeholder(id))?;
        let event = row.event.filter(|text| !text.trim().is_empty())?;
        if row.message_id.trim().is_empty()
            || row.properties.iter().any(|(name, _)| *name == "channel")
        {
            return None;
        }
        let explicit = Timestamp::parse(row.timestamp)?;
        let timestamp = ingest
            .corrected_time(Some(explicit), ingest.batch_sent_at)
            .ok()?;
        let channel = ingest.channel_of(row.channel, &Map::new(), EventType::Track, None);
        // Field order and forms as `Event`'s derived `Serialize` writes them.
        let number = |out: &mut Vec<u8>, time: Timestamp| {
            serde_json::to_writer(&mut *out, &time.micros()).expect("integers serialise");
        };
        out.extend_from_slice(b"{\"messageId\":");
        write_json_string(out, row.message_id);
        out.extend_from_slice(b",\"type\":\"track\",\"timestamp\":");
        number(out, timestamp);
        if explicit != timestamp {
            out.extend_from_slice(b",\"originalTimestamp\":");
            number(out, explicit);
        }
        if let Some(sent_at) = ingest.batch_sent_at {
            out.extend_from_slice(b",\"sentAt\":");
            number(out, sent_at);
        }
        out.extend_from_slice(b",\"receivedAt\":");
        number(out, ingest.received_at);
        out.extend_from_slice(b",\"userId\":");
        write_json_string(out, user_id);
        out.extend_from_slice(b",\"event\":");
        write_json_string(out, event);
        out.extend_from_slice(b",\"channel\":");
        write_json_string(out, &channel);
        if !row.properties.is_empty() {
            out.extend_from_slice(b",\"properties\":{");
            for (index, (name, value)) in row.properties.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_json_string(out, name);
                out.push(b':');
                out.extend_from_slice(value);
            }
            out.push(b'}');
        }
        if let Some(raw) = row.channel {
            out.extend_from_slice(b",\"context\":{\"channel\":");
            write_json_string(out, raw);
            out.push(b'}');
        }
        out.push(b'}');
        Some(WrittenRow { timestamp, channel })
    }

    /// A `track` event from an imported row already split into roles: the same event, or the same error, that
    /// [`Event::from_segment_value`] makes of `{"type": "track", "messageId", "userId", "event", "timestamp",
    /// "properties", "context": {"channel"}}` (absent customer and step as `null`, the time as the text it is, no
    /// context without a channel), without
    /// building and taking apart that object for every row. Checks come in the same order.
    pub fn from_row(row: RowParts, ingest: &IngestContext) -> Result<Event, ValidationError> {
        let mut junk = Vec::new();
        let user_id = ingest.keep_identifier(row.user_id, &mut junk);
        let event = row.event.filter(|text| !text.trim().is_empty());
        let explicit_timestamp = Some(timestamp_text("timestamp", &row.timestamp)?);
        let sent_at = ingest.batch_sent_at;
        if user_id.is_none() {
            return Err(missing_identifier(&junk));
        }
        if event.is_none() {
            return Err(ValidationError::MissingEventName);
        }
        let timestamp = ingest.corrected_time(explicit_timestamp, sent_at)?;
        let channel = ingest.channel_of(
            row.channel.as_deref(),
            &row.properties,
            EventType::Track,
            None,
        );
        let mut context = Map::new();
        if let Some(raw) = row.channel {
            context.insert("channel".to_string(), Value::String(raw));
        }
        let normalised = Event {
            message_id: String::new(),
            event_type: EventType::Track,
            timestamp,
            original_timestamp: explicit_timestamp.filter(|original| *original != timestamp),
            sent_at,
            received_at: ingest.received_at,
            user_id,
            anonymous_id: None,
            event,
            name: None,
            channel,
            properties: row.properties,
            traits: Map::new(),
            context,
            group_id: None,
            previous_id: None,
        };
        Ok(normalised.with_message_id(Some(row.message_id)))
    }
}
