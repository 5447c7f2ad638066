//! The latency monitor (Redis's `latency.c`): for each kind of event that can stall a node
//! (a slow command, a long expiry sweep, a snapshot's copy of the keyspace, a slow write or
//! fsync of the append-only log), the last [`SAMPLES`] occurrences that took at least
//! `latency-monitor-threshold` milliseconds, one per second at most (the worst of that
//! second), and the worst ever. LATENCY LATEST / HISTORY / RESET / DOCTOR / GRAPH read it.
//!
//! With the threshold at 0 (the default) the monitor is off and costs each event one relaxed
//! atomic load ([`LatencyMonitor::record`]); only an event over the threshold takes the lock.
//! This module owns the samples and the texts made from them; it knows nothing of commands or
//! sockets (`cmd/latency.rs` is the command).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SAMPLES: usize = 160;

/// The events a node records, named as Redis names them where Redis has the same event.
pub mod event {
    /// A command that is not flagged `fast` ran for at least the threshold.
    pub const COMMAND: &str = "command";
    /// A `fast` command (GET, SET, ...) ran for at least the threshold: usually the machine,
    /// not the command.
    pub const FAST_COMMAND: &str = "fast-command";
    /// One sweep of the expiry task (`--cleanup-interval`) over every shard.
    pub const EXPIRE_CYCLE: &str = "expire-cycle";
    /// A snapshot's copy of the keyspace, one shard at a time under its lock: the part of a
    /// save that touches live data, where Redis measures its `fork`. (minikv's own name: it is
    /// not a fork, and tools reading `fork` would compare it with the wrong thing.)
    pub const SNAPSHOT_COPY: &str = "snapshot-copy";
    /// One write of appended records to the append-only log (the writer thread's `write`).
    pub const AOF_WRITE: &str = "aof-write";
    /// One fsync of the append-only log under `appendfsync always` (writes wait for it).
    pub const AOF_FSYNC_ALWAYS: &str = "aof-fsync-always";
}

/// The latency samples of one node. Shared (`Arc`) by the node, its persister and its log.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    /// `latency-monitor-threshold` in milliseconds; 0 is off.
    threshold_ms: AtomicU64,
    /// One series per event, in the order each was first recorded (LATENCY LATEST's order).
    /// A `Vec`: a handful of events, scanned under the lock only when one is recorded.
    series: Mutex<Vec<Series>>,
}

/// One recorded occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Unix seconds when it ended.
    pub unix_secs: i64,
    /// How long it took, in milliseconds.
    pub ms: u64,
}

/// An event's newest sample and its worst ever (LATENCY LATEST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// The event's name.
    pub event: &'static str,
    /// Its newest sample.
    pub sample: Sample,
    /// The longest it ever took, in milliseconds (kept across the ring's wrap).
    pub max_ms: u64,
}

/// What LATENCY DOCTOR's advice depends on besides the samples.
#[derive(Debug, Clone, Default)]
pub struct DoctorContext {
    /// `slowlog-log-slower-than` in microseconds (negative: off).
    pub slowlog_slower_than_us: i64,
    /// Whether `appendfsync` is `always`.
    pub fsync_always: bool,
    /// Whether the process has transparent huge pages mapped (see [`anon_huge_pages_kb`]).
    pub huge_pages: bool,
}

/// One event's ring of samples.
#[derive(Debug)]
struct Series {
    event: &'static str,
    /// Up to [`SAMPLES`]; once full, `next` is the oldest (overwritten next).
    samples: Vec<Sample>,
    next: usize,
    max_ms: u64,
}

impl Series {
    /// Samples oldest first.
    fn ordered(&self) -> impl Iterator<Item = &Sample> {
        let (newer, older) = self.samples.split_at(self.next.min(self.samples.len()));
        older.iter().chain(newer)
    }

    fn newest(&self) -> Option<&Sample> {
        let i = (self.next + self.samples.len()).checked_sub(1)? % self.samples.len();
        self.samples.get(i)
    }
}

impl LatencyMonitor {
    /// The threshold in milliseconds (0: off).
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// Sets the threshold (CONFIG SET latency-monitor-threshold); 0 turns recording off but
    /// keeps the samples, as Redis does.
    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// Records that `event` took `took`, if the monitor is on and that is at least the
    /// threshold. Off, this is one relaxed load.
    #[inline]
    pub fn record(&self, event: &'static str, took: Duration) {
        self.record_with(took, || event);
    }

