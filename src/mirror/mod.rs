//! The two halves of mirroring (read, write) and the stream tools built on them (dump).

pub mod dump;
