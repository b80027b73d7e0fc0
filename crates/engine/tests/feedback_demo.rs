//! Feedback on the demo's unhelpful help article (docs/demo.md, planted friction 2) shows at that step: in the
//! feedback analysis, on the process map's node, and as the friction report's negative-feedback finding.

mod common;

use serde_json::json;

#[test]
fn the_unhelpful_article_shows_its_ratings_at_its_step() {
    let (_dir, engine) = common::demo_engine(4_000);
    let map = engine
        .analyse_json("process-map", json!({"feedback": true}), None)
        .unwrap()
        .json;
    let helpful = |step: &str| {
        map["feedback"][step]["helpful_rate"]
            .as_f64()
            .unwrap_or_else(|| panic!("no feedback on {step}: {}", map["feedback"]))
    };
    // Planted: rated helpful 20 % of the time, the other articles 85 % — on the web page and the app screen, which
    // are one step by default and two when split by platform.
    let lock = helpful("page:Help: Reset Smart Lock");
    let camera = helpful("page:Help: Pair Camera");
    assert!(lock < 0.35 && camera > 0.7, "{lock} vs {camera}");
    assert!(map["feedback"]["screen:Help: Reset Smart Lock"].is_null());
    let split = engine
        .analyse_json(
            "process-map",
            json!({"feedback": true, "filter": {"split_platforms": true}}),
            None,
        )
        .unwrap()
        .json;
    for platform in ["page", "screen"] {
        let rate = |step: &str| {
            split["feedback"][format!("{platform}:{step}")]["helpful_rate"]
                .as_f64()
                .unwrap()
        };
        let (lock, camera) = (rate("Help: Reset Smart Lock"), rate("Help: Pair Camera"));
        assert!(
            lock < 0.35 && camera > 0.7,
            "{platform}: {lock} vs {camera}"
        );
    }
    // The e-mailed CSAT survey rates the call (1–5; the demo answers 2 or 3): CSAT 0 %.
    assert_eq!(map["feedback"]["Call Ended"]["csat"], 0.0);

    let report = engine
        .analyse_json("feedback", json!({}), None)
        .unwrap()
        .json;
    let overall = &report["overall"];
    assert!(overall["responses"].as_u64().unwrap() > 100);
    assert_eq!(report["unattributed"], 0);

    let friction = engine
        .analyse_json("friction", json!({}), None)
        .unwrap()
        .json;
    let found = friction["findings"].as_array().unwrap().iter().any(|f| {
        f["kind"] == "negative_feedback"
            && f["title"]
                .as_str()
                .unwrap()
                .contains("Help: Reset Smart Lock")
    });
    assert!(found, "no negative-feedback finding on the article");
}
