//! Conversation tests: both halves over a socketpair (two-way) or a byte buffer (one-way), between store PFSs.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use super::read::{ReadOpts, ReadSummary, read};
use super::write::{Create, WriteOpts, WriteSummary, write};
use crate::event::Record;
use crate::exit::{Status, status_of};
use crate::ioctl::Pfs;
use crate::mrecord::PseudofsData;
use crate::pfs::PathOpener;
use crate::store::master::MasterTxn;
use crate::store::{Access, Store};

static NO_STOP: AtomicBool = AtomicBool::new(false);

fn pfsd(slave: bool, shared: [u8; 16]) -> PseudofsData {
    let mut p = crate::pfs::init_pfsd(slave);
    p.shared_uuid = shared;
    p
}

struct Env {
    _dir: tempfile::TempDir,
    master: PathBuf,
    slave: PathBuf,
    shared: [u8; 16],
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let slave = dir.path().join("slave");
    let shared = *uuid::Uuid::new_v4().as_bytes();
    Store::create(&master, &pfsd(false, shared), 1).unwrap();
    Env { _dir: dir, master, slave, shared }
}

impl Env {
    fn make_slave(&self) {
        Store::create(&self.slave, &pfsd(true, self.shared), 1).unwrap();
    }

    /// One master transaction: `n` objects with `size` bytes each, named from `base`.
    fn import(&self, base: i64, n: i64, size: usize) -> u64 {
        let m = Store::open(&self.master, Access::Write).unwrap();
        let mut t = MasterTxn::begin(&m).unwrap();
        for obj in base..base + n {
            t.create(1, obj, 1, 0, 2, &[obj as u8; 128]).unwrap();
            let mut off = 0;
            while off < size {
                let len = (size - off).min(65536);
                t.create(2, obj, 0x10, (off + len) as i64, 2, &vec![(obj + off as i64) as u8; len]).unwrap();
                off += len;
            }
        }
        t.commit().unwrap()
    }

    fn delete_obj(&self, obj: i64) -> u64 {
        let m = Store::open(&self.master, Access::Write).unwrap();
        let mut t = MasterTxn::begin(&m).unwrap();
        for loc in [1, 2] {
            for (k, _, _) in t.live_records_of(loc, obj).unwrap() {
                t.delete(&k).unwrap();
            }
        }
        t.commit().unwrap()
    }

    fn synced(&self) -> u64 {
        Store::open(&self.slave, Access::Read).unwrap().get_pseudofs().unwrap().sync_end_tid
    }

    /// The slave as of its sync_end_tid equals the master as of the same TID.
    fn assert_equal_as_of_sync(&self) {
        let tid = self.synced();
        assert_eq!(visible(&self.slave, tid), visible(&self.master, tid), "as of {tid:#x}");
    }
}

type Row = (u32, i64, u16, i64, u64, Vec<u8>);

fn visible(path: &Path, asof: u64) -> Vec<Row> {
    let s = Store::open(path, Access::Read).unwrap();
    let mut v = Vec::new();
    s.for_each_as_of(asof, |l, d| {
        let b = &l.base;
        v.push((b.localization & 0xffff, b.obj_id, b.rec_type, b.key, b.create_tid, d.to_vec()));
        Ok(())
    })
    .unwrap();
    v
}

fn quiet(mut o: ReadOpts) -> ReadOpts {
    o.delay = Duration::ZERO;
    o
}

/// Runs read and write in two threads over a socketpair (two-way), bounded
/// in time. `cut` wraps the target's input to simulate a lost link.
fn two_way(
    e: &Env,
    ropts: ReadOpts,
    create: bool,
    cut: Option<u64>,
) -> (anyhow::Result<ReadSummary>, anyhow::Result<WriteSummary>, String, String) {
    let (a, b) = UnixStream::pair().unwrap();
    let master = e.master.clone();
    let slave = e.slave.clone();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let pfs = crate::pfs::open(&master, Access::Read).unwrap();
        let log = Record::default();
        let opts = ReadOpts { two_way: true, ..ropts };
        let r = read(pfs.as_ref(), &opts, a.try_clone().unwrap(), a, &log, &NO_STOP);
        tx.send(Err((r, log.text()))).unwrap();
    });
    std::thread::spawn(move || {
        let log = Record::default();
        let input: Box<dyn Read> = match cut {
            Some(n) => Box::new(b.try_clone().unwrap().take(n)),
            None => Box::new(b.try_clone().unwrap()),
        };
        let opts = WriteOpts { two_way: true, verbose: 0 };
        let create = if create { Create::Yes } else { Create::Refuse };
        let r = write(&PathOpener(slave), &opts, create, input, &b, &mut io::sink(), &log, &NO_STOP);
        drop(b);
        tx2.send(Ok((r, log.text()))).unwrap();
    });
    let mut rr = None;
    let mut wr = None;
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(60)).expect("conversation deadlocked") {
            Err(x) => rr = Some(x),
            Ok(x) => wr = Some(x),
        }
    }
    let (r, rlog) = rr.unwrap();
    let (w, wlog) = wr.unwrap();
    (r, w, rlog, wlog)
}

