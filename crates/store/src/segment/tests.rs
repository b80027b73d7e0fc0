use super::*;

/// What a segment's own columns say of row `row` (codes local to the segment).
fn key_of(columns: &SegmentColumns, row: usize) -> RowKey<'_> {
    RowKey {
        msg_hash: columns.rows.msg_hash[row],
        ts: columns.rows.ts[row],
        step: &columns.steps[columns.rows.step[row] as usize],
    }
}

#[test]
fn fields_the_columns_hold_are_left_out_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let hash = |index: usize| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(index as u64 + 1);
    // By row number mod 3: 0, the derived id of the row's own hash, its timestamp and its step (all three
    // left out); 1, a derived-looking id of another hash, another time and step (all kept); 2, uppercase hex
    // (not a derived id), the timestamp in a nested object, and the step twice. Every payload must read back
    // byte for byte.
    let payloads: Vec<String> = (0..700)
        .map(|index| match index % 3 {
            0 => format!(
                "{{\"messageId\":\"{}\",\"type\":\"track\",\"timestamp\":{index},\"event\":\"vi\\\"ew\",\"n\":{index}}}",
                derived_message_id(hash(index))
            ),
            1 => format!(
                "{{\"messageId\":\"{}\",\"type\":\"track\",\"timestamp\":{},\"event\":\"cart\",\"n\":{index}}}",
                derived_message_id(hash(index) ^ 1),
                index + 1
            ),
            _ => format!(
                "{{\"messageId\":\"{}\",\"p\":{{\"timestamp\":{index},}},\"event\":\"vi\\\"ew\",\"event\":\"vi\\\"ew\",}}",
                derived_message_id(hash(index)).to_uppercase()
            ),
        })
        .collect();
    let rows: Vec<SegmentRow> = (0..700)
        .map(|index| SegmentRow {
            identifier: "user:a",
            ts: index as i64,
            seq: index as u64,
            step: "vi\"ew",
            channel: "web",
            msg_hash: hash(index),
            payload: Payload::Whole(payloads[index].as_bytes()),
        })
        .collect();
    let bytes = write_segment(&dir.path().join("1.seg"), rows.len(), |row| rows[row])
        .unwrap()
        .bytes;
    // The same rows in format 1, as stores written before this one hold them, read back the same.
    write_segment_as(
        &dir.path().join("0.seg"),
        rows.len(),
        |row| rows[row],
        1,
        None,
    )
    .unwrap();
    let (old, old_columns) = SegmentFile::open(&dir.path().join("0.seg")).unwrap();
    let (segment, columns) = SegmentFile::open(&dir.path().join("1.seg")).unwrap();
    for index in (0..700).step_by(7).chain([1, 2, 255, 256, 257, 699]) {
        let payload = segment.read_payload(index as u32, |row| key_of(&columns, row));
        assert_eq!(payload.unwrap(), payloads[index].as_bytes(), "row {index}");
        let payload = old.read_payload(index as u32, |row| key_of(&old_columns, row));
        assert_eq!(
            payload.unwrap(),
            payloads[index].as_bytes(),
            "format 1, row {index}"
        );
    }
    // Payloads read as stored and written again as they are (as a merge does) make the same segment, byte for
    // byte; a format-1 segment's come back whole and are encoded again.
    let read_all = |file: &SegmentFile| {
        let (mut bytes, mut ends) = (Vec::new(), Vec::new());
        for block in 0..file.n_blocks() {
            let (_, raw, ranges) = file.block_rows(block).unwrap();
            for range in ranges {
                bytes.extend_from_slice(&raw[range]);
                ends.push(bytes.len());
            }
        }
        (bytes, ends, file.stores_cut_payloads())
    };
    let ((stored, stored_ends, is_stored), (whole, whole_ends, is_whole_stored)) =
        (read_all(&segment), read_all(&old));
    assert!(is_stored && !is_whole_stored);
    let slice = |ends: &[usize], row: usize| (if row == 0 { 0 } else { ends[row - 1] })..ends[row];
    let again: Vec<SegmentRow> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| SegmentRow {
            payload: if index % 2 == 0 {
                Payload::Stored(&stored[slice(&stored_ends, index)])
            } else {
                Payload::Whole(&whole[slice(&whole_ends, index)])
            },
            ..*row
        })
        .collect();
    write_segment(&dir.path().join("3.seg"), again.len(), |row| again[row]).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("3.seg")).unwrap(),
        std::fs::read(dir.path().join("1.seg")).unwrap()
    );
    // The derived id's 16 random hex digits and the distinct timestamps are what zstd cannot squeeze: with
    // their columns saying otherwise, they are all kept, and the segment is larger.
    let all_kept: Vec<SegmentRow> = rows
        .iter()
        .map(|row| SegmentRow {
            msg_hash: row.msg_hash ^ 2,
            ts: row.ts + 1_000_000,
            step: "other",
            ..*row
        })
        .collect();
    let kept_bytes = write_segment(&dir.path().join("2.seg"), all_kept.len(), |row| {
        all_kept[row]
    })
    .unwrap()
    .bytes;
    assert!(
        bytes + 700 / 3 * 8 < kept_bytes,
        "{bytes} bytes with fields left out, {kept_bytes} with all kept"
    );
    // Row 0 is stored as flags, three offsets and what is left.
    let mut scratch = Vec::new();
    let texts = leave_out_texts(key_of(&columns, 0), &mut scratch);
    let mut stored = Vec::new();
    encode_payload(
        payloads[0].as_bytes(),
        key_of(&columns, 0),
        &mut Vec::new(),
        &mut stored,
    );
    let left_out: usize = texts.iter().map(|text| text.len()).sum();
    assert_eq!(stored.len(), payloads[0].len() - left_out + 1 + 3 * 2);
    assert_eq!(stored[0], 0b111);
    assert_eq!(derived_id_hash(&derived_message_id(42)), Some(42));
    assert_eq!(derived_id_hash("imp-000000000000002A"), None);
    assert_eq!(derived_id_hash("imp-2a"), None);
}

