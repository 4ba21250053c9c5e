//! The defaults of every option, named once: clap's help, the configuration and the remote argv all read them here.

/// `-i`: seconds between stream passes (hammer's 5).
pub const DELAY: u64 = 5;
/// `--retry-delay` is this plus `-i` unless given (hammer's 15 + delay).
pub const RETRY_BASE: u64 = 15;
/// `--max-retry-delay`, seconds.
pub const MAX_RETRY_DELAY: u64 = 300;
/// `--stall-timeout`, seconds.
pub const STALL_TIMEOUT: u64 = 300;
/// `-S`: prescan chunk size (hammer's 4 GiB).
pub const SPLITUP: u64 = 4 << 30;
/// `--remote-cmd`.
pub const REMOTE_CMD: &str = "hammer-mirror";
/// The ssh program when neither `--ssh` nor `HAMMER_RSH` is given.
pub const SSH: &str = "ssh";
/// `--settle`: quiet milliseconds before `watch` records a change.
pub const SETTLE_MS: u64 = 200;
/// `--max-delay`: the longest, in milliseconds, a change waits under constant churn.
pub const MAX_DELAY_MS: u64 = 2000;
/// A file changed less than this (plus its timestamps' granularity) before
/// `import` or `watch` reads it is read once it is that old (see
/// `store::import::quiet`).
pub const QUIET_MS: u64 = 50;
/// `--hook-timeout`, seconds.
pub const HOOK_TIMEOUT: u64 = 60;

/// `stream --prune`: the least time between two prunes, in seconds.
pub const PRUNE_EVERY: u64 = 3600;
