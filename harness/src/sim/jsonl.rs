//! The file form of a history: JSON Lines, one entry per line, in recording order.
//!
//! Names are spelt out (processes, destinations, groups, keys as the broker saw them), fields
//! that do not apply are left out, and a completion names the line number of its invoke in
//! `invoke`. Message ids that an entry knows only as the broker's (acks and lease ends, which
//! carry no payload) are resolved here from the rest of the run. The SHA-256 of exactly these
//! bytes identifies the run.

use std::io::{self, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::dense::BrokerIds;
use super::history::{BrokerEvent, Entry, History, NO_KEY, Op, What};
use super::ids::NO_MSG;
use super::plan::{Plan, SubIndex};

mod encode;
mod stream;

pub use stream::Stream;

use encode::{Names, write_entry};

/// Bytes gathered before they go to the writer and the hash together: hashing or writing
/// each line on its own costs more than the bytes do.
const CHUNK_BYTES: usize = 64 * 1024;

/// Writes `history` to `out`; returns the SHA-256 of the bytes written and their number.
pub fn write(history: &History, plan: &Plan, out: impl Write) -> io::Result<([u8; 32], u64)> {
    write_with_ids(history, plan, &history.broker_ids(), out)
}

/// [`write()`], given the history's [`History::broker_ids`].
pub fn write_with_ids(
    history: &History,
    plan: &Plan,
    ids: &BrokerIds,
    out: impl Write,
) -> io::Result<([u8; 32], u64)> {
    let mut out = Out::new(out, plan);
    for e in history.entries() {
        out.line(history.strings(), e, plan, ids)?;
    }
    out.finish()
}

/// The same bytes as [`write`], each line formatted by serde_json instead: the reference the
/// hand-written formatter is tested against.
#[doc(hidden)]
pub fn write_via_serde(
    history: &History,
    plan: &Plan,
    out: impl Write,
) -> io::Result<([u8; 32], u64)> {
    write_lines(history, plan, &history.broker_ids(), out, |line, chunk| {
        serde_json::to_writer(chunk, line).map_err(io::Error::from)
    })
}

fn write_lines(
    history: &History,
    plan: &Plan,
    ids: &BrokerIds,
    out: impl Write,
    mut format: impl FnMut(&Line<'_>, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<([u8; 32], u64)> {
    let mut out = Out::new(out, plan);
    for e in history.entries() {
        format(&line(history.strings(), e, plan, ids), &mut out.chunk)?;
        out.end_line()?;
    }
    out.finish()
}

/// The file's bytes on their way out: gathered into chunks, each hashed and written.
struct Out<W: Write> {
    names: Names,
    hasher: Sha256,
    bytes: u64,
    chunk: Vec<u8>,
    out: W,
}

impl<W: Write> Out<W> {
    fn new(out: W, plan: &Plan) -> Self {
        Out {
            names: Names::new(plan),
            hasher: Sha256::new(),
            bytes: 0,
            chunk: Vec::with_capacity(CHUNK_BYTES + 1024),
            out,
        }
    }

    /// Formats `e` as the next line.
    fn line(
        &mut self,
        strings: &[String],
        e: &Entry,
        plan: &Plan,
        ids: &BrokerIds,
    ) -> io::Result<()> {
        write_entry(&mut self.chunk, strings, e, plan, &self.names, ids);
        self.end_line()
    }

    /// Ends the line in the chunk, and passes the chunk on when it is full.
    fn end_line(&mut self) -> io::Result<()> {
        self.chunk.push(b'\n');
        if self.chunk.len() >= CHUNK_BYTES {
            self.emit()?;
        }
        Ok(())
    }

    fn emit(&mut self) -> io::Result<()> {
        self.hasher.update(&self.chunk[..]);
        self.out.write_all(&self.chunk)?;
        self.bytes += self.chunk.len() as u64;
        self.chunk.clear();
        Ok(())
    }

    /// The SHA-256 of every byte written, and their number.
    fn finish(mut self) -> io::Result<([u8; 32], u64)> {
        self.emit()?;
        self.out.flush()?;
        Ok((self.hasher.finalize().into(), self.bytes))
    }
}

fn line<'a>(strings: &'a [String], e: &Entry, plan: &'a Plan, ids: &BrokerIds) -> Line<'a> {
    let string = |id: u32| strings.get(id as usize).map_or("", String::as_str);
    let mut l = Line {
        time_ns: e.at_ns,
        process: plan.name(e.process),
        ..Line::default()
    };
    let msg = |m: u64| (m != NO_MSG).then_some(m);
    let key = |k: u32| (k != NO_KEY).then_some(KeyName(k));
    let sub = |l: &mut Line<'a>, s: SubIndex| {
        if let Some(s) = plan.subs.get(usize::from(s)) {
            l.destination = Some(&s.destination);
            l.group = s.group.as_deref();
        }
    };
    match e.what {
        What::Invoke {
            op,
            msg: m,
            key: k,
            sub: s,
            intended_ns,
        } => {
            l.kind = "invoke";
            l.op = Some(op.name());
            l.msg = msg(m);
            l.key = key(k);
            sub(&mut l, s);
            if op == Op::Publish {
                l.intended_ns = Some(intended_ns);
                l.destination = plan
                    .producer(e.process)
                    .and_then(|p| plan.destinations.get(usize::from(p.destination)))
                    .map(String::as_str);
            }
        }
        What::Ok {
            invoke,
            op,
            msg: m,
            broker_msg,
            partition,
            offset,
            count,
        } => {
            l.kind = "ok";
            l.op = Some(op.name());
            l.invoke = Some(invoke);
            l.msg = msg(m);
            match op {
                Op::Publish => {
                    l.broker_msg = msg(broker_msg);
                    l.partition = Some(partition);
                    l.offset = Some(offset);
                    l.duplicate = Some(count != 0);
                }
                Op::Receive => l.count = Some(count),
                Op::Ack | Op::Nack => {}
            }
        }
        What::Failed {
            invoke,
            op,
            msg: m,
            completion,
            error,
        } => {
            l.kind = completion.name();
            l.op = Some(op.name());
            l.invoke = Some(invoke);
            l.msg = msg(m);
            l.error = Some(string(error));
        }
        What::Deliver {
            invoke,
            msg: m,
            broker_msg,
            partition,
            offset,
            delivery_count,
            key: k,
            sub: s,
            poison,
        } => {
            l.kind = "deliver";
            l.invoke = Some(invoke);
            l.msg = msg(m);
            l.broker_msg = msg(broker_msg);
            l.key = key(k);
            sub(&mut l, s);
            l.partition = Some(partition);
            l.offset = Some(offset);
            l.delivery_count = Some(delivery_count);
            l.poison = poison.then_some(true);
        }
        What::Effect {
            msg: m,
            sub: s,
            applied,
        } => {
            l.kind = "effect";
            l.msg = msg(m);
            sub(&mut l, s);
            l.applied = Some(applied);
        }
        What::Nemesis { text } => {
            l.kind = "nemesis";
            l.fault = Some(string(text));
        }
        What::Phase { phase } => {
            l.kind = "phase";
            l.phase = Some(phase.name());
        }
        What::Broker {
            event,
            msg: m,
            broker_msg,
            sub: s,
            partition,
            offset,
            count,
        } => {
            l.kind = "broker";
            l.event = Some(event.name());
            if event == BrokerEvent::Recovered {
                l.epoch = Some(count);
            } else {
                let resolved = if m == NO_MSG {
                    ids.get(broker_msg)
                } else {
                    Some(m)
                };
                l.msg = resolved;
                l.broker_msg = msg(broker_msg);
                sub(&mut l, s);
                l.partition = Some(partition);
                l.offset = Some(offset);
                if event == BrokerEvent::DeadLettered {
                    l.delivery_count = Some(count);
                }
            }
        }
    }
    l
}

/// A key written as the string the broker saw.
#[derive(Debug, Clone, Copy)]
struct KeyName(u32);

impl Serialize for KeyName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("k{}", self.0))
    }
}

/// One line of the file. Absent fields are left out, so each kind of entry has its own shape.
#[derive(Debug, Default, Serialize)]
struct Line<'a> {
    time_ns: u64,
    process: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoke: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broker_msg: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<KeyName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intended_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poison: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'static str>,
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
