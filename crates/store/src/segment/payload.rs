//! How a payload is stored: without the fields its row's columns give back byte for byte (derived message id, timestamp, step), and given back whole.

use super::*;

/// The texts a payload may be stored without, in the order of their flag bits, written into `scratch`: the
/// derived message id of the row's hash, its timestamp, its step as a `track` event's name.
pub(super) fn leave_out_texts(
    key: RowKey<'_>,
    scratch: &mut Vec<u8>,
) -> [std::ops::Range<usize>; 3] {
    scratch.clear();
    let mut ranges: [std::ops::Range<usize>; 3] = Default::default();
    ranges[0].start = scratch.len();
    scratch.extend_from_slice(b"\"messageId\":\"");
    scratch.extend_from_slice(DERIVED_ID_PREFIX.as_bytes());
    push_hex16(scratch, key.msg_hash);
    scratch.extend_from_slice(b"\",");
    ranges[0].end = scratch.len();
    ranges[1].start = scratch.len();
    scratch.extend_from_slice(b"\"timestamp\":");
    serde_json::to_writer(&mut *scratch, &key.ts).expect("an integer serialises");
    scratch.push(b',');
    ranges[1].end = scratch.len();
    ranges[2].start = scratch.len();
    scratch.extend_from_slice(b"\"event\":");
    serde_json::to_writer(&mut *scratch, key.step).expect("a string serialises");
    scratch.push(b',');
    ranges[2].end = scratch.len();
    ranges
}

/// The field names of the texts `leave_out_texts` writes, in the same order.
static LEAVE_OUT_FIELDS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 3]> =
    std::sync::LazyLock::new(|| {
        [
            b"\"messageId\":\"".as_slice(),
            b"\"timestamp\":",
            b"\"event\":",
        ]
        .map(memchr::memmem::Finder::new)
    });

/// Appends `payload` as stored to `out` (see the module documentation).
pub(super) fn encode_payload(
    payload: &[u8],
    key: RowKey<'_>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let texts = leave_out_texts(key, scratch);
    // (offset, length, flag bit) of each field left out; they never overlap.
    let mut cuts: Vec<(usize, usize, usize)> = Vec::with_capacity(3);
    for (bit, range) in texts.iter().enumerate() {
        let text = &scratch[range.clone()];
        // The first place the whole text occurs: the first occurrence of its field name that goes on with it
        // (searchers for the three names are built once; one for each event's own text cost more than the search).
        let found = LEAVE_OUT_FIELDS[bit]
            .find_iter(payload)
            .find(|at| payload[*at..].starts_with(text));
        if let Some(at) = found {
            let apart = cuts
                .iter()
                .all(|(start, len, _)| at + text.len() <= *start || start + len <= at);
            if at <= usize::from(u16::MAX) && apart {
                cuts.push((at, text.len(), bit));
            }
        }
    }
    if cuts.is_empty() {
        if payload
            .first()
            .is_some_and(|first| (1..=WHOLE).contains(first))
        {
            out.push(WHOLE);
        }
        out.extend_from_slice(payload);
        return;
    }
    // `cuts` is in flag-bit order here (found in that order): flags, then the offsets in that order.
    out.push(cuts.iter().map(|(_, _, bit)| 1u8 << bit).sum());
    for (at, _, _) in &cuts {
        out.extend_from_slice(&(*at as u16).to_le_bytes());
    }
    cuts.sort_unstable();
    let mut kept_from = 0;
    for (at, len, _) in &cuts {
        out.extend_from_slice(&payload[kept_from..*at]);
        kept_from = at + len;
    }
    out.extend_from_slice(&payload[kept_from..]);
}

/// The payload a stored one stands for (`None`: it is malformed).
pub(super) fn decode_payload(
    stored: &[u8],
    key: RowKey<'_>,
    scratch: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let flags = match stored.first() {
        Some(&WHOLE) => return Some(stored[1..].to_vec()),
        Some(flags @ 1..=7) => *flags,
        _ => return Some(stored.to_vec()),
    };
    let texts = leave_out_texts(key, scratch);
    let mut inserts: Vec<(usize, std::ops::Range<usize>)> = Vec::with_capacity(3);
    let mut position = 1;
    for (bit, text) in texts.into_iter().enumerate() {
        if flags & (1 << bit) != 0 {
            let offset = stored.get(position..position + 2)?;
            inserts.push((
                usize::from(u16::from_le_bytes([offset[0], offset[1]])),
                text,
            ));
            position += 2;
        }
    }
    inserts.sort_by_key(|(at, _)| *at);
    let rest = &stored[position..];
    let mut payload = Vec::with_capacity(rest.len() + scratch.len());
    let mut taken = 0;
    for (at, text) in inserts {
        let until = taken + at.checked_sub(payload.len())?;
        payload.extend_from_slice(rest.get(taken..until)?);
        payload.extend_from_slice(&scratch[text]);
        taken = until;
    }
    payload.extend_from_slice(rest.get(taken..)?);
    Some(payload)
}
