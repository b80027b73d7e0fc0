//! Hand-computed cases, one or more per kind of finding, and data with no friction at all.

use super::*;
use crate::Runner;
use waymark_model::PropertyColumnBuilder;

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn run(friction: Friction, journeys: &JourneySet) -> FrictionReport {
    let runner = Runner::new(1);
    let prepared = friction.prepare(journeys, &runner).unwrap();
    runner.pass(&prepared, journeys)
}

fn friction(journeys: &JourneySet) -> FrictionReport {
    run(
        Friction {
            goals: vec![Condition::step("buy")],
            ..Friction::default()
        },
        journeys,
    )
}

/// A customer and their events: (time µs, step, channel).
type Customer = (String, Vec<(i64, &'static str, &'static str)>);

fn journey(customer: usize, steps: &[&'static str]) -> Customer {
    (
        format!("c{customer:03}"),
        steps
            .iter()
            .enumerate()
            .map(|(at, step)| (at as i64 * MINUTE, *step, "web"))
            .collect(),
    )
}

/// Adds a property column: `value(customer, step)` for each event.
fn with_property(
    journeys: &mut JourneySet,
    name: &str,
    value: impl Fn(usize, &str) -> Option<Value>,
) {
    let mut column = PropertyColumnBuilder::new(name);
    for index in 0..journeys.n_journeys() {
        let journey = journeys.journey(index);
        for event in journey.start..journey.start + journey.len() {
            let step = &journeys.step_names[journeys.step[event] as usize];
            column.push(value(index, step).as_ref());
        }
    }
    journeys.properties.push(column.finish());
}

fn find(report: &FrictionReport, kind: FindingKind) -> &Finding {
    report
        .findings
        .iter()
        .find(|finding| finding.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} finding: {:#?}", report.findings))
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

/// 30 of 100 customers fail their login twice; 20 of them get in and buy, 10 give up, while the 70 whose first
/// login works all buy. The loop and the error step each have exactly those 30 customers; the error interrupts
/// `login`, where 30 % of the customers hit it; against the 70 comparable customers each costs 30 × (1 − 20/30)
/// = 10 goals.
#[test]
fn a_login_loop_is_found_with_its_customers() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| match c {
        0..20 => journey(
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
        ),
        20..30 => journey(c, &["login", "Login Failed", "login", "Login Failed"]),
        _ => journey(c, &["login", "home", "buy"]),
    }));
    let report = friction(&journeys);
    let looped = find(&report, FindingKind::Loop);
    assert_eq!(looped.customers, 30, "{looped:#?}");
    assert!((looped.lost_goals - 10.0).abs() < 1e-9, "{looped:#?}");
    let errors = find(&report, FindingKind::ErrorEvent);
    assert_eq!(
        (errors.customers, errors.occurrences, errors.exposed),
        (30, 60, 100),
        "{errors:#?}"
    );
    assert_eq!(errors.step, "Login Failed");
    assert!((errors.rate - 0.3).abs() < 1e-9);
    assert!((errors.lost_goals - 10.0).abs() < 1e-9, "{errors:#?}");
    assert!(
        errors.explanation.contains("of those at login"),
        "{}",
        errors.explanation
    );
    assert!(errors.harm.contains("10 goals lost"), "{}", errors.harm);
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
    let drop = find(&report, FindingKind::DropOff);
    assert_eq!(
        (drop.step.as_str(), drop.customers, drop.goal_rate),
        ("shipping", 50, 0.0),
        "{drop:#?}"
    );
    assert!((drop.lost_goals - 50.0).abs() < 1e-9, "{drop:#?}");
}

