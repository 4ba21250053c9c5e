//! `verify`: compare two PFSs record by record as of a TID, locally or over the same ssh wiring as copy.
//!
//! Each side runs an ordinary two-way mirror-read (`-B`, no prescan) and
//! this command plays its target: it answers with a PFSD whose
//! `sync_end_tid` is 0, so the whole history up to the side's
//! `sync_end_tid` comes back in key order, acknowledges the pass with
//! UPDATE, and lets the reader end with TERM. A local side is the read half
//! on a thread; a remote side is `ssh host hammer-mirror -2 -B mirror-read
//! <pfs>` (stock hammer works too). The two key-ordered streams are merged
//! in constant memory, keeping the records visible as of the TID
//! (`create_tid <= T < delete_tid`). Default TID: the slave's
//! `sync_end_tid` (the smaller of the two when both are masters or slaves).
//!
//! Damage is not a difference: a record a side sends as REC_BADCRC (its
//! data failed its checks there) is counted in `damaged`, named with its
//! side, and the result is "damaged"; a side whose read fails on damage
//! fails the verify with its error.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};

use crate::child::{Child, OnLine};
use crate::endpoint::Endpoint;
use crate::event::{Event, Observer};
use crate::hammerfs::{HAMMER_LOCALIZE_MASK, HAMMER_RECTYPE_DIRENTRY};
use crate::mirror::read::ReadOpts;
use crate::mrecord::{LeafElm, PSEUDOFS_VERSION, PseudofsData, Record, RecordReader, RecordWriter, rtype};
use crate::side::{Ended, Side};
use crate::ssh::{self, SshOpts, Verb};
use crate::store::Access;
use crate::transport::{self, LinkOpts, Role};

/// One difference found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    pub obj_id: String,
    pub key: String,
    pub rec_type: String,
    pub create_tid: String,
    /// "only in <a>", "only in <b>", "data differs", or "damaged in <a>".
    pub what: String,
}

/// What one side holds beyond the TID compared (a master ahead of its slave).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Newer {
    /// The side that is ahead.
    pub side: String,
    /// Its newest TID.
    pub tid: String,
    /// Distinct TIDs (transactions) after the one compared.
    pub transactions: u64,
    /// Age in seconds of its oldest change after the TID compared (how far behind the other side is).
    pub oldest_change_age: Option<u64>,
}

/// The result of a verify.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub time: String,
    pub event: &'static str,
    pub a: String,
    pub b: String,
    pub as_of: String,
    pub records: u64,
    pub differences: u64,
    /// Records damaged on either side (listed in `first_differences` too).
    pub damaged: u64,
    pub identical: bool,
    /// "identical", "different" or "damaged".
    pub result: &'static str,
    pub first_differences: Vec<Difference>,
    /// Newer history on either side, beyond `as_of` (null when neither has any).
    pub newer: Option<Newer>,
}

/// The distinct TIDs after the one compared, counted up to this many.
const NEWER_TIDS_COUNTED: usize = 100_000;

/// What a side showed beyond the TID compared.
#[derive(Default)]
struct Beyond {
    tids: std::collections::BTreeSet<u64>,
    oldest_ts: Option<u32>,
}

/// Differences listed in full.
const SHOWN: usize = 10;

/// A side being read: its stream, and the half producing it.
struct Reader {
    name: String,
    r: RecordReader<Box<dyn std::io::Read + Send>>,
    w: RecordWriter<Box<dyn std::io::Write + Send>>,
    side: Side<()>,
    pfsd: PseudofsData,
    beyond: Beyond,
}

/// Passes on only what reports a problem: a reader's routine messages
/// ("Mirror-read ... succeeded") are not part of the verdict.
struct Problems(Arc<dyn Observer>);

impl Observer for Problems {
    fn event(&self, e: &Event) {
        if let Event::Message { level, .. } = e
            && level.kept_by_quiet()
        {
            self.0.event(e);
        }
    }
}

