//! hammer-mirror: replicate HAMMER pseudo-filesystems between hosts, byte-compatible with DragonFly's `hammer mirror-*`.
//!
//! Module map (dependencies point down): `cli` → `orchestrate` → `mirror` →
//! {`mrecord`, `ioctl`}; `pfs` picks the kernel or the userspace `store`
//! implementation of [`ioctl::Pfs`] for a path.

pub mod app;
pub mod child;
pub mod cli;
pub mod completions;
pub mod endpoint;
pub mod exit;
pub mod help;
pub mod ioctl;
pub mod mirror;
pub mod mrecord;
pub mod orchestrate;
pub mod pfs;
pub mod pfscmd;
pub mod progress;
pub mod prompt;
pub mod remote;
pub mod ssh;
pub mod store;
pub mod verify;
