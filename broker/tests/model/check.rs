//! Runs one generated case against the broker and the reference model side by side and
//! compares every observable result: each reply (confirms, deliveries, errors), the epoch after
//! each restart, and the stats of every destination after each restart, on `Op::Stats` and at
//! the end.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fmt::Write as _;

use mqsim_broker::{
    BrokerError, Command, ConsumerId, Delivery, DestId, DropReason, EventKind, GroupId, LeaseEnd,
    MemDisk, Receipt, Reply, Time,
};

use super::ops::{Op, ReceiptPick, Setup, Step};
use super::reference::{Model, Seen};

type Broker = mqsim_broker::Broker<MemDisk>;

/// A receipt no broker ever issues: used for an ack, nack or extend before any delivery.
const NEVER_ISSUED: Receipt = Receipt {
    epoch: u32::MAX,
    destination: DestId(0),
    group: GroupId(0),
    partition: 0,
    offset: 0,
    token: u64::MAX,
};

/// How often the interesting things happened, summed over cases: a generator that silently
/// stopped reaching them would make the comparison pass without testing much.
pub type Tally = BTreeMap<&'static str, u64>;

/// The parts of an error a caller can rely on: the prose detail of an invalid argument is not.
fn comparable(e: BrokerError) -> BrokerError {
    match e {
        BrokerError::InvalidArgument { what, .. } => BrokerError::InvalidArgument {
            what,
            detail: String::new(),
        },
        e => e,
    }
}

struct Run {
    /// `None` only for the moment of a restart.
    broker: Option<Broker>,
    model: Model,
    has_topic: bool,
    /// Every receipt the broker handed out; a lease handle of the model indexes this.
    receipts: Vec<Receipt>,
    now: u64,
    trace: Option<String>,
    tally: Tally,
}

impl Run {
    fn broker(&mut self) -> &mut Broker {
        self.broker
            .as_mut()
            .expect("a broker is open between steps")
    }

    fn compare<T: PartialEq + Debug>(
        &mut self,
        what: &str,
        broker: T,
        model: T,
    ) -> Result<(), String> {
        if let Some(trace) = &mut self.trace {
            let _ = writeln!(trace, "      {what}: {broker:?}");
        }
        if broker == model {
            Ok(())
        } else {
            Err(format!(
                "t={}ms {what}: broker and model disagree\n  broker: {broker:?}\n  model:  {model:?}",
                self.now
            ))
        }
    }

    /// The receipt an op picks, and the model's handle for it (`None` for one never issued).
    fn receipt(&self, pick: ReceiptPick) -> (Receipt, Option<usize>) {
        let live = self.model.live_leases();
        let i = match (pick, self.receipts.len()) {
            (ReceiptPick::Live(k), _) if !live.is_empty() => live[k % live.len()],
            (_, 0) => return (NEVER_ISSUED, None),
            (ReceiptPick::Live(k) | ReceiptPick::Any(k), n) => n - 1 - k % n,
        };
        (self.receipts[i], Some(i))
    }

    /// Turns the broker's deliveries into what the model produces, recording each receipt
    /// under the next lease handle.
    fn seen(&mut self, deliveries: Vec<Delivery>) -> Vec<Seen> {
        deliveries
            .into_iter()
            .map(|d| {
                let lease = d.receipt.map(|r| {
                    self.receipts.push(r);
                    self.receipts.len() - 1
                });
                Seen {
                    message_id: d.message_id,
                    partition: d.partition,
                    offset: d.offset,
                    key: d.key,
                    payload: d.payload,
                    delivery_count: d.delivery_count,
                    published_at: d.published_at,
                    lease,
                }
            })
            .collect()
    }

    fn apply(&mut self, command: Command) -> Result<Reply, BrokerError> {
        let now = Time::from_ms(self.now);
        let reply = self.broker().apply(now, command).map_err(comparable);
        self.count_events();
        reply
    }

