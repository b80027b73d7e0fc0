//! `moments` finds the moments of truth planted in the demo (docs/demo.md): reading reviews and a chatbot
//! conversation raise the chance to order, a failed login lowers it. At the defaults each ranks near the top of its
//! side (behind `Checkout Started` when raising; when lowering, behind the SMS win-back offer — sent to those who
//! abandoned — and the product pages that browsers who never order keep viewing, counted across web and app),
//! significant and with the right sign; watched for five days, long enough for every planted order, the
//! measured lift's interval holds the true effect computed from the generator's own rates.

mod common;

use waymark_analytics::MomentsRequest;
use waymark_engine::demo::planted::planted_moments;

#[test]
fn planted_moments_rank_at_the_top_with_their_true_effect() {
    let (_dir, engine) = common::demo_engine(6_000);
    let summary = |moments: &[waymark_analytics::Moment]| -> String {
        moments
            .iter()
            .map(|moment| {
                format!(
                    "{} OR {:.2} lift {:?}",
                    moment.label, moment.odds_ratio, moment.lift
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Journeys count from the landing page, on the web or in the app.
    let ranked = engine
        .analyse(&MomentsRequest {
            entry: Some("*Landing*".into()),
            ..MomentsRequest::default()
        })
        .unwrap();
    assert_eq!(ranked.goals, ["Order Completed"]);
    let measured = engine
        .analyse(&MomentsRequest {
            entry: Some("*Landing*".into()),
            window: Some("5d".into()),
            include_insignificant: true,
            top: 40,
            ..MomentsRequest::default()
        })
        .unwrap();
    assert!(
        measured.reached >= ranked.reached,
        "a longer window sees more orders"
    );
    for planted in planted_moments() {
        let side = |report: &waymark_analytics::MomentsReport| {
            if planted.effect > 0.0 {
                report.positive.clone()
            } else {
                report.negative.clone()
            }
        };
        let (ranked_side, measured_side) = (side(&ranked), side(&measured));
        let rank = ranked_side
            .iter()
            .position(|moment| moment.label == planted.step)
            .unwrap_or_else(|| {
                panic!(
                    "{} is not on its side:\n{}",
                    planted.step,
                    summary(&ranked_side)
                )
            });
        assert!(
            rank < 5,
            "{} ranks {}:\n{}",
            planted.step,
            rank + 1,
            summary(&ranked_side)
        );
        assert!(ranked_side[rank].significant, "{:?}", ranked_side[rank]);
        let moment = measured_side
            .iter()
            .find(|moment| moment.label == planted.step)
            .unwrap_or_else(|| {
                panic!(
                    "{} is not measured:\n{}",
                    planted.step,
                    summary(&measured_side)
                )
            });
        let lift = moment.lift.expect("comparable customers exist");
        let (low, high) = (lift.low.unwrap(), lift.high.unwrap());
        assert!(
            low <= planted.effect && planted.effect <= high,
            "{}: true effect {:.3}, measured {:.3} ({low:.3} to {high:.3})",
            planted.step,
            planted.effect,
            lift.difference
        );
        assert_eq!(lift.difference.signum(), planted.effect.signum());
    }
    let report = ranked;
    // The steps that settle the outcome are apart, not among the moments.
    assert!(report
        .settled
        .iter()
        .any(|moment| moment.label == "Payment Submitted"));
    assert!(report
        .positive
        .iter()
        .all(|moment| moment.label != "Payment Submitted"));
}
