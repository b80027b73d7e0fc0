//! The one borrowed view of a stored event, read by the Parquet export and by the property columns of the journey
//! view. A stored payload is [`waymark_model::Event`]'s serialisation, so its maps stay the JSON text they are
//! stored as (exactly what serialising the parsed map gives), strings without escapes are not copied, and every
//! field is scanned once.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use waymark_model::{EventType, Timestamp};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredEvent<'a> {
    #[serde(borrow)]
    pub(crate) message_id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub(crate) event_type: EventType,
    pub(crate) timestamp: Timestamp,
    #[serde(default)]
    pub(crate) original_timestamp: Option<Timestamp>,
    #[serde(default)]
    pub(crate) sent_at: Option<Timestamp>,
    pub(crate) received_at: Timestamp,
    #[serde(borrow, default)]
    pub(crate) user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) channel: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) traits: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) group_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) previous_id: Option<Cow<'a, str>>,
}

impl<'a> StoredEvent<'a> {
    /// Parses a stored payload.
    pub(crate) fn parse(payload: &'a [u8]) -> serde_json::Result<StoredEvent<'a>> {
        serde_json::from_slice(payload)
    }

    /// A map field as its stored JSON text; an empty map is absent (it is not serialised, and a stored `{}` would
    /// mean the same).
    pub(crate) fn map_text(map: Option<&'a RawValue>) -> Option<&'a str> {
        map.map(RawValue::get).filter(|text| *text != "{}")
    }

    /// A map field (`properties`, `traits`, `context`) as its stored JSON text: `Some(None)` when the event has
    /// none, `None` when `name` is no map field.
    pub(crate) fn map_field(&self, name: &str) -> Option<Option<&'a RawValue>> {
        match name {
            "properties" => Some(self.properties),
            "traits" => Some(self.traits),
            "context" => Some(self.context),
            _ => None,
        }
    }

    /// A top-level field by its Segment name (`channel`, `context`, `userId`, …) as a JSON value: the maps parsed
    /// from their text, the scalars as they are stored (times as epoch microseconds).
    pub(crate) fn field(&self, name: &str) -> serde_json::Result<Option<Value>> {
        let text = |value: &Option<Cow<'a, str>>| value.as_deref().map(Value::from);
        let time = |value: Option<Timestamp>| value.map(|time| Value::from(time.micros()));
        let map = |raw: Option<&'a RawValue>| raw.map(|raw| serde_json::from_str(raw.get()));
        Ok(match name {
            "properties" => map(self.properties).transpose()?,
            "traits" => map(self.traits).transpose()?,
            "context" => map(self.context).transpose()?,
            "messageId" => Some(Value::from(self.message_id.as_ref())),
            "type" => Some(Value::from(self.event_type.as_str())),
            "timestamp" => time(Some(self.timestamp)),
            "originalTimestamp" => time(self.original_timestamp),
            "sentAt" => time(self.sent_at),
            "receivedAt" => time(Some(self.received_at)),
            "channel" => Some(Value::from(self.channel.as_ref())),
            "userId" => text(&self.user_id),
            "anonymousId" => text(&self.anonymous_id),
            "event" => text(&self.event),
            "name" => text(&self.name),
            "groupId" => text(&self.group_id),
            "previousId" => text(&self.previous_id),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_model::{Event, IngestContext};

    fn stored(json: Value) -> Vec<u8> {
        let context = IngestContext::at(Timestamp(1_700_000_000_000_000));
        serde_json::to_vec(&Event::from_segment_json(&json, &context).unwrap()).unwrap()
    }

    /// Every top-level field of the stored form is read by name with the value the full parse gives.
    #[test]
    fn each_field_reads_as_the_full_parse_does() {
        let payload = stored(serde_json::json!({
            "type": "alias", "messageId": "m\"1", "userId": "u1", "anonymousId": "a1", "previousId": "p1",
            "timestamp": "2026-01-02T03:04:05Z", "sentAt": "2026-01-02T03:04:06Z",
            "properties": {"plan": "pro", "n": 2}, "traits": {"tier": 1},
            "context": {"channel": "web", "os": {"name": "iOS"}}, "groupId": "g1", "name": "Home"
        }));
        let full: Value = serde_json::from_slice(&payload).unwrap();
        let view = StoredEvent::parse(&payload).unwrap();
        let object = full.as_object().unwrap();
        for (name, value) in object {
            assert_eq!(view.field(name).unwrap().as_ref(), Some(value), "{name}");
        }
        assert_eq!(view.field("missing").unwrap(), None);
        assert!(
            matches!(view.message_id, Cow::Owned(_)),
            "escaped text is unescaped"
        );
        assert!(matches!(view.channel, Cow::Borrowed("web")));
        assert_eq!(
            StoredEvent::map_text(view.properties),
            Some(r#"{"n":2,"plan":"pro"}"#)
        );
    }
}
