//! The byte layout of entry and change records in the redb file.
//!
//! Format 2 (current), little-endian, each string a u32 length and UTF-8:
//! - entry: revision u64, written-at ms u64, expires-at ms u64 (0 = no ttl),
//!   agent, run, then the value to the end
//! - change: key, agent, run, then 1 and the value, or 0 for a deletion
//!
//! Format 1 (before runs and ttls) had one writer string in place of agent
//! and run, and no expiry; [`upgrade_from_1`] rewrites such a file in place,
//! with an empty run for every old write.

use super::super::{Change, Entry, Write, Writer, from_unix_millis};
use redb::{ReadableTable, Table};
use std::sync::Arc;

/// The record format this build writes and reads.
pub(super) const FORMAT: u64 = 2;

/// An entry as stored, borrowing the record's bytes.
pub(super) struct Stored<'a> {
    pub revision: u64,
    pub written_ms: u64,
    pub expires_ms: Option<u64>,
    pub agent: &'a str,
    pub run: &'a str,
    pub value: &'a [u8],
}

impl Stored<'_> {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }

    pub fn to_entry(&self) -> Entry {
        Entry {
            value: Arc::from(self.value),
            revision: self.revision,
            writer: Writer::new(self.agent, self.run),
            written_at: from_unix_millis(self.written_ms),
            expires_at: self.expires_ms.map(from_unix_millis),
        }
    }
}

/// Reads a record front to back; `None` as soon as it runs short.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*head))
    }

    fn str(&mut self) -> Option<&'a str> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*head) as usize;
        if rest.len() < len {
            return None;
        }
        let (text, rest) = rest.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).ok()
    }

    fn u8(&mut self) -> Option<u8> {
        let (head, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*head)
    }
}

fn push_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn entry_bytes(revision: u64, written_ms: u64, expires_ms: Option<u64>, writer: (&str, &str), value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + writer.0.len() + writer.1.len() + value.len());
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&written_ms.to_le_bytes());
    out.extend_from_slice(&expires_ms.unwrap_or(0).to_le_bytes());
    push_str(&mut out, writer.0);
    push_str(&mut out, writer.1);
    out.extend_from_slice(value);
    out
}

pub(super) fn encode_entry(revision: u64, write: &Write<'_>, value: &[u8]) -> Vec<u8> {
    entry_bytes(revision, write.at_ms, write.expires_ms, (&write.writer.agent, &write.writer.run), value)
}

pub(super) fn decode_entry(bytes: &[u8]) -> Option<Stored<'_>> {
    let mut f = Fields(bytes);
    let (revision, written_ms, expires) = (f.u64()?, f.u64()?, f.u64()?);
    let (agent, run) = (f.str()?, f.str()?);
    let expires_ms = (expires != 0).then_some(expires);
    Some(Stored { revision, written_ms, expires_ms, agent, run, value: f.0 })
}

fn change_bytes(key: &str, writer: (&str, &str), value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + key.len() + writer.0.len() + writer.1.len() + value.map_or(0, <[u8]>::len));
    push_str(&mut out, key);
    push_str(&mut out, writer.0);
    push_str(&mut out, writer.1);
    match value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
    out
}

pub(super) fn encode_change(key: &str, writer: &Writer, value: Option<&[u8]>) -> Vec<u8> {
    change_bytes(key, (&writer.agent, &writer.run), value)
}

pub(super) fn decode_change(revision: u64, bytes: &[u8]) -> Option<Change> {
    let mut f = Fields(bytes);
    let (key, agent, run) = (f.str()?, f.str()?, f.str()?);
    let value = match f.u8()? {
        1 => Some(Arc::from(f.0)),
        _ => None,
    };
    Some(Change { key: Arc::from(key), value, revision, writer: Writer::new(agent, run) })
}

type EntriesTable<'t> = Table<'t, (&'static str, &'static str), &'static [u8]>;
type HistoryTable<'t> = Table<'t, (&'static str, u64), &'static [u8]>;

/// Rewrites every format-1 entry and change record as format 2.
pub(super) fn upgrade_from_1(entries: &mut EntriesTable<'_>, history: &mut HistoryTable<'_>) -> Result<(), String> {
    let corrupt = |what: &str, tenant: &str| format!("a corrupt format-1 {what} record of tenant \"{tenant}\"");
    let mut rows: Vec<((String, String), Vec<u8>)> = Vec::new();
    for row in entries.iter().map_err(|e| e.to_string())? {
        let (k, v) = row.map_err(|e| e.to_string())?;
        let (tenant, key) = k.value();
        let mut f = Fields(v.value());
        let old = (|| Some((f.u64()?, f.u64()?, f.str()?)))();
        let (revision, written_ms, writer) = old.ok_or_else(|| corrupt("entry", tenant))?;
        let record = entry_bytes(revision, written_ms, None, (writer, ""), f.0);
        rows.push(((tenant.to_string(), key.to_string()), record));
    }
    for ((tenant, key), record) in &rows {
        entries.insert((tenant.as_str(), key.as_str()), record.as_slice()).map_err(|e| e.to_string())?;
    }
    let mut rows: Vec<((String, u64), Vec<u8>)> = Vec::new();
    for row in history.iter().map_err(|e| e.to_string())? {
        let (k, v) = row.map_err(|e| e.to_string())?;
        let (tenant, revision) = k.value();
        let mut f = Fields(v.value());
        let old = (|| Some((f.str()?, f.str()?, f.u8()?)))();
        let (key, writer, tag) = old.ok_or_else(|| corrupt("history", tenant))?;
        let record = change_bytes(key, (writer, ""), (tag == 1).then_some(f.0));
        rows.push(((tenant.to_string(), revision), record));
    }
    for ((tenant, revision), record) in &rows {
        history.insert((tenant.as_str(), *revision), record.as_slice()).map_err(|e| e.to_string())?;
    }
    Ok(())
}
