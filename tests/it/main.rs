//! The integration tests: one binary (one link, one run), a module per area, shared helpers in `util`.
//!
//! Every test runs the real `hammer-mirror` binary (or a library half) in its
//! own temporary directory; see `util` for the scrubbed environment.

mod cli;
mod completions;
mod compress;
mod corruption;
mod defects;
mod docs;
mod endpoints;
mod fakessh;
mod fanout;
mod faults;
mod fleet;
mod fuzz;
mod golden;
mod history;
mod importexport;
mod integrity;
mod kill;
mod messages;
mod operator;
mod prompts;
mod quoting;
mod resume;
mod retention;
mod security;
mod snapshots;
mod sshd;
mod status;
mod storefiles;
mod terminal;
mod util;
mod watch;
