//! The commands: validation first, then the change, so that a refused command changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{Command, Reply};
use crate::config::{DestinationKind, OverflowPolicy, StartPosition, limits};
use crate::defect::Defect;
use crate::dest::Msg;
use crate::error::{BrokerError, Result, invalid};
use crate::event::{DropReason, EventKind};
use crate::message::{
    AckMode, Confirm, ConsumerId, Delivery, DestId, GroupId, PublishRequest, Receipt, SeekTo,
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
                let results = requests
                    .iter()
                    .map(|request| self.publish(now, d, request))
                    .collect();
                Ok(Reply::PublishedBatch { results })
            }
            Command::Ack { receipt } => self.ack(now, receipt).map(|()| Reply::Done),
            Command::AckBatch { receipts } => {
                check_batch("receipts", receipts.len())?;
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
        let mut out = Vec::new();
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

    fn topic_group(&self, destination: &str, group: &str) -> Result<(usize, Option<u32>)> {
        let d = self.resolve(destination)?;
        if self.dests[d].cfg.kind != DestinationKind::Topic {
            return Err(BrokerError::GroupNotAllowed(destination.to_owned()));
        }
        Ok((d, self.dests[d].groups.get(group).map(|g| g.0)))
    }

    fn create_group(
        &mut self,
        now: Time,
        destination: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<()> {
        let (d, existing) = self.topic_group(destination, group)?;
        crate::config::check_name("group", group).map_err(BrokerError::Config)?;
        if existing.is_some() {
            return Err(BrokerError::GroupExists {
                destination: destination.into(),
                group: group.into(),
            });
        }
        if self.dests[d].subs.len() >= limits::MAX_GROUPS {
            return Err(invalid(
                "group",
                format!("a topic has at most {} groups", limits::MAX_GROUPS),
            ));
        }
        let g = self.dests[d].add_sub(group.to_owned()).0;
        if start == StartPosition::Earliest {
            self.seek_partitions(now, d, g, SeekTo::Earliest);
        }
        let kind = EventKind::GroupSeeked {
            destination: DestId(d as u32),
            group: GroupId(g),
        };
        self.out.emit(now, kind);
        Ok(())
    }

    fn seek(&mut self, now: Time, destination: &str, group: &str, to: SeekTo) -> Result<()> {
        let (d, g) = self.topic_group(destination, group)?;
        let g = g.ok_or_else(|| BrokerError::UnknownGroup {
            destination: destination.into(),
            group: group.into(),
        })?;
        if let SeekTo::Offset { partition, .. } = to
            && partition >= self.dests[d].cfg.partitions
        {
            return Err(invalid(
                "partition",
                format!("{partition} does not exist on `{destination}`"),
            ));
        }
        self.seek_partitions(now, d, g, to);
        let kind = EventKind::GroupSeeked {
            destination: DestId(d as u32),
            group: GroupId(g),
        };
        self.out.emit(now, kind);
        Ok(())
    }

    /// Repositions group `g`: messages before the new position that it had not consumed are
    /// skipped (and reported), leased ones keep their leases, and every retained message from
    /// the position on that the group does not hold is delivered again, counting from zero.
    fn seek_partitions(&mut self, now: Time, d: usize, g: u32, to: SeekTo) {
        for p in 0..self.dests[d].cfg.partitions {
            let log = &self.dests[d].log[p as usize];
            let start = log.first().map_or(log.end(), |(off, _)| off);
            let from = match to {
                SeekTo::Earliest => start,
                SeekTo::Latest => log.end(),
                SeekTo::Offset { partition, offset } if partition == p => {
                    offset.clamp(start, log.end())
                }
                SeekTo::Offset { .. } => continue,
            };
            let sub = &self.dests[d].subs[g as usize];
            let skipped: Vec<u64> = sub.parts[p as usize]
                .entries
                .iter_below(from)
                .filter(|(_, e)| !matches!(e.state, EState::InFlight { .. }))
                .map(|(off, _)| off)
                .collect();
            for off in skipped {
                let Some(m) = self.dests[d].log[p as usize].get(off) else {
                    continue;
                };
                let (message_id, key, payload) = m.body();
                self.dests[d].remove_entry(&mut self.timers, now, g, p, off);
                let kind = EventKind::Dropped {
                    message_id,
                    at: slot(d, p, off),
                    group: GroupId(g),
                    reason: DropReason::Skipped,
                    key,
                    payload,
                };
                self.out.emit(now, kind);
            }
            let sub = &self.dests[d].subs[g as usize];
            let readmit: Vec<u64> = self.dests[d].log[p as usize]
                .iter_from(from)
                .filter(|(off, m)| {
                    m.only_group.is_none_or(|o| o.0 == g) && sub.entry(p, *off).is_none()
                })
                .map(|(off, _)| off)
                .collect();
            for off in readmit {
                self.dests[d].admit(&mut self.timers, now, g, p, off);
            }
        }
    }

    /// Moves dead-lettered messages, oldest first, back to the destination and group they
    /// failed in, with their delivery count starting again from zero. Stops early, without
    /// error, at an origin that is full under reject-publish.
    fn redrive(&mut self, now: Time, destination: &str, max_messages: u32) -> Result<u32> {
        if !(1..=limits::MAX_RECEIVE_BATCH).contains(&max_messages) {
            return Err(invalid(
                "max_messages",
                format!("{max_messages}, must be 1 to 1024"),
            ));
        }
        let d = self.resolve(destination)?;
        if !self.dests[d].is_dlq_target {
            return Err(BrokerError::NotADeadLetterQueue(destination.to_owned()));
        }
        let dest = &self.dests[d];
        let mut candidates = Vec::new();
        for (p, part) in dest.subs[0].parts.iter().enumerate() {
            for (off, e) in part.entries.iter() {
                if matches!(e.state, EState::InFlight { .. }) {
                    continue;
                }
                if let Some(m) = dest.log[p].get(off)
                    && m.origin.is_some()
                {
                    candidates.push((m.id, p as u32, off));
                }
            }
        }
        candidates.sort_unstable();
        let mut moved = 0;
        for (_, p, off) in candidates.into_iter().take(max_messages as usize) {
            let Some(m) = self.dests[d].log[p as usize].get(off) else {
                continue;
            };
            let Some((od, og)) = m.origin else { continue };
            let target = &self.dests[od.0 as usize];
            if target.cfg.overflow == OverflowPolicy::RejectPublish
                && !target.fits(1, u64::from(m.size()))
            {
                break;
            }
            let copy = Msg {
                id: m.id,
                key: m.key.clone(),
                payload: m.payload.clone(),
                published_at: now,
                visible_at: now.plus_ms(target.cfg.delay_ms),
                expires_at: target.cfg.message_ttl_ms.map(|t| now.plus_ms(t)),
                only_group: (!target.is_queue()).then_some(og),
                origin: None,
                arrival: 0,
            };
            let id = copy.id;
            self.dests[d].remove_entry(&mut self.timers, now, 0, p, off);
            let to = self.store(now, od.0 as usize, copy);
            self.out.emit(
                now,
                EventKind::Redriven {
                    message_id: id,
                    from: slot(d, p, off),
                    to,
                },
            );
            moved += 1;
        }
        Ok(moved)
    }
}
