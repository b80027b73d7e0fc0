//! What a model sees of a journey prefix: the steps so far and their order (the current step and the one before
//! it), how often each step has happened, how long the journey has run and how long since the previous event,
//! the time of day and week, and the channels (the current one, how often the customer switched). Steps are
//! tracked one by one up to [`MAX_TRACKED`] (the most frequent); rarer ones share an "other" column, so a log of
//! thousands of page names still gives a matrix of bounded width.

use crate::sequences::{Sequences, UNKNOWN_CHANNEL};
use serde::{Deserialize, Serialize};

/// Steps with columns of their own; the rest share one.
pub const MAX_TRACKED: usize = 48;
/// Channels with a column of their own.
pub const MAX_CHANNELS: usize = 12;
/// Values of a property with a column of their own (the most frequent).
pub const MAX_VALUES: usize = 8;

/// The columns of a feature row, fixed when a model is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureLayout {
    /// Per symbol (steps and the end): its slot among the tracked steps, or `tracked` for "other".
    slot: Vec<u16>,
    /// The tracked steps' names, in slot order.
    tracked: Vec<String>,
    /// The channels with a column, by code.
    channels: Vec<String>,
    /// Per property read: its name and the values with a column (the latest value so far is one-hot).
    #[serde(default)]
    properties: Vec<(String, Vec<String>)>,
}

/// Hours and weekdays of a time in µs since the epoch (UTC).
const DAY_US: i64 = 86_400_000_000;

impl FeatureLayout {
    /// Tracks the steps that occur most often in the `train` journeys.
    pub fn fit(sequences: &Sequences, train: &[usize]) -> FeatureLayout {
        let mut counts = vec![0u64; sequences.names.len()];
        for journey in train {
            for symbol in sequences.get(*journey) {
                counts[*symbol as usize] += 1;
            }
        }
        let mut order: Vec<usize> = (0..counts.len()).filter(|s| counts[*s] > 0).collect();
        order.sort_by(|a, b| counts[*b].cmp(&counts[*a]).then(a.cmp(b)));
        order.truncate(MAX_TRACKED);
        let mut slot = vec![order.len() as u16; sequences.n_symbols()];
        for (at, symbol) in order.iter().enumerate() {
            slot[*symbol] = at as u16;
        }
        let properties = sequences
            .properties
            .iter()
            .map(|series| {
                let mut counts = vec![0u64; series.values.len()];
                for journey in train {
                    let range = sequences.offsets[*journey]..sequences.offsets[*journey + 1];
                    for code in &series.codes[range] {
                        counts[*code as usize] += 1;
                    }
                }
                let mut codes: Vec<usize> = (1..counts.len()).filter(|c| counts[*c] > 0).collect();
                codes.sort_by(|a, b| counts[*b].cmp(&counts[*a]).then(a.cmp(b)));
                codes.truncate(MAX_VALUES);
                (
                    series.name.clone(),
                    codes.iter().map(|c| series.values[*c].clone()).collect(),
                )
            })
            .filter(|(_, values): &(String, Vec<String>)| !values.is_empty())
            .collect();
        FeatureLayout {
            properties,
            slot,
            tracked: order.iter().map(|s| sequences.names[*s].clone()).collect(),
            channels: sequences
                .channel_names
                .iter()
                .take(MAX_CHANNELS)
                .cloned()
                .collect(),
        }
    }

    fn n_slots(&self) -> usize {
        self.tracked.len() + 1
    }

    /// Columns in a row.
    pub fn width(&self) -> usize {
        // Current step, step before (with the start), counts, channel one-hot, then the scalars.
        self.n_slots()
            + (self.n_slots() + 1)
            + self.n_slots()
            + self.channels.len()
            + SCALARS.len()
            + self
                .properties
                .iter()
                .map(|(_, values)| values.len())
                .sum::<usize>()
    }

    /// Every column's name, in row order: what an explanation of a score calls it.
    pub fn names(&self) -> Vec<String> {
        let slot_name = |slot: usize| {
            self.tracked
                .get(slot)
                .map_or("another step".to_string(), |name| format!("\"{name}\""))
        };
        let mut names = Vec::with_capacity(self.width());
        names.extend((0..self.n_slots()).map(|s| format!("current step is {}", slot_name(s))));
        names.extend((0..self.n_slots()).map(|s| format!("step before is {}", slot_name(s))));
        names.push("no step before (the first step)".into());
        names.extend((0..self.n_slots()).map(|s| format!("times {} so far", slot_name(s))));
        names.extend(
            self.channels
                .iter()
                .map(|channel| format!("current channel is {channel}")),
        );
        names.extend(SCALARS.iter().map(|name| name.to_string()));
        for (property, values) in &self.properties {
            names.extend(values.iter().map(|value| format!("{property} is {value}")));
        }
        names
    }

