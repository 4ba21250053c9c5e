//! The PFS commands as hammer(8) spells them: pfs-master, pfs-slave, pfs-status, pfs-update, pfs-upgrade, pfs-downgrade, pfs-destroy.
//!
//! Options are hammer's `name=value` words (`parse_pfsd_options` of
//! `sbin/hammer/cmd_pseudofs.c`), and `pfs-status` prints `dump_pfsd`'s
//! lines. These commands create and change store PFSs; on a HAMMER mount
//! they reach the kernel through the same `Pfs` trait.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

use crate::error::MirrorError::{Refused, Usage};
use crate::ioctl::Pfs;
use crate::mrecord::{PseudofsData, set_c_str, uuid_from_wire, uuid_to_wire};
use crate::store::Access;

/// Applies hammer's `name=value` options to a PFS description.
pub fn parse_options(pfsd: &mut PseudofsData, opts: &[String]) -> anyhow::Result<()> {
    for opt in opts {
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt.as_str(), None),
        };
        let need = || value.ok_or_else(|| Usage(format!("option {name} requires an assignment")));
        match name {
            "sync-beg-tid" => pfsd.sync_beg_tid = parse_hex_tid(name, need()?)?,
            "sync-end-tid" => pfsd.sync_end_tid = parse_hex_tid(name, need()?)?,
            "shared-uuid" => pfsd.shared_uuid = parse_uuid(name, need()?)?,
            "unique-uuid" => pfsd.unique_uuid = parse_uuid(name, need()?)?,
            "label" => {
                let v = need()?;
                let v = match v.strip_prefix('"') {
                    Some(x) => x.strip_suffix('"').ok_or_else(|| Usage(format!("option {name}: malformed string")))?,
                    None => v,
                };
                if v.len() >= 64 {
                    bail!(Usage(format!("option label: '{v}' is too long (63 bytes at most)")));
                }
                set_c_str(&mut pfsd.label, v.as_bytes());
            }
            "snapshots" => {
                let v = need()?;
                if !v.starts_with('/') {
                    bail!(Usage(format!("option snapshots: '{v}' must be an absolute path")));
                }
                if v.len() >= 64 {
                    bail!(Usage(format!("option snapshots: '{v}' is too long (63 bytes at most)")));
                }
                set_c_str(&mut pfsd.snapshots, v.as_bytes());
            }
            "snapshots-clear" => {
                if value.is_some_and(|v| !v.is_empty()) {
                    bail!(Usage("option snapshots-clear takes no value".into()));
                }
                pfsd.snapshots = [0; 64];
            }
            "prune-min" => pfsd.prune_min = parse_prune_min(need()?)?,
            _ => bail!(Usage(format!(
                "invalid option: {name} (known: sync-beg-tid, sync-end-tid, shared-uuid, unique-uuid, label, snapshots, snapshots-clear, prune-min)"
            ))),
        }
    }
    Ok(())
}

fn parse_hex_tid(name: &str, v: &str) -> anyhow::Result<u64> {
    let digits = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")).unwrap_or(v);
    u64::from_str_radix(digits, 16).map_err(|_| Usage(format!("option {name}: '{v}' is not a hexadecimal TID")).into())
}

fn parse_uuid(name: &str, v: &str) -> anyhow::Result<[u8; 16]> {
    if v.len() != 36 {
        bail!(Usage(format!("option {name}: error parsing uuid {v}")));
    }
    let u = uuid::Uuid::parse_str(v).map_err(|_| Usage(format!("option {name}: error parsing uuid {v}")))?;
    Ok(uuid_to_wire(&u))
}

/// `prune-min=<N>d`, `[<N>d/]hh[:mm[:ss]]` or seconds, as cmd_pseudofs.c reads it.
pub fn parse_prune_min(v: &str) -> anyhow::Result<i32> {
    let bad = || Usage(format!("option {v}: illegal time spec, use Nd or [Nd/]hh[:mm[:ss]]"));
    let (days, rest) = match v.split_once('d') {
        Some((d, r)) => (d.parse::<i64>().map_err(|_| bad())?, r.strip_prefix('/').unwrap_or(r)),
        None => (0, v),
    };
    let mut secs = days * 86_400;
    if !rest.is_empty() {
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() > 3 {
            return Err(bad().into());
        }
        let mul = [3600, 60, 1];
        for (p, m) in parts.iter().zip(mul) {
            secs += p.parse::<i64>().map_err(|_| bad())? * m;
        }
    }
    i32::try_from(secs).map_err(|_| bad().into())
}