    /// [`LatencyMonitor::record`] for a caller whose event name costs something to work out
    /// (the command path: `fast-command` or `command`): `event` runs only for a sample.
    #[inline]
    pub fn record_with(&self, took: Duration, event: impl FnOnce() -> &'static str) {
        let threshold = self.threshold_ms.load(Ordering::Relaxed);
        if threshold == 0 {
            return;
        }
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        if ms >= threshold {
            self.add(event(), ms, crate::store::clock::unix_ms() / 1000);
        }
    }

    /// Adds a sample at `unix_secs` (Redis's `latencyAddSample`): a second sample within the
    /// same second only raises that second's sample.
    #[cold]
    fn add(&self, event: &'static str, ms: u64, unix_secs: i64) {
        let mut all = self.series.lock().expect("latency lock poisoned");
        let series = match all.iter().position(|s| s.event == event) {
            Some(i) => &mut all[i],
            None => {
                all.push(Series {
                    event,
                    samples: Vec::with_capacity(SAMPLES),
                    next: 0,
                    max_ms: 0,
                });
                let last = all.len() - 1;
                &mut all[last]
            }
        };
        series.max_ms = series.max_ms.max(ms);
        if let Some(newest) = series.newest() {
            if newest.unix_secs == unix_secs {
                let i = (series.next + series.samples.len() - 1) % series.samples.len();
                series.samples[i].ms = series.samples[i].ms.max(ms);
                return;
            }
        }
        let sample = Sample { unix_secs, ms };
        if series.samples.len() < SAMPLES {
            series.samples.push(sample);
            series.next = series.samples.len() % SAMPLES;
        } else {
            series.samples[series.next] = sample;
            series.next = (series.next + 1) % SAMPLES;
        }
    }

    /// Every event's newest sample, in the order the events were first recorded.
    pub fn latest(&self) -> Vec<Latest> {
        let all = self.series.lock().expect("latency lock poisoned");
        all.iter()
            .filter_map(|s| {
                Some(Latest {
                    event: s.event,
                    sample: *s.newest()?,
                    max_ms: s.max_ms,
                })
            })
            .collect()
    }

    /// The samples of `event` (exact name, as Redis looks it up), oldest first; empty when
    /// it has none.
    pub fn history(&self, event: &[u8]) -> Vec<Sample> {
        let all = self.series.lock().expect("latency lock poisoned");
        all.iter()
            .find(|s| s.event.as_bytes() == event)
            .map(|s| s.ordered().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets the named events (any case), or every event when `events` is empty; returns
    /// how many were forgotten (a name given twice counts once, as in Redis).
    pub fn reset(&self, events: &[Bytes]) -> usize {
        let mut all = self.series.lock().expect("latency lock poisoned");
        let before = all.len();
        if events.is_empty() {
            all.clear();
            return before;
        }
        let mut reset = 0;
        for name in events {
            let had = all.len();
            all.retain(|s| !s.event.as_bytes().eq_ignore_ascii_case(name));
            reset += had - all.len();
        }
        reset
    }

    /// LATENCY GRAPH's ASCII art for `event` (exact name), or `None` when it has no samples.
    pub fn graph(&self, event: &[u8], now_secs: i64) -> Option<String> {
        let all = self.series.lock().expect("latency lock poisoned");
        let series = all.iter().find(|s| s.event.as_bytes() == event)?;
        let samples: Vec<Sample> = series.ordered().copied().collect();
        let high = samples.iter().map(|s| s.ms).max().unwrap_or(0);
        let low = samples.iter().map(|s| s.ms).min().unwrap_or(0);
        let mut out = format!(
            "{} - high {high} ms, low {low} ms (all time high {} ms)\n{}\n",
            series.event,
            series.max_ms,
            "-".repeat(GRAPH_COLUMNS)
        );
        let points: Vec<(f64, String)> = samples
            .iter()
            .map(|s| (s.ms as f64, ago(now_secs - s.unix_secs)))
            .collect();
        super::sparkline::render(&mut out, &points, GRAPH_COLUMNS, GRAPH_ROWS);
        Some(out)
    }

    /// LATENCY DOCTOR's report (Redis's `createLatencyReport`): Redis's texts where they
    /// apply, minikv's own advice where the cause or the remedy differs.
    pub fn doctor(&self, context: &DoctorContext, now_secs: i64) -> String {
        let all = self.series.lock().expect("latency lock poisoned");
        let threshold = self.threshold_ms();
        if all.is_empty() && threshold == 0 {
            return DISABLED.to_string();
        }
        let mut report = String::new();
        let mut advice = Advice::default();
        for (n, series) in all.iter().enumerate() {
            if n == 0 {
                report.push_str(SPIKES);
            }
            let figures = Figures::of(series, now_secs);
            let _ = write!(
                report,
                "{}. {}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} \
                 sec). Worst all time event {}ms.",
                n + 1,
                series.event,
                figures.samples,
                figures.avg,
                figures.mad,
                figures.period as f64 / figures.samples.max(1) as f64,
                series.max_ms
            );
            advice.note(series.event, context, threshold);
            report.push('\n');
        }
        if context.huge_pages {
            advice.huge_pages = true;
            advice.count += 1;
        }
        if all.is_empty() && advice.count == 0 {
            report.push_str(NO_SPIKES);
        } else if advice.count == 0 {
            report.push_str(NO_FIX);
        } else {
            report.push_str("\nI have a few advices for you:\n\n");
            advice.write(&mut report, context, threshold);
        }
        report
    }
}

/// The transparent huge pages mapped by this process, in kB, from `/proc/self/smaps_rollup`
/// (0 where that file does not exist or cannot be read).
pub fn anon_huge_pages_kb() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps_rollup") else {
        return 0;
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("AnonHugePages:"))
        .filter_map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .sum()
}

