//! Tests of how store files are opened, shared within a process and checked at each transaction.

use super::tests::new_pfsd;
use super::*;

fn master(dir: &Path) -> PathBuf {
    let p = dir.join("m");
    Store::create(&p, &new_pfsd(false, [7; 16]), 1).unwrap();
    p
}

#[test]
fn opening_and_dropping_from_many_threads_never_opens_a_file_twice() {
    // The last Store of a file dropping on one thread while another opens it:
    // the opener must wait until the environment is closed (LMDB allows one
    // per file and process), never fail nor open a second one.
    let dir = tempfile::tempdir().unwrap();
    let p = master(dir.path());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || {
                for n in 0..1500 {
                    let access = if i == 0 && n % 2 == 0 { Access::Write } else { Access::Read };
                    let s = Store::open(&p, access).unwrap_or_else(|e| panic!("thread {i}, round {n}: {e}"));
                    assert_eq!(s.get_pseudofs().unwrap().shared_uuid, [7; 16]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread failed");
    }
}

#[test]
fn a_file_cut_short_while_open_is_damaged_at_the_next_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let p = master(dir.path());
    let s = Store::open(&p, Access::Read).unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    for cut in [len / 2 / 4096 * 4096, 8192, 4096, 100, 0] {
        f.set_len(cut).unwrap();
        let e = s.get_pseudofs().unwrap_err().to_string();
        assert!(e.starts_with(&format!("PFS file damaged: {}: the file is {cut} bytes now", p.display())), "{e}");
        assert!(e.contains("cut short while open"), "{e}");
    }
}

#[test]
fn a_file_that_is_not_a_store_gets_nothing_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    for (content, says) in [
        (&b""[..], "empty file, not a hammer-mirror PFS store file"),
        (&[0x55u8; 9000][..], "not a hammer-mirror PFS store file (no LMDB meta page at its start)"),
    ] {
        std::fs::write(&p, content).unwrap();
        for access in [Access::Read, Access::Write] {
            let e = Store::open(&p, access).err().expect("refused").to_string();
            assert_eq!(e, format!("PFS file damaged: {}: {says}", p.display()));
            assert_eq!(std::fs::read(&p).unwrap(), content, "unchanged");
            assert!(!layout::lock_path(&p).exists(), "no lock file beside it");
        }
    }
    // Another program's LMDB file is not ours either.
    let other = dir.path().join("other");
    let s = Store::create(&other, &new_pfsd(true, [1; 16]), 1).unwrap();
    let mut txn = s.write_txn().unwrap();
    s.put_meta(&mut txn, layout::MAGIC_KEY, b"somebody else").unwrap();
    s.commit(txn, "test").unwrap();
    drop(s);
    let e = Store::open(&other, Access::Read).err().expect("refused").to_string();
    assert!(e.ends_with("not a hammer-mirror PFS store file (an LMDB file without the store's magic)"), "{e}");
}

#[test]
fn a_new_store_is_created_0600_and_complete_or_not_at_all() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s");
    let e = Store::create_with(&p, &new_pfsd(true, [2; 16]), 1, |_| Err(PfsError::invalid(&p, "init", "failed")))
        .err()
        .expect("init failed");
    assert!(e.to_string().contains("init: failed"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no store, no temporaries");
    let s = Store::create(&p, &new_pfsd(true, [2; 16]), 1).unwrap();
    for f in [p.clone(), layout::lock_path(&p)] {
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{f:?}");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "the store and its lock file only: {names:?}");
    assert!(s.is_writable());
    drop(s);
    let e = Store::create(&p, &new_pfsd(true, [2; 16]), 1).err().expect("exists").to_string();
    assert!(e.contains("cannot create PFS, file exists"), "{e}");
}
