//! The history file written while the run goes on, by a thread outside the simulation.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use super::Out;
use crate::sim::dense::BrokerIds;
use crate::sim::history::{Entry, History};
use crate::sim::plan::Plan;
use crate::sim::spec::ClusterSpec;
use crate::sim::summary::{Counter, Summary};

/// Entries gathered in the step loop before they go to the writer thread together: small
/// enough that the entries still to be written when the run ends take little time, large
/// enough that hand-offs are rare (a standard run of the simulation bench makes five).
const STREAM_ENTRIES: usize = 4 * 1024;

/// Batches of entries that may wait for the writer thread; beyond that the step loop waits.
const STREAM_QUEUE: usize = 256;

/// The file form written while the simulation runs, by a thread of its own.
///
/// Formatting and hashing the history is not simulated code, so it need not wait for the end
/// of the run: the step loop hands the entries recorded so far to a writer thread every
/// `STREAM_ENTRIES` entries ([`Stream::feed`]), and the writer formats and hashes them while
/// the simulation goes on. The bytes are exactly those of [`write()`](super::write()) on the finished history:
///
/// * Entries are `Copy` and only ever appended; the writer gets copies, in recording order,
///   with the interned strings added since the last batch (a string is interned before the
///   entry that names it is recorded, so it always comes with or before that entry).
/// * The only part of a line that depends on later entries is the harness id of a broker
///   event that names only the broker's id ([`Entry::unresolved_broker_msg`]), resolved
///   through [`History::broker_ids`]: the map of every (broker id, harness id) pair recorded
///   anywhere in the run, a later pair replacing an earlier one. The writer builds the same
///   map as the entries arrive. Where no broker id is ever named with two different harness
///   ids (always, in a harness run: broker ids are unique and a harness id comes from the
///   payload), a pair known at some point is the pair of the finished map, so a line can be
///   written as soon as its broker id is known. A line whose id is not known yet holds back
///   itself and every line after it until it is, or until the run ends and the map is final.
/// * If a broker id is ever named with a second harness id, what was written may differ from
///   [`write()`](super::write())'s bytes: the writer stops, and [`Stream::finish`] says so, so that the caller
///   writes the whole file again after the run.
///
/// The writer also counts the [`Summary`] as the entries pass, in the same order and with the
/// same resolved ids as [`Summary::with_ids`] on the finished history.
///
/// The thread is outside the simulation (turmoil's hosts never see it) and only reads copies,
/// so it cannot change what the simulation does.
#[derive(Debug)]
pub struct Stream {
    tx: Option<SyncSender<Batch>>,
    /// Batch vectors the writer is done with, emptied, for the next batches: copying into
    /// memory already touched costs the step loop less than faulting in fresh pages.
    spare: Receiver<Vec<Entry>>,
    thread: Option<JoinHandle<io::Result<Streamed>>>,
    /// Entries and interned strings handed over so far.
    entries: usize,
    strings: usize,
}

/// Entries for the writer thread, and the strings interned since the last batch.
#[derive(Debug)]
struct Batch {
    entries: Vec<Entry>,
    strings: Vec<String>,
}

/// How the writer thread ended.
#[derive(Debug)]
enum Streamed {
    /// The file is written: its SHA-256 and its length, and the history's summary.
    Written([u8; 32], u64, Summary),
    /// A broker id was named with two harness ids; the output is not the file.
    Conflict,
}

impl Stream {
    /// Starts the writer thread, which writes to `out` and counts the summary of a run of
    /// `spec`.
    pub fn start(plan: Plan, spec: ClusterSpec, out: Box<dyn Write + Send>) -> io::Result<Stream> {
        let (tx, rx) = sync_channel(STREAM_QUEUE);
        let (give_back, spare) = channel();
        let thread = std::thread::Builder::new()
            .name("mqsim-history".to_owned())
            .spawn(move || write_stream(&plan, &spec, rx, give_back, out))?;
        Ok(Stream {
            tx: Some(tx),
            spare,
            thread: Some(thread),
            entries: 0,
            strings: 0,
        })
    }

    /// Hands the entries recorded since the last batch to the writer, once there are enough.
    pub fn feed(&mut self, history: &History) {
        if history.entries().len() - self.entries >= STREAM_ENTRIES {
            self.send(history);
        }
    }

    fn send(&mut self, history: &History) {
        let new = &history.entries()[self.entries..];
        let mut entries = self.spare.try_recv().unwrap_or_default();
        entries.extend_from_slice(new);
        let batch = Batch {
            entries,
            strings: history.strings()[self.strings..].to_vec(),
        };
        self.entries = history.entries().len();
        self.strings = history.strings().len();
        // A send fails only when the writer has stopped, on an error or a conflict, which
        // `finish` reports.
        if let Some(tx) = &self.tx
            && tx.send(batch).is_err()
        {
            self.tx = None;
        }
    }

    /// Hands over the rest of the finished `history` and tells the writer that was all.
    pub fn close(&mut self, history: &History) {
        self.send(history);
        self.tx = None;
    }

