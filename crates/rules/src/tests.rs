//! The rules with an injected clock: every time is an argument, nothing sleeps.

use crate::defs::{Known, RulesFile};
use crate::runtime::{Decision, Instance, Mode, Rules, RulesState, Status};
use serde_json::json;
use std::collections::BTreeSet;
use waymark_model::{Event, IngestContext, Timestamp};

/// 2026-03-02T00:00:00Z (a Monday), µs.
const T0: i64 = 1_772_409_600_000_000;
const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;

fn iso(at: i64) -> String {
    chrono::DateTime::from_timestamp_micros(at)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn track(user: &str, step: &str, at: i64, properties: serde_json::Value) -> Event {
    Event::from_segment_value(
        json!({"type": "track", "userId": user, "event": step, "timestamp": iso(at),
               "messageId": format!("m-{user}-{step}-{at}"), "properties": properties}),
        &IngestContext::at(Timestamp(at)),
    )
    .unwrap()
}

fn identify(user: &str, at: i64, traits: serde_json::Value) -> Event {
    Event::from_segment_value(
        json!({"type": "identify", "userId": user, "timestamp": iso(at),
               "messageId": format!("m-{user}-identify-{at}"), "traits": traits}),
        &IngestContext::at(Timestamp(at)),
    )
    .unwrap()
}

fn steps() -> BTreeSet<String> {
    [
        "Login Failed",
        "Login Succeeded",
        "Payment Failed",
        "Payment Completed",
        "Checkout Started",
        "Order Completed",
        "Searched",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn rules(toml: &str) -> Rules {
    let file = RulesFile::from_toml(toml).unwrap_or_else(|e| panic!("{e}"));
    let known = Known {
        steps: Some(steps()),
        models: Some(["get-stuck".to_string()].into_iter().collect()),
    };
    Rules::new(
        file.compile(&known, &|_| 1)
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn errors(toml: &str) -> Vec<String> {
    let known = Known {
        steps: Some(steps()),
        models: Some(["get-stuck".to_string()].into_iter().collect()),
    };
    match RulesFile::from_toml(toml).and_then(|file| file.compile(&known, &|_| 1)) {
        Ok(_) => panic!("accepted: {toml}"),
        Err(errors) => errors.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn instances(decisions: &[Decision]) -> Vec<&Instance> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Trigger(instance) => Some(instance),
            _ => None,
        })
        .collect()
}

fn fired(decisions: &[Decision]) -> Vec<(String, Status)> {
    instances(decisions)
        .into_iter()
        .map(|i| (i.trigger.clone(), i.status))
        .collect()
}

#[test]
fn bad_definitions_name_the_field_and_the_position() {
    let syntax = errors(
        r#"[[triggers]]
name = "t"
on = "event"
condition = 'count("Login Failed") >= '
"#,
    );
    assert_eq!(syntax.len(), 1);
    assert!(
        syntax[0].starts_with("triggers[t].condition at 1:"),
        "{syntax:?}"
    );
    assert!(syntax[0].contains("syntax error"), "{syntax:?}");

    let function = errors(
        r#"[[triggers]]
name = "t"
on = "event"
condition = 'cuont("Login Failed") >= 2'
"#,
    );
    assert_eq!(
        function,
        ["triggers[t].condition at 1:1: unknown function `cuont` (did you mean `count`?); the journey functions are count, did, since, days_since, score, in_segment"]
    );

    let types = errors(
        r#"[[triggers]]
name = "t"
on = "event"
condition = 'true && count("Login Failed") > "2"'
"#,
    );
    assert_eq!(
        types,
        ["triggers[t].condition at 1:31: cannot compare an int with a string"]
    );

    let step = errors(
        r#"[[segments]]
name = "s"
condition = 'count("Login Faild", "1h") >= 2'
"#,
    );
    assert_eq!(step.len(), 1);
    assert!(
        step[0].starts_with("segments[s].condition at 1:7: unknown step 'Login Faild' (did you mean 'Login Failed'?)"),
        "{step:?}"
    );

    let cap = errors(
        r#"[[triggers]]
name = "t"
on = "event"
step = "Login Failed"
cap_per_customer_per_day = -1
"#,
    );
    assert_eq!(
        cap,
        ["triggers[t].cap_per_customer_per_day: -1 is not a cap: write a whole number of 1 or more, or leave it out for no cap"]
    );

    // Several problems are all reported, and the set is refused whole.
    let many = errors(
        r#"[[segments]]
name = "Bad Name"
condition = 'event.name == "x"'

[[triggers]]
name = "a"
on = "absence"
after = "Payment Failed"
within = "2 hours"

[[triggers]]
name = "b"
on = "score"
model = "get-stuk"
above = 0.7
"#,
    );
    assert!(
        many.iter()
            .any(|e| e.starts_with("segments[Bad Name].name:")),
        "{many:?}"
    );
    assert!(
        many.iter()
            .any(|e| e.contains("`event` is not available here")),
        "{many:?}"
    );
    assert!(
        many.iter()
            .any(|e| e == "triggers[a].missing: `on = \"absence\"` needs `missing`"),
        "{many:?}"
    );
    assert!(
        many.iter()
            .any(|e| e.starts_with("triggers[b].model: unknown model 'get-stuk'")),
        "{many:?}"
    );

    // A TOML type error names its line and column.
    let toml = errors("[[triggers]]\nname = \"t\"\non = \"sometimes\"\n");
    assert!(toml[0].starts_with("rules.toml at 3:6:"), "{toml:?}");

    // The top level must be a boolean.
    let not_bool = errors("[[segments]]\nname = \"s\"\ncondition = 'count(\"Searched\")'\n");
    assert!(
        not_bool[0].contains("gives an int where a boolean"),
        "{not_bool:?}"
    );
}

#[test]
fn an_event_trigger_fires_on_a_windowed_count_and_re_enters_after_exit() {
    let rules = rules(
        r#"[[triggers]]
name = "login-help"
on = "event"
step = "Login Failed"
condition = 'count("Login Failed", "1h") >= 2 && event.properties.platform == "android"'
"#,
    );
    let mut state = RulesState::default();
    let android = json!({"platform": "android"});
    let first = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Login Failed", T0, android.clone()),
        Mode::Live,
    );
    assert!(fired(&first).is_empty());
    let second = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Login Failed", T0 + 10 * MIN, android.clone()),
        Mode::Live,
    );
    assert_eq!(fired(&second), [("login-help".to_string(), Status::Fired)]);
    let instance = instances(&second)[0];
    assert_eq!(instance.at, T0 + 10 * MIN);
    assert_eq!(instance.deliver_at, instance.at);
    // Still matching: entered, so no second instance (after_exit is the default).
    let third = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Login Failed", T0 + 20 * MIN, android.clone()),
        Mode::Live,
    );
    assert!(fired(&third).is_empty());
    // Two hours later one failure is in the window: the condition is false, the customer exits...
    let later = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Login Failed", T0 + 3 * HOUR, android.clone()),
        Mode::Live,
    );
    assert!(fired(&later).is_empty());
    // ... and can enter again.
    let again = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Login Failed", T0 + 3 * HOUR + MIN, android.clone()),
        Mode::Live,
    );
    assert_eq!(fired(&again).len(), 1);
    assert_ne!(instances(&again)[0].key, instance.key);
    // A missing property makes the condition false, not an error decision.
    let ios = rules.on_event(
        &mut state,
        "bob",
        &track("bob", "Login Failed", T0, json!({})),
        Mode::Live,
    );
    assert!(ios.is_empty(), "{ios:?}");
}