proptest::proptest! {
    /// Time and sequence columns read back exactly: any values (overflowing deltas too), and times on a
    /// coarse grid, which are stored divided by it.
    #[test]
    fn delta_columns_read_back_exactly(
        any_values in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..50),
        grid in proptest::collection::vec(-1_000_000i64..1_000_000, 1..50),
        step in 1i64..10_000_000,
    ) {
        let on_grid: Vec<i64> = grid.iter().map(|tick| (1_700_000_000 + tick) * step).collect();
        for values in [any_values, on_grid.clone()] {
            let (coded, scale) = scaled_deltas(&values);
            let bytes = column_bytes(&coded, i64::to_le_bytes, FORMAT);
            let read = unscaled_values(column_values(&bytes, i64::from_le_bytes, FORMAT), scale);
            proptest::prop_assert_eq!(read, values);
        }
        let (_, scale) = scaled_deltas(&on_grid);
        proptest::prop_assert_eq!(scale % step as u64, 0, "the grid divides every delta");
    }

    /// Any payload reads back byte for byte, whatever of the leave-out texts it holds, where, how often, and
    /// whatever its first byte (flags and the whole-payload marker are bytes 1 to 8).
    #[test]
    fn stored_payloads_read_back_whole(
        parts in proptest::collection::vec(0usize..8, 0..12),
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
        ts in proptest::prelude::any::<i64>(),
        msg_hash in proptest::prelude::any::<u64>(),
    ) {
        let key = RowKey { msg_hash, ts, step: "Order \"Completed\"" };
        let mut scratch = Vec::new();
        let texts = leave_out_texts(key, &mut scratch);
        let mut payload = Vec::new();
        for part in parts {
            match part {
                0..=2 => payload.extend_from_slice(&scratch[texts[part].clone()]),
                3 => payload.extend_from_slice(&noise),
                4 => payload.push(b'{'),
                5 => payload.extend_from_slice(&[b'x'; 40_000]),
                6 => payload.push(noise.first().copied().unwrap_or(1) % 9),
                _ => payload.extend_from_slice(b"\"timestamp\":"),
            }
        }
        let mut stored = Vec::new();
        encode_payload(&payload, key, &mut Vec::new(), &mut stored);
        proptest::prop_assert!(stored.len() <= payload.len() + 1);
        proptest::prop_assert_eq!(decode_payload(&stored, key, &mut Vec::new()), Some(payload));
    }
}

#[test]
fn a_cancelled_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1.seg");
    let row = |index: usize| SegmentRow {
        identifier: "user:a",
        ts: index as i64,
        seq: index as u64,
        step: "view",
        channel: "web",
        msg_hash: index as u64,
        payload: Payload::Whole(b"{}"),
    };
    let cancel = AtomicBool::new(true);
    let result = write_segment_unless(&path, 1_000, row, &cancel);
    assert!(
        matches!(result, Err(StoreError::Closing)),
        "{:?}",
        result.err()
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    cancel.store(false, Ordering::Relaxed);
    let written = write_segment_unless(&path, 1_000, row, &cancel).unwrap();
    assert_eq!(
        SegmentFile::open(&path).unwrap().1.rows.ts,
        written.columns.rows.ts
    );
}

#[test]
fn segment_round_trips_and_detects_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1.seg");
    let payloads: Vec<String> = (0..600).map(|index| format!("{{\"n\":{index}}}")).collect();
    let rows: Vec<SegmentRow> = (0..600)
        .map(|index| SegmentRow {
            identifier: if index < 300 { "user:a" } else { "anon:b" },
            ts: 1_000 + index as i64 * 7,
            seq: index as u64,
            step: ["view", "cart", "buy"][index % 3],
            channel: "web",
            msg_hash: index as u64 * 31,
            payload: Payload::Whole(payloads[index].as_bytes()),
        })
        .collect();
    let written = write_segment(&path, rows.len(), |row| rows[row]).unwrap();
    let (segment, columns) = SegmentFile::open(&path).unwrap();
    // What the write keeps is what reading the file gives back.
    let kept = &written.columns;
    assert_eq!(
        (&kept.identifiers, &kept.steps, &kept.channels),
        (&columns.identifiers, &columns.steps, &columns.channels)
    );
    assert_eq!(kept.rows, columns.rows);
    assert_eq!(
        (
            written.bytes,
            written.file.n_rows,
            written.file.format,
            written.file.n_blocks()
        ),
        (
            segment.bytes,
            segment.n_rows,
            segment.format,
            segment.n_blocks()
        )
    );
    assert_eq!(
        written
            .file
            .read_payload(513, |row| key_of(kept, row))
            .unwrap(),
        b"{\"n\":513}"
    );
    assert_eq!(segment.n_rows, 600);
    assert_eq!(columns.rows.ts[599], 1_000 + 599 * 7);
    assert_eq!(
        columns.identifiers[columns.rows.ident[450] as usize],
        "anon:b"
    );
    assert_eq!(columns.steps[columns.rows.step[4] as usize], "cart");
    assert_eq!(
        segment
            .read_payload(513, |row| key_of(&columns, row))
            .unwrap(),
        b"{\"n\":513}"
    );

    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        SegmentFile::open(&path),
        Err(StoreError::Corrupt { .. })
    ));
}
