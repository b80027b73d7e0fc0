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
    let value =
        json!({"type": "track", "event": "A", "userId": "u", "timestamp": "2026-03-01T11:00:00Z"});
    let first = Event::from_segment_json(&value, &context()).unwrap();
    let later = IngestContext::at(Timestamp::parse("2026-03-02T00:00:00Z").unwrap());
    let second = Event::from_segment_json(&value, &later).unwrap();
    assert_eq!(first.message_id, second.message_id);
}

#[test]
fn stored_form_round_trips() {
    let value =
        json!({"type": "identify", "userId": "u", "anonymousId": "a", "traits": {"plan": "pro"}});
    let event = Event::from_segment_json(&value, &context()).unwrap();
    let text = serde_json::to_string(&event).unwrap();
    assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
}
