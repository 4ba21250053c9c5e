//! Command-line syntax (clap derive) only: no I/O, no validation beyond parsing single values.
//!
//! The global options are hammer(8)'s, spelled the same way, plus long
//! options of our own; the man page is the contract.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::defaults;

/// Replicate HAMMER pseudo-filesystems (PFS) between hosts.
///
/// A reimplementation of DragonFly BSD's `hammer mirror-*` commands, byte-compatible
/// on the wire with stock hammer, with an embedded userspace PFS store so that it
/// runs on any Unix.
#[derive(Debug, Parser)]
#[command(name = "hammer-mirror", version, max_term_width = 100, disable_help_subcommand = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Command,
}

/// A byte count given with hammer's suffixes (k, m, g: powers of 1024),
/// keeping the text as typed so that it can be passed on to a remote hammer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    pub bytes: u64,
    pub text: String,
}

/// Parses a size as hammer.c does: a C integer (decimal, 0x hex or 0 octal)
/// followed by at most one suffix letter k/m/g (either case). hammer.c takes
/// no `t` for -S and -b, so neither do we:
/// a size we accept is one a stock hammer peer accepts too.
pub fn parse_size(s: &str) -> Result<Size, String> {
    let bad = || format!("invalid size '{s}': expected a number with an optional k, m or g suffix (e.g. 4g)");
    // The number ends where strtoull would stop: at the first non-(hex)digit.
    let (skip, hex) = if s.starts_with("0x") || s.starts_with("0X") { (2, true) } else { (0, false) };
    let end = s[skip..]
        .find(|c: char| if hex { !c.is_ascii_hexdigit() } else { !c.is_ascii_digit() })
        .map_or(s.len(), |i| i + skip);
    let (num, suffix) = s.split_at(end);
    let value = parse_c_integer(num).ok_or_else(bad)?;
    let shift = match suffix {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        _ => return Err(bad()),
    };
    let bytes = value.checked_mul(1u64 << shift).ok_or_else(|| format!("size '{s}' is too large"))?;
    Ok(Size { bytes, text: s.to_string() })
}

/// `-b`: a size, and not 0 (a limit of nothing per second would never send).
pub fn parse_bandwidth(s: &str) -> Result<Size, String> {
    let size = parse_size(s)?;
    if size.bytes == 0 {
        return Err(format!("invalid bandwidth '{s}': must be at least 1 byte per second (leave -b out for no limit)"));
    }
    Ok(size)
}

/// `--remote-cmd`: a word every remote shell can take (no newline).
pub fn parse_remote_cmd(s: &str) -> Result<String, String> {
    crate::ssh::check_word(std::ffi::OsStr::new(s)).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(s.to_string())
}

/// `strtoull(s, NULL, 0)` without its silent acceptance of garbage.
pub fn parse_c_integer(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// When to draw progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ProgressWhen {
    /// Only when stderr is a terminal.
    #[default]
    Auto,
    Always,
    Never,
}

/// hammer's global options, and ours. They may be given before or after the command.
#[derive(Debug, Args, Default, Clone)]
pub struct GlobalOpts {
    /// More messages (-v, -vv, -vvv), as hammer prints them
    #[arg(short = 'v', action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// No progress and no routine messages; only errors and warnings
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    /// Answer yes: create a missing slave PFS, destroy without asking
    #[arg(short = 'y', long = "yes", global = true)]
    pub yes: bool,

    /// Two-way pipe mode: the target acknowledges every pass (set by copy and stream)
    #[arg(short = '2', global = true)]
    pub two_way: bool,

    /// Stop a read after this many seconds; with -c, save where it stopped
    #[arg(short = 't', value_name = "SECONDS", global = true)]
    pub timeout: Option<u64>,

    /// Split bulk transfers into chunks of this size (default 4g; suffixes k, m, g)
    #[arg(short = 'S', value_name = "SIZE", value_parser = parse_size, global = true)]
    pub splitup: Option<Size>,

