//! Prometheus: the pairs' figures as `hammer_mirror_*` series (`prometheus-client`, text format 0.0.4), for `--metrics-file` and `--metrics-listen`.
//!
//! Every series has the labels `job` (empty outside `run`), `source` and
//! `target`; `failures_total` also `phase` (what the pair was doing when a
//! run failed). The figures are the state file's: the acknowledged TID's
//! time, lag from the acknowledgement, and counters kept across runs of the
//! pair. `--metrics-listen` serves `/metrics` on a thread of its own
//! (`tiny_http`); anything else gets 404.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::PairState;
use super::observer::Monitor;

type Labels = Vec<(String, String)>;
type FGauge = Family<Labels, Gauge<f64, AtomicU64>>;
type UCounter = Family<Labels, Counter<u64>>;

fn labels(s: &PairState) -> Labels {
    vec![
        ("job".into(), s.job.clone().unwrap_or_default()),
        ("source".into(), s.source.clone()),
        ("target".into(), s.target.clone()),
    ]
}

/// The series of `states` (each with whether its process runs), in Prometheus's text format.
pub fn encode(states: &[(PairState, bool)]) -> String {
    let mut reg = Registry::with_prefix("hammer_mirror");
    let up = FGauge::default();
    let ack = FGauge::default();
    let lag = FGauge::default();
    let lag_bytes = FGauge::default();
    let pass_bytes = UCounter::default();
    let passes = UCounter::default();
    let retries = UCounter::default();
    let stalls = UCounter::default();
    let failures = UCounter::default();
    let now = super::now();
    for (s, alive) in states {
        let l = labels(s);
        let connected = *alive && s.phase.connected();
        up.get_or_create(&l).set(if connected { 1.0 } else { 0.0 });
        if let Some(t) = s.acked_at {
            ack.get_or_create(&l).set(t);
        }
        match s.lag_at(now, *alive) {
            Some(x) => {
                lag.get_or_create(&l).set(x);
            }
            // Never acknowledged: the target holds nothing, however old.
            None if s.acked_tid.is_none() => {
                lag.get_or_create(&l).set(f64::INFINITY);
            }
            None => {}
        }
        if let Some(b) = s.lag_bytes {
            lag_bytes.get_or_create(&l).set(b as f64);
        }
        pass_bytes.get_or_create(&l).inc_by(s.pass_bytes);
        passes.get_or_create(&l).inc_by(s.passes);
        retries.get_or_create(&l).inc_by(s.retries);
        stalls.get_or_create(&l).inc_by(s.stalls);
        // The usual phases are there from the start, at 0: a failure counter
        // that never appeared cannot be told from one nobody scrapes.
        for phase in ["connecting", "sending", "idle"] {
            let mut lp = l.clone();
            lp.push(("phase".into(), phase.into()));
            let _ = failures.get_or_create(&lp);
        }
        for (phase, n) in &s.failures {
            let mut lp = l.clone();
            lp.push(("phase".into(), phase.clone()));
            failures.get_or_create(&lp).inc_by(*n);
        }
    }
    reg.register("up", "1 while the pair's process runs and is connected to both sides", up);
    reg.register(
        "last_ack_timestamp_seconds",
        "When the target last acknowledged a pass (heartbeats included), Unix time",
        ack,
    );
    reg.register(
        "lag_seconds",
        "How old the oldest change the target lacks is (0: it acknowledged the master's TID; +Inf: it never acknowledged)",
        lag,
    );
    reg.register("lag_bytes", "Stream bytes the target lacks, as the prescan estimates them", lag_bytes);
    reg.register("pass_bytes", "Stream bytes of acknowledged passes", pass_bytes);
    reg.register("passes", "Acknowledged passes that carried data", passes);
    reg.register("retries", "Lost links retried", retries);
    reg.register("stalls", "Runs the stall watchdog ended", stalls);
    reg.register("failures", "Failed runs, by the phase they failed in", failures);
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &reg).expect("writing to a String");
    out
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Serves `/metrics` of `monitor` on `addr` until the monitor is dropped.
pub fn serve(addr: &str, monitor: &Arc<Monitor>) -> anyhow::Result<()> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("--metrics-listen {addr}: cannot listen"))?;
    let weak: Weak<Monitor> = Arc::downgrade(monitor);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            loop {
                let req = match server.recv_timeout(Duration::from_millis(500)) {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        if weak.strong_count() == 0 {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                };
                let Some(m) = weak.upgrade() else { return };
                let path = req.url().split('?').next().unwrap_or("");
                let resp = if path == "/metrics" && *req.method() == tiny_http::Method::Get {
                    tiny_http::Response::from_string(m.metrics_text()).with_header(
                        tiny_http::Header::from_bytes(&b"Content-Type"[..], CONTENT_TYPE.as_bytes())
                            .expect("a valid header"),
                    )
                } else {
                    tiny_http::Response::from_string("hammer-mirror: only GET /metrics is served\n")
                        .with_status_code(404)
                };
                let _ = req.respond(resp);
            }
        })
        .context("starting the metrics thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_pairs_figures_and_labels() {
        let mut s = PairState::new(Some("web".into()), "/m".into(), "h:/s".into(), "run");
        s.phase = super::super::Phase::Idle;
        s.passes = 3;
        s.pass_bytes = 4096;
        s.acked_at = Some(1_700_000_000.5);
        s.failures.insert("sending".into(), 2);
        let text = encode(&[(s.clone(), true)]);
        let l = r#"{job="web",source="/m",target="h:/s"}"#;
        assert!(text.contains(&format!("hammer_mirror_passes_total{l} 3\n")), "{text}");
        assert!(text.contains(&format!("hammer_mirror_pass_bytes_total{l} 4096\n")), "{text}");
        assert!(text.contains(&format!("hammer_mirror_up{l} 1.0\n")), "{text}");
        assert!(text.contains(&format!("hammer_mirror_last_ack_timestamp_seconds{l} 1700000000.5\n")), "{text}");
        assert!(
            text.contains(r#"hammer_mirror_failures_total{job="web",source="/m",target="h:/s",phase="sending"} 2"#),
            "{text}"
        );
        assert!(text.contains(&format!("hammer_mirror_lag_seconds{l} +Inf\n")), "never acknowledged: {text}");
        s.acked_tid = Some(5);
        s.master_tid = Some(5);
        let text = encode(&[(s.clone(), true)]);
        assert!(text.contains(&format!("hammer_mirror_lag_seconds{l} 0.0\n")), "{text}");
        let text = encode(&[(s, false)]);
        assert!(text.contains(&format!("hammer_mirror_up{l} 0.0\n")), "a process that is gone is not up: {text}");
    }
}