    /// Appends the row of the prefix of `journey` of `length` steps (≥ 1) to `out`.
    pub fn row(&self, sequences: &Sequences, journey: usize, length: usize, out: &mut Vec<f64>) {
        let symbols = &sequences.get(journey)[..length];
        let times = &sequences.times_of(journey)[..length];
        let channels = &sequences.channels_of(journey)[..length];
        let slots = self.n_slots();
        let slot = |symbol: u32| {
            self.slot
                .get(symbol as usize)
                .map_or(slots - 1, |slot| *slot as usize)
        };
        let at = out.len();
        out.resize(at + self.width(), 0.0);
        let row = &mut out[at..];
        let last = symbols[length - 1];
        row[slot(last)] = 1.0;
        let before = slots + length.checked_sub(2).map_or(slots, |at| slot(symbols[at]));
        row[before] = 1.0;
        let counts = 2 * slots + 1;
        for symbol in symbols {
            row[counts + slot(*symbol)] += 1.0;
        }
        let channel = channels[length - 1];
        let channel_at = counts + slots;
        if channel != UNKNOWN_CHANNEL && (channel as usize) < self.channels.len() {
            row[channel_at + channel as usize] = 1.0;
        }
        let seconds = |from: i64, to: i64| ((to - from).max(0) as f64 / 1e6).ln_1p();
        let now = times[length - 1];
        let scalars = channel_at + self.channels.len();
        let switches = channels
            .windows(2)
            .filter(|pair| pair[0] != pair[1])
            .count();
        let mut distinct: Vec<u16> = channels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let values = [
            length as f64,
            symbols.iter().filter(|symbol| **symbol == last).count() as f64,
            length
                .checked_sub(2)
                .map_or(0.0, |at| seconds(times[at], now)),
            seconds(times[0], now),
            (now.rem_euclid(DAY_US) / 3_600_000_000) as f64,
            ((now.div_euclid(DAY_US) + 3).rem_euclid(7)) as f64,
            switches as f64,
            distinct.len() as f64,
        ];
        row[scalars..scalars + values.len()].copy_from_slice(&values);
        // Each property's latest value so far.
        let mut at = scalars + values.len();
        let first = sequences.offsets[journey];
        for (property, tracked) in &self.properties {
            let latest = sequences
                .properties
                .iter()
                .find(|series| series.name == *property)
                .and_then(|series| {
                    series.codes[first..first + length]
                        .iter()
                        .rev()
                        .find(|code| **code != 0)
                        .map(|code| series.values[*code as usize].as_str())
                });
            if let Some(slot) = latest.and_then(|value| tracked.iter().position(|t| t == value)) {
                row[at + slot] = 1.0;
            }
            at += tracked.len();
        }
    }
}

/// The scalar columns, in row order.
const SCALARS: [&str; 8] = [
    "steps so far",
    "times the current step has happened",
    "time since the step before (log seconds)",
    "time since the journey began (log seconds)",
    "hour of day (UTC)",
    "day of week (0 = Monday)",
    "channel switches so far",
    "channels used so far",
];

/// Rows in the booster's column-major order.
pub fn column_major(rows: &[f64], width: usize) -> Vec<f64> {
    let n_rows = rows.len() / width.max(1);
    let mut columns = vec![0.0; rows.len()];
    for row in 0..n_rows {
        for feature in 0..width {
            columns[feature * n_rows + row] = rows[row * width + feature];
        }
    }
    columns
}

/// A stable pseudo-random number in [0, 1) for a (journey, prefix length) pair, for sampling rows the same way on
/// every run.
pub fn unit_hash(journey: usize, length: usize, salt: u64) -> f64 {
    let mut x =
        (journey as u64) ^ ((length as u64) << 40) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_has_a_name_for_every_column_and_counts_what_happened() {
        let sequences = Sequences::from_lists(
            vec!["a".into(), "b".into()],
            &[(0, vec![0, 1, 1]), (5, vec![1])],
        );
        let layout = FeatureLayout::fit(&sequences, &[0, 1]);
        let names = layout.names();
        assert_eq!(names.len(), layout.width());
        let mut row = Vec::new();
        layout.row(&sequences, 0, 3, &mut row);
        assert_eq!(row.len(), layout.width());
        let value = |name: &str| row[names.iter().position(|n| n == name).unwrap()];
        // b is the most frequent step, so it has the first slot.
        assert_eq!(value("current step is \"b\""), 1.0);
        assert_eq!(value("step before is \"b\""), 1.0);
        assert_eq!(value("times \"b\" so far"), 2.0);
        assert_eq!(value("times \"a\" so far"), 1.0);
        assert_eq!(value("steps so far"), 3.0);
        assert_eq!(value("times the current step has happened"), 2.0);
        assert_eq!(value("current channel is web"), 1.0);
        let mut first = Vec::new();
        layout.row(&sequences, 1, 1, &mut first);
        assert_eq!(
            first[names
                .iter()
                .position(|n| n.starts_with("no step before"))
                .unwrap()],
            1.0
        );
    }
}