/// 40 customers add a second item and all buy; of the 60 who add one, half buy. Repeating `add` is a loop, but
/// its customers do better than comparable ones (100 % against 50 %) and make no contacts: not friction.
#[test]
fn a_loop_whose_customers_do_better_is_not_friction() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| match c {
        0..40 => journey(c, &["browse", "add", "add", "buy"]),
        40..70 => journey(c, &["browse", "add", "buy"]),
        _ => journey(c, &["browse", "add"]),
    }));
    let report = friction(&journeys);
    assert!(
        report.findings.iter().all(|f| f.kind != FindingKind::Loop),
        "{:#?}",
        report.findings
    );
    // The 30 who stop after adding are what is wrong here.
    assert_eq!(find(&report, FindingKind::DropOff).customers, 30);
}

/// Identity calls are not journey steps: half the customers end with an `identify` after the shipping step. The
/// drop-off and the dead end are at shipping, and no finding names `identify`.
#[test]
fn identity_calls_are_not_steps_in_findings() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| {
        if c % 2 == 0 {
            journey(c, &["browse", "identify", "shipping", "identify"])
        } else {
            journey(c, &["browse", "identify", "shipping", "pay", "buy"])
        }
    }));
    let report = friction(&journeys);
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.title.contains("identify")),
        "{:#?}",
        report.findings
    );
    assert_eq!(find(&report, FindingKind::DropOff).step, "shipping");
    // The dead end at shipping is the drop-off's own customers: one finding, not two.
    assert!(report
        .findings
        .iter()
        .all(|f| f.kind != FindingKind::DeadEnd));
}

/// 40 customers end at the FAQ, off the goal path, that no one else visits; 60 go from browsing to the goal. A dead
/// end at the FAQ (all 40, where the typical step has none), apart from the drop-off after browsing.
#[test]
fn a_dead_end_off_the_goal_path_is_found() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| {
        if c < 40 {
            journey(c, &["browse", "faq"])
        } else {
            journey(c, &["browse", "cart", "buy"])
        }
    }));
    let report = friction(&journeys);
    let dead_end = find(&report, FindingKind::DeadEnd);
    assert_eq!(
        (
            dead_end.step.as_str(),
            dead_end.customers,
            dead_end.typical_rate
        ),
        ("faq", 40, 0.0),
        "{dead_end:#?}"
    );
    assert_eq!(find(&report, FindingKind::DropOff).step, "browse");
}

/// The fast group need not be tight: 65 customers wait anywhere from 2 to 5 days, 35 from 12 to 25. A median plus
/// three robust deviations would sit beyond 25 days; the mixture separates the two groups. (Activation to payment,
/// never slow, is the norm it stands out against.)
#[test]
fn a_slow_group_is_found_when_the_typical_times_vary_widely() {
    let journeys = JourneySet::from_journeys((0..400).map(|c| {
        let wait = if c % 20 < 7 {
            12 * DAY + (c as i64 * 7919 % 13) * DAY
        } else {
            2 * DAY + (c as i64 * 7919 % 72) * HOUR
        };
        (
            format!("c{c:03}"),
            vec![
                (0, "buy", "web"),
                (MINUTE, "booked", "web"),
                (MINUTE + wait, "activated", "field"),
                (MINUTE + wait + HOUR, "paid", "web"),
            ],
        )
    }));
    let report = friction(&journeys);
    let slow = find(&report, FindingKind::SlowStep);
    assert_eq!((slow.customers, slow.exposed), (140, 400), "{slow:#?}");
    assert!(slow.after_goal);
}