/// "N seconds/minutes/hours/days ago" as LATENCY GRAPH labels samples.
fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// One event's figures for the doctor (Redis's `analyzeLatencyForEvent`).
struct Figures {
    samples: u64,
    avg: u64,
    /// Mean absolute deviation from `avg`.
    mad: u64,
    /// Seconds since the oldest sample (at least 1).
    period: i64,
}

impl Figures {
    fn of(series: &Series, now_secs: i64) -> Figures {
        let samples = series.samples.len() as u64;
        let sum: u64 = series.samples.iter().map(|s| s.ms).sum();
        let avg = sum.checked_div(samples).unwrap_or(0);
        let deviation: u64 = series.samples.iter().map(|s| s.ms.abs_diff(avg)).sum();
        let oldest = series.samples.iter().map(|s| s.unix_secs).min();
        Figures {
            samples,
            avg,
            mad: deviation.checked_div(samples).unwrap_or(0),
            period: oldest.map_or(0, |o| (now_secs - o).max(1)),
        }
    }
}

/// Which pieces of advice the doctor gives (Redis's `advise_*` flags, minikv's subset).
#[derive(Default)]
struct Advice {
    count: usize,
    slowlog_enable: bool,
    slowlog_tune: bool,
    slowlog_inspect: bool,
    large_objects: bool,
    scheduler: bool,
    expiry_sweep: bool,
    snapshot_copy: bool,
    local_disk: bool,
    ssd: bool,
    disk_contention: bool,
    relax_fsync: bool,
    huge_pages: bool,
}

impl Advice {
    fn note(&mut self, event: &str, context: &DoctorContext, threshold: u64) {
        match event {
            event::COMMAND => {
                if context.slowlog_slower_than_us < 0 {
                    self.slowlog_enable = true;
                    self.count += 1;
                } else if context.slowlog_slower_than_us as u64 / 1000 > threshold {
                    self.slowlog_tune = true;
                    self.count += 1;
                }
                self.slowlog_inspect = true;
                self.large_objects = true;
                self.count += 2;
            }
            event::FAST_COMMAND => {
                self.scheduler = true;
                self.count += 1;
            }
            event::EXPIRE_CYCLE => {
                self.expiry_sweep = true;
                self.large_objects = true;
                self.count += 2;
            }
            event::SNAPSHOT_COPY => {
                self.snapshot_copy = true;
                self.count += 1;
            }
            event::AOF_WRITE => {
                self.local_disk = true;
                self.ssd = true;
                self.disk_contention = true;
                self.count += 3;
            }
            event::AOF_FSYNC_ALWAYS => {
                // Counted even when the policy has changed since, as Redis counts it.
                self.relax_fsync = true;
                self.count += 1;
            }
            _ => {}
        }
    }

