//! Filesystems whose changes raise no notifications here (network and pseudo filesystems), by `statfs` magic.

use std::path::Path;

/// What a filesystem type means for `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notifies {
    /// Local: every change is notified.
    Yes,
    /// Changes made by other machines (or by the kernel) raise no
    /// notifications: only `--poll` sees them.
    No(&'static str),
    /// Only the changes made through this machine's mount are notified
    /// (FUSE: a network FUSE filesystem misses the others).
    Local(&'static str),
}

/// The kind of the filesystem with `statfs` magic number `magic`.
pub fn notifies(magic: u64) -> Notifies {
    match magic {
        0x6969 => Notifies::No("NFS"),
        0x517b => Notifies::No("SMB"),
        0xff53_4d42 => Notifies::No("CIFS"),
        0xfe53_4d42 => Notifies::No("SMB2"),
        0x0102_1997 => Notifies::No("9P"),
        0x00c3_6400 => Notifies::No("Ceph"),
        0x5346_414f => Notifies::No("AFS"),
        0x6b41_4653 => Notifies::No("kAFS"),
        0x7375_7245 => Notifies::No("Coda"),
        0x0116_1970 => Notifies::No("GFS2"),
        0x7461_636f => Notifies::No("OCFS2"),
        0x0bd0_0bd0 => Notifies::No("Lustre"),
        0x9fa0 => Notifies::No("proc"),
        0x6265_6572 => Notifies::No("sysfs"),
        0x6367_7270 => Notifies::No("cgroup2"),
        0x0027_e0eb => Notifies::No("cgroup"),
        0x6462_6720 => Notifies::No("debugfs"),
        0x7472_6163 => Notifies::No("tracefs"),
        0x7363_6673 => Notifies::No("securityfs"),
        0x6573_5546 => Notifies::Local("FUSE"),
        _ => Notifies::Yes,
    }
}

/// The kind of the filesystem that holds `path` (Yes when it cannot be told).
pub fn of(path: &Path) -> Notifies {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        match nix::sys::statfs::statfs(path) {
            Ok(s) => notifies(s.filesystem_type().0 as u64),
            Err(_) => Notifies::Yes,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = path;
        Notifies::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_and_pseudo_filesystems_are_named() {
        assert_eq!(notifies(0x6969), Notifies::No("NFS"));
        assert_eq!(notifies(0xff53_4d42), Notifies::No("CIFS"));
        assert_eq!(notifies(0x9fa0), Notifies::No("proc"));
        assert_eq!(notifies(0x6573_5546), Notifies::Local("FUSE"));
        assert_eq!(notifies(0xef53), Notifies::Yes, "ext4");
        assert_eq!(notifies(0x0102_1994), Notifies::Yes, "tmpfs");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_and_sys_are_seen_through_statfs() {
        assert_eq!(of(Path::new("/proc/self")), Notifies::No("proc"));
        assert_eq!(of(Path::new("/sys/kernel")), Notifies::No("sysfs"));
    }
}
