use super::*;
use crate::run;
use waymark_model::JourneySet;

const MIN: i64 = 60_000_000;

fn purchase() -> Blueprint {
    Blueprint {
        name: "purchase".into(),
        goal: Some("buy".into()),
        stages: vec![
            StageDesign {
                name: "Explore".into(),
                steps: vec![StepDesign::Name("view".into())],
                ..StageDesign::default()
            },
            StageDesign {
                name: "Checkout".into(),
                steps: vec![
                    StepDesign::Name("cart".into()),
                    StepDesign::Detailed(DetailedStep {
                        one_of: vec!["pay card".into(), "pay invoice".into()],
                        ..DetailedStep::default()
                    }),
                    StepDesign::Name("buy".into()),
                ],
                channels: vec!["web".into()],
                standard_time: Some("30m".into()),
                ..StageDesign::default()
            },
        ],
        ..Blueprint::default()
    }
}

fn journeys() -> JourneySet {
    JourneySet::from_journeys([
        // Fits.
        (
            "fit".to_string(),
            vec![
                (0, "view", "web"),
                (MIN, "cart", "web"),
                (2 * MIN, "pay card", "web"),
                (3 * MIN, "buy", "web"),
            ],
        ),
        // Skips the cart, buys.
        (
            "skip".to_string(),
            vec![
                (0, "view", "web"),
                (MIN, "pay invoice", "web"),
                (2 * MIN, "buy", "web"),
            ],
        ),
        // A help detour, an app payment, an hour in checkout, no purchase.
        (
            "detour".to_string(),
            vec![
                (0, "view", "web"),
                (MIN, "cart", "web"),
                (2 * MIN, "help", "web"),
                (70 * MIN, "pay card", "app"),
            ],
        ),
        // Back to browsing after the cart.
        (
            "back".to_string(),
            vec![
                (0, "view", "web"),
                (MIN, "cart", "web"),
                (2 * MIN, "view", "web"),
            ],
        ),
    ])
}

#[test]
fn each_deviation_is_found_in_its_stage() {
    let set = journeys();
    let compiled = purchase().compile(&set).unwrap();
    let kinds = |index: usize| -> Vec<(DeviationKind, String, String)> {
        let journey = set.journey(index);
        compiled
            .conform(journey)
            .deviations
            .into_iter()
            .map(|d| (d.kind, d.stage, d.step))
            .collect()
    };
    assert!(kinds(0).is_empty(), "{:?}", kinds(0));
    assert!(compiled.conform(set.journey(0)).fits);
    assert_eq!(
        kinds(1),
        [(
            DeviationKind::Skipped,
            "Checkout".to_string(),
            "cart".to_string()
        )]
    );
    let detour = kinds(2);
    assert!(detour.contains(&(DeviationKind::Unexpected, "Checkout".into(), "help".into())));
    assert!(detour.contains(&(
        DeviationKind::OffChannel,
        "Checkout".into(),
        "pay card | pay invoice".into()
    )));
    assert!(detour.contains(&(
        DeviationKind::OverStandardTime,
        "Checkout".into(),
        String::new()
    )));
    assert!(detour.contains(&(
        DeviationKind::DeadEnd,
        "Checkout".into(),
        "pay card | pay invoice".into()
    )));
    // Back to browsing: a repeat, and a dead end after the cart (the goal never came), listed last.
    assert_eq!(
        kinds(3),
        [
            (
                DeviationKind::Repeated,
                "Explore".to_string(),
                "view".to_string()
            ),
            (
                DeviationKind::DeadEnd,
                "Checkout".to_string(),
                "cart".to_string()
            )
        ]
    );
    let visits = compiled.conform(set.journey(2)).stages;
    assert_eq!(
        visits
            .iter()
            .map(|v| (v.stage.as_str(), v.duration_us))
            .collect::<Vec<_>>(),
        [("Explore", MIN), ("Checkout", 69 * MIN)]
    );
}

