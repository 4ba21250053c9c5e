//! `dump`: print the records of a mirror stream exactly as DragonFly's `hammer mirror-dump` does.
//!
//! Only REC, PASS and SKIP records produce output (PFSD, SYNC, IDLE, UPDATE and
//! TERM are silent, as in the seed's `hammer_cmd_mirror_dump`). stdout is
//! byte for byte hammer's, including its quirk of marking `(BAD CRC)` only for
//! the exact type 0x80000001 (the kernel sends 0xC0000001); so that such a
//! record is not missed, a line on stderr names every record the source
//! flagged with a data CRC error. Unlike hammer, a malformed stream is an
//! error naming the byte offset.

use std::io::{self, Read, Write};

use crate::mrecord::{Record, RecordReader, rtype};

/// Totals of a dump, for messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DumpStats {
    pub records: u64,
    pub bytes: u64,
    /// Records flagged with a source data CRC error.
    pub bad_crc: u64,
}

/// Writes hammer's text lines for one record.
pub fn print_record(out: &mut impl Write, rec: &Record<'_>) -> io::Result<()> {
    match rec {
        Record::Rec { rtype: t, leaf, .. } => {
            let b = &leaf.base;
            write!(out, "Record obj={:016x} key={:016x} rt={:02x} ot={:02x}", b.obj_id, b.key, b.rec_type, b.obj_type)?;
            if *t == rtype::REC_BADCRC {
                out.write_all(b" (BAD CRC)")?;
            }
            writeln!(out)?;
            writeln!(out, "       tids {:016x}:{:016x} data={}", b.create_tid, b.delete_tid, leaf.data_len)
        }
        Record::Pass { leaf } => {
            let b = &leaf.base;
            writeln!(
                out,
                "Pass   obj={:016x} key={:016x} rt={:02x} ot={:02x}",
                b.obj_id, b.key, b.rec_type, b.obj_type
            )?;
            writeln!(out, "       tids {:016x}:{:016x} data={}", b.create_tid, b.delete_tid, leaf.data_len)
        }
        Record::Skip { beg, end } => writeln!(
            out,
            "Skip   obj={:016x} key={:016x} rt={:02x} to\n       obj={:016x} key={:016x} rt={:02x}",
            beg.obj_id, beg.key, beg.rec_type, end.obj_id, end.key, end.rec_type
        ),
        _ => Ok(()),
    }
}

/// Reads a stream until its end and prints every record. A broken pipe on
/// `out` ends the dump quietly (as `dump | head` expects).
pub fn dump(input: impl Read, out: impl Write) -> anyhow::Result<DumpStats> {
    let mut reader = RecordReader::new(input);
    let mut out = io::BufWriter::with_capacity(1 << 16, out);
    let mut stats = DumpStats::default();
    let result = (|| -> anyhow::Result<()> {
        while let Some(rec) = reader.next_record()? {
            stats.records += 1;
            print_record(&mut out, &rec)?;
            if let Record::Rec { rtype: t, leaf, .. } = &rec
                && t & rtype::CRC_ERROR != 0
            {
                stats.bad_crc += 1;
                eprintln!(
                    "mirror-dump: record obj={:016x} key={:016x} carries a source data CRC error (type {t:#010x})",
                    leaf.base.obj_id, leaf.base.key
                );
            }
        }
        out.flush()?;
        Ok(())
    })();
    stats.bytes = reader.offset();
    match result {
        Err(e) => {
            // Keep what was printed before the bad record.
            let _ = out.flush();
            Err(e.context("mirror-dump"))
        }
        Ok(()) => Ok(stats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mrecord::{BaseElm, LeafElm};

    #[test]
    fn lines_match_hammer_format() {
        let leaf = LeafElm {
            base: BaseElm {
                obj_id: -2,
                key: 0x4000,
                create_tid: 0x10,
                delete_tid: 0,
                rec_type: 0x10,
                obj_type: 2,
                ..Default::default()
            },
            data_len: 3,
            ..Default::default()
        };
        let mut s = Vec::new();
        print_record(&mut s, &Record::Rec { rtype: rtype::REC, leaf, data: &[1, 2, 3] }).unwrap();
        print_record(&mut s, &Record::Rec { rtype: 0x8000_0001, leaf, data: &[1, 2, 3] }).unwrap();
        print_record(&mut s, &Record::Rec { rtype: 0xC000_0001, leaf, data: &[1, 2, 3] }).unwrap();
        print_record(&mut s, &Record::Pass { leaf }).unwrap();
        print_record(&mut s, &Record::Skip { beg: leaf.base, end: BaseElm::key_end_init() }).unwrap();
        print_record(&mut s, &Record::Sync).unwrap();
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "Record obj=fffffffffffffffe key=0000000000004000 rt=10 ot=02\n\
             \x20      tids 0000000000000010:0000000000000000 data=3\n\
             Record obj=fffffffffffffffe key=0000000000004000 rt=10 ot=02 (BAD CRC)\n\
             \x20      tids 0000000000000010:0000000000000000 data=3\n\
             Record obj=fffffffffffffffe key=0000000000004000 rt=10 ot=02\n\
             \x20      tids 0000000000000010:0000000000000000 data=3\n\
             Pass   obj=fffffffffffffffe key=0000000000004000 rt=10 ot=02\n\
             \x20      tids 0000000000000010:0000000000000000 data=3\n\
             Skip   obj=fffffffffffffffe key=0000000000004000 rt=10 to\n\
             \x20      obj=7fffffffffffffff key=7fffffffffffffff rt=ffff\n"
        );
    }

    #[test]
    fn bad_input_names_the_offset() {
        let mut v = Vec::new();
        Record::Sync.encode_to_vec(&mut v);
        Record::Sync.encode_to_vec(&mut v);
        v[24 + 20] ^= 1;
        let err = dump(&v[..], io::sink()).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "mirror-dump: malformed record at byte 24: bad record CRC {:#010x}, computed {:#010x}",
                u32::from_le_bytes(v[28..32].try_into().unwrap()),
                crate::hammerfs::crc32(&v[32..48])
            )
        );
    }
}