/// After buying, 40 of 100 customers track their order and call, then call again two days later; the other 60
/// track it and never call. Friction after the goal: a channel jump (40 customers, 2 contacts each after tracking
/// against 0: 80 extra contacts) and repeat contacts, both marked as after the goal.
#[test]
fn friction_after_the_goal_costs_contacts() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| {
        let mut events = vec![
            (0, "browse", "web"),
            (MINUTE, "buy", "web"),
            (DAY, "track", "web"),
        ];
        if c < 40 {
            events.push((DAY + HOUR, "Call Started", "call_center"));
            events.push((3 * DAY, "Call Started", "call_center"));
        }
        (format!("c{c:03}"), events)
    }));
    let report = friction(&journeys);
    let jump = find(&report, FindingKind::ChannelJump);
    assert!(
        jump.after_goal && jump.title.ends_with("(after the goal)"),
        "{jump:#?}"
    );
    assert_eq!((jump.step.as_str(), jump.customers), ("track", 40));
    assert!((jump.extra_contacts - 80.0).abs() < 1e-9, "{jump:#?}");
    assert_eq!(jump.lost_goals, 0.0);
    assert!(
        jump.explanation.contains("after they reached the goal"),
        "{}",
        jump.explanation
    );
    let repeat = find(&report, FindingKind::RepeatContact);
    assert!(repeat.after_goal, "{repeat:#?}");
    assert_eq!((repeat.customers, repeat.exposed), (40, 40));
    assert_eq!(
        repeat.extra_contacts, 40.0,
        "each repeat is an extra contact"
    );
}

/// 100 customers apply and are approved; 65 wait 1–2 days, 35 (the `gigabit` plan, a trait sent once with
/// `identify`) wait 10–14 days. A mean + 2·std threshold would sit at about 15 days and flag none of them; the
/// robust threshold flags exactly the 35, and the trait locates them.
#[test]
fn a_slow_group_is_found_without_a_standard_time() {
    let mut journeys = JourneySet::from_journeys((0..100).map(|c| {
        let wait = if c < 35 {
            10 * DAY + (c as i64 % 5) * DAY
        } else {
            DAY + (c as i64 % 13) * 2 * HOUR
        };
        (
            format!("c{c:03}"),
            vec![
                (0, "identify", "web"),
                (MINUTE, "apply", "web"),
                (MINUTE + wait, "approve", "web"),
                (2 * MINUTE + wait, "buy", "web"),
            ],
        )
    }));
    with_property(&mut journeys, "traits.plan", |c, step| {
        (step == "identify").then(|| Value::from(if c < 35 { "gigabit" } else { "basic" }))
    });
    let report = friction(&journeys);
    let slow = find(&report, FindingKind::SlowStep);
    assert_eq!(
        (slow.title.as_str(), slow.customers, slow.exposed),
        ("Slow step: apply → approve", 35, 100),
        "{slow:#?}"
    );
    let median_days = slow.median_secs.unwrap() / 86_400.0;
    assert!((10.0..=14.0).contains(&median_days), "{median_days}");
    let concentration = slow.concentration.as_ref().expect("located in a segment");
    assert_eq!(
        (
            concentration.property.as_str(),
            concentration.value.as_str()
        ),
        ("plan", "gigabit")
    );
    assert!(slow.delay_days.unwrap() > 35.0 * 8.0, "{slow:#?}");
}

/// 20 customers have waited weeks at a step with a 72 h standard time, 30 reached it in the last day, and one
/// customer's clock sent an event dated five years ahead. "Now" is not that event: exactly the 20 are stuck.
#[test]
fn one_event_far_ahead_does_not_make_every_journey_stuck() {
    let end = 30 * DAY;
    let mut customers: Vec<Customer> = (0..100)
        .map(|c| {
            let start = match c {
                0..20 => c as i64 * HOUR,
                20..50 => end - DAY + c as i64 * MINUTE,
                _ => (c as i64 - 50) * 12 * HOUR,
            };
            let mut events = vec![(start, "buy", "web"), (start + HOUR, "scheduled", "web")];
            if c >= 50 {
                events.push((start + DAY, "installed", "field"));
            }
            (format!("c{c:03}"), events)
        })
        .collect();
    customers.push((
        "skewed".into(),
        vec![(0, "buy", "web"), (5 * 365 * DAY, "installed", "field")],
    ));
    let journeys = JourneySet::from_journeys(customers);
    let report = run(
        Friction {
            goals: vec![Condition::step("buy")],
            standard_times: vec![("scheduled".into(), 72 * HOUR)],
            ..Friction::default()
        },
        &journeys,
    );
    let stuck = find(&report, FindingKind::Stuck);
    assert_eq!(
        (stuck.customers, stuck.after_goal),
        (20, true),
        "{stuck:#?}"
    );
    assert!(report.as_of.starts_with("1970-01-"), "{}", report.as_of);
}