/// One-way: read into memory, then write from it.
fn one_way(e: &Env, ropts: ReadOpts, wopts: WriteOpts) -> (Vec<u8>, String, String, String) {
    let pfs = crate::pfs::open(&e.master, Access::Read).unwrap();
    let mut stream = Vec::new();
    let rlog = Record::default();
    read(pfs.as_ref(), &ropts, &mut stream, io::empty(), &rlog, &NO_STOP).unwrap();
    let mut out = Vec::new();
    let wlog = Record::default();
    let target = PathOpener(e.slave.clone());
    write(&target, &wopts, Create::Yes, &stream[..], io::sink(), &mut out, &wlog, &NO_STOP).unwrap();
    (stream, rlog.text(), wlog.text(), String::from_utf8(out).unwrap())
}

#[test]
fn two_way_full_then_incremental() {
    let e = env();
    e.make_slave();
    let t1 = e.import(0x1000, 20, 70_000);
    let (r, w, rlog, _) = two_way(&e, quiet(ReadOpts::default()), false, None);
    assert_eq!(r.unwrap().acked_tid, Some(t1));
    assert_eq!(w.unwrap().synced_tid, Some(t1));
    assert!(rlog.contains("Prescan to break up bulk transfer"), "{rlog}");
    assert!(rlog.contains(&format!("Mirror-read {} succeeded", e.master.display())), "{rlog}");
    e.assert_equal_as_of_sync();

    e.delete_obj(0x1003);
    let t2 = e.import(0x2000, 3, 10);
    let (r, _, _, _) = two_way(&e, quiet(ReadOpts::default()), false, None);
    assert_eq!(r.unwrap().acked_tid, Some(t2));
    assert_eq!(e.synced(), t2);
    e.assert_equal_as_of_sync();
    assert_eq!(visible(&e.slave, t1), visible(&e.master, t1), "history as of the first TID is kept");
}

#[test]
fn one_way_prints_the_synctid_hint_and_writes_the_cycle_file() {
    let e = env();
    let t1 = e.import(0x1000, 5, 100);
    let cyc = e._dir.path().join("cycle");
    let ropts = ReadOpts { cycle_file: Some(cyc.clone()), bulk: true, ..quiet(ReadOpts::default()) };
    let (_, rlog, wlog, out) = one_way(&e, ropts.clone(), WriteOpts::default());
    assert_eq!(out, format!("Source can update synctid to 0x{t1:016x}\n"));
    assert!(wlog.contains("Auto create new slave PFS"), "{wlog}");
    assert!(rlog.contains(&format!("Mirror-read: Mirror {:016x} to {t1:016x}\n", 1)), "{rlog}");
    assert!(rlog.contains(&format!("Cyclefile {} updated to 0x{t1:016x}", cyc.display())), "{rlog}");
    e.assert_equal_as_of_sync();
    // The next run starts where the cycle file says: nothing new.
    let (_, rlog, _, _) = one_way(&e, ropts, WriteOpts::default());
    assert!(rlog.contains("Mirror-read: No work to do"), "{rlog}");
}

