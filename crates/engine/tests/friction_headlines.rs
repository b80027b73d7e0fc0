//! A friction headline states the harm, never a comparison that reads as good news: on the retailer, on the
//! broadband provider and after the goal alike, every finding's headline is its title and its harm, and every
//! comparison its explanation draws has the affected customers doing worse.

mod common;

use waymark_analytics::{Finding, FrictionRequest};
use waymark_engine::demo::Business;

fn check(finding: &Finding) {
    if finding.harm.is_empty() {
        assert_eq!(finding.headline, finding.title, "{finding:?}");
    } else {
        assert_eq!(
            finding.headline,
            format!("{}: {}", finding.title, finding.harm),
            "the headline states the harm"
        );
    }
    // No rate in the headline: a share is a comparison, and comparisons belong in the explanation, worded by harm.
    assert!(
        !finding.headline.contains('%'),
        "a headline with a rate: {}",
        finding.headline
    );
    if finding.explanation.contains("Their goal rate is") {
        assert!(
            finding.goal_rate < finding.others_goal_rate,
            "the explanation compares a goal rate in which the affected do better: {}",
            finding.explanation
        );
    }
    if finding
        .explanation
        .contains("Comparable customers without it")
    {
        assert!(
            finding.comparable_goal_rate > finding.goal_rate && finding.lost_goals >= 0.5,
            "{}",
            finding.explanation
        );
    }
}

#[test]
fn every_headline_states_its_harm_on_two_businesses() {
    // The broadband provider's goal is not one of the usual names (docs/telecom.md).
    for (business, goals) in [
        (Business::Retail, vec![]),
        (Business::Telecom, vec!["Contract Signed".to_string()]),
    ] {
        let (_dir, engine) = common::business_engine(business, 3_000);
        let report = engine
            .analyse(&FrictionRequest {
                top: Some(60),
                goals,
                ..FrictionRequest::default()
            })
            .unwrap();
        assert!(report.findings.len() >= 5, "{business:?}: {report:?}");
        // Some findings are about customers who, on the whole, reach the goal more often than everyone else (they
        // got further): the explanation must not present that as the story.
        let flattering = report
            .findings
            .iter()
            .filter(|finding| !finding.after_goal && finding.goal_rate >= finding.others_goal_rate)
            .count();
        for finding in &report.findings {
            check(finding);
        }
        eprintln!(
            "{business:?}: {} findings, {flattering} whose customers reach the goal more often than the rest",
            report.findings.len()
        );
    }
}
