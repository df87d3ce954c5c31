//! The file form of a history: JSON Lines, one entry per line, in recording order.
//!
//! Names are spelt out (processes, destinations, groups, keys as the broker saw them), fields
//! that do not apply are left out, and a completion names the line number of its invoke in
//! `invoke`. Message ids that an entry knows only as the broker's (acks and lease ends, which
//! carry no payload) are resolved here from the rest of the run. The SHA-256 of exactly these
//! bytes identifies the run.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::dense::BrokerIds;
use super::history::{BrokerEvent, Entry, History, NO_KEY, Op, What};
use super::ids::NO_MSG;
use super::plan::{Plan, Process, SubIndex};
use super::spec::ClusterSpec;
use super::summary::{Counter, Summary};

/// Bytes gathered before they go to the writer and the hash together: hashing or writing
/// each line on its own costs more than the bytes do.
const CHUNK_BYTES: usize = 64 * 1024;

/// Writes `history` to `out`; returns the SHA-256 of the bytes written and their number.
pub fn write(history: &History, plan: &Plan, out: impl Write) -> io::Result<([u8; 32], u64)> {
    write_with_ids(history, plan, &history.broker_ids(), out)
}

/// [`write()`], given the history's [`History::broker_ids`].
pub fn write_with_ids(
    history: &History,
    plan: &Plan,
    ids: &BrokerIds,
    out: impl Write,
) -> io::Result<([u8; 32], u64)> {
    let mut out = Out::new(out, plan);
    for e in history.entries() {
        out.line(history.strings(), e, plan, ids)?;
    }
    out.finish()
}

/// The same bytes as [`write`], each line formatted by serde_json instead: the reference the
/// hand-written formatter is tested against.
#[doc(hidden)]
pub fn write_via_serde(
    history: &History,
    plan: &Plan,
    out: impl Write,
) -> io::Result<([u8; 32], u64)> {
    write_lines(history, plan, &history.broker_ids(), out, |line, chunk| {
        serde_json::to_writer(chunk, line).map_err(io::Error::from)
    })
}

