//! CUBIC congestion avoidance (RFC 9438): the window grows as a cubic function
//! of the time since the last congestion event, with a Reno-friendly floor.

use crate::time::{Duration, Instant};

/// RFC 9438 4.5: C = 0.4.
const C: f64 = 0.4;
/// RFC 9438 4.6: multiplicative decrease factor.
pub const BETA: f64 = 0.7;

/// Per-connection CUBIC state; windows in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cubic {
    w_max: f64,
    w_last_max: f64,
    k: f64,
    epoch: Option<Instant>,
    w_est: f64,
}

impl Cubic {
    /// A congestion event at window `cwnd`: returns the new ssthresh
    /// (RFC 9438 4.6, with fast convergence 4.7).
    pub fn on_congestion(&mut self, cwnd: u32, mss: u32) -> u32 {
        let cwnd = f64::from(cwnd);
        self.w_max = if cwnd < self.w_last_max { cwnd * (1.0 + BETA) / 2.0 } else { cwnd };
        self.w_last_max = cwnd;
        self.epoch = None;
        ((cwnd * BETA) as u32).max(2 * mss)
    }

    /// After an RTO the epoch restarts from slow start.
    pub fn on_timeout(&mut self) {
        self.epoch = None;
    }

    /// The window to grow towards after `acked` bytes were acknowledged in
    /// congestion avoidance at `now`, given the current window and smoothed RTT.
    pub fn on_ack(&mut self, now: Instant, cwnd: u32, mss: u32, acked: u32, srtt: Duration) -> u32 {
        let mssf = f64::from(mss);
        let cwnd_f = f64::from(cwnd);
        let epoch = *self.epoch.get_or_insert_with(|| {
            // A new epoch: K is when W_cubic returns to W_max (RFC 9438 4.2).
            if self.w_max < cwnd_f {
                self.w_max = cwnd_f;
            }
            self.k = (((self.w_max - cwnd_f) / mssf) / C).max(0.0).cbrt();
            self.w_est = cwnd_f;
            now
        });
        let t = now.saturating_duration_since(epoch).total_micros() as f64 / 1e6 + srtt.total_micros() as f64 / 1e6;
        let w_cubic = (C * (t - self.k).powi(3) * mssf + self.w_max).max(mssf);
        // Reno-friendly estimate (RFC 9438 4.3): alpha = 3(1-beta)/(1+beta).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * f64::from(acked) / cwnd_f * mssf;
        let target = w_cubic.max(self.w_est);
        if target > cwnd_f {
            // Grow by (target - cwnd) / cwnd per segment acked (RFC 9438 4.4).
            let inc = ((target - cwnd_f) / cwnd_f * f64::from(acked)).min(f64::from(acked));
            cwnd.saturating_add(inc.max(1.0) as u32)
        } else {
            cwnd
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_concave_then_convex_around_w_max() {
        let mss = 1000;
        let mut c = Cubic::default();
        let ssthresh = c.on_congestion(1_000_000, mss);
        assert_eq!(ssthresh, 700_000);
        let mut cwnd = ssthresh;
        let rtt = Duration::from_millis(100);
        let mut t = Instant::ZERO;
        let mut growth = Vec::new();
        // One window of ACKs per RTT for 20 simulated seconds.
        for _ in 0..200 {
            t += rtt;
            let before = cwnd;
            let mut acked = 0;
            while acked < before {
                cwnd = c.on_ack(t, cwnd, mss, mss, rtt);
                acked += mss;
            }
            growth.push(cwnd - before);
        }
        // K = cbrt(300 segments / 0.4) ~ 9.1 s: fast growth towards W_max,
        // a plateau around it, then accelerating (convex) probing beyond.
        let (early, plateau, late) = (growth[5], growth[90], growth[180]);
        assert!(early > 4 * plateau, "concave approach: {early} vs {plateau}");
        assert!(late > 4 * plateau, "convex probing: {late} vs {plateau}");
        assert!(cwnd > 1_000_000, "probes beyond W_max: {cwnd}");
        // Fast convergence: a second loss below the last maximum lowers W_max.
        let ss2 = c.on_congestion(800_000, mss);
        assert_eq!(ss2, 560_000);
        assert!(c.w_max < 800_000.0, "fast convergence lowers W_max: {}", c.w_max);
    }
}
