//! A filter that cannot match (issue 22, acceptance 3): a property no event has, a value it never takes, a step or
//! channel pattern that matches nothing — each gets a note naming the closest existing name, in the report's
//! `filter_notes`, instead of zeros that read as a finding. A filter that matches gets none.

mod common;

use serde_json::{json, Value};

fn notes(engine: &waymark_engine::Engine, filter: Value) -> Vec<String> {
    let ran = engine
        .analyse_json("overview", json!({ "filter": filter }), None)
        .unwrap();
    assert_eq!(
        ran.json.get("filter_notes").cloned().unwrap_or(json!([])),
        json!(ran.notes),
        "the JSON carries the notes"
    );
    ran.notes
}

#[test]
fn filters_that_cannot_match_say_what_was_meant() {
    let (_dir, engine) = common::demo_engine(300);
    let condition = |property: &str, value: &str| json!({"where": [{"property": property, "op": "=", "value": value}]});
    // A value the property never takes, in another case.
    let said = notes(&engine, condition("context.os.name", "android"));
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("no event has `context.os.name` = android"),
        "{said:?}"
    );
    assert!(said[0].contains("did you mean `Android`?"), "{said:?}");
    // A property no event has, close to one that exists.
    let said = notes(&engine, condition("context.os.nam", "Android"));
    assert!(
        said[0].starts_with("no event has the property `context.os.nam`"),
        "{said:?}"
    );
    assert!(
        said[0].contains("did you mean `context.os.name`"),
        "{said:?}"
    );
    // Step and channel patterns.
    let said = notes(
        &engine,
        json!({"steps": ["Login Faild"], "channels": ["webb"]}),
    );
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said
        .iter()
        .any(|n| n.contains("\"Login Faild\" matches no step") && n.contains("`Login Failed`")));
    assert!(said
        .iter()
        .any(|n| n.contains("\"webb\" matches no channel") && n.contains("`web`")));
    // What matches says nothing.
    assert!(notes(&engine, condition("context.os.name", "Android")).is_empty());
    assert!(notes(&engine, json!({"steps": ["Login*"], "channels": ["web"]})).is_empty());
    // `!plan` (is not set) on a property no event has keeps everything: nothing to say.
    assert!(notes(
        &engine,
        json!({"where": [{"property": "plan", "op": "is_null"}]})
    )
    .is_empty());
}
