//! Per-command statistics: calls, time, failures, rejections and a latency histogram for
//! every command of the table (INFO `commandstats` and `latencystats`, `/metrics`).
//!
//! The request path pays three or four relaxed counter updates per command and nothing else:
//! no lock, no `lock`-prefixed instruction, no allocation, no clock read of its own (it is
//! handed the duration the command path measures anyway). Counters are striped per thread like
//! the node's other counters (see [`super::stripe`]): each stripe is one allocation of one
//! record per command, and a record fills whole cache lines, so two stripes never share a
//! line. A read sums the stripes and subtracts the baseline of the last reset.
//!
//! The histogram has fixed log-scale buckets: bucket `k` counts durations in
//! `(2^(k-1), 2^k]` microseconds (bucket 0 everything up to 1 µs), the last bucket everything
//! longer than the one before it. Percentiles are interpolated linearly inside their bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::stripe::{self, STRIPES};

/// Number of histogram buckets: 2^0 .. 2^24 µs (about 16.8 s), then everything longer.
pub const BUCKETS: usize = 26;

/// Indices into a [`Record`].
const CALLS: usize = 0;
const USEC: usize = 1;
const FAILED: usize = 2;
const REJECTED: usize = 3;
const HIST: usize = 4;
/// Counters per record.
const COUNTERS: usize = HIST + BUCKETS;

/// One command's counters in one stripe: 30 counters, padded to 256 bytes.
#[derive(Debug, Default)]
#[repr(align(256))]
struct Record([AtomicU64; COUNTERS]);

/// The per-command counters of one node.
#[derive(Debug)]
pub struct CommandStats {
    /// One per writing thread, plus the shared one (see [`stripe`]).
    stripes: Box<[Box<[Record]>]>,
    /// Per command, the sums at the last reset, subtracted from every read.
    baseline: Mutex<Vec<[u64; COUNTERS]>>,
    commands: usize,
}

/// What happened to one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and succeeded.
    Ok,
    /// It ran and answered an error (Redis's `failed_calls`; still a call).
    Failed,
}

/// A summed copy of one command's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFigures {
    /// Position in the command table.
    pub id: usize,
    /// The command's name in the table (lower case).
    pub name: &'static str,
    /// Calls that ran (failed ones included), as Redis's `calls`.
    pub calls: u64,
    /// Microseconds spent in them.
    pub usec: u64,
    /// Calls that ran and answered an error.
    pub failed: u64,
    /// Calls refused before running (arity, NOAUTH, MISCONF, subscribed mode).
    pub rejected: u64,
    /// The latency histogram (see the module doc), per bucket (not cumulative).
    pub histogram: [u64; BUCKETS],
}

impl CommandStats {
    /// Counters for a table of `commands` commands.
    pub fn new(commands: usize) -> Self {
        let stripe = || (0..commands).map(|_| Record::default()).collect();
        CommandStats {
            stripes: (0..=STRIPES).map(|_| stripe()).collect(),
            baseline: Mutex::new(vec![[0; COUNTERS]; commands]),
            commands,
        }
    }

    /// Counts one call of command `id` that took `took`. An `id` outside the table is
    /// ignored.
    #[inline]
    pub fn record(&self, id: usize, took: Duration, outcome: Outcome) {
        let at = stripe::current();
        let Some(record) = self.stripes[at].get(id) else {
            return;
        };
        let c = &record.0;
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        stripe::add(&c[CALLS], at, 1);
        stripe::add(&c[USEC], at, nanos / 1000);
        stripe::add(&c[HIST + bucket(nanos)], at, 1);
        if outcome == Outcome::Failed {
            stripe::add(&c[FAILED], at, 1);
        }
    }

    /// Counts a call of command `id` refused before it ran.
    pub fn reject(&self, id: usize) {
        let at = stripe::current();
        if let Some(record) = self.stripes[at].get(id) {
            stripe::add(&record.0[REJECTED], at, 1);
        }
    }

    /// Zeroes every counter as readers see them (CONFIG RESETSTAT): the current sums become
    /// the baseline.
    pub fn reset(&self) {
        let mut baseline = self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        for (id, base) in baseline.iter_mut().enumerate() {
            for (i, slot) in base.iter_mut().enumerate() {
                *slot = self.raw_sum(id, i);
            }
        }
    }

