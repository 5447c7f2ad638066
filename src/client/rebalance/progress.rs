//! What a slot move reports as it goes ([`Progress`]), and the one renderer the `minikv`
//! command uses ([`Printer`]): a redrawn bar on a terminal, else one line per call. The lines'
//! formats are documented in the parent module; they are built by the `*_line` functions here,
//! which tests parse.

use std::io::Write;
use std::time::Duration;

use super::plan::ShardId;

/// Receives the events of a run of moves; every method does nothing unless overridden.
pub trait Progress {
    /// The plan, before the first call.
    fn start(&mut self, _start: &Start) {}
    /// One `CLUSTER MOVESLOTS` call succeeded.
    fn step(&mut self, _step: &Step) {}
    /// A call failed in a way worth retrying; the next attempt comes after `pause` (and a
    /// fresh `CLUSTER SHARDS`).
    fn retry(&mut self, _reason: &str, _pause: Duration) {}
    /// `CLUSTER REMOVENODE id` succeeded (remove-node only).
    fn removed(&mut self, _id: ShardId) {}
    /// The run ended well.
    fn finish(&mut self, _summary: &Summary) {}
}

/// The plan at the start of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Each shard's slot count before any move, in id order.
    pub shards: Vec<(ShardId, usize)>,
    /// Slots to move.
    pub slots: usize,
    /// `CLUSTER MOVESLOTS` calls planned.
    pub calls: usize,
    /// The shard being emptied (remove-node), or `None` for a rebalance.
    pub removing: Option<ShardId>,
}

/// What one `CLUSTER MOVESLOTS` reply said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveStats {
    /// Slots moved.
    pub slots: u64,
    /// Keys copied.
    pub keys: u64,
    /// Raw key and value bytes copied.
    pub bytes: u64,
    /// Bytes sent between the nodes (compressed).
    pub wire_bytes: u64,
    /// Milliseconds the move took on the node.
    pub ms: u64,
}

/// Running totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Slots that changed shard: every slot of a successful call, and the slots of a call
    /// whose reply was lost that `CLUSTER SHARDS` then showed at their destination.
    pub slots: u64,
    /// Keys copied, from the replies received (a lost reply's keys are not known).
    pub keys: u64,
    /// Raw bytes copied, from the replies received.
    pub bytes: u64,
    /// Bytes on the wire, from the replies received.
    pub wire_bytes: u64,
}

/// One successful call, with the run's totals after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The giving shard.
    pub from: ShardId,
    /// The receiving shard.
    pub to: ShardId,
    /// What the reply said.
    pub stats: MoveStats,
    /// Totals so far, this call included.
    pub totals: Totals,
    /// Slots the whole run moves (totals so far plus what the plan still holds).
    pub total_slots: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

impl Step {
    /// The time left at the pace so far (slots per second).
    pub fn left(&self) -> Duration {
        let remaining = self.total_slots.saturating_sub(self.totals.slots);
        if self.totals.slots == 0 || remaining == 0 {
            return Duration::ZERO;
        }
        self.elapsed
            .mul_f64(remaining as f64 / self.totals.slots as f64)
    }
}

/// The end of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// What was moved.
    pub totals: Totals,
    /// How long it took.
    pub elapsed: Duration,
}

impl Summary {
    /// Keys copied per second over the whole run (0 for a run that took no time).
    pub fn keys_per_second(&self) -> u64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            (self.totals.keys as f64 / seconds) as u64
        } else {
            0
        }
    }
}

/// The `plan:` line, or `already balanced: ...` for a rebalance with nothing to move.
pub fn start_line(start: &Start) -> String {
    if start.calls == 0 && start.removing.is_none() {
        let sizes = start.shards.iter().map(|(_, n)| *n);
        let (min, max) = (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0));
        let each = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        let shards = start.shards.len();
        return format!("already balanced: {shards} shards with {each} slots each");
    }
    let owners: Vec<String> = start
        .shards
        .iter()
        .map(|(id, n)| format!("{id}={n}"))
        .collect();
    let of = start
        .removing
        .map(|id| format!(" of shard {id}"))
        .unwrap_or_default();
    format!(
        "plan: move {} slots{of} in {} calls (shards: {})",
        start.slots,
        start.calls,
        owners.join(" ")
    )
}

/// The line for one call: `moved 256 slots 3 -> 4: keys=20833 bytes=1234567 wire=345678
/// (512/3072 slots, 00:03 left)`.
pub fn step_line(step: &Step) -> String {
    format!(
        "moved {} slots {} -> {}: keys={} bytes={} wire={} ({}/{} slots, {} left)",
        step.stats.slots,
        step.from,
        step.to,
        step.stats.keys,
        step.stats.bytes,
        step.stats.wire_bytes,
        step.totals.slots,
        step.total_slots,
        clock(step.left())
    )
}

/// The summary: `done: slots=3072 keys=250000 bytes=... wire=... seconds=12.34 keys/s=20259`.
pub fn summary_line(summary: &Summary) -> String {
    let t = &summary.totals;
    format!(
        "done: slots={} keys={} bytes={} wire={} seconds={:.2} keys/s={}",
        t.slots,
        t.keys,
        t.bytes,
        t.wire_bytes,
        summary.elapsed.as_secs_f64(),
        summary.keys_per_second()
    )
}

/// The terminal's bar: `[#######.............] 512/3072 slots, 20833 keys, 1.2 MiB (wire
/// 345.7 KiB), 6944 keys/s, 00:03 left`.
pub fn bar_line(step: &Step) -> String {
    const WIDTH: u64 = 24;
    let filled = (step.totals.slots * WIDTH)
        .checked_div(step.total_slots)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let seconds = step.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        (step.totals.keys as f64 / seconds) as u64
    } else {
        0
    };
    format!(
        "[{}{}] {}/{} slots, {} keys, {} (wire {}), {rate} keys/s, {} left",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize),
        step.totals.slots,
        step.total_slots,
        step.totals.keys,
        human_bytes(step.totals.bytes),
        human_bytes(step.totals.wire_bytes),
        clock(step.left())
    )
}

