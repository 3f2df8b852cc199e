//! Durable state: a write-ahead log of what the replica promised, relayed,
//! voted and committed. Promises, relays and votes are fsync'd before the
//! messages that depend on them leave, so a restarted replica never votes
//! twice. A commit record is written but not fsync'd on its own (it goes
//! to disk with the next fsync): see `Replica::commit` for why.

use super::messages::{Certificate, CertificateError};
use super::op::{sha1, Batch, BatchError, Digest};
use crate::wire::{BodyError, Reader};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// maxBal := ballot in `slot` only (phase 1b of the per-slot ballots
    /// older logs hold; type 1, read, no longer written).
    Promise { slot: u64, ballot: u64 },
    /// maxBal := ballot in `slot` and every later slot (phase 1b of a
    /// stable leader's ballot; type 6).
    PromiseFrom { slot: u64, ballot: u64 },
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
    /// The slot's value, with its decision certificate when the replica
    /// has one (type 5; type 4 is a record without, as old logs hold).
    Committed {
        slot: u64,
        value: Batch,
        proof: Option<Certificate>,
    },
}

/// A record body that does not decode (the checksum matched: damage the
/// checksum missed, or a log written by a different version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Body(BodyError),
    Batch(BatchError),
    Certificate(CertificateError),
    UnknownType(u8),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Body(e) => e.fmt(f),
            RecordError::Batch(e) => e.fmt(f),
            RecordError::Certificate(e) => e.fmt(f),
            RecordError::UnknownType(kind) => write!(f, "unknown record type {kind}"),
        }
    }
}

impl std::error::Error for RecordError {}

impl From<BodyError> for RecordError {
    fn from(e: BodyError) -> Self {
        RecordError::Body(e)
    }
}

impl From<BatchError> for RecordError {
    fn from(e: BatchError) -> Self {
        RecordError::Batch(e)
    }
}

