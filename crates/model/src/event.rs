//! The event: one customer interaction in Segment's wire format, validated and normalised on the way in.

use crate::{
    infer_channel, is_junk_identifier, normalise_channel, Identifier, Timestamp, ValidationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest accepted event, in bytes of JSON (Segment's limit).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest accepted batch request, in bytes of JSON (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// The Segment calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    /// Parses `track`, `Track`, … ; `None` for anything else.
    pub fn parse(text: &str) -> Option<EventType> {
        Some(match text.to_ascii_lowercase().as_str() {
            "track" => EventType::Track,
            "identify" => EventType::Identify,
            "page" => EventType::Page,
            "screen" => EventType::Screen,
            "group" => EventType::Group,
            "alias" => EventType::Alias,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }
}

/// What the receiver knows about an incoming event beyond its body.
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// When the event reached us (Segment's `receivedAt`).
    pub received_at: Timestamp,
    /// The `sentAt` of the enclosing batch, applied to events that carry none of their own.
    pub batch_sent_at: Option<Timestamp>,
    /// Channel to use when the event names none (e.g. the channel of an imported file).
    pub default_channel: Option<String>,
    /// Take identifiers as given, without the junk-value guard. For file imports, whose case and customer ids
    /// (`0`, `1`, …) are real keys rather than SDK placeholders.
    pub allow_placeholder_ids: bool,
}

impl IngestContext {
    /// A context for events received at `received_at`, with no batch `sentAt` and no default channel.
    pub fn at(received_at: Timestamp) -> IngestContext {
        IngestContext {
            received_at,
            batch_sent_at: None,
            default_channel: None,
            allow_placeholder_ids: false,
        }
    }
}

/// One normalised interaction. Serialised with Segment's field names; this is also its stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub message_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened, corrected for client clock skew: `timestamp + (receivedAt − sentAt)`.
    pub timestamp: Timestamp,
    /// The timestamp as the client sent it, when it differs from `timestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    pub received_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// The `track` event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The `page` / `screen` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
}

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
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(ValidationError::WrongType {
            field: field.to_string(),
            expected: "a string",
            got: type_name(other),
        }),
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
fn timestamp_text(field: &str, text: &str) -> Result<Timestamp, ValidationError> {
    Timestamp::parse(text).ok_or_else(|| ValidationError::InvalidTimestamp {
        field: field.to_string(),
        value: text.to_string(),
    })
}

/// The error for an event without a usable identifier, naming the placeholder values that were ignored.
fn missing_identifier(junk: &[String]) -> ValidationError {
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
    fn keep_identifier(&self, raw: Option<String>, junk: &mut Vec<String>) -> Option<String> {
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
    fn is_placeholder(&self, text: &str) -> bool {
        (text.trim().is_empty() || !self.allow_placeholder_ids) && is_junk_identifier(text)
    }

    /// When the event happened: the client's time corrected for its clock skew (`timestamp + (receivedAt −
    /// sentAt)`), or the receive time when the client gave none; refused outside 1970–2099.
    fn corrected_time(
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
    fn channel_of(
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

    /// The event with its `messageId`: the one sent, or one derived from the content when none or a blank one was.
    fn with_message_id(mut self, sent: Option<String>) -> Event {
        self.message_id = match sent {
            Some(id) if !id.trim().is_empty() => id,
            _ => self.content_message_id(),
        };
        self
    }

    /// A message id derived from what the event says (not from when it was received), for sources without one.
    pub fn content_message_id(&self) -> String {
        let mut hashed = self.clone();
        hashed.message_id.clear();
        hashed.received_at = Timestamp(0);
        hashed.sent_at = None;
        hashed.original_timestamp = None;
        let bytes = serde_json::to_vec(&hashed).unwrap_or_default();
        format!("wm-{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    }

    /// The identifier the event is filed under: its `userId` when it has one, else its `anonymousId`.
    pub fn primary_identifier(&self) -> Identifier {
        match (&self.user_id, &self.anonymous_id) {
            (Some(user), _) => Identifier::user(user.clone()),
            (None, Some(anonymous)) => Identifier::anonymous(anonymous.clone()),
            (None, None) => unreachable!("validated events always carry an identifier"),
        }
    }

    /// Pairs of identifiers this event says belong to one customer: `userId` with `anonymousId` (any call that
    /// carries both), and `previousId` with `userId` for `alias`.
    pub fn identity_links(&self) -> Vec<(Identifier, Identifier)> {
        let mut links = Vec::new();
        if let (Some(user), Some(anonymous)) = (&self.user_id, &self.anonymous_id) {
            links.push((
                Identifier::user(user.clone()),
                Identifier::anonymous(anonymous.clone()),
            ));
        }
        if let (EventType::Alias, Some(previous), Some(user)) =
            (self.event_type, &self.previous_id, &self.user_id)
        {
            // The previous id may be an earlier userId or an anonymous id; alias both readings.
            links.push((
                Identifier::user(user.clone()),
                Identifier::user(previous.clone()),
            ));
            links.push((
                Identifier::user(user.clone()),
                Identifier::anonymous(previous.clone()),
            ));
        }
        links
    }

    /// The default journey step: the `track` event name, `page:NAME`, `screen:NAME`, or the call type.
    pub fn step(&self) -> String {
        match self.event_type {
            EventType::Track => self.event.clone().unwrap_or_default(),
            EventType::Page | EventType::Screen => {
                let label = self.name.clone().or_else(|| {
                    self.properties
                        .get("path")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
                match label {
                    Some(label) => format!("{}:{label}", self.event_type.as_str()),
                    None => self.event_type.as_str().to_string(),
                }
            }
            other => other.as_str().to_string(),
        }
    }

    /// A short device label for timelines: `context.device.type`/model, else the OS, else the anonymous id.
    pub fn device_label(&self) -> Option<String> {
        let device = self.context.get("device");
        let field = |object: Option<&Value>, key: &str| {
            object
                .and_then(|o| o.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        field(device, "model")
            .or_else(|| field(device, "type"))
            .or_else(|| field(self.context.get("os"), "name"))
            .or_else(|| self.anonymous_id.as_ref().map(|id| format!("device {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// `from_row` makes exactly the event, or the error, that `from_segment_value` makes of the same row as a
        /// Segment object.
        #[test]
        fn rows_become_the_events_their_segment_objects_would(
            message in proptest::sample::select(vec!["imp-00000000000000aa", "", " "]),
            user in proptest::option::of(proptest::sample::select(vec!["ann", "", "  ", "null", "anonymous", "0"])),
            event in proptest::option::of(proptest::sample::select(vec!["A", "", " ", "Order Completed"])),
            time in proptest::sample::select(vec![
                "2026-03-01T11:00:00Z", "", "not a time", "1700000000", "2099-12-31T00:00:00Z", "1969-01-01T00:00:00Z",
            ]),
            channel in proptest::option::of(proptest::sample::select(vec!["web", "Contact Centre", "", "weird"])),
            property in 0usize..3,
            sent in proptest::option::of(proptest::sample::select(vec!["2026-03-01T11:00:05Z"])),
            default_channel in proptest::option::of(proptest::sample::select(vec!["store"])),
            placeholders in proptest::prelude::any::<bool>(),
        ) {
            let properties = match property {
                0 => Map::new(),
                1 => json!({"channel": "SMS"}).as_object().unwrap().clone(),
                _ => json!({"plan": 1, "channel": 7}).as_object().unwrap().clone(),
            };
            let ingest = IngestContext {
                batch_sent_at: sent.map(|text| Timestamp::parse(text).unwrap()),
                default_channel: default_channel.map(str::to_string),
                allow_placeholder_ids: placeholders,
                ..context()
            };
            let mut object = json!({"type": "track", "messageId": message, "properties": properties});
            object["userId"] = user.map_or(Value::Null, |text| Value::String(text.into()));
            object["event"] = event.map_or(Value::Null, |text| Value::String(text.into()));
            object["timestamp"] = Value::String(time.into());
            if let Some(channel) = channel {
                object["context"] = json!({ "channel": channel });
            }
            let row = RowParts {
                message_id: message.to_string(),
                user_id: user.map(str::to_string),
                event: event.map(str::to_string),
                timestamp: time.to_string(),
                channel: channel.map(str::to_string),
                properties,
            };
            proptest::prop_assert_eq!(Event::from_row(row, &ingest), Event::from_segment_value(object, &ingest));
        }
    }

    proptest::proptest! {
        /// Strings are written as serde_json writes them.
        #[test]
        fn json_strings_are_serde_jsons(text in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}])*") {
            let mut out = b"x".to_vec();
            write_json_string(&mut out, &text);
            let expected = serde_json::to_vec(&text).unwrap();
            proptest::prop_assert_eq!(&out[1..], expected.as_slice());
        }
    }

    proptest::proptest! {
        /// `write_row` writes exactly the serialised event `from_row` makes, and declines only the rows it must.
        #[test]
        fn written_rows_are_the_serialised_events(
            message in proptest::sample::select(vec!["imp-00000000000000aa", "", "m\"1"]),
            user in proptest::option::of(proptest::sample::select(vec!["ann", "", "  ", "null", "0", "Zoë \\ \u{1}"])),
            event in proptest::option::of(proptest::sample::select(vec!["A", "", " ", "Order \"Completed\""])),
            time in proptest::sample::select(vec![
                "2026-03-01T11:00:00Z", "", "not a time", "1700000000", "2026-03-01T11:00:00.123456+02:00",
                "2099-12-31T00:00:00Z", "1969-01-01T00:00:00Z",
            ]),
            channel in proptest::option::of(proptest::sample::select(vec!["web", "Contact Centre", "", "weird"])),
            properties in proptest::collection::btree_map(
                proptest::sample::select(vec!["plan", "amount", "channel", "note\u{e9}", "a\"b"]),
                proptest::sample::select(vec![json!("pro"), json!(12.5), json!(7), json!(true), json!("x\ny"), json!({"k": [1]})]),
                0..4,
            ),
            sent in proptest::option::of(proptest::sample::select(vec!["2026-03-01T11:00:05Z"])),
            default_channel in proptest::option::of(proptest::sample::select(vec!["store"])),
            placeholders in proptest::prelude::any::<bool>(),
        ) {
            let ingest = IngestContext {
                batch_sent_at: sent.map(|text| Timestamp::parse(text).unwrap()),
                default_channel: default_channel.map(str::to_string),
                allow_placeholder_ids: placeholders,
                ..context()
            };
            let values: Vec<(String, Vec<u8>)> = properties
                .iter()
                .map(|(name, value)| (name.to_string(), serde_json::to_vec(value).unwrap()))
                .collect();
            let borrowed: Vec<(&str, &[u8])> =
                values.iter().map(|(name, value)| (name.as_str(), value.as_slice())).collect();
            let row = RowRef {
                message_id: message,
                user_id: user,
                event,
                timestamp: time,
                channel,
                properties: &borrowed,
            };
            let mut out = b"kept".to_vec();
            let written = Event::write_row(&row, &ingest, &mut out);
            let parts = RowParts {
                message_id: message.to_string(),
                user_id: user.map(str::to_string),
                event: event.map(str::to_string),
                timestamp: time.to_string(),
                channel: channel.map(str::to_string),
                properties: properties.iter().map(|(name, value)| (name.to_string(), value.clone())).collect(),
            };
            let expected = Event::from_row(parts, &ingest);
            match (written, expected) {
                (Some(written), Ok(event)) => {
                    proptest::prop_assert_eq!(
                        String::from_utf8(out[4..].to_vec()).unwrap(),
                        serde_json::to_string(&event).unwrap()
                    );
                    proptest::prop_assert_eq!(written, WrittenRow { timestamp: event.timestamp, channel: event.channel });
                }
                (None, expected) => {
                    proptest::prop_assert_eq!(&out, b"kept");
                    let must_decline = expected.is_err() || message.trim().is_empty() || properties.contains_key("channel");
                    proptest::prop_assert!(must_decline, "declined a row from_row takes: {:?}", row);
                }
                (Some(_), Err(error)) => proptest::prop_assert!(false, "wrote a row from_row refuses: {}", error),
            }
        }
    }

    fn context() -> IngestContext {
        IngestContext::at(Timestamp::parse("2026-03-01T12:00:10Z").unwrap())
    }

    #[test]
    fn clock_skew_is_corrected_from_sent_at() {
        let value = json!({"type": "track", "event": "A", "userId": "u",
            "timestamp": "2026-03-01T11:00:00Z", "sentAt": "2026-03-01T11:00:05Z"});
        let event = Event::from_segment_json(&value, &context()).unwrap();
        // The client clock is 1h05s behind the server; the event happened 5 s before it was sent.
        assert_eq!(
            event.timestamp,
            Timestamp::parse("2026-03-01T12:00:05Z").unwrap()
        );
        assert_eq!(
            event.original_timestamp,
            Timestamp::parse("2026-03-01T11:00:00Z")
        );
    }

    #[test]
    fn junk_identifiers_leave_the_event_without_identity() {
        let value =
            json!({"type": "track", "event": "A", "userId": "undefined", "anonymousId": "null"});
        let error = Event::from_segment_json(&value, &context()).unwrap_err();
        assert_eq!(error.code(), "missing_identifier");
        assert!(error.to_string().contains("undefined"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let value = json!({"type": "track", "event": "A", "userId": "u", "properties": [1, 2]});
        let error = Event::from_segment_json(&value, &context()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "field `properties` must be an object, got an array"
        );
    }

    #[test]
    fn channel_comes_from_context_then_properties_then_inference() {
        let with_context = json!({"type": "track", "event": "A", "userId": "u", "context": {"channel": "Contact Centre"}});
        assert_eq!(
            Event::from_segment_json(&with_context, &context())
                .unwrap()
                .channel,
            "call_center"
        );
        let page = json!({"type": "page", "name": "Pricing", "anonymousId": "a"});
        let page = Event::from_segment_json(&page, &context()).unwrap();
        assert_eq!(
            (page.channel.as_str(), page.step().as_str()),
            ("web", "page:Pricing")
        );
    }

    #[test]
    fn missing_message_id_is_derived_from_content() {
        let value = json!({"type": "track", "event": "A", "userId": "u", "timestamp": "2026-03-01T11:00:00Z"});
        let first = Event::from_segment_json(&value, &context()).unwrap();
        let later = IngestContext::at(Timestamp::parse("2026-03-02T00:00:00Z").unwrap());
        let second = Event::from_segment_json(&value, &later).unwrap();
        assert_eq!(first.message_id, second.message_id);
    }

    #[test]
    fn stored_form_round_trips() {
        let value = json!({"type": "identify", "userId": "u", "anonymousId": "a", "traits": {"plan": "pro"}});
        let event = Event::from_segment_json(&value, &context()).unwrap();
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
    }
}
