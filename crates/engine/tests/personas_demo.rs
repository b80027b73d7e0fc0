//! Personas on the demo recover its kinds of customer — buyers via the store, online buyers, support seekers,
//! browsers (docs/demo.md) — measured by the adjusted Rand index against labels read from what the generator made
//! each customer do.

mod common;

use waymark_analytics::personas::{adjusted_rand_index, PersonasRequest};

/// The generator's kind of each journey: it sought support after buying, bought in store, bought online, or
/// never bought (a browser, including those who gave up at login or checkout).
fn kind(steps: &[&str]) -> usize {
    if steps.contains(&"Device Not Working") {
        0
    } else if steps.contains(&"Store Visit") {
        1
    } else if steps.contains(&"Order Completed") {
        2
    } else {
        3
    }
}

#[test]
fn personas_recover_the_demo_s_kinds_of_customer() {
    let (_dir, engine) = common::demo_engine(4_000);
    let report = engine
        .analyse(&PersonasRequest {
            k: Some(4),
            ..PersonasRequest::default()
        })
        .unwrap();
    let journeys = engine.journeys();
    let truth: Vec<usize> = (0..journeys.n_journeys())
        .map(|index| {
            let journey = journeys.journey(index);
            let steps: Vec<&str> = journey
                .step
                .iter()
                .map(|s| journeys.step_names[*s as usize].as_str())
                .collect();
            kind(&steps)
        })
        .collect();
    let ari = adjusted_rand_index(&truth, &report.assignment);
    println!("adjusted Rand index against the generator's kinds: {ari:.3}");
    for p in &report.personas {
        println!(
            "{}. {} ({} customers, goal {:?})",
            p.id, p.name, p.customers, p.goal_rate
        );
    }
    assert!(ari > 0.3, "ARI {ari:.3}");
    // A persona of non-buyers and one of support seekers are among them, each named by what it does.
    assert!(report
        .personas
        .iter()
        .any(|p| p.goal_rate == Some(0.0) || p.goal_rate.is_some_and(|g| g < 0.1)));
    assert!(report.personas.iter().any(|p| p
        .distinctive_steps
        .iter()
        .any(|d| d.step == "Device Not Working")));
}
