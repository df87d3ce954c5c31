//! The broker: state, storage and durability policy behind one command interface.

use crate::command::{Command, Reply};
use crate::config::{BrokerConfig, Durability, StartPosition};
use crate::defect::Defect;
use crate::error::{BrokerError, Result};
use crate::event::Event;
use crate::message::{
    AckMode, Confirm, ConsumerId, Delivery, DestId, GroupId, PublishRequest, Receipt, SeekTo,
};
use crate::state::State;
use crate::stats::DestinationStats;
use crate::storage::{MemDisk, Record, Storage};
use crate::time::Time;

/// A message broker as a deterministic state machine.
///
/// Every command carries the caller's time; the broker never reads a clock, draws no random
/// number and does no I/O except through its [`Storage`]. The same configuration, storage
/// contents and sequence of timed commands always give the same replies and events.
///
/// A crash is modelled by dropping the broker (and, for a [`MemDisk`], calling
/// [`MemDisk::crash`]); [`Broker::open`] on the same storage recovers.
#[derive(Debug)]
pub struct Broker<S: Storage = MemDisk> {
    state: State,
    storage: S,
    config: BrokerConfig,
    last_sync: Time,
}

impl<S: Storage> Broker<S> {
    /// Starts a broker on `storage`, replaying whatever it durably holds, at time `now`.
    ///
    /// Leases held when the previous incarnation stopped end as failed deliveries (so a message
    /// that was out of deliveries is dead-lettered rather than delivered once too often).
    /// Recovery time is linear in the number of synced records.
    ///
    /// Records that were appended but not synced are still there when only the process stopped
    /// (the storage was not crashed): they are synced first and replayed with the rest. Left
    /// unsynced, the new incarnation's first sync would make them durable behind records it
    /// never applied, and the next recovery would replay a history that never happened.
    pub fn open(config: BrokerConfig, mut storage: S, now: Time) -> Result<Self> {
        let mut state = State::new(&config)?;
        let epoch = storage.next_epoch();
        storage.sync();
        state.out.record = false;
        storage
            .replay(&mut |record| state.replay(record))
            .map_err(|(index, reason)| BrokerError::Recovery { index, reason })?;
        state.out.record = true;
        state.check_time(now)?;
        state.advance(now);
        state.recover(now, epoch);
        if config.durability != Durability::None {
            storage.append(Record::Recovered { at: now, epoch });
            storage.sync();
        }
        Ok(Broker {
            state,
            storage,
            config,
            last_sync: now,
        })
    }

    /// Applies one command at `now` (which must not be earlier than the last command's time).
    ///
    /// Timers due by `now` fire first: leases expire, delays end, messages expire. A refused
    /// command changes nothing and is not logged. Under `always` durability the answer comes
    /// only after the command's record is synced.
    pub fn apply(&mut self, now: Time, command: Command) -> Result<Reply> {
        self.begin(now, !matches!(command, Command::Tick))?;
        let reply = self.state.exec(now, &command);
        let logged = matches!(&reply, Ok(r) if command.is_logged(r));
        let lazy = self.syncs_lazily(&command);
        self.finish(now, logged, lazy, || command);
        reply
    }

    /// Whether a defect answers `command` before its record is synced, leaving the sync to the
    /// next change that is synced. Always false without the `defects` feature.
    fn syncs_lazily(&self, command: &Command) -> bool {
        let defects = self.state.defects;
        match command {
            Command::Publish { .. } | Command::PublishBatch { .. } => {
                defects.has(Defect::ConfirmBeforeSync)
            }
            Command::Ack { .. } | Command::AckBatch { .. } => {
                defects.has(Defect::ResurrectAckedOnRestart)
            }
            _ => false,
        }
    }

    fn logging(&self) -> bool {
        self.config.durability != Durability::None
    }

    /// What every command does first: refuse a time in the past, fire due timers, and refuse
    /// a change when storage is full.
    fn begin(&mut self, now: Time, mutating: bool) -> Result<()> {
        self.state.check_time(now)?;
        self.state.advance(now);
        if mutating && self.logging() && !self.storage.has_room() {
            return Err(BrokerError::StorageFull);
        }
        Ok(())
    }

