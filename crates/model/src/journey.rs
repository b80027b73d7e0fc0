//! Journeys in columnar form: every event's time, step and channel in (customer, time, arrival) order, with one
//! range per customer. This is what analyses read; it holds no payloads, only the property columns a query asked
//! for, dictionary-encoded.

use serde_json::Value;

/// All journeys of a store (or a test), columnar. Journey `i` is events `offsets[i]..offsets[i + 1]`, ordered by
/// time with ties in arrival order. Steps and channels are codes into `step_names` and `channel_names`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JourneySet {
    /// The display id of each journey's customer.
    pub customer_ids: Names,
    /// `n_journeys + 1` event offsets.
    pub offsets: Vec<usize>,
    /// Event times, µs since the epoch.
    pub ts: Vec<i64>,
    pub step: Vec<u32>,
    pub channel: Vec<u16>,
    pub step_names: Vec<String>,
    pub channel_names: Vec<String>,
    /// Property columns loaded for this query (by name), one code per event.
    pub properties: Vec<PropertyColumn>,
}

/// Strings kept in one buffer and indexed like a `Vec<String>` (`names[i]` is a `&str`): one allocation for all of
/// them instead of one each, which for short ids such as customers' is less than half the memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    text: String,
    /// Where each string ends in `text`.
    ends: Vec<usize>,
}

impl Names {
    pub fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.text[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|index| &self[index])
    }
}

impl std::ops::Index<usize> for Names {
    type Output = str;

    fn index(&self, index: usize) -> &str {
        self.get(index).expect("name index in range")
    }
}

impl<'a> FromIterator<&'a str> for Names {
    fn from_iter<I: IntoIterator<Item = &'a str>>(names: I) -> Names {
        let mut all = Names::default();
        for name in names {
            all.push(name);
        }
        all
    }
}

/// One property of every event, dictionary-encoded: `codes[event]` indexes `values`, and code 0 is always
/// `Value::Null` (the event has no such property, or it is null).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyColumn {
    /// `properties.plan` is named `plan`; other event fields by their JSON path (`context.os.name`).
    pub name: String,
    pub codes: Vec<u32>,
    pub values: Vec<Value>,
}

impl PropertyColumn {
    /// The value of event `event` (an index into the whole set).
    pub fn value(&self, event: usize) -> &Value {
        &self.values[self.codes[event] as usize]
    }
}

/// Builds a [`PropertyColumn`] one event at a time, coding equal values (by canonical JSON text) once.
#[derive(Debug)]
pub struct PropertyColumnBuilder {
    column: PropertyColumn,
    index: std::collections::HashMap<String, u32>,
}

impl PropertyColumnBuilder {
    pub fn new(name: impl Into<String>) -> PropertyColumnBuilder {
        PropertyColumnBuilder {
            column: PropertyColumn {
                name: name.into(),
                codes: Vec::new(),
                values: vec![Value::Null],
            },
            index: std::collections::HashMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.column.name
    }

    /// Appends one event's value (`None` or null for a missing one).
    pub fn push(&mut self, value: Option<&Value>) {
        let code = match value {
            None | Some(Value::Null) => 0,
            Some(value) => self.code_of(value),
        };
        self.column.codes.push(code);
    }

    /// The dictionary code of a non-null value, added when new.
    fn code_of(&mut self, value: &Value) -> u32 {
        let key = value.to_string();
        if let Some(code) = self.index.get(&key) {
            return *code;
        }
        let code = self.column.values.len() as u32;
        self.column.values.push(value.clone());
        self.index.insert(key, code);
        code
    }

    pub fn finish(self) -> PropertyColumn {
        self.column
    }

    /// Appends every event of `other` (built elsewhere, with its own dictionary) after this one's.
    pub fn append(&mut self, other: PropertyColumn) {
        let remap: Vec<u32> = other
            .values
            .iter()
            .enumerate()
            .map(|(code, value)| if code == 0 { 0 } else { self.code_of(value) })
            .collect();
        self.column
            .codes
            .extend(other.codes.iter().map(|code| remap[*code as usize]));
    }
}

/// One journey, borrowed from a [`JourneySet`].
#[derive(Debug, Clone, Copy)]
pub struct JourneyRef<'a> {
    /// Position of the journey in its set.
    pub index: usize,
    /// Position of the journey's first event in the set's columns (for property lookups).
    pub start: usize,
    pub set: &'a JourneySet,
    pub ts: &'a [i64],
    pub step: &'a [u32],
    pub channel: &'a [u16],
}

impl<'a> JourneyRef<'a> {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

impl JourneySet {
    pub fn n_journeys(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn n_events(&self) -> usize {
        self.ts.len()
    }

    /// Journey `index`.
    #[inline]
    pub fn journey(&self, index: usize) -> JourneyRef<'_> {
        let range = self.offsets[index]..self.offsets[index + 1];
        JourneyRef {
            index,
            start: range.start,
            set: self,
            ts: &self.ts[range.clone()],
            step: &self.step[range.clone()],
            channel: &self.channel[range],
        }
    }

    /// The property column named `name`, if it was loaded.
    pub fn property(&self, name: &str) -> Option<&PropertyColumn> {
        self.properties.iter().find(|column| column.name == name)
    }

    /// The events for which `keep(event index)` holds, as a new set with the same dictionaries and property
    /// columns; journeys left empty are dropped.
    pub fn select(&self, keep: impl FnMut(usize) -> bool) -> JourneySet {
        self.select_with_origins(keep).0
    }

