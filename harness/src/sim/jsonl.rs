//! The file form of a history: JSON Lines, one entry per line, in recording order.
//!
//! Names are spelt out (processes, destinations, groups, keys as the broker saw them), fields
//! that do not apply are left out, and a completion names the line number of its invoke in
//! `invoke`. Message ids that an entry knows only as the broker's (acks and lease ends, which
//! carry no payload) are resolved here from the rest of the run. The SHA-256 of exactly these
//! bytes identifies the run.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::history::{BrokerEvent, Entry, History, NO_KEY, Op, What};
use super::ids::NO_MSG;
use super::plan::{Plan, SubIndex};

/// Bytes gathered before they go to the writer and the hash together. serde_json writes a
/// line in many small pieces, and hashing or writing each piece costs more than the bytes do.
const CHUNK_BYTES: usize = 64 * 1024;

/// Writes `history` to `out`; returns the SHA-256 of the bytes written and their number.
pub fn write(history: &History, plan: &Plan, mut out: impl Write) -> io::Result<([u8; 32], u64)> {
    let ids = history.broker_ids();
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + 1024);
    let mut emit = |chunk: &mut Vec<u8>| -> io::Result<()> {
        hasher.update(&chunk[..]);
        out.write_all(chunk)?;
        bytes += chunk.len() as u64;
        chunk.clear();
        Ok(())
    };
    for e in history.entries() {
        serde_json::to_writer(&mut chunk, &line(history, e, plan, &ids))?;
        chunk.push(b'\n');
        if chunk.len() >= CHUNK_BYTES {
            emit(&mut chunk)?;
        }
    }
    emit(&mut chunk)?;
    out.flush()?;
    Ok((hasher.finalize().into(), bytes))
}

fn line<'a>(history: &'a History, e: &Entry, plan: &'a Plan, ids: &BTreeMap<u64, u64>) -> Line<'a> {
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
            l.error = Some(history.string(error));
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
            l.fault = Some(history.string(text));
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
                    ids.get(&broker_msg).copied()
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
