//! One established connection: the handshake that opens it, a writer task that sends every
//! frame queued since its last write in one write, and a reader task that hands each response
//! to the call waiting for it, and a sweeper task that times out requests, sleeping until the
//! first pending deadline.
//!
//! The tasks are local (`spawn_local`): the client is single-threaded by design, because the
//! simulator runs every host on one thread and determinism forbids real threads anyway.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;
use mqsim_broker::{BrokerError, Command, Reply};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::ClientStats;
use crate::net::{Connector, Stream};
use crate::wire::{ClientFrame, FrameReader, PROTOCOL_VERSION, ServerFrame, WireError, encode};

/// What became of a queued request.
#[derive(Debug)]
pub(super) enum Answer {
    /// The broker answered.
    Reply(Result<Reply, BrokerError>),
    /// The connection ended after the request was handed to the writer: it may or may not have
    /// reached the broker.
    Lost(String),
    /// The connection ended while the request was still in the outbox: no byte of it left
    /// this process, so it definitely did not happen.
    NotSent(String),
    /// No answer came by the request's deadline.
    TimedOut,
}

/// The two halves of a connection that has completed the handshake.
pub(super) type Halves<S> = (FrameReader<<S as Stream>::Read>, <S as Stream>::Write);

/// Connects to `addr`, says `Hello` and waits for `Welcome`. Anything else, including
/// `Goodbye`, is a failed attempt, described by the `Err` string.
pub(super) async fn handshake<C: Connector>(
    connector: &C,
    addr: &str,
    name: &str,
) -> Result<Halves<C::Stream>, String> {
    let stream = connector
        .connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr} failed: {e}"))?;
    let (read, mut write) = stream.into_halves();
    let hello = ClientFrame::Hello {
        version: PROTOCOL_VERSION,
        client: name.to_owned(),
    };
    let mut out = Vec::new();
    encode(&hello, &mut out).map_err(|e| format!("cannot encode Hello: {e}"))?;
    write
        .write_all(&out)
        .await
        .map_err(|e| format!("sending Hello to {addr} failed: {e}"))?;
    let mut frames = FrameReader::new(read);
    match frames.next::<ServerFrame>().await {
        Ok(Some(ServerFrame::Welcome { .. })) => Ok((frames, write)),
        Ok(Some(ServerFrame::Goodbye { reason })) => {
            Err(format!("{addr} refused the handshake: {reason}"))
        }
        Ok(Some(ServerFrame::Response { id, .. })) => Err(format!(
            "{addr} answered Hello with a response to request {id}"
        )),
        Ok(None) => Err(format!("{addr} closed the connection during the handshake")),
        Err(e) => Err(format!("handshake with {addr} failed: {e}")),
    }
}

/// The state the calls and the three tasks of one connection share.
#[derive(Debug)]
pub(super) struct Conn {
    /// Encoded frames not yet taken by the writer.
    outbox: RefCell<Vec<u8>>,
    /// The id of the last request put in the outbox.
    last_queued: Cell<Option<u64>>,
    /// The id of the last request the writer has taken from the outbox (and so may have sent).
    /// Ids only grow, so every pending request at or below it may have left this process.
    last_taken: Cell<Option<u64>>,
    /// Queued requests, by id, each waiting with its deadline or holding its answer until its
    /// call takes it. Ids and deadlines grow together, so the first waiting entry is the next
    /// to expire.
    pending: RefCell<Pending>,
    /// The writer's waker while it waits for the outbox to gain a frame: lighter than the
    /// `Notify` it replaced, which took a lock per request.
    writer: AtomicWaker,
    /// Wakes the timeout sweeper when a request is queued with nothing else pending.
    wake_sweeper: Notify,
    closed: Cell<bool>,
    tasks: RefCell<Vec<AbortHandle>>,
    stats: Rc<RefCell<ClientStats>>,
}