    /// Waits for the writer: the SHA-256 and the length of the file and the history's
    /// [`Summary`], or `None` when a broker id was named with two harness ids and the output is
    /// not the file (see [`Stream`]).
    pub fn finish(mut self) -> io::Result<Option<([u8; 32], u64, Summary)>> {
        self.tx = None;
        let Some(thread) = self.thread.take() else {
            return Ok(None);
        };
        match thread.join() {
            Ok(Ok(Streamed::Written(digest, bytes, summary))) => Ok(Some((digest, bytes, summary))),
            Ok(Ok(Streamed::Conflict)) => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the history writer thread panicked")),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: see [`Stream`].
fn write_stream(
    plan: &Plan,
    spec: &ClusterSpec,
    rx: Receiver<Batch>,
    give_back: Sender<Vec<Entry>>,
    out: Box<dyn Write + Send>,
) -> io::Result<Streamed> {
    let mut out = Out::new(out, plan);
    let mut counter = Counter::new(plan, spec);
    // The index of the next entry to write.
    let mut index = 0;
    let mut strings = Vec::new();
    let mut ids = BrokerIds::default();
    // Entries received and not written yet: from the first whose broker id is unknown on.
    let mut held: Vec<Entry> = Vec::new();
    for batch in rx {
        strings.extend(batch.strings);
        for e in &batch.entries {
            if let Some((broker_msg, msg)) = e.id_pair()
                && !ids.insert_checked(broker_msg, msg)
            {
                return Ok(Streamed::Conflict);
            }
        }
        // The batch's vector goes back to the step loop once its entries are taken; a send
        // fails only once the run is over, when nothing needs it.
        let mut spent = batch.entries;
        if held.is_empty() {
            std::mem::swap(&mut held, &mut spent);
        } else {
            held.extend_from_slice(&spent);
        }
        spent.clear();
        if spent.capacity() > 0 {
            let _ = give_back.send(spent);
        }
        let ready = held
            .iter()
            .position(|e| {
                e.unresolved_broker_msg()
                    .is_some_and(|b| ids.get(b).is_none())
            })
            .unwrap_or(held.len());
        for e in &held[..ready] {
            out.line(&strings, e, plan, &ids)?;
            counter.add(index, e, &ids);
            index += 1;
        }
        held.drain(..ready);
    }
    // The run is over and the map is final.
    for e in &held {
        out.line(&strings, e, plan, &ids)?;
        counter.add(index, e, &ids);
        index += 1;
    }
    let (digest, bytes) = out.finish()?;
    Ok(Streamed::Written(digest, bytes, counter.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::history::{BrokerEvent, NO_KEY, Phase, What};
    use crate::sim::ids::NO_MSG;
    use crate::sim::jsonl::write;
    use crate::sim::plan::{BROKER, HARNESS, NO_SUB};
    use crate::sim::spec::Transport;

    fn plan() -> Plan {
        Plan::new(&spec())
    }

    fn spec() -> ClusterSpec {
        ClusterSpec {
            seed: 1,
            tick_ms: 1,
            duration_ms: 10,
            drain_timeout_ms: 10,
            transport: Transport::Local,
            network: Default::default(),
            broker: mqsim_broker::BrokerConfig::new(Default::default(), Vec::new()),
            server: Default::default(),
            client: Default::default(),
            producers: Vec::new(),
            consumers: Vec::new(),
            faults: Vec::new(),
        }
    }

    fn acked(broker_msg: u64) -> What {
        What::Broker {
            event: BrokerEvent::Acked,
            msg: NO_MSG,
            broker_msg,
            sub: NO_SUB,
            partition: 0,
            offset: 0,
            count: 0,
        }
    }

    fn delivered(msg: u64, broker_msg: u64) -> What {
        What::Deliver {
            invoke: 0,
            msg,
            broker_msg,
            partition: 0,
            offset: 0,
            delivery_count: 1,
            key: NO_KEY,
            sub: NO_SUB,
            poison: false,
        }
    }

    /// Streams `whats`, feeding after each entry as the step loop does after each step.
    fn stream(whats: &[What]) -> (History, Option<([u8; 32], u64, Summary)>) {
        let plan = plan();
        let mut h = History::new();
        let mut s = Stream::start(plan.clone(), spec(), Box::new(io::sink())).unwrap();
        for (i, &what) in whats.iter().enumerate() {
            let process = if matches!(what, What::Broker { .. }) {
                BROKER
            } else {
                HARNESS
            };
            h.push_entry(Entry {
                at_ns: i as u64,
                process,
                what,
            });
            s.feed(&h);
        }
        s.close(&h);
        (h, s.finish().unwrap())
    }

    #[test]
    fn a_stream_holds_lines_back_until_their_broker_id_is_known() {
        // An ack event whose harness id is recorded only later, thousands of lines on (in
        // another batch), another never resolved, and one resolved at once.
        let mut whats = vec![delivered(7, 70), acked(70), acked(50), acked(60)];
        whats.extend((0..3 * STREAM_ENTRIES).map(|_| What::Phase {
            phase: Phase::Drain,
        }));
        whats.push(delivered(5, 50));
        whats.push(acked(50));
        let (h, streamed) = stream(&whats);
        let mut bytes = Vec::new();
        let written = write(&h, &plan(), &mut bytes).unwrap();
        let summary = Summary::of(&h, &plan(), &spec());
        assert_eq!(streamed, Some((written.0, written.1, summary)));
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains(r#""msg":7,"broker_msg":70"#),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(r#""msg":5,"broker_msg":50"#),
            "{}",
            lines[2]
        );
        assert!(!lines[3].contains(r#""msg""#), "{}", lines[3]);
    }

    #[test]
    fn a_stream_gives_up_when_a_broker_id_has_two_harness_ids() {
        let mut whats = vec![delivered(1, 10), acked(10)];
        whats.extend((0..2 * STREAM_ENTRIES).map(|_| What::Phase {
            phase: Phase::Drain,
        }));
        whats.push(delivered(2, 10));
        let (_, streamed) = stream(&whats);
        assert!(streamed.is_none());
    }
}
