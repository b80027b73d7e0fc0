use super::*;
use crate::run;

fn set(journeys: &[(&str, &[(i64, &str)])]) -> JourneySet {
    JourneySet::from_journeys(journeys.iter().map(|(customer, events)| {
        (
            customer.to_string(),
            events
                .iter()
                .map(|(ts, step)| (*ts, *step, "web"))
                .collect(),
        )
    }))
}

#[test]
fn the_fast_ordered_loop_equals_the_general_one() {
    use proptest::prelude::*;
    let names = ["a", "b", "c", "d", "e"];
    let journey = prop::collection::vec((0i64..50, 0usize..5), 0..40);
    proptest!(|(events in journey, steps in prop::collection::vec(0usize..5, 1..6), window in 0i64..60, within in prop::option::of(0i64..20))| {
        let mut ts = 0;
        let events: Vec<(i64, &str, &str)> = events
            .iter()
            .map(|(gap, step)| {
                ts += gap;
                (ts, names[*step], "web")
            })
            .collect();
        let journeys = JourneySet::from_journeys([("x".to_string(), events)]);
        let step_names: Vec<&str> = steps.iter().map(|step| names[*step]).collect();
        let mut funnel = Funnel::new(&step_names, window);
        if let Some(within) = within {
            funnel.steps.last_mut().unwrap().within_us = Some(within);
        }
        let prepared = funnel.prepare(&journeys).unwrap();
        // Distinct step names take the fast loop (repeated ones that occur take the general loop only).
        let distinct = steps.iter().collect::<std::collections::HashSet<_>>().len() == steps.len();
        prop_assert!(!distinct || prepared.plain_levels.is_some());
        prop_assume!(prepared.plain_levels.is_some());
        let range = 0..journeys.n_events();
        let mut paths = vec![[0; MAX_STEPS]; steps.len()];
        let fast = PreparedFunnel::ordered_plain(
            funnel.window_us,
            &prepared.within,
            prepared.plain_levels.as_ref().unwrap(),
            &journeys,
            range.clone(),
            &mut Vec::new(),
        );
        let general = prepared.ordered(&journeys, range, &mut paths);
        prop_assert_eq!(fast.level, general.level);
        prop_assert_eq!(&fast.path[..fast.level], &general.path[..general.level]);
    });
}

#[test]
fn times_between_steps_are_each_units_own() {
    use proptest::prelude::*;
    let names = ["a", "b", "c", "d"];
    let journey = prop::collection::vec((0i64..40, 0usize..4), 0..30);
    proptest!(|(journeys in prop::collection::vec(journey, 0..25), threads in 1usize..4)| {
        let journeys = JourneySet::from_journeys(journeys.iter().enumerate().map(|(index, events)| {
            let mut ts = 0;
            let events = events
                .iter()
                .map(|(gap, step)| {
                    ts += gap;
                    (ts * 1_000_000, names[*step], "web")
                })
                .collect();
            (format!("c{index}"), events)
        }));
        let funnel = Funnel::new(&names, 60_000_000);
        let prepared = funnel.prepare(&journeys).unwrap();
        let report = run(&prepared, &journeys, threads);
        // Each unit's own path, step by step.
        let mut expected: Vec<Vec<i64>> = vec![Vec::new(); names.len()];
        for index in 0..journeys.n_journeys() {
            let range = journeys.offsets[index]..journeys.offsets[index + 1];
            let outcome = prepared.outcome(&journeys, range);
            let ts = |position: usize| journeys.ts[outcome.path[position] as usize];
            for (step, durations) in expected.iter_mut().enumerate().take(outcome.level).skip(1) {
                durations.push(ts(step) - ts(step - 1));
            }
        }
        for (step, report) in report.steps.iter().enumerate() {
            prop_assert_eq!(&report.time_from_previous, &Timing::of(&mut expected[step]), "step {}", step);
        }
    });
}

#[test]
fn steps_named_like_nothing_in_the_data_are_pointed_out() {
    let journeys = set(&[
        ("ann", &[(0, "Searched"), (10, "Login Attempted")]),
        ("bob", &[(0, "Searched"), (10, "Order Completed")]),
    ]);
    let funnel = Funnel::new(&["searched", "Login*", "Nope", "Order"], 100);
    let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
    assert_eq!(
        report.warnings,
        [
            "Step 1 \"searched\" matches no step in the data (names are matched exactly, `*` as a wildcard); did you mean \"Searched\"?",
            "Step 3 \"Nope\" matches no step in the data (names are matched exactly, `*` as a wildcard).",
            "Step 4 \"Order\" matches no step in the data (names are matched exactly, `*` as a wildcard); did you mean \"Order Completed\"?",
        ]
    );
    let fine = Funnel::new(&["Searched", "Login*"], 100);
    let report = run(&fine.prepare(&journeys).unwrap(), &journeys, 1);
    assert!(report.warnings.is_empty());
    assert!(!serde_json::to_string(&report).unwrap().contains("warnings"));
}

#[test]
fn counts_reached_steps_inside_the_window() {
    let journeys = set(&[
        ("ann", &[(0, "view"), (10, "cart"), (20, "buy")]),
        ("bob", &[(0, "view"), (10, "cart"), (200, "buy")]),
        ("cat", &[(0, "cart"), (10, "buy")]),
        ("dan", &[(5, "view"), (6, "help")]),
    ]);
    let funnel = Funnel::new(&["view", "cart", "buy"], 100);
    let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 2);
    assert_eq!(report.counts(), [3, 2, 1]);
    assert_eq!(report.total, 4);
    assert_eq!(report.steps[0].dropped, 1);
    assert_eq!(report.steps[0].dropped_customers, ["dan"]);
    assert_eq!(report.steps[0].next_steps[0].step, "help");
    assert_eq!(report.steps[1].dropped_customers, ["bob"]);
    assert_eq!(report.steps[1].next_steps[0].step, "buy");
    let timing = report.steps[2].time_to_convert.as_ref().unwrap();
    assert_eq!(timing.median_secs, 20e-6);
}

