//! Attribution on ChannelAttribution's own example data (`../shared/data/channelattribution/`, read in place):
//! first, last and linear touch equal the package's heuristic models, and the order-1 transition matrix equals its
//! maximum-likelihood matrix. Higher orders are compared with the package itself in `bench/channelattribution.py`.

use std::collections::HashMap;
use std::path::PathBuf;
use waymark_analytics::attribution::{attribute, PathTable};

fn shared(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/channelattribution")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (these tests read the shared data in place)",
            path.display()
        )
    })
}

fn close(ours: f64, theirs: f64, relative: f64) -> bool {
    (ours - theirs).abs() <= relative * theirs.abs().max(1.0)
}

#[test]
fn heuristics_and_order_one_matrix_equal_channelattribution() {
    let (data, heuristic, channels, matrix) = (
        shared("Data.csv"),
        shared("heuristic_models.csv"),
        shared("transition_matrix_order1_channels.csv"),
        shared("transition_matrix_order1_transition_matrix.csv"),
    );
    let table = PathTable::parse_channelattribution(&data).unwrap();
    // 10,000 rows, of which some repeat a path: 5,408 distinct paths once their counts are added up.
    assert_eq!(table.paths.len(), 5_408);
    let report = attribute(&table, 1, None, true);
    assert_eq!(report.conversions, 19_785);
    assert_eq!(report.null_paths, 68_602);
    assert!(
        close(report.value, 74_802.971_584, 1e-12),
        "{}",
        report.value
    );
    assert_eq!(report.touchpoints.len(), 12);

    let ours: HashMap<&str, _> = report
        .touchpoints
        .iter()
        .map(|credit| (credit.touchpoint.as_str(), credit))
        .collect();
    for line in heuristic.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let credit = ours[fields[0]];
        let expected: Vec<f64> = fields[1..]
            .iter()
            .map(|field| field.parse().unwrap())
            .collect();
        let got = [
            credit.first_touch.conversions,
            credit.first_touch.value,
            credit.last_touch.conversions,
            credit.last_touch.value,
            credit.linear.conversions,
            credit.linear.value,
        ];
        for (column, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert!(
                close(*got, *expected, 1e-6),
                "{} column {}: ours {got}, ChannelAttribution {expected}",
                fields[0],
                column + 1
            );
        }
    }

    // Markov, order 1: the removal effects are exact, and the credit shares out every conversion.
    let markov: f64 = report
        .touchpoints
        .iter()
        .map(|credit| credit.markov.conversions)
        .sum();
    assert!(close(markov, 19_785.0, 1e-12), "{markov}");
    let markov_value: f64 = report
        .touchpoints
        .iter()
        .map(|credit| credit.markov.value)
        .sum();
    assert!(close(markov_value, 74_802.971_584, 1e-12), "{markov_value}");

    let names: HashMap<&str, &str> = channels
        .lines()
        .skip(1)
        .map(|line| line.split_once(',').unwrap())
        .collect();
    let label = |id: &str| names.get(id).copied().unwrap_or(id).to_string();
    let ours: HashMap<(String, String), f64> = report
        .transition_matrix
        .unwrap()
        .into_iter()
        .map(|row| ((row.from, row.to), row.probability))
        .collect();
    let mut compared = 0;
    for line in matrix.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let key = (label(fields[0]), label(fields[1]));
        let expected: f64 = fields[2].parse().unwrap();
        let got = ours.get(&key).copied().unwrap_or(0.0);
        assert!(
            (got - expected).abs() < 1e-9,
            "{key:?}: ours {got}, ChannelAttribution {expected}"
        );
        compared += 1;
    }
    assert_eq!(compared, 148);
    assert_eq!(
        ours.len(),
        148,
        "no transition that ChannelAttribution does not have"
    );
}

#[test]
fn higher_orders_share_out_every_conversion() {
    let data = shared("Data.csv");
    let table = PathTable::parse_channelattribution(&data).unwrap();
    for order in 2..=4 {
        let report = attribute(&table, order, None, false);
        let markov: f64 = report
            .touchpoints
            .iter()
            .map(|credit| credit.markov.conversions)
            .sum();
        assert!(close(markov, 19_785.0, 1e-12), "order {order}: {markov}");
        assert!(report
            .touchpoints
            .iter()
            .all(|credit| (0.0..=1.0).contains(&credit.removal_effect)));
    }
}