fn start(ep: &Endpoint, ssh_opts: &SshOpts, obs: &Arc<dyn Observer>) -> anyhow::Result<Reader> {
    let (ours, theirs) = transport::socketpair().context("creating a socketpair")?;
    // Nobody waits for the sides to end: the reader's stream says when.
    let (done, _) = std::sync::mpsc::channel();
    let side = match ep {
        Endpoint::Local(path) => {
            let path = path.clone();
            let problems = Problems(Arc::clone(obs));
            Side::local("reader", done, move || {
                let pfs = crate::pfs::open(&path, Access::Read)
                    .map_err(|e| crate::mirror::in_half(e.into(), "mirror-read", &path))?;
                let opts = ReadOpts { two_way: true, bulk: true, ..ReadOpts::default() };
                let link = transport::stack(theirs.try_clone()?, theirs, Role::Source, &LinkOpts::default())?;
                let stop = AtomicBool::new(false);
                crate::mirror::read::read_reopening(pfs, &opts, link.tx, link.rx, &problems, &stop).map(|_| ())
            })?
        }
        Endpoint::Remote(r) => {
            let mut o = ssh_opts.clone();
            o.bulk = true;
            o.timeout = None;
            o.splitup = None;
            o.bandwidth = None;
            o.delay = None;
            o.quiet = true;
            let argv = ssh::argv(&o, r, Verb::Read);
            let fd_in = theirs.try_clone()?.into();
            let (obs, host) = (Arc::clone(obs), r.host.clone());
            let on_line: OnLine = Arc::new(move |line| {
                obs.event(&Event::message(crate::log::Level::Warn, format!("{host}: {line}")));
                true
            });
            Side::remote("reader", Child::spawn(&argv, fd_in, theirs.into(), &r.host, on_line)?)
        }
    };
    // We play the target: a remote reader that is our own, told to, frames
    // and compresses its stream (`--compress`).
    let frame = match ep {
        Endpoint::Remote(_) => ssh_opts.framing(),
        Endpoint::Local(_) => None,
    };
    let link = transport::stack(ours.try_clone()?, ours, Role::Target, &LinkOpts { frame, ..LinkOpts::default() })?;
    let mut r = RecordReader::new(link.rx);
    let w = RecordWriter::new(link.tx);
    let got = r.next_record().map(|rec| match rec {
        Some(Record::Pfsd { pfsd, .. }) => Ok(pfsd),
        other => Err(other.map(|r| rtype::name(r.type_word()))),
    });
    match got {
        Ok(Ok(pfsd)) => Ok(Reader { name: ep.to_string(), r, w, side, pfsd, beyond: Beyond::default() }),
        got => {
            // The reader failed before it said anything: its own error is the story.
            drop((r, w));
            let cause = match side.join()? {
                Ended::Local(Err(e)) => e,
                Ended::Remote { host, exit } if exit.code() != 0 => {
                    anyhow::anyhow!(
                        "the reader on {host} failed with exit status {} (its messages are above)",
                        exit.code()
                    )
                }
                _ => match got {
                    Err(e) => anyhow::Error::new(e).context(format!("reading {ep}")),
                    Ok(Err(what)) => anyhow::anyhow!("{ep}: expected the PFS description, got {what:?}"),
                    Ok(Ok(_)) => unreachable!("handled above"),
                },
            };
            Err(cause)
        }
    }
}

impl Reader {
    /// Asks for the whole history: we play a target that has nothing yet.
    fn request(&mut self) -> anyhow::Result<()> {
        let mut ask = self.pfsd;
        ask.sync_end_tid = 0;
        ask.mirror_flags |= crate::mrecord::PFSD_SLAVE;
        self.w.write_record(&Record::Pfsd { version: PSEUDOFS_VERSION, pfsd: ask })?;
        self.w.flush()?;
        match self.r.next_record()? {
            Some(Record::Pfsd { .. }) => Ok(()),
            Some(Record::Term) => bail!("{}: the reader ended the stream", self.name),
            other => {
                bail!("{}: expected the range PFSD, got {:?}", self.name, other.map(|r| rtype::name(r.type_word())))
            }
        }
    }

    /// The next record visible as of `asof`, or None at the end of the
    /// pass; its data is empty when the side sent it as damaged (REC_BADCRC).
    fn next_visible(&mut self, asof: u64) -> anyhow::Result<Option<(LeafElm, Vec<u8>, bool)>> {
        loop {
            match self.r.next_record().with_context(|| format!("reading {}", self.name))? {
                Some(Record::Rec { leaf, data, rtype: t }) => {
                    let damaged = t & rtype::CRC_ERROR != 0;
                    let b = &leaf.base;
                    for (t, ts) in [(b.create_tid, leaf.create_ts), (b.delete_tid, leaf.delete_ts)] {
                        if t > asof {
                            if self.beyond.tids.len() < NEWER_TIDS_COUNTED {
                                self.beyond.tids.insert(t);
                            }
                            self.beyond.oldest_ts = Some(self.beyond.oldest_ts.map_or(ts, |o| o.min(ts)));
                        }
                    }
                    if b.create_tid <= asof && (b.delete_tid == 0 || b.delete_tid > asof) {
                        let data = if damaged { Vec::new() } else { data.to_vec() };
                        return Ok(Some((leaf, data, damaged)));
                    }
                }
                Some(Record::Pass { .. } | Record::Skip { .. }) => {}
                Some(Record::Sync | Record::Idle) => return Ok(None),
                other => {
                    bail!("{}: unexpected {:?} in the stream", self.name, other.map(|r| rtype::name(r.type_word())))
                }
            }
        }
    }

