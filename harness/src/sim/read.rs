//! Reading a history file back: JSON Lines, as [`super::jsonl`] writes them, into a
//! [`History`] whose numbers follow a [`Plan`].
//!
//! This is what lets checkers be tested on small hand-written histories, and what a replay
//! compares. Fields a line does not need may be left out (a broker message id, a partition
//! or offset that does not matter to the test), a time may be given as `time_ms`, and blank
//! lines and `#` comments are skipped; unknown fields and unknown names are errors that give
//! the line number.

use serde::Deserialize;

use super::history::{BrokerEvent, Completion, Entry, History, NO_KEY, Op, Phase, What};
use super::ids::NO_MSG;
use super::plan::{NO_SUB, Plan, Process, SubIndex};

/// One line, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Line {
    time_ns: u64,
    /// Hand-written histories may give milliseconds instead.
    time_ms: Option<u64>,
    process: String,
    #[serde(rename = "type")]
    kind: String,
    op: Option<String>,
    invoke: Option<u32>,
    event: Option<String>,
    msg: Option<u64>,
    broker_msg: Option<u64>,
    key: Option<String>,
    destination: Option<String>,
    group: Option<String>,
    partition: Option<u32>,
    offset: Option<u64>,
    delivery_count: Option<u32>,
    count: Option<u32>,
    intended_ns: Option<u64>,
    duplicate: Option<bool>,
    poison: Option<bool>,
    applied: Option<bool>,
    epoch: Option<u32>,
    error: Option<String>,
    fault: Option<String>,
    phase: Option<String>,
}

/// Reads `text` (JSON Lines; blank lines are skipped) into a history named by `plan`.
/// Errors say `line N: ...`.
pub fn read(text: &str, plan: &Plan) -> Result<History, String> {
    let mut history = History::new();
    for (n, raw) in text.lines().enumerate() {
        // Blank lines and `#` comments are for hand-written histories; they take no index.
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| format!("line {}: {e}", n + 1))?;
        let entry = entry(&line, plan, &mut history).map_err(|e| format!("line {}: {e}", n + 1))?;
        history.push_entry(entry);
    }
    Ok(history)
}

fn entry(l: &Line, plan: &Plan, h: &mut History) -> Result<Entry, String> {
    let process = plan
        .processes
        .iter()
        .position(|p| *p == l.process)
        .ok_or_else(|| format!("unknown process `{}`", l.process))? as Process;
    let msg = l.msg.unwrap_or(NO_MSG);
    let broker_msg = l.broker_msg.unwrap_or(NO_MSG);
    let key = match &l.key {
        None => NO_KEY,
        Some(k) => k
            .strip_prefix('k')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("key `{k}` is not of the form k<number>"))?,
    };
    let sub = sub(l, plan)?;
    let op = || -> Result<Op, String> {
        match l.op.as_deref() {
            Some("publish") => Ok(Op::Publish),
            Some("receive") => Ok(Op::Receive),
            Some("ack") => Ok(Op::Ack),
            Some("nack") => Ok(Op::Nack),
            other => Err(format!("unknown op {other:?}")),
        }
    };
    let invoke = || l.invoke.ok_or("a completion needs `invoke`");
    let what = match l.kind.as_str() {
        "invoke" => What::Invoke {
            op: op()?,
            msg,
            key,
            sub: if op()? == Op::Publish { NO_SUB } else { sub },
            intended_ns: l.intended_ns.unwrap_or(0),
        },
        "ok" => {
            let op = op()?;
            What::Ok {
                invoke: invoke()?,
                op,
                msg,
                broker_msg,
                partition: l.partition.unwrap_or(0),
                offset: l.offset.unwrap_or(0),
                count: match op {
                    Op::Publish => u32::from(l.duplicate.unwrap_or(false)),
                    _ => l.count.unwrap_or(0),
                },
            }
        }
        "fail" | "info" => What::Failed {
            invoke: invoke()?,
            op: op()?,
            msg,
            completion: if l.kind == "fail" {
                Completion::Fail
            } else {
                Completion::Info
            },
            error: h.intern(l.error.as_deref().unwrap_or("")),
        },
        "deliver" => What::Deliver {
            invoke: invoke()?,
            msg,
            broker_msg,
            partition: l.partition.unwrap_or(0),
            offset: l.offset.unwrap_or(0),
            delivery_count: l.delivery_count.unwrap_or(1),
            key,
            sub,
            poison: l.poison.unwrap_or(false),
        },
        "effect" => What::Effect {
            msg,
            sub,
            applied: l.applied.unwrap_or(true),
        },
        "nemesis" => What::Nemesis {
            text: h.intern(l.fault.as_deref().unwrap_or("")),
        },
        "phase" => What::Phase {
            phase: phase(l.phase.as_deref().unwrap_or(""))?,
        },
        "broker" => {
            let event = broker_event(l.event.as_deref().unwrap_or(""))?;
            What::Broker {
                event,
                msg,
                broker_msg,
                sub,
                partition: l.partition.unwrap_or(0),
                offset: l.offset.unwrap_or(0),
                count: if event == BrokerEvent::Recovered {
                    l.epoch.unwrap_or(0)
                } else {
                    l.delivery_count.unwrap_or(0)
                },
            }
        }
        other => return Err(format!("unknown type `{other}`")),
    };
    Ok(Entry {
        at_ns: l
            .time_ms
            .map_or(l.time_ns, |ms| ms.saturating_mul(1_000_000)),
        process,
        what,
    })
}

fn sub(l: &Line, plan: &Plan) -> Result<SubIndex, String> {
    let Some(d) = &l.destination else {
        return Ok(NO_SUB);
    };
    if l.kind == "invoke" && l.op.as_deref() == Some("publish") {
        return Ok(NO_SUB);
    }
    plan.subs
        .iter()
        .position(|s| s.destination == *d && s.group == l.group)
        .map(|i| i as SubIndex)
        .ok_or_else(|| {
            format!(
                "no subscription `{d}`{}",
                l.group
                    .as_deref()
                    .map(|g| format!(" group `{g}`"))
                    .unwrap_or_default()
            )
        })
}

fn phase(name: &str) -> Result<Phase, String> {
    [
        Phase::Fault,
        Phase::Heal,
        Phase::Drain,
        Phase::Done,
        Phase::DrainTimedOut,
    ]
    .into_iter()
    .find(|p| p.name() == name)
    .ok_or_else(|| format!("unknown phase `{name}`"))
}

fn broker_event(name: &str) -> Result<BrokerEvent, String> {
    use BrokerEvent as B;
    [
        B::Acked,
        B::Nacked,
        B::LeaseExpired,
        B::LeaseReleased,
        B::DeadLettered,
        B::DeadLetterRefused,
        B::Expired,
        B::DroppedOverflow,
        B::DroppedMaxDeliveries,
        B::DroppedSkipped,
        B::Recovered,
    ]
    .into_iter()
    .find(|e| e.name() == name)
    .ok_or_else(|| format!("unknown broker event `{name}`"))
}
