//! The path table attribution works on: each distinct sequence of touchpoints with the conversions, conversion
//! value and non-converting journeys that followed it — ChannelAttribution's input
//! (`path;total_conversions;total_conversion_value;total_null`), built from journeys or read from such a file.

use crate::AnalyticsError;
use rustc_hash::FxHashMap;

/// Conversion value is summed in millionths, as integers, so that totals do not depend on the order (or the number
/// of threads) in which paths are added.
pub const VALUE_UNIT: f64 = 1e6;

/// Value in millionths, rounded to the nearest.
pub fn value_units(value: f64) -> i128 {
    (value * VALUE_UNIT).round() as i128
}

/// What followed one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOutcome {
    pub conversions: u64,
    /// Conversion value, in millionths.
    pub value: i128,
    /// Journeys that took this path and did not convert.
    pub nulls: u64,
}

impl PathOutcome {
    pub(crate) fn add(&mut self, other: PathOutcome) {
        self.conversions += other.conversions;
        self.value += other.value;
        self.nulls += other.nulls;
    }

    pub fn value_f64(&self) -> f64 {
        self.value as f64 / VALUE_UNIT
    }
}

/// Distinct touchpoint sequences (codes into `touchpoints`) and what followed each, in a canonical order (by
/// path) once [`PathTable::sorted`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathTable {
    pub touchpoints: Vec<String>,
    pub paths: Vec<(Vec<u32>, PathOutcome)>,
}

/// Accumulates paths by their touchpoint codes.
#[derive(Debug, Clone, Default)]
pub struct PathCounts {
    paths: FxHashMap<Vec<u32>, PathOutcome>,
}

impl PathCounts {
    pub fn add(&mut self, path: &[u32], outcome: PathOutcome) {
        if let Some(into) = self.paths.get_mut(path) {
            into.add(outcome);
        } else {
            self.paths.insert(path.to_vec(), outcome);
        }
    }

    pub fn merge(&mut self, other: PathCounts) {
        for (path, outcome) in other.paths {
            self.paths.entry(path).or_default().add(outcome);
        }
    }

    pub fn into_table(self, touchpoints: Vec<String>) -> PathTable {
        PathTable {
            touchpoints,
            paths: self.paths.into_iter().collect(),
        }
        .sorted()
    }
}

impl PathTable {
    /// Paths in increasing order of their codes (the order every model reads them in, so results are the same
    /// however the table was built).
    pub fn sorted(mut self) -> PathTable {
        self.paths.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self
    }

    pub fn totals(&self) -> PathOutcome {
        let mut total = PathOutcome::default();
        for (_, outcome) in &self.paths {
            total.add(*outcome);
        }
        total
    }