    /// What every command does last: log it if it changed state, then sync per the policy.
    /// The command is built only when it is logged, so the typed methods below do not allocate
    /// one under `Durability::None`. `lazy` (only ever set by a defect) skips the sync that
    /// `always` owes the command.
    fn finish(&mut self, now: Time, changed: bool, lazy: bool, command: impl FnOnce() -> Command) {
        let wrote = changed && self.logging();
        if wrote {
            self.storage.append(Record::Applied {
                at: now,
                command: command(),
            });
        }
        self.sync_per_policy(now, wrote && !lazy);
    }

    fn sync_per_policy(&mut self, now: Time, wrote: bool) {
        let due = match self.config.durability {
            Durability::None => false,
            Durability::Always => wrote,
            Durability::Interval { sync_interval_ms } => {
                now >= self.last_sync.plus_ms(sync_interval_ms)
            }
        };
        if due {
            self.storage.sync();
            self.last_sync = now;
        }
    }

    /// Publishes a message.
    pub fn publish(
        &mut self,
        now: Time,
        destination: &str,
        request: PublishRequest,
    ) -> Result<Confirm> {
        // The same steps as `apply` with `Command::Publish`, without building the command unless
        // it is logged: this is the hot path of every benchmark and simulation.
        self.begin(now, true)?;
        let state = &mut self.state;
        let result = state
            .resolve(destination)
            .and_then(|d| state.publish(now, d, &request));
        let lazy = self.state.defects.has(Defect::ConfirmBeforeSync);
        self.finish(now, result.is_ok(), lazy, || Command::Publish {
            destination: destination.to_owned(),
            request,
        });
        result
    }

    /// Receives up to `max_messages` from a queue (`group: None`) or a topic's consumer group.
    pub fn receive(
        &mut self,
        now: Time,
        destination: &str,
        group: Option<&str>,
        consumer: ConsumerId,
        max_messages: u32,
        ack_mode: AckMode,
    ) -> Result<Vec<Delivery>> {
        // The same steps as `apply` with `Command::Receive`, building the command only when it
        // is logged.
        self.begin(now, true)?;
        let state = &mut self.state;
        let result = state.resolve(destination).and_then(|d| {
            let g = state.resolve_sub(d, group)?;
            state.receive(now, d, g, consumer, max_messages, None, ack_mode)
        });
        let changed = result.as_ref().is_ok_and(|v| !v.is_empty());
        self.finish(now, changed, false, || Command::Receive {
            destination: destination.to_owned(),
            group: group.map(str::to_owned),
            consumer,
            max_messages,
            visibility_timeout_ms: None,
            ack_mode,
        });
        result
    }

    /// Acknowledges a delivery.
    pub fn ack(&mut self, now: Time, receipt: Receipt) -> Result<()> {
        self.apply(now, Command::Ack { receipt }).map(drop)
    }

    /// Gives a delivery back, to be retried after `requeue_delay_ms` or the retry backoff.
    pub fn nack(
        &mut self,
        now: Time,
        receipt: Receipt,
        requeue_delay_ms: Option<u64>,
    ) -> Result<()> {
        self.apply(
            now,
            Command::Nack {
                receipt,
                requeue_delay_ms,
            },
        )
        .map(drop)
    }

    /// Moves a lease's end to `visibility_timeout_ms` from now.
    pub fn extend_visibility(
        &mut self,
        now: Time,
        receipt: Receipt,
        visibility_timeout_ms: u64,
    ) -> Result<()> {
        self.apply(
            now,
            Command::ExtendVisibility {
                receipt,
                visibility_timeout_ms,
            },
        )
        .map(drop)
    }

    /// Acknowledges and publishes atomically.
    pub fn commit(
        &mut self,
        now: Time,
        acks: Vec<Receipt>,
        publishes: Vec<(String, PublishRequest)>,
    ) -> Result<Vec<Confirm>> {
        match self.apply(now, Command::Commit { acks, publishes })? {
            Reply::Committed { confirms } => Ok(confirms),
            other => unreachable_reply(other),
        }
    }

    /// Creates a consumer group on a topic.
    pub fn create_group(
        &mut self,
        now: Time,
        destination: &str,
        group: &str,
        start: StartPosition,
    ) -> Result<()> {
        let command = Command::CreateGroup {
            destination: destination.to_owned(),
            group: group.to_owned(),
            start,
        };
        self.apply(now, command).map(drop)
    }

