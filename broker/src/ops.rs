//! The commands: validation first, then the change, so that a refused command changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{Command, Reply};
use crate::config::{OverflowPolicy, limits};
use crate::defect::Defect;
use crate::dest::Msg;
use crate::error::{BrokerError, Result, invalid};
use crate::event::EventKind;
use crate::message::{
    AckMode, Confirm, ConsumerId, Delivery, DestId, GroupId, PublishRequest, Receipt,
};
use crate::state::{State, slot};
use crate::sub::EState;
use crate::time::Time;

/// Refuses a batch of no elements or more than [`limits::MAX_RECEIVE_BATCH`].
fn check_batch(what: &'static str, len: usize) -> Result<()> {
    if (1..=limits::MAX_RECEIVE_BATCH as usize).contains(&len) {
        Ok(())
    } else {
        Err(invalid(what, format!("{len} elements, must be 1 to 1024")))
    }
}

impl State {
    /// Applies one command at `now`. Timers up to `now` must have fired already.
    pub fn exec(&mut self, now: Time, cmd: &Command) -> Result<Reply> {
        match cmd {
            Command::Publish {
                destination,
                request,
            } => {
                let d = self.resolve(destination)?;
                self.publish(now, d, request)
                    .map(|confirm| Reply::Published { confirm })
            }
            Command::Receive {
                destination,
                group,
                consumer,
                max_messages,
                visibility_timeout_ms,
                ack_mode,
            } => {
                let d = self.resolve(destination)?;
                let g = self.resolve_sub(d, group.as_deref())?;
                let deliveries = self.receive(
                    now,
                    d,
                    g,
                    *consumer,
                    *max_messages,
                    *visibility_timeout_ms,
                    *ack_mode,
                )?;
                Ok(Reply::Delivered { deliveries })
            }
            Command::PublishBatch {
                destination,
                requests,
            } => {
                let d = self.resolve(destination)?;
                check_batch("requests", requests.len())?;
                // One event per publish (a drop-head overflow adds more); reserving them at
                // once saves growing the buffer step by step, which the server empties after
                // every command.
                self.out.reserve(requests.len());
                let results = requests
                    .iter()
                    .map(|request| self.publish(now, d, request))
                    .collect();
                Ok(Reply::PublishedBatch { results })
            }
            Command::Ack { receipt } => self.ack(now, receipt).map(|()| Reply::Done),
            Command::AckBatch { receipts } => {
                check_batch("receipts", receipts.len())?;
                self.out.reserve(receipts.len());
                let results = receipts.iter().map(|r| self.ack(now, r)).collect();
                Ok(Reply::Acked { results })
            }
            Command::Nack {
                receipt,
                requeue_delay_ms,
            } => self
                .nack(now, receipt, *requeue_delay_ms)
                .map(|()| Reply::Done),
            Command::ExtendVisibility {
                receipt,
                visibility_timeout_ms,
            } => self
                .extend(now, receipt, *visibility_timeout_ms)
                .map(|()| Reply::Done),
            Command::Commit { acks, publishes } => self
                .commit(now, acks, publishes)
                .map(|confirms| Reply::Committed { confirms })
                .map_err(|e| BrokerError::TransactionAborted(Box::new(e))),
            Command::CreateGroup {
                destination,
                group,
                start,
            } => self
                .create_group(now, destination, group, *start)
                .map(|()| Reply::Done),
            Command::Seek {
                destination,
                group,
                to,
            } => self
                .seek(now, destination, group, *to)
                .map(|()| Reply::Done),
            Command::Redrive {
                destination,
                max_messages,
            } => self
                .redrive(now, destination, *max_messages)
                .map(|count| Reply::Redriven { count }),
            Command::Tick => Ok(Reply::Done),
        }
    }

    fn check_publish(&self, d: usize, req: &PublishRequest) -> Result<()> {
        let cfg = &self.dests[d].cfg;
        if req.payload.len() > cfg.max_payload_bytes as usize {
            return Err(BrokerError::PayloadTooLarge {
                size: req.payload.len(),
                max: cfg.max_payload_bytes,
            });
        }
        match &req.key {
            Some(k) if k.len() > limits::MAX_KEY_BYTES => {
                return Err(invalid("key", format!("{} bytes, at most 1024", k.len())));
            }
            None if cfg.fifo_groups => return Err(BrokerError::KeyRequired(cfg.name.clone())),
            _ => {}
        }
        if let Some(delay) = req.delay_ms
            && delay > limits::MAX_DELAY_MS
        {
            return Err(invalid(
                "delay_ms",
                format!("{delay}, at most {}", limits::MAX_DELAY_MS),
            ));
        }
        if let Some(ttl) = req.ttl_ms
            && !(1..=limits::MAX_TTL_MS).contains(&ttl)
        {
            return Err(invalid(
                "ttl_ms",
                format!("{ttl}, must be 1 to {}", limits::MAX_TTL_MS),
            ));
        }
        if let Some(id) = &req.dedup_id
            && (id.is_empty() || id.len() > limits::MAX_DEDUP_ID_BYTES)
        {
            return Err(invalid(
                "dedup_id",
                format!("{} bytes, must be 1 to 128", id.len()),
            ));
        }
        Ok(())
    }

