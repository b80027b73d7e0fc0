//! Reports on small journeys written in the test DSL, held to reviewed snapshots (`insta`): a change to any
//! report's numbers or shape shows up as a diff to accept or fix (`cargo insta review`, or `INSTA_UPDATE=always`).

use waymark_analytics::step_counts::StepCounts;
use waymark_analytics::{run, Funnel, FunnelStep, ProcessMap, Variants};
use waymark_testkit::journeys;

fn shop() -> waymark_model::JourneySet {
    journeys(
        r#"
        # A small shop: two buy, one gets stuck in help, one leaves after viewing.
        ann: view@0 cart@5m "Order Completed"@9m
        bob: view@0 cart@1h help@2h/chat help@3h/chat
        cy:  view@0/app
        dee: view@0/app cart@30s "Order Completed"@2m
        "#,
    )
}

#[test]
fn process_map_of_a_small_shop() {
    insta::assert_json_snapshot!(run(&ProcessMap, &shop(), 2));
}

#[test]
fn variants_of_a_small_shop() {
    insta::assert_json_snapshot!(run(&Variants::default(), &shop(), 2));
}

#[test]
fn step_counts_of_a_small_shop() {
    insta::assert_json_snapshot!(run(&StepCounts::default(), &shop(), 2));
}

#[test]
fn funnel_of_a_small_shop() {
    let journeys = shop();
    let funnel = Funnel {
        steps: ["view", "cart", "Order Completed"]
            .into_iter()
            .map(FunnelStep::named)
            .collect(),
        window_us: 3_600_000_000,
        modes: Vec::new(),
        exclusions: Vec::new(),
        count_by: Default::default(),
        breakdown: None,
        drill_down: 5,
    };
    insta::assert_json_snapshot!(run(&funnel.prepare(&journeys).unwrap(), &journeys, 2));
}
