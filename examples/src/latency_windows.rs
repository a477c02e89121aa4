//! Latency percentiles per window of time: how much of a run's tail is the
//! stack's own spread (p99/p50 within each window) and how much is the
//! machine's speed moving during the run (the windows' medians apart).
//!
//! A run's p99/p50 mixes both: on a shared VM whose speed changes by 2×
//! over seconds, a run whose first half is fast and second half slow has a
//! whole-run p99/p50 near 2 even if every request of each half took the
//! same time. The per-window figures separate the two.

use hdrhistogram::Histogram;

/// One closed window's figures, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStat {
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub samples: u64,
}

/// Records latencies into consecutive windows of a fixed length (TSC
/// ticks) and keeps each window's p50 and p99. Windows with fewer than
/// [`LatencyWindows::MIN_SAMPLES`] samples are not kept (a p99 needs a
/// hundred). Nothing is allocated after [`LatencyWindows::new`]: the
/// window histogram is reset in place and the list holds `max_windows`;
/// windows past it are counted in [`LatencyWindows::overflow`] only.
#[derive(Debug)]
pub struct LatencyWindows {
    len_ticks: u64,
    end: Option<u64>,
    cur: Histogram<u64>,
    done: Vec<WindowStat>,
    overflow: u64,
}

impl Default for LatencyWindows {
    /// Recording off.
    fn default() -> Self {
        LatencyWindows::new(0, 0)
    }
}

impl LatencyWindows {
    /// Fewest samples for a window to count.
    pub const MIN_SAMPLES: u64 = 100;

    /// Windows of `len_ticks` TSC ticks (0: recording off), room for
    /// `max_windows` of them. Samples are kept to 1 ns..1 s at two
    /// significant digits (1%), so closing a window walks ~3,000 counters
    /// (a few µs, once per window).
    pub fn new(len_ticks: u64, max_windows: usize) -> LatencyWindows {
        LatencyWindows {
            len_ticks,
            end: None,
            cur: Histogram::new_with_bounds(1, 1_000_000_000, 2).expect("valid histogram bounds"),
            done: Vec::with_capacity(if len_ticks == 0 { 0 } else { max_windows }),
            overflow: 0,
        }
    }

    /// Windows of `window_ms` ms (0: recording off) on a TSC of `tsc_hz`
    /// ticks per second, with room for every window of a run of
    /// `run_secs` seconds plus two of slack: what a load generator
    /// allocates up front so that recording never allocates.
    pub fn for_run(tsc_hz: u64, window_ms: u64, run_secs: u64) -> LatencyWindows {
        LatencyWindows::new(
            tsc_hz.saturating_mul(window_ms) / 1000,
            (run_secs.saturating_add(2).saturating_mul(1000) / window_ms.max(1)) as usize,
        )
    }

    /// Records a sample of `ns` nanoseconds taken at TSC `tsc` (which only
    /// moves forward): closes the current window first when `tsc` is past
    /// its end.
    #[inline]
    pub fn record(&mut self, tsc: u64, ns: u64) {
        if self.len_ticks == 0 {
            return;
        }
        match self.end {
            Some(end) if tsc < end => {}
            Some(_) => {
                self.close();
                self.end = Some(tsc + self.len_ticks);
            }
            None => self.end = Some(tsc + self.len_ticks),
        }
        self.cur.saturating_record(ns.max(1));
    }

    /// Closes the open window (at the end of a run).
    pub fn finish(&mut self) {
        self.close();
        self.end = None;
    }

    fn close(&mut self) {
        let samples = self.cur.len();
        if samples >= Self::MIN_SAMPLES {
            let w = WindowStat {
                p50_ns: self.cur.value_at_quantile(0.5),
                p99_ns: self.cur.value_at_quantile(0.99),
                samples,
            };
            if self.done.len() < self.done.capacity() {
                self.done.push(w);
            } else {
                self.overflow += 1;
            }
        }
        self.cur.reset();
    }

    /// The closed windows, oldest first.
    pub fn windows(&self) -> &[WindowStat] {
        &self.done
    }

    /// Windows closed after the list was full (not kept).
    pub fn overflow(&self) -> u64 {
        self.overflow
    }
}

