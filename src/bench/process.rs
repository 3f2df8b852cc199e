//! The few OS facts the bench reads (RSS, file limit, temp directory).
//! The child processes it starts are `testkit::Proc`s (killed when
//! dropped, so nothing outlives the bench, even on an error path).

pub use crate::testkit::Proc;
use std::path::{Path, PathBuf};

/// Resident memory of `pid` in bytes (VmRSS in /proc/PID/status).
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| format!("no VmRSS in {path}"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unreadable VmRSS line '{line}'"))?;
    Ok(kib * 1024)
}

/// Raise this process's open-file limit to at least `want` (children
/// inherit it). Returns the limit now in force.
pub fn raise_nofile(want: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        ));
    }
    if limit.rlim_cur >= want {
        return Ok(limit.rlim_cur);
    }
    // Raising the hard limit needs privileges; fall back to the hard limit.
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: limit.rlim_max.max(want),
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(want);
    }
    let capped = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
        return Ok(limit.rlim_max);
    }
    Err(format!(
        "setrlimit(RLIMIT_NOFILE, {want}): {}",
        std::io::Error::last_os_error()
    ))
}

/// A private temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "peerloop-bench-{label}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
