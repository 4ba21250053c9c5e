//! One remote peer's ssh process: spawned from an argv (no shell), stderr drained line by line, killed on drop.
//!
//! A thread reads the child's stderr as it comes and hands each line to a
//! sink (the progress bar's `println`, prefixed with the host), so the child
//! can never block on a full stderr pipe. The last lines are kept for the
//! error message when the child fails.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, anyhow};

/// Where child stderr lines go.
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Lines of stderr kept for error messages.
const TAIL: usize = 20;

pub struct Child {
    label: String,
    handle: Option<duct::Handle>,
    stderr: Option<JoinHandle<VecDeque<String>>>,
}

/// How a child ended.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    /// The last lines it wrote on stderr.
    pub stderr: Vec<String>,
}

impl Exit {
    /// The exit code, or 128 + signal number for a child killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
}

impl Child {
    /// Spawns `argv` with the given stdin/stdout. `label` prefixes its stderr lines.
    pub fn spawn(
        argv: &[OsString],
        stdin: OwnedFd,
        stdout: OwnedFd,
        label: &str,
        sink: LineSink,
    ) -> anyhow::Result<Child> {
        let (prog, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
        let resolved = which::which(prog).map_err(|_| anyhow!("command not found: {}", prog.to_string_lossy()))?;
        let (reader, writer) = std::io::pipe().context("creating a pipe for the child's stderr")?;
        let handle = duct::cmd(resolved, args)
            .stdin_file(stdin)
            .stdout_file(stdout)
            .stderr_file(writer)
            .unchecked()
            .start()
            .with_context(|| format!("starting {}", prog.to_string_lossy()))?;
        let prefix = label.to_string();
        let stderr = std::thread::Builder::new()
            .name(format!("stderr {label}"))
            .spawn(move || {
                let mut tail = VecDeque::with_capacity(TAIL);
                for line in BufReader::new(reader).split(b'\n') {
                    let Ok(line) = line else { break };
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end_matches('\r');
                    sink(&format!("{prefix}: {text}"));
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(text.to_string());
                }
                tail
            })
            .context("starting the stderr thread")?;
        Ok(Child { label: label.to_string(), handle: Some(handle), stderr: Some(stderr) })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Asks the child to end (SIGTERM through duct's kill, which is SIGKILL on
    /// some platforms; ssh ends either way and the remote side sees the link drop).
    pub fn kill(&self) {
        if let Some(h) = &self.handle {
            let _ = h.kill();
        }
    }

    /// True once the child has exited.
    pub fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| matches!(h.try_wait(), Ok(Some(_))))
    }

    /// Waits for the child and its stderr.
    pub fn wait(mut self) -> anyhow::Result<Exit> {
        let handle = self.handle.take().expect("waited once");
        let out = handle.wait().with_context(|| format!("waiting for {}", self.label))?;
        let status = out.status;
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        Ok(Exit { status, stderr: stderr.into() })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        if let Some(t) = self.stderr.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn stderr_lines_are_forwarded_with_a_prefix() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        let sink: LineSink = Arc::new(move |l| g.lock().unwrap().push(l.to_string()));
        let argv: Vec<OsString> = ["sh", "-c", "echo one >&2; echo two >&2; exit 3"].map(Into::into).to_vec();
        let c = Child::spawn(&argv, devnull(), devnull(), "host", sink).unwrap();
        let e = c.wait().unwrap();
        assert_eq!(e.code(), 3);
        assert_eq!(e.stderr, ["one", "two"]);
        assert_eq!(*got.lock().unwrap(), ["host: one", "host: two"]);
    }

    #[test]
    fn a_missing_program_is_command_not_found() {
        let argv: Vec<OsString> = vec!["no-such-ssh-xyz".into()];
        let e = Child::spawn(&argv, devnull(), devnull(), "h", Arc::new(|_| {})).err().unwrap();
        assert_eq!(e.to_string(), "command not found: no-such-ssh-xyz");
    }

    #[test]
    fn a_child_killed_by_a_signal_reports_128_plus_n() {
        let argv: Vec<OsString> = ["sh", "-c", "kill -9 $$"].map(Into::into).to_vec();
        let e = Child::spawn(&argv, devnull(), devnull(), "h", Arc::new(|_| {})).unwrap().wait().unwrap();
        assert_eq!(e.code(), 137);
    }
}
