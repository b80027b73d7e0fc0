use super::*;
use crate::Runner;

const MINUTE: i64 = 60_000_000;

fn friction(journeys: &JourneySet) -> FrictionReport {
    let friction = Friction {
        goals: vec![Condition::step("buy")],
        ..Friction::default()
    };
    let runner = Runner::new(1);
    let prepared = friction.prepare(journeys, &runner).unwrap();
    runner.pass(&prepared, journeys)
}

fn journey(
    customer: usize,
    steps: &[&'static str],
) -> (String, Vec<(i64, &'static str, &'static str)>) {
    (
        format!("c{customer:03}"),
        steps
            .iter()
            .enumerate()
            .map(|(at, step)| (at as i64 * MINUTE, *step, "web"))
            .collect(),
    )
}

/// Everyone takes the same short path to the goal in the same time: nothing to report.
#[test]
fn no_friction_gives_no_findings() {
    let journeys =
        JourneySet::from_journeys((0..200).map(|c| journey(c, &["browse", "cart", "buy"])));
    let report = friction(&journeys);
    assert_eq!((report.customers, report.goal_rate), (200, 1.0));
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// 30 of 100 customers fail their login twice before getting in: a loop between the two steps and an error step,
/// each with exactly those 30 customers (hand-counted), and 60 login failures in all.
#[test]
fn a_login_loop_is_found_with_its_customers() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| {
        if c < 30 {
            journey(
                c,
                &[
                    "login",
                    "Login Failed",
                    "login",
                    "Login Failed",
                    "login",
                    "home",
                    "buy",
                ],
            )
        } else {
            journey(c, &["login", "home", "buy"])
        }
    }));
    let report = friction(&journeys);
    let find = |kind: FindingKind| {
        report
            .findings
            .iter()
            .find(|finding| finding.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} finding: {:#?}", report.findings))
    };
    let looped = find(FindingKind::Loop);
    assert_eq!(looped.customers, 30, "{looped:#?}");
    let errors = find(FindingKind::ErrorEvent);
    assert_eq!(
        (errors.customers, errors.occurrences),
        (30, 60),
        "{errors:#?}"
    );
    assert_eq!(errors.step, "Login Failed");
}

/// Half the customers stop at the shipping step that the other half pass on their way to the goal: a drop-off there,
/// with those 50 customers, none of whom reach the goal.
#[test]
fn a_drop_off_on_the_goal_path_is_found() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| {
        if c % 2 == 0 {
            journey(c, &["browse", "cart", "shipping"])
        } else {
            journey(c, &["browse", "cart", "shipping", "pay", "buy"])
        }
    }));
    let report = friction(&journeys);
    let drop = report
        .findings
        .iter()
        .find(|finding| finding.kind == FindingKind::DropOff)
        .unwrap_or_else(|| panic!("no drop-off: {:#?}", report.findings));
    assert_eq!(
        (drop.step.as_str(), drop.customers, drop.goal_rate),
        ("shipping", 50, 0.0),
        "{drop:#?}"
    );
}
