//! `friction` finds the friction planted in the demo (docs/demo.md), ranks each source among its top findings and
//! says why: the Android login loop, the unhelpful help article, the slow installation in the North, the
//! shipping-cost drop-off.

mod common;

use waymark_analytics::FrictionRequest;
use waymark_analytics::{Finding, FindingKind};

#[test]
fn every_planted_friction_source_is_in_the_top_findings() {
    let (_dir, engine) = common::demo_engine(6_000);
    let report = engine.analyse(&FrictionRequest::default()).unwrap();
    assert_eq!(
        report.goals,
        ["Order Completed"],
        "the usual goal name is found in the data"
    );
    let top: Vec<&Finding> = report.findings.iter().take(15).collect();
    let summary: Vec<String> = top
        .iter()
        .map(|finding| format!("{:.0}  {}", finding.impact, finding.title))
        .collect();
    let find = |kind: FindingKind, step: &str| {
        top.iter()
            .find(|finding| finding.kind == kind && finding.title.contains(step))
            .unwrap_or_else(|| {
                panic!(
                    "no {kind:?} finding about {step} in the top 15:\n{}",
                    summary.join("\n")
                )
            })
    };

    // 1. The login failure loop on Android, which pushes customers to the contact centre.
    let login = find(FindingKind::Loop, "Login Failed");
    assert!(
        login.explanation.contains("android_app"),
        "{}",
        login.explanation
    );
    assert!(login.goal_rate < 1.0);
    let errors = find(FindingKind::ErrorEvent, "Login Failed");
    assert_eq!(errors.concentration.as_ref().unwrap().value, "android_app");
    find(FindingKind::ChannelJump, "Login Failed");

    // 2. The unhelpful article: rated unhelpful far more than the others, and followed by calls.
    let feedback = find(FindingKind::NegativeFeedback, "Help: Reset Smart Lock");
    assert!(
        feedback.rate > 0.7 && feedback.typical_rate < 0.3,
        "{}",
        feedback.explanation
    );
    find(FindingKind::ChannelJump, "Help: Reset Smart Lock");

    // 3. The slow installation against its 72 h standard, concentrated in the North.
    let slow = find(FindingKind::SlowAgainstStandard, "Installation Scheduled");
    assert!(slow.after_goal, "installation follows the order");
    assert_eq!(
        slow.concentration.as_ref().unwrap().value,
        "North",
        "{}",
        slow.explanation
    );
    assert!(slow.median_secs.unwrap() > 72.0 * 3600.0);

    // 4. The shipping-cost drop-off.
    let shipping = find(FindingKind::DropOff, "Shipping Options Viewed");
    assert!(
        shipping.explanation.contains("never reach the goal"),
        "{}",
        shipping.explanation
    );

    // Every finding names customers and explains itself in words.
    for finding in &top {
        assert!(
            !finding.example_customers.is_empty() && finding.explanation.len() > 60,
            "{finding:?}"
        );
        // What it cost: after the goal, said so; before, the goal rate when it is worse than everyone else's, the
        // goals lost against comparable customers, the extra contacts or the delay.
        let outcome = if finding.after_goal {
            finding.explanation.contains("after they reached the goal")
        } else {
            ["goal rate", "goals lost", "extra contacts", "of delay"]
                .iter()
                .any(|cost| finding.explanation.contains(cost))
        };
        assert!(outcome, "{}", finding.explanation);
        assert!(!finding.harm.is_empty(), "{finding:?}");
    }
    // The example customers exist.
    let someone = &shipping.example_customers[0];
    assert!(engine.customer(someone).unwrap().is_some(), "{someone}");
}