    /// `e`, or the error this side's half ended with when it failed.
    fn cause(self, e: anyhow::Error) -> anyhow::Error {
        drop(self.w);
        drop(self.r);
        match self.side.join() {
            Ok(Ended::Local(Err(own))) => own,
            _ => e,
        }
    }

    /// Acknowledges the pass and waits for the reader to end.
    fn finish(mut self) -> anyhow::Result<()> {
        let _ = self.w.write_record(&Record::Update { tid: self.pfsd.sync_end_tid });
        let _ = self.w.flush();
        while let Ok(Some(rec)) = self.r.next_record() {
            if rec == Record::Term {
                break;
            }
        }
        drop(self.w);
        drop(self.r);
        match self.side.join()? {
            Ended::Local(r) => r,
            Ended::Remote { host, exit } if exit.code() != 0 => {
                bail!("the reader on {host} failed with exit status {} (its messages are above)", exit.code())
            }
            Ended::Remote { .. } => Ok(()),
        }
    }
}

/// The key of a leaf, without the PFS bits.
fn key(l: &LeafElm) -> (u32, i64, u16, i64, u64) {
    let b = &l.base;
    (b.localization & HAMMER_LOCALIZE_MASK, b.obj_id, b.rec_type, b.key, b.create_tid)
}

/// Data compared PFS-independently (a directory entry names its own PFS).
fn same_data(a: &(LeafElm, Vec<u8>, bool), b: &(LeafElm, Vec<u8>, bool)) -> bool {
    if a.0.base.obj_type != b.0.base.obj_type || a.1.len() != b.1.len() {
        return false;
    }
    if a.0.base.rec_type == HAMMER_RECTYPE_DIRENTRY && a.1.len() >= 12 {
        return a.1[..8] == b.1[..8] && a.1[12..] == b.1[12..];
    }
    a.1 == b.1
}

fn diff(l: &LeafElm, what: String) -> Difference {
    let b = &l.base;
    Difference {
        obj_id: format!("{:016x}", b.obj_id as u64),
        key: format!("{:016x}", b.key as u64),
        rec_type: format!("{:02x}", b.rec_type),
        create_tid: format!("{:016x}", b.create_tid),
        what,
    }
}

/// Compares `a` and `b` as of `as_of` (default: see the module documentation).
pub fn verify(
    a: &Endpoint,
    b: &Endpoint,
    as_of: Option<u64>,
    ssh_opts: &SshOpts,
    obs: &Arc<dyn Observer>,
) -> anyhow::Result<Report> {
    let mut sa = start(a, ssh_opts, obs)?;
    let mut sb = start(b, ssh_opts, obs)?;
    if sa.pfsd.shared_uuid != sb.pfsd.shared_uuid {
        obs.event(&Event::message(
            crate::log::Level::Warn,
            format!("verify: warning: {a} and {b} have different shared uuids; they are not mirrors of each other"),
        ));
    }
    let asof = as_of.unwrap_or_else(|| match (sa.pfsd.is_slave(), sb.pfsd.is_slave()) {
        (true, false) => sa.pfsd.sync_end_tid,
        (false, true) => sb.pfsd.sync_end_tid,
        _ => sa.pfsd.sync_end_tid.min(sb.pfsd.sync_end_tid),
    });
    for s in [&sa, &sb] {
        if asof > s.pfsd.sync_end_tid {
            bail!(
                "verify: {} only reaches TID 0x{:016x}; cannot compare as of 0x{asof:016x}",
                s.name,
                s.pfsd.sync_end_tid
            );
        }
    }
    match compare(&mut sa, &mut sb, asof) {
        Ok(report) => {
            sa.finish()?;
            sb.finish()?;
            Ok(report)
        }
        // A side that failed (on damage, say) tells why better than its stream's end.
        Err(e) => Err(sa.cause(sb.cause(e))),
    }
}