#[test]
fn breakdown_attributes_to_the_first_or_last_touch() {
    let mut journeys = set(&[
        ("ann", &[(0, "view"), (10, "buy")]),
        ("bob", &[(0, "view"), (10, "buy")]),
        ("cat", &[(0, "view")]),
    ]);
    let mut builder = waymark_model::PropertyColumnBuilder::new("source");
    for value in ["ad", "mail", "mail", "ad", "ad"] {
        builder.push(Some(&serde_json::json!(value)));
    }
    journeys.properties.push(builder.finish());
    let mut funnel = Funnel::new(&["view", "buy"], 100);
    funnel.breakdown = Some(Breakdown {
        property: "source".into(),
        attribution: Attribution::FirstTouch,
        top: 10,
    });
    let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
    let groups = report.breakdown.unwrap().groups;
    assert_eq!(
        groups
            .iter()
            .map(|group| (group.value.as_str(), group.counts.clone()))
            .collect::<Vec<_>>(),
        [("ad", vec![2, 1]), ("mail", vec![1, 1])]
    );
    funnel.breakdown.as_mut().unwrap().attribution = Attribution::LastTouch;
    let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
    let groups = report.breakdown.unwrap().groups;
    // ann ends on mail, bob on ad, cat (step 1 only) on ad.
    assert_eq!(
        groups
            .iter()
            .map(|group| (group.value.as_str(), group.counts.clone()))
            .collect::<Vec<_>>(),
        [("ad", vec![2, 1]), ("mail", vec![1, 1])]
    );
}

#[test]
fn exclusions_void_the_chain_they_interrupt() {
    let journeys = set(&[
        ("ann", &[(0, "view"), (5, "error"), (10, "buy")]),
        ("bob", &[(0, "view"), (10, "buy"), (15, "error")]),
    ]);
    let mut funnel = Funnel::new(&["view", "buy"], 100);
    funnel.exclusions.push(Exclusion {
        condition: Condition::step("error"),
        after: 1,
        before: None,
    });
    let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
    assert_eq!(report.counts(), [1, 1]);
}

#[test]
fn any_order_and_attempts() {
    let journeys = set(&[(
        "ann",
        &[
            (0, "buy"),
            (10, "view"),
            (500, "view"),
            (900, "view"),
            (950, "buy"),
        ],
    )]);
    let mut funnel = Funnel::new(&["view", "buy"], 100);
    assert_eq!(
        run(&funnel.prepare(&journeys).unwrap(), &journeys, 1).counts(),
        [1, 1]
    );
    funnel.modes = vec![FunnelMode::AnyOrder];
    assert_eq!(
        run(&funnel.prepare(&journeys).unwrap(), &journeys, 1).counts(),
        [1, 1]
    );
    funnel.modes.clear();
    funnel.count_by = CountBy::Attempt;
    let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
    assert_eq!((report.total, report.counts()), (3, vec![3, 1]));
}

/// Unordered funnels count distinct steps, as PostHog's and Mixpanel's do: step k is any k of the funnel's steps
/// within the window, not its first k in any order. Hand-computed: funnel a, b, c with a window of 100.
#[test]
fn any_order_counts_any_k_distinct_steps_like_posthog() {
    let journeys = set(&[
        // c then b: two distinct steps (the first-k-in-any-order reading would give none, as there is no a).
        ("ann", &[(0, "c"), (10, "b")]),
        // a, c: two.
        ("bob", &[(0, "a"), (50, "c")]),
        // b, then a too late: one.
        ("cat", &[(0, "b"), (200, "a")]),
        // all three in reverse order within the window: three.
        ("dan", &[(0, "c"), (20, "b"), (40, "a")]),
        // the same step twice is one step.
        ("eve", &[(0, "b"), (5, "b")]),
        // a, then b and c too late for a's window but together in b's: two.
        ("fay", &[(0, "a"), (150, "b"), (160, "c")]),
        // nothing of the funnel.
        ("gus", &[(0, "x")]),
    ]);
    let mut funnel = Funnel::new(&["a", "b", "c"], 100);
    funnel.modes = vec![FunnelMode::AnyOrder];
    let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
    assert_eq!(report.counts(), [6, 4, 1]);
    // Time to convert is from the first step done to the last: dan took 40 µs to do all three.
    let timing = report.steps[2].time_to_convert.as_ref().unwrap();
    assert_eq!(timing.median_secs, 40e-6);
}

#[test]
fn bad_definitions_are_refused_with_a_reason() {
    let journeys = set(&[]);
    let funnel = Funnel::new(&["a", "b"], 10).with_modes(&[FunnelMode::AllowReentry]);
    assert!(funnel
        .prepare(&journeys)
        .err()
        .unwrap()
        .to_string()
        .contains("strict_order"));
    assert!(Funnel::new(&[], 10).prepare(&journeys).is_err());
    let mut funnel = Funnel::new(&["a"], 10);
    funnel.breakdown = Some(Breakdown {
        property: "plan".into(),
        attribution: Attribution::FirstTouch,
        top: 3,
    });
    assert!(funnel
        .prepare(&journeys)
        .err()
        .unwrap()
        .to_string()
        .contains("plan"));
}
