//! hammer-mirror: replicate HAMMER pseudo-filesystems between hosts, byte-compatible with DragonFly's `hammer mirror-*`.
//!
//! Module map (dependencies point down): `cli` → `orchestrate` → `mirror` →
//! {`mrecord`, `ioctl`}; `pfs` picks the kernel or the userspace `store`
//! implementation of [`ioctl::Pfs`] for a path.

pub mod ioctl;
pub mod mrecord;
pub mod app;
pub mod cli;
pub mod exit;
pub mod mirror;
pub mod store;
pub mod pfs;
pub mod child;
pub mod endpoint;
pub mod orchestrate;
pub mod ssh;
pub mod pfscmd;
pub mod verify;
pub mod progress;
pub mod remote;
