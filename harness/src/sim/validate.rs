//! Checking a [`ClusterSpec`] before it runs: every bound of [`limits`] and every
//! cross-reference, each error naming the field's path (`producers[1].messages_per_s`).

use mqsim_broker::DestinationKind;

use super::spec::{ClusterSpec, ConsumerSpec, KeySkew, Processing, ProducerSpec, limits};

/// A spec that cannot run, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// Where, as `producers[1].messages_per_s`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

pub(crate) fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        message: message.into(),
    }
}

pub(crate) fn range_u64(path: &str, value: u64, min: u64, max: u64) -> Result<(), SpecError> {
    in_range(path, value, min, max)
}

/// `contains` is false for NaN, so NaN is out of every range, which is what we want.
pub(crate) fn range_f64(path: &str, value: f64, min: f64, max: f64) -> Result<(), SpecError> {
    in_range(path, value, min, max)
}

fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    path: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), SpecError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(err(
            path,
            format!("{value} is out of range ({min} to {max})"),
        ))
    }
}

impl ClusterSpec {
    /// Checks every bound and cross-reference; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SpecError> {
        range_u64("tick_ms", self.tick_ms, 1, limits::MAX_TICK_MS)?;
        range_u64("duration_ms", self.duration_ms, 0, limits::MAX_DURATION_MS)?;
        range_u64(
            "drain_timeout_ms",
            self.drain_timeout_ms,
            1,
            limits::MAX_DRAIN_TIMEOUT_MS,
        )?;
        let n = &self.network;
        range_u64(
            "network.max_latency_ms",
            n.max_latency_ms,
            0,
            limits::MAX_LATENCY_MS,
        )?;
        range_u64(
            "network.min_latency_ms",
            n.min_latency_ms,
            0,
            n.max_latency_ms,
        )?;
        self.broker
            .validate()
            .map_err(|e| err("broker", e.to_string()))?;
        self.validate_client()?;
        let producers: u64 = self.producers.iter().map(|p| u64::from(p.count)).sum();
        let consumers: u64 = self.consumers.iter().map(|c| u64::from(c.count)).sum();
        range_u64("producers (hosts)", producers, 0, limits::MAX_ACTORS.into())?;
        range_u64("consumers (hosts)", consumers, 0, limits::MAX_ACTORS.into())?;
        for (i, p) in self.producers.iter().enumerate() {
            self.validate_producer(&format!("producers[{i}]"), p)?;
        }
        for (i, c) in self.consumers.iter().enumerate() {
            self.validate_consumer(&format!("consumers[{i}]"), c)?;
        }
        if self.faults.len() > limits::MAX_FAULTS {
            return Err(err(
                "faults",
                format!("{} faults exceed {}", self.faults.len(), limits::MAX_FAULTS),
            ));
        }
        let plan = super::plan::Plan::new(self);
        for (i, f) in self.faults.iter().enumerate() {
            f.validate(&format!("faults[{i}]"), &plan, self.duration_ms)?;
        }
        Ok(())
    }

    fn validate_client(&self) -> Result<(), SpecError> {
        let c = &self.client;
        let waits = [
            ("client.request_timeout_ms", c.request_timeout_ms),
            ("client.connect_timeout_ms", c.connect_timeout_ms),
            (
                "client.reconnect_initial_backoff_ms",
                c.reconnect_initial_backoff_ms,
            ),
            (
                "client.reconnect_max_backoff_ms",
                c.reconnect_max_backoff_ms,
            ),
            ("server.tick_interval_ms", self.server.tick_interval_ms),
        ];
        for (path, v) in waits {
            if let Some(v) = v {
                range_u64(path, v, 1, limits::MAX_WAIT_MS)?;
            }
        }
        if let Some(v) = self.server.sync_time_ms {
            range_u64("server.sync_time_ms", v, 0, limits::MAX_SYNC_TIME_MS)?;
        }
        if let Some(v) = c.max_in_flight {
            range_u64(
                "client.max_in_flight",
                v as u64,
                1,
                limits::MAX_IN_FLIGHT.into(),
            )?;
        }
        Ok(())
    }

    fn destination_kind(&self, path: &str, name: &str) -> Result<DestinationKind, SpecError> {
        self.broker
            .destinations
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.kind)
            .ok_or_else(|| err(path, format!("unknown destination `{name}`")))
    }

    fn validate_producer(&self, path: &str, p: &ProducerSpec) -> Result<(), SpecError> {
        self.destination_kind(&format!("{path}.destination"), &p.destination)?;
        let at = |f: &str| format!("{path}.{f}");
        range_u64(&at("count"), p.count.into(), 0, limits::MAX_ACTORS.into())?;
        range_f64(
            &at("messages_per_s"),
            p.messages_per_s,
            0.0,
            limits::MAX_RATE_PER_S,
        )?;
        range_u64(&at("start_ms"), p.start_ms, 0, limits::MAX_DURATION_MS)?;
        if p.rate_changes.len() > limits::MAX_RATE_CHANGES {
            return Err(err(at("rate_changes"), "too many rate changes"));
        }
        let mut last = p.start_ms;
        for (i, c) in p.rate_changes.iter().enumerate() {
            let cp = format!("{path}.rate_changes[{i}]");
            range_u64(
                &format!("{cp}.at_ms"),
                c.at_ms,
                last,
                limits::MAX_DURATION_MS,
            )?;
            range_f64(
                &format!("{cp}.messages_per_s"),
                c.messages_per_s,
                0.0,
                limits::MAX_RATE_PER_S,
            )?;
            last = c.at_ms;
        }
        if let Some(d) = p.duration_ms {
            range_u64(&at("duration_ms"), d, 0, limits::MAX_DURATION_MS)?;
        }
        if let Some(m) = p.messages {
            range_u64(&at("messages"), m, 0, limits::MAX_MESSAGES_PER_PRODUCER)?;
        }
        range_u64(
            &at("keys.count"),
            p.keys.count.into(),
            0,
            limits::MAX_KEYS.into(),
        )?;
        match p.keys.skew {
            KeySkew::Uniform => {}
            KeySkew::Zipf { exponent } => {
                range_f64(&at("keys.skew.exponent"), exponent, 0.0, 10.0)?
            }
            KeySkew::HotKey { fraction } => {
                range_f64(&at("keys.skew.fraction"), fraction, 0.0, 1.0)?
            }
        }
        range_u64(
            &at("payload_bytes"),
            p.payload_bytes.into(),
            super::ids::HEADER_BYTES as u64,
            mqsim_broker::limits::MAX_PAYLOAD_BYTES.into(),
        )?;
        range_f64(&at("poison_fraction"), p.poison_fraction, 0.0, 1.0)?;
        let r = &p.retry;
        range_u64(
            &at("retry.max_attempts"),
            r.max_attempts.into(),
            1,
            limits::MAX_ATTEMPTS.into(),
        )?;
        range_u64(
            &at("retry.max_backoff_ms"),
            r.max_backoff_ms,
            0,
            limits::MAX_WAIT_MS,
        )?;
        range_u64(
            &at("retry.initial_backoff_ms"),
            r.initial_backoff_ms,
            0,
            r.max_backoff_ms,
        )?;
        range_f64(&at("retry.multiplier"), r.multiplier, 1.0, 100.0)?;
        range_u64(
            &at("max_in_flight"),
            p.max_in_flight.into(),
            1,
            limits::MAX_IN_FLIGHT.into(),
        )?;
        Ok(())
    }

    fn validate_consumer(&self, path: &str, c: &ConsumerSpec) -> Result<(), SpecError> {
        let at = |f: &str| format!("{path}.{f}");
        let kind = self.destination_kind(&at("destination"), &c.destination)?;
        match (kind, &c.group) {
            (DestinationKind::Queue, Some(_)) => {
                return Err(err(at("group"), "a queue has no consumer groups"));
            }
            (DestinationKind::Topic, None) => {
                return Err(err(at("group"), "a topic needs a consumer group"));
            }
            (DestinationKind::Topic, Some(g)) => {
                let known = self
                    .broker
                    .destinations
                    .iter()
                    .filter(|d| d.name == c.destination)
                    .flat_map(|d| &d.groups)
                    .any(|cfg| &cfg.name == g);
                if !known {
                    return Err(err(
                        at("group"),
                        format!(
                            "`{g}` is not a group of `{}` in the broker config",
                            c.destination
                        ),
                    ));
                }
            }
            (DestinationKind::Queue, None) => {}
        }
        range_u64(&at("count"), c.count.into(), 0, limits::MAX_ACTORS.into())?;
        range_u64(
            &at("max_messages"),
            c.max_messages.into(),
            1,
            mqsim_broker::limits::MAX_RECEIVE_BATCH.into(),
        )?;
        if let Some(v) = c.visibility_timeout_ms {
            range_u64(
                &at("visibility_timeout_ms"),
                v,
                1,
                mqsim_broker::limits::MAX_VISIBILITY_TIMEOUT_MS,
            )?;
        }
        range_u64(
            &at("poll_interval_ms"),
            c.poll_interval_ms,
            1,
            limits::MAX_WAIT_MS,
        )?;
        match c.processing {
            Processing::Constant { .. } => {}
            Processing::Uniform { min_ms, max_ms } => {
                range_u64(&at("processing.min_ms"), min_ms, 0, max_ms)?
            }
            Processing::Exponential { mean_ms, max_ms } => {
                range_u64(&at("processing.mean_ms"), mean_ms, 0, max_ms)?
            }
        }
        range_u64(
            &at("processing.max_ms"),
            c.processing.max_ms(),
            0,
            limits::MAX_WAIT_MS,
        )?;
        range_f64(&at("failure_probability"), c.failure_probability, 0.0, 1.0)?;
        let k = &c.crash;
        range_f64(
            &at("crash.before_effect_probability"),
            k.before_effect_probability,
            0.0,
            1.0,
        )?;
        range_f64(
            &at("crash.after_effect_probability"),
            k.after_effect_probability,
            0.0,
            1.0,
        )?;
        range_u64(
            &at("crash.restart_after_ms"),
            k.restart_after_ms,
            0,
            limits::MAX_WAIT_MS,
        )?;
        range_u64(
            &at("crash.max_crashes"),
            k.max_crashes.into(),
            0,
            limits::MAX_SELF_CRASHES.into(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde shape a scenario file will map onto: units in names, tagged enums, defaults.
    const SPEC: &str = r#"{
        "seed": 7,
        "duration_ms": 1000,
        "drain_timeout_ms": 2000,
        "transport": "local",
        "broker": {
            "durability": {"policy": "interval", "sync_interval_ms": 50},
            "destinations": [{"name": "q", "max_deliveries": 3, "dead_letter": "dlq"}, {"name": "dlq"}]
        },
        "producers": [{
            "count": 2, "destination": "q", "messages_per_s": 100.0,
            "keys": {"count": 8, "skew": {"kind": "zipf", "exponent": 1.2}},
            "rate_changes": [{"at_ms": 500, "messages_per_s": 0.0}]
        }],
        "consumers": [{
            "destination": "q", "ack_mode": "explicit",
            "processing": {"kind": "exponential", "mean_ms": 2, "max_ms": 20},
            "crash": {"after_effect_probability": 0.01}
        }],
        "faults": [
            {"at_ms": 100, "for_ms": 200, "fault": {"crash": {"hosts": ["broker"]}}},
            {"at_ms": 300, "fault": {"partition": {"a": ["producers"], "b": ["broker"], "one_way": true}}},
            {"at_ms": 400, "for_ms": 100, "fault": {"slow": {"hosts": ["group:q"], "factor": 4.0}}}
        ]
    }"#;

    #[test]
    fn a_spec_deserializes_and_validates() {
        let spec: ClusterSpec = serde_json::from_str(SPEC).unwrap();
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.tick_ms, 1);
        assert_eq!(spec.faults[1].for_ms, None);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_with_their_path() {
        let typo = SPEC.replace("\"messages_per_s\": 100.0", "\"messages_per_sec\": 100.0");
        assert!(serde_json::from_str::<ClusterSpec>(&typo).is_err());
        let mut spec: ClusterSpec = serde_json::from_str(SPEC).unwrap();
        spec.consumers[0].failure_probability = 1.5;
        let e = spec.validate().unwrap_err();
        assert_eq!(e.path, "consumers[0].failure_probability");
        let mut spec: ClusterSpec = serde_json::from_str(SPEC).unwrap();
        spec.faults[0].at_ms = 5000;
        assert_eq!(spec.validate().unwrap_err().path, "faults[0].at_ms");
        let mut spec: ClusterSpec = serde_json::from_str(SPEC).unwrap();
        spec.faults[2].fault = super::super::Fault::Slow {
            hosts: vec!["producer-0".into()],
            factor: 2.0,
        };
        assert_eq!(
            spec.validate().unwrap_err().path,
            "faults[2].fault.slow.hosts"
        );
    }
}
