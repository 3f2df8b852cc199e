//! Durable state: a write-ahead log of what the replica promised, relayed,
//! voted and committed. Records are fsync'd before the messages or answers
//! that depend on them leave, so a restarted replica never votes twice.

use super::op::{sha1, Batch, Digest};
use crate::wire::Reader;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// maxBal := ballot (phase 1b).
    Promise {
        slot: u64,
        ballot: u64,
    },
    /// Sent 2av(ballot, value).
    Relayed {
        slot: u64,
        ballot: u64,
        value: Batch,
    },
    /// Sent 2b(ballot, digest): maxVBal, maxVVal.
    Voted {
        slot: u64,
        ballot: u64,
        digest: Digest,
    },
    Committed {
        slot: u64,
        value: Batch,
    },
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Promise { slot, ballot } => {
                out.push(1);
                out.extend_from_slice(&slot.to_be_bytes());
                out.extend_from_slice(&ballot.to_be_bytes());
            }
            Record::Relayed {
                slot,
                ballot,
                value,
            } => {
                out.push(2);
                out.extend_from_slice(&slot.to_be_bytes());
                out.extend_from_slice(&ballot.to_be_bytes());
                value.encode(&mut out);
            }
            Record::Voted {
                slot,
                ballot,
                digest,
            } => {
                out.push(3);
                out.extend_from_slice(&slot.to_be_bytes());
                out.extend_from_slice(&ballot.to_be_bytes());
                out.extend_from_slice(digest);
            }
            Record::Committed { slot, value } => {
                out.push(4);
                out.extend_from_slice(&slot.to_be_bytes());
                value.encode(&mut out);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        let mut r = Reader::new(bytes);
        let record = match r.u8()? {
            1 => Record::Promise {
                slot: r.u64()?,
                ballot: r.u64()?,
            },
            2 => Record::Relayed {
                slot: r.u64()?,
                ballot: r.u64()?,
                value: Batch::decode(&mut r)?,
            },
            3 => {
                let slot = r.u64()?;
                let ballot = r.u64()?;
                let mut digest = [0; 20];
                digest.copy_from_slice(r.bytes(20)?);
                Record::Voted {
                    slot,
                    ballot,
                    digest,
                }
            }
            4 => Record::Committed {
                slot: r.u64()?,
                value: Batch::decode(&mut r)?,
            },
            other => return Err(format!("unknown record type {other}")),
        };
        r.finish()?;
        Ok(record)
    }
}

/// The log file: `len u32 | checksum u32 | record`, appended.
pub struct Wal {
    file: File,
    path: PathBuf,
}

fn checksum(data: &[u8]) -> [u8; 4] {
    let d = sha1(data);
    [d[0], d[1], d[2], d[3]]
}

impl Wal {
    /// Open (or create) `dir/bpcon.wal` and read back every whole record.
    /// A torn record at the end (a crash mid-write) is cut off.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Record>), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
        let path = dir.join("bpcon.wal");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut records = Vec::new();
        let mut at = 0;
        while bytes.len() - at >= 8 {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let sum = &bytes[at + 4..at + 8];
            if bytes.len() - at - 8 < len {
                break;
            }
            let body = &bytes[at + 8..at + 8 + len];
            if checksum(body) != sum {
                break;
            }
            match Record::decode(body) {
                Ok(record) => records.push(record),
                Err(_) => break,
            }
            at += 8 + len;
        }
        if at < bytes.len() {
            log::warn!(
                "{}: dropping {} bytes of a torn record at the end",
                path.display(),
                bytes.len() - at
            );
            file.set_len(at as u64)
                .map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
            file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        }
        Ok((Wal { file, path }, records))
    }

    /// Append records and wait until they are on disk.
    pub fn append(&mut self, records: &[Record]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for record in records {
            let body = record.encode();
            buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
            buf.extend_from_slice(&checksum(&body));
            buf.extend_from_slice(&body);
        }
        self.file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_dropped() {
        let dir = std::env::temp_dir().join(format!("bpcon-wal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let records = vec![
            Record::Promise { slot: 0, ballot: 3 },
            Record::Voted {
                slot: 0,
                ballot: 3,
                digest: [4; 20],
            },
            Record::Committed {
                slot: 0,
                value: Batch::default(),
            },
        ];
        {
            let (mut wal, old) = Wal::open(&dir).unwrap();
            assert!(old.is_empty());
            wal.append(&records).unwrap();
        }
        // A crash in the middle of the next write.
        let path = dir.join("bpcon.wal");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
        drop(file);
        let (mut wal, again) = Wal::open(&dir).unwrap();
        assert_eq!(again, records);
        wal.append(&[Record::Promise { slot: 1, ballot: 0 }])
            .unwrap();
        let (_, third) = Wal::open(&dir).unwrap();
        assert_eq!(third.len(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
