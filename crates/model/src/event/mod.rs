//! The event: one customer interaction in Segment's wire format, validated and normalised on the way in
//! ([`validate`]: Segment JSON objects; [`row`]: imported rows), and its stored form (its serialisation).

use crate::{Identifier, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest accepted event, in bytes of JSON (Segment's limit).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest accepted batch request, in bytes of JSON (Segment's limit).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// The steps of Segment's identity calls (`identify`, `alias`, `group`): they say who the customer is, not what
/// they did, so analyses that look for what customers did leave them out unless asked for by name.
pub const IDENTITY_STEPS: [&str; 3] = ["identify", "alias", "group"];

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

mod row;
#[cfg(test)]
mod tests;
mod validate;

pub use row::{write_json_string, RowParts, RowRef, WrittenRow};

impl Event {
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
