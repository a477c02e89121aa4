//! Per-stage cycle accounting on the request path, cheap enough to stay in
//! release builds and off by default.
//!
//! The engine has no clock of its own, so the caller lends it a cycle
//! source ([`crate::Stack::set_cycle_counter`]: `rdtsc` on DPDK, anything
//! monotonic in tests). Off (`None`), `Stack::poll` tests it once and
//! runs a pass compiled without accounting (stages outside the pass, such
//! as TCP input, cost one predictable branch each); nothing is counted.
//! On, each stage reads the source twice and adds the difference and one
//! call to its [`StageCount`].

/// A monotonic cycle (or tick) counter, e.g. the TSC.
pub type CycleSource = fn() -> u64;

/// Cycles spent in one stage and how many times it ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageCount {
    /// Times the stage ran.
    pub calls: u64,
    /// Cycles of the source spent in it, summed.
    pub cycles: u64,
    /// The most cycles one call took (the stage's share of a tail).
    pub max: u64,
}

impl StageCount {
    /// Mean cycles per call (0 when it never ran).
    pub fn per_call(&self) -> u64 {
        self.cycles.checked_div(self.calls).unwrap_or(0)
    }

    /// Charges one call of `cycles`.
    #[inline]
    pub fn add(&mut self, cycles: u64) {
        self.cycles = self.cycles.wrapping_add(cycles);
        self.calls += 1;
        self.max = self.max.max(cycles);
    }
}

/// The stages of one request's path through the engine, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// TX completions drained from the device (frame and page release).
    Completions,
    /// Ethernet/IPv4 parsing and checks, ARP, ICMP and UDP (a frame's
    /// ingress less its TCP lookup and input).
    Parse,
    /// The connection lookup by 4-tuple.
    Lookup,
    /// TCP input processing of one segment (acceptance, ACK, data, FIN).
    TcpInput,
    /// Readiness events collected by [`crate::Stack::poll_events`].
    Events,
    /// Segment building: each connection with output turns its send queue
    /// into segments ([`crate::tcp::TcpEngine`]'s dispatch).
    Output,
    /// Frame encapsulation and hand-off to the device (flush).
    Tx,
    /// Timers (TCP timer wheel, reassembly expiry, ARP).
    Timers,
}

impl Stage {
    /// Every stage, in path order.
    pub const ALL: [Stage; 8] = [
        Stage::Completions,
        Stage::Parse,
        Stage::Lookup,
        Stage::TcpInput,
        Stage::Events,
        Stage::Output,
        Stage::Tx,
        Stage::Timers,
    ];

    /// A short lowercase name (for reports such as `zcstat`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Completions => "completions",
            Stage::Parse => "parse",
            Stage::Lookup => "lookup",
            Stage::TcpInput => "tcp_input",
            Stage::Events => "events",
            Stage::Output => "output",
            Stage::Tx => "tx",
            Stage::Timers => "timers",
        }
    }
}

/// Cycles and calls per stage since the counter was set or last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageCycles {
    counts: [StageCount; Stage::ALL.len()],
}

impl StageCycles {
    /// The count of `stage`.
    pub fn get(&self, stage: Stage) -> StageCount {
        self.counts[stage as usize]
    }

    /// Every stage with its count, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (Stage, StageCount)> + '_ {
        Stage::ALL.iter().map(|&s| (s, self.get(s)))
    }

    /// Cycles of all stages together.
    pub fn total_cycles(&self) -> u64 {
        self.counts.iter().map(|c| c.cycles).sum()
    }
}

/// The accounting itself: the source lent by the caller and the counts.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StageClock {
    source: Option<CycleSource>,
    cycles: StageCycles,
}

impl StageClock {
    /// Sets (or with `None` removes) the cycle source; counts are kept.
    pub(crate) fn set_source(&mut self, source: Option<CycleSource>) {
        self.source = source;
    }

    /// The counts so far.
    pub(crate) fn cycles(&self) -> &StageCycles {
        &self.cycles
    }

    /// Zeroes the counts.
    pub(crate) fn reset(&mut self) {
        self.cycles = StageCycles::default();
    }

    /// Whether accounting is on (a source is set). A poll reads this once
    /// and passes it to [`StageClock::start_if`] / [`StageClock::stop_if`],
    /// so accounting that is off costs a test of a local per stage.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.source.is_some()
    }

    /// [`StageClock::start`] when `on` (a [`StageClock::on`] reading), else 0.
    #[inline]
    pub(crate) fn start_if(&self, on: bool) -> u64 {
        if on {
            self.start()
        } else {
            0
        }
    }

    /// [`StageClock::stop`] when `on` (a [`StageClock::on`] reading).
    #[inline]
    pub(crate) fn stop_if(&mut self, on: bool, stage: Stage, start: u64) {
        if on {
            self.stop(stage, start);
        }
    }

    /// [`StageClock::start_parse`] when `on`, else (0, 0).
    #[inline]
    pub(crate) fn start_parse_if(&self, on: bool) -> (u64, u64) {
        if on {
            self.start_parse()
        } else {
            (0, 0)
        }
    }

    /// [`StageClock::stop_parse`] when `on`.
    #[inline]
    pub(crate) fn stop_parse_if(&mut self, on: bool, start: u64, nested_before: u64) {
        if on {
            self.stop_parse(start, nested_before);
        }
    }

    /// The source's reading now (0 when off).
    #[inline]
    pub(crate) fn start(&self) -> u64 {
        match self.source {
            Some(f) => f(),
            None => 0,
        }
    }

    /// Charges the cycles since `start` (a [`StageClock::start`] reading)
    /// and one call to `stage`; nothing when off.
    #[inline]
    pub(crate) fn stop(&mut self, stage: Stage, start: u64) {
        if let Some(f) = self.source {
            self.cycles.counts[stage as usize].add(f().wrapping_sub(start));
        }
    }

    /// A reading for a frame's ingress: the source's reading and
    /// [`StageClock::nested`], both 0 when off.
    #[inline]
    pub(crate) fn start_parse(&self) -> (u64, u64) {
        match self.source {
            Some(f) => (f(), self.nested()),
            None => (0, 0),
        }
    }

    /// Cycles charged so far to the stages nested inside a frame's
    /// ingress (lookup and TCP input), to leave them out of `Parse`.
    #[inline]
    pub(crate) fn nested(&self) -> u64 {
        self.cycles.counts[Stage::Lookup as usize]
            .cycles
            .wrapping_add(self.cycles.counts[Stage::TcpInput as usize].cycles)
    }

    /// Charges a frame's ingress since `start` to `Parse`, less the cycles
    /// its nested stages took (`nested_before`: [`StageClock::nested`] at
    /// `start`).
    #[inline]
    pub(crate) fn stop_parse(&mut self, start: u64, nested_before: u64) {
        if let Some(f) = self.source {
            let inner = self.nested().wrapping_sub(nested_before);
            self.cycles.counts[Stage::Parse as usize].add(f().wrapping_sub(start).wrapping_sub(inner));
        }
    }
}
