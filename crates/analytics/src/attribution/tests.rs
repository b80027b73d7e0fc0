use super::*;
use crate::run;
use proptest::prelude::*;
use waymark_model::PropertyColumnBuilder;

const HOUR: i64 = 3_600_000_000;

/// `buy` is the goal; touchpoints are channels.
fn analysis() -> Attribution {
    Attribution {
        kind: TouchpointKind::Channel,
        goals: vec![Condition::step("buy")],
        touchpoints: Vec::new(),
        lookback_us: None,
        collapse_repeats: true,
        value_property: Some("revenue".into()),
        order: 1,
        half_life_us: HOUR,
        transition_matrix: false,
    }
}

fn attribute_journeys(
    attribution: &Attribution,
    journeys: &JourneySet,
    threads: usize,
) -> AttributionReport {
    run(&attribution.prepare(journeys).unwrap(), journeys, threads)
}

fn credit<'a>(report: &'a AttributionReport, touchpoint: &str) -> &'a TouchpointCredit {
    report
        .touchpoints
        .iter()
        .find(|credit| credit.touchpoint == touchpoint)
        .unwrap_or_else(|| panic!("{touchpoint} is credited"))
}

#[test]
fn journeys_become_paths_closed_by_each_conversion() {
    let journeys = JourneySet::from_journeys([
        // web → email → buy (on web): the buy is not a touch of its own.
        (
            "ann".to_string(),
            vec![
                (0, "view", "web"),
                (HOUR, "open", "email"),
                (2 * HOUR, "buy", "web"),
            ],
        ),
        // A second conversion's path starts after the first; the tail after it did not convert.
        (
            "bob".to_string(),
            vec![
                (0, "view", "web"),
                (HOUR, "buy", "web"),
                (2 * HOUR, "open", "email"),
                (3 * HOUR, "buy", "web"),
                (4 * HOUR, "view", "app"),
            ],
        ),
        // Converts with no touch before: unattributed.
        ("cat".to_string(), vec![(0, "buy", "web")]),
    ]);
    let report = attribute_journeys(&analysis(), &journeys, 1);
    assert_eq!(report.conversions, 3);
    assert_eq!(report.null_paths, 1);
    assert_eq!(report.unattributed_conversions, 1);
    // Paths: web>email (1 conversion), web (1), email (1), app (1 null).
    assert_eq!(report.paths, 4);
    let web = credit(&report, "web");
    assert_eq!(web.first_touch.conversions, 2.0);
    assert_eq!(web.last_touch.conversions, 1.0);
    assert_eq!(web.linear.conversions, 1.5);
    assert_eq!(web.position_based.conversions, 1.5);
    let email = credit(&report, "email");
    assert_eq!(email.last_touch.conversions, 2.0);
    assert_eq!(credit(&report, "app").linear.conversions, 0.0);
    // Time decay, half-life one hour: ann's web touch is two hours old (weight 1/4), email one hour (1/2).
    let decay = web.time_decay.unwrap().conversions;
    assert!((decay - (1.0 + 1.0 / 3.0)).abs() < 1e-9, "{decay}");
}

#[test]
fn lookback_repeats_and_touchpoint_filter_shape_the_paths() {
    let journeys = JourneySet::from_journeys([(
        "ann".to_string(),
        vec![
            (0, "view", "app"),
            (10 * HOUR, "view", "web"),
            (11 * HOUR, "view", "web"),
            (12 * HOUR, "open", "email"),
            (13 * HOUR, "buy", "web"),
        ],
    )]);
    let mut attribution = analysis();
    attribution.lookback_us = Some(5 * HOUR);
    let report = attribute_journeys(&attribution, &journeys, 1);
    assert!(report
        .touchpoints
        .iter()
        .all(|credit| credit.touchpoint != "app"));
    assert_eq!(credit(&report, "web").first_touch.conversions, 1.0);
    // Repeats collapsed: web > email, so linear gives each half.
    assert_eq!(credit(&report, "web").linear.conversions, 0.5);
    attribution.collapse_repeats = false;
    let report = attribute_journeys(&attribution, &journeys, 1);
    assert!((credit(&report, "web").linear.conversions - 2.0 / 3.0).abs() < 1e-12);
    // Only email counts as a touchpoint.
    attribution.touchpoints = vec!["email".into()];
    let report = attribute_journeys(&attribution, &journeys, 1);
    assert_eq!(report.touchpoints.len(), 1);
    assert_eq!(report.touchpoints[0].markov.conversions, 1.0);
}

