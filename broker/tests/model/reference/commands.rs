//! The commands, run on the model's world: each validates first and then changes the world
//! through the mechanics in `reference.rs`, so that a refused command changes nothing.

use std::rc::Rc;

use mqsim_broker::{
    AckMode, BrokerError, Confirm, DestinationKind, DestinationStats, GroupStats, MessageId,
    PublishRequest, Time, limits,
};

use super::{Incoming, Remembered, Seen, Status, World, invalid, leased_by};

impl World {
    pub(super) fn publish(
        &mut self,
        name: &str,
        req: &PublishRequest,
    ) -> Result<Confirm, BrokerError> {
        let now = self.now;
        let d = self.dest_index(name)?;
        let dests = Rc::clone(&self.dests);
        let dest = &dests[d];
        if req.payload.len() > dest.max_payload_bytes as usize {
            return Err(BrokerError::PayloadTooLarge {
                size: req.payload.len(),
                max: dest.max_payload_bytes,
            });
        }
        if req
            .ttl_ms
            .is_some_and(|ttl| !(1..=limits::MAX_TTL_MS).contains(&ttl))
        {
            return Err(invalid("ttl_ms"));
        }
        // A dedup id is remembered for the window, and only the most recent `max_dedup_ids`
        // of the destination are remembered at all.
        if let Some(dedup_id) = &req.dedup_id {
            let mine: Vec<&Remembered> = self.dedup.iter().filter(|r| r.dest == d).collect();
            let recent = &mine[mine.len().saturating_sub(dest.max_dedup_ids)..];
            let hit = recent
                .iter()
                .rev()
                .find(|r| r.dedup_id == *dedup_id && r.at + dest.dedup_window_ms > now);
            if let Some(r) = hit {
                return Ok(Confirm {
                    duplicate: true,
                    ..r.confirm
                });
            }
        }
        if !dest.drop_head && !self.fits(d, req.payload.len() as u64) {
            let (length, bytes) = self.length(d);
            return Err(BrokerError::Overflow {
                destination: dest.name.clone(),
                length,
                bytes,
            });
        }
        let id = (u64::from(self.epoch) << 40) + self.ids_issued;
        self.ids_issued += 1;
        let incoming = Incoming {
            id,
            key: req.key.clone(),
            payload: req.payload.clone(),
            visible_at: now + req.delay_ms.unwrap_or(dest.delay_ms),
            expires_at: req.ttl_ms.or(dest.message_ttl_ms).map(|ttl| now + ttl),
            origin: None,
            only_sub: None,
        };
        let window = dest.dedup_window_ms;
        let (partition, offset) = self.store(now, d, incoming);
        let confirm = Confirm {
            message_id: MessageId(id),
            partition,
            offset,
            duplicate: false,
        };
        if let Some(dedup_id) = &req.dedup_id
            && window > 0
        {
            self.dedup.push(Remembered {
                dest: d,
                dedup_id: dedup_id.clone(),
                confirm,
                at: now,
            });
        }
        Ok(confirm)
    }