#[test]
fn re_entry_once_and_every_time() {
    let rules = rules(
        r#"[[triggers]]
name = "once"
on = "event"
step = "Searched"
reentry = "once"

[[triggers]]
name = "every"
on = "event"
step = "Searched"
reentry = "every_time"
"#,
    );
    let mut state = RulesState::default();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..3 {
        for (name, _) in fired(&rules.on_event(
            &mut state,
            "ann",
            &track("ann", "Searched", T0 + i * HOUR, json!({})),
            Mode::Live,
        )) {
            *counts.entry(name).or_default() += 1;
        }
    }
    assert_eq!(counts.get("once"), Some(&1));
    assert_eq!(counts.get("every"), Some(&3));
}

#[test]
fn an_absence_fires_at_its_due_time_unless_the_missing_step_comes() {
    let rules = rules(
        r#"[[triggers]]
name = "payment-rescue"
on = "absence"
after = "Payment Failed"
missing = "Payment Completed"
within = "2h"
"#,
    );
    let mut state = RulesState::default();
    rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Payment Failed", T0, json!({})),
        Mode::Live,
    );
    rules.on_event(
        &mut state,
        "bob",
        &track("bob", "Payment Failed", T0, json!({})),
        Mode::Live,
    );
    rules.on_event(
        &mut state,
        "bob",
        &track("bob", "Payment Completed", T0 + HOUR, json!({})),
        Mode::Live,
    );
    assert_eq!(rules.next_due(&state), Some(T0 + 2 * HOUR));
    assert!(rules
        .tick(&mut state, T0 + 2 * HOUR - 1, Mode::Live)
        .is_empty());
    let due = rules.tick(&mut state, T0 + 2 * HOUR + 500_000, Mode::Live);
    let fired: Vec<&Instance> = instances(&due);
    assert_eq!(fired.len(), 1, "{due:?}");
    assert_eq!(fired[0].customer, "ann");
    assert_eq!(
        fired[0].at,
        T0 + 2 * HOUR,
        "evaluated at its due time, not the tick's"
    );
    assert_eq!(state.timers(), 0);
    // A second failure while entered does not start another wait (after_exit) until the payment completes.
    rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Payment Failed", T0 + 3 * HOUR, json!({})),
        Mode::Live,
    );
    assert_eq!(state.timers(), 0);
    rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Payment Completed", T0 + 4 * HOUR, json!({})),
        Mode::Live,
    );
    rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Payment Failed", T0 + 5 * HOUR, json!({})),
        Mode::Live,
    );
    assert_eq!(rules.next_due(&state), Some(T0 + 7 * HOUR));
}