    /// Repositions a consumer group on a topic.
    pub fn seek(&mut self, now: Time, destination: &str, group: &str, to: SeekTo) -> Result<()> {
        let command = Command::Seek {
            destination: destination.to_owned(),
            group: group.to_owned(),
            to,
        };
        self.apply(now, command).map(drop)
    }

    /// Moves up to `max_messages` messages from a dead-letter queue back to their origin.
    pub fn redrive(&mut self, now: Time, destination: &str, max_messages: u32) -> Result<u32> {
        let command = Command::Redrive {
            destination: destination.to_owned(),
            max_messages,
        };
        match self.apply(now, command)? {
            Reply::Redriven { count } => Ok(count),
            other => unreachable_reply(other),
        }
    }

    /// Lets time pass: fires due timers and syncs if the policy says so.
    pub fn tick(&mut self, now: Time) -> Result<()> {
        self.apply(now, Command::Tick).map(drop)
    }

    /// A snapshot of one destination at `now` (timers due by then fire first).
    pub fn stats(&mut self, now: Time, destination: &str) -> Result<DestinationStats> {
        self.state.check_time(now)?;
        self.state.advance(now);
        let d = self.state.resolve(destination)?;
        Ok(self.state.stats(now, d))
    }

    /// Takes the events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.state.out.events)
    }

    /// Moves the events recorded since the last call to the end of `events`. An empty `events`
    /// is swapped with the broker's buffer instead, so a caller that empties the same vector
    /// and passes it back each time lends the broker its memory, and a command then allocates
    /// no buffer of its own for its events.
    pub fn move_events_to(&mut self, events: &mut Vec<Event>) {
        if events.is_empty() {
            std::mem::swap(&mut self.state.out.events, events);
        } else {
            events.append(&mut self.state.out.events);
        }
    }

    /// Discards the events recorded since the last call, keeping the buffer's memory.
    pub fn clear_events(&mut self) {
        self.state.out.events.clear();
    }

    /// The configuration the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The incarnation number: 1 for the first start, one more for each recovery.
    pub fn epoch(&self) -> u32 {
        self.state.epoch
    }

    /// The time of the last command.
    pub fn now(&self) -> Time {
        self.state.now
    }

    /// The id of a destination.
    pub fn destination_id(&self, name: &str) -> Option<DestId> {
        self.state.by_name.get(name).copied()
    }

    /// The name of a destination.
    pub fn destination_name(&self, id: DestId) -> Option<&str> {
        self.state
            .dests
            .get(id.0 as usize)
            .map(|d| d.cfg.name.as_str())
    }

    /// The name of a topic's consumer group; `None` for a queue's subscription or an unknown id.
    pub fn group_name(&self, destination: DestId, group: GroupId) -> Option<&str> {
        self.state
            .dests
            .get(destination.0 as usize)?
            .subs
            .get(group.0 as usize)?
            .name
            .as_deref()
    }

    /// The storage, for inspection.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Stops the broker and hands its storage back, as a crash would leave it (unsynced
    /// records included; crash the storage to lose them).
    pub fn into_storage(self) -> S {
        self.storage
    }
}

/// Each command has exactly one reply shape; this is only reachable if that pairing is broken,
/// which the unit tests would catch. It reports rather than panics.
fn unreachable_reply<T>(reply: Reply) -> Result<T> {
    Err(BrokerError::InvalidArgument {
        what: "reply".into(),
        detail: format!("unexpected reply {reply:?}"),
    })
}

impl State {
    /// Re-applies one synced record during recovery.
    pub(crate) fn replay(&mut self, record: &Record) -> std::result::Result<(), String> {
        match record {
            Record::Applied { at, command } => {
                self.check_time(*at).map_err(|e| e.to_string())?;
                self.advance(*at);
                self.exec(*at, command).map(drop).map_err(|e| e.to_string())
            }
            Record::Recovered { at, epoch } => {
                self.check_time(*at).map_err(|e| e.to_string())?;
                self.advance(*at);
                self.recover(*at, *epoch);
                Ok(())
            }
        }
    }
}
