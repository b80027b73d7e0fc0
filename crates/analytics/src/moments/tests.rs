use super::*;
use crate::run;
use waymark_model::PropertyColumnBuilder;

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;

/// PostHog's semantics: every event after the entry counts (no automatic window), nothing is set apart as settling
/// the outcome.
fn moments(goal: &str) -> Moments {
    Moments {
        goals: vec![Condition::step(goal)],
        entry: Some(Condition::step("user signed up")),
        auto_window_quantile: None,
        settled_share: 0.0,
        ..Moments::default()
    }
}

fn report(spec: &Moments, journeys: &JourneySet) -> MomentsReport {
    run(&spec.prepare(journeys).unwrap(), journeys, 1)
}

fn all(report: &MomentsReport) -> Vec<&Moment> {
    report.positive.iter().chain(&report.negative).collect()
}

/// PostHog's "discarding insignificant events" case: 10 customers pay, 10 do not; `positively_related` is done by
/// 5 payers, `low_sig_positively_related` by 1, `negatively_related` by 5 non-payers, `low_sig_negatively_related`
/// by 2. With a minimum share of 11 % (2.2 customers) only the two strong ones are left.
#[test]
fn posthog_discards_low_support_events() {
    let journeys = JourneySet::from_journeys((0..20).map(|i| {
        let mut events = vec![(0, "user signed up", "web")];
        if i < 10 {
            if i % 2 == 0 {
                events.push((DAY, "positively_related", "web"));
            }
            if i % 10 == 0 {
                events.push((DAY + 20 * MINUTE, "low_sig_positively_related", "web"));
            }
            events.push((2 * DAY, "paid", "web"));
        } else {
            if i % 2 == 0 {
                events.push((DAY, "negatively_related", "web"));
            }
            if i % 5 == 0 {
                events.push((DAY, "low_sig_negatively_related", "web"));
            }
        }
        (format!("user_{i}"), events)
    }));
    let mut spec = moments("paid");
    spec.min_share = 0.11;
    spec.include_insignificant = true;
    let result = report(&spec, &journeys);
    assert_eq!(
        (result.reached, result.not_reached, result.skewed),
        (10, 10, false)
    );
    assert_eq!((result.tested, result.too_small), (2, 2));
    let labels: Vec<&str> = all(&result)
        .iter()
        .map(|moment| moment.label.as_str())
        .collect();
    assert_eq!(labels, ["positively_related", "negatively_related"]);
    // ((5+1)(10+1)) / ((5+1)(0+1)) = 11 and its inverse.
    assert!((result.positive[0].odds_ratio - 11.0).abs() < 1e-12);
    assert!((result.negative[0].odds_ratio - 1.0 / 11.0).abs() < 1e-12);
    // At PostHog's defaults (2 % of 20 customers) all four are tested.
    spec.min_share = 0.02;
    assert_eq!(report(&spec, &journeys).tested, 4);
}

/// PostHog's conversion-window case: with a 10-minute window, an event 15 minutes after sign-up does not count,
/// and the goal after the window is not reached.
#[test]
fn posthog_counts_only_events_within_the_window() {
    let journeys = JourneySet::from_journeys([
        (
            "user_successful".to_string(),
            vec![
                (0, "user signed up", "web"),
                (2 * MINUTE, "positively_related", "web"),
                (6 * MINUTE, "paid", "web"),
            ],
        ),
        (
            "user_dropoff".to_string(),
            vec![
                (0, "user signed up", "web"),
                (15 * MINUTE, "NOT_negatively_related", "web"),
            ],
        ),
        (
            "user_late".to_string(),
            vec![(0, "user signed up", "web"), (20 * MINUTE, "paid", "web")],
        ),
    ]);
    let mut spec = moments("paid");
    spec.window_us = Some(10 * MINUTE);
    spec.include_insignificant = true;
    let result = report(&spec, &journeys);
    assert_eq!((result.reached, result.not_reached), (1, 2));
    let moments = all(&result);
    assert_eq!(moments.len(), 1, "{moments:?}");
    assert_eq!(moments[0].label, "positively_related");
    assert_eq!(
        (moments[0].reached_with, moments[0].not_reached_with),
        (1, 0)
    );
    // ((1+1)(2−0+1)) / ((1−1+1)(0+1)) = 6.
    assert!((moments[0].odds_ratio - 6.0).abs() < 1e-12);
    assert!(!moments[0].significant);
}

