//! LMDB's on-disk format read with `pread`: the two meta pages, B-tree lookups and the free-page list, so that a store file is vetted before LMDB maps it.
//!
//! LMDB maps the file and trusts it: a file shorter than its meta page says
//! makes any access past the end a SIGBUS, and an empty file is taken for a
//! new database and initialized. So before LMDB gets a file, the store reads
//! what LMDB would (`mdb_env_read_header`: both meta pages, the newer one
//! wins, as `mdb_env_pick_meta`), checks that every page the newest meta
//! uses lies within the file, and looks up the store's own header (the
//! `meta` table's magic and layout) through the B-tree, all with bounds
//! checks and plain reads, never through a map.
//!
//! The layout is LMDB 0.9's (the `lmdb-master-sys` crate heed builds) on a
//! 64-bit host, in native byte order: `pgno_t` and `size_t` are 8 bytes.
//! "Actually the file may be shorter if the freeDB lists the final pages"
//! (lmdb's own comment on `mm_last_pg`): pages that were allocated and freed
//! in one transaction are never written, so a file may legitimately end
//! before its last page when the pages past its end are all free.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// `MDB_MAGIC`.
pub const MDB_MAGIC: u32 = 0xBEEF_C0DE;
/// `MDB_DATA_VERSION`.
pub const MDB_DATA_VERSION: u32 = 1;
/// `PAGEHDRSZ`: pgno (8), pad (2), flags (2), lower/upper or overflow page count (4).
const PAGEHDRSZ: usize = 16;
/// What `mdb_env_read_header` reads of a meta page: the header and `MDB_meta`.
pub const META_READ: usize = PAGEHDRSZ + 136;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;
const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;
const F_DUPDATA: u16 = 0x04;
/// `MDB_INTEGERKEY`, a tree's flag.
const MDB_INTEGERKEY: u16 = 0x08;
/// `offsetof(MDB_node, mn_data)`.
const NODESIZE: usize = 8;
/// `P_INVALID`: an empty tree's root.
pub const P_INVALID: u64 = u64::MAX;
/// `CURSOR_STACK`: LMDB's deepest tree.
const MAX_DEPTH: usize = 32;
/// Missing pages past the end of a file that are looked up in the free list
/// at most; a file shorter than that is damaged whatever the list says.
const MAX_MISSING_PAGES: u64 = 1 << 16;
/// Free-list pages read at most while looking for missing pages.
const MAX_FREE_LIST_PAGES: usize = 1 << 16;

/// Why a file is not a sound LMDB file (or could not be read).
#[derive(Debug)]
pub enum Problem {
    Io(io::Error),
    /// What is wrong, for "PFS file damaged: <path>: <what>".
    Bad(String),
}

impl From<io::Error> for Problem {
    fn from(e: io::Error) -> Self {
        Problem::Io(e)
    }
}

fn bad<T>(what: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Bad(what.into()))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `MDB_db`: one B-tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Db {
    pub flags: u16,
    pub depth: u16,
    pub entries: u64,
    pub root: u64,
}

impl Db {
    /// `sizeof(MDB_db)`.
    pub const SIZE: usize = 48;

    fn decode(b: &[u8]) -> Db {
        Db { flags: u16_at(b, 4), depth: u16_at(b, 6), entries: u64_at(b, 32), root: u64_at(b, 40) }
    }
}

/// `MDB_meta`: what a meta page says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub psize: u32,
    pub free: Db,
    pub main: Db,
    pub last_pg: u64,
    pub txnid: u64,
}

impl Meta {
    /// Bytes the pages up to `last_pg` take.
    pub fn full_len(&self) -> u64 {
        (self.last_pg + 1).saturating_mul(u64::from(self.psize))
    }
}

