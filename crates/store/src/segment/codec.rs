//! Column codecs: little-endian bytes, byte shuffling, zstd sections, scaled zigzag deltas.

pub(super) fn to_bytes<T: Copy, const N: usize>(
    values: &[T],
    encode: impl Fn(T) -> [u8; N],
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * N);
    for value in values {
        bytes.extend_from_slice(&encode(*value));
    }
    bytes
}

pub(super) fn from_bytes<T, const N: usize>(bytes: &[u8], decode: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| decode(chunk.try_into().expect("chunk of N")))
        .collect()
}

/// Byte-shuffles fixed-width values (every value's first byte, then every second byte, …): the high bytes of small
/// numbers become long runs that zstd squeezes out.
pub(super) fn shuffle(bytes: &[u8], width: usize) -> Vec<u8> {
    let n = bytes.len() / width;
    let mut shuffled = vec![0u8; n * width];
    for (index, value) in bytes.chunks_exact(width).enumerate() {
        for (position, byte) in value.iter().enumerate() {
            shuffled[position * n + index] = *byte;
        }
    }
    shuffled
}

/// Undoes [`shuffle`] (a length that is no multiple of `width` is left for the length check to refuse).
pub(super) fn unshuffle(bytes: &[u8], width: usize) -> Vec<u8> {
    if bytes.len() % width != 0 {
        return bytes.to_vec();
    }
    let n = bytes.len() / width;
    let mut values = vec![0u8; bytes.len()];
    for (index, value) in values.chunks_exact_mut(width).enumerate() {
        for (position, byte) in value.iter_mut().enumerate() {
            *byte = bytes[position * n + index];
        }
    }
    values
}

/// A fixed-width column as stored: little-endian values, byte-shuffled from format 2 on.
pub(super) fn column_bytes<T: Copy, const N: usize>(
    values: &[T],
    encode: impl Fn(T) -> [u8; N],
    format: u32,
) -> Vec<u8> {
    let bytes = to_bytes(values, encode);
    if format >= 2 {
        shuffle(&bytes, N)
    } else {
        bytes
    }
}

/// Decodes a column as stored. A shuffled one is read straight from its byte planes into values, without an
/// unshuffled copy: opening a store allocates each column once (fresh pages are what opening mostly cost).
pub(super) fn column_values<T, const N: usize>(
    bytes: &[u8],
    decode: impl Fn([u8; N]) -> T,
    format: u32,
) -> Vec<T> {
    if format < 2 || bytes.len() % N != 0 {
        // (A length that is no multiple of `N` is left for the length check to refuse.)
        return from_bytes(bytes, decode);
    }
    let n = bytes.len() / N;
    let planes: [&[u8]; N] = std::array::from_fn(|plane| &bytes[plane * n..(plane + 1) * n]);
    (0..n)
        .map(|index| decode(std::array::from_fn(|plane| planes[plane][index])))
        .collect()
}

pub(super) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// An i64 column from format 2 on: deltas divided by their greatest common divisor (the scale; times in whole
/// milliseconds are all multiples of 1,000 µs), zigzag-coded so that small negative deltas are small numbers too.
/// Deltas that overflow are kept wrapped, at scale 1.
pub(super) fn scaled_deltas(values: &[i64]) -> (Vec<i64>, u64) {
    let exact: Option<Vec<i64>> = std::iter::once(&0)
        .chain(values)
        .zip(values)
        .map(|(previous, value)| value.checked_sub(*previous))
        .collect();
    let (deltas, scale) = match exact {
        Some(deltas) => {
            let scale = deltas
                .iter()
                .fold(0, |divisor, delta| gcd(divisor, delta.unsigned_abs()))
                .max(1);
            let scaled = deltas
                .iter()
                .map(|delta| (i128::from(*delta) / i128::from(scale)) as i64)
                .collect();
            (scaled, scale)
        }
        None => (delta_encode(values), 1),
    };
    let zigzag = deltas
        .iter()
        .map(|delta| ((delta << 1) ^ (delta >> 63)) as u64 as i64)
        .collect();
    (zigzag, scale)
}

/// Undoes [`scaled_deltas`].
pub(super) fn unscaled_values(zigzag: Vec<i64>, scale: u64) -> Vec<i64> {
    let mut running = 0i64;
    zigzag
        .into_iter()
        .map(|coded| {
            let coded = coded as u64;
            let delta = ((coded >> 1) as i64) ^ -((coded & 1) as i64);
            running = running.wrapping_add(delta.wrapping_mul(scale as i64));
            running
        })
        .collect()
}

/// Delta-encodes a column so runs of nearby values (times within a journey, sequences) compress well.
pub(super) fn delta_encode(values: &[i64]) -> Vec<i64> {
    let mut previous = 0i64;
    values
        .iter()
        .map(|value| {
            let delta = value.wrapping_sub(previous);
            previous = *value;
            delta
        })
        .collect()
}

pub(super) fn delta_decode(deltas: Vec<i64>) -> Vec<i64> {
    let mut running = 0i64;
    deltas
        .into_iter()
        .map(|delta| {
            running = running.wrapping_add(delta);
            running
        })
        .collect()
}