#[test]
fn steps_can_be_the_touchpoints_and_value_is_credited() {
    let mut journeys = JourneySet::from_journeys([
        (
            "ann".to_string(),
            vec![(0, "ad", "web"), (HOUR, "buy", "web")],
        ),
        (
            "bob".to_string(),
            vec![
                (0, "ad", "web"),
                (HOUR, "review", "web"),
                (2 * HOUR, "buy", "web"),
            ],
        ),
        ("cat".to_string(), vec![(0, "review", "web")]),
    ]);
    let mut revenue = PropertyColumnBuilder::new("revenue");
    for value in [
        None,
        Some(serde_json::json!(30.0)),
        None,
        None,
        Some(serde_json::json!("10")),
        None,
    ] {
        revenue.push(value.as_ref());
    }
    journeys.properties.push(revenue.finish());
    let mut attribution = analysis();
    attribution.kind = TouchpointKind::Step;
    attribution.touchpoints = vec!["ad".into(), "rev*".into()];
    attribution.transition_matrix = true;
    let report = attribute_journeys(&attribution, &journeys, 1);
    assert_eq!(report.touchpoint_kind, TouchpointKind::Step);
    assert_eq!(report.value, 40.0);
    let ad = credit(&report, "ad");
    assert_eq!(ad.first_touch.value, 40.0);
    assert_eq!(ad.last_touch.value, 30.0);
    let matrix = report.transition_matrix.unwrap();
    assert!(matrix
        .iter()
        .any(|row| row.from == "(start)" && row.to == "ad"));
    let markov_total: f64 = report
        .touchpoints
        .iter()
        .map(|credit| credit.markov.value)
        .sum();
    assert!((markov_total - 40.0).abs() < 1e-9);
}

#[test]
fn unknown_goals_and_touchpoints_are_named_and_orders_bounded() {
    let journeys = JourneySet::from_journeys([("ann".to_string(), vec![(0, "view", "web")])]);
    let mut attribution = analysis();
    attribution.goals = vec![Condition::step("Buy")];
    attribution.touchpoints = vec!["sms".into()];
    let report = attribute_journeys(&attribution, &journeys, 1);
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("did you mean \"buy\"")
            || report.warnings[0].contains("matches no step")
    );
    assert!(report.warnings[1].contains("\"sms\" matches no channel"));
    attribution.order = 5;
    let error = attribution.prepare(&journeys).unwrap_err().to_string();
    assert!(error.contains("order must be between 1 and 4"), "{error}");
}

#[test]
fn split_exact_adds_up() {
    let split = |total: i128, weights: &[f64]| {
        let mut parts = Vec::new();
        split_exact(total, weights, &mut parts);
        parts
    };
    assert_eq!(split(10, &[1.0, 1.0, 1.0]), [4, 3, 3]);
    assert_eq!(split(10, &[1.0, 2.0, 1.0]), [2, 6, 2]);
    assert_eq!(split(7, &[0.0, 0.0]), [0, 7]);
    assert_eq!(
        split(1_000_000_000, &[0.25, 0.5]).iter().sum::<i128>(),
        1_000_000_000
    );
}

fn journeys_strategy() -> impl Strategy<Value = JourneySet> {
    let event = (0i64..50, 0usize..4, 0usize..3);
    prop::collection::vec(prop::collection::vec(event, 0..12), 1..40).prop_map(|journeys| {
        let steps = ["view", "open", "buy", "call"];
        let channels = ["web", "app", "email"];
        JourneySet::from_journeys(journeys.into_iter().enumerate().map(|(index, mut events)| {
            events.sort();
            (
                format!("c{index}"),
                events
                    .into_iter()
                    .map(|(ts, step, channel)| (ts * HOUR, steps[step], channels[channel]))
                    .collect(),
            )
        }))
    })
}

proptest! {
    /// Every model shares out exactly the conversions (and value) on paths; any number of threads gives the same
    /// report.
    #[test]
    fn credit_sums_to_conversions_for_every_model(journeys in journeys_strategy(), order in 1usize..4, lookback in prop::option::of(1i64..20)) {
        let mut attribution = analysis();
        attribution.order = order;
        attribution.lookback_us = lookback.map(|hours| hours * HOUR);
        let report = attribute_journeys(&attribution, &journeys, 1);
        let conversions = report.conversions as f64;
        let sum = |model: fn(&TouchpointCredit) -> f64| -> f64 { report.touchpoints.iter().map(model).sum() };
        for (name, total) in [
            ("first", sum(|c| c.first_touch.conversions)),
            ("last", sum(|c| c.last_touch.conversions)),
            ("linear", sum(|c| c.linear.conversions)),
            ("position", sum(|c| c.position_based.conversions)),
            ("decay", sum(|c| c.time_decay.unwrap().conversions)),
        ] {
            prop_assert!((total - conversions).abs() < 1e-9, "{name}: {total} vs {conversions}");
        }
        let markov = sum(|c| c.markov.conversions);
        // Markov shares nothing when no touchpoint's removal changes anything (nothing converts).
        prop_assert!((markov - conversions).abs() < 1e-9 || (markov == 0.0 && report.conversion_probability == 0.0),
            "markov: {markov} vs {conversions}");
        prop_assert_eq!(attribute_journeys(&attribution, &journeys, 3), report);
    }
}
