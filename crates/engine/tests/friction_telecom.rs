//! `friction` on the second demo business, a broadband provider shaped unlike the retailer (docs/telecom.md): every
//! planted source, before and after the goal, is among the top 8 findings — including a slow activation that no
//! event gives a standard time for — and what is planted as *not* friction (comparing plans), identity calls and
//! one event dated years ahead stay out of them.

mod common;

use waymark_analytics::{Finding, FindingKind, FrictionRequest};
use waymark_engine::demo::Business;

#[test]
fn every_planted_source_is_in_the_top_8() {
    let (_dir, engine) = common::business_engine(Business::Telecom, 6_000);
    let request: FrictionRequest = serde_json::from_value(serde_json::json!({
        "goals": ["Contract Signed"],
        "standard_times": { "Number Port Requested": "48h" }
    }))
    .unwrap();
    let report = engine.analyse(&request).unwrap();
    let top: Vec<&Finding> = report.findings.iter().take(8).collect();
    let summary = waymark_analytics::query::text::friction(&report);
    let find = |kind: FindingKind, step: &str, after_goal: bool| {
        top.iter()
            .find(|f| f.kind == kind && f.title.contains(step) && f.after_goal == after_goal)
            .copied()
    };
    let any = |candidates: &[(FindingKind, &str, bool)], source: &str| -> Vec<&Finding> {
        let found: Vec<&Finding> = candidates
            .iter()
            .filter_map(|(kind, step, after)| find(*kind, step, *after))
            .collect();
        assert!(
            !found.is_empty(),
            "{source} is not in the top 8:\n{summary}"
        );
        found
    };

    // 1. Before the goal: the identity check loop on passports.
    any(
        &[
            (FindingKind::Loop, "Identity Check Failed", false),
            (FindingKind::ErrorEvent, "Identity Check Failed", false),
        ],
        "the identity check loop",
    );
    // 2. Before the goal: the installation-fee drop-off.
    any(
        &[(FindingKind::DropOff, "Installation Fee Shown", false)],
        "the installation-fee drop-off",
    );
    // 3. After the goal: the slow gigabit activation, without any standard time, located by the plan trait.
    let slow = any(
        &[(
            FindingKind::SlowStep,
            "Engineer Visit Booked → Line Activated",
            true,
        )],
        "the slow activation",
    )[0];
    let concentration = slow.concentration.as_ref().expect("located");
    assert_eq!(
        (
            concentration.property.as_str(),
            concentration.value.as_str()
        ),
        ("plan", "gigabit"),
        "{}",
        slow.explanation
    );
    assert!(
        slow.median_secs.unwrap() > 10.0 * 86_400.0,
        "{}",
        slow.explanation
    );
    // 4. After the goal: the unhelpful router article and the calls it causes.
    any(
        &[
            (FindingKind::NegativeFeedback, "Help: Router Lights", true),
            (FindingKind::ChannelJump, "Help: Router Lights", true),
            (FindingKind::RepeatContact, "Help: Router Lights", true),
        ],
        "the router article",
    );
    // 5. After the goal: number porting stuck past its 48 h standard.
    any(
        &[(FindingKind::Stuck, "Number Port Requested", true)],
        "the stuck porting",
    );

    // Not friction: comparing plans (its customers sign more), identity calls, the far-future event.
    for finding in &report.findings {
        assert!(
            !(finding.kind == FindingKind::Loop && finding.title.contains("Plans Compared")),
            "{}\n{summary}",
            finding.title
        );
        for identity in ["identify", "alias", "group"] {
            assert!(!finding.title.contains(identity), "{}", finding.title);
        }
    }
    assert!(report.as_of.starts_with("2026-"), "now is {}", report.as_of);
}
