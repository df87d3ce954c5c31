//! From the file's sections to a [`ClusterSpec`]: durations to milliseconds, rates to
//! messages per second, the file's tagged choices to the spec's enums. Nothing is checked
//! here; `errors.rs` validates the result.

use super::ScenarioDoc;
use super::format::{FaultKindDoc, KeySkewDoc, ProcessingDoc};
use super::units::HumanDuration;
use crate::sim::nemesis::{Fault, FaultSpec};
use crate::sim::spec::{
    ClientSpec, ClusterSpec, ConsumerSpec, CrashSpec, KeySkew, KeySpec, NetworkSpec, Processing,
    ProducerSpec, PublishRetry, RateChange, ServerSpec,
};

fn ms(duration: HumanDuration) -> u64 {
    duration.as_ms()
}

impl ScenarioDoc {
    /// The cluster this scenario describes (not yet validated).
    pub fn to_spec(&self) -> ClusterSpec {
        ClusterSpec {
            seed: self.seed,
            tick_ms: ms(self.tick),
            duration_ms: ms(self.duration),
            drain_timeout_ms: ms(self.drain.timeout),
            transport: self.transport,
            network: NetworkSpec {
                min_latency_ms: ms(self.network.latency.min),
                max_latency_ms: ms(self.network.latency.max),
            },
            broker: self.broker.to_config(),
            server: ServerSpec {
                tick_interval_ms: self.server.tick_interval.map(ms),
                max_connections: self.server.max_connections,
                max_pending_requests: self.server.max_pending_requests,
                sync_time_ms: self.server.sync_time.map(ms),
            },
            client: ClientSpec {
                request_timeout_ms: self.client.request_timeout.map(ms),
                connect_timeout_ms: self.client.connect_timeout.map(ms),
                reconnect_initial_backoff_ms: self.client.reconnect_initial_backoff.map(ms),
                reconnect_max_backoff_ms: self.client.reconnect_max_backoff.map(ms),
                max_in_flight: self.client.max_in_flight,
            },
            producers: self.producers.iter().map(producer).collect(),
            consumers: self.consumers.iter().map(consumer).collect(),
            faults: self.faults.iter().map(fault).collect(),
        }
    }
}

fn producer(p: &super::format::ProducerDoc) -> ProducerSpec {
    ProducerSpec {
        count: p.count,
        destination: p.destination.clone(),
        messages_per_s: p.rate.per_s(),
        start_ms: ms(p.start),
        rate_changes: p
            .rate_changes
            .iter()
            .map(|c| RateChange {
                at_ms: ms(c.at),
                messages_per_s: c.rate.per_s(),
            })
            .collect(),
        messages: p.messages,
        duration_ms: p.duration.map(ms),
        keys: KeySpec {
            count: p.keys.count,
            skew: match p.keys.skew {
                KeySkewDoc::Uniform => KeySkew::Uniform,
                KeySkewDoc::Zipf { exponent } => KeySkew::Zipf { exponent },
                KeySkewDoc::HotKey { fraction } => KeySkew::HotKey { fraction },
            },
        },
        payload_bytes: p.payload_bytes,
        poison_fraction: p.poison_fraction,
        dedup_ids: p.dedup_ids,
        retry: PublishRetry {
            max_attempts: p.retry.max_attempts,
            initial_backoff_ms: ms(p.retry.initial_backoff),
            multiplier: p.retry.multiplier,
            max_backoff_ms: ms(p.retry.max_backoff),
            retry_indeterminate: p.retry.retry_indeterminate,
        },
        max_in_flight: p.max_in_flight,
    }
}

fn consumer(c: &super::format::ConsumerDoc) -> ConsumerSpec {
    ConsumerSpec {
        count: c.count,
        destination: c.destination.clone(),
        group: c.group.clone(),
        max_messages: c.max_messages,
        visibility_timeout_ms: c.visibility_timeout.map(ms),
        poll_interval_ms: ms(c.poll_interval),
        processing: match c.processing {
            ProcessingDoc::Constant { time } => Processing::Constant { ms: ms(time) },
            ProcessingDoc::Uniform { min, max } => Processing::Uniform {
                min_ms: ms(min),
                max_ms: ms(max),
            },
            ProcessingDoc::Exponential { mean, max } => Processing::Exponential {
                mean_ms: ms(mean),
                max_ms: ms(max),
            },
        },
        failure_probability: c.failure_probability,
        ack_mode: c.ack_mode,
        idempotent_sink: c.idempotent_sink,
        crash: CrashSpec {
            before_effect_probability: c.crash.before_effect_probability,
            after_effect_probability: c.crash.after_effect_probability,
            restart_after_ms: ms(c.crash.restart_after),
            max_crashes: c.crash.max_crashes,
        },
    }
}

fn fault(f: &super::format::FaultDoc) -> FaultSpec {
    let fault = match &f.fault {
        FaultKindDoc::Crash { hosts } => Fault::Crash {
            hosts: hosts.clone(),
        },
        FaultKindDoc::Partition { a, b, one_way } => Fault::Partition {
            a: a.clone(),
            b: b.clone(),
            one_way: *one_way,
        },
        FaultKindDoc::Latency { a, b, latency } => Fault::Latency {
            a: a.clone(),
            b: b.clone(),
            latency_ms: ms(*latency),
        },
        FaultKindDoc::Hold { a, b } => Fault::Hold {
            a: a.clone(),
            b: b.clone(),
        },
        FaultKindDoc::Slow { hosts, factor } => Fault::Slow {
            hosts: hosts.clone(),
            factor: *factor,
        },
        FaultKindDoc::Pause { hosts } => Fault::Pause {
            hosts: hosts.clone(),
        },
    };
    FaultSpec {
        at_ms: ms(f.at),
        for_ms: f.lasts.map(ms),
        fault,
    }
}
