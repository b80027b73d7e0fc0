//! The true effects of the demo's planted moments of truth, computed from the generator's own rates: what a
//! correct moments analysis must measure (docs/demo.md). Each effect is the average, over the customers who did the
//! step, of the change in their chance to complete an order — the generator's counterfactual, step done or not,
//! everything else equal.

use super::{
    ANDROID_LOGIN_FAILURE_RATE, CALL_AFTER_GIVING_UP_RATE, CART_RATE, CART_RATE_AFTER_CHATBOT,
    CHATBOT_RATE, CHECKOUT_RATE, GIVE_UP_RATE, LOGIN_FAILURE_RATE, PAY_RATE,
    PAY_RATE_AFTER_REVIEWS, PLATFORMS, REMINDER_RETURN_RATE, RESET_SUCCESS_RATE, REVIEWS_RATE,
    SMS_CLICK_RATE, SMS_OFFER_RATE, STORE_RATE,
};

/// The planted intervention's true lift: how many more of the customers the checkout reminder was due for
/// complete an order within a week when treated than when held out (0.25 = 25 points). A held-out abandoner
/// pays only after the later free-shipping SMS; a treated one also comes back after the reminder.
pub fn planted_intervention_effect() -> f64 {
    let later_offer = SMS_OFFER_RATE * SMS_CLICK_RATE;
    let treated = REMINDER_RETURN_RATE + (1.0 - REMINDER_RETURN_RATE) * later_offer;
    treated - later_offer
}

/// A planted moment: the step, and its true effect on the chance to complete an order (0.05 = five points).
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedMoment {
    pub step: &'static str,
    pub effect: f64,
}

/// The login failure rate of a platform.
fn failure_rate(platform: &str) -> f64 {
    if platform == "android_app" {
        ANDROID_LOGIN_FAILURE_RATE
    } else {
        LOGIN_FAILURE_RATE
    }
}

/// The chance to log in at last, from `attempts_left` attempts with `failures` already behind (the generator's loop:
/// up to four attempts, giving up after a failure once two have failed, then maybe a call and a reset link).
fn login_chance(r: f64, failures: u32, attempts_left: u32) -> f64 {
    let mut direct = 0.0;
    let mut reach = 1.0;
    let mut failed = failures;
    for _ in 0..attempts_left {
        direct += reach * (1.0 - r);
        reach *= r;
        failed += 1;
        if failed >= 2 {
            reach *= 1.0 - GIVE_UP_RATE;
        }
    }
    // Whoever did not log in directly has failed at least twice (the first failure alone never ends the loop).
    direct + (1.0 - direct) * CALL_AFTER_GIVING_UP_RATE * RESET_SUCCESS_RATE
}

/// The chance to complete an order once logged in.
fn order_chance(chatted: bool, read_reviews: bool) -> f64 {
    let cart = if chatted {
        CART_RATE_AFTER_CHATBOT
    } else {
        CART_RATE
    };
    let pay = if read_reviews {
        PAY_RATE_AFTER_REVIEWS
    } else {
        PAY_RATE
    };
    cart * (STORE_RATE
        + (1.0 - STORE_RATE)
            * CHECKOUT_RATE
            * (pay + (1.0 - pay) * SMS_OFFER_RATE * SMS_CLICK_RATE))
}

/// Averages `f` over chatting or not and reading reviews or not, at the generator's rates.
fn over_discovery(f: impl Fn(bool, bool) -> f64) -> f64 {
    [(true, CHATBOT_RATE), (false, 1.0 - CHATBOT_RATE)]
        .iter()
        .flat_map(|(chatted, p_chat)| {
            [(true, REVIEWS_RATE), (false, 1.0 - REVIEWS_RATE)]
                .map(|(reviews, p_reviews)| p_chat * p_reviews * f(*chatted, reviews))
        })
        .sum()
}

/// Every planted moment with its true effect.
pub fn planted_moments() -> Vec<PlantedMoment> {
    let platforms = PLATFORMS.len() as f64;
    let login: f64 = PLATFORMS
        .iter()
        .map(|(platform, ..)| login_chance(failure_rate(platform), 0, 4))
        .sum::<f64>()
        / platforms;
    let reviews = login
        * (over_discovery(|chatted, _| order_chance(chatted, true))
            - over_discovery(|chatted, _| order_chance(chatted, false)));
    let chatbot = login
        * (over_discovery(|_, reviews| order_chance(true, reviews))
            - over_discovery(|_, reviews| order_chance(false, reviews)));
    // Customers who failed a login, against those whose first attempt worked (the same step before): platforms
    // weighted by how often their first attempt fails.
    let weights: Vec<f64> = PLATFORMS
        .iter()
        .map(|(platform, ..)| failure_rate(platform))
        .collect();
    let after_failure: f64 = PLATFORMS
        .iter()
        .zip(&weights)
        .map(|((platform, ..), weight)| weight * login_chance(failure_rate(platform), 1, 3))
        .sum::<f64>()
        / weights.iter().sum::<f64>();
    let login_failed = (after_failure - 1.0) * over_discovery(order_chance);
    vec![
        PlantedMoment {
            step: "Reviews Read",
            effect: reviews,
        },
        PlantedMoment {
            step: "Chatbot Conversation",
            effect: chatbot,
        },
        PlantedMoment {
            step: "Login Failed",
            effect: login_failed,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_chances_follow_the_loop() {
        // Never failing: always in; always failing: only the call and the reset link.
        assert_eq!(login_chance(0.0, 0, 4), 1.0);
        let reset = CALL_AFTER_GIVING_UP_RATE * RESET_SUCCESS_RATE;
        assert!((login_chance(1.0, 0, 4) - reset).abs() < 1e-12);
        // r = 1/2 from the start: 1/2 + 1/4 + 1/16 + 1/64 directly.
        let direct = 0.5 + 0.25 + 0.0625 + 0.015625;
        assert!((login_chance(0.5, 0, 4) - (direct + (1.0 - direct) * reset)).abs() < 1e-12);
        let effects = planted_moments();
        assert!(
            effects[0].effect > 0.05 && effects[1].effect > 0.05 && effects[2].effect < -0.05,
            "{effects:?}"
        );
    }
}