/// Renders a run for a person: the plan, the summary and `removed: node ID` on `out`; each
/// call as a line on `out`, or, with `bar`, as one line redrawn in place on `err` (a
/// terminal); retries on `err`. Write errors are ignored: a closed pipe must not stop a move.
pub struct Printer<O: Write, E: Write> {
    out: O,
    err: E,
    bar: bool,
    /// A bar is on screen without its line ended.
    drawn: bool,
}

impl<O: Write, E: Write> Printer<O, E> {
    /// A printer writing to `out` and `err`, with a redrawn bar on `err` when `bar` is set.
    pub fn new(out: O, err: E, bar: bool) -> Self {
        Printer {
            out,
            err,
            bar,
            drawn: false,
        }
    }

    /// Ends the bar's line, so that what comes next starts on its own line.
    fn end_bar(&mut self) {
        if self.drawn {
            let _ = writeln!(self.err);
            self.drawn = false;
        }
    }

    fn say(&mut self, line: &str) {
        self.end_bar();
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}

impl<O: Write, E: Write> Progress for Printer<O, E> {
    fn start(&mut self, start: &Start) {
        self.say(&start_line(start));
    }

    fn step(&mut self, step: &Step) {
        if self.bar {
            // Carriage return, then erase to the end of the line: the bar redraws in place.
            let _ = write!(self.err, "\r\x1b[K{}", bar_line(step));
            let _ = self.err.flush();
            self.drawn = true;
        } else {
            self.say(&step_line(step));
        }
    }

    fn retry(&mut self, reason: &str, pause: Duration) {
        self.end_bar();
        let _ = writeln!(
            self.err,
            "retry: {reason} (again in {} s)",
            pause.as_secs_f64()
        );
    }

    fn removed(&mut self, id: ShardId) {
        self.say(&format!("removed: node {id}"));
    }

    fn finish(&mut self, summary: &Summary) {
        self.say(&summary_line(summary));
    }
}

/// `mm:ss`, or `h:mm:ss` from an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// `532 B`, `1.2 KiB`, `345.7 MiB`, `3.0 GiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Step {
        Step {
            from: 3,
            to: 4,
            stats: MoveStats {
                slots: 256,
                keys: 20833,
                bytes: 1_234_567,
                wire_bytes: 345_678,
                ms: 900,
            },
            totals: Totals {
                slots: 512,
                keys: 41666,
                bytes: 2_469_134,
                wire_bytes: 691_356,
            },
            total_slots: 3072,
            elapsed: Duration::from_secs(2),
        }
    }

    #[test]
    fn lines_have_the_documented_format() {
        assert_eq!(
            step_line(&step()),
            "moved 256 slots 3 -> 4: keys=20833 bytes=1234567 wire=345678 \
             (512/3072 slots, 00:10 left)"
        );
        let summary = Summary {
            totals: step().totals,
            elapsed: Duration::from_millis(2500),
        };
        assert_eq!(
            summary_line(&summary),
            "done: slots=512 keys=41666 bytes=2469134 wire=691356 seconds=2.50 keys/s=16666"
        );
        assert_eq!(
            bar_line(&step()),
            "[####....................] 512/3072 slots, 41666 keys, 2.4 MiB (wire 675.2 KiB), \
             20833 keys/s, 00:10 left"
        );
    }

    #[test]
    fn the_plan_line_names_each_shards_load_or_says_balanced() {
        let mut start = Start {
            shards: vec![(1, 4096), (2, 4096), (3, 4096), (4, 0)],
            slots: 3072,
            calls: 12,
            removing: None,
        };
        assert_eq!(
            start_line(&start),
            "plan: move 3072 slots in 12 calls (shards: 1=4096 2=4096 3=4096 4=0)"
        );
        start.removing = Some(4);
        assert!(start_line(&start).starts_with("plan: move 3072 slots of shard 4 in 12 calls"));
        let balanced = Start {
            shards: vec![(1, 2458), (2, 2458), (3, 2458), (4, 2457), (5, 2457)],
            slots: 0,
            calls: 0,
            removing: None,
        };
        assert_eq!(
            start_line(&balanced),
            "already balanced: 5 shards with 2457 to 2458 slots each"
        );
    }

    #[test]
    fn the_bar_redraws_on_err_and_the_summary_goes_to_out() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut printer = Printer::new(&mut out, &mut err, true);
        printer.step(&step());
        printer.step(&step());
        printer.retry("TRYAGAIN busy", Duration::from_millis(500));
        printer.finish(&Summary {
            totals: step().totals,
            elapsed: Duration::from_secs(1),
        });
        let (out, err) = (String::from_utf8(out), String::from_utf8(err));
        let (out, err) = (out.expect("UTF-8"), err.expect("UTF-8"));
        assert!(out.starts_with("done: slots=512 "), "{out}");
        assert_eq!(err.matches("\r\x1b[K[####").count(), 2, "{err:?}");
        assert!(
            err.ends_with("left\nretry: TRYAGAIN busy (again in 0.5 s)\n"),
            "{err:?}"
        );
    }

    #[test]
    fn without_a_terminal_each_call_is_one_line_on_out() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut printer = Printer::new(&mut out, &mut err, false);
        printer.step(&step());
        printer.removed(4);
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            format!("{}\nremoved: node 4\n", step_line(&step()))
        );
        assert!(err.is_empty());
    }

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(clock(Duration::from_secs(3)), "00:03");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(human_bytes(532), "532 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