    fn write(&self, report: &mut String, context: &DoctorContext, threshold: u64) {
        let us = threshold.saturating_mul(1000);
        let mut line = |on: bool, text: &str| {
            if on {
                report.push_str("- ");
                report.push_str(text);
                report.push('\n');
            }
        };
        line(
            self.slowlog_enable,
            &format!(
                "There are latency issues with potentially slow commands you are using. Try to \
                 enable the Slow Log feature using the command 'CONFIG SET \
                 slowlog-log-slower-than {us}'. If the Slow log is disabled the node is not able \
                 to log slow commands execution for you."
            ),
        );
        line(
            self.slowlog_tune,
            &format!(
                "Your current Slow Log configuration only logs events that are slower than your \
                 configured latency monitor threshold. Please use 'CONFIG SET \
                 slowlog-log-slower-than {us}'."
            ),
        );
        line(
            self.slowlog_inspect,
            "Check your Slow Log to understand what are the commands you are running which are \
             too slow to execute. Please check https://redis.io/commands/slowlog for more \
             information.",
        );
        line(
            self.scheduler,
            "The system is slow to execute code paths not containing system calls. This usually \
             means the system does not give the node CPU time to run for long periods. You \
             should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for the \
             node if you are running other software in the same system.\n  3) Check if you have \
             a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' \
             what is the intrinsic latency in your system.",
        );
        line(
            self.local_disk,
            "It is strongly advised to use local disks for persistence, especially if you are \
             using the append-only log. Remote disks provided by platform-as-a-service \
             providers are known to be slow.",
        );
        line(
            self.ssd,
            "SSD disks are able to reduce fsync latency and the time needed to write \
             snapshots. With extremely high write load SSD disks can be a good option.",
        );
        line(
            self.disk_contention,
            "Try to lower the disk contention. This is often caused by other disk intensive \
             processes running in the same computer (including other minikv or Redis \
             instances).",
        );
        line(
            self.relax_fsync && context.fsync_always,
            "Your fsync policy is set to 'always'. It is very hard to get good performances \
             with such a setup, if possible try to relax the fsync policy to 'everysec'.",
        );
        line(
            self.expiry_sweep,
            "The expiry sweep removes every expired key it finds each --cleanup-interval, one \
             shard at a time. A shorter interval makes each sweep smaller; reads never return \
             an expired key whatever the interval.",
        );
        line(
            self.snapshot_copy,
            "A snapshot starts by copying the keyspace one shard at a time, each under its \
             shard's lock (where Redis forks), so the copy grows with the data set; a command \
             waits at most for its own shard's copy. Very large collections make one shard's \
             copy long: fragment them. A less frequent 'save' rule makes copies rarer.",
        );
        line(
            self.large_objects,
            "Deleting or expiring large objects (collections of many elements) holds their \
             shard's lock for the whole operation. If you have very large objects that are \
             often deleted or expired, try to fragment those objects into multiple smaller \
             objects.",
        );
        line(
            self.huge_pages,
            "I detected a non zero amount of anonymous huge pages used by your process. This \
             creates very serious latency events in different conditions, especially when \
             persisting on disk. To disable THP support use the command 'echo never > \
             /sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into \
             /etc/rc.local so that the command will be executed again after a reboot. Note \
             that even if you have already disabled THP, you still need to restart the process \
             to get rid of the huge pages already created.",
        );
    }
}

/// LATENCY GRAPH's width in columns, and height of the sparkline in rows (Redis's).
const GRAPH_COLUMNS: usize = 80;
const GRAPH_ROWS: usize = 4;

