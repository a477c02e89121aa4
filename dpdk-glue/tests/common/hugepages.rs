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
        Ok(Hugepages { tag, dir: PathBuf::from(dir), pages })
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        match Command::new(script()).args(["--release", "--tag", &self.tag]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("ci/hugepages --release --tag {}: {}", self.tag, String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("cannot run ci/hugepages --release --tag {}: {e}", self.tag),
        }
    }
}
