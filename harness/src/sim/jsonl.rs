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

/// Bytes gathered before they go to the writer and the hash together: hashing or writing
/// each line on its own costs more than the bytes do.
const CHUNK_BYTES: usize = 64 * 1024;

/// Writes `history` to `out`; returns the SHA-256 of the bytes written and their number.
pub fn write(history: &History, plan: &Plan, out: impl Write) -> io::Result<([u8; 32], u64)> {
    write_with_ids(history, plan, &history.broker_ids(), out)
}

/// [`write`], given the history's [`History::broker_ids`].
pub fn write_with_ids(
    history: &History,
    plan: &Plan,
    ids: &BrokerIds,
    out: impl Write,
) -> io::Result<([u8; 32], u64)> {
    write_lines(history, plan, ids, out, |line, chunk| {
        line.write_json(chunk);
        Ok(())
    })
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
    mut out: impl Write,
    mut format: impl FnMut(&Line<'_>, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<([u8; 32], u64)> {
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
        format(&line(history, e, plan, ids), &mut chunk)?;
        chunk.push(b'\n');
        if chunk.len() >= CHUNK_BYTES {
            emit(&mut chunk)?;
        }
    }
    emit(&mut chunk)?;
    out.flush()?;
    Ok((hasher.finalize().into(), bytes))
}

fn line<'a>(history: &'a History, e: &Entry, plan: &'a Plan, ids: &BrokerIds) -> Line<'a> {
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

impl Line<'_> {
    /// Appends the line as compact JSON, byte for byte what serde_json writes for it (fields
    /// in declaration order, absent ones left out).
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time_ns\":");
        put_u64(out, self.time_ns);
        out.extend_from_slice(b",\"process\":");
        put_str(out, self.process);
        out.extend_from_slice(b",\"type\":");
        put_str(out, self.kind);
        if let Some(v) = self.op {
            out.extend_from_slice(b",\"op\":");
            put_str(out, v);
        }
        if let Some(v) = self.invoke {
            out.extend_from_slice(b",\"invoke\":");
            put_u64(out, v.into());
        }
        if let Some(v) = self.event {
            out.extend_from_slice(b",\"event\":");
            put_str(out, v);
        }
        if let Some(v) = self.msg {
            out.extend_from_slice(b",\"msg\":");
            put_u64(out, v);
        }
        if let Some(v) = self.broker_msg {
            out.extend_from_slice(b",\"broker_msg\":");
            put_u64(out, v);
        }
        if let Some(KeyName(k)) = self.key {
            out.extend_from_slice(b",\"key\":\"k");
            put_u64(out, k.into());
            out.push(b'"');
        }
        if let Some(v) = self.destination {
            out.extend_from_slice(b",\"destination\":");
            put_str(out, v);
        }
        if let Some(v) = self.group {
            out.extend_from_slice(b",\"group\":");
            put_str(out, v);
        }
        if let Some(v) = self.partition {
            out.extend_from_slice(b",\"partition\":");
            put_u64(out, v.into());
        }
        if let Some(v) = self.offset {
            out.extend_from_slice(b",\"offset\":");
            put_u64(out, v);
        }
        if let Some(v) = self.delivery_count {
            out.extend_from_slice(b",\"delivery_count\":");
            put_u64(out, v.into());
        }
        if let Some(v) = self.count {
            out.extend_from_slice(b",\"count\":");
            put_u64(out, v.into());
        }
        if let Some(v) = self.intended_ns {
            out.extend_from_slice(b",\"intended_ns\":");
            put_u64(out, v);
        }
        if let Some(v) = self.duplicate {
            out.extend_from_slice(b",\"duplicate\":");
            put_bool(out, v);
        }
        if let Some(v) = self.poison {
            out.extend_from_slice(b",\"poison\":");
            put_bool(out, v);
        }
        if let Some(v) = self.applied {
            out.extend_from_slice(b",\"applied\":");
            put_bool(out, v);
        }
        if let Some(v) = self.epoch {
            out.extend_from_slice(b",\"epoch\":");
            put_u64(out, v.into());
        }
        if let Some(v) = self.error {
            out.extend_from_slice(b",\"error\":");
            put_str(out, v);
        }
        if let Some(v) = self.fault {
            out.extend_from_slice(b",\"fault\":");
            put_str(out, v);
        }
        if let Some(v) = self.phase {
            out.extend_from_slice(b",\"phase\":");
            put_str(out, v);
        }
        out.push(b'}');
    }
}

/// Two decimal digits for each number below 100.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// A JSON string; anything serde_json would escape goes through serde_json.
fn put_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a vector cannot fail.
        let _ = serde_json::to_writer(out, s);
    }
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_written_as_decimal() {
        for v in [
            0,
            7,
            10,
            99,
            100,
            101,
            12_345,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            super::put_u64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }
}