fn write_lines(
    history: &History,
    plan: &Plan,
    ids: &BrokerIds,
    out: impl Write,
    mut format: impl FnMut(&Line<'_>, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<([u8; 32], u64)> {
    let mut out = Out::new(out, plan);
    for e in history.entries() {
        format(&line(history.strings(), e, plan, ids), &mut out.chunk)?;
        out.end_line()?;
    }
    out.finish()
}

/// The file's bytes on their way out: gathered into chunks, each hashed and written.
struct Out<W: Write> {
    names: Names,
    hasher: Sha256,
    bytes: u64,
    chunk: Vec<u8>,
    out: W,
}

impl<W: Write> Out<W> {
    fn new(out: W, plan: &Plan) -> Self {
        Out {
            names: Names::new(plan),
            hasher: Sha256::new(),
            bytes: 0,
            chunk: Vec::with_capacity(CHUNK_BYTES + 1024),
            out,
        }
    }

    /// Formats `e` as the next line.
    fn line(
        &mut self,
        strings: &[String],
        e: &Entry,
        plan: &Plan,
        ids: &BrokerIds,
    ) -> io::Result<()> {
        write_entry(&mut self.chunk, strings, e, plan, &self.names, ids);
        self.end_line()
    }

    /// Ends the line in the chunk, and passes the chunk on when it is full.
    fn end_line(&mut self) -> io::Result<()> {
        self.chunk.push(b'\n');
        if self.chunk.len() >= CHUNK_BYTES {
            self.emit()?;
        }
        Ok(())
    }

    fn emit(&mut self) -> io::Result<()> {
        self.hasher.update(&self.chunk[..]);
        self.out.write_all(&self.chunk)?;
        self.bytes += self.chunk.len() as u64;
        self.chunk.clear();
        Ok(())
    }

    /// The SHA-256 of every byte written, and their number.
    fn finish(mut self) -> io::Result<([u8; 32], u64)> {
        self.emit()?;
        self.out.flush()?;
        Ok((self.hasher.finalize().into(), self.bytes))
    }
}

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
/// the simulation goes on. The bytes are exactly those of [`write()`] on the finished history:
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
///   [`write()`]'s bytes: the writer stops, and [`Stream::finish`] says so, so that the caller
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

fn line<'a>(strings: &'a [String], e: &Entry, plan: &'a Plan, ids: &BrokerIds) -> Line<'a> {
    let string = |id: u32| strings.get(id as usize).map_or("", String::as_str);
    let mut l = Line {
        time_ns: e.at_ns,
        process: plan.name(e.process),
        ..Line::default()
    };
    let msg = |m: u64| (m != NO_MSG).then_some(m);
    let key = |k: u32| (k != NO_KEY).then_some(KeyName(k));
    let sub = |l: &mut Line<'a>, s: SubIndex| {
        if let Some(s) = plan.subs.get(usize::from(s)) {
            l.destination = Some(&s.destination);
            l.group = s.group.as_deref();
        }
    };
    match e.what {
        What::Invoke {
            op,
            msg: m,
            key: k,
            sub: s,
            intended_ns,
        } => {
            l.kind = "invoke";
            l.op = Some(op.name());
            l.msg = msg(m);
            l.key = key(k);
            sub(&mut l, s);
            if op == Op::Publish {
                l.intended_ns = Some(intended_ns);
                l.destination = plan
                    .producer(e.process)
                    .and_then(|p| plan.destinations.get(usize::from(p.destination)))
                    .map(String::as_str);
            }
        }
        What::Ok {
            invoke,
            op,
            msg: m,
            broker_msg,
            partition,
            offset,
            count,
        } => {
            l.kind = "ok";
            l.op = Some(op.name());
            l.invoke = Some(invoke);
            l.msg = msg(m);
            match op {
                Op::Publish => {
                    l.broker_msg = msg(broker_msg);
                    l.partition = Some(partition);
                    l.offset = Some(offset);
                    l.duplicate = Some(count != 0);
                }
                Op::Receive => l.count = Some(count),
                Op::Ack | Op::Nack => {}
            }
        }
        What::Failed {
            invoke,
            op,
            msg: m,
            completion,
            error,
        } => {
            l.kind = completion.name();
            l.op = Some(op.name());
            l.invoke = Some(invoke);
            l.msg = msg(m);
            l.error = Some(string(error));
        }
        What::Deliver {
            invoke,
            msg: m,
            broker_msg,
            partition,
            offset,
            delivery_count,
            key: k,
            sub: s,
            poison,
        } => {
            l.kind = "deliver";
            l.invoke = Some(invoke);
            l.msg = msg(m);
            l.broker_msg = msg(broker_msg);
            l.key = key(k);
            sub(&mut l, s);
            l.partition = Some(partition);
            l.offset = Some(offset);
            l.delivery_count = Some(delivery_count);
            l.poison = poison.then_some(true);
        }
        What::Effect {
            msg: m,
            sub: s,
            applied,
        } => {
            l.kind = "effect";
            l.msg = msg(m);
            sub(&mut l, s);
            l.applied = Some(applied);
        }
        What::Nemesis { text } => {
            l.kind = "nemesis";
            l.fault = Some(string(text));
        }
        What::Phase { phase } => {
            l.kind = "phase";
            l.phase = Some(phase.name());
        }
        What::Broker {
            event,
            msg: m,
            broker_msg,
            sub: s,
            partition,
            offset,
            count,
        } => {
            l.kind = "broker";
            l.event = Some(event.name());
            if event == BrokerEvent::Recovered {
                l.epoch = Some(count);
            } else {
                let resolved = if m == NO_MSG {
                    ids.get(broker_msg)
                } else {
                    Some(m)
                };
                l.msg = resolved;
                l.broker_msg = msg(broker_msg);
                sub(&mut l, s);
                l.partition = Some(partition);
                l.offset = Some(offset);
                if event == BrokerEvent::DeadLettered {
                    l.delivery_count = Some(count);
                }
            }
        }
    }
    l
}