    /// The next message subscription `g` of `d` delivers: look at the partitions in turn,
    /// starting with the one after the last delivery's, and take the ready message with the
    /// lowest offset in the first partition that has one.
    fn next_ready(&self, d: usize, g: usize) -> Option<usize> {
        let n = self.dests[d].partitions;
        for k in 0..n {
            let p = (self.rotation[d][g] + k) % n;
            let ready = (0..self.msgs.len()).filter(|&i| {
                let m = &self.msgs[i];
                m.dest == d
                    && m.partition == p
                    && matches!(&m.claims[g], Some(c) if c.status == Status::Ready)
            });
            if let Some(i) = ready.min_by_key(|&i| self.msgs[i].offset) {
                return Some(i);
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive(
        &mut self,
        name: &str,
        group: Option<&str>,
        consumer: u64,
        max_messages: u32,
        visibility_ms: Option<u64>,
        mode: AckMode,
        next_lease: &mut usize,
    ) -> Result<Vec<Seen>, BrokerError> {
        let d = self.dest_index(name)?;
        let g = self.sub_index(d, group)?;
        if !(1..=limits::MAX_RECEIVE_BATCH).contains(&max_messages) {
            return Err(invalid("max_messages"));
        }
        let visibility = visibility_ms.unwrap_or(self.dests[d].visibility_ms);
        if !(1..=limits::MAX_VISIBILITY_TIMEOUT_MS).contains(&visibility) {
            return Err(invalid("visibility_timeout_ms"));
        }
        let mut budget = max_messages as usize;
        if mode == AckMode::Explicit {
            let limit = self.dests[d].max_in_flight;
            let held = self
                .msgs
                .iter()
                .filter(|m| m.dest == d && leased_by(&m.claims[g], consumer))
                .count();
            if held >= limit as usize {
                return Err(BrokerError::InFlightLimit { limit });
            }
            budget = budget.min(limit as usize - held);
        }
        let mut out = Vec::new();
        while out.len() < budget {
            let Some(i) = self.next_ready(d, g) else {
                break;
            };
            let partition = self.msgs[i].partition;
            self.rotation[d][g] = (partition + 1) % self.dests[d].partitions;
            self.claim_mut(i, g).deliveries += 1;
            let m = &self.msgs[i];
            let mut seen = Seen {
                message_id: MessageId(m.id),
                partition,
                offset: m.offset,
                key: m.key.clone(),
                payload: m.payload.clone(),
                delivery_count: m.claims[g].as_ref().map_or(0, |c| c.deliveries),
                published_at: Time::from_ms(m.published_at),
                lease: None,
            };
            match mode {
                AckMode::Auto => self.finish(i, g),
                AckMode::Explicit => {
                    let lease = *next_lease;
                    *next_lease += 1;
                    seen.lease = Some(lease);
                    self.claim_mut(i, g).status = Status::Leased {
                        until: self.now + visibility,
                        lease,
                        consumer,
                    };
                }
            }
            out.push(seen);
        }
        Ok(out)
    }

    pub(super) fn ack(&mut self, lease: Option<usize>) -> Result<(), BrokerError> {
        let (i, g) = self.find_lease(lease)?;
        self.finish(i, g);
        Ok(())
    }

    pub(super) fn nack(
        &mut self,
        lease: Option<usize>,
        delay_ms: Option<u64>,
    ) -> Result<(), BrokerError> {
        if delay_ms.is_some_and(|d| d > limits::MAX_DELAY_MS) {
            return Err(invalid("requeue_delay_ms"));
        }
        let (i, g) = self.find_lease(lease)?;
        self.fail(self.now, i, g, delay_ms);
        Ok(())
    }

    pub(super) fn extend(
        &mut self,
        lease: Option<usize>,
        visibility_ms: u64,
    ) -> Result<(), BrokerError> {
        if !(1..=limits::MAX_VISIBILITY_TIMEOUT_MS).contains(&visibility_ms) {
            return Err(invalid("visibility_timeout_ms"));
        }
        let (i, g) = self.find_lease(lease)?;
        let now = self.now;
        if let Status::Leased { until, .. } = &mut self.claim_mut(i, g).status {
            *until = now + visibility_ms;
        }
        Ok(())
    }

    /// Moves dead-lettered messages that are not leased, in message id order (the order they
    /// were first published), back to the destination and subscription they failed in, as new
    /// messages there. Stops at an origin that is full under reject-publish.
    pub(super) fn redrive(&mut self, name: &str, max_messages: u32) -> Result<u32, BrokerError> {
        if !(1..=limits::MAX_RECEIVE_BATCH).contains(&max_messages) {
            return Err(invalid("max_messages"));
        }
        let d = self.dest_index(name)?;
        if !self.dests[d].is_dead_letter_target {
            return Err(BrokerError::NotADeadLetterQueue(name.to_owned()));
        }
        let mut candidates: Vec<usize> = (0..self.msgs.len())
            .filter(|&i| {
                let m = &self.msgs[i];
                m.dest == d
                    && m.origin.is_some()
                    && matches!(&m.claims[0], Some(c) if !matches!(c.status, Status::Leased { .. }))
            })
            .collect();
        candidates.sort_by_key(|&i| (self.msgs[i].id, self.msgs[i].partition, self.msgs[i].offset));
        candidates.truncate(max_messages as usize);
        let now = self.now;
        let mut moved = 0;
        for i in candidates {
            let Some((to, sub)) = self.msgs[i].origin else {
                continue;
            };
            if !self.dests[to].drop_head && !self.fits(to, self.msgs[i].size()) {
                break;
            }
            let m = &self.msgs[i];
            let copy = Incoming {
                id: m.id,
                key: m.key.clone(),
                payload: m.payload.clone(),
                visible_at: now + self.dests[to].delay_ms,
                // The message arrives anew: the destination's time to live, not its own
                // original one (which the dead-letter queue does not keep).
                expires_at: self.dests[to].message_ttl_ms.map(|ttl| now + ttl),
                origin: None,
                only_sub: self.dests[to].topic.then_some(sub),
            };
            self.finish(i, 0);
            self.store(now, to, copy);
            moved += 1;
        }
        Ok(moved)
    }

    pub(super) fn stats(&self, d: usize) -> DestinationStats {
        let dest = &self.dests[d];
        let now = self.now;
        let mine = || self.msgs.iter().filter(move |m| m.dest == d);
        let groups = (0..dest.subs.len())
            .map(|g| {
                let status_count = |want: fn(&Status) -> bool| {
                    mine()
                        .filter(|m| matches!(&m.claims[g], Some(c) if want(&c.status)))
                        .count() as u64
                };
                let mut stats = GroupStats {
                    name: dest.subs[g].clone(),
                    ready: status_count(|s| *s == Status::Ready),
                    delayed: status_count(|s| matches!(s, Status::Waiting { .. })),
                    in_flight: status_count(|s| matches!(s, Status::Leased { .. })),
                    blocked: 0,
                    pending: Vec::new(),
                    committed: Vec::new(),
                    lag: Vec::new(),
                    oldest_age_ms: None,
                };
                // Per partition: the messages the group has not consumed, the lowest offset
                // among them (or the log end), and the distance from there to the end.
                for p in 0..dest.partitions {
                    let claimed = || mine().filter(|m| m.partition == p && m.claims[g].is_some());
                    let end = self.log_end(d, p);
                    let committed = claimed().map(|m| m.offset).min().unwrap_or(end);
                    stats.pending.push(claimed().count() as u64);
                    stats.committed.push(committed);
                    stats.lag.push(end - committed);
                }
                let unconsumed = mine().filter(|m| m.claims[g].is_some());
                let oldest = unconsumed.map(|m| m.published_at).min();
                stats.oldest_age_ms = oldest.map(|t| now - t);
                stats
            })
            .collect();
        let (depth, depth_bytes) = self.length(d);
        DestinationStats {
            name: dest.name.clone(),
            kind: if dest.topic {
                DestinationKind::Topic
            } else {
                DestinationKind::Queue
            },
            depth,
            depth_bytes,
            retained: mine().filter(|m| m.in_log).count() as u64,
            groups,
            dead_letter_depth: dest.dead_letter.map(|t| self.length(t).0),
        }
    }
}