/// `dump_pfsd`'s `prune-min=` value.
pub fn format_prune_min(p: i32) -> String {
    let (d, h, m, s) = (p / 86_400, p / 3600 % 24, p / 60 % 60, p % 60);
    if p < 86_400 {
        format!("{h:02}:{m:02}:{s:02}")
    } else if p % 86_400 != 0 {
        format!("{d}d/{h:02}:{m:02}:{s:02}")
    } else {
        format!("{d}d")
    }
}

/// `pfs-status` lines for one PFS (hammer's `PFS#N {` ... `}` block).
pub fn status_text(path: &Path, pfs_id: i32, p: &PseudofsData) -> String {
    format!("{}\tPFS#{pfs_id} {{\n{}}}\n", path.display(), dump_pfsd(p))
}

/// `dump_pfsd`: the indented field lines.
pub fn dump_pfsd(p: &PseudofsData) -> String {
    let mut s = String::new();
    s += &format!("    sync-beg-tid=0x{:016x}\n", p.sync_beg_tid);
    s += &format!("    sync-end-tid=0x{:016x}\n", p.sync_end_tid);
    s += &format!("    shared-uuid={}\n", uuid_from_wire(&p.shared_uuid));
    s += &format!("    unique-uuid={}\n", uuid_from_wire(&p.unique_uuid));
    s += &format!("    label=\"{}\"\n", p.label_str());
    if p.snapshots[0] != 0 {
        s += &format!("    snapshots=\"{}\"\n", p.snapshots_str());
    }
    s += &format!("    prune-min={}\n", format_prune_min(p.prune_min));
    s += if p.is_slave() { "    operating as a SLAVE\n" } else { "    operating as a MASTER\n" };
    s
}

/// `pfs-status --json`: one object per PFS.
pub fn status_json(path: &Path, pfs_id: i32, p: &PseudofsData) -> serde_json::Value {
    serde_json::json!({
        "pfs": path.display().to_string(),
        "pfs_id": pfs_id,
        "mode": if p.is_slave() { "slave" } else { "master" },
        "time": crate::log::timestamp(),
        "event": "pfs-status",
        "sync_beg_tid": format!("0x{:016x}", p.sync_beg_tid),
        "sync_end_tid": format!("0x{:016x}", p.sync_end_tid),
        "shared_uuid": uuid_from_wire(&p.shared_uuid).to_string(),
        "unique_uuid": uuid_from_wire(&p.unique_uuid).to_string(),
        "label": p.label_str(),
        "snapshots": p.snapshots_str(),
        "prune_min": p.prune_min,
    })
}

/// pfs-master / pfs-slave.
pub fn create(path: &Path, slave: bool, opts: &[String], out: &mut dyn Write) -> anyhow::Result<()> {
    if crate::pfs::exists(path) {
        bail!("Cannot create {}, file exists!", path.display());
    }
    let mut pfsd = crate::pfs::init_pfsd(slave);
    parse_options(&mut pfsd, opts)?;
    if !slave && pfsd.sync_end_tid < pfsd.sync_beg_tid {
        bail!(Usage("sync-end-tid must not be below sync-beg-tid".into()));
    }
    let store = crate::pfs::create_store(path, &pfsd).context(if slave { "pfs-slave" } else { "pfs-master" })?;
    writeln!(out, "Creating PFS#{} ({})\tsucceeded!", store.pfs_id(), path.display())?;
    write!(out, "{}\n{}", path.display(), dump_pfsd(&store.get_pseudofs()?))?;
    Ok(())
}