/// PostHog's event-property case: `positively_related` by 5 payers, all with `blah = value_bleh`, 3 of them with
/// `signup_source = facebook`; `negatively_related` by 5 non-payers, 3 with `signup_source = email`.
#[test]
fn posthog_step_property_values_are_candidates() {
    let mut journeys = JourneySet::from_journeys((0..20).map(|i| {
        let mut events = vec![(0, "user signed up", "web")];
        if i % 2 == 0 {
            events.push((
                DAY,
                if i < 10 {
                    "positively_related"
                } else {
                    "negatively_related"
                },
                "web",
            ));
        }
        if i < 10 {
            events.push((2 * DAY, "paid", "web"));
        }
        (format!("user_{i}"), events)
    }));
    let mut source = PropertyColumnBuilder::new("signup_source");
    let mut blah = PropertyColumnBuilder::new("blah");
    for journey in 0..20 {
        let customer = &journeys.customer_ids[journey];
        let i: usize = customer.trim_start_matches("user_").parse().unwrap();
        for event in journeys.journey(journey).start
            ..journeys.journey(journey).start + journeys.journey(journey).len()
        {
            let step = &journeys.step_names[journeys.step[event] as usize];
            let (s, b) = match step.as_str() {
                "positively_related" => (
                    Some(serde_json::json!(if i % 4 == 0 {
                        "facebook"
                    } else {
                        "email"
                    })),
                    Some(serde_json::json!("value_bleh")),
                ),
                "negatively_related" => (
                    Some(serde_json::json!(if i % 6 == 0 {
                        "shazam"
                    } else {
                        "email"
                    })),
                    None,
                ),
                _ => (None, None),
            };
            source.push(s.as_ref());
            blah.push(b.as_ref());
        }
    }
    journeys.properties.push(source.finish());
    journeys.properties.push(blah.finish());
    let mut spec = moments("paid");
    spec.properties = vec!["signup_source".into(), "blah".into()];
    spec.include_insignificant = true;
    spec.min_share = 0.11;
    let result = report(&spec, &journeys);
    let ratio = |label: &str| {
        all(&result)
            .iter()
            .find(|moment| moment.label == label)
            .map(|moment| moment.odds_ratio)
            .unwrap_or_else(|| panic!("{label} is reported: {:?}", all(&result)))
    };
    assert!((ratio("positively_related · blah = value_bleh") - 11.0).abs() < 1e-12);
    assert!((ratio("positively_related · signup_source = facebook") - 5.5).abs() < 1e-12);
    assert!((ratio("negatively_related · signup_source = email") - 2.0 / 11.0).abs() < 1e-12);
    // Two customers are below 11 % of 20: email on the positive side, shazam on the negative.
    assert!(all(&result)
        .iter()
        .all(|moment| !moment.label.ends_with("= shazam")));
    let facebook = all(&result)
        .into_iter()
        .find(|moment| moment.label.ends_with("facebook"))
        .unwrap();
    assert_eq!(facebook.property.as_deref(), Some("signup_source"));
    assert_eq!(facebook.example_customers, ["user_0", "user_4", "user_8"]);
}

/// A step that truly raises the goal rate by a known amount, with noise steps around it: it is found, significant,
/// and its lift's interval holds the planted effect; noise is not significant after the correction.
#[test]
fn a_planted_moment_is_found_with_its_lift() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
    let journeys = JourneySet::from_journeys((0..4000).map(|i| {
        let mut events = vec![(0, "browse", "web")];
        let mut t = MINUTE;
        for noise in 0..8 {
            if rng.random_bool(0.3) {
                events.push((
                    t,
                    ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"][noise],
                    "web",
                ));
                t += MINUTE;
            }
        }
        let helped = rng.random_bool(0.4);
        if helped {
            events.push((t, "chat answered", "chat"));
            t += MINUTE;
        }
        // 30 % base rate, 20 points more after the chat answer.
        if rng.random_bool(if helped { 0.5 } else { 0.3 }) {
            events.push((t, "buy", "web"));
        }
        (format!("c{i:04}"), events)
    }));
    let mut spec = Moments {
        goals: vec![Condition::step("buy")],
        auto_window_quantile: None,
        ..Moments::default()
    };
    spec.lift.prefix = 0;
    let result = report(&spec, &journeys);
    assert_eq!(result.positive[0].label, "chat answered");
    let chat = &result.positive[0];
    assert!(chat.significant && chat.q_value < 1e-6, "{chat:?}");
    let lift = chat.lift.unwrap();
    assert!(
        lift.low.unwrap() < 0.2 && 0.2 < lift.high.unwrap(),
        "{lift:?}"
    );
    assert!(
        all(&result)
            .iter()
            .filter(|moment| moment.label.starts_with('n'))
            .count()
            <= 1
    );
    // The same report on any number of threads, bootstrap included.
    assert_eq!(run(&spec.prepare(&journeys).unwrap(), &journeys, 3), result);
}

