//! Processes the benchmark starts or watches: consumers (real `consumer`
//! binaries), echo responders (this binary's hidden `echo` mode), and the
//! broker; CPU time and memory read from `/proc`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use anyhow::Context;

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    100.0
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The main broker's Erlang VM, if exactly one `beam.smp` runs.
pub(crate) fn broker_pid() -> Option<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "beam.smp")
        {
            found.push(pid);
        }
    }
    (found.len() == 1).then(|| found[0])
}

/// A binary next to this one (`consumer`).
pub(crate) fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --bins`",
        path.display()
    );
    Ok(path)
}

/// Child processes killed (SIGTERM, then reaped) when dropped.
#[derive(Debug, Default)]
pub(crate) struct Children {
    children: Vec<Child>,
}

impl Children {
    pub(crate) fn spawn(&mut self, command: &mut Command) -> anyhow::Result<()> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        self.children.push(child);
        Ok(())
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Total CPU seconds of all children so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.pids().into_iter().filter_map(cpu_seconds).sum()
    }

    /// Largest peak RSS among the children, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        self.largest_kib("VmHWM")
    }

    /// Largest `/proc/<pid>/status` `field` among the children, in KiB.
    pub(crate) fn largest_kib(&self, field: &str) -> u64 {
        self.pids()
            .into_iter()
            .filter_map(|pid| status_kib(pid, field))
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}