#[test]
fn segments_follow_events_and_time_and_set_off_entry_triggers() {
    let rules = rules(
        r#"[[segments]]
name = "struggling"
condition = 'count("Login Failed", "1h") >= 3'

[[segments]]
name = "lapsed"
condition = 'did("Order Completed") && days_since("Order Completed") >= 30'

[[segments]]
name = "struggling-buyer"
condition = 'in_segment("struggling") && did("Order Completed")'

[[triggers]]
name = "call-them"
on = "segment_entry"
segment = "struggling-buyer"
"#,
    );
    let mut state = RulesState::default();
    rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Order Completed", T0, json!({})),
        Mode::Live,
    );
    let mut all = Vec::new();
    for i in 0..3 {
        all.extend(rules.on_event(
            &mut state,
            "ann",
            &track("ann", "Login Failed", T0 + HOUR + i * MIN, json!({})),
            Mode::Live,
        ));
    }
    assert!(
        all.contains(&Decision::SegmentEntered {
            segment: "struggling".into(),
            customer: "ann".into(),
            at: T0 + HOUR + 2 * MIN
        }),
        "{all:?}"
    );
    assert!(all.contains(&Decision::SegmentEntered {
        segment: "struggling-buyer".into(),
        customer: "ann".into(),
        at: T0 + HOUR + 2 * MIN
    }));
    assert_eq!(fired(&all), [("call-them".to_string(), Status::Fired)]);
    assert!(state
        .customer("ann")
        .unwrap()
        .segments()
        .contains("struggling"));
    // An hour after the first failure the window holds two: the customer leaves both, with no event.
    let due = rules.next_due(&state).unwrap();
    assert_eq!(due, T0 + 2 * HOUR);
    let exits = rules.tick(&mut state, due, Mode::Live);
    assert!(
        exits.contains(&Decision::SegmentExited {
            segment: "struggling".into(),
            customer: "ann".into(),
            at: due
        }),
        "{exits:?}"
    );
    assert!(exits.contains(&Decision::SegmentExited {
        segment: "struggling-buyer".into(),
        customer: "ann".into(),
        at: due
    }));
    // Thirty days after the order, the customer has lapsed.
    let lapse = rules.tick(&mut state, T0 + 30 * 24 * HOUR, Mode::Live);
    assert!(
        lapse.contains(&Decision::SegmentEntered {
            segment: "lapsed".into(),
            customer: "ann".into(),
            at: T0 + 30 * 24 * HOUR
        }),
        "{lapse:?}"
    );
    assert_eq!(state.members("lapsed").collect::<Vec<_>>(), ["ann"]);
}