impl From<CertificateError> for RecordError {
    fn from(e: CertificateError) -> Self {
        RecordError::Certificate(e)
    }
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
            Record::PromiseFrom { slot, ballot } => {
                out.push(6);
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
            Record::Committed { slot, value, proof } => {
                out.push(if proof.is_some() { 5 } else { 4 });
                out.extend_from_slice(&slot.to_be_bytes());
                value.encode(&mut out);
                if let Some(c) = proof {
                    c.encode(&mut out);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
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
                proof: None,
            },
            // Replica numbers fit a u8; the group is checked when the proof is used.
            5 => Record::Committed {
                slot: r.u64()?,
                value: Batch::decode(&mut r)?,
                proof: Some(Certificate::decode(&mut r, 256)?),
            },
            6 => Record::PromiseFrom {
                slot: r.u64()?,
                ballot: r.u64()?,
            },
            other => return Err(RecordError::UnknownType(other)),
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

/// No record comes near this (a batch is at most 12 KiB): a length field
/// above it is damage, not a record.
const MAX_RECORD: usize = 1 << 20;

/// The record starting at `at`, and where the next one starts.
fn record_at(bytes: &[u8], at: usize) -> Result<(Record, usize), String> {
    let left = bytes.len() - at;
    if left < 8 {
        return Err(format!("a {left}-byte header cut short"));
    }
    let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    if len > MAX_RECORD {
        return Err(format!("its length field says {len} bytes"));
    }
    if left - 8 < len {
        return Err(format!("{len} bytes announced, {} there", left - 8));
    }
    let body = &bytes[at + 8..at + 8 + len];
    if checksum(body) != bytes[at + 4..at + 8] {
        return Err("checksum mismatch".into());
    }
    let record = Record::decode(body).map_err(|e| format!("undecodable: {e}"))?;
    Ok((record, at + 8 + len))
}

impl Wal {
    /// Open (or create) `dir/bpcon.wal` and read back every record.
    ///
    /// Only a damaged *last* record is a torn write (a crash mid-append) and
    /// is cut off. A damaged record followed by a valid one is corruption:
    /// replaying part of the log could make the replica vote twice, so it
    /// refuses to start, naming the file and the offset.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Record>), String> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {}",
                dir.display(),
                crate::cli_words::io_error(&e)
            )
        })?;
        let path = dir.join("bpcon.wal");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| {
                format!(
                    "cannot open {}: {}",
                    path.display(),
                    crate::cli_words::io_error(&e)
                )
            })?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| {
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::cli_words::io_error(&e)
            )
        })?;
        let mut records = Vec::new();
        let mut at = 0;
        let mut damage = None;
        while at < bytes.len() {
            match record_at(&bytes, at) {
                Ok((record, next)) => {
                    records.push(record);
                    at = next;
                }
                Err(why) => {
                    damage = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = damage {
            // Any valid record further on means this was not the last one.
            if let Some(next) = (at + 1..bytes.len()).find(|&p| record_at(&bytes, p).is_ok()) {
                return Err(format!(
                    "{} is corrupt: the record at byte offset {at} is damaged ({why}) but valid records follow (from offset {next}); refusing to start, as replaying part of it could make this replica vote twice. Restore the file from a copy, or move {} away to rejoin with no memory (docs/bpcon.md: until it has caught up, a wiped replica counts as one of the f faulty ones)",
                    path.display(),
                    dir.display()
                ));
            }
            log::warn!(
                "{}: dropping {} bytes of a torn record at the end (offset {at}: {why})",
                path.display(),
                bytes.len() - at
            );
            file.set_len(at as u64)
                .map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
            file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        }
        Ok((Wal { file, path }, records))
    }

    /// Append records (on disk once `sync` returns).
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
        self.file.write_all(&buf).map_err(|e| self.cannot_write(&e))
    }

    /// Wait until every record appended so far is on disk.
    pub fn sync(&mut self) -> Result<(), String> {
        self.file.sync_data().map_err(|e| self.cannot_write(&e))
    }

    fn cannot_write(&self, e: &std::io::Error) -> String {
        format!(
            "cannot write {}: {}",
            self.path.display(),
            crate::cli_words::io_error(e)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpcon::messages::{SignedVotes, Vote};

    #[test]
    fn an_undecodable_record_says_why() {
        let why = |bytes: &[u8]| Record::decode(bytes).unwrap_err().to_string();
        assert_eq!(why(&[9]), "unknown record type 9");
        assert_eq!(
            why(&[1, 0]),
            "truncated: wanted 8 bytes at offset 1, only 1 left"
        );
        let over = crate::bpcon::op::MAX_BATCH_OPS + 1;
        let mut batch = vec![4, 0, 0, 0, 0, 0, 0, 0, 0];
        batch.extend_from_slice(&(over as u16).to_be_bytes());
        assert_eq!(
            Record::decode(&batch),
            Err(RecordError::Batch(BatchError::TooManyOps(over)))
        );
        let mut cert = vec![5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        cert.extend_from_slice(&[0; 8]);
        cert.push(1);
        cert.push(200);
        cert.push(1); // one signed vote
        cert.extend_from_slice(&[0; 36]);
        cert.extend_from_slice(&[0, 5, 0]);
        assert!(matches!(
            Record::decode(&cert),
            Err(RecordError::Certificate(CertificateError::Body(
                BodyError::Truncated { wanted: 5, .. }
            )))
        ));
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_dropped() {
        let dir = std::env::temp_dir().join(format!("bpcon-wal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let records = vec![
            Record::Promise { slot: 0, ballot: 3 },
            Record::PromiseFrom { slot: 0, ballot: 5 },
            Record::Voted {
                slot: 0,
                ballot: 3,
                digest: [4; 20],
            },
            Record::Committed {
                slot: 0,
                value: Batch::default(),
                proof: None,
            },
            Record::Committed {
                slot: 1,
                value: Batch::default(),
                proof: Some(Certificate {
                    ballot: 7,
                    votes: [0, 2, 3]
                        .into_iter()
                        .map(|i| {
                            let signed = SignedVotes {
                                votes: vec![Vote {
                                    slot: 7,
                                    ballot: 9,
                                    digest: [i as u8; 20],
                                }],
                                signature: vec![i as u8; 128],
                            };
                            (i, signed)
                        })
                        .collect(),
                }),
            },
        ];
        {
            let (mut wal, old) = Wal::open(&dir).unwrap();
            assert!(old.is_empty());
            wal.append(&records).unwrap();
            wal.sync().unwrap();
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
        wal.sync().unwrap();
        let (_, third) = Wal::open(&dir).unwrap();
        assert_eq!(third.len(), 6);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn many_records(label: &str) -> (PathBuf, Vec<Record>, Vec<usize>) {
        let dir = std::env::temp_dir().join(format!("bpcon-wal-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let records: Vec<Record> = (0..100)
            .map(|k| Record::Promise { slot: k, ballot: k })
            .collect();
        let (mut wal, _) = Wal::open(&dir).unwrap();
        wal.append(&records).unwrap();
        wal.sync().unwrap();
        let offsets = records
            .iter()
            .scan(0, |at, r| {
                let here = *at;
                *at += 8 + r.encode().len();
                Some(here)
            })
            .collect();
        (dir, records, offsets)
    }

    fn flip(dir: &Path, at: usize) {
        let path = dir.join("bpcon.wal");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn a_damaged_middle_record_is_corruption_and_refuses_to_start() {
        // One flipped byte in a record's body, then in another's length
        // field: the seed cut everything after it off and went on voting.
        for (label, record, within) in [("body", 40, 12), ("length", 70, 3)] {
            let (dir, _, offsets) = many_records(label);
            let before = std::fs::read(dir.join("bpcon.wal")).unwrap();
            flip(&dir, offsets[record] + within);
            let err = Wal::open(&dir).err().expect("a corrupt log must not open");
            assert!(err.contains("bpcon.wal is corrupt"), "{err}");
            assert!(
                err.contains(&format!("offset {}", offsets[record])),
                "{err}"
            );
            assert!(err.contains("Restore"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
            // Nothing was cut: the damage can still be repaired by hand.
            let after = std::fs::read(dir.join("bpcon.wal")).unwrap();
            assert_eq!(after.len(), before.len());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_damaged_last_record_is_a_torn_tail() {
        let (dir, records, offsets) = many_records("last");
        flip(&dir, offsets[99] + 10);
        let (_, back) = Wal::open(&dir).unwrap();
        assert_eq!(back, records[..99]);
        // A zeroed tail (blocks allocated, never written) too.
        let path = dir.join("bpcon.wal");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0; 4096]).unwrap();
        drop(file);
        let (_, back) = Wal::open(&dir).unwrap();
        assert_eq!(back.len(), 99);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
