//! One remote peer's ssh process: spawned from an argv (no shell), stderr drained line by line, killed on drop.
//!
//! A thread reads the child's stderr as it comes and hands each line to a
//! callback (which shows it above the progress bar, prefixed with the host),
//! so the child can never block on a full stderr pipe. Lines are cut at
//! [`MAX_LINE`] bytes (a peer that writes a gigabyte without a newline costs
//! no memory), and the last few are kept for the error message when the
//! child fails, with whether each was shown.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, anyhow};

/// Called with each stderr line; returns whether the line was shown to the user.
pub type OnLine = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Lines of stderr kept for error messages.
const TAIL: usize = 20;
/// The longest stderr line kept whole; the rest of a longer one is dropped.
pub const MAX_LINE: usize = 4096;

/// One stderr line of a child, and whether the user saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub shown: bool,
}

pub struct Child {
    label: String,
    handle: Option<duct::Handle>,
    stderr: Option<JoinHandle<VecDeque<Line>>>,
}

/// How a child ended.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    /// The last lines it wrote on stderr.
    pub stderr: Vec<Line>,
}

impl Exit {
    /// The exit code, or 128 + signal number for a child killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    /// The last non-empty stderr line.
    pub fn last_line(&self) -> Option<&Line> {
        self.stderr.iter().rev().find(|l| !l.text.trim().is_empty())
    }
}

/// Reads lines of at most `max` bytes from `r`, cutting longer ones (the
/// cut is marked) and discarding the rest of them up to their newline.
fn for_each_line(r: impl Read, max: usize, mut f: impl FnMut(&str)) {
    let mut r = BufReader::with_capacity(64 << 10, r);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    loop {
        let buf = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let (take, end) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if !cut {
            let room = max - line.len();
            line.extend_from_slice(&buf[..take.min(room)]);
            cut = take > room;
        }
        r.consume(if end { take + 1 } else { take });
        if end {
            emit(&mut line, cut, &mut f);
            cut = false;
        }
    }
    if !line.is_empty() || cut {
        emit(&mut line, cut, &mut f);
    }
}

fn emit(line: &mut Vec<u8>, cut: bool, f: &mut impl FnMut(&str)) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if cut {
        f(&format!("{text} [line cut at {MAX_LINE} bytes]"));
    } else {
        f(text);
    }
    line.clear();
}

impl Child {
    /// Spawns `argv` with the given stdin/stdout. `label` names it in messages.
    pub fn spawn(
        argv: &[OsString],
        stdin: OwnedFd,
        stdout: OwnedFd,
        label: &str,
        on_line: OnLine,
    ) -> anyhow::Result<Child> {
        Self::spawn_then(argv, stdin, stdout, label, on_line, || {})
    }

    /// [`Child::spawn`], and `at_eof` runs once the child's stderr is closed
    /// (it exited, or gave its stderr away), so that whoever waits for it
    /// need not look every moment.
    pub fn spawn_then(
        argv: &[OsString],
        stdin: OwnedFd,
        stdout: OwnedFd,
        label: &str,
        on_line: OnLine,
        at_eof: impl FnOnce() + Send + 'static,
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
        let stderr = std::thread::Builder::new()
            .name(format!("stderr {label}"))
            .spawn(move || {
                let mut tail = VecDeque::with_capacity(TAIL);
                for_each_line(reader, MAX_LINE, |text| {
                    let shown = on_line(text);
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(Line { text: text.to_string(), shown });
                });
                at_eof();
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
    fn stderr_lines_are_handed_on_and_kept_with_whether_they_were_shown() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        let on_line: OnLine = Arc::new(move |l| {
            g.lock().unwrap().push(l.to_string());
            l == "two"
        });
        let argv: Vec<OsString> = ["sh", "-c", "echo one >&2; echo two >&2; exit 3"].map(Into::into).to_vec();
        let c = Child::spawn(&argv, devnull(), devnull(), "host", on_line).unwrap();
        let e = c.wait().unwrap();
        assert_eq!(e.code(), 3);
        assert_eq!(e.stderr, [Line { text: "one".into(), shown: false }, Line { text: "two".into(), shown: true }]);
        assert_eq!(e.last_line().unwrap().text, "two");
        assert_eq!(*got.lock().unwrap(), ["one", "two"]);
    }

    #[test]
    fn long_lines_are_cut_and_marked() {
        let mut lines = Vec::new();
        let input = format!("{}\nshort\n{}", "x".repeat(10_000), "y".repeat(5));
        for_each_line(input.as_bytes(), 100, |l| lines.push(l.to_string()));
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], format!("{} [line cut at {MAX_LINE} bytes]", "x".repeat(100)));
        assert_eq!(lines[1], "short");
        assert_eq!(lines[2], "yyyyy");
    }

    #[test]
    fn a_gigabyte_without_a_newline_costs_no_memory() {
        // 64 MiB of zeros through a bounded reader: one cut line, small.
        let mut n = 0;
        for_each_line(std::io::repeat(b'z').take(64 << 20), MAX_LINE, |l| {
            n += 1;
            assert!(l.len() < MAX_LINE + 64);
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn a_missing_program_is_command_not_found() {
        let argv: Vec<OsString> = vec!["no-such-ssh-xyz".into()];
        let e = Child::spawn(&argv, devnull(), devnull(), "h", Arc::new(|_| true)).err().unwrap();
        assert_eq!(e.to_string(), "command not found: no-such-ssh-xyz");
    }

    #[test]
    fn a_child_killed_by_a_signal_reports_128_plus_n() {
        let argv: Vec<OsString> = ["sh", "-c", "kill -9 $$"].map(Into::into).to_vec();
        let e = Child::spawn(&argv, devnull(), devnull(), "h", Arc::new(|_| true)).unwrap().wait().unwrap();
        assert_eq!(e.code(), 137);
    }
}