#[test]
fn a_score_trigger_fires_on_crossing_and_re_arms_below() {
    let rules = rules(
        r#"[[triggers]]
name = "rescue"
on = "score"
model = "get-stuck"
above = 0.7
"#,
    );
    let mut state = RulesState::default();
    let at = T0;
    assert!(fired(&rules.on_score(&mut state, "ann", "get-stuck", 0.5, at, Mode::Live)).is_empty());
    assert_eq!(
        fired(&rules.on_score(&mut state, "ann", "get-stuck", 0.8, at + 1, Mode::Live)).len(),
        1
    );
    assert!(
        fired(&rules.on_score(&mut state, "ann", "get-stuck", 0.9, at + 2, Mode::Live)).is_empty()
    );
    assert!(
        fired(&rules.on_score(&mut state, "ann", "get-stuck", 0.6, at + 3, Mode::Live)).is_empty()
    );
    assert_eq!(
        fired(&rules.on_score(&mut state, "ann", "get-stuck", 0.75, at + 4, Mode::Live)).len(),
        1
    );
    // Another model's score does nothing.
    assert!(rules
        .on_score(&mut state, "ann", "other", 0.99, at + 5, Mode::Live)
        .is_empty());
}

#[test]
fn caps_count_calendar_days_in_the_customers_time_zone_and_capped_instances_advance() {
    let rules = rules(
        r#"[[triggers]]
name = "nudge"
on = "event"
step = "Searched"
reentry = "every_time"
cap_per_customer_per_day = 1

[[triggers]]
name = "global"
on = "event"
step = "Checkout Started"
reentry = "every_time"
cap_global_per_day = 2
"#,
    );
    let mut state = RulesState::default();
    // Ann lives in Tokyo (UTC+9): 14:00 and 16:00 UTC on March 2 are March 2 23:00 and March 3 01:00 there.
    rules.on_event(
        &mut state,
        "ann",
        &identify("ann", T0, json!({"timezone": "Asia/Tokyo"})),
        Mode::Live,
    );
    let a = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0 + 14 * HOUR, json!({})),
        Mode::Live,
    );
    let b = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0 + 14 * HOUR + 30 * MIN, json!({})),
        Mode::Live,
    );
    let c = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0 + 16 * HOUR, json!({})),
        Mode::Live,
    );
    assert_eq!(fired(&a), [("nudge".to_string(), Status::Fired)]);
    assert_eq!(fired(&b), [("nudge".to_string(), Status::Capped)]);
    assert_eq!(
        instances(&b)[0].capped_by.as_deref(),
        Some("cap_per_customer_per_day = 1")
    );
    assert_eq!(
        fired(&c),
        [("nudge".to_string(), Status::Fired)],
        "a new day in Tokyo"
    );
    // Bob has no time zone trait: UTC, the settings' default; the same three times are one day.
    let mut statuses = Vec::new();
    for offset in [14 * HOUR, 14 * HOUR + 30 * MIN, 16 * HOUR] {
        statuses.extend(fired(&rules.on_event(
            &mut state,
            "bob",
            &track("bob", "Searched", T0 + offset, json!({})),
            Mode::Live,
        )));
    }
    assert_eq!(
        statuses.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [Status::Fired, Status::Capped, Status::Capped]
    );
    // The global cap: two a day across customers, then capped.
    let mut global = Vec::new();
    for customer in ["c1", "c2", "c3"] {
        global.extend(fired(&rules.on_event(
            &mut state,
            customer,
            &track(customer, "Checkout Started", T0 + HOUR, json!({})),
            Mode::Live,
        )));
    }
    assert_eq!(
        global.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [Status::Fired, Status::Fired, Status::Capped]
    );
    let next_day = fired(&rules.on_event(
        &mut state,
        "c3",
        &track("c3", "Checkout Started", T0 + 25 * HOUR, json!({})),
        Mode::Live,
    ));
    assert_eq!(next_day, [("global".to_string(), Status::Fired)]);
}

#[test]
fn quiet_hours_delay_or_skip_in_the_customers_time_zone() {
    let rules = rules(
        r#"[[triggers]]
name = "later"
on = "event"
step = "Searched"
reentry = "every_time"
quiet_hours = "21:00-08:00"

[[triggers]]
name = "skipped"
on = "event"
step = "Searched"
reentry = "every_time"
quiet_hours = "21:00-08:00"
quiet = "skip"
"#,
    );
    let mut state = RulesState::default();
    rules.on_event(
        &mut state,
        "ann",
        &identify("ann", T0, json!({"timezone": "Europe/Paris"})),
        Mode::Live,
    );
    // 21:30 UTC is 22:30 in Paris (UTC+1 in March before the change): quiet until 08:00 Paris = 07:00 UTC.
    let night = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0 + 21 * HOUR + 30 * MIN, json!({})),
        Mode::Live,
    );
    let by_name: std::collections::BTreeMap<_, _> = instances(&night)
        .into_iter()
        .map(|i| (i.trigger.as_str(), i))
        .collect();
    assert_eq!(by_name["later"].status, Status::Fired);
    assert_eq!(by_name["later"].deliver_at, T0 + 24 * HOUR + 7 * HOUR);
    assert_eq!(by_name["skipped"].status, Status::Quiet);
    // 10:00 UTC is 11:00 in Paris: delivered at once.
    let day = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0 + 34 * HOUR, json!({})),
        Mode::Live,
    );
    for instance in instances(&day) {
        assert_eq!(instance.status, Status::Fired);
        assert_eq!(instance.deliver_at, instance.at);
    }
}

