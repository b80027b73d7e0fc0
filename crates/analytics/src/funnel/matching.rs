//! The per-journey search: the general loop over every mode, and the branch-free loop for plain ordered funnels.

use super::*;
use waymark_model::JourneySet;

impl PreparedFunnel<'_> {
    #[inline]
    pub(super) fn mask(&self, journeys: &JourneySet, event: usize) -> u32 {
        match &self.step_masks {
            Some(masks) => masks[journeys.step[event] as usize],
            None => self
                .conditions
                .iter()
                .enumerate()
                .filter(|(_, condition)| condition.matches(journeys, event))
                .fold(0, |mask, (bit, _)| mask | (1 << bit)),
        }
    }

    /// The exclusion that voids levels `from..to` at this event, if any.
    pub(super) fn excluded(&self, journeys: &JourneySet, event: usize) -> Option<(usize, usize)> {
        self.exclusions
            .iter()
            .find(|(condition, _, _)| condition.matches(journeys, event))
            .map(|(_, from, to)| (*from, *to))
    }

    /// The level reached by events `range` of the set (one unit), ClickHouse's algorithm for the chosen modes.
    pub fn outcome(&self, journeys: &JourneySet, range: std::ops::Range<usize>) -> Outcome {
        self.outcome_with(journeys, range, &mut Scratch::default())
    }

    /// [`PreparedFunnel::outcome`] with a reusable buffer for the chains' paths.
    pub(super) fn outcome_with(
        &self,
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
        scratch: &mut Scratch,
    ) -> Outcome {
        if self.flags.any_order {
            self.any_order(journeys, range)
        } else if self.flags.strict_once {
            self.strict_once(journeys, range)
        } else {
            match &self.plain_levels {
                Some(levels) => Self::ordered_plain(
                    self.funnel.window_us,
                    &self.within,
                    levels,
                    journeys,
                    range,
                    &mut scratch.nodes,
                ),
                None => {
                    let paths = &mut scratch.paths;
                    paths.resize(self.funnel.steps.len(), [0; MAX_STEPS]);
                    self.ordered(journeys, range, paths)
                }
            }
        }
    }

    /// [`PreparedFunnel::ordered`] for the common case — no strict mode, no exclusion, each event matching at most
    /// one step by its name — without branches on the data: every event updates "its" level with conditional moves
    /// (an unmatched event targets a level that cannot be reached), and the chains' paths are a linked list in
    /// `nodes` (event, previous node) instead of copied arrays. The levels and paths equal the general loop's.
    pub(super) fn ordered_plain(
        window: i64,
        within: &[i64],
        levels: &[u8],
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
        nodes: &mut Vec<(u32, u32)>,
    ) -> Outcome {
        const NONE: u32 = u32::MAX;
        let n = within.len();
        // Index 0 is a virtual level before step 1, always reached at the current event; index j ≥ 1 is step j.
        let mut first = [0i64; MAX_STEPS + 2];
        let mut last = [0i64; MAX_STEPS + 2];
        let mut node = [NONE; MAX_STEPS + 2];
        let mut limit = [i64::MAX; MAX_STEPS + 2];
        limit[2..=n].copy_from_slice(&within[1..]);
        let mut reached: u64 = 1;
        let done: u64 = 1 << n;
        let start_event = range.start;
        let steps = &journeys.step[range.clone()];
        let times = &journeys.ts[range];
        nodes.clear();
        nodes.resize(steps.len(), (0, NONE));
        let mut used = 0usize;
        for (offset, (step, ts)) in steps.iter().zip(times).enumerate() {
            let j = levels[*step as usize] as usize;
            let p = j - 1;
            let ts = *ts;
            first[0] = ts;
            last[0] = ts;
            let ok = ((reached >> p) & 1 == 1)
                & (ts <= first[p].saturating_add(window))
                & (ts - last[p] <= limit[j]);
            nodes[used] = ((start_event + offset) as u32, node[p]);
            first[j] = if ok { first[p] } else { first[j] };
            last[j] = if ok { ts } else { last[j] };
            node[j] = if ok { used as u32 } else { node[j] };
            used += usize::from(ok);
            reached |= u64::from(ok) << j;
            if reached & done != 0 {
                break;
            }
        }
        let level = 63 - reached.leading_zeros() as usize;
        let mut outcome = Outcome::none();
        outcome.level = level;
        let mut at = node[level];
        for position in (0..level).rev() {
            let (event, previous) = nodes[at as usize];
            outcome.path[position] = event;
            at = previous;
        }
        outcome
    }

    pub(super) fn ordered(
        &self,
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
        paths: &mut [[u32; MAX_STEPS]],
    ) -> Outcome {
        let n = self.funnel.steps.len();
        let window = self.funnel.window_us;
        let Flags {
            strict_order,
            dedup,
            increase,
            reentry,
            ..
        } = self.flags;
        let mut set = [false; MAX_STEPS];
        let mut first = [0i64; MAX_STEPS];
        let mut last = [0i64; MAX_STEPS];
        let mut started = false;
        let highest = |set: &[bool; MAX_STEPS], paths: &[[u32; MAX_STEPS]]| match (0..n)
            .rev()
            .find(|level| set[*level])
        {
            Some(level) => Outcome {
                level: level + 1,
                path: paths[level],
            },
            None => Outcome::none(),
        };
        let has_exclusions = !self.exclusions.is_empty();
        let start_event = range.start;
        let steps = &journeys.step[range.clone()];
        let times = &journeys.ts[range];
        for (offset, (step, ts)) in steps.iter().zip(times).enumerate() {
            let event = start_event + offset;
            if has_exclusions {
                if let Some((from, to)) = self.excluded(journeys, event) {
                    set[from..to].iter_mut().for_each(|level| *level = false);
                }
            }
            let mut mask = match &self.step_masks {
                Some(masks) => masks[*step as usize],
                None => self.mask(journeys, event),
            };
            if mask == 0 {
                if strict_order && started {
                    break;
                }
                continue;
            }
            let ts = *ts;
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if k == 0 {
                    set[0] = true;
                    first[0] = ts;
                    last[0] = ts;
                    paths[0][0] = event as u32;
                    started = true;
                    if n == 1 {
                        // Like longer funnels, a one-step funnel stops at its first complete chain.
                        return Outcome {
                            level: 1,
                            path: paths[0],
                        };
                    }
                } else if dedup && set[k] {
                    return highest(&set, paths);
                } else if strict_order && started && !set[k - 1] {
                    if reentry {
                        continue;
                    }
                    let level = (0..n).find(|level| !set[*level]).unwrap_or(n);
                    return Outcome {
                        level,
                        path: if level == 0 {
                            [0; MAX_STEPS]
                        } else {
                            paths[level - 1]
                        },
                    };
                } else if set[k - 1] {
                    let start = first[k - 1];
                    let matched = ts <= start.saturating_add(window)
                        && (!increase || last[k - 1] < ts)
                        && ts - last[k - 1] <= self.within[k];
                    if matched {
                        set[k] = true;
                        first[k] = start;
                        last[k] = ts;
                        // Only the first k entries of a level-k path are meaningful.
                        let (before, after) = paths.split_at_mut(k);
                        after[0][..k].copy_from_slice(&before[k - 1][..k]);
                        after[0][k] = event as u32;
                        if k + 1 == n {
                            return Outcome {
                                level: n,
                                path: paths[k],
                            };
                        }
                    }
                }
            }
        }
        highest(&set, paths)
    }

    pub(super) fn strict_once(
        &self,
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
    ) -> Outcome {
        #[derive(Clone)]
        struct Chain {
            first: i64,
            last: i64,
            path: [u32; MAX_STEPS],
        }
        let n = self.funnel.steps.len();
        let window = self.funnel.window_us;
        let Flags {
            strict_order,
            dedup,
            increase,
            reentry,
            ..
        } = self.flags;
        let mut levels: Vec<Vec<Chain>> = vec![Vec::new(); n];
        let mut started = false;
        let highest =
            |levels: &[Vec<Chain>]| match (0..n).rev().find(|level| !levels[*level].is_empty()) {
                Some(level) => Outcome {
                    level: level + 1,
                    path: levels[level][0].path,
                },
                None => Outcome::none(),
            };
        for event in range {
            let ts = journeys.ts[event];
            if !self.exclusions.is_empty() {
                if let Some((from, to)) = self.excluded(journeys, event) {
                    levels[from..to].iter_mut().for_each(Vec::clear);
                }
            }
            let mut mask = self.mask(journeys, event);
            if mask == 0 {
                if strict_order && started {
                    break;
                }
                continue;
            }
            let id = event as u32;
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if k == 0 {
                    let mut path = [0; MAX_STEPS];
                    path[0] = id;
                    levels[0].push(Chain {
                        first: ts,
                        last: ts,
                        path,
                    });
                    started = true;
                } else if dedup && !levels[k].is_empty() {
                    return highest(&levels);
                } else if strict_order && started && levels[k - 1].is_empty() {
                    if reentry {
                        continue;
                    }
                    let level = (0..n).find(|level| levels[*level].is_empty()).unwrap_or(n);
                    return Outcome {
                        level,
                        path: if level == 0 {
                            [0; MAX_STEPS]
                        } else {
                            levels[level - 1][0].path
                        },
                    };
                } else if !levels[k - 1].is_empty() {
                    let (before, after) = levels.split_at_mut(k);
                    let previous = &mut before[k - 1];
                    let current = &mut after[0];
                    let mut index = 0;
                    while index < previous.len() {
                        let chain = &previous[index];
                        let in_window = ts <= chain.first.saturating_add(window);
                        if !in_window && previous.len() > 1 {
                            previous.remove(index);
                            continue;
                        }
                        let matched = in_window
                            && !chain.path[..k].contains(&id)
                            && (!increase || chain.last < ts)
                            && ts - chain.last <= self.within[k];
                        if matched {
                            let mut path = chain.path;
                            path[k] = id;
                            current.push(Chain {
                                first: chain.first,
                                last: ts,
                                path,
                            });
                            if k + 1 == n {
                                return Outcome { level: n, path };
                            }
                        }
                        index += 1;
                    }
                }
            }
        }
        highest(&levels)
    }

    /// Any order, as PostHog's and Mixpanel's unordered funnels count: a unit is at step k when it did any k distinct
    /// steps of the funnel within `window` of one of its step events (the best window counts). Its path is the
    /// events where each new distinct step was first done in that window, in time order.
    pub(super) fn any_order(
        &self,
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
    ) -> Outcome {
        let n = self.funnel.steps.len();
        let window = self.funnel.window_us;
        let events: Vec<(usize, u32)> = range
            .filter_map(|event| {
                let mask = self.mask(journeys, event);
                (mask != 0).then_some((event, mask))
            })
            .collect();
        let mut counts = [0u32; MAX_STEPS];
        let mut best = (0usize, 0usize);
        let mut end = 0;
        for (start, (event, _)) in events.iter().enumerate() {
            let limit = journeys.ts[*event].saturating_add(window);
            while end < events.len() && journeys.ts[events[end].0] <= limit {
                let mut mask = events[end].1;
                while mask != 0 {
                    counts[mask.trailing_zeros() as usize] += 1;
                    mask &= mask - 1;
                }
                end += 1;
            }
            let level = counts[..n].iter().filter(|count| **count > 0).count();
            if level > best.0 {
                best = (level, start);
            }
            let mut mask = events[start].1;
            while mask != 0 {
                counts[mask.trailing_zeros() as usize] -= 1;
                mask &= mask - 1;
            }
        }
        let mut outcome = Outcome::none();
        outcome.level = best.0;
        let limit = events.get(best.1).map_or(i64::MIN, |(event, _)| {
            journeys.ts[*event].saturating_add(window)
        });
        let mut done = 0u32;
        let mut reached = 0;
        for (event, mask) in events[best.1.min(events.len())..]
            .iter()
            .take_while(|(event, _)| journeys.ts[*event] <= limit)
        {
            let new = mask & !done & ((1u32 << n) - 1);
            if new != 0 && reached < best.0 {
                done |= new;
                // One event of several steps reaches as many of them at once.
                for _ in 0..new.count_ones() {
                    if reached < best.0 {
                        outcome.path[reached] = *event as u32;
                        reached += 1;
                    }
                }
            }
        }
        outcome
    }

    pub(super) fn record(
        &self,
        state: &mut FunnelState,
        journeys: &JourneySet,
        journey: usize,
        end: usize,
        outcome: Outcome,
    ) {
        let n = self.funnel.steps.len();
        state.units += 1;
        let level = outcome.level;
        for step in 0..level {
            state.reached[step] += 1;
            if step > 0 {
                let ts = |position: usize| journeys.ts[outcome.path[position] as usize];
                state.since_start[step].push(ts(step) - ts(0));
            }
        }
        if level >= 2 {
            state.levels.push(level as u8);
        }
        if level > 0 && level < n {
            let dropped = &mut state.dropped[level - 1];
            if dropped.len() < self.funnel.drill_down
                || dropped.last().is_some_and(|last| *last > journey as u32)
            {
                dropped.push(journey as u32);
                dropped.sort_unstable();
                dropped.dedup();
                dropped.truncate(self.funnel.drill_down);
            }
            let after = outcome.path[level - 1] as usize + 1;
            let next = if after < end {
                journeys.step[after]
            } else {
                u32::MAX
            };
            *state.next[level - 1].entry(next).or_default() += 1;
            // Stopped in the funnel is not stopped in the journey: did they do the next step, or the last, later?
            let (next_bit, last_bit) = (1u32 << level, 1u32 << (n - 1));
            let (mut next_later, mut last_later) = (false, false);
            for event in after..end {
                let mask = self.mask(journeys, event);
                next_later |= mask & next_bit != 0;
                last_later |= mask & last_bit != 0;
                if last_later && next_later {
                    break;
                }
            }
            // In any order, "the next step" is no one step of the list.
            state.next_later[level - 1] += u64::from(next_later && !self.flags.any_order);
            state.last_later[level - 1] += u64::from(last_later);
        }
        if let (Some(column), Some(breakdown)) = (self.breakdown_column, &self.funnel.breakdown) {
            if level > 0 {
                let at = match breakdown.attribution {
                    Attribution::FirstTouch => Some(0),
                    Attribution::LastTouch => Some(level - 1),
                    Attribution::Step(step) => (step <= level).then_some(step - 1),
                };
                let code = at.map_or(u32::MAX, |position| {
                    journeys.properties[column].codes[outcome.path[position] as usize]
                });
                let counts = state.groups.entry(code).or_insert_with(|| vec![0; n]);
                counts[..level].iter_mut().for_each(|count| *count += 1);
            }
        }
    }
}
