//! The commands that move a consumer group or dead letters rather than messages' normal flow:
//! creating and seeking consumer groups, and redriving dead-lettered messages.

use crate::config::{DestinationKind, OverflowPolicy, StartPosition, limits};
use crate::dest::Msg;
use crate::error::{BrokerError, Result, invalid};
use crate::event::{DropReason, EventKind};
use crate::message::{DestId, GroupId, SeekTo};
use crate::state::{State, slot};
use crate::sub::EState;
use crate::time::Time;

impl State {
    fn topic_group(&self, destination: &str, group: &str) -> Result<(usize, Option<u32>)> {
        let d = self.resolve(destination)?;
        if self.dests[d].cfg.kind != DestinationKind::Topic {
            return Err(BrokerError::GroupNotAllowed(destination.to_owned()));
        }
        Ok((d, self.dests[d].groups.get(group).map(|g| g.0)))
    }

    pub(crate) fn create_group(
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

    pub(crate) fn seek(
        &mut self,
        now: Time,
        destination: &str,
        group: &str,
        to: SeekTo,
    ) -> Result<()> {
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
    pub(crate) fn redrive(
        &mut self,
        now: Time,
        destination: &str,
        max_messages: u32,
    ) -> Result<u32> {
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