    /// The confirm of an earlier publish with the same dedup id, if still remembered.
    fn dedup_hit(&self, d: usize, req: &PublishRequest, now: Time) -> Option<Confirm> {
        let dest = &self.dests[d];
        let window = dest.cfg.dedup_window_ms;
        let (c, seen) = dest.dedup.get(req.dedup_id.as_ref()?)?;
        (window > 0 && seen.plus_ms(window) > now).then_some(Confirm {
            duplicate: true,
            ..*c
        })
    }

    pub fn publish(&mut self, now: Time, d: usize, req: &PublishRequest) -> Result<Confirm> {
        self.check_publish(d, req)?;
        self.dests[d].purge_dedup(now);
        self.publish_purged(now, d, req)
    }

    /// Publishes a checked request once the destination's dedup ids have been purged. A
    /// transaction purges once, before its capacity check, and not between its publishes, so
    /// that each publish finds exactly the dedup ids the check counted on.
    fn publish_purged(&mut self, now: Time, d: usize, req: &PublishRequest) -> Result<Confirm> {
        if let Some(confirm) = self.dedup_hit(d, req, now) {
            let at = slot(d, confirm.partition, confirm.offset);
            let kind = EventKind::Published {
                message_id: confirm.message_id,
                at,
                duplicate: true,
            };
            self.out.emit(now, kind);
            return Ok(confirm);
        }
        let dest = &self.dests[d];
        let size = req.payload.len() as u64;
        if self.rejects_on_overflow(d) && !dest.fits(1, size) {
            let (length, bytes) = dest.length();
            let destination = dest.cfg.name.clone();
            self.out.emit(
                now,
                EventKind::Rejected {
                    destination: DestId(d as u32),
                },
            );
            return Err(BrokerError::Overflow {
                destination,
                length,
                bytes,
            });
        }
        let delay = if self.defects.has(Defect::IgnoreDelay) {
            0
        } else {
            req.delay_ms.unwrap_or(dest.cfg.delay_ms)
        };
        let ttl = req.ttl_ms.or(dest.cfg.message_ttl_ms);
        let id = self.next_message_id();
        let msg = Msg {
            id,
            key: req.key.clone(),
            payload: req.payload.clone(),
            published_at: now,
            visible_at: now.plus_ms(delay),
            expires_at: ttl.map(|t| now.plus_ms(t)),
            only_group: None,
            origin: None,
            arrival: 0,
        };
        let at = self.store(now, d, msg);
        let confirm = Confirm {
            message_id: id,
            partition: at.partition,
            offset: at.offset,
            duplicate: false,
        };
        if let Some(dedup_id) = &req.dedup_id
            && self.dests[d].cfg.dedup_window_ms > 0
        {
            let dest = &mut self.dests[d];
            dest.dedup.insert(dedup_id.clone(), (confirm, now));
            dest.dedup_order.push_back((now, dedup_id.clone()));
        }
        self.out.emit(
            now,
            EventKind::Published {
                message_id: id,
                at,
                duplicate: false,
            },
        );
        Ok(confirm)
    }

    /// Whether a producer's publish beyond the bounds of `d` is refused rather than making room.
    fn rejects_on_overflow(&self, d: usize) -> bool {
        self.dests[d].cfg.overflow == OverflowPolicy::RejectPublish
            && !self.defects.has(Defect::DropHeadInsteadOfReject)
    }