#[test]
fn timeout_then_resume_from_the_cycle_file() {
    let e = env();
    e.make_slave();
    e.import(0x1000, 40, 65536); // ~2.6 MB: several 512 KiB reads
    let cyc = e._dir.path().join("cycle");
    let ropts = ReadOpts {
        cycle_file: Some(cyc.clone()),
        bulk: true,
        timeout: Some(Duration::ZERO),
        ..quiet(ReadOpts::default())
    };
    let (_, rlog, wlog, _) = one_way(&e, ropts.clone(), WriteOpts::default());
    assert!(rlog.contains("interrupted by timer"), "{rlog}");
    assert!(rlog.contains("updated for continuation"), "{rlog}");
    assert!(wlog.contains("received termination request"), "{wlog}");
    assert_eq!(e.synced(), 1, "an interrupted pass does not move sync_end_tid");
    let (_, rlog, _, _) = one_way(&e, ReadOpts { timeout: None, ..ropts }, WriteOpts::default());
    assert!(rlog.contains("Mirror-read: continuing the pass interrupted at object"), "{rlog}");
    e.assert_equal_as_of_sync();
    let tid = e.synced();
    assert_eq!(visible(&e.slave, tid).len(), visible(&e.master, tid).len());
    assert!(tid > 1);
}

#[test]
fn lost_links_at_any_offset_then_rerun_converge() {
    let e = env();
    e.make_slave();
    e.import(0x1000, 10, 100_000);
    e.import(0x2000, 10, 50_000);
    e.delete_obj(0x1002);
    let opts = ReadOpts { splitup: 200_000, ..quiet(ReadOpts::default()) };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..6 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let cut = seed % 2_000_000;
        let (_r, _w, _, _) = two_way(&e, opts.clone(), false, Some(cut));
        e.assert_equal_as_of_sync();
    }
    let (r, _, _, _) = two_way(&e, opts, false, None);
    r.unwrap();
    let m = Store::open(&e.master, Access::Read).unwrap().get_pseudofs().unwrap().sync_end_tid;
    assert_eq!(e.synced(), m);
    e.assert_equal_as_of_sync();
}

#[test]
fn prescan_chunks_are_acknowledged_one_by_one() {
    let e = env();
    e.make_slave();
    let t1 = e.import(0x1000, 4, 300_000);
    let t2 = e.import(0x2000, 4, 300_000);
    let t3 = e.import(0x3000, 4, 300_000);
    let opts = ReadOpts { splitup: 1 << 20, verbose: 2, ..quiet(ReadOpts::default()) };
    let (r, w, rlog, _) = two_way(&e, opts, false, None);
    let r = r.unwrap();
    assert!(r.passes >= 3, "{r:?}\n{rlog}");
    assert_eq!(w.unwrap().synced_tid, Some(t3));
    assert!(rlog.contains("Prescan 3 chunks"), "{rlog}");
    assert!(rlog.contains(&format!("to {t1:016x}")) && rlog.contains(&format!("to {t2:016x}")), "{rlog}");
    e.assert_equal_as_of_sync();
}

#[test]
fn refusals_exit_with_status_3() {
    // Different shared uuid.
    let e = env();
    Store::create(&e.slave, &pfsd(true, *uuid::Uuid::new_v4().as_bytes()), 1).unwrap();
    e.import(0x1000, 1, 10);
    let (r, w, _, _) = two_way(&e, quiet(ReadOpts::default()), false, None);
    let w = w.unwrap_err();
    assert_eq!(status_of(&w), Status::Refused);
    assert!(format!("{w:#}").contains("source and target have different shared-uuid's!"), "{w:#}");
    assert_eq!(status_of(&r.unwrap_err()), Status::Refused, "the source checks the uuid too");

    // A master as target.
    let e2 = env();
    Store::create(&e2.slave, &pfsd(false, e2.shared), 1).unwrap();
    let (_, w, _, _) = two_way(&e2, quiet(ReadOpts::default()), false, None);
    let w = w.unwrap_err();
    assert_eq!(status_of(&w), Status::Refused);
    assert!(format!("{w:#}").contains("target must be in slave mode"), "{w:#}");

    // A missing target without -y and without a terminal.
    let e3 = env();
    let (_, w, _, _) = two_way(&e3, quiet(ReadOpts::default()), false, None);
    let w = w.unwrap_err();
    assert_eq!(status_of(&w), Status::Refused);
    assert!(format!("{w:#}").contains("pass -y"), "{w:#}");
    assert!(!e3.slave.exists());

    // With -y it is created with the source's shared uuid.
    let (r, _, _, wlog) = two_way(&e3, quiet(ReadOpts::default()), true, None);
    r.unwrap();
    assert!(wlog.contains("Auto create new slave PFS"), "{wlog}");
    let s = Store::open(&e3.slave, Access::Read).unwrap().get_pseudofs().unwrap();
    assert!(s.is_slave());
    assert_eq!(s.shared_uuid, e3.shared);
}