/// 40 customers rate the article `a`, 30 of them unhelpful; 60 rate `b`, 6 unhelpful. Negative feedback on `a`:
/// 30 of 40.
#[test]
fn negative_feedback_is_found_on_the_rated_step() {
    let mut journeys = JourneySet::from_journeys((0..100).map(|c| {
        let article = if c < 40 { "a" } else { "b" };
        journey(c, &["browse", article, "Feedback Submitted", "buy"])
    }));
    with_property(&mut journeys, "helpful", |c, step| {
        (step == "Feedback Submitted").then(|| Value::Bool(!(c < 30 || (40..46).contains(&c))))
    });
    let report = friction(&journeys);
    let feedback = find(&report, FindingKind::NegativeFeedback);
    assert_eq!(
        (feedback.step.as_str(), feedback.customers, feedback.exposed),
        ("a", 30, 40),
        "{feedback:#?}"
    );
    // The median of the two rated steps' rates, 75 % and 10 %.
    assert!(
        (feedback.typical_rate - 0.425).abs() < 1e-9,
        "{feedback:#?}"
    );
    assert!(report
        .findings
        .iter()
        .all(|f| !(f.kind == FindingKind::NegativeFeedback && f.step == "b")));
}

/// A standard time breached: 25 of 100 customers wait 5 days at `scheduled` (standard 72 h), the others 1 day.
#[test]
fn a_breached_standard_time_is_found() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| {
        let wait = if c < 25 { 5 * DAY } else { DAY };
        (
            format!("c{c:03}"),
            vec![
                (0, "scheduled", "web"),
                (wait, "installed", "web"),
                (wait + HOUR, "buy", "web"),
            ],
        )
    }));
    let report = run(
        Friction {
            goals: vec![Condition::step("buy")],
            standard_times: vec![("sched*".into(), 72 * HOUR)],
            ..Friction::default()
        },
        &journeys,
    );
    let breached = find(&report, FindingKind::SlowAgainstStandard);
    assert_eq!(
        (breached.customers, breached.exposed),
        (25, 100),
        "{breached:#?}"
    );
    // 25 customers × (5 days − 3 days) beyond the standard.
    assert!(
        (breached.delay_days.unwrap() - 50.0).abs() < 1e-6,
        "{breached:#?}"
    );
}

/// Where a journey is stuck, as prediction reads it: the loop at the repeated attempt, an error streak at the
/// second error, the dead end at the end; the journey that reaches the goal at once shows none.
#[test]
fn stuck_positions_are_where_each_signal_is_observed() {
    let journeys = JourneySet::from_journeys((0..100).map(|c| match c {
        0..30 => journey(c, &["login", "Login Failed", "login", "Login Failed"]),
        _ => journey(c, &["login", "identify", "home", "buy"]),
    }));
    let runner = Runner::new(1);
    let settings = Friction {
        goals: vec![Condition::step("buy")],
        ..Friction::default()
    };
    let prepared = settings.prepare(&journeys, &runner).unwrap();
    let positions = |index: usize, kinds: &[StuckSignal]| {
        prepared.stuck_positions(&journeys.journey(index), kinds)
    };
    // login (0) Login Failed (1) login (2) Login Failed (3): the loop shows at each repeat; the second failure is
    // also a streak; the end is 4.
    assert_eq!(positions(0, &[StuckSignal::Loop]), [2, 3]);
    assert_eq!(positions(0, &[StuckSignal::ErrorStreak]), [3]);
    assert_eq!(positions(0, &[StuckSignal::DeadEnd]), [4]);
    assert_eq!(positions(0, &StuckSignal::ALL), [2, 3, 4]);
    // Identity calls count as positions of the journey, and nothing here is stuck.
    assert!(positions(50, &StuckSignal::ALL).is_empty());
}