    /// Limit the reader to this many bytes per second (suffixes k, m, g)
    #[arg(short = 'b', value_name = "BYTES", value_parser = parse_bandwidth, global = true)]
    pub bandwidth: Option<Size>,

    /// Cycle file: where a read resumes (object and TID)
    #[arg(short = 'c', value_name = "FILE", global = true)]
    pub cycle_file: Option<PathBuf>,

    /// Minimum delay between stream passes, in seconds
    #[arg(short = 'i', value_name = "SECONDS", default_value_t = defaults::DELAY, global = true)]
    pub delay: u64,

    /// Bulk: no prescan histogram (one pass, no intermediate commits)
    #[arg(short = 'B', global = true)]
    pub bulk: bool,

    /// Compress the ssh link (ssh -C); -C is the older spelling
    #[arg(short = 'X', short_alias = 'C', global = true)]
    pub compress: bool,

    /// Compress the ssh link: auto (the default; zstd at a level that follows the link), zstd[:LEVEL] (1-19, default 3), lz4, none; only with hammer-mirror on the remote side (stock hammer, local copies and -X get none)
    #[arg(long = "compress", value_name = "HOW", value_parser = crate::transport::frame::Compress::parse, global = true)]
    pub compression: Option<crate::transport::frame::Compress>,

    /// Internal: this remote half's link is framed and compressed (sent by copy, stream and verify to their own remote)
    #[arg(long, value_name = "HOW", value_parser = crate::transport::frame::Compress::parse, hide = true, global = true)]
    pub link_compress: Option<crate::transport::frame::Compress>,

    /// ssh port of remote endpoints
    #[arg(short = 'p', value_name = "PORT", global = true)]
    pub port: Option<u16>,

    /// Progress bars on stderr
    #[arg(long, value_enum, value_name = "WHEN", default_value_t, global = true)]
    pub progress: ProgressWhen,

    /// The ssh program and leading options, split like a shell line (default: ssh on PATH)
    #[arg(long, value_name = "COMMAND", env = "HAMMER_RSH", global = true)]
    pub ssh: Option<String>,

    /// Pass an option to ssh as -o OPTION (repeatable)
    #[arg(short = 'o', value_name = "OPTION", global = true)]
    pub ssh_option: Vec<OsString>,

    /// Program run on remote hosts ('hammer' to drive stock DragonFly)
    #[arg(long, value_name = "PATH", default_value = defaults::REMOTE_CMD, value_parser = parse_remote_cmd, global = true)]
    pub remote_cmd: String,

    /// stream: first wait after a lost link, in seconds (default 15 + -i)
    #[arg(long, value_name = "SECONDS", global = true)]
    pub retry_delay: Option<u64>,

    /// stream: the longest wait between retries, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::MAX_RETRY_DELAY, global = true)]
    pub max_retry_delay: u64,

    /// copy/stream: end a run that shows no progress for this long (0: never); streams send a heartbeat pass every quarter of it
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::STALL_TIMEOUT, global = true)]
    pub stall_timeout: u64,

    /// run, config check: the configuration file (default /etc/hammer-mirror/hammer-mirror.toml)
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Machine-readable JSON Lines on stdout: each pass, progress, failure (copy, stream, verify, pfs-status, status, snapls, prune, scrub)
    #[arg(long, global = true)]
    pub json: bool,

    /// copy/stream/run: where each pair's state is kept for status (default /var/lib/hammer-mirror as root, else $XDG_STATE_HOME/hammer-mirror)
    #[arg(long, value_name = "DIR", env = "HAMMER_MIRROR_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// copy/stream/run: keep no state file (status will not show the pairs)
    #[arg(long, global = true)]
    pub no_state: bool,

    /// copy/stream/run: write Prometheus metrics to this file (node_exporter's textfile format) after every pass and change
    #[arg(long, value_name = "PATH", global = true)]
    pub metrics_file: Option<PathBuf>,

    /// stream/run: serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9811)
    #[arg(long, value_name = "ADDR:PORT", global = true)]
    pub metrics_listen: Option<String>,

    /// copy/stream/run: run COMMAND when a pair starts failing (split like a shell line, no shell; JSON on stdin)
    #[arg(long, value_name = "COMMAND", value_parser = parse_hook, global = true)]
    pub on_failure: Option<String>,

    /// copy/stream/run: run COMMAND at the first acknowledged pass after a failure
    #[arg(long, value_name = "COMMAND", value_parser = parse_hook, global = true)]
    pub on_recover: Option<String>,

    /// copy/stream/run: run COMMAND after every acknowledged pass that carried data
    #[arg(long, value_name = "COMMAND", value_parser = parse_hook, global = true)]
    pub after_pass: Option<String>,

    /// Kill a hook (its process group) that runs longer than this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = defaults::HOOK_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub hook_timeout: u64,

    /// watch: record a change once the tree has been quiet this many milliseconds
    #[arg(long, value_name = "MS", default_value_t = defaults::SETTLE_MS, global = true)]
    pub settle: u64,

    /// watch: record at least this often (milliseconds) while changes keep coming
    #[arg(long, value_name = "MS", default_value_t = defaults::MAX_DELAY_MS, global = true)]
    pub max_delay: u64,

    /// watch: no notifications; rescan the whole tree every SECONDS (NFS and the like)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub poll: Option<u64>,
}

