//! XES (the IEEE process-mining log format): traces as customers, events with their typed attributes.

use super::*;

/// XES: `<trace>`s of `<event>`s with typed attributes. The trace's `concept:name` is the customer, the event's
/// `concept:name` the step, `time:timestamp` the time; other event attributes become properties and trace
/// attributes become `case:` properties. `--customer/--step/--time` name other attribute keys.
pub(super) fn import_xes(sink: &mut Sink, input: Box<dyn BufRead>) -> Result<(), ImportError> {
    use quick_xml::events::Event as Xml;
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buffer = Vec::new();
    let customer_key = sink
        .options
        .customer_column
        .clone()
        .unwrap_or_else(|| "concept:name".into());
    let step_key = sink
        .options
        .step_column
        .clone()
        .unwrap_or_else(|| "concept:name".into());
    let time_key = sink
        .options
        .time_column
        .clone()
        .unwrap_or_else(|| "time:timestamp".into());
    // Trace attributes are presented as `case:KEY` fields, so the customer is always `case:concept:name`.
    let mapping = Mapping {
        customer: "case:concept:name".into(),
        step: step_key,
        time: time_key,
        channel: sink.options.channel_column.clone(),
    };
    record_mapping(&mut sink.report, &mapping);
    sink.report.customer_column = Some(format!("trace attribute {customer_key}"));
    // Depth of elements we are skipping (e.g. <global> defaults, nested attribute lists).
    let mut skip_depth = 0usize;
    let mut in_trace = false;
    let mut in_event = false;
    let mut trace_attributes: Vec<(String, Value)> = Vec::new();
    let mut trace_events: Vec<(u64, Vec<(String, Value)>)> = Vec::new();
    let mut event_attributes: Vec<(String, Value)> = Vec::new();
    let mut n_events = 0u64;
    loop {
        let position = reader.buffer_position();
        let event =
            reader
                .read_event_into(&mut buffer)
                .map_err(|error| ImportError::Malformed {
                    file: sink.file_label.clone(),
                    detail: format!("XML error at byte {position}: {error}"),
                })?;
        match event {
            Xml::Eof => break,
            Xml::Start(_) if skip_depth > 0 => skip_depth += 1,
            Xml::Empty(_) if skip_depth > 0 => {}
            Xml::End(_) if skip_depth > 0 => skip_depth -= 1,
            Xml::Start(element) => match element.name().as_ref() {
                "trace" => {
                    in_trace = true;
                    trace_attributes.clear();
                    trace_events.clear();
                }
                "event" if in_trace => {
                    in_event = true;
                    event_attributes.clear();
                }
                "log" => {}
                _ => {
                    // A container attribute (list, container) or log-level element with children: skip its children,
                    // but keep a container attribute's own value if it has one.
                    if let Some(attribute) = xes_attribute(&element) {
                        push_attribute(
                            in_event,
                            in_trace,
                            attribute,
                            &mut event_attributes,
                            &mut trace_attributes,
                        );
                    }
                    skip_depth = 1;
                }
            },
            Xml::Empty(element) => {
                if let Some(attribute) = xes_attribute(&element) {
                    push_attribute(
                        in_event,
                        in_trace,
                        attribute,
                        &mut event_attributes,
                        &mut trace_attributes,
                    );
                }
            }
            Xml::End(element) => {
                match element.name().as_ref() {
                    "event" if in_event => {
                        in_event = false;
                        n_events += 1;
                        trace_events.push((n_events, std::mem::take(&mut event_attributes)));
                    }
                    "trace" => {
                        in_trace = false;
                        let case_id = trace_attributes
                            .iter()
                            .find(|(key, _)| *key == customer_key)
                            .map(|(_, value)| value.clone())
                            .unwrap_or(Value::Null);
                        for (event_number, attributes) in trace_events.drain(..) {
                            let mut fields =
                                Vec::with_capacity(attributes.len() + trace_attributes.len() + 1);
                            fields.push((
                                Cow::Borrowed("case:concept:name"),
                                Cell::Json(Cow::Borrowed(&case_id)),
                            ));
                            for (key, value) in &trace_attributes {
                                if *key != customer_key {
                                    fields.push((
                                        Cow::Owned(format!("case:{key}")),
                                        Cell::Json(Cow::Borrowed(value)),
                                    ));
                                }
                            }
                            fields.extend(attributes.into_iter().map(|(key, value)| {
                                (Cow::Owned(key), Cell::Json(Cow::Owned(value)))
                            }));
                            sink.push_mapped(
                                RawRow {
                                    line: event_number,
                                    fields,
                                },
                                &mapping,
                            )?;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        buffer.clear();
    }
    Ok(())
}

fn push_attribute(
    in_event: bool,
    in_trace: bool,
    attribute: (String, Value),
    event: &mut Vec<(String, Value)>,
    trace: &mut Vec<(String, Value)>,
) {
    if in_event {
        event.push(attribute);
    } else if in_trace {
        trace.push(attribute);
    }
}

/// A typed XES attribute element (`<string key=… value=…/>`, `date`, `int`, `float`, `boolean`, `id`).
fn xes_attribute(element: &quick_xml::events::BytesStart) -> Option<(String, Value)> {
    let kind = element.name().as_ref().to_string();
    if !matches!(
        kind.as_str(),
        "string" | "date" | "int" | "float" | "boolean" | "id"
    ) {
        return None;
    }
    let mut key = None;
    let mut value = None;
    for attribute in element.attributes().flatten() {
        let text = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|cow| cow.into_owned())
            .unwrap_or_else(|_| attribute.value.to_string());
        match attribute.key.as_ref() {
            "key" => key = Some(text),
            "value" => value = Some(text),
            _ => {}
        }
    }
    let value = value?;
    let typed = match kind.as_str() {
        "int" => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(value)),
        "float" => value
            .parse::<f64>()
            .ok()
            .and_then(|number| serde_json::Number::from_f64(number).map(Value::Number))
            .unwrap_or(Value::String(value)),
        "boolean" => value
            .parse::<bool>()
            .map(Value::Bool)
            .unwrap_or(Value::String(value)),
        _ => Value::String(value),
    };
    Some((key?, typed))
}