/// Decodes meta page `n` from the first [`META_READ`] bytes of the page.
fn decode_meta(b: &[u8], n: u32) -> Result<Meta, Problem> {
    if u16_at(b, 10) & P_META == 0 || u32_at(b, 16) != MDB_MAGIC {
        return bad(if n == 0 {
            "not a hammer-mirror PFS store file (no LMDB meta page at its start)".to_string()
        } else {
            format!("LMDB meta page {n} is damaged (no meta page magic)")
        });
    }
    let version = u32_at(b, 20);
    if version != MDB_DATA_VERSION {
        return bad(format!("LMDB meta page {n}: data format version {version}, this LMDB reads {MDB_DATA_VERSION}"));
    }
    let m = Meta {
        psize: u32_at(b, 40),
        free: Db::decode(&b[40..88]),
        main: Db::decode(&b[88..136]),
        last_pg: u64_at(b, 136),
        txnid: u64_at(b, 144),
    };
    if !m.psize.is_power_of_two() || !(512..=65536).contains(&m.psize) {
        return bad(format!("LMDB meta page {n}: page size {} is not one LMDB writes", m.psize));
    }
    if m.last_pg < 1 {
        return bad(format!("LMDB meta page {n}: last page {} is before the meta pages", m.last_pg));
    }
    for (name, db) in [("free list", m.free), ("main", m.main)] {
        if db.root != P_INVALID && (db.root < 2 || db.root > m.last_pg) {
            return bad(format!(
                "LMDB meta page {n}: the {name} tree's root page {} is outside pages 2..={}",
                db.root, m.last_pg
            ));
        }
    }
    Ok(m)
}

/// Reads both meta pages and returns the newer (`mdb_env_pick_meta`: the
/// higher transaction id; the first on a tie), with the file's length.
pub fn read_meta(f: &File) -> Result<(Meta, u64), Problem> {
    let len = f.metadata()?.len();
    if len == 0 {
        return bad("empty file, not a hammer-mirror PFS store file");
    }
    let mut b = [0u8; META_READ];
    if len < META_READ as u64 {
        return bad(format!("{len} bytes, too short for an LMDB meta page: not a hammer-mirror PFS store file"));
    }
    f.read_exact_at(&mut b, 0)?;
    let m0 = decode_meta(&b, 0)?;
    let second = u64::from(m0.psize);
    if len < second + META_READ as u64 {
        return bad(format!("the file is {len} bytes, shorter than LMDB's two meta pages (it was cut short)"));
    }
    f.read_exact_at(&mut b, second)?;
    let m1 = decode_meta(&b, 1)?;
    if m1.psize != m0.psize {
        return bad(format!("LMDB's meta pages disagree on the page size ({} and {})", m0.psize, m1.psize));
    }
    Ok((if m0.txnid < m1.txnid { m1 } else { m0 }, len))
}

/// A set of page numbers up to a file's last page (one bit each).
pub struct PageSet(Vec<u64>);

impl PageSet {
    pub fn new(last_pg: u64) -> PageSet {
        PageSet(vec![0; (last_pg / 64 + 1) as usize])
    }

    /// Adds `p`; false when it was there already or is past the last page.
    pub fn insert(&mut self, p: u64) -> bool {
        let Some(w) = self.0.get_mut((p / 64) as usize) else { return false };
        let bit = 1u64 << (p % 64);
        let new = *w & bit == 0;
        *w |= bit;
        new
    }
}

/// Pages of a file as the newest meta describes them, read with bounds checks.
pub struct Pages<'f> {
    f: &'f File,
    len: u64,
    meta: Meta,
}

/// One node of a branch or leaf page.
struct Node {
    flags: u16,
    key: Vec<u8>,
    /// Leaf: the data size. Branch: unused.
    dsize: u64,
    /// Leaf: the data (the overflow page number for F_BIGDATA). Branch: the child page.
    data: Vec<u8>,
    child: u64,
}

impl<'f> Pages<'f> {
    pub fn new(f: &'f File, meta: Meta, len: u64) -> Self {
        Pages { f, len, meta }
    }

    fn psize(&self) -> usize {
        self.meta.psize as usize
    }

