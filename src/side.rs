//! One running side of a conversation: a local half on a thread, or a remote half in an ssh child.
//!
//! `copy`, `stream` and `verify` all run their sides through [`Side`]: it can
//! say whether the side has finished, stop a remote one, and be joined into
//! an [`Ended`]. A local half tells the orchestrator that it ended through a
//! drop guard, so that a half that returns, fails or panics never leaves
//! the orchestrator waiting for it.

use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use anyhow::anyhow;

use crate::child::{Child, Exit};

/// Sends the side's role on drop: when the half's closure returns or unwinds.
struct Done {
    role: &'static str,
    tx: Sender<&'static str>,
}

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.tx.send(self.role);
    }
}

enum Kind<T> {
    Local(JoinHandle<anyhow::Result<T>>),
    Remote(Box<Child>),
}

/// See the module documentation. `role` is "source" or "target".
pub struct Side<T> {
    pub role: &'static str,
    kind: Kind<T>,
}

/// How a side ended.
pub enum Ended<T> {
    /// A local half returned (a panic becomes an error naming the role).
    Local(anyhow::Result<T>),
    /// A remote child exited.
    Remote { host: String, exit: Exit },
}

impl<T: Send + 'static> Side<T> {
    /// Runs `half` on a thread; `done` hears `role` when it ends in any way.
    pub fn local(
        role: &'static str,
        done: Sender<&'static str>,
        half: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<Side<T>> {
        let handle = std::thread::Builder::new()
            .name(format!("{role} half"))
            .spawn(move || {
                let _guard = Done { role, tx: done };
                half()
            })
            .map_err(|e| anyhow!("starting the {role} thread: {e}"))?;
        Ok(Side { role, kind: Kind::Local(handle) })
    }

    /// A remote half already spawned.
    pub fn remote(role: &'static str, child: Child) -> Side<T> {
        Side { role, kind: Kind::Remote(Box::new(child)) }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self.kind, Kind::Remote(_))
    }

    pub fn finished(&self) -> bool {
        match &self.kind {
            Kind::Local(h) => h.is_finished(),
            Kind::Remote(c) => c.finished(),
        }
    }

    /// Stops a remote side (a local one stops through its stop flag and its
    /// socket being shut down).
    pub fn kill(&self) {
        if let Kind::Remote(c) = &self.kind {
            c.kill();
        }
    }

    /// Waits for the side to end.
    pub fn join(self) -> anyhow::Result<Ended<T>> {
        match self.kind {
            Kind::Local(h) => Ok(Ended::Local(h.join().unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                Err(anyhow!("the {} half panicked: {what}", self.role))
            }))),
            Kind::Remote(c) => {
                let host = c.label().to_string();
                Ok(Ended::Remote { exit: c.wait()?, host })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_panicking_half_still_says_it_ended() {
        let (tx, rx) = mpsc::channel();
        let s: Side<()> = Side::local("source", tx, || panic!("boom")).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "source");
        match s.join().unwrap() {
            Ended::Local(Err(e)) => assert_eq!(e.to_string(), "the source half panicked: boom"),
            _ => panic!("expected the panic as an error"),
        }
    }

    #[test]
    fn a_returning_half_says_it_ended() {
        let (tx, rx) = mpsc::channel();
        let s = Side::local("target", tx, || Ok(7)).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "target");
        assert!(matches!(s.join().unwrap(), Ended::Local(Ok(7))));
    }
}
