//! hammer-mirror: replicate HAMMER pseudo-filesystems between hosts, byte-compatible with DragonFly's `hammer mirror-*`.
//!
//! Module map (dependencies point down):
//! * `app` (dispatch) → `orchestrate` (copy, stream), `verify`, `pfscmd`
//!   → `side`, `child`, `ssh`, `endpoint`, `transport`, `progress`
//!   → `mirror` (the halves) → {`mrecord`, `ioctl`} → `hammerfs` (HAMMER's
//!   on-disk format);
//! * `watch` (a live directory into a master PFS: inotify, settle, hard
//!   links) → `store::import`;
//! * `state` (pair state files, `status`, Prometheus metrics, hooks) is an
//!   observer of the same events as `progress`;
//! * `pfs` opens a path as the kernel or the userspace `store`
//!   implementation of [`ioctl::Pfs`];
//! * leaves used everywhere: `error`, `event`, `log`, `defaults`, `exit`,
//!   `history` (the append-only checks shared by the write half and the store);
//!   `config` derives a run's configuration from `cli`.
//!
//! `unsafe` code is denied but in `ioctl`'s ABI module and its `mapped`.

#![deny(unsafe_code)]

pub mod app;
pub mod child;
pub mod cli;
pub mod completions;
pub mod config;
pub mod defaults;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod exit;
pub mod fleet;
pub mod gate;
pub mod hammerfs;
pub mod help;
pub mod history;
pub mod ioctl;
pub mod log;
pub mod mirror;
pub mod mrecord;
pub mod orchestrate;
pub mod pfs;
pub mod pfscmd;
pub mod progress;
pub mod prompt;
pub mod remote;
pub mod retention;
pub mod shellword;
pub mod side;
pub mod ssh;
pub mod state;
pub mod store;
pub mod transport;
pub mod verify;
pub mod watch;
