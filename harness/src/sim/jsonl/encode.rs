//! The hand-written JSON of a history line: the bytes serde_json writes for [`line`](super::line)'s
//! `Line`, written straight from an entry.

use crate::sim::dense::BrokerIds;
use crate::sim::history::{BrokerEvent, Entry, NO_KEY, Op, What};
use crate::sim::ids::NO_MSG;
use crate::sim::plan::{Plan, Process, SubIndex};

/// Appends the line of `e` as compact JSON, without building a [`Line`](super::Line): byte for byte what
/// serde_json writes for [`line`](super::line)'s `Line` (fields in declaration order, absent ones left
/// out), which a cluster test checks on a run with every kind of line.
pub(super) fn write_entry(
    out: &mut Vec<u8>,
    strings: &[String],
    e: &Entry,
    plan: &Plan,
    names: &Names,
    ids: &BrokerIds,
) {
    let string = |id: u32| strings.get(id as usize).map_or("", String::as_str);
    out.extend_from_slice(b"{\"time_ns\":");
    put_u64(out, e.at_ns);
    out.extend_from_slice(b",\"process\":");
    out.extend_from_slice(names.process(e.process));
    let msg = |out: &mut Vec<u8>, name: &[u8], m: u64| {
        if m != NO_MSG {
            put_u64_field(out, name, m);
        }
    };
    let key = |out: &mut Vec<u8>, k: u32| {
        if k != NO_KEY {
            out.extend_from_slice(b",\"key\":\"k");
            put_u64(out, k.into());
            out.push(b'"');
        }
    };
    let sub = |out: &mut Vec<u8>, s: SubIndex| {
        if let Some((destination, group)) = names.subs.get(usize::from(s)) {
            put_json_field(out, b",\"destination\":", destination);
            if let Some(g) = group {
                put_json_field(out, b",\"group\":", g);
            }
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
            out.extend_from_slice(b",\"type\":\"invoke\"");
            put_name_field(out, b",\"op\":", op.name());
            msg(out, b",\"msg\":", m);
            key(out, k);
            if op == Op::Publish {
                // A publish names its producer's destination, and the group of its
                // subscription if it has one (it never does).
                let destination = plan
                    .producer(e.process)
                    .and_then(|p| names.destinations.get(usize::from(p.destination)));
                if let Some(d) = destination {
                    put_json_field(out, b",\"destination\":", d);
                }
                if let Some(g) = names.subs.get(usize::from(s)).and_then(|s| s.1.as_ref()) {
                    put_json_field(out, b",\"group\":", g);
                }
                put_u64_field(out, b",\"intended_ns\":", intended_ns);
            } else {
                sub(out, s);
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
            out.extend_from_slice(b",\"type\":\"ok\"");
            put_name_field(out, b",\"op\":", op.name());
            put_u64_field(out, b",\"invoke\":", invoke.into());
            msg(out, b",\"msg\":", m);
            match op {
                Op::Publish => {
                    msg(out, b",\"broker_msg\":", broker_msg);
                    put_u64_field(out, b",\"partition\":", partition.into());
                    put_u64_field(out, b",\"offset\":", offset);
                    out.extend_from_slice(b",\"duplicate\":");
                    put_bool(out, count != 0);
                }
                Op::Receive => put_u64_field(out, b",\"count\":", count.into()),
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
            put_name_field(out, b",\"type\":", completion.name());
            put_name_field(out, b",\"op\":", op.name());
            put_u64_field(out, b",\"invoke\":", invoke.into());
            msg(out, b",\"msg\":", m);
            put_str_field(out, b",\"error\":", string(error));
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
            out.extend_from_slice(b",\"type\":\"deliver\"");
            put_u64_field(out, b",\"invoke\":", invoke.into());
            msg(out, b",\"msg\":", m);
            msg(out, b",\"broker_msg\":", broker_msg);
            key(out, k);
            sub(out, s);
            put_u64_field(out, b",\"partition\":", partition.into());
            put_u64_field(out, b",\"offset\":", offset);
            put_u64_field(out, b",\"delivery_count\":", delivery_count.into());
            if poison {
                out.extend_from_slice(b",\"poison\":true");
            }
        }
        What::Effect {
            msg: m,
            sub: s,
            applied,
        } => {
            out.extend_from_slice(b",\"type\":\"effect\"");
            msg(out, b",\"msg\":", m);
            sub(out, s);
            out.extend_from_slice(b",\"applied\":");
            put_bool(out, applied);
        }
        What::Nemesis { text } => {
            out.extend_from_slice(b",\"type\":\"nemesis\"");
            put_str_field(out, b",\"fault\":", string(text));
        }
        What::Phase { phase } => {
            out.extend_from_slice(b",\"type\":\"phase\"");
            put_name_field(out, b",\"phase\":", phase.name());
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
            out.extend_from_slice(b",\"type\":\"broker\"");
            put_name_field(out, b",\"event\":", event.name());
            if event == BrokerEvent::Recovered {
                put_u64_field(out, b",\"epoch\":", count.into());
            } else {
                let resolved = if m == NO_MSG {
                    ids.get(broker_msg)
                } else {
                    Some(m)
                };
                if let Some(r) = resolved {
                    put_u64_field(out, b",\"msg\":", r);
                }
                msg(out, b",\"broker_msg\":", broker_msg);
                sub(out, s);
                put_u64_field(out, b",\"partition\":", partition.into());
                put_u64_field(out, b",\"offset\":", offset);
                if event == BrokerEvent::DeadLettered {
                    put_u64_field(out, b",\"delivery_count\":", count.into());
                }
            }
        }
    }
    out.push(b'}');
}

fn put_u64_field(out: &mut Vec<u8>, name: &[u8], v: u64) {
    out.extend_from_slice(name);
    put_u64(out, v);
}

/// A field whose value is one of the history's fixed names (an op, an event, a phase, a
/// completion), which are plain words: written without checking each for characters to escape.
fn put_name_field(out: &mut Vec<u8>, name: &[u8], v: &'static str) {
    debug_assert!(
        v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
        "{v} needs escaping"
    );
    out.extend_from_slice(name);
    out.push(b'"');
    out.extend_from_slice(v.as_bytes());
    out.push(b'"');
}

/// A field whose value is already a JSON string.
fn put_json_field(out: &mut Vec<u8>, name: &[u8], v: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(v);
}

/// The plan's names as JSON strings, quoted (and escaped where they need it) once per file
/// instead of checked for characters to escape on every line that names them.
#[derive(Debug)]
pub(super) struct Names {
    processes: Vec<Vec<u8>>,
    destinations: Vec<Vec<u8>>,
    /// Each subscription's destination and group.
    subs: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Names {
    pub(super) fn new(plan: &Plan) -> Self {
        let json = |s: &str| {
            let mut v = Vec::new();
            put_str(&mut v, s);
            v
        };
        Names {
            processes: plan.processes.iter().map(|p| json(p)).collect(),
            destinations: plan.destinations.iter().map(|d| json(d)).collect(),
            subs: plan
                .subs
                .iter()
                .map(|s| (json(&s.destination), s.group.as_deref().map(json)))
                .collect(),
        }
    }

    /// Process `p`'s name, as [`Plan::name`] gives it.
    fn process(&self, p: Process) -> &[u8] {
        self.processes
            .get(usize::from(p))
            .map_or(b"\"?\"", Vec::as_slice)
    }
}

fn put_str_field(out: &mut Vec<u8>, name: &[u8], v: &str) {
    out.extend_from_slice(name);
    put_str(out, v);
}

/// A number in decimal, by `itoa`, the formatter serde_json itself uses: the same digits
/// `serde_json` writes, without going through its serializer for one integer.
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
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
