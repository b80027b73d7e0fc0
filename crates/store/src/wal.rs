//! The write-ahead log: checksummed, length-prefixed records in numbered files, torn tails truncated on recovery.
//!
//! Record frame: `u32 length (LE) | u32 crc32 of payload (LE) | payload`. A frame whose length runs past the end of
//! the file, or whose checksum does not match, marks the end of the valid log: in the newest file that is a torn
//! write from a crash and is cut off; in an older file (which was fsynced before the next one was created) it is
//! corruption and opening fails.

use crate::error::{Result, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest record accepted on replay; anything larger is treated as a corrupt length field.
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;

pub(crate) fn wal_file_name(index: u64) -> String {
    format!("{index:020}.log")
}

/// Lists `(index, path)` of the log files in `dir`, oldest first.
pub(crate) fn list_wal_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let entry = entry.map_err(StoreError::io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(index) = name
            .strip_suffix(".log")
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            files.push((index, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Appends frames to one log file. Callers batch many records and call [`WalWriter::sync`] once (group commit).
pub(crate) struct WalWriter {
    file: File,
    path: PathBuf,
    pub(crate) index: u64,
    buffer: Vec<u8>,
    pub(crate) bytes_written: u64,
    /// A failed write may have left part of a frame past `bytes_written`: cut it before the next write.
    dirty_tail: bool,
}

impl WalWriter {
    /// Opens (creating if needed) log file `index` in `dir` for appending at `valid_len`.
    pub(crate) fn open(dir: &Path, index: u64, valid_len: u64) -> Result<WalWriter> {
        let mut writer = WalWriter::open_path(dir, &dir.join(wal_file_name(index)), valid_len)?;
        writer.index = index;
        Ok(writer)
    }

    /// Opens any framed log file at `path` (in directory `dir`) for appending at `valid_len`.
    pub(crate) fn open_path(dir: &Path, path: &Path, valid_len: u64) -> Result<WalWriter> {
        let path = path.to_path_buf();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        file.set_len(valid_len).map_err(StoreError::io(&path))?;
        file.seek(SeekFrom::Start(valid_len))
            .map_err(StoreError::io(&path))?;
        file.sync_all().map_err(StoreError::io(&path))?;
        sync_dir(dir)?;
        Ok(WalWriter {
            file,
            path,
            index: 0,
            buffer: Vec::with_capacity(1 << 20),
            bytes_written: valid_len,
            dirty_tail: false,
        })
    }

    /// Frames `payload` into the pending buffer.
    pub(crate) fn push(&mut self, payload: &[u8]) {
        self.buffer
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buffer
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.buffer.extend_from_slice(payload);
    }

    /// Writes the pending buffer and makes it durable with one `fdatasync`; nothing to do when nothing is
    /// pending. When the write or the sync fails, the pending frames are dropped (their requests are refused) and
    /// the file is cut back to what the last successful sync made durable, so a later write starts on a frame
    /// boundary and recovery never meets a half frame between whole ones.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = self.cut_dirty_tail().and_then(|()| {
            self.file
                .write_all(&self.buffer)
                .and_then(|()| self.file.sync_data())
                .map_err(StoreError::io(&self.path))
        });
        match result {
            Ok(()) => {
                self.bytes_written += self.buffer.len() as u64;
                self.buffer.clear();
                Ok(())
            }
            Err(error) => {
                self.buffer.clear();
                self.dirty_tail = true;
                // Best effort now (a full disk still allows shrinking a file); again before the next write.
                let _ = self.cut_dirty_tail();
                Err(error)
            }
        }
    }

    /// Drops the frames pushed since the last sync (their request was refused before they were written).
    pub(crate) fn discard(&mut self) {
        self.buffer.clear();
    }

    fn cut_dirty_tail(&mut self) -> Result<()> {
        if !self.dirty_tail {
            return Ok(());
        }
        self.file
            .set_len(self.bytes_written)
            .and_then(|()| {
                self.file
                    .seek(SeekFrom::Start(self.bytes_written))
                    .map(|_| ())
            })
            .and_then(|()| self.file.sync_all())
            .map_err(StoreError::io(&self.path))?;
        self.dirty_tail = false;
        Ok(())
    }
}

/// Reads every valid record of one log file. Returns the payloads and the byte length of the valid prefix, and
/// whether the file ended in a torn or corrupt frame.
pub(crate) fn read_wal_file(path: &Path) -> Result<(Vec<Vec<u8>>, u64, bool)> {
    let file = File::open(path).map_err(StoreError::io(path))?;
    let file_len = file.metadata().map_err(StoreError::io(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; 8];
    loop {
        if offset == file_len {
            return Ok((records, offset, false));
        }
        if file_len - offset < 8 || reader.read_exact(&mut header).is_err() {
            return Ok((records, offset, true));
        }
        let length = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let checksum = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        if length > MAX_RECORD_BYTES || offset + 8 + length as u64 > file_len {
            return Ok((records, offset, true));
        }
        let mut payload = vec![0u8; length as usize];
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != checksum {
            return Ok((records, offset, true));
        }
        offset += 8 + length as u64;
        records.push(payload);
    }
}

/// fsyncs a directory so that created, renamed or removed entries survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(StoreError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_detected_and_valid_prefix_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::open(dir.path(), 1, 0).unwrap();
        writer.push(b"first");
        writer.push(b"second");
        writer.sync().unwrap();
        let path = dir.path().join(wal_file_name(1));
        let full_len = std::fs::metadata(&path).unwrap().len();
        // Tear the last record: keep its header and half its payload.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(full_len - 3).unwrap();
        let (records, valid_len, torn) = read_wal_file(&path).unwrap();
        assert_eq!(records, vec![b"first".to_vec()]);
        assert_eq!(valid_len, 8 + 5);
        assert!(torn);
    }

    #[test]
    fn flipped_bit_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::open(dir.path(), 7, 0).unwrap();
        writer.push(b"payload");
        writer.sync().unwrap();
        let path = dir.path().join(wal_file_name(7));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let (records, valid_len, torn) = read_wal_file(&path).unwrap();
        assert!(records.is_empty() && valid_len == 0 && torn);
    }
}
