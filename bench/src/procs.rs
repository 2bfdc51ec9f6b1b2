//! Processes the benchmark starts or watches: consumers (real `consumer`
//! binaries), echo responders (this binary's hidden `echo` mode), and the
//! broker; their CPU time and memory read through the `procfs` crate.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use anyhow::Context;
use procfs::process::Process;
use rustix::process::{Pid, Signal, kill_process};

/// The process `pid`, if it still runs (and the id fits the kernel's type).
fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = process(pid)?.stat().ok()?;
    // The kernel counts in clock ticks; sysconf(_SC_CLK_TCK) says how many make a second.
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// Resident memory of a process, in KiB, as `/proc/<pid>/status` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Memory {
    /// Resident set size now (`VmRSS`).
    pub(crate) rss_kib: u64,
    /// Largest resident set size so far (`VmHWM`).
    pub(crate) peak_rss_kib: u64,
}

/// Resident memory of `pid` now and at its peak; `None` once it has exited.
pub(crate) fn memory(pid: u32) -> Option<Memory> {
    let status = process(pid)?.status().ok()?;
    Some(Memory {
        rss_kib: status.vmrss?,
        peak_rss_kib: status.vmhwm?,
    })
}

/// Pids of the processes whose command name (`comm`) is `comm`.
fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        // A process may exit between the listing and the read: skip it.
        .filter(|p| p.stat().is_ok_and(|s| s.comm == comm))
        .filter_map(|p| u32::try_from(p.pid()).ok())
        .collect()
}

/// The main broker's Erlang VM, if exactly one `beam.smp` runs.
pub(crate) fn broker_pid() -> Option<u32> {
    if let Some(pid) = std::env::var("GREETINGS_BENCH_BROKER_PID")
        .ok()
        .and_then(|pid| pid.parse().ok())
    {
        return Some(pid);
    }
    match pids_named("beam.smp")[..] {
        [pid] => Some(pid),
        _ => None,
    }
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

/// Child processes stopped (SIGTERM, then reaped) when dropped.
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
        self.largest(|m| m.peak_rss_kib)
    }

    /// Largest current RSS among the children, in KiB.
    pub(crate) fn largest_rss_kib(&self) -> u64 {
        self.largest(|m| m.rss_kib)
    }

    /// Largest `field` of [`Memory`] among the children (0 if none can be read).
    fn largest(&self, field: fn(Memory) -> u64) -> u64 {
        self.pids()
            .into_iter()
            .filter_map(memory)
            .map(field)
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        // SIGTERM rather than `Child::kill` (SIGKILL): consumers shut down
        // cleanly, cancelling their consumers and closing their connections.
        for child in &self.children {
            // Fails only if the child has already exited: then there is nothing to stop.
            let _ = kill_process(Pid::from_child(child), Signal::TERM);
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work_and_stays_below_wall_time() {
        let me = std::process::id();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let before = cpu_seconds(me).expect("our own stat is readable");
        let started = Instant::now();
        // Spin until the kernel has charged us at least 50 ms, bounded by a deadline.
        let mut spent = 0.0;
        let mut x = 0u64;
        while spent < 0.05 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "spent {spent} s of CPU in 30 s"
            );
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            spent = cpu_seconds(me).expect("our own stat is readable") - before;
        }
        // With the wrong ticks per second the figure would be off by a factor.
        let wall = started.elapsed().as_secs_f64();
        assert!(
            spent <= wall * cores + 0.02,
            "{spent} s of CPU in {wall} s of wall time on {cores} cores"
        );
    }

    #[test]
    fn own_memory_grows_by_what_we_touch() {
        let me = std::process::id();
        let before = memory(me).expect("our own status is readable");
        // Written, so every page is resident, not just reserved.
        let block = vec![1u8; 64 << 20];
        let after = memory(me).expect("our own status is readable");
        std::hint::black_box(&block);
        let grown_mib = after.rss_kib.saturating_sub(before.rss_kib) / 1024;
        assert!(
            (48..=256).contains(&grown_mib),
            "RSS {} -> {} KiB after touching 64 MiB",
            before.rss_kib,
            after.rss_kib
        );
        assert!(after.peak_rss_kib >= after.rss_kib, "{after:?}");
    }

    #[test]
    fn a_gone_process_has_no_figures() {
        let mut child = Command::new("true").spawn().expect("`true` runs");
        let pid = child.id();
        child.wait().expect("`true` is reaped");
        assert_eq!(cpu_seconds(pid), None);
        assert_eq!(memory(pid), None);
    }

    #[test]
    fn processes_are_found_by_command_name() {
        let me = Process::myself().expect("our own /proc entry");
        let comm = me.stat().expect("our own stat").comm;
        assert!(pids_named(&comm).contains(&std::process::id()), "{comm}");
        assert!(pids_named("no-such-command-here").is_empty());
    }

    #[test]
    fn dropping_children_stops_them_with_sigterm() {
        let mut children = Children::default();
        children
            .spawn(Command::new("sleep").arg("20"))
            .expect("`sleep` runs");
        let pid = children.pids()[0];
        assert!(memory(pid).is_some(), "sleep {pid} is not running");
        let started = Instant::now();
        drop(children);
        // Without the signal, the drop would wait out the whole `sleep 20`.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(memory(pid), None, "sleep {pid} still runs");
    }
}
