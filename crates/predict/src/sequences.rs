//! Journeys as symbol sequences, and the chronological split.

use waymark_model::{JourneySet, IDENTITY_STEPS};

/// Every journey's steps as symbols (step codes; identity calls left out), with their times and channels and the
/// journey's first event's time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequences {
    /// `n + 1` offsets into `symbols`.
    pub offsets: Vec<usize>,
    pub symbols: Vec<u32>,
    /// Each symbol's event time (µs since the epoch).
    pub times: Vec<i64>,
    /// Each symbol's channel (a code into `channel_names`; [`UNKNOWN_CHANNEL`] for one the vocabulary lacks).
    pub channels: Vec<u16>,
    /// Each symbol's event position in its journey of the journey set it came from (identity calls counted).
    pub positions: Vec<u32>,
    /// Per journey: the time of its first event (µs), `i64::MAX` for a journey with none left.
    pub first_ts: Vec<i64>,
    /// The step names; symbol `names.len()` is the end of a journey.
    pub names: Vec<String>,
    pub channel_names: Vec<String>,
    /// Event properties the features read (device, plan, region, …), each a value per symbol.
    pub properties: Vec<PropertySeries>,
}

/// One event property along the sequences: its values' texts, and each symbol's value code (0: none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropertySeries {
    pub name: String,
    /// Code → the value as text (code 0, no value, is empty).
    pub values: Vec<String>,
    pub codes: Vec<u32>,
}

/// The channel code of a channel that a model's vocabulary does not know.
pub const UNKNOWN_CHANNEL: u16 = u16::MAX;

impl Sequences {
    /// The journeys of `journeys` as sequences, identity calls (`identify`, `alias`, `group`) left out.
    pub fn of(journeys: &JourneySet) -> Sequences {
        let names: Vec<String> = journeys
            .step_names
            .iter()
            .filter(|name| !IDENTITY_STEPS.contains(&name.as_str()))
            .cloned()
            .collect();
        Sequences::with_vocabulary(journeys, &names, &journeys.channel_names)
    }

    /// The journeys of `journeys` in a given vocabulary (a trained model's): steps named in `names` become their
    /// position there, others (identity calls, steps the model never saw) are left out; channels likewise, an
    /// unknown one coded [`UNKNOWN_CHANNEL`].
    pub fn with_vocabulary(
        journeys: &JourneySet,
        names: &[String],
        channel_names: &[String],
    ) -> Sequences {
        let by_name: rustc_hash::FxHashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(symbol, name)| (name.as_str(), symbol as u32))
            .collect();
        let symbol_of: Vec<Option<u32>> = journeys
            .step_names
            .iter()
            .map(|name| by_name.get(name.as_str()).copied())
            .collect();
        let channel_of: Vec<u16> = journeys
            .channel_names
            .iter()
            .map(|name| {
                channel_names
                    .iter()
                    .position(|known| known == name)
                    .map_or(UNKNOWN_CHANNEL, |code| code as u16)
            })
            .collect();
        let mut sequences = Sequences {
            offsets: Vec::with_capacity(journeys.n_journeys() + 1),
            symbols: Vec::with_capacity(journeys.n_events()),
            times: Vec::with_capacity(journeys.n_events()),
            channels: Vec::with_capacity(journeys.n_events()),
            positions: Vec::with_capacity(journeys.n_events()),
            first_ts: Vec::with_capacity(journeys.n_journeys()),
            names: names.to_vec(),
            channel_names: channel_names.to_vec(),
            properties: Vec::new(),
        };
        sequences.offsets.push(0);
        for index in 0..journeys.n_journeys() {
            let journey = journeys.journey(index);
            let mut first = i64::MAX;
            for position in 0..journey.len() {
                let Some(symbol) = symbol_of[journey.step[position] as usize] else {
                    continue;
                };
                first = first.min(journey.ts[position]);
                sequences.symbols.push(symbol);
                sequences.times.push(journey.ts[position]);
                sequences
                    .channels
                    .push(channel_of[journey.channel[position] as usize]);
                sequences.positions.push(position as u32);
            }
            sequences.first_ts.push(first);
            sequences.offsets.push(sequences.symbols.len());
        }
        sequences
    }

    /// Adds the property columns of `journeys` (the set these sequences were read from) that `names` name, each
    /// a value per symbol; a name with no column is left out.
    pub fn with_properties(mut self, journeys: &JourneySet, names: &[String]) -> Sequences {
        for name in names {
            let Some(column) = journeys.property(name) else {
                continue;
            };
            let values = column
                .values
                .iter()
                .map(|value| match value {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            let mut codes = Vec::with_capacity(self.symbols.len());
            for journey in 0..self.len() {
                let start = journeys.offsets[journey];
                codes.extend(
                    self.positions_of(journey)
                        .iter()
                        .map(|position| column.codes[start + *position as usize]),
                );
            }
            self.properties.push(PropertySeries {
                name: name.clone(),
                values,
                codes,
            });
        }
        self
    }

    /// Sequences from symbol lists with their first times (for tests and callers that build their own); the
    /// symbols of a list are a second apart, on one channel.
    pub fn from_lists(names: Vec<String>, lists: &[(i64, Vec<u32>)]) -> Sequences {
        let mut sequences = Sequences {
            names,
            offsets: vec![0],
            channel_names: vec!["web".into()],
            ..Sequences::default()
        };
        for (first, list) in lists {
            sequences.push(
                *first,
                list.iter()
                    .enumerate()
                    .map(|(at, symbol)| (*symbol, first + at as i64 * 1_000_000, 0)),
            );
        }
        sequences
    }

    /// Appends a journey of `(symbol, time µs, channel)` that began at `first`.
    pub fn push(&mut self, first: i64, events: impl IntoIterator<Item = (u32, i64, u16)>) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        for (position, (symbol, time, channel)) in events.into_iter().enumerate() {
            self.symbols.push(symbol);
            self.times.push(time);
            self.channels.push(channel);
            self.positions.push(position as u32);
        }
        self.offsets.push(self.symbols.len());
        self.first_ts.push(first);
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

    /// Journey `index`'s channels.
    pub fn channels_of(&self, index: usize) -> &[u16] {
        &self.channels[self.offsets[index]..self.offsets[index + 1]]
    }

    /// Journey `index`'s symbols' event positions in the journey set's journey.
    pub fn positions_of(&self, index: usize) -> &[u32] {
        &self.positions[self.offsets[index]..self.offsets[index + 1]]
    }

    /// The latest event time of any journey (µs; 0 when there is none): the data's "now".
    pub fn last_time(&self) -> i64 {
        self.times.iter().copied().max().unwrap_or(0)
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