/// Appends the line of `e` as compact JSON, without building a [`Line`]: byte for byte what
/// serde_json writes for [`line`]'s `Line` (fields in declaration order, absent ones left
/// out), which a cluster test checks on a run with every kind of line.
fn write_entry(
    out: &mut Vec<u8>,
    strings: &[String],
    e: &Entry,
    plan: &Plan,
    names: &Names,
    ids: &BrokerIds,
) {
    let string = |id: u32| strings.get(id as usize).map_or("", String::as_str);
    out.extend_from_slice(b"{\"time_ns\":");
    put_u64(out, e.at_ns);
    out.extend_from_slice(b",\"process\":");
    out.extend_from_slice(names.process(e.process));
    let msg = |out: &mut Vec<u8>, name: &[u8], m: u64| {
        if m != NO_MSG {
            put_u64_field(out, name, m);
        }
    };
    let key = |out: &mut Vec<u8>, k: u32| {
        if k != NO_KEY {
            out.extend_from_slice(b",\"key\":\"k");
            put_u64(out, k.into());
            out.push(b'"');
        }
    };
    let sub = |out: &mut Vec<u8>, s: SubIndex| {
        if let Some((destination, group)) = names.subs.get(usize::from(s)) {
            put_json_field(out, b",\"destination\":", destination);
            if let Some(g) = group {
                put_json_field(out, b",\"group\":", g);
            }
        }
    };
    match e.what {
        What::Invoke {
            op,
            msg: m,
            key: k,
            sub: s,
            intended_ns,
        } => {
            out.extend_from_slice(b",\"type\":\"invoke\"");
            put_name_field(out, b",\"op\":", op.name());
            msg(out, b",\"msg\":", m);
            key(out, k);
            if op == Op::Publish {
                // A publish names its producer's destination, and the group of its
                // subscription if it has one (it never does).
                let destination = plan
                    .producer(e.process)
                    .and_then(|p| names.destinations.get(usize::from(p.destination)));
                if let Some(d) = destination {
                    put_json_field(out, b",\"destination\":", d);
                }
                if let Some(g) = names.subs.get(usize::from(s)).and_then(|s| s.1.as_ref()) {
                    put_json_field(out, b",\"group\":", g);
                }
                put_u64_field(out, b",\"intended_ns\":", intended_ns);
            } else {
                sub(out, s);
            }
        }
        What::Ok {
            invoke,
            op,
            msg: m,
            broker_msg,
            partition,
            offset,
            count,
        } => {
            out.extend_from_slice(b",\"type\":\"ok\"");
            put_name_field(out, b",\"op\":", op.name());
            put_u64_field(out, b",\"invoke\":", invoke.into());
            msg(out, b",\"msg\":", m);
            match op {
                Op::Publish => {
                    msg(out, b",\"broker_msg\":", broker_msg);
                    put_u64_field(out, b",\"partition\":", partition.into());
                    put_u64_field(out, b",\"offset\":", offset);
                    out.extend_from_slice(b",\"duplicate\":");
                    put_bool(out, count != 0);
                }
                Op::Receive => put_u64_field(out, b",\"count\":", count.into()),
                Op::Ack | Op::Nack => {}
            }
        }
        What::Failed {
            invoke,
            op,
            msg: m,
            completion,
            error,
        } => {
            put_name_field(out, b",\"type\":", completion.name());
            put_name_field(out, b",\"op\":", op.name());
            put_u64_field(out, b",\"invoke\":", invoke.into());
            msg(out, b",\"msg\":", m);
            put_str_field(out, b",\"error\":", string(error));
        }
        What::Deliver {
            invoke,
            msg: m,
            broker_msg,
            partition,
            offset,
            delivery_count,
            key: k,
            sub: s,
            poison,
        } => {
            out.extend_from_slice(b",\"type\":\"deliver\"");
            put_u64_field(out, b",\"invoke\":", invoke.into());
            msg(out, b",\"msg\":", m);
            msg(out, b",\"broker_msg\":", broker_msg);
            key(out, k);
            sub(out, s);
            put_u64_field(out, b",\"partition\":", partition.into());
            put_u64_field(out, b",\"offset\":", offset);
            put_u64_field(out, b",\"delivery_count\":", delivery_count.into());
            if poison {
                out.extend_from_slice(b",\"poison\":true");
            }
        }
        What::Effect {
            msg: m,
            sub: s,
            applied,
        } => {
            out.extend_from_slice(b",\"type\":\"effect\"");
            msg(out, b",\"msg\":", m);
            sub(out, s);
            out.extend_from_slice(b",\"applied\":");
            put_bool(out, applied);
        }
        What::Nemesis { text } => {
            out.extend_from_slice(b",\"type\":\"nemesis\"");
            put_str_field(out, b",\"fault\":", string(text));
        }
        What::Phase { phase } => {
            out.extend_from_slice(b",\"type\":\"phase\"");
            put_name_field(out, b",\"phase\":", phase.name());
        }
        What::Broker {
            event,
            msg: m,
            broker_msg,
            sub: s,
            partition,
            offset,
            count,
        } => {
            out.extend_from_slice(b",\"type\":\"broker\"");
            put_name_field(out, b",\"event\":", event.name());
            if event == BrokerEvent::Recovered {
                put_u64_field(out, b",\"epoch\":", count.into());
            } else {
                let resolved = if m == NO_MSG {
                    ids.get(broker_msg)
                } else {
                    Some(m)
                };
                if let Some(r) = resolved {
                    put_u64_field(out, b",\"msg\":", r);
                }
                msg(out, b",\"broker_msg\":", broker_msg);
                sub(out, s);
                put_u64_field(out, b",\"partition\":", partition.into());
                put_u64_field(out, b",\"offset\":", offset);
                if event == BrokerEvent::DeadLettered {
                    put_u64_field(out, b",\"delivery_count\":", count.into());
                }
            }
        }
    }
    out.push(b'}');
}

