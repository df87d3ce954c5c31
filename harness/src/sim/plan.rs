//! Who is who in a run: process numbers, host names and subscriptions, derived from the spec.
//!
//! Every actor, history entry and fault refers to processes and subscriptions by small
//! numbers; this table turns them back into names. Process numbers are fixed by the spec's
//! order, so they are the same in every run of a spec.

use mqsim_broker::{BrokerConfig, DestinationKind};

use super::spec::ClusterSpec;

/// A process number: an index into [`Plan::processes`].
pub type Process = u16;
/// A subscription number: an index into [`Plan::subs`].
pub type SubIndex = u16;

/// The harness itself: phase changes.
pub const HARNESS: Process = 0;
/// The fault schedule.
pub const NEMESIS: Process = 1;
/// The broker host.
pub const BROKER: Process = 2;
/// Marks "no subscription" in compact records.
pub const NO_SUB: SubIndex = SubIndex::MAX;

/// One subscription: a queue's only one, or one consumer group of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    /// The destination's name.
    pub destination: String,
    /// The group's name; `None` for a queue.
    pub group: Option<String>,
}

/// A producer host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSlot {
    /// Its process number.
    pub process: Process,
    /// Index into `ClusterSpec::producers`.
    pub spec: usize,
    /// Index among all producer hosts: the high half of its message ids.
    pub index: u32,
    /// Where it publishes: an index into [`Plan::destinations`].
    pub destination: u16,
}

/// A consumer host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSlot {
    /// Its process number.
    pub process: Process,
    /// Index into `ClusterSpec::consumers`.
    pub spec: usize,
    /// Index among all consumer hosts.
    pub index: u32,
    /// What it consumes.
    pub sub: SubIndex,
}

/// The processes and subscriptions of one spec.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Process names; hosts are named so too.
    pub processes: Vec<String>,
    /// Producer hosts in process order.
    pub producers: Vec<ProducerSlot>,
    /// Consumer hosts in process order.
    pub consumers: Vec<ConsumerSlot>,
    /// Destination names in config order (the broker's `DestId`).
    pub destinations: Vec<String>,
    /// Every subscription the broker config declares, destination by destination.
    pub subs: Vec<Sub>,
    /// Per destination (config order, which is the broker's `DestId`), its subscriptions in
    /// the broker's `GroupId` order.
    by_dest: Vec<Vec<SubIndex>>,
}

impl Plan {
    /// The plan of a spec. An unknown destination or group (which `validate` refuses) maps to
    /// [`NO_SUB`] rather than failing here.
    pub fn new(spec: &ClusterSpec) -> Plan {
        let mut processes = vec![
            "harness".to_owned(),
            "nemesis".to_owned(),
            "broker".to_owned(),
        ];
        let (subs, by_dest) = subscriptions(&spec.broker);
        let destinations: Vec<String> = spec
            .broker
            .destinations
            .iter()
            .map(|d| d.name.clone())
            .collect();
        let mut producers = Vec::new();
        for (s, p) in spec.producers.iter().enumerate() {
            let destination = destinations
                .iter()
                .position(|d| *d == p.destination)
                .map_or(u16::MAX, |i| i as u16);
            for _ in 0..p.count {
                let index = producers.len() as u32;
                producers.push(ProducerSlot {
                    process: processes.len() as Process,
                    spec: s,
                    index,
                    destination,
                });
                processes.push(format!("producer-{index}"));
            }
        }
        let mut consumers = Vec::new();
        for (s, c) in spec.consumers.iter().enumerate() {
            let sub = subs
                .iter()
                .position(|x| x.destination == c.destination && x.group == c.group)
                .map_or(NO_SUB, |i| i as SubIndex);
            for _ in 0..c.count {
                let index = consumers.len() as u32;
                consumers.push(ConsumerSlot {
                    process: processes.len() as Process,
                    spec: s,
                    index,
                    sub,
                });
                processes.push(format!("consumer-{index}"));
            }
        }
        Plan {
            processes,
            producers,
            consumers,
            destinations,
            subs,
            by_dest,
        }
    }

    /// The name of a process.
    pub fn name(&self, p: Process) -> &str {
        self.processes
            .get(usize::from(p))
            .map_or("?", String::as_str)
    }