/// Merges the two sides' streams; see the module documentation.
fn compare(sa: &mut Reader, sb: &mut Reader, asof: u64) -> anyhow::Result<Report> {
    for s in [&mut *sa, &mut *sb] {
        s.request()?;
    }
    let mut report = Report {
        time: crate::log::timestamp(),
        event: "verify",
        newer: None,
        a: sa.name.clone(),
        b: sb.name.clone(),
        as_of: format!("0x{asof:016x}"),
        records: 0,
        differences: 0,
        damaged: 0,
        identical: true,
        result: "identical",
        first_differences: Vec::new(),
    };
    let note = |d: Difference, report: &mut Report| {
        report.differences += 1;
        if report.first_differences.len() < SHOWN {
            report.first_differences.push(d);
        }
    };
    let damage = |l: &LeafElm, side: &str, report: &mut Report| {
        report.damaged += 1;
        if report.first_differences.len() < SHOWN {
            report.first_differences.push(diff(l, format!("damaged in {side}")));
        }
    };
    let mut ra = sa.next_visible(asof)?;
    let mut rb = sb.next_visible(asof)?;
    loop {
        match (&ra, &rb) {
            (None, None) => break,
            (Some(x), _) if x.2 => {
                damage(&x.0, &sa.name, &mut report);
                if rb.as_ref().is_some_and(|y| key(&y.0) == key(&x.0)) {
                    if rb.as_ref().is_some_and(|y| y.2) {
                        damage(&x.0, &sb.name, &mut report);
                    }
                    rb = sb.next_visible(asof)?;
                }
                ra = sa.next_visible(asof)?;
            }
            (_, Some(y)) if y.2 => {
                damage(&y.0, &sb.name, &mut report);
                if ra.as_ref().is_some_and(|x| key(&x.0) == key(&y.0)) {
                    ra = sa.next_visible(asof)?;
                }
                rb = sb.next_visible(asof)?;
            }
            (Some(x), None) => {
                note(diff(&x.0, format!("only in {}", sa.name)), &mut report);
                ra = sa.next_visible(asof)?;
            }
            (None, Some(y)) => {
                note(diff(&y.0, format!("only in {}", sb.name)), &mut report);
                rb = sb.next_visible(asof)?;
            }
            (Some(x), Some(y)) => match key(&x.0).cmp(&key(&y.0)) {
                std::cmp::Ordering::Less => {
                    note(diff(&x.0, format!("only in {}", sa.name)), &mut report);
                    ra = sa.next_visible(asof)?;
                }
                std::cmp::Ordering::Greater => {
                    note(diff(&y.0, format!("only in {}", sb.name)), &mut report);
                    rb = sb.next_visible(asof)?;
                }
                std::cmp::Ordering::Equal => {
                    report.records += 1;
                    if !same_data(x, y) {
                        note(diff(&x.0, "data differs".into()), &mut report);
                    }
                    ra = sa.next_visible(asof)?;
                    rb = sb.next_visible(asof)?;
                }
            },
        }
    }
    report.identical = report.differences == 0 && report.damaged == 0;
    report.result = if report.damaged > 0 {
        "damaged"
    } else if report.identical {
        "identical"
    } else {
        "different"
    };
    let now = crate::log::unix_now() as u64;
    report.newer =
        [&*sa, &*sb].into_iter().filter(|s| !s.beyond.tids.is_empty()).max_by_key(|s| s.beyond.tids.len()).map(|s| {
            Newer {
                side: s.name.clone(),
                tid: crate::log::tid(s.pfsd.sync_end_tid),
                transactions: s.beyond.tids.len() as u64,
                oldest_change_age: s.beyond.oldest_ts.filter(|&t| t > 0).map(|t| now.saturating_sub(u64::from(t))),
            }
        });
    Ok(report)
}

/// The human-readable report.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    for d in &r.first_differences {
        s +=
            &format!("difference: obj={} key={} rt={} tid={}: {}\n", d.obj_id, d.key, d.rec_type, d.create_tid, d.what);
    }
    let listed = (r.differences + r.damaged) as usize;
    if listed > r.first_differences.len() {
        s += &format!("... and {} more\n", listed - r.first_differences.len());
    }
    if let Some(n) = &r.newer {
        let more = if n.transactions as usize >= NEWER_TIDS_COUNTED { "at least " } else { "" };
        let plural = if n.transactions == 1 { "" } else { "s" };
        let age = n.oldest_change_age.map(|a| format!(", the oldest made {} ago", human_age(a))).unwrap_or_default();
        let behind = if n.side == r.a { &r.b } else { &r.a };
        s += &format!(
            "{} has {more}{} newer transaction{plural} (up to {}{age}) that {behind} does not have yet\n",
            n.side, n.transactions, n.tid
        );
    }
    if r.damaged > 0 {
        s += &format!(
            "{} and {} cannot be compared in full as of {}: {} damaged records, {} differences \
             (hammer-mirror scrub names the damage; repair --from <replica> repairs it)\n",
            r.a, r.b, r.as_of, r.damaged, r.differences
        );
    } else if r.identical {
        s += &format!("{} and {} are identical as of {} ({} records)\n", r.a, r.b, r.as_of, r.records);
    } else {
        s += &format!("{} and {} differ as of {}: {} differences\n", r.a, r.b, r.as_of, r.differences);
    }
    s
}

/// A duration in seconds as a person reads it: "45 s", "12 min", "3 h", "2 days".
pub fn human_age(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}