    /// [`Self::select`], with the index in `self` of each journey kept (for carrying per-journey facts over).
    pub fn select_with_origins(
        &self,
        mut keep: impl FnMut(usize) -> bool,
    ) -> (JourneySet, Vec<usize>) {
        let mut origins = Vec::new();
        let mut set = JourneySet {
            offsets: vec![0],
            step_names: self.step_names.clone(),
            channel_names: self.channel_names.clone(),
            ..JourneySet::default()
        };
        // The kept events as runs of consecutive indices: a selection usually keeps long stretches (it drops a few
        // kinds of event, or whole journeys), and a run is copied as one slice per column rather than gathered
        // event by event.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut kept = 0usize;
        for journey in 0..self.n_journeys() {
            let before = kept;
            for event in self.offsets[journey]..self.offsets[journey + 1] {
                if keep(event) {
                    kept += 1;
                    match runs.last_mut() {
                        Some((_, end)) if *end == event => *end = event + 1,
                        _ => runs.push((event, event + 1)),
                    }
                }
            }
            if kept > before {
                set.customer_ids.push(&self.customer_ids[journey]);
                set.offsets.push(kept);
                origins.push(journey);
            }
        }
        fn gather<T: Copy>(column: &[T], runs: &[(usize, usize)], kept: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(kept);
            for (start, end) in runs {
                out.extend_from_slice(&column[*start..*end]);
            }
            out
        }
        set.ts = gather(&self.ts, &runs, kept);
        set.step = gather(&self.step, &runs, kept);
        set.channel = gather(&self.channel, &runs, kept);
        set.properties = self
            .properties
            .iter()
            .map(|column| PropertyColumn {
                name: column.name.clone(),
                codes: gather(&column.codes, &runs, kept),
                values: column.values.clone(),
            })
            .collect();
        (set, origins)
    }

    /// Journeys `range`, in order.
    pub fn journeys(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = JourneyRef<'_>> {
        range.map(|index| self.journey(index))
    }

    /// Builds a set from `(customer, [(time µs, step, channel)])` lists, each already in journey order — for
    /// tests and small inputs. Names are coded in order of first appearance.
    pub fn from_journeys<'n>(
        journeys: impl IntoIterator<Item = (String, Vec<(i64, &'n str, &'n str)>)>,
    ) -> JourneySet {
        let mut set = JourneySet {
            offsets: vec![0],
            ..JourneySet::default()
        };
        let code = |names: &mut Vec<String>, name: &str| match names
            .iter()
            .position(|known| known == name)
        {
            Some(position) => position,
            None => {
                names.push(name.to_string());
                names.len() - 1
            }
        };
        for (customer, events) in journeys {
            set.customer_ids.push(&customer);
            for (ts, step, channel) in events {
                set.ts.push(ts);
                set.step.push(code(&mut set.step_names, step) as u32);
                set.channel
                    .push(code(&mut set.channel_names, channel) as u16);
            }
            set.offsets.push(set.ts.len());
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journeys_are_ranges_of_the_columns() {
        let set = JourneySet::from_journeys([
            ("a".to_string(), vec![(1, "view", "web"), (2, "buy", "web")]),
            ("b".to_string(), vec![(5, "view", "app")]),
        ]);
        assert_eq!((set.n_journeys(), set.n_events()), (2, 3));
        let second = set.journey(1);
        assert_eq!(
            (second.ts, second.step, second.channel),
            (&[5i64][..], &[0u32][..], &[1u16][..])
        );
        assert_eq!(set.step_names, ["view", "buy"]);
    }

    proptest::proptest! {
        /// `select` (which copies runs of kept events) keeps exactly the events a one-by-one filter would, with
        /// their journeys, and drops the journeys left empty.
        #[test]
        fn select_keeps_what_an_event_by_event_filter_keeps(
            journeys in proptest::collection::vec(proptest::collection::vec(0u32..4, 0..6), 0..8),
            drop in proptest::collection::vec(proptest::bool::ANY, 48),
        ) {
            let names = ["a", "b", "c", "d"];
            let mut set = JourneySet::from_journeys(journeys.iter().enumerate().map(|(index, steps)| {
                (format!("c{index}"), steps.iter().enumerate().map(|(at, step)| (at as i64, names[*step as usize], "web")).collect())
            }));
            set.properties.push(PropertyColumn {
                name: "n".into(),
                codes: (0..set.n_events() as u32).collect(),
                values: Vec::new(),
            });
            let keep = |event: usize| !drop[event % drop.len()];
            let selected = set.select(keep);
            let mut expected: Vec<(String, i64, u32, u32)> = Vec::new();
            for journey in 0..set.n_journeys() {
                for event in set.offsets[journey]..set.offsets[journey + 1] {
                    if keep(event) {
                        expected.push((set.customer_ids[journey].to_string(), set.ts[event], set.step[event], event as u32));
                    }
                }
            }
            let mut got = Vec::new();
            for journey in 0..selected.n_journeys() {
                proptest::prop_assert!(selected.offsets[journey + 1] > selected.offsets[journey]);
                for event in selected.offsets[journey]..selected.offsets[journey + 1] {
                    got.push((selected.customer_ids[journey].to_string(), selected.ts[event], selected.step[event], selected.properties[0].codes[event]));
                }
            }
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