#[test]
fn the_report_is_the_same_for_any_split_and_counts_goals_lost() {
    let set = journeys();
    let compiled = purchase().compile(&set).unwrap();
    let one = compiled.report(run(&compiled, &set, 1), 20);
    assert_eq!(one, compiled.report(run(&compiled, &set, 3), 20));
    assert_eq!((one.journeys, one.fitness.fitting_journeys), (4, 1));
    // Two of four bought: the fitting one and the one that skipped the cart.
    assert_eq!(one.goal_rate_fitting, Some(1.0));
    assert_eq!(one.goal_rate_deviating, Some(1.0 / 3.0));
    let checkout = &one.stages[1];
    assert_eq!((checkout.entered, checkout.over_standard), (4, 1));
    let unexpected = one
        .deviations
        .iter()
        .find(|d| d.kind == DeviationKind::Unexpected)
        .unwrap();
    // The detour never bought; the three others in checkout bought 2 of 3.
    assert_eq!((unexpected.goal_rate, unexpected.journeys), (Some(0.0), 1));
    assert!((unexpected.goals_lost.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert!(
        unexpected
            .headline
            .starts_with("1 goal lost: 1 journey did help in Checkout"),
        "{}",
        unexpected.headline
    );
    // The token counts add up to the per-journey replays.
    let mut sum = net::Tokens::default();
    for index in 0..set.n_journeys() {
        sum.add(compiled.conform(set.journey(index)).tokens);
    }
    assert_eq!(one.fitness.tokens, sum);
    // Every journey went Explore → Checkout and ended there.
    let flows: Vec<(&str, &str, u64, &str)> = one
        .stage_flows
        .iter()
        .map(|f| (f.from.as_str(), f.to.as_str(), f.journeys, f.kind.as_str()))
        .collect();
    assert_eq!(
        flows,
        [
            ("Explore", "Checkout", 4, "next"),
            ("Checkout", "", 4, "end")
        ]
    );
}

#[test]
fn any_order_stages_and_optional_steps_replay_through_invisible_transitions() {
    let blueprint = Blueprint {
        name: "onboarding".into(),
        stages: vec![StageDesign {
            name: "Setup".into(),
            order: StageOrder::Any,
            steps: vec![
                StepDesign::Name("profile".into()),
                StepDesign::Name("payment".into()),
                StepDesign::Detailed(DetailedStep {
                    step: Some("tour".into()),
                    optional: true,
                    ..DetailedStep::default()
                }),
            ],
            ..StageDesign::default()
        }],
        ..Blueprint::default()
    };
    let set = JourneySet::from_journeys([
        (
            "a".to_string(),
            vec![(0, "payment", "web"), (1, "profile", "web")],
        ),
        (
            "b".to_string(),
            vec![
                (0, "tour", "web"),
                (1, "profile", "web"),
                (2, "payment", "web"),
            ],
        ),
        ("c".to_string(), vec![(0, "profile", "web")]),
    ]);
    let compiled = blueprint.compile(&set).unwrap();
    assert!(compiled.conform(set.journey(0)).fits);
    assert!(compiled.conform(set.journey(1)).fits);
    assert!(!compiled.conform(set.journey(2)).fits);
}

#[test]
fn a_bad_blueprint_names_its_field() {
    let set = journeys();
    let mut bad = purchase();
    bad.stages[1].standard_time = Some("soon".into());
    let error = bad.compile(&set).unwrap_err().to_string();
    assert!(error.contains("stages[1].standard_time"), "{error}");
    let mut bad = purchase();
    bad.stages[0].steps[0] = StepDesign::Detailed(DetailedStep::default());
    assert!(bad
        .compile(&set)
        .unwrap_err()
        .to_string()
        .contains("stages[0].steps[0]"));
    let mut bad = purchase();
    bad.name = "Purchase Journey".into();
    assert!(bad.compile(&set).unwrap_err().to_string().contains("name"));
    let parsed: Blueprint = toml_like(
        r#"{"name": "p", "stages": [{"name": "S", "steps": ["a", {"one_of": ["b", "c"], "optional": true}]}]}"#,
    );
    assert_eq!(parsed.stages[0].steps.len(), 2);
}

fn toml_like(json: &str) -> Blueprint {
    serde_json::from_str(json).unwrap()
}

#[test]
fn step_patterns_match_anywhere_as_in_every_analysis() {
    let set = JourneySet::from_journeys([(
        "a".to_string(),
        vec![
            (0, "page:Help: Reset", "web"),
            (MIN, "screen:Help: Pair", "app"),
        ],
    )]);
    let blueprint = Blueprint {
        name: "help".into(),
        stages: vec![StageDesign {
            name: "Self-service".into(),
            steps: vec![
                StepDesign::Name("*Help: Reset".into()),
                StepDesign::Name("screen:*Pair".into()),
            ],
            ..StageDesign::default()
        }],
        ..Blueprint::default()
    };
    let compiled = blueprint.compile(&set).unwrap();
    assert!(compiled.unknown_steps.is_empty());
    assert!(compiled.conform(set.journey(0)).fits);
}