    /// Page `pgno` (`count` pages for an overflow run).
    fn read(&self, pgno: u64, count: u64) -> Result<Vec<u8>, Problem> {
        if pgno < 2 || pgno.saturating_add(count - 1) > self.meta.last_pg {
            return bad(format!("page {pgno} is referenced but the last page is {}", self.meta.last_pg));
        }
        let off = pgno * u64::from(self.meta.psize);
        let n = count * u64::from(self.meta.psize);
        if off.saturating_add(n) > self.len {
            return bad(format!(
                "page {pgno} lies past the end of the file ({} bytes; LMDB's meta page uses {}): it was cut short",
                self.len,
                self.meta.full_len()
            ));
        }
        let mut page = vec![0u8; n as usize];
        self.f.read_exact_at(&mut page, off)?;
        let at = u64_at(&page, 0);
        if at != pgno {
            return bad(format!("page {pgno} is damaged (its header says page {at})"));
        }
        Ok(page)
    }

    /// The nodes of a branch or leaf page.
    fn nodes(&self, pgno: u64, page: &[u8]) -> Result<(u16, Vec<Node>), Problem> {
        let flags = u16_at(page, 10);
        let (lower, upper) = (u16_at(page, 12) as usize, u16_at(page, 14) as usize);
        if flags & (P_BRANCH | P_LEAF) == 0 || flags & P_OVERFLOW != 0 {
            return bad(format!("page {pgno} is damaged (flags {flags:#x}: neither a branch nor a leaf)"));
        }
        if lower < PAGEHDRSZ || lower > upper || upper > self.psize() {
            return bad(format!("page {pgno} is damaged (free space bounds {lower}..{upper})"));
        }
        let mut nodes = Vec::with_capacity((lower - PAGEHDRSZ) / 2);
        for i in 0..(lower - PAGEHDRSZ) / 2 {
            let off = u16_at(page, PAGEHDRSZ + 2 * i) as usize;
            if off < upper || off + NODESIZE > self.psize() {
                return bad(format!("page {pgno} is damaged (node {i} at offset {off})"));
            }
            // MDB_node: mn_lo, mn_hi (data size, or the child's page number with mn_flags), mn_flags, mn_ksize.
            #[cfg(target_endian = "little")]
            let (lo, hi) = (u16_at(page, off), u16_at(page, off + 2));
            #[cfg(target_endian = "big")]
            let (hi, lo) = (u16_at(page, off), u16_at(page, off + 2));
            let nflags = u16_at(page, off + 4);
            let ksize = u16_at(page, off + 6) as usize;
            let kend = off + NODESIZE + ksize;
            if kend > self.psize() {
                return bad(format!("page {pgno} is damaged (node {i}'s key runs past the page)"));
            }
            let key = page[off + NODESIZE..kend].to_vec();
            let size = u64::from(lo) | u64::from(hi) << 16;
            if flags & P_BRANCH != 0 {
                let child = size | u64::from(nflags) << 32;
                nodes.push(Node { flags: nflags, key, dsize: 0, data: Vec::new(), child });
                continue;
            }
            let dlen = if nflags & F_BIGDATA != 0 { 8 } else { size as usize };
            if kend + dlen > self.psize() {
                return bad(format!("page {pgno} is damaged (node {i}'s data runs past the page)"));
            }
            nodes.push(Node { flags: nflags, key, dsize: size, data: page[kend..kend + dlen].to_vec(), child: 0 });
        }
        Ok((flags, nodes))
    }

    /// The data of a leaf node (read from its overflow pages if it has them).
    fn node_data(&self, n: &Node) -> Result<Vec<u8>, Problem> {
        if n.flags & F_BIGDATA == 0 {
            return Ok(n.data.clone());
        }
        let pgno = u64_at(&n.data, 0);
        let first = self.read(pgno, 1)?;
        let count = u64::from(u32_at(&first, 12));
        if u16_at(&first, 10) & P_OVERFLOW == 0 || count == 0 {
            return bad(format!("page {pgno} is damaged (not the overflow page a record points to)"));
        }
        if n.dsize > count * u64::from(self.meta.psize) - PAGEHDRSZ as u64 {
            return bad(format!("page {pgno} is damaged (a record of {} bytes on {count} overflow pages)", n.dsize));
        }
        let run = self.read(pgno, count)?;
        Ok(run[PAGEHDRSZ..PAGEHDRSZ + n.dsize as usize].to_vec())
    }

