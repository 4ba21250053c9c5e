//! A host's whole replication from one configuration file: `config check` and the `run` supervisor.

pub mod config;
pub mod masters;
pub mod run;

use std::io::Write;

/// `config check`: the expanded pair list, one line each (exit 2 on an error, through `load`).
pub fn check(fleet: &config::Fleet, path: &std::path::Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let limits = [
        fleet.max_concurrent.map(|m| format!("max_concurrent {m}")),
        fleet.bandwidth.map(|b| format!("bandwidth {b} bytes/s in all")),
    ];
    let limits: Vec<String> = limits.into_iter().flatten().collect();
    writeln!(
        out,
        "{}: {} jobs, {} streams{}",
        path.display(),
        fleet.jobs,
        fleet.pairs.len(),
        if limits.is_empty() { String::new() } else { format!(" ({})", limits.join(", ")) }
    )?;
    for p in &fleet.pairs {
        let c = &p.config;
        let mut opts = vec![format!("interval {} s", c.read.delay.as_secs())];
        if let Some(b) = c.link.bandwidth {
            opts.push(format!("bandwidth {b} bytes/s"));
        }
        opts.push(match c.stall_timeout {
            Some(d) => format!("stall timeout {} s", d.as_secs()),
            None => "no stall timeout".into(),
        });
        opts.push(format!("retry {}..{} s", c.retry.first.as_secs(), c.retry.max.as_secs()));
        let remote = [&p.source, &p.target].iter().any(|e| matches!(e, crate::endpoint::Endpoint::Remote(_)));
        if remote {
            if c.ssh.remote_cmd != crate::defaults::REMOTE_CMD {
                opts.push(format!("remote-cmd {}", c.ssh.remote_cmd.to_string_lossy()));
            }
            match c.ssh.framing() {
                Some(z) => opts.push(format!("compress {}", z.word())),
                None if c.ssh.compress => opts.push("ssh -C".into()),
                None => opts.push("no compression".into()),
            }
        }
        if let Some((rules, every)) = &p.prune {
            opts.push(format!("prune {rules} every {every} s"));
        }
        if c.create == crate::config::CreatePolicy::Yes {
            opts.push("creates a missing slave".into());
        }
        writeln!(out, "{}: {} -> {} ({})", p.job, p.source, p.target, opts.join(", "))?;
    }
    Ok(())
}
