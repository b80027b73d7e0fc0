//! Rule-based attribution over a path table: first touch, last touch, linear and position-based, as
//! ChannelAttribution and Google's models define them.

use super::paths::PathTable;

/// Conversions and value credited to each touchpoint (indexed by code) by one model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credit {
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
}

impl Credit {
    pub fn zero(n: usize) -> Credit {
        Credit {
            conversions: vec![0.0; n],
            value: vec![0.0; n],
        }
    }

    fn add(&mut self, touchpoint: u32, share: f64, conversions: f64, value: f64) {
        self.conversions[touchpoint as usize] += share * conversions;
        self.value[touchpoint as usize] += share * value;
    }
}

/// The four rule-based models at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Heuristics {
    pub first: Credit,
    pub last: Credit,
    /// Every touch of a path an equal share (a touchpoint touched twice gets two shares).
    pub linear: Credit,
    /// 40 % to the first touch, 40 % to the last, 20 % shared by those between (one touch: all of it; two: half
    /// each).
    pub position: Credit,
}

/// The rule-based models over `table`'s converting paths.
pub fn heuristics(table: &PathTable) -> Heuristics {
    let n = table.touchpoints.len();
    let mut models = Heuristics {
        first: Credit::zero(n),
        last: Credit::zero(n),
        linear: Credit::zero(n),
        position: Credit::zero(n),
    };
    for (path, outcome) in &table.paths {
        if outcome.conversions == 0 || path.is_empty() {
            continue;
        }
        let conversions = outcome.conversions as f64;
        let value = outcome.value_f64();
        let (first, last) = (path[0], path[path.len() - 1]);
        models.first.add(first, 1.0, conversions, value);
        models.last.add(last, 1.0, conversions, value);
        let each = 1.0 / path.len() as f64;
        for touch in path {
            models.linear.add(*touch, each, conversions, value);
        }
        match path.len() {
            1 => models.position.add(first, 1.0, conversions, value),
            2 => {
                models.position.add(first, 0.5, conversions, value);
                models.position.add(last, 0.5, conversions, value);
            }
            len => {
                models.position.add(first, 0.4, conversions, value);
                models.position.add(last, 0.4, conversions, value);
                let middle = 0.2 / (len - 2) as f64;
                for touch in &path[1..len - 1] {
                    models.position.add(*touch, middle, conversions, value);
                }
            }
        }
    }
    models
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_credits_as_defined() {
        let table = PathTable::parse_channelattribution(
            "path;total_conversions;total_conversion_value;total_null\na > b > c > a;2;8;1\nb;1;1;0\n",
        )
        .unwrap();
        let models = heuristics(&table);
        // Codes: a 0, b 1, c 2.
        assert_eq!(models.first.conversions, [2.0, 1.0, 0.0]);
        assert_eq!(models.last.conversions, [2.0, 1.0, 0.0]);
        assert_eq!(models.linear.conversions, [1.0, 1.5, 0.5]);
        assert_eq!(models.linear.value, [4.0, 3.0, 2.0]);
        // a: 0.4 + 0.4 of 2; b: 0.1 of 2 + 1; c: 0.1 of 2.
        let position = &models.position.conversions;
        assert!((position[0] - 1.6).abs() < 1e-12);
        assert!((position[1] - 1.2).abs() < 1e-12);
        assert!((position[2] - 0.2).abs() < 1e-12);
    }
}