/// pfs-status for each path; `json` prints one object per line.
pub fn status(paths: &[std::path::PathBuf], json: bool, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for path in paths {
        match crate::pfs::open(path, Access::Read) {
            Ok(pfs) => {
                let p = pfs.get_pseudofs()?;
                if json {
                    writeln!(out, "{}", status_json(path, pfs.pfs_id(), &p))?;
                } else {
                    write!(out, "{}", status_text(path, pfs.pfs_id(), &p))?;
                }
            }
            Err(e) => {
                eprintln!("hammer-mirror: pfs-status: {e}");
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

/// pfs-update: change label, snapshots, prune-min (and the other options).
pub fn update(path: &Path, opts: &[String], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut pfs = crate::pfs::open(path, Access::Write).context("pfs-update")?;
    let mut p = pfs.get_pseudofs()?;
    let was_slave = p.is_slave();
    parse_options(&mut p, opts)?;
    if p.is_slave() != was_slave {
        bail!(Usage("pfs-update cannot change the mode; use pfs-upgrade or pfs-downgrade".into()));
    }
    pfs.set_pseudofs(&p).context("Unable to adjust PFS configuration")?;
    write!(out, "{}\n{}", path.display(), dump_pfsd(&pfs.get_pseudofs()?))?;
    Ok(())
}

/// pfs-upgrade (slave → master) and pfs-downgrade (master → slave).
pub fn change_mode(path: &Path, upgrade: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut pfs =
        crate::pfs::open(path, Access::Write).context(if upgrade { "pfs-upgrade" } else { "pfs-downgrade" })?;
    let p = pfs.get_pseudofs()?;
    let (verb, ok) = if upgrade { ("pfs-upgrade", p.is_slave()) } else { ("pfs-downgrade", !p.is_slave()) };
    if !ok {
        bail!("{verb} {}: It is already a {}", path.display(), if upgrade { "master" } else { "slave" });
    }
    if upgrade {
        pfs.upgrade()?
    } else {
        pfs.downgrade()?
    }
    writeln!(out, "{verb} of PFS#{} ({}) succeeded", pfs.pfs_id(), path.display())?;
    Ok(())
}

/// pfs-destroy: asks first unless `yes`; without a terminal and without -y it refuses.
pub fn destroy(
    path: &Path,
    yes: bool,
    ask: &dyn Fn(&str) -> anyhow::Result<bool>,
    have_tty: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut pfs = crate::pfs::open(path, Access::Write).context("pfs-destroy")?;
    let p = pfs.get_pseudofs()?;
    if !yes {
        if !have_tty {
            bail!(Refused(format!("pfs-destroy {}: no terminal to confirm on; pass -y to destroy it", path.display())));
        }
        let q = format!(
            "You have requested that PFS#{} ({}) be destroyed\nThis will irrevocably destroy all data on this PFS!!!!!\nDo you really want to do this?",
            pfs.pfs_id(),
            path.display()
        );
        if !ask(&q)? {
            bail!(Refused(format!("No action taken on {}", path.display())));
        }
    }
    let _ = p;
    pfs.destroy()?;
    let id = pfs.pfs_id();
    drop(pfs);
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        let mut lock = path.as_os_str().to_os_string();
        lock.push("-lock");
        let _ = std::fs::remove_file(lock);
    }
    writeln!(out, "pfs-destroy of PFS#{id} ({}) succeeded!", path.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_like_hammer() {
        let mut p = PseudofsData::default();
        let u = "01234567-89ab-cdef-0123-456789abcdef";
        parse_options(
            &mut p,
            &[
                format!("shared-uuid={u}"),
                "label=\"my data\"".into(),
                "snapshots=/snaps".into(),
                "prune-min=1d/02:03:04".into(),
                "sync-beg-tid=0x10".into(),
            ],
        )
        .unwrap();
        assert_eq!(uuid_from_wire(&p.shared_uuid).to_string(), u);
        assert_eq!(p.label_str(), "my data");
        assert_eq!(p.snapshots_str(), "/snaps");
        assert_eq!(p.prune_min, 86_400 + 2 * 3600 + 3 * 60 + 4);
        assert_eq!(p.sync_beg_tid, 0x10);
        parse_options(&mut p, &["snapshots-clear".into()]).unwrap();
        assert_eq!(p.snapshots_str(), "");
        for (bad, msg) in [
            ("label", "requires an assignment"),
            ("shared-uuid=xyz", "error parsing uuid xyz"),
            ("snapshots=rel", "absolute path"),
            ("bogus=1", "invalid option: bogus"),
            ("prune-min=x", "illegal time spec"),
            ("label=\"x", "malformed string"),
        ] {
            let e = parse_options(&mut p, &[bad.into()]).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn prune_min_prints_like_dump_pfsd() {
        assert_eq!(format_prune_min(0), "00:00:00");
        assert_eq!(format_prune_min(3661), "01:01:01");
        assert_eq!(format_prune_min(86_400 * 2), "2d");
        assert_eq!(format_prune_min(86_400 + 60), "1d/00:01:00");
        assert_eq!(parse_prune_min("2d").unwrap(), 172_800);
        assert_eq!(parse_prune_min("01:30").unwrap(), 5400);
    }

    #[test]
    fn status_block() {
        let mut p = PseudofsData { sync_beg_tid: 1, sync_end_tid: 0x20, mirror_flags: 1, ..Default::default() };
        set_c_str(&mut p.label, b"lbl");
        let t = status_text(Path::new("/p"), 1, &p);
        assert_eq!(
            t,
            "/p\tPFS#1 {\n    sync-beg-tid=0x0000000000000001\n    sync-end-tid=0x0000000000000020\n    \
             shared-uuid=00000000-0000-0000-0000-000000000000\n    unique-uuid=00000000-0000-0000-0000-000000000000\n    \
             label=\"lbl\"\n    prune-min=00:00:00\n    operating as a SLAVE\n}\n"
        );
    }
}