/// What a set of windows says, µs and ratios; `None` without windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSummary {
    pub windows: usize,
    /// Median over windows of each window's own p99/p50.
    pub tail_median: f64,
    /// The largest window p99/p50.
    pub tail_max: f64,
    /// The windows' p50s: smallest, median, largest, µs.
    pub p50_us: (f64, f64, f64),
}

/// Summarizes `w` (windows of one or several recorders).
pub fn summarize(w: &[WindowStat]) -> Option<WindowSummary> {
    if w.is_empty() {
        return None;
    }
    let mut tails: Vec<f64> = w.iter().map(|s| s.p99_ns as f64 / s.p50_ns.max(1) as f64).collect();
    tails.sort_by(f64::total_cmp);
    let mut p50s: Vec<f64> = w.iter().map(|s| s.p50_ns as f64 / 1000.0).collect();
    p50s.sort_by(f64::total_cmp);
    Some(WindowSummary {
        windows: w.len(),
        tail_median: median(&tails),
        tail_max: tails[tails.len() - 1],
        p50_us: (p50s[0], median(&p50s), p50s[p50s.len() - 1]),
    })
}

/// The report fields of `--window-ms` windows, for the load generators'
/// JSON: `window_ms`, `windows`, `windows_overflow`, `window_tail_median`
/// and `window_tail_max` (each window's own p99/p50), and
/// `window_p50_{min,median,max}_us`; null where there were no windows.
pub fn report_fields(
    window_ms: u64,
    s: Option<WindowSummary>,
    overflow: u64,
) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(m) = serde_json::json!({
        "window_ms": window_ms, "windows": s.map(|w| w.windows), "windows_overflow": overflow,
        "window_tail_median": s.map(|w| w.tail_median), "window_tail_max": s.map(|w| w.tail_max),
        "window_p50_min_us": s.map(|w| w.p50_us.0), "window_p50_median_us": s.map(|w| w.p50_us.1),
        "window_p50_max_us": s.map(|w| w.p50_us.2),
    }) else {
        unreachable!("a json! object literal is an object")
    };
    m
}

/// Median of a sorted, non-empty slice (the mean of the middle two for an
/// even count).
pub fn median(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two windows at different speeds: each window's own tail is flat
    /// (p99/p50 1.0) while the two p50s are 2× apart — what a whole-run
    /// percentile would call a tail.
    #[test]
    fn windows_separate_speed_drift_from_spread() {
        let mut w = LatencyWindows::new(1000, 8);
        for i in 0..500u64 {
            w.record(i, 10_000);
        }
        for i in 0..500u64 {
            w.record(1000 + i, 20_000);
        }
        // A third window with too few samples is dropped.
        for i in 0..10u64 {
            w.record(2000 + i, 90_000);
        }
        w.finish();
        let ws = w.windows();
        assert_eq!(ws.len(), 2);
        assert_eq!(ws[0].samples, 500);
        let s = summarize(ws).unwrap();
        assert!((s.tail_median - 1.0).abs() < 0.02, "{s:?}");
        assert!((s.p50_us.0 - 10.0).abs() < 0.2 && (s.p50_us.2 - 20.0).abs() < 0.4, "{s:?}");
    }

    /// Inside one window the spread shows: 2% of samples at 5× the rest.
    #[test]
    fn window_tail_is_its_own_p99_over_p50() {
        let mut w = LatencyWindows::new(1_000_000, 4);
        for i in 0..1000u64 {
            w.record(i, if i % 50 == 0 { 50_000 } else { 10_000 });
        }
        w.finish();
        let s = summarize(w.windows()).unwrap();
        assert!((s.tail_max - 5.0).abs() < 0.1, "{s:?}");
    }

    /// A full list counts further windows instead of growing; length 0
    /// records nothing.
    #[test]
    fn full_list_counts_overflow_and_zero_length_is_off() {
        let mut w = LatencyWindows::new(10, 1);
        for i in 0..300u64 {
            w.record(i / 100 * 10, 1000);
        }
        w.finish();
        assert_eq!((w.windows().len(), w.overflow()), (1, 2));
        let mut off = LatencyWindows::new(0, 4);
        off.record(5, 1000);
        off.finish();
        assert!(off.windows().is_empty() && summarize(off.windows()).is_none());
    }
}