/// The doctor's answer before the monitor was ever turned on (Redis's, word for word).
const DISABLED: &str = "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in \
this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in \
order to enable it. If we weren't in a deep space mission I'd suggest to take a look at \
https://redis.io/topics/latency-monitor.\n";
/// The doctor's opening when there are events (Redis's).
const SPIKES: &str = "Dave, I have observed latency spikes in this Redis instance. You don't \
mind talking about it, do you Dave?\n\n";
/// The doctor's answer when the monitor is on and nothing was recorded (Redis's).
const NO_SPIKES: &str = "Dave, no latency spike was observed during the lifetime of this Redis \
instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a \
stress pill, and think things over.\n";
/// The doctor's answer when there are events but no advice.
const NO_FIX: &str = "\nWhile there are latency events logged, I'm not able to suggest any \
easy fix. Please ask for help in the project's issues, providing this report.\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(threshold: u64) -> LatencyMonitor {
        let m = LatencyMonitor::default();
        m.set_threshold_ms(threshold);
        m
    }

    #[test]
    fn off_or_under_the_threshold_records_nothing() {
        let m = monitor(0);
        m.record(event::COMMAND, Duration::from_secs(5));
        assert!(m.latest().is_empty());
        m.set_threshold_ms(100);
        m.record(event::COMMAND, Duration::from_millis(99));
        assert!(m.latest().is_empty());
        m.record(event::COMMAND, Duration::from_millis(100));
        assert_eq!(m.latest().len(), 1);
    }

    #[test]
    fn one_sample_per_second_keeps_the_worst() {
        let m = monitor(1);
        m.add(event::COMMAND, 5, 100);
        m.add(event::COMMAND, 9, 100);
        m.add(event::COMMAND, 3, 100);
        m.add(event::COMMAND, 4, 101);
        let history = m.history(b"command");
        assert_eq!(
            history,
            [
                Sample {
                    unix_secs: 100,
                    ms: 9
                },
                Sample {
                    unix_secs: 101,
                    ms: 4
                }
            ]
        );
        let latest = m.latest();
        assert_eq!(latest[0].sample.ms, 4);
        assert_eq!(latest[0].max_ms, 9);
    }

    #[test]
    fn the_ring_keeps_the_newest_samples_oldest_first() {
        let m = monitor(1);
        for t in 0..(SAMPLES as i64 + 5) {
            m.add(event::EXPIRE_CYCLE, t as u64 + 1, t);
        }
        let history = m.history(b"expire-cycle");
        assert_eq!(history.len(), SAMPLES);
        assert_eq!(history[0].unix_secs, 5);
        assert_eq!(history[SAMPLES - 1].unix_secs, SAMPLES as i64 + 4);
        assert_eq!(m.latest()[0].max_ms, SAMPLES as u64 + 5);
    }

    #[test]
    fn reset_counts_events_and_ignores_case() {
        let m = monitor(1);
        m.add(event::COMMAND, 5, 1);
        m.add(event::FAST_COMMAND, 5, 1);
        m.add(event::EXPIRE_CYCLE, 5, 1);
        let names = |n: &[&'static str]| -> Vec<Bytes> {
            n.iter()
                .copied()
                .map(|s| Bytes::from_static(s.as_bytes()))
                .collect()
        };
        assert_eq!(m.reset(&names(&["COMMAND", "command", "nosuch"])), 1);
        assert_eq!(m.reset(&[]), 2);
        assert!(m.latest().is_empty());
    }

    #[test]
    fn doctor_speaks_redis_when_there_is_nothing_to_report() {
        let m = monitor(0);
        let context = DoctorContext::default();
        assert_eq!(m.doctor(&context, 0), DISABLED);
        m.set_threshold_ms(10);
        assert_eq!(m.doctor(&context, 0), NO_SPIKES);
    }

    #[test]
    fn doctor_reports_each_event_with_its_advice() {
        let m = monitor(10);
        m.add(event::COMMAND, 10, 100);
        m.add(event::COMMAND, 30, 101);
        let context = DoctorContext {
            slowlog_slower_than_us: 50_000,
            ..DoctorContext::default()
        };
        let report = m.doctor(&context, 104);
        assert!(report.starts_with(SPIKES), "{report}");
        assert!(
            report.contains(
                "1. command: 2 latency spikes (average 20ms, mean deviation 10ms, period 2.00 \
                 sec). Worst all time event 30ms.\n"
            ),
            "{report}"
        );
        assert!(report.contains("'CONFIG SET slowlog-log-slower-than 10000'"));
        assert!(report.contains("Check your Slow Log"));
    }

    #[test]
    fn graph_draws_a_sparkline_with_labels() {
        let m = monitor(1);
        m.add(event::COMMAND, 10, 100);
        m.add(event::COMMAND, 40, 130);
        let graph = m.graph(b"command", 160).expect("samples");
        let lines: Vec<&str> = graph.lines().collect();
        assert_eq!(
            lines[0],
            "command - high 40 ms, low 10 ms (all time high 40 ms)"
        );
        assert_eq!(lines[1], "-".repeat(80));
        // Four rows of bars, a blank margin, then the labels ("1m", "30s") written downwards.
        assert_eq!(
            &lines[2..],
            [" #", " |", " |", "_|", "  ", "13", "m0", " s"]
        );
        assert!(m.graph(b"nosuch", 0).is_none());
    }
}