impl Conn {
    /// Starts the writer and reader tasks of a connection that completed its handshake.
    pub(super) fn start<R, W>(
        (frames, write): (FrameReader<R>, W),
        stats: Rc<RefCell<ClientStats>>,
    ) -> Rc<Self>
    where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + 'static,
    {
        let conn = Rc::new(Conn {
            outbox: RefCell::new(Vec::new()),
            last_queued: Cell::new(None),
            last_taken: Cell::new(None),
            pending: RefCell::new(Pending::default()),
            writer: AtomicWaker::new(),
            wake_sweeper: Notify::new(),
            closed: Cell::new(false),
            tasks: RefCell::new(Vec::new()),
            stats,
        });
        let writer = tokio::task::spawn_local(write_loop(conn.clone(), write));
        let reader = tokio::task::spawn_local(read_loop(conn.clone(), frames));
        let sweeper = tokio::task::spawn_local(sweep_loop(conn.clone()));
        // No task has run yet (they only run when the caller yields), so the handles are in
        // place before anything can call `close`.
        conn.tasks.borrow_mut().extend([
            writer.abort_handle(),
            reader.abort_handle(),
            sweeper.abort_handle(),
        ]);
        conn
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Puts request `id` in the outbox; its answer is then [`Conn::poll_answer`]'s, at the
    /// latest [`Answer::TimedOut`] at `deadline`. Fails only when the request cannot be encoded
    /// (it is too large), in which case nothing was queued.
    pub(super) fn queue(
        &self,
        id: u64,
        command: Command,
        deadline: Instant,
    ) -> Result<(), WireError> {
        debug_assert!(
            !self.is_closed(),
            "requests are only queued on open connections"
        );
        // Straight into the outbox: `encode` leaves it as it was when it fails, so the other
        // calls' frames there are safe.
        encode(
            &ClientFrame::Request { id, command },
            &mut self.outbox.borrow_mut(),
        )?;
        self.last_queued.set(Some(id));
        let mut pending = self.pending.borrow_mut();
        if pending.waiting == 0 {
            self.wake_sweeper.notify_one();
        }
        pending.insert(id, deadline);
        drop(pending);
        self.writer.wake();
        Ok(())
    }

    /// The answer to request `id` once there is one, which takes it out of the table. `None`
    /// means the request is not in the table: it was never queued here, or its answer was
    /// taken already.
    pub(super) fn poll_answer(&self, id: u64, cx: &mut Context<'_>) -> Poll<Option<Answer>> {
        self.pending.borrow_mut().poll_answer(id, cx)
    }

    /// Stops waiting for request `id`: a response that arrives later is dropped.
    pub(super) fn forget(&self, id: u64) {
        self.pending.borrow_mut().remove(id);
    }

    /// Tears the connection down: every pending call gets `Lost` or `NotSent` with `reason`,
    /// and the tasks stop, which drops the stream. `lost` says whether this counts as a lost
    /// connection (it does not when the client itself is dropped). Closing twice does nothing.
    pub(super) fn close(&self, reason: &str, lost: bool) {
        if self.closed.replace(true) {
            return;
        }
        if lost {
            self.stats.borrow_mut().connections_lost += 1;
        }
        *self.outbox.borrow_mut() = Vec::new();
        // The writer is aborted below; nothing is left to wake it for.
        drop(self.writer.take());
        let last_taken = self.last_taken.get();
        let answered = self.pending.borrow_mut().answer_due(None, |id| {
            if last_taken.is_some_and(|taken| id <= taken) {
                Answer::Lost(reason.to_owned())
            } else {
                Answer::NotSent(format!("the connection ended before it was sent: {reason}"))
            }
        });
        answered.into_iter().for_each(Waker::wake);
        // A task may be closing its own connection here; aborting itself takes effect when it
        // next yields, and it returns right after this call anyway.
        for task in self.tasks.take() {
            task.abort();
        }
    }

    fn complete(&self, id: u64, result: Result<Reply, BrokerError>) {
        // A request no longer waiting timed out or its call was dropped: the late answer is
        // not wanted.
        let waker = self
            .pending
            .borrow_mut()
            .answer(id, || Answer::Reply(result));
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Sends everything in the outbox, one write per wake-up, until the connection closes.
///
/// The simulator charges per write and per tick, not per byte, so the writer takes the whole
/// outbox at once: every call that queued a frame before the writer ran shares one write. The
/// scheduler runs woken tasks in the order they were woken, so calls whose tasks were already
/// due when the first call woke the writer (a burst woken together) run before it and share its
/// write. The writer does not yield to gather more: that cost a second poll and a pass of the
/// timer driver per request, in a simulation where most writes carry one frame anyway.
async fn write_loop<W: AsyncWrite + Unpin>(conn: Rc<Conn>, mut write: W) {
    let mut batch = Vec::new();
    loop {
        std::future::poll_fn(|cx| {
            std::mem::swap(&mut *conn.outbox.borrow_mut(), &mut batch);
            if batch.is_empty() {
                conn.writer.register(cx.waker());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        conn.last_taken.set(conn.last_queued.get());
        let written = async {
            write.write_all(&batch).await?;
            write.flush().await
        }
        .await;
        if let Err(e) = written {
            conn.close(&format!("write failed: {e}"), true);
            return;
        }
        // Keep the allocation for the next batch.
        batch.clear();
    }
}

/// The queued requests: a window of request ids from the first still in the table, each slot
/// empty once its call has taken its answer or gone. Request ids on one connection only grow
/// and have few gaps, so this is a queue rather than an ordered map.
///
/// The answers wait here for their calls, instead of going through a channel per call: the
/// client is single-threaded, and a `oneshot` was an allocation and a handful of atomic
/// operations per request, for a hand-off the table can make by itself.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// The id of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<Slot>>,
    /// How many slots are [`Slot::Waiting`].
    waiting: usize,
}

/// A queued request's place in [`Pending`].
#[derive(Debug)]
enum Slot {
    /// No answer yet; it times out at `deadline`. `waker` is the call's, once it has polled.
    Waiting {
        deadline: Instant,
        waker: Option<Waker>,
    },
    /// Answered; the call takes the answer when it next polls.
    Answered(Answer),
}

impl Pending {
    fn insert(&mut self, id: u64, deadline: Instant) {
        if self.slots.is_empty() {
            self.first = id;
        }
        while id < self.first {
            self.slots.push_front(None);
            self.first -= 1;
        }
        let i = (id - self.first) as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        let old = self.slots[i].replace(Slot::Waiting {
            deadline,
            waker: None,
        });
        debug_assert!(old.is_none(), "request ids are never reused");
        self.waiting += 1;
    }

    fn slot(&mut self, id: u64) -> Option<&mut Option<Slot>> {
        let i = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.slots.get_mut(i)
    }

    /// Gives request `id` the answer `answer()` makes, if it is waiting, and returns its call's
    /// waker for the caller to wake once it has let go of the table: a waker is free to run
    /// code that reaches for the table again.
    #[must_use]
    fn answer(&mut self, id: u64, answer: impl FnOnce() -> Answer) -> Option<Waker> {
        let slot = self.slot(id)?;
        let Some(Slot::Waiting { .. }) = slot else {
            return None;
        };
        let Some(Slot::Waiting { waker, .. }) = slot.replace(Slot::Answered(answer())) else {
            unreachable!("the slot was waiting")
        };
        self.waiting -= 1;
        waker
    }

    /// Gives every waiting request whose deadline is at or before `until` (every one, without
    /// `until`) the answer `answer` makes for its id, in id order, and returns their calls'
    /// wakers. Answered slots ahead of a waiting one are skipped.
    fn answer_due(&mut self, until: Option<Instant>, answer: impl Fn(u64) -> Answer) -> Vec<Waker> {
        let mut wakers = Vec::new();
        // Answering changes no slot's place: the table is trimmed only when a call takes its
        // answer or goes.
        for (i, id) in (self.first..).enumerate().take(self.slots.len()) {
            match &self.slots[i] {
                Some(Slot::Waiting { deadline, .. }) if until.is_some_and(|u| *deadline > u) => {
                    break;
                }
                Some(Slot::Waiting { .. }) => wakers.extend(self.answer(id, || answer(id))),
                _ => {}
            }
        }
        wakers
    }

    fn poll_answer(&mut self, id: u64, cx: &mut Context<'_>) -> Poll<Option<Answer>> {
        let Some(slot) = self.slot(id) else {
            return Poll::Ready(None);
        };
        match slot {
            Some(Slot::Waiting { waker, .. }) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(Slot::Answered(_)) => {
                let Some(Slot::Answered(answer)) = slot.take() else {
                    unreachable!("the slot was answered")
                };
                self.trim();
                Poll::Ready(Some(answer))
            }
            None => Poll::Ready(None),
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(slot) = self.slot(id)
            && let Some(Slot::Waiting { .. }) = slot.take()
        {
            self.waiting -= 1;
        }
        self.trim();
    }

    /// Drops empty slots at the front, so that the front, if any, is in use.
    fn trim(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// The first waiting request's deadline, which is the earliest. Answered slots ahead of it
    /// are few: their calls were woken and take them at their next poll.
    fn first_deadline(&self) -> Option<Instant> {
        if self.waiting == 0 {
            return None;
        }
        self.slots.iter().find_map(|s| match s {
            Some(Slot::Waiting { deadline, .. }) => Some(*deadline),
            _ => None,
        })
    }
}

/// Times out requests: one timer per connection, set for the first pending request's deadline,
/// instead of one per call.
async fn sweep_loop(conn: Rc<Conn>) {
    loop {
        let first = conn.pending.borrow().first_deadline();
        let Some(deadline) = first else {
            conn.wake_sweeper.notified().await;
            continue;
        };
        tokio::time::sleep_until(deadline).await;
        let now = Instant::now();
        let expired = conn
            .pending
            .borrow_mut()
            .answer_due(Some(now), |_| Answer::TimedOut);
        expired.into_iter().for_each(Waker::wake);
    }
}

/// Hands responses to the calls waiting for them until the connection ends, then closes it.
async fn read_loop<R: AsyncRead + Unpin>(conn: Rc<Conn>, mut frames: FrameReader<R>) {
    let reason = loop {
        match frames.next::<ServerFrame>().await {
            Ok(Some(ServerFrame::Response { id, result })) => conn.complete(id, result),
            Ok(Some(ServerFrame::Goodbye { reason })) => {
                break format!("the server said goodbye: {reason}");
            }
            Ok(Some(ServerFrame::Welcome { .. })) => {
                break "protocol error: a second Welcome".to_owned();
            }
            Ok(None) => break "the server closed the connection".to_owned(),
            Err(e) => break format!("read failed: {e}"),
        }
    };
    conn.close(&reason, true);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll(p: &mut Pending, id: u64, count: &Arc<Count>) -> Poll<Option<Answer>> {
        let waker = Waker::from(count.clone());
        p.poll_answer(id, &mut Context::from_waker(&waker))
    }

    fn reply(n: u32) -> Answer {
        Answer::Reply(Ok(Reply::Redriven { count: n }))
    }

    #[test]
    fn answers_wait_for_their_calls_and_late_ones_are_dropped() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let count = Arc::new(Count::default());
        let mut p = Pending::default();
        for id in 1..=3 {
            p.insert(id, ms(10 * id));
            assert!(poll(&mut p, id, &count).is_pending());
        }
        assert_eq!(p.first_deadline(), Some(ms(10)));

        // The second request is answered first: its call is woken, and the first request's
        // deadline is still the next.
        p.answer(2, || reply(2)).expect("waiting").wake();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(p.first_deadline(), Some(ms(10)));

        // The first times out; the answered second is skipped, the third not yet due.
        let expired = p.answer_due(Some(ms(25)), |_| Answer::TimedOut);
        assert_eq!(expired.len(), 1);
        expired.into_iter().for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        assert_eq!(p.first_deadline(), Some(ms(30)));
        assert!(matches!(
            poll(&mut p, 1, &count),
            Poll::Ready(Some(Answer::TimedOut))
        ));
        // A response after the timeout finds nobody waiting.
        assert!(p.answer(1, || reply(1)).is_none());
        assert!(matches!(poll(&mut p, 1, &count), Poll::Ready(None)));
        assert!(matches!(
            poll(&mut p, 2, &count),
            Poll::Ready(Some(Answer::Reply(Ok(Reply::Redriven { count: 2 }))))
        ));

        // A call that goes stops waiting: nothing is left to time out or answer.
        p.remove(3);
        assert_eq!((p.waiting, p.slots.len()), (0, 0));
        assert_eq!(p.first_deadline(), None);
        assert!(p.answer(3, || reply(3)).is_none());
    }

    #[test]
    fn closing_answers_only_the_requests_still_waiting() {
        let t0 = Instant::now();
        let count = Arc::new(Count::default());
        let mut p = Pending::default();
        for id in 5..=7 {
            p.insert(id, t0);
            assert!(poll(&mut p, id, &count).is_pending());
        }
        p.answer(6, || reply(6)).expect("waiting").wake();
        let answered = p.answer_due(None, |id| Answer::Lost(format!("{id}")));
        answered.into_iter().for_each(Waker::wake);
        assert_eq!(count.0.load(Ordering::Relaxed), 3);
        let got: Vec<String> = (5..=7)
            .map(|id| match poll(&mut p, id, &count) {
                Poll::Ready(Some(Answer::Lost(why))) => why,
                Poll::Ready(Some(Answer::Reply(_))) => "reply".to_owned(),
                other => panic!("{id}: {other:?}"),
            })
            .collect();
        assert_eq!(got, ["5", "reply", "7"]);
        assert!(p.slots.is_empty());
    }
}