    /// How long a lease asked to last `ms` really lasts.
    fn lease_ms(&self, ms: u64) -> u64 {
        if self.defects.has(Defect::RedeliverBeforeVisibilityTimeout) {
            (ms / 2).max(1)
        } else {
            ms
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &mut self,
        now: Time,
        d: usize,
        g: u32,
        consumer: ConsumerId,
        max_messages: u32,
        visibility_timeout_ms: Option<u64>,
        mode: AckMode,
    ) -> Result<Vec<Delivery>> {
        if !(1..=limits::MAX_RECEIVE_BATCH).contains(&max_messages) {
            return Err(invalid(
                "max_messages",
                format!("{max_messages}, must be 1 to 1024"),
            ));
        }
        let cfg = &self.dests[d].cfg;
        let visibility = visibility_timeout_ms.unwrap_or(cfg.visibility_timeout_ms);
        if !(1..=limits::MAX_VISIBILITY_TIMEOUT_MS).contains(&visibility) {
            return Err(invalid(
                "visibility_timeout_ms",
                format!(
                    "{visibility}, must be 1 to {}",
                    limits::MAX_VISIBILITY_TIMEOUT_MS
                ),
            ));
        }
        let mut budget = max_messages;
        if mode == AckMode::Explicit {
            let limit = cfg.max_in_flight_per_consumer;
            let held = self.dests[d].subs[g as usize]
                .in_flight
                .get(&consumer)
                .copied()
                .unwrap_or(0);
            if held >= limit {
                return Err(BrokerError::InFlightLimit { limit });
            }
            budget = budget.min(limit - held);
        }
        let lease_ms = self.lease_ms(visibility);
        // At most this many are delivered: the ready messages, within the budget. Sizing the
        // reply and the event buffer once saves growing them delivery by delivery.
        let n_ready = self.dests[d].subs[g as usize].n_ready;
        let expected = usize::try_from(n_ready.min(u64::from(budget))).unwrap_or(0);
        self.out.reserve(expected);
        let mut out = Vec::with_capacity(expected);
        while out.len() < budget as usize {
            let dest = &mut self.dests[d];
            let sub = &mut dest.subs[g as usize];
            let Some((p, off)) = sub.next_ready() else {
                break;
            };
            sub.rr = (p + 1) % dest.cfg.partitions;
            let Some(e) = sub.entry_mut(p, off) else {
                break;
            };
            e.deliveries += 1;
            let delivery_count = e.deliveries;
            let Some(m) = dest.log[p as usize].get(off) else {
                break;
            };
            let mut delivery = Delivery {
                message_id: m.id,
                partition: p,
                offset: off,
                key: m.key.clone(),
                payload: m.payload.clone(),
                delivery_count,
                published_at: m.published_at,
                receipt: None,
            };
            let k = dest.key(g, p, off);
            match mode {
                AckMode::Auto => {
                    dest.remove_entry(&mut self.timers, now, g, p, off);
                }
                AckMode::Explicit => {
                    let token = self.next_token;
                    self.next_token += 1;
                    let until = now.plus_ms(lease_ms);
                    let st = EState::InFlight {
                        until,
                        token,
                        consumer,
                    };
                    dest.subs[g as usize].set_state(&mut self.timers, k, st);
                    delivery.receipt = Some(Receipt {
                        epoch: self.epoch,
                        destination: DestId(d as u32),
                        group: GroupId(g),
                        partition: p,
                        offset: off,
                        token,
                    });
                    if self.defects.has(Defect::FifoTwoInFlight) {
                        dest.release_fifo_group_early(&mut self.timers, now, g, p, off);
                    }
                }
            }
            if self.defects.has(Defect::ForgetDedupAfterDelivery) {
                self.dests[d].forget_dedup_of(delivery.message_id);
            }
            let kind = EventKind::Delivered {
                message_id: delivery.message_id,
                at: slot(d, p, off),
                group: GroupId(g),
                consumer,
                delivery_count,
                auto_ack: mode == AckMode::Auto,
            };
            self.out.emit(now, kind);
            out.push(delivery);
        }
        Ok(out)
    }

    /// The live lease a receipt names, as (destination, group, partition, offset).
    pub fn lease(&self, r: &Receipt) -> Result<(usize, u32, u32, u64)> {
        let d = r.destination.0 as usize;
        let entry = (r.epoch == self.epoch)
            .then(|| {
                self.dests
                    .get(d)?
                    .subs
                    .get(r.group.0 as usize)?
                    .entry(r.partition, r.offset)
            })
            .flatten();
        let stale_ok = self.defects.has(Defect::AcceptStaleReceipt);
        match entry.map(|e| e.state) {
            Some(EState::InFlight { token, .. })
                if token == r.token || (stale_ok && r.token < token) =>
            {
                Ok((d, r.group.0, r.partition, r.offset))
            }
            _ => Err(BrokerError::StaleReceipt),
        }
    }

    pub fn ack(&mut self, now: Time, r: &Receipt) -> Result<()> {
        let (d, g, p, off) = self.lease(r)?;
        let message_id = self.message_id(d, p, off);
        self.dests[d].remove_entry(&mut self.timers, now, g, p, off);
        self.out.emit(
            now,
            EventKind::Acked {
                message_id,
                at: slot(d, p, off),
                group: GroupId(g),
            },
        );
        Ok(())
    }

    pub fn nack(&mut self, now: Time, r: &Receipt, delay_ms: Option<u64>) -> Result<()> {
        if let Some(delay) = delay_ms
            && delay > limits::MAX_DELAY_MS
        {
            return Err(invalid(
                "requeue_delay_ms",
                format!("{delay}, at most {}", limits::MAX_DELAY_MS),
            ));
        }
        let (d, g, p, off) = self.lease(r)?;
        let message_id = self.message_id(d, p, off);
        self.out.emit(
            now,
            EventKind::Nacked {
                message_id,
                at: slot(d, p, off),
                group: GroupId(g),
            },
        );
        self.fail_attempt(now, d, g, p, off, delay_ms);
        Ok(())
    }

    pub fn extend(&mut self, now: Time, r: &Receipt, timeout_ms: u64) -> Result<()> {
        if !(1..=limits::MAX_VISIBILITY_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(invalid(
                "visibility_timeout_ms",
                format!(
                    "{timeout_ms}, must be 1 to {}",
                    limits::MAX_VISIBILITY_TIMEOUT_MS
                ),
            ));
        }
        let (d, g, p, off) = self.lease(r)?;
        let until = now.plus_ms(self.lease_ms(timeout_ms));
        // The lease's own token, which is the receipt's unless a defect accepted a stale one.
        let (consumer, token) = match self.dests[d].subs[g as usize]
            .entry(p, off)
            .map(|e| e.state)
        {
            Some(EState::InFlight {
                consumer, token, ..
            }) => (consumer, token),
            _ => return Err(BrokerError::StaleReceipt),
        };
        let k = self.dests[d].key(g, p, off);
        let st = EState::InFlight {
            until,
            token,
            consumer,
        };
        self.dests[d].subs[g as usize].set_state(&mut self.timers, k, st);
        let message_id = self.message_id(d, p, off);
        let kind = EventKind::LeaseExtended {
            message_id,
            at: slot(d, p, off),
            group: GroupId(g),
            until,
        };
        self.out.emit(now, kind);
        Ok(())
    }

    /// Checks the whole transaction before changing anything, then applies it. The checks cover
    /// every way an ack or publish can fail, including capacity under reject-publish, so the
    /// apply step cannot stop half way.
    fn commit(
        &mut self,
        now: Time,
        acks: &[Receipt],
        publishes: &[(String, PublishRequest)],
    ) -> Result<Vec<Confirm>> {
        let ops = acks.len() + publishes.len();
        if ops == 0 || ops > limits::MAX_TRANSACTION_OPS {
            return Err(invalid(
                "transaction",
                format!("{ops} operations, must be 1 to 1024"),
            ));
        }
        let mut seen = BTreeSet::new();
        for r in acks {
            self.lease(r)?;
            if !seen.insert(*r) {
                return Err(invalid("transaction", "the same receipt is acked twice"));
            }
        }
        let mut resolved = Vec::with_capacity(publishes.len());
        for (name, req) in publishes {
            let d = self.resolve(name)?;
            self.check_publish(d, req)?;
            resolved.push(d);
        }
        // Forgetting expired and surplus dedup ids changes nothing a client can see (every
        // publish does it first), so it may happen even if the transaction is then refused.
        for &d in &resolved {
            self.dests[d].purge_dedup(now);
        }
        let mut added: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        let mut dedup_ids = BTreeSet::new();
        for ((_, req), &d) in publishes.iter().zip(&resolved) {
            // With a dedup window of 0 nothing is remembered, so a repeated id is stored again.
            let repeated = self.dests[d].cfg.dedup_window_ms > 0
                && req
                    .dedup_id
                    .as_ref()
                    .is_some_and(|id| !dedup_ids.insert((d, id)));
            if repeated || self.dedup_hit(d, req, now).is_some() {
                continue;
            }
            let a = added.entry(d).or_default();
            *a = (a.0 + 1, a.1 + req.payload.len() as u64);
        }
        for (&d, &(count, bytes)) in &added {
            let dest = &self.dests[d];
            if self.rejects_on_overflow(d) && !dest.fits(count, bytes) {
                let (length, bytes) = dest.length();
                let destination = dest.cfg.name.clone();
                return Err(BrokerError::Overflow {
                    destination,
                    length,
                    bytes,
                });
            }
        }
        for r in acks {
            self.ack(now, r)?;
        }
        let mut confirms = Vec::with_capacity(publishes.len());
        for ((_, req), d) in publishes.iter().zip(resolved) {
            confirms.push(self.publish_purged(now, d, req)?);
        }
        Ok(confirms)
    }
}
