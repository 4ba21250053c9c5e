//! Mutation fuzzing on stable Rust (proptest): valid streams with flipped bits, truncations, splices,
//! duplicates and rewritten size/type fields, fed to the decoder and to the write half on a scratch store.
//! No panic, no unbounded allocation, no hang, and a rejected stream leaves the target at its last synced
//! TID with the same visible records. PROPTEST_CASES (default 64 here) runs a longer session, e.g.
//! `PROPTEST_CASES=20000 cargo test --release --test it fuzz`.
//!
//! Each promise is checked: a panic fails the case; the heap this thread holds
//! while decoding and writing is metered (`util::peak_heap`) against P7's
//! 64 MiB; each case runs on its own thread and fails when it takes longer
//! than a bound no sane run reaches; and after a rejected stream the slave's
//! visible state is the one it had at its last synced TID: before the stream,
//! or as the last completed pass left it (taken when the write half reports
//! the pass done). The unmutated stream must be accepted and leave the slave
//! equal to the master.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use hammer_mirror::event::Ignore;
use hammer_mirror::event::{Event, Observer};
use hammer_mirror::ioctl::Pfs;
use hammer_mirror::mirror::read::{ReadOpts, read};
use hammer_mirror::mirror::write::{Create, WriteOpts, write};
use hammer_mirror::mrecord::RecordReader;
use hammer_mirror::pfs::PathOpener;
use hammer_mirror::store::master::MasterTxn;
use hammer_mirror::store::{Access, Store};
use proptest::prelude::*;

static NO_STOP: AtomicBool = AtomicBool::new(false);

/// The most heap one case may hold (P7's bound for a whole run).
const HEAP_BOUND: usize = 64 << 20;

/// Longer than any case takes on a loaded machine: reaching it means a hang.
const HANG_BOUND: Duration = Duration::from_secs(120);

/// A master with two transactions and the one-way stream of both.
fn valid_stream(dir: &Path) -> (Vec<u8>, [u8; 16]) {
    let mut pfsd = hammer_mirror::pfs::init_pfsd(false);
    let m = Store::create(&dir.join("m"), &pfsd, 1).unwrap();
    for round in 0..2u8 {
        let mut t = MasterTxn::begin(&m).unwrap();
        for obj in 0..6 {
            t.create(1, 0x1000 + obj + round as i64 * 10, 1, 0, 2, &[round; 128]).unwrap();
            t.create(
                2,
                0x1000 + obj,
                0x10,
                (round as i64 + 1) * 16384,
                2,
                &vec![obj as u8 ^ round; 300 + obj as usize * 97],
            )
            .unwrap();
        }
        t.commit().unwrap();
    }
    pfsd = m.get_pseudofs().unwrap();
    let mut out = Vec::new();
    let opts = ReadOpts { bulk: true, ..ReadOpts::default() };
    read(&m, &opts, &mut out, io::empty(), &Ignore, &NO_STOP).unwrap();
    (out, pfsd.shared_uuid)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Truncate { at: usize },
    Splice { from: usize, len: usize, to: usize },
    Duplicate { from: usize, len: usize },
    SetU32 { at: usize, value: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..400, any::<usize>()).prop_map(|(from, len, to)| Mutation::Splice { from, len, to }),
        (any::<usize>(), 1usize..400).prop_map(|(from, len)| Mutation::Duplicate { from, len }),
        // rec_size / type fields sit at 8 and 12 of each head; aim near heads and anywhere.
        (
            any::<usize>(),
            prop_oneof![
                Just(0u32),
                Just(u32::MAX),
                Just(16),
                Just(24),
                Just(80),
                Just(96),
                Just(316),
                Just(65856),
                Just(65857),
                any::<u32>()
            ]
        )
            .prop_map(|(at, value)| Mutation::SetU32 { at, value }),
    ]
}