    /// Looks up `key` in the tree `db`: its node flags and data.
    pub fn lookup(&self, db: &Db, key: &[u8]) -> Result<Option<(u16, Vec<u8>)>, Problem> {
        if db.root == P_INVALID {
            return Ok(None);
        }
        let mut pgno = db.root;
        for _ in 0..MAX_DEPTH {
            let page = self.read(pgno, 1)?;
            let (flags, nodes) = self.nodes(pgno, &page)?;
            if nodes.is_empty() {
                return if flags & P_LEAF != 0 { Ok(None) } else { bad(format!("page {pgno} is an empty branch")) };
            }
            if flags & P_BRANCH != 0 {
                // The last child whose first key is at or before `key` (the first child's key is implicit).
                let i = nodes.iter().skip(1).take_while(|n| n.key.as_slice() <= key).count();
                pgno = nodes[i].child;
                continue;
            }
            return match nodes.iter().find(|n| n.key == key) {
                Some(n) => Ok(Some((n.flags, self.node_data(n)?))),
                None => Ok(None),
            };
        }
        bad(format!("a B-tree deeper than {MAX_DEPTH} levels (page {pgno})"))
    }

    /// Walks every page of the tree `db` (`named`: the main tree, whose
    /// leaves name databases), checking what LMDB would trust: each page is
    /// the one referenced and referenced once (`seen`), a branch or a leaf
    /// at the depth the tree says, its nodes within the page, keys in
    /// strictly increasing order, no node flagged as duplicates, overflow
    /// runs of the right type and length, and as many entries as the tree
    /// says. Returns the pages it read (overflow runs counted by their
    /// length) and the leaf nodes' data sizes in bytes.
    pub fn walk(&self, db: &Db, named: bool, seen: &mut PageSet) -> Result<(u64, u64), Problem> {
        if db.root == P_INVALID {
            return if db.entries == 0 {
                Ok((0, 0))
            } else {
                bad(format!("an empty tree says it has {} entries", db.entries))
            };
        }
        let (mut pages, mut bytes, mut entries) = (0u64, 0u64, 0u64);
        let mut last: Option<Vec<u8>> = None;
        let mut stack = vec![(db.root, 1u16)];
        while let Some((pgno, depth)) = stack.pop() {
            if depth > db.depth || depth as usize > MAX_DEPTH {
                return bad(format!("page {pgno} lies deeper than the tree's {} levels", db.depth));
            }
            let page = self.read(pgno, 1)?;
            if !seen.insert(pgno) {
                return bad(format!("page {pgno} is referenced twice"));
            }
            pages += 1;
            let (flags, nodes) = self.nodes(pgno, &page)?;
            if flags & P_BRANCH != 0 {
                if nodes.is_empty() || depth == db.depth {
                    return bad(format!("page {pgno} is damaged (a branch page where a leaf belongs, or empty)"));
                }
                // Depth first, in key order: the first child on top.
                stack.extend(nodes.iter().rev().map(|n| (n.child, depth + 1)));
                continue;
            }
            if depth != db.depth {
                return bad(format!("leaf page {pgno} at level {depth} of a tree of {} levels", db.depth));
            }
            for n in &nodes {
                // MDB_INTEGERKEY trees (the free list) order keys as integers.
                if db.flags & MDB_INTEGERKEY == 0 && last.as_ref().is_some_and(|l| *l >= n.key) {
                    return bad(format!("page {pgno} is damaged (its keys are out of order)"));
                }
                last = Some(n.key.clone());
                if n.flags & F_DUPDATA != 0 || (n.flags & F_SUBDATA != 0 && !named) {
                    return bad(format!("page {pgno} is damaged (node flags {:#x} in a table without them)", n.flags));
                }
                if n.flags & F_BIGDATA != 0 {
                    let first = u64_at(&n.data, 0);
                    let head = self.read(first, 1)?;
                    let count = u64::from(u32_at(&head, 12));
                    if u16_at(&head, 10) & P_OVERFLOW == 0
                        || count == 0
                        || n.dsize > count * u64::from(self.meta.psize) - PAGEHDRSZ as u64
                    {
                        return bad(format!("page {first} is damaged (not the overflow run page {pgno} points to)"));
                    }
                    if first.saturating_add(count - 1) > self.meta.last_pg {
                        return bad(format!("overflow run at page {first} runs past the last page"));
                    }
                    for p in first..first + count {
                        if !seen.insert(p) {
                            return bad(format!("page {p} is referenced twice"));
                        }
                    }
                    pages += count;
                }
                bytes += n.dsize;
                entries += 1;
            }
        }
        if entries != db.entries {
            return bad(format!("the tree holds {entries} entries but says it has {}", db.entries));
        }
        Ok((pages, bytes))
    }