    /// Processes that are turmoil hosts: the broker and every actor.
    pub fn hosts(&self) -> impl Iterator<Item = Process> + '_ {
        BROKER..self.processes.len() as Process
    }

    /// The producer slot of a process, if it is a producer. Producers have consecutive
    /// process numbers right after the broker, so this is an index, not a search: it runs for
    /// every history entry a summary or the file form looks at.
    pub fn producer(&self, p: Process) -> Option<&ProducerSlot> {
        let i = usize::from(p).checked_sub(usize::from(BROKER) + 1)?;
        self.producers.get(i)
    }

    /// The consumer slot of a process, if it is a consumer (they follow the producers).
    pub fn consumer(&self, p: Process) -> Option<&ConsumerSlot> {
        let i = usize::from(p).checked_sub(usize::from(BROKER) + 1 + self.producers.len())?;
        self.consumers.get(i)
    }

    /// The subscription the broker calls (`destination`, `group`).
    pub fn sub_of(&self, destination: u32, group: u32) -> SubIndex {
        self.by_dest
            .get(destination as usize)
            .and_then(|g| g.get(group as usize))
            .copied()
            .unwrap_or(NO_SUB)
    }

    /// The subscriptions a message published to destination number `destination` must reach:
    /// the queue's one, or every configured group of the topic.
    pub fn subs_of(&self, destination: u16) -> &[SubIndex] {
        self.by_dest
            .get(usize::from(destination))
            .map_or(&[], Vec::as_slice)
    }

    /// The processes a fault's host selector names, in process order, or `None` when it names
    /// nothing known. Selectors: a host name (`broker`, `producer-0`, `consumer-3`), `producers`,
    /// `consumers`, `clients` (both), or `group:NAME` (the consumers of a topic group, or of a
    /// queue, by name).
    pub fn select(&self, selector: &str) -> Option<Vec<Process>> {
        let all = |v: &[Process]| Some(v.to_vec());
        let producers: Vec<Process> = self.producers.iter().map(|s| s.process).collect();
        let consumers: Vec<Process> = self.consumers.iter().map(|s| s.process).collect();
        match selector {
            "producers" => all(&producers),
            "consumers" => all(&consumers),
            "clients" => {
                let mut v = producers;
                v.extend(consumers);
                Some(v)
            }
            _ => {
                if let Some(group) = selector.strip_prefix("group:") {
                    let v: Vec<Process> = self
                        .consumers
                        .iter()
                        .filter(|c| {
                            self.subs.get(usize::from(c.sub)).is_some_and(|s| {
                                s.group.as_deref().unwrap_or(&s.destination) == group
                            })
                        })
                        .map(|c| c.process)
                        .collect();
                    return (!v.is_empty()).then_some(v);
                }
                let p = self.processes.iter().position(|n| n == selector)?;
                (p >= usize::from(BROKER)).then_some(vec![p as Process])
            }
        }
    }
}

/// The subscriptions of a broker config: a queue has one, a topic one per configured group, in
/// the order the broker numbers them.
fn subscriptions(config: &BrokerConfig) -> (Vec<Sub>, Vec<Vec<SubIndex>>) {
    let mut subs = Vec::new();
    let mut by_dest = Vec::new();
    for d in &config.destinations {
        let mut mine = Vec::new();
        match d.kind {
            DestinationKind::Queue => {
                mine.push(subs.len() as SubIndex);
                subs.push(Sub {
                    destination: d.name.clone(),
                    group: None,
                });
            }
            DestinationKind::Topic => {
                for g in &d.groups {
                    mine.push(subs.len() as SubIndex);
                    subs.push(Sub {
                        destination: d.name.clone(),
                        group: Some(g.name.clone()),
                    });
                }
            }
        }
        by_dest.push(mine);
    }
    (subs, by_dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::spec::{ConsumerSpec, ProducerSpec};
    use mqsim_broker::{DestinationConfig, Durability, GroupConfig, StartPosition};

    #[test]
    fn processes_subscriptions_and_selectors() {
        let topic = DestinationConfig {
            groups: ["a", "b"]
                .iter()
                .map(|g| GroupConfig {
                    name: (*g).into(),
                    start: StartPosition::Earliest,
                })
                .collect(),
            ..DestinationConfig::topic("t", &[])
        };
        let spec = ClusterSpec {
            seed: 0,
            tick_ms: 1,
            duration_ms: 10,
            drain_timeout_ms: 10,
            transport: Default::default(),
            network: Default::default(),
            broker: BrokerConfig::new(
                Durability::Always,
                vec![DestinationConfig::queue("q"), topic],
            ),
            server: Default::default(),
            client: Default::default(),
            producers: vec![ProducerSpec {
                count: 2,
                destination: "t".into(),
                ..ProducerSpec::default()
            }],
            consumers: vec![
                ConsumerSpec {
                    destination: "q".into(),
                    ..ConsumerSpec::default()
                },
                ConsumerSpec {
                    count: 2,
                    destination: "t".into(),
                    group: Some("b".into()),
                    ..ConsumerSpec::default()
                },
            ],
            faults: Vec::new(),
        };
        let plan = Plan::new(&spec);
        assert_eq!(plan.name(3), "producer-0");
        assert_eq!(plan.name(5), "consumer-0");
        assert_eq!(plan.producer(4).map(|s| s.index), Some(1));
        assert_eq!(plan.producer(5), None);
        assert_eq!(plan.consumer(7).map(|s| (s.index, s.sub)), Some((2, 2)));
        assert_eq!(plan.consumer(2), None);
        assert_eq!(plan.subs_of(1), &[1, 2]);
        assert_eq!(plan.sub_of(1, 1), 2);
        assert_eq!(plan.sub_of(0, 1), NO_SUB);
        assert_eq!(plan.select("group:b"), Some(vec![6, 7]));
        assert_eq!(plan.select("group:q"), Some(vec![5]));
        assert_eq!(plan.select("clients"), Some(vec![3, 4, 5, 6, 7]));
        assert_eq!(plan.select("broker"), Some(vec![BROKER]));
        assert_eq!(plan.select("nemesis"), None);
        assert_eq!(plan.select("group:zzz"), None);
    }
}
