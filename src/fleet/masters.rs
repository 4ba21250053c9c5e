//! One ssh ControlMaster per remote host for `run`: up before any of the host's streams connects, so that streams starting together share one connection.
//!
//! With `ControlMaster=auto` alone, streams that connect at the same moment
//! each find no master socket and open a connection of their own (four
//! targets on one host: four connections). Before each ssh child of a
//! stream starts, [`Masters`] checks the host's master (`ssh -O check`, a
//! local call) and, when it is not up, opens it in the background
//! (`ssh -o ControlMaster=yes -N -f`), one stream per host at a time; the
//! others wait for it and then connect through it. A master that cannot
//! be opened (host down, authentication refused) is no error here: the
//! stream's own ssh then fails with ssh's message, and is retried; for a
//! minute after such a failure no stream waits for another attempt (a
//! host that is down must not make its streams queue behind each other's
//! connection timeouts, nor delay a stop).
//! ControlPersist keeps a master 60 s after its last client; `run` closes
//! them all when it stops (`ssh -O exit`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::endpoint::Remote;
use crate::ssh::{BeforeConnect, SshOpts};

/// How long after a failed attempt to open a host's master none is tried.
const AFTER_FAILURE: Duration = Duration::from_secs(60);

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Masters {
    /// Per host (`[user@]host:port`): when opening its master last failed.
    hosts: Mutex<HashMap<String, Arc<Mutex<Option<Instant>>>>>,
}

fn quietly(argv: &[std::ffi::OsString]) -> bool {
    let Some((prog, args)) = argv.split_first() else { return false };
    duct::cmd(prog, args).stdin_null().stdout_null().stderr_null().unchecked().run().is_ok_and(|o| o.status.success())
}

impl BeforeConnect for Masters {
    fn before_connect(&self, o: &SshOpts, remote: &Remote) {
        let host = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            let key = format!("{}:{}", remote.destination(), remote.port.or(o.port).unwrap_or(22));
            Arc::clone(hosts.entry(key).or_default())
        };
        let mut failed = host.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_some_and(|t| t.elapsed() < AFTER_FAILURE) || quietly(&crate::ssh::control_argv(o, remote, "check"))
        {
            return;
        }
        *failed = (!quietly(&crate::ssh::master_argv(o, remote))).then(Instant::now);
    }
}