    /// The trees of the file: the free list, the main tree, and the named
    /// databases `names` (those the main tree has).
    pub fn trees(&self, names: &[&str]) -> Result<Vec<(String, Db)>, Problem> {
        let mut out = vec![("free list".to_string(), self.meta.free), ("main".to_string(), self.meta.main)];
        for name in names {
            if let Some(db) = self.named_db(name)? {
                out.push((name.to_string(), db));
            }
        }
        Ok(out)
    }

    /// The named database `name` of the main tree.
    pub fn named_db(&self, name: &str) -> Result<Option<Db>, Problem> {
        match self.lookup(&self.meta.main, name.as_bytes())? {
            None => Ok(None),
            Some((flags, d)) if flags & F_SUBDATA != 0 && d.len() == Db::SIZE => Ok(Some(Db::decode(&d))),
            Some(_) => bad(format!("the main tree's entry {name:?} is not a database")),
        }
    }

    /// The pages at or after `from` that the free list names.
    fn free_from(&self, from: u64) -> Result<HashSet<u64>, Problem> {
        let mut free = HashSet::new();
        if self.meta.free.root == P_INVALID {
            return Ok(free);
        }
        let mut stack = vec![(self.meta.free.root, 0usize)];
        let mut visited = 0usize;
        while let Some((pgno, depth)) = stack.pop() {
            visited += 1;
            if depth >= MAX_DEPTH || visited > MAX_FREE_LIST_PAGES {
                return bad("the free list is deeper or larger than LMDB writes");
            }
            let page = self.read(pgno, 1)?;
            let (flags, nodes) = self.nodes(pgno, &page)?;
            for n in &nodes {
                if flags & P_BRANCH != 0 {
                    stack.push((n.child, depth + 1));
                    continue;
                }
                // An IDL: a count, then that many page numbers.
                let idl = self.node_data(n)?;
                if idl.len() < 8 || idl.len() % 8 != 0 || u64_at(&idl, 0) as usize != idl.len() / 8 - 1 {
                    return bad(format!("page {pgno} is damaged (a free-list entry of {} bytes)", idl.len()));
                }
                free.extend(idl[8..].chunks_exact(8).map(|c| u64_at(c, 0)).filter(|&p| p >= from));
            }
        }
        Ok(free)
    }

    /// The length the file needs: every page up to the meta's last page,
    /// except a run of free pages at its end (see the module documentation).
    pub fn needed_len(&self) -> Result<u64, Problem> {
        let full = self.meta.full_len();
        if self.len >= full {
            return Ok(full);
        }
        let psize = u64::from(self.meta.psize);
        let present = self.len / psize;
        let short = || {
            bad(format!(
                "the file is {} bytes, but LMDB's meta page (transaction {}) uses {full}: it was cut short",
                self.len, self.meta.txnid
            ))
        };
        if self.meta.last_pg + 1 - present > MAX_MISSING_PAGES {
            return short();
        }
        // A free list that lies past the end too means the same.
        let free = match self.free_from(present) {
            Ok(free) => free,
            Err(Problem::Bad(_)) => return short(),
            Err(e) => return Err(e),
        };
        let end = used_end(self.meta.last_pg, &free);
        if end > present {
            return short();
        }
        Ok(end * psize)
    }
}