#[test]
fn the_holdout_is_a_stable_share_and_the_window_ends() {
    let rules = rules(
        r#"[[triggers]]
name = "offer"
on = "event"
step = "Searched"
holdout = 0.25
ends = "2026-03-03T00:00:00Z"
"#,
    );
    let mut state = RulesState::default();
    let mut held = 0;
    for i in 0..2000 {
        let customer = format!("c{i}");
        let decisions = rules.on_event(
            &mut state,
            &customer,
            &track(&customer, "Searched", T0 + HOUR, json!({})),
            Mode::Live,
        );
        let statuses = fired(&decisions);
        assert_eq!(statuses.len(), 1);
        assert_eq!(
            statuses[0].1 == Status::HeldOut,
            crate::runtime::in_holdout("offer", &customer, 0.25)
        );
        held += usize::from(statuses[0].1 == Status::HeldOut);
    }
    assert!((400..600).contains(&held), "{held} of 2000 held out");
    // After `ends`, nothing.
    let late = rules.on_event(
        &mut state,
        "new",
        &track("new", "Searched", T0 + 25 * HOUR, json!({})),
        Mode::Live,
    );
    assert!(fired(&late).is_empty());
}

#[test]
fn backfill_builds_state_without_deciding_triggers_and_a_restored_state_decides_the_same() {
    let text = r#"[[segments]]
name = "searchers"
condition = 'count("Searched") >= 2'

[[triggers]]
name = "t"
on = "event"
step = "Searched"
reentry = "every_time"
condition = 'in_segment("searchers")'

[[triggers]]
name = "a"
on = "absence"
after = "Checkout Started"
missing = "Order Completed"
within = "1h"
"#;
    let rules = rules(text);
    let mut state = RulesState::default();
    let history = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0, json!({})),
        Mode::Backfill,
    );
    let history2 = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0 + MIN, json!({})),
        Mode::Backfill,
    );
    assert!(fired(&history).is_empty() && fired(&history2).is_empty());
    assert!(history2
        .iter()
        .any(|d| matches!(d, Decision::SegmentEntered { .. })));
    // Snapshot, then the same inputs to both copies.
    let snapshot = serde_json::to_string(&state).unwrap();
    let mut restored: RulesState = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(restored, state);
    let inputs = [
        track("ann", "Searched", T0 + 2 * MIN, json!({})),
        track("ann", "Checkout Started", T0 + 3 * MIN, json!({})),
        track("bob", "Checkout Started", T0 + 4 * MIN, json!({})),
    ];
    let run = |state: &mut RulesState| {
        let mut out = Vec::new();
        for event in &inputs {
            let customer = event.user_id.clone().unwrap();
            out.extend(rules.on_event(state, &customer, event, Mode::Live));
        }
        out.extend(rules.tick(state, T0 + 2 * HOUR, Mode::Live));
        out
    };
    let a = run(&mut state);
    let b = run(&mut restored);
    assert_eq!(a, b);
    assert_eq!(fired(&a).len(), 3, "{a:?}");
    // The idempotency key is the instance's, not the attempt's.
    let keys: BTreeSet<&str> = instances(&a).iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys.len(), 3);
}

