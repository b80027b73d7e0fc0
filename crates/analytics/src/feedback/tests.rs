//! CSAT and NPS by hand on a small fixture, the rated step found both ways, the same report for any split.

use super::*;
use serde_json::json;
use waymark_model::PropertyColumnBuilder;

const MIN: i64 = 60_000_000;

/// Six customers; `fb` is a feedback event whose fields are given per customer.
fn fixture() -> JourneySet {
    let mut set = JourneySet::from_journeys([
        (
            "a".to_string(),
            vec![
                (0, "view", "web"),
                (MIN, "article", "web"),
                (2 * MIN, "fb", "web"),
                (3 * MIN, "call", "call_center"),
            ],
        ),
        (
            "b".to_string(),
            vec![(0, "article", "app"), (MIN, "fb", "app")],
        ),
        (
            "c".to_string(),
            vec![(0, "article", "web"), (MIN, "fb", "web")],
        ),
        // Rates the article after buying: `rated_step` names it.
        (
            "d".to_string(),
            vec![
                (0, "article", "web"),
                (MIN, "buy", "web"),
                (2 * MIN, "fb", "email"),
            ],
        ),
        (
            "e".to_string(),
            vec![(0, "checkout", "web"), (MIN, "fb", "web")],
        ),
        // Nothing before it to rate.
        ("f".to_string(), vec![(0, "fb", "web")]),
    ]);
    let answers = [
        json!({"helpful": false, "rating": 2, "comment": "Did not explain the reset"}),
        json!({"helpful": true, "rating": 5}),
        json!({"helpful": "no", "rating": "3", "nps": 6, "comment": "The reset steps are wrong"}),
        json!({"rated_step": "article", "rating": 4, "nps": 10}),
        json!({"nps": 9, "comment": "Smooth"}),
        json!({"rating": 5}),
    ];
    for name in ["helpful", "rating", "nps", "comment", "rated_step"] {
        let mut column = PropertyColumnBuilder::new(name);
        for (index, answer) in answers.iter().enumerate() {
            let journey = set.journey(index);
            for event in journey.start..journey.start + journey.len() {
                let is_feedback = set.step_names[set.step[event] as usize] == "fb";
                column.push(is_feedback.then(|| &answer[name]).filter(|v| !v.is_null()));
            }
        }
        set.properties.push(column.finish());
    }
    set
}

fn analysis(request: FeedbackRequest) -> Feedback {
    request.spec(&DataInfo { step_names: &[] }).unwrap()
}

#[test]
fn csat_and_nps_match_a_hand_calculation_on_the_rated_steps() {
    let set = fixture();
    let feedback = analysis(FeedbackRequest::default());
    let report = feedback.run(&set, &Runner::new(1)).unwrap();
    assert_eq!(report, feedback.run(&set, &Runner::new(4)).unwrap());

    // Overall: ratings 2, 5, 3, 4, 5 → 3 of 5 at 4 or more: CSAT 60 %. NPS answers 6, 10, 9: 2 promoters,
    // 1 detractor → (2 − 1) / 3 × 100.
    let o = &report.overall;
    assert_eq!(
        (o.responses, o.ratings, o.nps_answers, o.comments),
        (6, 5, 3, 3)
    );
    assert_eq!(o.csat, Some(60.0));
    assert!((o.nps.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(o.mean_rating, Some(19.0 / 5.0));
    assert_eq!(report.unattributed, 1);

    // The article, rated by a, b, c and (by name, after buying) d: helpful 1 of 3, ratings 2, 5, 3, 4 → CSAT 50 %,
    // mean 3.5; NPS 6 and 10 → 0.
    let article = &report.steps[0];
    assert_eq!(article.step, "article");
    let m = &article.metrics;
    assert_eq!((m.responses, m.helpful, m.not_helpful), (4, 1, 2));
    assert_eq!(m.helpful_rate, Some(1.0 / 3.0));
    assert_eq!(
        (m.csat, m.mean_rating, m.nps),
        (Some(50.0), Some(3.5), Some(0.0))
    );
    // Per channel of the rated instance: d's answer came by e-mail but rates the web article.
    let web = &article.channels["web"];
    assert_eq!((web.responses, web.ratings), (3, 3));
    assert!((web.csat.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(article.channels["app"].csat, Some(100.0));
    assert_eq!(article.matching_comments, 2);
    // Latest first: a's at minute 2, then c's at minute 1.
    assert_eq!(article.latest_comments[0].text, "Did not explain the reset");
    assert_eq!(article.latest_comments[1].customer, "c");
    let checkout = report.steps.iter().find(|s| s.step == "checkout").unwrap();
    assert_eq!(checkout.metrics.nps, Some(100.0));
    assert!(
        report.missing_properties.is_empty(),
        "{:?}",
        report.missing_properties
    );
}

#[test]
fn comments_are_searched_per_step_and_stages_come_from_a_blueprint() {
    let set = fixture();
    let request: FeedbackRequest = serde_json::from_value(json!({
        "search": "RESET",
        "comments": 1,
        "blueprint": {"name": "help", "stages": [
            {"name": "Self-service", "steps": ["view", "article"]},
            {"name": "Buy", "steps": ["checkout", "buy"]}
        ]}
    }))
    .unwrap();
    let report = analysis(request).run(&set, &Runner::new(2)).unwrap();
    let article = &report.steps[0];
    assert_eq!(
        (article.matching_comments, article.latest_comments.len()),
        (2, 1)
    );
    assert_eq!(article.stage.as_deref(), Some("Self-service"));
    let checkout = report.steps.iter().find(|s| s.step == "checkout").unwrap();
    assert_eq!(checkout.matching_comments, 0);
    let stages: Vec<(&str, u64)> = report
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.metrics.responses))
        .collect();
    assert_eq!(stages, [("Self-service", 4), ("Buy", 1)]);

    // Other field names, for another survey tool; names no event has are said.
    let request: FeedbackRequest = serde_json::from_value(
        json!({"rating_properties": ["stars"], "nps_property": "recommend"}),
    )
    .unwrap();
    let report = analysis(request).run(&set, &Runner::new(1)).unwrap();
    assert_eq!(report.overall.ratings, 0);
    assert_eq!(report.missing_properties, ["stars", "recommend"]);
    let bad: FeedbackRequest = serde_json::from_value(json!({"satisfied_from": 7})).unwrap();
    let error = bad
        .spec(&DataInfo { step_names: &[] })
        .unwrap_err()
        .to_string();
    assert!(error.contains("satisfied_from"), "{error}");
}

#[test]
fn an_answer_naming_a_step_outside_the_selection_rates_nothing_here() {
    // The rated page was filtered out: the answer must not land on the step before it.
    let mut set = JourneySet::from_journeys([(
        "a".to_string(),
        vec![(0, "Support Requested", "web"), (MIN, "fb", "web")],
    )]);
    for (name, value) in [
        ("helpful", json!(false)),
        ("rated_step", json!("page:Help")),
    ] {
        let mut column = PropertyColumnBuilder::new(name);
        column.push(None);
        column.push(Some(&value));
        set.properties.push(column.finish());
    }
    let report = analysis(FeedbackRequest::default())
        .run(&set, &Runner::new(1))
        .unwrap();
    assert!(report.steps.is_empty(), "{:?}", report.steps);
    assert_eq!((report.unattributed, report.overall.not_helpful), (1, 1));
}