    /// Reads ChannelAttribution's path table: a header, then `path;total_conversions;total_conversion_value;total_null`
    /// per line, touchpoints in a path separated by `>` (spaces around names are trimmed). The value and null
    /// columns may be left out (header and rows alike); conversions and nulls are whole numbers. Errors name the
    /// line and the column to fix.
    pub fn parse_channelattribution(text: &str) -> Result<PathTable, AnalyticsError> {
        let mut lines = text.lines().enumerate();
        let Some((_, header)) = lines.next() else {
            return Err(AnalyticsError::field(
                "paths",
                "line 1: the file is empty; expected the header `path;total_conversions;total_conversion_value;total_null`",
            ));
        };
        let separator = if header.contains(';') { ';' } else { ',' };
        let columns: Vec<String> = header
            .trim_start_matches('\u{feff}')
            .split(separator)
            .map(|column| column.trim().to_ascii_lowercase())
            .collect();
        let find = |name: &str| columns.iter().position(|column| column == name);
        let missing = |name: &str| {
            AnalyticsError::field(
                "paths",
                format!(
                    "line 1: no `{name}` column (the header has {}); ChannelAttribution's columns are \
                     path;total_conversions;total_conversion_value;total_null",
                    columns.join(", ")
                ),
            )
        };
        let path_at = find("path").ok_or_else(|| missing("path"))?;
        let conversions_at =
            find("total_conversions").ok_or_else(|| missing("total_conversions"))?;
        let value_at = find("total_conversion_value");
        let null_at = find("total_null");
        let mut codes: FxHashMap<String, u32> = FxHashMap::default();
        let mut touchpoints = Vec::new();
        let mut counts = PathCounts::default();
        for (index, line) in lines {
            let number = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(separator).collect();
            let field = |at: usize, name: &str| {
                fields.get(at).map(|text| text.trim()).ok_or_else(|| {
                    AnalyticsError::field(
                        "paths",
                        format!(
                            "line {number}: {name}: missing (the line has {} fields, the header {})",
                            fields.len(),
                            columns.len()
                        ),
                    )
                })
            };
            let whole = |at: usize, name: &str| -> Result<u64, AnalyticsError> {
                let text = field(at, name)?;
                parse_count(text).ok_or_else(|| {
                    AnalyticsError::field(
                        "paths",
                        format!(
                            "line {number}: {name}: `{text}` is not a whole number of journeys"
                        ),
                    )
                })
            };
            let mut path = Vec::new();
            for name in field(path_at, "path")?.split('>') {
                let name = name.trim();
                if name.is_empty() {
                    return Err(AnalyticsError::field(
                        "paths",
                        format!("line {number}: path: an empty touchpoint (write `a > b`, no empty names)"),
                    ));
                }
                let code = *codes.entry(name.to_string()).or_insert_with(|| {
                    touchpoints.push(name.to_string());
                    touchpoints.len() as u32 - 1
                });
                path.push(code);
            }
            let conversions = whole(conversions_at, "total_conversions")?;
            let value = match value_at {
                None => 0.0,
                Some(at) => {
                    let text = field(at, "total_conversion_value")?;
                    text.parse::<f64>()
                        .ok()
                        .filter(|value| value.is_finite())
                        .ok_or_else(|| {
                            AnalyticsError::field(
                                "paths",
                                format!("line {number}: total_conversion_value: `{text}` is not a number"),
                            )
                        })?
                }
            };
            let nulls = match null_at {
                None => 0,
                Some(at) => whole(at, "total_null")?,
            };
            counts.add(
                &path,
                PathOutcome {
                    conversions,
                    value: value_units(value),
                    nulls,
                },
            );
        }
        Ok(counts.into_table(touchpoints))
    }
}

/// A whole number, also when written as `3.0`.
fn parse_count(text: &str) -> Option<u64> {
    if let Ok(count) = text.parse::<u64>() {
        return Some(count);
    }
    let number = text.parse::<f64>().ok()?;
    (number >= 0.0 && number.fract() == 0.0 && number < 9e15).then_some(number as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_channelattribution_tables_and_names_bad_lines() {
        let table = PathTable::parse_channelattribution(
            "path;total_conversions;total_conversion_value;total_null\n\
             eta > iota;1;2.5;3\n iota ;2;1;0\neta > iota;1;0.5;1\n",
        )
        .unwrap();
        assert_eq!(table.touchpoints, ["eta", "iota"]);
        assert_eq!(table.paths.len(), 2);
        assert_eq!(
            table.totals(),
            PathOutcome {
                conversions: 4,
                value: 4_000_000,
                nulls: 4
            }
        );
        let error = |text: &str| {
            PathTable::parse_channelattribution(text)
                .unwrap_err()
                .to_string()
        };
        assert!(error("path;total_conversions\na;x\n").contains("line 2: total_conversions: `x`"));
        assert!(error("path;conv\n").contains("no `total_conversions` column"));
        assert!(error("path;total_conversions\na > > b;1\n").contains("line 2: path"));
        assert!(error("").contains("empty"));
    }
}
