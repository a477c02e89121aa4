//! Hugepages for a test, reserved through `ci/hugepages` and given back on
//! drop (also when the test panics: the guard is dropped while unwinding).
//! A test process killed with SIGKILL leaves its tag behind: see
//! `ci/hugepages --status` and `--release --tag TAG`.

use std::path::PathBuf;
use std::process::Command;

/// 2 MiB hugepages reserved for this process; released when dropped.
#[derive(Debug)]
pub struct Hugepages {
    tag: String,
    /// The hugetlbfs mount point to hand the EAL (`--huge-dir`).
    pub dir: PathBuf,
    /// Pages reserved.
    pub pages: u32,
    /// EAL file prefixes whose hugepage map files in `dir` go on drop.
    prefixes: Vec<String>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ci/hugepages")
}

impl Hugepages {
    /// Reserves `pages` 2 MiB pages under a tag unique to this process and
    /// `name`. Errors carry the script's message (not root, memory short).
    pub fn reserve(name: &str, pages: u32) -> Result<Hugepages, String> {
        let tag = format!("{name}-{}", std::process::id());
        let out = Command::new(script())
            .args(["--pages", &pages.to_string(), "--tag", &tag])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        if !out.status.success() {
            return Err(format!("ci/hugepages failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if dir.is_empty() {
            return Err("ci/hugepages printed no mount point".to_owned());
        }
        Ok(Hugepages { tag, dir: PathBuf::from(dir), pages, prefixes: Vec::new() })
    }
}

impl Hugepages {
    /// Removes the hugepage map files (`<prefix>map_<n>`) of EAL file
    /// prefix `prefix` when the guard drops, before the pages are given
    /// back: a multi-process primary keeps them for its secondaries (no
    /// `--huge-unlink`), and would otherwise pin the pages after the
    /// reservation is released. Every hugetlbfs mount is looked at, not only
    /// [`Hugepages::dir`]: an EAL given no `--huge-dir` maps from the first
    /// mount it finds, which may be another reservation's.
    pub fn remove_files_on_drop(&mut self, prefix: &str) {
        self.prefixes.push(format!("{prefix}map_"));
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        if !self.prefixes.is_empty() {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            let dirs = mounts
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.get(2) == Some(&"hugetlbfs")).then(|| PathBuf::from(f[1]))
                })
                .chain([self.dir.clone()]);
            for e in dirs.filter_map(|d| std::fs::read_dir(d).ok()).flatten().flatten() {
                if self.prefixes.iter().any(|p| e.file_name().to_string_lossy().starts_with(p.as_str())) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        match Command::new(script()).args(["--release", "--tag", &self.tag]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("ci/hugepages --release --tag {}: {}", self.tag, String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("cannot run ci/hugepages --release --tag {}: {e}", self.tag),
        }
    }
}
