//! The interface between workload actors and a broker.
//!
//! Actors, checkers and reports only ever see this interface, so an adapter to another broker
//! (Redis Streams, RabbitMQ, NATS, ...) plugs in by implementing [`Driver::call`] for the
//! commands it supports, without touching them.

use mqsim_broker::{
    AckMode, BrokerError, Command, Confirm, ConsumerId, Delivery, PublishRequest, Receipt, Reply,
};

/// How an operation ended, as a history records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// It happened, with this result.
    Ok(T),
    /// It definitely did not happen.
    Fail(Failure),
    /// Nobody knows whether it happened (a timeout, a connection lost after sending). It is
    /// reported as such and never guessed.
    Info(Indeterminate),
}

/// Why an operation definitely did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The broker refused it.
    #[error("{0}")]
    Broker(BrokerError),
    /// It was never sent: no connection could be made.
    #[error("not sent: {0}")]
    Unavailable(String),
}

/// Why an operation's outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Indeterminate {
    /// No answer within the request timeout.
    #[error("timed out")]
    Timeout,
    /// The connection failed after the request was sent.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The broker answered with something that does not fit the request.
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl<T> Outcome<T> {
    /// Maps the success value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Ok(v) => Outcome::Ok(f(v)),
            Outcome::Fail(e) => Outcome::Fail(e),
            Outcome::Info(i) => Outcome::Info(i),
        }
    }

    /// The success value, if any.
    pub fn ok(self) -> Option<T> {
        match self {
            Outcome::Ok(v) => Some(v),
            _ => None,
        }
    }
}

/// A connection to a broker that carries commands.
#[allow(async_fn_in_trait)]
pub trait Driver {
    /// Sends one command and waits for its outcome. Several calls may be in flight at once.
    async fn call(&self, command: Command) -> Outcome<Reply>;
}

fn expect<T>(outcome: Outcome<Reply>, pick: impl FnOnce(Reply) -> Result<T, Reply>) -> Outcome<T> {
    match outcome {
        Outcome::Ok(reply) => match pick(reply) {
            Ok(v) => Outcome::Ok(v),
            Err(other) => Outcome::Info(Indeterminate::Protocol(format!("{other:?}"))),
        },
        Outcome::Fail(e) => Outcome::Fail(e),
        Outcome::Info(i) => Outcome::Info(i),
    }
}

/// Typed operations over any [`Driver`].
#[allow(async_fn_in_trait)]
pub trait DriverExt: Driver {
    /// Publishes a message.
    async fn publish(&self, destination: &str, request: PublishRequest) -> Outcome<Confirm> {
        let command = Command::Publish {
            destination: destination.to_owned(),
            request,
        };
        expect(self.call(command).await, |r| match r {
            Reply::Published { confirm } => Ok(confirm),
            other => Err(other),
        })
    }

    /// Publishes up to 1024 messages to one destination in one request. Each has its own
    /// result, in order; the outcome as a whole is indeterminate or failed only when the
    /// request is.
    async fn publish_batch(
        &self,
        destination: &str,
        requests: Vec<PublishRequest>,
    ) -> Outcome<Vec<Result<Confirm, BrokerError>>> {
        let n = requests.len();
        let command = Command::PublishBatch {
            destination: destination.to_owned(),
            requests,
        };
        expect(self.call(command).await, |r| match r {
            Reply::PublishedBatch { results } if results.len() == n => Ok(results),
            other => Err(other),
        })
    }

    /// Receives up to `max_messages`.
    async fn receive(
        &self,
        destination: &str,
        group: Option<&str>,
        consumer: ConsumerId,
        max_messages: u32,
        visibility_timeout_ms: Option<u64>,
        ack_mode: AckMode,
    ) -> Outcome<Vec<Delivery>> {
        let command = Command::Receive {
            destination: destination.to_owned(),
            group: group.map(str::to_owned),
            consumer,
            max_messages,
            visibility_timeout_ms,
            ack_mode,
        };
        expect(self.call(command).await, |r| match r {
            Reply::Delivered { deliveries } => Ok(deliveries),
            other => Err(other),
        })
    }

    /// Acknowledges a delivery.
    async fn ack(&self, receipt: Receipt) -> Outcome<()> {
        done(self.call(Command::Ack { receipt }).await)
    }

    /// Acknowledges up to 1024 deliveries in one request, each on its own (not atomically).
    /// Each has its own result, in order.
    async fn ack_batch(&self, receipts: Vec<Receipt>) -> Outcome<Vec<Result<(), BrokerError>>> {
        let n = receipts.len();
        expect(
            self.call(Command::AckBatch { receipts }).await,
            |r| match r {
                Reply::Acked { results } if results.len() == n => Ok(results),
                other => Err(other),
            },
        )
    }

    /// Gives a delivery back.
    async fn nack(&self, receipt: Receipt, requeue_delay_ms: Option<u64>) -> Outcome<()> {
        done(
            self.call(Command::Nack {
                receipt,
                requeue_delay_ms,
            })
            .await,
        )
    }

    /// Extends a lease.
    async fn extend(&self, receipt: Receipt, visibility_timeout_ms: u64) -> Outcome<()> {
        done(
            self.call(Command::ExtendVisibility {
                receipt,
                visibility_timeout_ms,
            })
            .await,
        )
    }

    /// Acknowledges and publishes atomically (consume-transform-produce).
    async fn transaction(
        &self,
        acks: Vec<Receipt>,
        publishes: Vec<(String, PublishRequest)>,
    ) -> Outcome<Vec<Confirm>> {
        expect(
            self.call(Command::Commit { acks, publishes }).await,
            |r| match r {
                Reply::Committed { confirms } => Ok(confirms),
                other => Err(other),
            },
        )
    }
}

fn done(outcome: Outcome<Reply>) -> Outcome<()> {
    expect(outcome, |r| match r {
        Reply::Done => Ok(()),
        other => Err(other),
    })
}

impl<D: Driver + ?Sized> DriverExt for D {}
