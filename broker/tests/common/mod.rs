//! Helpers shared by the broker's integration tests (`mod common;` in each test file). Only
//! helpers that were the same in several files live here; a helper that differs in substance
//! from file to file (durability, consumer id, what it returns) stays in its file or takes the
//! difference as a parameter.

// Each test file is its own crate and uses only some of these helpers, so the rest would be
// reported as dead code in that crate.
#![allow(dead_code)]

use mqsim_broker::*;

pub fn t(ms: u64) -> Time {
    Time::from_ms(ms)
}

/// A broker with the given durability and destinations, started at time zero on a fresh disk.
pub fn broker_with(durability: Durability, destinations: Vec<DestinationConfig>) -> Broker {
    let config = BrokerConfig::new(durability, destinations);
    Broker::open(config, MemDisk::new(), t(0)).unwrap()
}

/// A queue whose leases last 100 ms, so that expiries happen at round, readable times.
pub fn queue(name: &str) -> DestinationConfig {
    DestinationConfig {
        visibility_timeout_ms: 100,
        ..DestinationConfig::queue(name)
    }
}

pub fn publish(b: &mut Broker, ms: u64, dest: &str, payload: &'static str) -> Confirm {
    b.publish(t(ms), dest, PublishRequest::new(payload))
        .unwrap()
}

/// Receives up to 100 messages with explicit acknowledgement as consumer 1.
pub fn receive(b: &mut Broker, ms: u64, dest: &str, group: Option<&str>) -> Vec<Delivery> {
    b.receive(t(ms), dest, group, ConsumerId(1), 100, AckMode::Explicit)
        .unwrap()
}

pub fn ids(deliveries: &[Delivery]) -> Vec<MessageId> {
    deliveries.iter().map(|d| d.message_id).collect()
}

pub fn counts(deliveries: &[Delivery]) -> Vec<u32> {
    deliveries.iter().map(|d| d.delivery_count).collect()
}

pub fn receipt(d: &Delivery) -> Receipt {
    d.receipt
        .expect("an explicit-ack delivery carries a receipt")
}

pub fn slot(dest: u32, partition: u32, offset: u64) -> Slot {
    Slot {
        destination: DestId(dest),
        partition,
        offset,
    }
}
