//! Events on their way in: an `EventBatch` of stored payloads and the keys the writer needs (dedup hash, identifiers, step, channel, time).

use super::*;

/// Events on their way into the store, in order. Each is either already in stored form, written by the caller
/// ([`EventBatch::push_row`], an import's fast path), or an [`Event`] that [`Store::append_batch`] serialises on
/// the calling thread, so that serialisation runs on the callers' threads instead of on the single writer. The
/// writer gets each event's keys (with the dedup hash) and stored form; the payloads share buffers, like a table's.
#[derive(Default)]
pub struct EventBatch {
    pub(crate) payloads: Payloads,
    pub(crate) keys: Vec<EventKeys>,
    /// Events still to serialise, with their rows.
    pub(crate) deferred: Vec<(usize, Event)>,
}

impl EventBatch {
    pub fn with_capacity(events: usize) -> EventBatch {
        EventBatch {
            payloads: Payloads::default(),
            keys: Vec::with_capacity(events),
            deferred: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds an event, serialised when the batch is appended.
    pub fn push_event(&mut self, event: Event) {
        self.deferred.push((self.keys.len(), event));
        self.payloads.push_later();
        self.keys.push(EventKeys::later());
    }

    /// Adds a mapped row's `track` event in stored form: `payload` is what [`Event::write_row`] wrote for `row`, and
    /// `written` what it returned. `id_hash` is the 64-bit hash its derived `messageId` was made from
    /// ([`derived_message_id`]).
    pub fn push_row(
        &mut self,
        row: &RowRef<'_>,
        id_hash: u64,
        written: WrittenRow,
        payload: &[u8],
    ) {
        debug_assert_eq!(id_hash, message_hash(row.message_id));
        self.payloads.push(payload);
        self.keys.push(EventKeys {
            message_id: row.message_id.to_string(),
            hash: id_hash,
            event_type: waymark_model::EventType::Track,
            timestamp: written.timestamp,
            primary: ["user:", row.user_id.unwrap_or_default()].concat(),
            links: Vec::new(),
            step: row.event.unwrap_or_default().to_string(),
            channel: written.channel,
        });
    }

    /// Serialises the deferred events into their rows.
    pub(crate) fn prepare(&mut self) {
        // Each payload is written into one reusable buffer and copied into the shared ones.
        let mut scratch = Vec::with_capacity(4096);
        for (row, event) in std::mem::take(&mut self.deferred) {
            scratch.clear();
            serde_json::to_writer(&mut scratch, &event).expect("events serialise");
            self.payloads.fill(row, &scratch);
            self.keys[row] = EventKeys::of(&event);
        }
    }
}

/// What the writer thread needs of an event besides its payload, taken on the caller's thread: the writer then
/// neither walks nor frees the event's property maps (freeing them was a tenth of its time during imports).
pub(crate) struct EventKeys {
    pub(crate) message_id: String,
    pub(crate) hash: u64,
    pub(crate) event_type: waymark_model::EventType,
    pub(crate) timestamp: Timestamp,
    /// The key of the identifier the event is stored under.
    pub(crate) primary: String,
    /// Keys of the identifiers the event links (`identify`, `alias`, a user and an anonymous id together).
    pub(crate) links: Vec<(String, String)>,
    pub(crate) step: String,
    pub(crate) channel: String,
}

impl EventKeys {
    /// Stands in for the keys of an event not serialised yet (no allocation).
    pub(crate) fn later() -> EventKeys {
        EventKeys {
            message_id: String::new(),
            hash: 0,
            event_type: waymark_model::EventType::Track,
            timestamp: Timestamp(0),
            primary: String::new(),
            links: Vec::new(),
            step: String::new(),
            channel: String::new(),
        }
    }

    pub(crate) fn of(event: &Event) -> EventKeys {
        EventKeys {
            message_id: event.message_id.clone(),
            hash: message_hash(&event.message_id),
            event_type: event.event_type,
            timestamp: event.timestamp,
            primary: event.primary_identifier().key(),
            links: event
                .identity_links()
                .into_iter()
                .map(|(a, b)| (a.key(), b.key()))
                .collect(),
            step: event.step(),
            channel: event.channel.clone(),
        }
    }
}