    fn count_events(&mut self) {
        for event in self.broker().take_events() {
            let what = match event.kind {
                EventKind::Delivered { delivery_count, .. } if delivery_count > 1 => "redelivered",
                EventKind::Published {
                    duplicate: true, ..
                } => "duplicate publish",
                EventKind::Rejected { .. } => "publish rejected by a full destination",
                EventKind::LeaseEnded {
                    why: LeaseEnd::Expired,
                    ..
                } => "lease expired",
                EventKind::LeaseEnded {
                    why: LeaseEnd::Restart,
                    ..
                } => "lease released by a restart",
                EventKind::DeadLettered { .. } => "dead-lettered",
                EventKind::DeadLetterRefused { .. } => "dead-letter refused",
                EventKind::Dropped {
                    reason: DropReason::Overflow,
                    ..
                } => "dropped by drop-head",
                EventKind::Dropped {
                    reason: DropReason::MaxDeliveries,
                    ..
                } => "dropped after max deliveries",
                EventKind::Redriven { .. } => "redriven",
                EventKind::Expired { .. } => "expired",
                _ => continue,
            };
            *self.tally.entry(what).or_default() += 1;
        }
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        let now = self.now;
        match op {
            Op::Publish { to, request } => {
                let broker = self.apply(Command::Publish {
                    destination: (*to).to_owned(),
                    request: request.clone(),
                });
                let model = self.model.publish(now, to, request);
                let model = model.map(|confirm| Reply::Published { confirm });
                self.compare("publish", broker, model)
            }
            Op::Receive {
                from,
                consumer,
                max_messages,
                visibility_ms,
                mode,
            } => {
                let (destination, group) = from.address();
                let broker = self.apply(Command::Receive {
                    destination: destination.to_owned(),
                    group: group.map(str::to_owned),
                    consumer: ConsumerId(*consumer),
                    max_messages: *max_messages,
                    visibility_timeout_ms: *visibility_ms,
                    ack_mode: *mode,
                });
                let broker = broker.map(|reply| match reply {
                    Reply::Delivered { deliveries } => self.seen(deliveries),
                    other => panic!("a receive answered {other:?}"),
                });
                let model = self.model.receive(
                    now,
                    destination,
                    group,
                    *consumer,
                    *max_messages,
                    *visibility_ms,
                    *mode,
                );
                self.compare("receive", broker, model)
            }
            Op::Ack(pick) => {
                let (receipt, lease) = self.receipt(*pick);
                let broker = self.apply(Command::Ack { receipt });
                let model = self.model.ack(now, lease).map(|()| Reply::Done);
                self.compare("ack", broker, model)
            }
            Op::Nack(pick, requeue_delay_ms) => {
                let (receipt, lease) = self.receipt(*pick);
                let broker = self.apply(Command::Nack {
                    receipt,
                    requeue_delay_ms: *requeue_delay_ms,
                });
                let model = self.model.nack(now, lease, *requeue_delay_ms);
                self.compare("nack", broker, model.map(|()| Reply::Done))
            }
            Op::Extend(pick, visibility_timeout_ms) => {
                let (receipt, lease) = self.receipt(*pick);
                let broker = self.apply(Command::ExtendVisibility {
                    receipt,
                    visibility_timeout_ms: *visibility_timeout_ms,
                });
                let model = self.model.extend(now, lease, *visibility_timeout_ms);
                self.compare("extend", broker, model.map(|()| Reply::Done))
            }
            Op::Redrive { from, max_messages } => {
                let broker = self.apply(Command::Redrive {
                    destination: (*from).to_owned(),
                    max_messages: *max_messages,
                });
                let model = self.model.redrive(now, from, *max_messages);
                let model = model.map(|count| Reply::Redriven { count });
                self.compare("redrive", broker, model)
            }
            Op::Tick => {
                let broker = self.apply(Command::Tick);
                self.model.tick(now);
                self.compare("tick", broker, Ok(Reply::Done))
            }
            Op::Crash | Op::Restart => {
                let old = self.broker.take().expect("a broker is open between steps");
                let config = old.config().clone();
                let mut disk = old.into_storage();
                if matches!(op, Op::Crash) {
                    if disk.unsynced_len() > 0 {
                        *self.tally.entry("crash lost unsynced records").or_default() += 1;
                    }
                    disk.crash();
                    self.model.crash_and_recover(now);
                } else {
                    self.model.restart(now);
                }
                let broker = Broker::open(config, disk, Time::from_ms(now))
                    .map_err(|e| format!("t={now}ms recovery failed: {e}"))?;
                self.broker = Some(broker);
                self.count_events();
                let epoch = self.broker().epoch();
                self.compare("epoch", epoch, self.model.epoch())?;
                self.compare_stats()
            }
            Op::Stats => self.compare_stats(),
        }
    }

    fn compare_stats(&mut self) -> Result<(), String> {
        let names: &[&str] = if self.has_topic {
            &["q", "dlq", "t"]
        } else {
            &["q", "dlq"]
        };
        let now = self.now;
        for name in names {
            let broker = self.broker().stats(Time::from_ms(now), name);
            let model = self.model.stats(now, name);
            self.compare(
                &format!("stats of {name}"),
                broker.map_err(comparable),
                model,
            )?;
        }
        Ok(())
    }
}

/// Runs `steps` on a fresh broker and model configured by `setup`. On the first disagreement,
/// returns what disagreed; with `trace`, after every step so far and what the broker answered.
pub fn run(setup: &Setup, steps: &[Step], trace: bool) -> Result<Tally, String> {
    let config = setup.config();
    let broker = Broker::open(config.clone(), MemDisk::new(), Time::ZERO)
        .map_err(|e| format!("the generated configuration was refused: {e}"))?;
    let mut run = Run {
        broker: Some(broker),
        model: Model::new(&config),
        has_topic: setup.topic.is_some(),
        receipts: Vec::new(),
        now: 0,
        trace: trace.then(String::new),
        tally: Tally::new(),
    };
    let mut outcome = Ok(());
    for (i, step) in steps.iter().enumerate() {
        run.now += step.dt_ms;
        if let Some(trace) = &mut run.trace {
            let _ = writeln!(trace, "{i:>3} t={}ms {:?}", run.now, step.op);
        }
        outcome = run.step(&step.op);
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome = run.compare_stats();
    }
    match (outcome, run.trace) {
        (Ok(()), _) => Ok(run.tally),
        (Err(e), Some(trace)) => Err(format!("{trace}\n{e}")),
        (Err(e), None) => Err(e),
    }
}