/// A hook's command: a line that splits into words without a shell.
pub fn parse_hook(s: &str) -> Result<String, String> {
    crate::state::hooks::parse(s)?;
    Ok(s.to_string())
}

/// A duration for `status --check`: seconds, or a number with s, m, h or d,
/// or several (`1h30m`).
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration '{s}': expected e.g. 90, 90s, 30m, 1h30m or 2d");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let (mut total, mut num) = (0u64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// A TID as hammer takes it (strtoull base 0: 0x hex, 0 octal, or decimal).
pub fn parse_tid(s: &str) -> Result<u64, String> {
    parse_c_integer(s).ok_or_else(|| format!("invalid TID '{s}': expected a number such as 0x00000001061a8ba0"))
}

/// What `help` takes (and shell completion offers after it): every command
/// and alias (a unit test keeps the list complete).
pub const HELP_TOPICS: &[&str] = &[
    "read",
    "mirror-read",
    "read-stream",
    "mirror-read-stream",
    "write",
    "mirror-write",
    "dump",
    "mirror-dump",
    "copy",
    "mirror-copy",
    "pfs-master",
    "pfs-slave",
    "pfs-status",
    "pfs-update",
    "pfs-upgrade",
    "pfs-downgrade",
    "pfs-destroy",
    "import",
    "export",
    "scrub",
    "repair",
    "verify",
    "ssh-remote",
    "completions",
    "stream",
    "mirror-stream",
    "run",
    "config",
    "watch",
    "status",
    "snapshot",
    "snapls",
    "snaprm",
    "prune",
    "compact",
    "help",
];

/// `--keep` and `stream --prune`: a retention rule set (see [`crate::retention`]).
pub fn parse_rules(s: &str) -> Result<crate::retention::Rules, String> {
    crate::retention::Rules::parse(s)
}

