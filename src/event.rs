//! What happens during a mirror run, as typed events: the one interface between the halves, the orchestrator and every reporter.
//!
//! The halves and the orchestrator only emit [`Event`]s to an [`Observer`];
//! they never print. Progress bars, log lines, `--json` objects (and the
//! state file, metrics and hooks built on them) are observers, so they all
//! see the same facts: a pass counts only when [`Event::PassDone`] says the
//! target acknowledged it.

use std::sync::Arc;
use std::time::Duration;

use crate::log::Level;

/// One finished pass: the target committed and acknowledged `(tid_beg, tid_end]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// The first TID the pass covered (the target's previous sync TID + 1).
    pub tid_beg: u64,
    /// The TID the target is now synced to.
    pub tid_end: u64,
    pub records: u64,
    /// Stream bytes of the pass.
    pub bytes: u64,
    pub seconds: f64,
    /// Bytes that crossed a compressed link for the pass (None: the link carries the stream as it is).
    pub link_bytes: Option<u64>,
    /// A heartbeat: an empty pass sent so that an idle link is told from a dead one.
    pub idle: bool,
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A run (one connection of both sides) starts; `attempt` counts from 1.
    RunStarted { attempt: u32 },
    /// The prescan split the work into `chunks` passes of `total` bytes in all.
    Prescan { total: u64, chunks: usize },
    /// A pass over TIDs `tid_beg..=tid_end` starts; the master is at `tid_end`.
    PassStarted { tid_beg: u64, tid_end: u64, estimate: Option<u64> },
    /// Bytes of the current pass so far (and, on a compressed link, the link bytes).
    Progress { bytes: u64, link_bytes: Option<u64> },
    /// See [`Pass`].
    PassDone(Pass),
    /// A message of a half, a remote peer or the orchestrator.
    Message { level: Level, text: String },
    /// The run ended with this error (as the terminal shows it; `reason`
    /// has a remote side's last line too); a stream retries after `retry_in`.
    LostLink { error: String, reason: String, retry_in: Option<Duration> },
    /// The watchdog ended a run that showed no progress.
    Stalled { secs: u64 },
    /// A stream stopped at the user's request (SIGINT/SIGTERM).
    Stopped { signal: &'static str },
    /// A copy failed, or a stream stopped on a refusal (which retrying cannot fix).
    Failed { reason: String, refused: bool },
}

impl Event {
    pub fn message(level: Level, text: impl Into<String>) -> Event {
        Event::Message { level, text: text.into() }
    }
}

/// Receives events. Implementations must be cheap: `Progress` comes with
/// every batch.
pub trait Observer: Send + Sync {
    fn event(&self, e: &Event);
}

/// An observer that ignores everything.
pub struct Ignore;

impl Observer for Ignore {
    fn event(&self, _: &Event) {}
}

/// Hands every event to each observer in turn.
pub struct Fanout(pub Vec<Arc<dyn Observer>>);

impl Observer for Fanout {
    fn event(&self, e: &Event) {
        for o in &self.0 {
            o.event(e);
        }
    }
}

/// Shorthands for messages.
pub trait Say {
    fn say(&self, level: Level, text: impl Into<String>);
    fn info(&self, text: impl Into<String>) {
        self.say(Level::Info, text)
    }
    fn warn(&self, text: impl Into<String>) {
        self.say(Level::Warn, text)
    }
    fn debug(&self, text: impl Into<String>) {
        self.say(Level::Debug, text)
    }
}

impl<O: Observer + ?Sized> Say for O {
    fn say(&self, level: Level, text: impl Into<String>) {
        self.event(&Event::message(level, text));
    }
}

/// Collects events (tests).
#[derive(Default)]
pub struct Record(pub std::sync::Mutex<Vec<Event>>);

impl Observer for Record {
    fn event(&self, e: &Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone());
    }
}

impl Record {
    /// The messages recorded, one per line, as the halves said them.
    pub fn text(&self) -> String {
        let events = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = String::new();
        for e in events.iter() {
            if let Event::Message { text, .. } = e {
                s.push_str(text);
                s.push('\n');
            }
        }
        s
    }

    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