/// One past the last page up to `last_pg` that `free` does not name.
fn used_end(last_pg: u64, free: &HashSet<u64>) -> u64 {
    let mut end = last_pg + 1;
    while end > 2 && free.contains(&(end - 1)) {
        end -= 1;
    }
    end
}

/// What [`vet`] found in a sound store file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vetted {
    pub psize: u32,
    /// The transaction of the newest meta page.
    pub txnid: u64,
    /// Bytes the file must have (see [`Pages::needed_len`]).
    pub need: u64,
    /// The store's record layout (1 when the meta table has none).
    pub layout: u64,
}

/// Checks that `f` is a complete LMDB file holding a hammer-mirror store:
/// sound meta pages, long enough for them, and the store's magic.
pub fn vet(f: &File, magic: &[u8], meta_table: &str, magic_key: &str, layout_key: &str) -> Result<Vetted, Problem> {
    let (meta, len) = read_meta(f)?;
    let pages = Pages::new(f, meta, len);
    let need = pages.needed_len()?;
    let not_ours = |why: &str| bad(format!("not a hammer-mirror PFS store file ({why})"));
    let Some(table) = pages.named_db(meta_table)? else {
        return not_ours("an LMDB file without the store's tables");
    };
    match pages.lookup(&table, magic_key.as_bytes())? {
        Some((0, m)) if m == magic => {}
        _ => return not_ours("an LMDB file without the store's magic"),
    }
    let layout = match pages.lookup(&table, layout_key.as_bytes())? {
        None => 1,
        Some((0, v)) if v.len() == 8 => u64::from_le_bytes(v.try_into().expect("8 bytes")),
        Some(_) => return bad("the store's layout entry is damaged"),
    };
    Ok(Vetted { psize: meta.psize, txnid: meta.txnid, need, layout })
}

#[cfg(test)]
mod tests {
    use super::*;
    use heed::types::{Bytes, Str};

    const MAGIC: &[u8] = b"test magic";

    /// An LMDB file made by heed (NO_SUB_DIR) with a `meta` table holding a
    /// magic and a layout, `n` records of `size` bytes in a `data` table.
    fn make(dir: &std::path::Path, n: usize, size: usize) -> std::path::PathBuf {
        let path = dir.join("db");
        let mut opts = heed::EnvOpenOptions::new().read_txn_without_tls();
        opts.map_size(1 << 30).max_dbs(4);
        // SAFETY (test): a fresh file only this test opens.
        #[allow(unsafe_code)]
        let env = unsafe {
            opts.flags(heed::EnvFlags::NO_SUB_DIR);
            opts.open(&path).unwrap()
        };
        let mut txn = env.write_txn().unwrap();
        let meta = env.create_database::<Str, Bytes>(&mut txn, Some("meta")).unwrap();
        let data = env.create_database::<Bytes, Bytes>(&mut txn, Some("data")).unwrap();
        meta.put(&mut txn, "magic", MAGIC).unwrap();
        meta.put(&mut txn, "layout", &7u64.to_le_bytes()).unwrap();
        for i in 0..n {
            data.put(&mut txn, &(i as u64).to_be_bytes(), &vec![i as u8; size]).unwrap();
        }
        txn.commit().unwrap();
        // Some frees, so that the free list has entries.
        let mut txn = env.write_txn().unwrap();
        for i in (0..n).step_by(3) {
            data.delete(&mut txn, &(i as u64).to_be_bytes()).unwrap();
        }
        txn.commit().unwrap();
        drop(env);
        path
    }

    fn vet_path(p: &std::path::Path) -> Result<Vetted, Problem> {
        vet(&File::open(p).unwrap(), MAGIC, "meta", "magic", "layout")
    }

    fn bad_text(r: Result<Vetted, Problem>) -> String {
        match r {
            Err(Problem::Bad(s)) => s,
            other => panic!("expected a damage report, got {other:?}"),
        }
    }