/// Matching on the step before the moment (and its depth) removes a confounder: customers who reached `cart` both buy more and
/// see the `reviews` step more often, but `reviews` itself does nothing.
#[test]
fn matching_on_the_prefix_removes_a_confounder() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let journeys = JourneySet::from_journeys((0..6000).map(|i| {
        let mut events = vec![(0, "home", "web")];
        let carted = rng.random_bool(0.5);
        if carted {
            events.push((MINUTE, "cart", "web"));
        }
        if rng.random_bool(if carted { 0.8 } else { 0.2 }) {
            events.push((2 * MINUTE, "reviews", "web"));
        }
        if rng.random_bool(if carted { 0.6 } else { 0.1 }) {
            events.push((3 * MINUTE, "buy", "web"));
        }
        (format!("c{i:04}"), events)
    }));
    let mut spec = Moments {
        goals: vec![Condition::step("buy")],
        auto_window_quantile: None,
        ..Moments::default()
    };
    spec.include_insignificant = true;
    let result = report(&spec, &journeys);
    let reviews = all(&result)
        .into_iter()
        .find(|moment| moment.step == "reviews")
        .unwrap();
    // The raw comparison is far from zero; matched on the step before, the lift's interval holds 0.
    assert!(
        reviews.goal_rate_with - reviews.goal_rate_without > 0.2,
        "{reviews:?}"
    );
    let lift = reviews.lift.unwrap();
    assert!(
        lift.low.unwrap() < 0.0 && 0.0 < lift.high.unwrap(),
        "{lift:?}"
    );
}

/// Non-converters browse for days after giving up; converters' browsing comes after the goal and is not counted.
/// Watching everyone only for as long as converters take (the automatic window) keeps that browsing from looking
/// like a moment that loses customers; steps that settle the outcome are set apart.
#[test]
fn the_automatic_window_and_the_settled_steps() {
    let journeys = JourneySet::from_journeys((0..400).map(|i| {
        let mut events = vec![(0, "landing", "web")];
        let bought = i % 2 == 0;
        if i % 4 < 2 {
            events.push((MINUTE, "reviews", "web"));
        }
        if bought {
            events.push((2 * MINUTE, "paid", "web"));
            events.push((3 * MINUTE, "buy", "web"));
        } else {
            events.push((3 * DAY, "blog", "web"));
        }
        (format!("c{i:03}"), events)
    }));
    let spec = Moments {
        goals: vec![Condition::step("buy")],
        include_insignificant: true,
        ..Moments::default()
    };
    let result = report(&spec, &journeys);
    assert_eq!(
        result.window_secs,
        Some(180.0),
        "90 % of the buyers bought within 3 minutes"
    );
    assert!(
        all(&result).iter().all(|moment| moment.step != "blog"),
        "{:?}",
        all(&result)
    );
    assert!(result.settled.iter().any(|moment| moment.step == "paid"));
    assert!(all(&result).iter().all(|moment| moment.step != "paid"));
    let without = report(
        &Moments {
            auto_window_quantile: None,
            settled_share: 0.0,
            ..spec.clone()
        },
        &journeys,
    );
    assert!(without.negative.iter().any(|moment| moment.step == "blog"));
}

#[test]
fn no_comparison_without_both_outcomes_and_settings_are_checked() {
    let journeys =
        JourneySet::from_journeys([("ann".to_string(), vec![(0, "a", "web"), (1, "buy", "web")])]);
    let spec = Moments {
        goals: vec![Condition::step("buy")],
        ..Moments::default()
    };
    let result = report(&spec, &journeys);
    assert!(result.positive.is_empty() && result.negative.is_empty());
    assert!(
        result.warnings[0].contains("All of the 1 customers reached the goal"),
        "{:?}",
        result.warnings
    );
    let mut bad = spec.clone();
    bad.fdr = 1.5;
    assert!(bad
        .prepare(&journeys)
        .err()
        .unwrap()
        .to_string()
        .contains("fdr"));
    let mut bad = spec.clone();
    bad.lift.prefix = 4;
    assert!(bad
        .prepare(&journeys)
        .err()
        .unwrap()
        .to_string()
        .contains("lift_prefix"));
}
