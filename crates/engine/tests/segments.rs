//! Segments as analyses see them, on the broadband provider (a business shaped unlike the retail demo):
//! `segment:NAME` filters and breaks down every analysis, its two sides partition the customers, members agree
//! with a count made straight from the journeys, and the size per day adds up to the members now.

mod common;

use std::collections::{BTreeSet, HashMap};
use waymark_engine::demo::Business;
use waymark_engine::rules::RulesFile;

#[test]
fn segments_filter_and_break_down_analyses_and_agree_with_the_journeys() {
    let (_dir, engine) = common::business_engine(Business::Telecom, 1_500);
    let journeys = engine.journeys();
    // The step most customers repeat, and who repeats it, straight from the journeys.
    let mut repeats: HashMap<u32, BTreeSet<String>> = HashMap::new();
    for index in 0..journeys.n_journeys() {
        let journey = journeys.journey(index);
        let mut seen: HashMap<u32, usize> = HashMap::new();
        for &step in journey.step {
            *seen.entry(step).or_default() += 1;
        }
        for (step, count) in seen {
            if count >= 2 {
                repeats
                    .entry(step)
                    .or_default()
                    .insert(journeys.customer_ids[index].to_string());
            }
        }
    }
    let (step, expected) = repeats
        .into_iter()
        .filter(|(step, _)| !journeys.step_names[*step as usize].contains(':'))
        .max_by_key(|(step, members)| (members.len(), std::cmp::Reverse(*step)))
        .unwrap();
    let step = journeys.step_names[step as usize].clone();
    assert!(expected.len() > 10, "{step}: {}", expected.len());

    let file = RulesFile::from_toml(&format!(
        "[[segments]]\nname = \"repeaters\"\ndescription = \"did {step} twice\"\ncondition = 'count(\"{step}\") >= 2'\n"
    ))
    .unwrap();
    engine.save_rules(&file).unwrap();
    let members = engine.segment_members().unwrap();
    let got: BTreeSet<String> = members["repeaters"].iter().cloned().collect();
    assert_eq!(got, expected, "members of count({step:?}) >= 2");

    let customers = |filter: serde_json::Value| {
        engine
            .analyse_json("overview", serde_json::json!({ "filter": filter }), None)
            .unwrap()
            .json["customers"]
            .as_u64()
            .unwrap()
    };
    let side = |value: bool| serde_json::json!({"where": [{"property": "segment:repeaters", "op": "=", "value": value}]});
    let all = customers(serde_json::json!({}));
    assert_eq!(customers(side(true)), expected.len() as u64);
    assert_eq!(customers(side(true)) + customers(side(false)), all);

    let moments = engine
        .analyse_json(
            "funnel",
            serde_json::json!({"steps": [journeys.step_names[journeys.step[0] as usize], step], "window": "365d",
                               "breakdown": {"property": "segment:repeaters", "top": 5}}),
            None,
        )
        .unwrap()
        .json
        .to_string();
    assert!(
        moments.contains("true") && moments.contains("false"),
        "{moments}"
    );

    let report = engine.segments_report(5).unwrap();
    let segment = &report.segments[0];
    assert_eq!(segment.members, expected.len());
    assert_eq!(segment.sample.len(), 5);
    assert_eq!(segment.column, "segment:repeaters");
    assert_eq!(segment.entered - segment.exited, expected.len() as u64);
    assert_eq!(segment.days.last().unwrap().size, expected.len() as u64);
    assert!(segment.days.windows(2).all(|w| w[0].day < w[1].day));
    let (total, page) = engine
        .segment_members_of("repeaters", 2, 3)
        .unwrap()
        .unwrap();
    assert_eq!(total, expected.len());
    assert_eq!(
        page,
        expected.iter().skip(2).take(3).cloned().collect::<Vec<_>>()
    );
    assert!(engine.segment_members_of("nobody", 0, 3).unwrap().is_none());

    let unknown = engine
        .analyse_json(
            "overview",
            serde_json::json!({"filter": {"where": [{"property": "segment:nope", "op": "=", "value": true}]}}),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("segment:repeaters"), "{unknown}");
}