fn put_u64_field(out: &mut Vec<u8>, name: &[u8], v: u64) {
    out.extend_from_slice(name);
    put_u64(out, v);
}

/// A field whose value is one of the history's fixed names (an op, an event, a phase, a
/// completion), which are plain words: written without checking each for characters to escape.
fn put_name_field(out: &mut Vec<u8>, name: &[u8], v: &'static str) {
    debug_assert!(
        v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
        "{v} needs escaping"
    );
    out.extend_from_slice(name);
    out.push(b'"');
    out.extend_from_slice(v.as_bytes());
    out.push(b'"');
}

/// A field whose value is already a JSON string.
fn put_json_field(out: &mut Vec<u8>, name: &[u8], v: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(v);
}

/// The plan's names as JSON strings, quoted (and escaped where they need it) once per file
/// instead of checked for characters to escape on every line that names them.
#[derive(Debug)]
struct Names {
    processes: Vec<Vec<u8>>,
    destinations: Vec<Vec<u8>>,
    /// Each subscription's destination and group.
    subs: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Names {
    fn new(plan: &Plan) -> Self {
        let json = |s: &str| {
            let mut v = Vec::new();
            put_str(&mut v, s);
            v
        };
        Names {
            processes: plan.processes.iter().map(|p| json(p)).collect(),
            destinations: plan.destinations.iter().map(|d| json(d)).collect(),
            subs: plan
                .subs
                .iter()
                .map(|s| (json(&s.destination), s.group.as_deref().map(json)))
                .collect(),
        }
    }

    /// Process `p`'s name, as [`Plan::name`] gives it.
    fn process(&self, p: Process) -> &[u8] {
        self.processes
            .get(usize::from(p))
            .map_or(b"\"?\"", Vec::as_slice)
    }
}

fn put_str_field(out: &mut Vec<u8>, name: &[u8], v: &str) {
    out.extend_from_slice(name);
    put_str(out, v);
}

/// A key written as the string the broker saw.
#[derive(Debug, Clone, Copy)]
struct KeyName(u32);

impl Serialize for KeyName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("k{}", self.0))
    }
}

/// One line of the file. Absent fields are left out, so each kind of entry has its own shape.
#[derive(Debug, Default, Serialize)]
struct Line<'a> {
    time_ns: u64,
    process: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoke: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broker_msg: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<KeyName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intended_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poison: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'static str>,
}

/// A number in decimal, by `itoa`, the formatter serde_json itself uses: the same digits
/// `serde_json` writes, without going through its serializer for one integer.
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// A JSON string; anything serde_json would escape goes through serde_json.
fn put_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a vector cannot fail.
        let _ = serde_json::to_writer(out, s);
    }
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::history::{BrokerEvent, Phase};
    use crate::sim::plan::{BROKER, HARNESS, NO_SUB};
    use crate::sim::spec::{ClusterSpec, Transport};

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

    #[test]
    fn numbers_are_written_as_decimal() {
        for v in [
            0,
            7,
            10,
            99,
            100,
            101,
            12_345,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            super::put_u64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }
}
