//! The broker as a whole around the model's world: the durability policy, crashes and restarts.

use std::rc::Rc;

use mqsim_broker::{
    AckMode, BrokerConfig, BrokerError, Confirm, DestinationStats, Durability, PublishRequest,
};

use super::{Dest, Seen, Status, World};

/// The broker as a whole: the live world, what a crash would come back to, and the disk's
/// boot counter.
#[derive(Debug)]
pub struct Model {
    world: World,
    /// The world as of the last sync: what a crash rolls back to.
    durable: World,
    durability: Durability,
    last_sync: u64,
    /// How many times a broker was opened on the disk; survives crashes, like a boot counter.
    boots: u32,
    /// Lease handles are never reused, not even after a crash rolled the world back.
    next_lease: usize,
}

impl Model {
    /// The model of a broker opened at time 0 on an empty disk.
    pub fn new(config: &BrokerConfig) -> Model {
        let dests: Rc<[Dest]> = config
            .destinations
            .iter()
            .map(|c| Dest::from_config(&config.destinations, c))
            .collect();
        let world = World::fresh(dests, 0, 1);
        Model {
            durable: world.clone(),
            world,
            durability: config.durability,
            last_sync: 0,
            boots: 1,
            next_lease: 0,
        }
    }

    pub fn epoch(&self) -> u32 {
        self.world.epoch
    }

    /// The handles of the leases held now, oldest first.
    pub fn live_leases(&self) -> Vec<usize> {
        let mut live: Vec<usize> = self
            .world
            .msgs
            .iter()
            .flat_map(|m| m.claims.iter().flatten())
            .filter_map(|c| match c.status {
                Status::Leased { lease, .. } => Some(lease),
                _ => None,
            })
            .collect();
        live.sort_unstable();
        live
    }

    /// What happens after every command, whatever its outcome: under `always` the broker syncs
    /// whatever the command changed, so the durable world is the live one; under `interval` it
    /// syncs when the interval has passed since the last sync, the command's own record
    /// included.
    ///
    /// Remembering the whole world at a sync stands for replaying the synced log: a command
    /// that is not logged (a tick, an empty receive, a refused command) changes nothing, and
    /// what timers did between commands is redone when time catches up after a crash, since
    /// each timer's effect depends only on the state and its own deadline.
    fn after_command(&mut self, now: u64) {
        match self.durability {
            Durability::Always => self.durable = self.world.clone(),
            Durability::Interval { sync_interval_ms } => {
                if now >= self.last_sync + sync_interval_ms {
                    self.durable = self.world.clone();
                    self.last_sync = now;
                }
            }
            Durability::None => {}
        }
    }

    /// Runs one command at `now`: timers due by then fire first, then the command, then the
    /// durability policy.
    fn command<T>(&mut self, now: u64, f: impl FnOnce(&mut World, &mut usize) -> T) -> T {
        self.world.advance(now);
        let out = f(&mut self.world, &mut self.next_lease);
        self.after_command(now);
        out
    }

    pub fn publish(
        &mut self,
        now: u64,
        name: &str,
        req: &PublishRequest,
    ) -> Result<Confirm, BrokerError> {
        self.command(now, |w, _| w.publish(name, req))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &mut self,
        now: u64,
        name: &str,
        group: Option<&str>,
        consumer: u64,
        max_messages: u32,
        visibility_ms: Option<u64>,
        mode: AckMode,
    ) -> Result<Vec<Seen>, BrokerError> {
        self.command(now, |w, leases| {
            w.receive(
                name,
                group,
                consumer,
                max_messages,
                visibility_ms,
                mode,
                leases,
            )
        })
    }

    pub fn ack(&mut self, now: u64, lease: Option<usize>) -> Result<(), BrokerError> {
        self.command(now, |w, _| w.ack(lease))
    }

    pub fn nack(
        &mut self,
        now: u64,
        lease: Option<usize>,
        delay_ms: Option<u64>,
    ) -> Result<(), BrokerError> {
        self.command(now, |w, _| w.nack(lease, delay_ms))
    }

    pub fn extend(
        &mut self,
        now: u64,
        lease: Option<usize>,
        visibility_ms: u64,
    ) -> Result<(), BrokerError> {
        self.command(now, |w, _| w.extend(lease, visibility_ms))
    }

    pub fn redrive(&mut self, now: u64, name: &str, max: u32) -> Result<u32, BrokerError> {
        self.command(now, |w, _| w.redrive(name, max))
    }

    pub fn tick(&mut self, now: u64) {
        self.command(now, |_, _| ());
    }

    /// A stats query fires due timers but is not a command: it neither logs nor syncs.
    pub fn stats(&mut self, now: u64, name: &str) -> Result<DestinationStats, BrokerError> {
        self.world.advance(now);
        let d = self.world.dest_index(name)?;
        Ok(self.world.stats(d))
    }

    /// The process stops at `now` and starts again on a disk that did not crash: everything it
    /// wrote is still there (a process's writes outlive it in the page cache even unsynced), so
    /// nothing rolls back; otherwise it is a restart like any other.
    pub fn restart(&mut self, now: u64) {
        self.durable = self.world.clone();
        self.crash_and_recover(now);
    }

    /// A crash at `now` followed by a restart: the world rolls back to the last sync (to
    /// nothing under `none`), time catches up, the new incarnation takes the next boot number
    /// and its own range of message ids, and every lease still held ends as a failed delivery.
    /// The recovered state is synced at once.
    pub fn crash_and_recover(&mut self, now: u64) {
        self.boots += 1;
        let mut world = match self.durability {
            Durability::None => World::fresh(self.world.dests.clone(), now, self.boots),
            _ => self.durable.clone(),
        };
        world.advance(now);
        world.release_leases(now);
        world.epoch = self.boots;
        world.ids_issued = 0;
        self.world = world;
        self.durable = self.world.clone();
        self.last_sync = now;
    }
}
