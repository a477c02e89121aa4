//! What the machine has, for checking a configuration against it: the CPUs
//! this process may run on and the memory installed.

/// The machine a configuration is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// CPUs that exist and this process's cgroup allows, ascending: the
    /// cgroup's `cpuset.cpus.effective` when there is one, else the CPUs
    /// online in `/sys/devices/system/cpu/online`, else the affinity mask.
    /// Not the affinity mask first: a process started under `taskset` may
    /// still place its lcores on any CPU of its cpuset, as the EAL does.
    pub cpus: Vec<u32>,
    /// Installed memory, MiB (`MemTotal` of `/proc/meminfo`), if known.
    pub mem_mib: Option<u64>,
}

impl Host {
    /// This machine, as this process sees it now.
    pub fn current() -> Host {
        let cpus = cgroup_cpuset().or_else(online).or_else(affinity).unwrap_or_default();
        Host { cpus, mem_mib: mem_total_mib() }
    }

    /// A machine with CPUs `0..cpus` and `mem_mib` MiB (for tests and tools).
    pub fn with(cpus: u32, mem_mib: u64) -> Host {
        Host { cpus: (0..cpus).collect(), mem_mib: Some(mem_mib) }
    }

    /// Whether `cpu` is usable. An unknown CPU set (empty: neither the
    /// affinity nor sysfs could be read) accepts every CPU.
    pub fn has_cpu(&self, cpu: u32) -> bool {
        self.cpus.is_empty() || self.cpus.binary_search(&cpu).is_ok()
    }

    /// The CPU set as a list with ranges, e.g. `0-3,6`.
    pub fn cpu_list(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.cpus.len() {
            let start = self.cpus[i];
            let mut end = start;
            while i + 1 < self.cpus.len() && self.cpus[i + 1] == end + 1 {
                i += 1;
                end += 1;
            }
            out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
            i += 1;
        }
        out.join(",")
    }
}

/// CPUs in this process's affinity mask (`sched_getaffinity`).
fn affinity() -> Option<Vec<u32>> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size and pointer describe `set`,
    // which lives across the call.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads bit `c` of `set` for c below the set's bit size.
    let cpus: Vec<u32> = (0..max).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).map(|c| c as u32).collect();
    (!cpus.is_empty()).then_some(cpus)
}

/// CPUs listed in `/sys/devices/system/cpu/online` (`0-3,6` form).
fn online() -> Option<Vec<u32>> {
    parse_cpu_list(std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?.trim())
}

/// CPUs the process's cgroup v2 cpuset allows (`cpuset.cpus.effective`),
/// when the cgroup has the cpuset controller.
fn cgroup_cpuset() -> Option<Vec<u32>> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let file = format!("/sys/fs/cgroup{}/cpuset.cpus.effective", path.trim_end_matches('/'));
    parse_cpu_list(std::fs::read_to_string(file).ok()?.trim()).filter(|c| !c.is_empty())
}

/// Parses a kernel CPU list such as `0-3,6`.
pub(crate) fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        if a > b || b - a > 1 << 16 {
            return None;
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn mem_total_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_and_print_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-3,6"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(Host { cpus: vec![0, 1, 2, 3, 6, 8, 9], mem_mib: None }.cpu_list(), "0-3,6,8-9");
        let here = Host::current();
        assert!(!here.cpus.is_empty(), "this process runs on some CPU");
        assert!(here.has_cpu(here.cpus[0]) && !here.has_cpu(u32::MAX));
    }
}