    fn raw_sum(&self, id: usize, i: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s[id].0[i].load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// The summed figures of every command that was called or rejected at least once, in
    /// table order.
    pub fn snapshot(&self) -> Vec<CommandFigures> {
        let baseline = self
            .baseline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (0..self.commands)
            .filter_map(|id| {
                let sum = |i: usize| -> u64 { self.raw_sum(id, i).wrapping_sub(baseline[id][i]) };
                let (calls, rejected) = (sum(CALLS), sum(REJECTED));
                if calls == 0 && rejected == 0 {
                    return None;
                }
                let mut histogram = [0; BUCKETS];
                for (k, slot) in histogram.iter_mut().enumerate() {
                    *slot = sum(HIST + k);
                }
                Some(CommandFigures {
                    id,
                    name: crate::cmd::table().get(id).map_or("?", |c| c.name),
                    calls,
                    usec: sum(USEC),
                    failed: sum(FAILED),
                    rejected,
                    histogram,
                })
            })
            .collect()
    }
}

/// The bucket of a duration of `nanos` nanoseconds: the smallest `k` with
/// `nanos <= 2^k µs`, capped at the last bucket.
#[inline]
pub fn bucket(nanos: u64) -> usize {
    let whole_us = nanos.saturating_sub(1) / 1000;
    ((u64::BITS - whole_us.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `k` in microseconds (`None` for the last, unbounded one).
pub fn bucket_bound_us(k: usize) -> Option<u64> {
    (k < BUCKETS - 1).then(|| 1u64 << k)
}

impl CommandFigures {
    /// Calls counted in the histogram.
    pub fn histogram_count(&self) -> u64 {
        self.histogram.iter().sum()
    }

    /// The `p`th percentile (0..=100) of the latency in microseconds, interpolated linearly
    /// inside its bucket; `None` without calls. Values in the last, unbounded bucket are
    /// reported as its lower bound.
    pub fn percentile_us(&self, p: f64) -> Option<f64> {
        let count = self.histogram_count();
        if count == 0 {
            return None;
        }
        // The rank of the wanted call, 1-based, as HdrHistogram's value at percentile.
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * count as f64)
            .ceil()
            .max(1.0);
        let mut below = 0u64;
        for (k, &n) in self.histogram.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                let lower = if k == 0 {
                    0.0
                } else {
                    (1u64 << (k - 1)) as f64
                };
                let Some(upper) = bucket_bound_us(k) else {
                    return Some(lower);
                };
                let into = (rank - below as f64) / n as f64;
                return Some(lower + (upper as f64 - lower) * into);
            }
            below += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_microseconds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(1000), 0);
        assert_eq!(bucket(1001), 1);
        assert_eq!(bucket(2000), 1);
        assert_eq!(bucket(2001), 2);
        assert_eq!(bucket(4000), 2);
        assert_eq!(bucket(4001), 3);
        assert_eq!(bucket(1_000_000), 10); // 1 ms <= 1024 µs
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_bound_us(0), Some(1));
        assert_eq!(bucket_bound_us(3), Some(8));
        assert_eq!(bucket_bound_us(BUCKETS - 1), None);
        // Every bounded bucket's upper bound falls in it, and one nanosecond more does not.
        for k in 0..BUCKETS - 1 {
            let bound = bucket_bound_us(k).unwrap_or_default() * 1000;
            assert_eq!(bucket(bound), k);
            assert_eq!(bucket(bound + 1), k + 1);
        }
    }

    #[test]
    fn records_sum_over_stripes() {
        let stats = CommandStats::new(3);
        for _ in 0..40 {
            stats.record(1, Duration::from_micros(3), Outcome::Ok);
        }
        stats.record(1, Duration::from_micros(100), Outcome::Failed);
        stats.reject(2);
        stats.record(99, Duration::from_micros(1), Outcome::Ok); // ignored
        let snap = stats.snapshot();
        assert_eq!(snap.len(), 2, "command 0 was never called");
        let one = &snap[0];
        assert_eq!((one.id, one.calls, one.usec, one.failed), (1, 41, 220, 1));
        assert_eq!(one.histogram[2], 40);
        assert_eq!(one.histogram[7], 1);
        assert_eq!(one.histogram_count(), 41);
        let two = &snap[1];
        assert_eq!((two.id, two.calls, two.rejected), (2, 0, 1));
        stats.reset();
        assert!(stats.snapshot().is_empty());
    }

    #[test]
    fn percentiles_interpolate_inside_buckets() {
        let stats = CommandStats::new(1);
        // 100 calls: 50 of 1 µs, 49 of 3 µs (bucket (2, 4]), one of 1 ms (bucket (512, 1024]).
        for _ in 0..50 {
            stats.record(0, Duration::from_micros(1), Outcome::Ok);
        }
        for _ in 0..49 {
            stats.record(0, Duration::from_micros(3), Outcome::Ok);
        }
        stats.record(0, Duration::from_millis(1), Outcome::Ok);
        let figures = &stats.snapshot()[0];
        let p = |q| figures.percentile_us(q).unwrap_or(f64::NAN);
        assert_eq!(p(50.0), 1.0, "the 50th call is the last of bucket (0, 1]");
        assert!(
            (p(99.0) - 4.0).abs() < 1e-9,
            "the 99th ends bucket (2, 4]: {}",
            p(99.0)
        );
        assert!((p(99.9) - 1024.0).abs() < 1e-9, "{}", p(99.9));
        assert!(p(0.0) > 0.0 && p(0.0) <= 1.0);
        assert!((p(100.0) - 1024.0).abs() < 1e-9);
        // Monotonic in p.
        let mut last = 0.0;
        for q in 0..=1000 {
            let v = p(f64::from(q) / 10.0);
            assert!(v >= last, "p{} = {v} < {last}", f64::from(q) / 10.0);
            last = v;
        }
        assert_eq!(CommandStats::new(1).snapshot().len(), 0);
        let unbounded = CommandStats::new(1);
        unbounded.record(0, Duration::from_secs(60), Outcome::Ok);
        assert_eq!(
            unbounded.snapshot()[0].percentile_us(50.0),
            Some((1u64 << 24) as f64)
        );
    }
}