// Every PFS operand says what a PFS path is: the first paragraph is the `-h`
// line, the rest is what `--help` adds.

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a PFS's changes since a TID as a mirror stream on stdout
    ///
    /// Without -2 the stream starts at begin-tid (or the cycle file's TID, or
    /// the PFS's first TID); with -2 the target's PFSD on stdin says where to start.
    #[command(visible_alias = "mirror-read")]
    Read {
        /// The source PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file (made by pfs-master,
        /// pfs-slave or a copy), or on DragonFly BSD a HAMMER PFS (a mounted
        /// PFS directory or its @@PFS softlink), used through the kernel.
        pfs: PathBuf,
        /// Start at this TID (inclusive, as hammer) instead of the beginning
        #[arg(value_parser = parse_tid)]
        begin_tid: Option<u64>,
    },

    /// Like read, then wait for new TIDs and send them too, until stopped
    #[command(visible_alias = "mirror-read-stream")]
    ReadStream {
        /// The source PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file (made by pfs-master,
        /// pfs-slave or a copy), or on DragonFly BSD a HAMMER PFS (a mounted
        /// PFS directory or its @@PFS softlink), used through the kernel.
        pfs: PathBuf,
        /// Start at this TID (inclusive, as hammer) instead of the beginning
        #[arg(value_parser = parse_tid)]
        begin_tid: Option<u64>,
    },

    /// Apply a mirror stream from stdin to a slave PFS
    ///
    /// A missing PFS is created as a slave of the source (with -y, or after
    /// asking on the terminal).
    #[command(visible_alias = "mirror-write")]
    Write {
        /// The target (slave) PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file (a missing one is
        /// created), or on DragonFly BSD a HAMMER PFS (a mounted PFS directory
        /// or its @@PFS softlink), used through the kernel.
        pfs: PathBuf,
    },

    /// Print the records of a mirror stream read on stdin, as hammer mirror-dump does
    #[command(visible_alias = "mirror-dump")]
    Dump,

    /// Mirror a PFS to one or more slaves once, locally or over ssh ([user@]host:pfs)
    ///
    /// Exits 0 only when every target acknowledged the new TID; with several
    /// targets, the worst of their exit statuses (each one's result is printed).
    #[command(visible_alias = "mirror-copy")]
    Copy {
        /// The source PFS: a store file or HAMMER PFS, or [user@]host:path
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink). On
        /// another host: [user@]host:path or ssh://[user@]host[:port]/path,
        /// reached through ssh; a remote path is absolute or in the remote
        /// home directory (host:pfs, host:~/pfs).
        source: OsString,
        /// The target (slave) PFSs, as the source; created with -y when missing
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink). On
        /// another host: [user@]host:path or ssh://[user@]host[:port]/path,
        /// reached through ssh; a remote path is absolute or in the remote
        /// home directory (host:pfs, host:~/pfs). With several targets, each
        /// gets its own conversation, acknowledgements, retries and stall
        /// watchdog, in parallel: a slow or dead one never holds back another.
        #[arg(required = true, num_args = 1.., value_name = "TARGET")]
        targets: Vec<OsString>,
    },

    /// Create a master PFS (options: label=, snapshots=, prune-min=, shared-uuid=, ...)
    PfsMaster {
        /// The new PFS: a store file to create
        ///
        /// A PFS path names a hammer-mirror store file, created here. A
        /// HAMMER PFS on DragonFly is made with hammer pfs-master or
        /// pfs-slave instead (the other PFS commands take one).
        pfs: PathBuf,
        /// hammer's name=value options
        options: Vec<String>,
    },

    /// Create a slave PFS; give shared-uuid=<master's> to pair it with a master
    PfsSlave {
        /// The new PFS: a store file to create
        ///
        /// A PFS path names a hammer-mirror store file, created here. A
        /// HAMMER PFS on DragonFly is made with hammer pfs-master or
        /// pfs-slave instead (the other PFS commands take one).
        pfs: PathBuf,
        /// hammer's name=value options
        options: Vec<String>,
    },

    /// Show PFS fields: TIDs, uuids, mode, label
    PfsStatus {
        /// One or more PFSs: store files, or HAMMER PFSs on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink).
        #[arg(required = true)]
        pfs: Vec<PathBuf>,
    },

    /// Change a PFS's label, snapshots directory or prune-min
    PfsUpdate {
        /// The PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink).
        pfs: PathBuf,
        /// hammer's name=value options
        options: Vec<String>,
    },

    /// Make a slave a master (rolls back anything after its sync-end-tid)
    PfsUpgrade {
        /// The slave PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink).
        pfs: PathBuf,
    },

    /// Make a master a slave
    PfsDowngrade {
        /// The master PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink).
        pfs: PathBuf,
    },

    /// Destroy a PFS and all its history (asks unless -y)
    PfsDestroy {
        /// The PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file (removed with its lock
        /// file), or on DragonFly BSD a HAMMER PFS (a mounted PFS directory
        /// or its @@PFS softlink).
        pfs: PathBuf,
    },

    /// Record a directory tree into a master PFS as one new transaction (TID)
    ///
    /// Only what changed is read. A file that changes while it is read is
    /// read again (three tries), and one changed less than 50 ms before is
    /// read once it has been quiet that long (up to 2 s of waiting in all):
    /// one that keeps changing keeps its recorded version, with a warning,
    /// and is recorded by the next import. Never a torn copy.
    Import {
        /// The directory to record
        dir: PathBuf,
        /// The master PFS: a store file
        ///
        /// A PFS path here names a hammer-mirror store file (made by
        /// pfs-master); a HAMMER PFS on DragonFly is written to directly
        /// instead, by the programs that use it.
        pfs: PathBuf,
    },

    /// Recreate a PFS's tree as of a TID (default: latest; a slave's sync-end-tid)
    Export {
        /// The PFS: a store file
        ///
        /// A PFS path here names a hammer-mirror store file; a HAMMER PFS on
        /// DragonFly shows its history itself, through its snapshots.
        pfs: PathBuf,
        /// A new or empty directory
        dir: PathBuf,
        /// Show the PFS as of this TID, or of the snapshot with this note
        #[arg(long, value_name = "TID|NOTE")]
        as_of: Option<String>,
        /// Export what is intact when records are damaged (exit status 1)
        ///
        /// Without it, a damaged record (one that fails its checksum or
        /// HAMMER's data CRC) fails the export, naming its path and TID,
        /// and nothing is left behind. With it, the rest is exported: an
        /// object whose inode or entry is damaged is left out, a file whose
        /// data is damaged has a hole there, and each is named in a warning.
        #[arg(long)]
        keep_going: bool,
    },

    /// Check every record, index entry and page of a store PFS (exit 1 when anything is damaged)
    ///
    /// Reads the whole file: each LMDB page's structure, each record's
    /// leaf and data against their checksums and HAMMER's data CRC, the TID
    /// index against the records, the blobs and the PFS description.
    /// Prints each damaged thing by path and TID; --json prints one object.
    /// Run it weekly; repair what it finds with repair --from <replica>.
    Scrub {
        /// The PFS: a store file
        ///
        /// A PFS path here names a hammer-mirror store file; a HAMMER PFS on
        /// DragonFly is checked by the kernel as it reads it (its CRCs).
        pfs: PathBuf,
    },

    /// Repair a store PFS's damaged records from a replica (lists every record it rewrites)
    ///
    /// Scrubs the PFS, then rewrites each damaged record from the replica's
    /// intact copy at the same key (a slave from its master, or a master
    /// from one of its slaves), fixes the TID index, and scrubs again: exit
    /// 0 when the PFS is then clean, 1 when something could not be repaired
    /// (listed: records newer than the replica's sync-end-tid, damaged
    /// LMDB pages, a damaged PFS description). Both are local store files.
    Repair {
        /// The damaged PFS: a store file
        ///
        /// A PFS path here names a hammer-mirror store file; a HAMMER PFS on
        /// DragonFly is repaired with the kernel's own tools (hammer(8)).
        pfs: PathBuf,
        /// The replica to repair it from: a store file of the same shared uuid
        #[arg(long, value_name = "REPLICA")]
        from: PathBuf,
    },

    /// Compare two PFSs record by record as of a TID (exit 0 when identical, 1 when not)
    ///
    /// Either side may be remote ([user@]host:pfs). The default TID is the
    /// slave's sync-end-tid.
    Verify {
        /// First PFS: a store file or HAMMER PFS, or [user@]host:path
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink). On
        /// another host: [user@]host:path or ssh://[user@]host[:port]/path,
        /// reached through ssh; a remote path is absolute or in the remote
        /// home directory (host:pfs, host:~/pfs).
        a: OsString,
        /// Second PFS, as the first
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink). On
        /// another host: [user@]host:path or ssh://[user@]host[:port]/path,
        /// reached through ssh; a remote path is absolute or in the remote
        /// home directory (host:pfs, host:~/pfs).
        b: OsString,
        /// Compare as of this TID
        #[arg(long, value_name = "TID", value_parser = parse_tid)]
        as_of: Option<u64>,
    },

    /// authorized_keys forced command: allow only mirroring, only under a PFS prefix
    ///
    /// Runs the command in SSH_ORIGINAL_COMMAND if it is the mirror-read,
    /// mirror-read-stream (role read) or mirror-write (role write) invocation
    /// that copy and stream send, for a PFS under PREFIX (a relative PFS path
    /// is taken from PREFIX); refuses anything else with exit status 3.
    /// Example authorized_keys line:
    /// command="hammer-mirror ssh-remote write /backup",restrict ssh-ed25519 AAAA...
    SshRemote {
        /// What the key may do
        #[arg(value_enum)]
        role: crate::remote::Role,
        /// The directory the PFSs (store files or HAMMER PFSs) must be under
        prefix: PathBuf,
    },

    /// Print a shell completion script on stdout (bash, zsh, fish, elvish or powershell)
    ///
    /// For example: hammer-mirror completions bash > /etc/bash_completion.d/hammer-mirror
    /// (scripts/install.sh installs the bash, zsh and fish ones).
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },

    /// Mirror continuously: send every new TID, restart after a lost link
    #[command(visible_alias = "mirror-stream")]
    Stream {
        /// The source PFS: a store file or HAMMER PFS, or [user@]host:path
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink). On
        /// another host: [user@]host:path or ssh://[user@]host[:port]/path,
        /// reached through ssh; a remote path is absolute or in the remote
        /// home directory (host:pfs, host:~/pfs).
        source: OsString,
        /// The target (slave) PFSs, as the source; created with -y when missing
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink). On
        /// another host: [user@]host:path or ssh://[user@]host[:port]/path,
        /// reached through ssh; a remote path is absolute or in the remote
        /// home directory (host:pfs, host:~/pfs). With several targets, each
        /// gets its own conversation, acknowledgements, retries and stall
        /// watchdog, in parallel: a slow or dead one never holds back another.
        #[arg(required = true, num_args = 1.., value_name = "TARGET")]
        targets: Vec<OsString>,
        /// Prune the (local) source after an acknowledged pass, at most once per --prune-every, keeping RULES (as prune --keep)
        #[arg(long, value_name = "RULES", value_parser = parse_rules)]
        prune: Option<crate::retention::Rules>,
        /// With --prune: the least time between two prunes, in seconds
        #[arg(long, value_name = "SECONDS", default_value_t = defaults::PRUNE_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
        prune_every: u64,
    },

    /// Stream every job of the configuration file, each target on its own, until stopped
    ///
    /// One process for a host's whole replication (see --config and the man
    /// page for the file): every target of every job is a stream of its own
    /// (its own conversation, acknowledgements, retries and stall watchdog),
    /// sharing one ssh connection per host, at most max_concurrent passes at
    /// once and a total bandwidth. SIGHUP reloads the file (new jobs start,
    /// removed ones stop, changed ones restart); SIGTERM stops all, exit 0.
    Run,

    /// Work with the configuration file of `run`
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },

    /// Record a directory into a master PFS continuously: one new TID per quiet period
    ///
    /// Imports the whole tree first (as import does; again after every
    /// restart), then watches it with inotify and records only the names that
    /// changed, once the tree has been quiet for --settle milliseconds (at
    /// least every --max-delay under constant churn). Runs until SIGTERM or
    /// SIGINT, which record what is pending first. Pair it with
    /// `stream <pfs> host:pfs` to keep another machine's copy up to date.
    /// --poll SECONDS rescans periodically instead, for filesystems without
    /// notifications (NFS, SMB, ...). A hard link written through (or made
    /// in a directory created in the same quiet period) and removed before
    /// the next recording is seen only when its file changes again or at the
    /// next full scan. A file changed more often than every 50 ms or so is
    /// recorded when it pauses (see import).
    Watch {
        /// The directory to record
        dir: PathBuf,
        /// The master PFS: a store file (made by pfs-master)
        ///
        /// A PFS path here names a hammer-mirror store file (made by
        /// pfs-master); a HAMMER PFS on DragonFly is written to directly
        /// instead, by the programs that use it.
        pfs: PathBuf,
    },

    /// Show every pair on this host: phase, lag, last acknowledgement, rate, last error
    ///
    /// Reads the state that copy, stream and run keep in the state
    /// directory (--state-dir); a pair whose process is gone while it should
    /// run is shown as stale. PAIR picks the pairs whose target, source or
    /// job (or job/target) it is. --json prints one object per pair.
    /// --check is a Nagios/Icinga plugin: one line, exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN, the lag measured from the target's
    /// acknowledgement; for example: hammer-mirror --state-dir
    /// /var/lib/hammer-mirror status --check --warn 1h --crit 6h
    Status {
        /// Nagios/Icinga plugin output and exit status
        #[arg(long, requires_all = ["warn", "crit"])]
        check: bool,
        /// --check: WARNING from this lag (e.g. 30m, 1h; plain numbers are seconds)
        #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "check")]
        warn: Option<u64>,
        /// --check: CRITICAL from this lag
        #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "check")]
        crit: Option<u64>,
        /// Only this pair: its target, source, job or job/target
        pair: Option<String>,
    },

    /// Record the PFS's current TID as a snapshot, with an optional note; prints the TID
    ///
    /// As hammer snapshot: the snapshot is a record in the PFS itself
    /// (HAMMER's snapshot meta-data), so it travels to slaves in the mirror
    /// stream; prune always keeps what it sees. A TID that already has a
    /// snapshot is refused (its note is never replaced).
    Snapshot {
        /// The PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink).
        pfs: PathBuf,
        /// A note (at most 63 bytes), e.g. "before the upgrade"
        note: Option<String>,
    },

    /// List a PFS's snapshots: TID, time and note (--json: one object per line)
    Snapls {
        /// The PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink).
        pfs: PathBuf,
    },

    /// Delete snapshots by TID (the history they kept goes at the next prune)
    ///
    /// A TID without a snapshot is an error that deletes nothing.
    Snaprm {
        /// The PFS: a store file, or a HAMMER PFS on DragonFly
        ///
        /// A PFS path names a hammer-mirror store file, or on DragonFly BSD a
        /// HAMMER PFS (a mounted PFS directory or its @@PFS softlink).
        pfs: PathBuf,
        /// The snapshots' TIDs (as snapls prints them)
        #[arg(required = true, num_args = 1.., value_name = "TID", value_parser = parse_tid)]
        tids: Vec<u64>,
    },

    /// Remove the history no kept TID sees: keep snapshots, the current state and what --keep RULES picks
    ///
    /// A record version stays exactly when a kept TID sees it (created at or
    /// before it, deleted after it), so export --as-of any kept TID is
    /// unchanged. Kept: every snapshot, the current state, what the rules
    /// pick, everything younger than the PFS's prune-min, and on a master
    /// everything from the lowest TID a target acknowledged (copy and stream
    /// record it) unless --force-below-targets. Without --keep only the
    /// snapshots and the current state stay. RULES: AGE:EVERY[,AGE:EVERY...]
    /// with increasing ages; a TID younger than the first AGE falls under the
    /// first rule, and so on; EVERY is 'all' or a period, of which the newest
    /// TID is kept (periods count from the epoch); durations are a number and
    /// s, m, h, d, w or y (365 d). Example: 24h:all,48h:1h,30d:1d,1y:30d
    /// (everything for a day, hourly for two, daily for a month, monthly for
    /// a year). Slaves prune with their own rules. Freed space is reused by
    /// later writes; compact gives it back to the file system.
    Prune {
        /// The PFS: a store file
        ///
        /// A PFS path here names a hammer-mirror store file; a HAMMER PFS on
        /// DragonFly is pruned by hammer prune.
        pfs: PathBuf,
        /// The TIDs to keep besides snapshots and the current state
        #[arg(long, value_name = "RULES", value_parser = parse_rules)]
        keep: Option<crate::retention::Rules>,
        /// Say what would stay and go; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Prune below the TID a target acknowledged (it gets a full sweep pass next)
        #[arg(long)]
        force_below_targets: bool,
        /// Forget a target (by its unique uuid) that will never come back, before pruning
        #[arg(long, value_name = "UUID")]
        forget_target: Vec<String>,
    },

    /// Rewrite a store PFS to its smallest size (LMDB's compacting copy, replaced atomically)
    ///
    /// Takes the writer lock, copies the store without its free pages beside
    /// it, and renames the copy over it: a crash leaves the old or the new
    /// file. Reads of the old file already begun finish; a command that
    /// starts a new one on it is told to open the store again (stream and
    /// watch do so by themselves).
    Compact {
        /// The PFS: a store file
        ///
        /// A PFS path here names a hammer-mirror store file; a HAMMER PFS on
        /// DragonFly is reblocked by hammer reblock.
        pfs: PathBuf,
    },

    /// Print this message or the help of the given command
    Help {
        /// The command to describe (all of them when left out)
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(HELP_TOPICS), hide_possible_values = true)]
        command: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_takes_every_command_and_alias() {
        let cmd = Cli::command();
        let names: Vec<&str> =
            cmd.get_subcommands().flat_map(|c| std::iter::once(c.get_name()).chain(c.get_visible_aliases())).collect();
        assert_eq!(names, HELP_TOPICS);
    }

    #[test]
    fn sizes_parse_like_hammer() {
        let b = |s: &str| parse_size(s).map(|x| x.bytes);
        assert_eq!(b("4g"), Ok(4 << 30));
        assert_eq!(b("4G"), Ok(4 << 30));
        assert_eq!(b("100"), Ok(100));
        assert_eq!(b("0x10k"), Ok(16 << 10));
        assert_eq!(b("010"), Ok(8));
        assert!(b("2t").is_err(), "hammer takes no t suffix");
        assert_eq!(b("50m"), Ok(50 << 20));
        assert!(b("4x").is_err());
        assert!(b("").is_err());
        assert!(b("k").is_err());
        assert!(b("4gb").is_err());
        assert!(b("99999999999999g").unwrap_err().contains("too large"));
        assert_eq!(parse_size("4g").unwrap().text, "4g");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        for bad in ["", "h", "1x", "1h3", "-1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_check_needs_both_thresholds() {
        assert!(Cli::try_parse_from(["hammer-mirror", "status", "--check", "--warn", "1h"]).is_err());
        assert!(Cli::try_parse_from(["hammer-mirror", "status", "--warn", "1h"]).is_err());
        let c =
            Cli::try_parse_from(["hammer-mirror", "status", "--check", "--warn", "1h", "--crit", "2h", "/s"]).unwrap();
        assert!(matches!(c.command, Command::Status { check: true, warn: Some(3600), crit: Some(7200), .. }));
        assert!(Cli::try_parse_from(["hammer-mirror", "--on-failure", "mail $USER", "stream", "a", "b"]).is_err());
    }

    #[test]
    fn global_options_parse_before_and_after_the_command() {
        let c = Cli::try_parse_from(["hammer-mirror", "-vv", "-y", "-2", "-S", "1m", "dump", "-t", "5"]).unwrap();
        assert_eq!(c.global.verbose, 2);
        assert!(c.global.yes && c.global.two_way);
        assert_eq!(c.global.splitup.unwrap().bytes, 1 << 20);
        assert_eq!(c.global.timeout, Some(5));
        assert_eq!(c.global.delay, 5);
        let c = Cli::try_parse_from(["hammer-mirror", "-C", "mirror-dump"]).unwrap();
        assert!(c.global.compress);
        assert!(Cli::try_parse_from(["hammer-mirror", "-S", "4q", "dump"]).is_err());
    }
}

/// What `config` does.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the file and print the expanded list of streams (exit 2 naming file, line and key on an error)
    Check,
}
