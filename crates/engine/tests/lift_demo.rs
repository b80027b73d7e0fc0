//! The demo's planted intervention, measured: the checkout reminder decided live as the demo arrives, its SMS
//! written into the journeys, and the lift report recovering the effect the generator planted.

use std::sync::Arc;
use waymark_engine::demo::planted::planted_intervention_effect;
use waymark_engine::demo::{DemoConfig, Plant, REMINDER_HOLDOUT, REMINDER_TRIGGER};
use waymark_engine::lift::LiftRequest;
use waymark_engine::Engine;
use waymark_store::StoreOptions;

#[test]
fn the_lift_report_recovers_the_planted_reminder_effect() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    engine
        .ingest_demo(
            DemoConfig {
                customers: 10_000,
                seed: 11,
                plant: Plant {
                    intervention: true,
                    incident: false,
                },
                ..Default::default()
            },
            &mut || {},
        )
        .unwrap();
    let report = engine.rules_lift(&LiftRequest::default()).unwrap();
    assert_eq!(report.goals, vec!["Order Completed".to_string()]);
    assert_eq!(report.triggers.len(), 1, "{report:#?}");
    let lift = &report.triggers[0];
    assert_eq!((lift.trigger.as_str(), lift.version), (REMINDER_TRIGGER, 1));
    assert_eq!(lift.holdout, Some(REMINDER_HOLDOUT));
    let (treated, held) = (&lift.stats.treated, &lift.stats.held_out);
    let share = held.customers as f64 / (treated.customers + held.customers) as f64;
    assert!(
        (share - REMINDER_HOLDOUT).abs() < 0.04,
        "the holdout is a fifth of the customers: {share}"
    );
    assert!(treated.customers > 500, "{lift:#?}");
    let difference = lift.stats.goal_rate_difference.unwrap();
    let truth = planted_intervention_effect();
    assert!(
        difference.low <= truth && truth <= difference.high,
        "the planted effect {truth:.3} is inside [{:.3}, {:.3}]",
        difference.low,
        difference.high
    );
    assert!(
        difference.low > 0.0 && difference.p_value < 0.001,
        "{difference:?}"
    );
    assert!(
        lift.headline.starts_with("checkout-reminder v1 raises"),
        "{}",
        lift.headline
    );
    // Each treated customer's reminder is in their journey, as its trigger's event action wrote it.
    let journeys = engine.journeys();
    let reminder = journeys
        .step_names
        .iter()
        .position(|s| s == "Checkout Reminder Sent")
        .expect("reminders were written into the journeys") as u32;
    let sent = journeys.step.iter().filter(|&&s| s == reminder).count() as u64;
    assert_eq!(sent, lift.delivered, "one reminder per treated abandoner");
}
