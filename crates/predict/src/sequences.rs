//! Journeys as symbol sequences, and the chronological split.

use waymark_model::{JourneySet, IDENTITY_STEPS};

/// Every journey's steps as symbols (step codes; identity calls left out), with its first event's time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequences {
    /// `n + 1` offsets into `symbols`.
    pub offsets: Vec<usize>,
    pub symbols: Vec<u32>,
    /// Each symbol's event time (µs since the epoch).
    pub times: Vec<i64>,
    /// Per journey: the time of its first event (µs), `i64::MAX` for a journey with none left.
    pub first_ts: Vec<i64>,
    /// The step names; symbol `names.len()` is the end of a journey.
    pub names: Vec<String>,
}

impl Sequences {
    /// The journeys of `journeys` as sequences, identity calls (`identify`, `alias`, `group`) left out.
    pub fn of(journeys: &JourneySet) -> Sequences {
        let skip: Vec<bool> = journeys
            .step_names
            .iter()
            .map(|name| IDENTITY_STEPS.contains(&name.as_str()))
            .collect();
        let mut sequences = Sequences {
            offsets: Vec::with_capacity(journeys.n_journeys() + 1),
            symbols: Vec::with_capacity(journeys.n_events()),
            times: Vec::with_capacity(journeys.n_events()),
            first_ts: Vec::with_capacity(journeys.n_journeys()),
            names: journeys.step_names.clone(),
        };
        sequences.offsets.push(0);
        for index in 0..journeys.n_journeys() {
            let journey = journeys.journey(index);
            let mut first = i64::MAX;
            for event in journey.start..journey.start + journey.len() {
                let step = journeys.step[event];
                if skip[step as usize] {
                    continue;
                }
                first = first.min(journeys.ts[event]);
                sequences.symbols.push(step);
                sequences.times.push(journeys.ts[event]);
            }
            sequences.first_ts.push(first);
            sequences.offsets.push(sequences.symbols.len());
        }
        sequences
    }

    /// Sequences from symbol lists with their first times (for tests and callers that build their own); the
    /// symbols of a list are a second apart.
    pub fn from_lists(names: Vec<String>, lists: &[(i64, Vec<u32>)]) -> Sequences {
        let mut sequences = Sequences {
            names,
            offsets: vec![0],
            ..Sequences::default()
        };
        for (first, list) in lists {
            sequences.symbols.extend_from_slice(list);
            sequences
                .times
                .extend((0..list.len() as i64).map(|position| first + position * 1_000_000));
            sequences.offsets.push(sequences.symbols.len());
            sequences.first_ts.push(*first);
        }
        sequences
    }

    pub fn len(&self) -> usize {
        self.first_ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_ts.is_empty()
    }

    /// Journey `index`'s symbols (without the end).
    pub fn get(&self, index: usize) -> &[u32] {
        &self.symbols[self.offsets[index]..self.offsets[index + 1]]
    }

    /// Journey `index`'s event times.
    pub fn times_of(&self, index: usize) -> &[i64] {
        &self.times[self.offsets[index]..self.offsets[index + 1]]
    }

    /// The symbol for "the journey ends here".
    pub fn end(&self) -> u32 {
        self.names.len() as u32
    }

    /// Symbols: every step, and the end.
    pub fn n_symbols(&self) -> usize {
        self.names.len() + 1
    }

    /// The symbol's name (`(end)` for the end).
    pub fn name(&self, symbol: u32) -> &str {
        self.names
            .get(symbol as usize)
            .map_or("(end)", String::as_str)
    }
}

/// The chronological split: journeys with at least one step ordered by their first event's time (ties by their
/// order in the set), the earliest `train_share` of them to train on, the rest to test on.
pub fn chronological_split(sequences: &Sequences, train_share: f64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..sequences.len())
        .filter(|index| !sequences.get(*index).is_empty())
        .collect();
    order.sort_by_key(|index| (sequences.first_ts[*index], *index));
    let cut = ((order.len() as f64) * train_share.clamp(0.0, 1.0)).round() as usize;
    let test = order.split_off(cut.min(order.len()));
    (order, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_by_first_time_then_order() {
        let sequences = Sequences::from_lists(
            vec!["a".into()],
            &[(30, vec![0]), (10, vec![0]), (20, vec![]), (10, vec![0, 0])],
        );
        let (train, test) = chronological_split(&sequences, 2.0 / 3.0);
        assert_eq!(train, [1, 3]);
        assert_eq!(test, [0]);
    }
}