#[test]
fn merging_customers_keeps_facts_and_timers() {
    let rules = rules(
        r#"[[triggers]]
name = "a"
on = "absence"
after = "Checkout Started"
missing = "Order Completed"
within = "1h"

[[segments]]
name = "searchers"
condition = 'count("Searched") >= 2'
"#,
    );
    let mut state = RulesState::default();
    rules.on_event(
        &mut state,
        "anon-1",
        &track("anon-1", "Searched", T0, json!({})),
        Mode::Live,
    );
    rules.on_event(
        &mut state,
        "anon-1",
        &track("anon-1", "Checkout Started", T0 + MIN, json!({})),
        Mode::Live,
    );
    let merged = rules.merge_customers(&mut state, "anon-1", "ann", T0 + MIN, Mode::Live);
    assert!(merged.is_empty(), "one search is no member yet: {merged:?}");
    let after = rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0 + 2 * MIN, json!({})),
        Mode::Live,
    );
    assert!(
        after
            .iter()
            .any(|d| matches!(d, Decision::SegmentEntered { customer, .. } if customer == "ann")),
        "{after:?}"
    );
    // A member merged into a customer: the old one leaves, the merged one is a member at once.
    rules.on_event(
        &mut state,
        "anon-2",
        &track("anon-2", "Searched", T0, json!({})),
        Mode::Live,
    );
    rules.on_event(
        &mut state,
        "anon-2",
        &track("anon-2", "Searched", T0 + MIN, json!({})),
        Mode::Live,
    );
    rules.on_event(
        &mut state,
        "bob",
        &track("bob", "Login Failed", T0 + MIN, json!({})),
        Mode::Live,
    );
    let merged = rules.merge_customers(&mut state, "anon-2", "bob", T0 + 3 * MIN, Mode::Live);
    assert_eq!(
        merged,
        vec![
            Decision::SegmentExited {
                segment: "searchers".into(),
                customer: "anon-2".into(),
                at: T0 + 3 * MIN
            },
            Decision::SegmentEntered {
                segment: "searchers".into(),
                customer: "bob".into(),
                at: T0 + 3 * MIN
            },
        ]
    );
    let due = rules.tick(&mut state, T0 + 2 * HOUR, Mode::Live);
    assert_eq!(instances(&due)[0].customer, "ann");
}

#[test]
fn stages_and_latest_step_are_bound() {
    let rules = rules(
        r#"[[stages]]
name = "Checkout"
steps = ["Checkout Started", "Payment*"]

[[triggers]]
name = "stage"
on = "event"
reentry = "every_time"
condition = 'current_stage == "Checkout" && previous_step == "Checkout Started" && last_step == event.name'
"#,
    );
    let mut state = RulesState::default();
    assert!(fired(&rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Searched", T0, json!({})),
        Mode::Live
    ))
    .is_empty());
    assert!(fired(&rules.on_event(
        &mut state,
        "ann",
        &track("ann", "Checkout Started", T0 + 1, json!({})),
        Mode::Live
    ))
    .is_empty());
    assert_eq!(
        fired(&rules.on_event(
            &mut state,
            "ann",
            &track("ann", "Payment Failed", T0 + 2, json!({})),
            Mode::Live
        ))
        .len(),
        1
    );
}

#[test]
fn errors_are_located_in_the_file_they_came_from() {
    let known = Known {
        steps: Some(steps()),
        models: Some(BTreeSet::new()),
    };
    let text = r#"[[segments]]
name = "ok"
condition = 'count("Login Failed") >= 1'

[[triggers]]
name = "first"
on = "event"
step = "Login Failed"

[[triggers]]
name = "rescue"
on = "event"
condition = "event.properties.plan == \"pro\" && count(\"Paymnt Failed\") > 0"
cap_per_customer_per_day = 0

[[triggers]]
name = "multi"
on = "event"
condition = '''
true &&
  count("Nope") > 1'''
"#;
    let file = RulesFile::from_toml(text).unwrap();
    let errors = file.compile(&known, &|_| 1).unwrap_err().0;
    let at = |field: &str| {
        let error = errors
            .iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("no error for {field}: {errors:?}"));
        crate::defs::position_in_toml(text, error)
    };
    // The expression's column is after two `\"` escapes, each two characters in the file.
    let line13 = text.lines().nth(12).unwrap();
    let expected = line13.find("\\\"Paymnt").unwrap() + 1;
    assert_eq!(
        at("triggers[rescue].condition"),
        Some((13, expected)),
        "{errors:?}"
    );
    assert_eq!(
        at("triggers[rescue].cap_per_customer_per_day"),
        Some((14, 28))
    );
    let line21 = text.lines().nth(20).unwrap();
    assert_eq!(
        at("triggers[multi].condition"),
        Some((21, line21.find("\"Nope\"").unwrap() + 1)),
        "{errors:?}"
    );
    // A syntax error is already a file position.
    let broken = RulesFile::from_toml("[[triggers]\n").unwrap_err().0;
    assert_eq!(
        crate::defs::position_in_toml("", &broken[0]).map(|p| p.0),
        Some(1)
    );
}