    #[test]
    fn a_sound_file_is_vetted_and_its_header_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = make(dir.path(), 3000, 300);
        let v = vet_path(&p).unwrap();
        assert_eq!(v.layout, 7);
        assert_eq!(v.psize, 4096);
        assert!(v.need <= std::fs::metadata(&p).unwrap().len());
        // A tree deep enough to have branch pages, and big values on overflow pages.
        let f = File::open(&p).unwrap();
        let (meta, len) = read_meta(&f).unwrap();
        let pages = Pages::new(&f, meta, len);
        let data = pages.named_db("data").unwrap().unwrap();
        assert!(data.depth >= 2, "{data:?}");
        let (_, v) = pages.lookup(&data, &1000u64.to_be_bytes()).unwrap().unwrap();
        assert_eq!(v, vec![1000u64 as u8; 300]);
        assert!(pages.lookup(&data, &999u64.to_be_bytes()).unwrap().is_none(), "deleted");
        let big_dir = tempfile::tempdir().unwrap();
        let big = make(big_dir.path(), 4, 20_000);
        let f = File::open(&big).unwrap();
        let (meta, len) = read_meta(&f).unwrap();
        let pages = Pages::new(&f, meta, len);
        let data = pages.named_db("data").unwrap().unwrap();
        assert_eq!(pages.lookup(&data, &2u64.to_be_bytes()).unwrap().unwrap().1, vec![2u8; 20_000]);
    }

    #[test]
    fn foreign_short_and_truncated_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = make(dir.path(), 3000, 300);
        let bytes = std::fs::read(&p).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"").unwrap();
        assert!(bad_text(vet_path(&other)).contains("empty file"));
        std::fs::write(&other, vec![0x41u8; 10_000]).unwrap();
        assert!(bad_text(vet_path(&other)).contains("not a hammer-mirror PFS store file"));
        let need = vet_path(&p).unwrap().need;
        let mut failed = 0;
        for cut in (0..bytes.len()).step_by(4096).chain((100..bytes.len()).step_by(4096)) {
            std::fs::write(&other, &bytes[..cut]).unwrap();
            match vet_path(&other) {
                Err(Problem::Bad(s)) => {
                    failed += 1;
                    assert!(!s.is_empty());
                }
                Err(Problem::Io(e)) => panic!("cut at {cut}: {e}"),
                // Only a cut that removes free pages alone may pass.
                Ok(v) => assert!(v.need <= cut as u64 && (cut as u64) < need, "cut at {cut}: {v:?}"),
            }
        }
        assert!(failed > 0);
        // Another program's LMDB file: sound, but not ours.
        let e = vet(&File::open(&p).unwrap(), b"another magic", "meta", "magic", "layout");
        assert!(bad_text(e).contains("without the store's magic"));
        let e = vet(&File::open(&p).unwrap(), MAGIC, "nosuch", "magic", "layout");
        assert!(bad_text(e).contains("without the store's tables"));
    }

    #[test]
    fn a_missing_tail_of_free_pages_is_not_damage() {
        // Pages 8 and 9 free: a file of 8 pages is complete, one of 7 is not.
        let free: HashSet<u64> = [3, 8, 9].into();
        assert_eq!(used_end(9, &free), 8);
        assert_eq!(used_end(9, &HashSet::new()), 10);
        assert_eq!(used_end(3, &[2, 3].into()), 2, "never below the meta pages");
        // The free list of a real file is read: the deletions freed pages.
        let dir = tempfile::tempdir().unwrap();
        let p = make(dir.path(), 3000, 300);
        let f = File::open(&p).unwrap();
        let (meta, len) = read_meta(&f).unwrap();
        let free = Pages::new(&f, meta, len).free_from(0).unwrap();
        assert!(!free.is_empty());
        assert!(free.iter().all(|&pg| (2..=meta.last_pg).contains(&pg)), "{free:?}");
        // A meta page claiming pages the file lacks and the free list does not name: cut short.
        let claims_more = Meta { last_pg: meta.last_pg + 3, ..meta };
        let e = Pages::new(&f, claims_more, len).needed_len();
        assert!(matches!(&e, Err(Problem::Bad(s)) if s.contains("cut short")), "{e:?}");
    }
}
