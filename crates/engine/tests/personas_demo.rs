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

/// A persona saved as a segment: its condition picks, as a live segment, the customers the report says it picks.
#[test]
fn a_persona_saved_as_a_segment_picks_what_its_rule_says() {
    let (_dir, engine) = common::demo_engine(2_000);
    let report = engine
        .analyse(&PersonasRequest {
            k: Some(4),
            ..PersonasRequest::default()
        })
        .unwrap();
    let support = report
        .personas
        .iter()
        .find(|p| {
            p.segment
                .as_ref()
                .is_some_and(|r| r.condition.contains("Device Not Working"))
        })
        .expect("the support seekers' condition names the broken device");
    let rule = support.segment.as_ref().unwrap();
    assert!(rule.precision > 0.9 && rule.recall > 0.9, "{rule:?}");
    let replaced = engine
        .save_segment(waymark_engine::rules::SegmentSpec {
            name: "support-seekers".into(),
            description: format!("Persona {}", support.name),
            condition: rule.condition.clone(),
            expect_steps: Vec::new(),
        })
        .unwrap();
    assert!(!replaced);
    let members = engine.segment_members().unwrap()["support-seekers"].len() as f64;
    let picked = support.customers as f64 * rule.recall / rule.precision;
    assert!(
        (members - picked).abs() <= 0.02 * picked + 1.0,
        "{members} members against {picked:.0} the rule picks"
    );
    // Saving it again replaces it; a condition with a problem changes nothing.
    assert!(engine
        .save_segment(waymark_engine::rules::SegmentSpec {
            name: "support-seekers".into(),
            description: String::new(),
            condition: rule.condition.clone(),
            expect_steps: Vec::new(),
        })
        .unwrap());
    let error = engine
        .save_segment(waymark_engine::rules::SegmentSpec {
            name: "broken".into(),
            description: String::new(),
            condition: "did(\"Device Not Workin\")".into(),
            expect_steps: Vec::new(),
        })
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown step 'Device Not Workin'"),
        "{error}"
    );
    assert_eq!(engine.rules_file().unwrap().segments.len(), 1);
}