fn apply(stream: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut s = stream.to_vec();
    for m in muts {
        let n = s.len().max(1);
        match *m {
            Mutation::Flip { at, bit } => {
                if !s.is_empty() {
                    s[at % n] ^= 1 << bit;
                }
            }
            Mutation::Truncate { at } => s.truncate(at % (n + 1)),
            Mutation::Splice { from, len, to } => {
                let from = from % n;
                let piece: Vec<u8> = s[from.min(s.len())..(from + len).min(s.len())].to_vec();
                let to = to % (s.len() + 1);
                s.splice(to..to, piece);
            }
            Mutation::Duplicate { from, len } => {
                let from = from % n;
                let piece: Vec<u8> = s[from.min(s.len())..(from + len).min(s.len())].to_vec();
                let at = (from + len).min(s.len());
                s.splice(at..at, piece);
            }
            Mutation::SetU32 { at, value } => {
                // Snap to a field of some record head (offset 8 or 12 from an 8-aligned start) half the time.
                let at = if at % 2 == 0 { (at % n) & !7 | if at % 4 == 0 { 8 } else { 12 } } else { at % n };
                if at + 4 <= s.len() {
                    s[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
    s
}

/// A synced TID and the records visible then.
type State = (u64, Vec<(u64, i64, i64, Vec<u8>)>);

/// The PFS's records visible as of `tid` (its sync_end_tid when None).
fn state(path: &Path, tid: Option<u64>) -> State {
    let s = Store::open(path, Access::Read).unwrap();
    let tid = tid.unwrap_or_else(|| s.get_pseudofs().unwrap().sync_end_tid);
    let mut v = Vec::new();
    s.for_each_as_of(tid, |l, d| {
        v.push((l.base.create_tid, l.base.obj_id, l.base.key, d.to_vec()));
        Ok(())
    })
    .unwrap();
    (tid, v)
}

/// Takes the slave's visible state each time the write half reports a pass
/// synced: what a later failure must leave it at.
struct LastSynced {
    slave: PathBuf,
    state: Mutex<Option<State>>,
}

impl Observer for LastSynced {
    fn event(&self, e: &Event) {
        if let Event::PassDone(p) = e {
            let now = state(&self.slave, None);
            assert_eq!(now.0, p.tid_end, "PassDone before the slave shows the TID");
            *self.state.lock().unwrap() = Some(now);
        }
    }
}

/// What one case saw: the write half's verdict and the slave's states.
struct Outcome {
    written: Result<(), String>,
    before: State,
    last_synced: Option<State>,
    after: State,
    peak_heap: usize,
}

/// Decodes `bad` alone, then writes it to a fresh slave of `shared`, on this thread.
fn run_case(dir: &Path, bad: &[u8], shared: [u8; 16]) -> Result<Outcome, String> {
    // The decoder alone: every record either decodes or is an error, and it always progresses.
    let mut r = RecordReader::new(bad);
    let mut guard = 0;
    loop {
        guard += 1;
        if guard >= 100_000 {
            return Err("the decoder did not progress".into());
        }
        match r.next_batch() {
            Err(_) => break,
            Ok(b) if b.records > 0 => continue,
            Ok(_) => {}
        }
        match r.next_record() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if r.offset() as usize > bad.len() {
        return Err(format!("decoder offset {} beyond the stream's {} bytes", r.offset(), bad.len()));
    }

    // The write half on a slave synced to nothing.
    let slave = dir.join("s");
    let mut p = hammer_mirror::pfs::init_pfsd(true);
    p.shared_uuid = shared;
    drop(Store::create(&slave, &p, 1).unwrap());
    let before = state(&slave, None);
    let seen = LastSynced { slave: slave.clone(), state: Mutex::new(None) };
    let (result, peak_heap) = crate::util::peak_heap(|| {
        write(
            &PathOpener(slave.clone()),
            &WriteOpts::default(),
            Create::Refuse,
            bad,
            io::sink(),
            &mut io::sink(),
            &seen,
            &NO_STOP,
        )
    });
    Ok(Outcome {
        written: result.map(|_| ()).map_err(|e| format!("{e:#}")),
        before,
        last_synced: seen.state.into_inner().unwrap(),
        after: state(&slave, None),
        peak_heap,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_streams_never_panic_and_never_half_apply(muts in prop::collection::vec(mutation(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let (stream, shared) = valid_stream(dir.path());
        let bad = apply(&stream, &muts);
        let master_tid = state(&dir.path().join("m"), None).0;
        let master = state(&dir.path().join("m"), Some(master_tid));

        let (tx, rx) = mpsc::channel();
        let (case_dir, case_bad) = (dir.path().to_path_buf(), bad.clone());
        std::thread::spawn(move || {
            let _ = tx.send(run_case(&case_dir, &case_bad, shared));
        });
        let outcome = match rx.recv_timeout(HANG_BOUND) {
            Ok(o) => o,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {HANG_BOUND:?} on {muts:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("panicked on {muts:?}"),
        };
        let o = match outcome {
            Ok(o) => o,
            Err(why) => panic!("{why} on {muts:?}"),
        };
        prop_assert!(o.peak_heap <= HEAP_BOUND, "held {} bytes of heap on {:?}", o.peak_heap, muts);
        if let Err(why) = &o.written {
            // Rejected: the slave is where its last synced TID left it.
            let want = o.last_synced.as_ref().unwrap_or(&o.before);
            prop_assert_eq!(&o.after, want, "after the refusal ({}) of {:?}", why, muts);
        }
        if bad == stream {
            prop_assert!(o.written.is_ok(), "the valid stream was refused: {:?}", o.written);
            prop_assert_eq!(&o.after, &master, "the valid stream did not make the slave the master's copy");
        }
    }
}
