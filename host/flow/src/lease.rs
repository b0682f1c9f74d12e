//! Who holds a run: each host process has an id of its own, and holds a run
//! by a lease it renews every [`RENEW`]; a lease not renewed for [`LEASE`]
//! has expired and one host may claim the run (a compare-and-swap on the
//! holder and the last renewal, in the store). Only the holder may renew it
//! or write the run's steps, journals and end, so a host that lost its lease
//! (paused past it, cut off from the store) can no longer touch the run, and
//! stops it.
//!
//! A process id alone cannot be an owner: two containers sharing a data
//! volume both run as pid 1, and neither sees the other's pids. The id is
//! `PID@MACHINE#NONCE`: the pid for people, the machine (boot id and pid
//! namespace) so that a holder in this very pid namespace whose process is
//! gone is known to be gone at once — a restarted host resumes its runs
//! without waiting out the lease — and a random nonce so that no two
//! processes, here or elsewhere, ever share an id.

use std::sync::LazyLock;
use std::time::Duration;

/// How often the holder renews its lease.
pub const RENEW: Duration = Duration::from_secs(2);
/// How long a lease lasts unrenewed.
pub const LEASE: Duration = Duration::from_secs(15);

/// This process's holder id.
pub fn this_process() -> &'static str {
    static ID: LazyLock<String> =
        LazyLock::new(|| format!("{}@{}#{:016x}", std::process::id(), machine(), fastrand::u64(..)));
    &ID
}

/// The boot and the pid namespace this process runs in: two processes
/// share it exactly when one can see whether the other's pid is alive.
fn machine() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let boot: String = boot.trim().chars().filter(char::is_ascii_hexdigit).take(12).collect();
    // `pid:[4026531836]`: the namespace's inode.
    let namespace = std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default();
    let namespace: String = namespace.chars().filter(char::is_ascii_digit).collect();
    if boot.is_empty() || namespace.is_empty() { "unknown".into() } else { format!("{boot}.{namespace}") }
}

/// Whether the lease renewed at `renewed_ms` has expired at `now_ms`.
pub fn expired(renewed_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(renewed_ms) >= LEASE.as_millis() as u64
}

/// Whether `holder` is known to be gone: a process of this machine and pid
/// namespace that no longer runs. Any other holder (another machine or
/// container, or an id from before holders had one) is judged by its lease.
pub fn gone(holder: &str) -> bool {
    static HERE: LazyLock<String> = LazyLock::new(machine);
    let Some((pid, rest)) = holder.split_once('@') else { return false };
    let Some((machine, _)) = rest.split_once('#') else { return false };
    if machine != *HERE || machine == "unknown" || holder == this_process() {
        return false;
    }
    pid.parse::<u32>().is_ok_and(|pid| !process_alive(pid))
}

/// Whether process `pid` exists and is not a zombie (Linux).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `123 (paddock) S ...`.
        Ok(s) => s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Why run `run`, marked running and held by `holder` whose lease was last
/// renewed at `renewed_ms`, runs nowhere at `now_ms`, when that can be told:
/// its holder is [`gone`], or its lease has [`expired`].
pub fn interrupted(run: &str, holder: &str, renewed_ms: u64, now_ms: u64) -> Option<String> {
    let resume = format!("a serving host resumes it, or `paddock flow resume {run}`");
    if gone(holder) {
        return Some(format!("its host {holder} is gone; {resume}"));
    }
    expired(renewed_ms, now_ms).then(|| {
        let seconds = now_ms.saturating_sub(renewed_ms) / 1000;
        format!("its host {holder} has not renewed its lease for {seconds} s; {resume}")
    })
}

/// The refusal of a write by `holder` to run `run`, which `now` holds.
pub fn lost(run: &str, holder: &str, now: &str) -> String {
    format!("flow store: run {run} is held by {now}, not {holder}: this host lost its lease and stops the run")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_id_names_the_pid_and_is_never_shared() {
        let id = this_process();
        assert!(id.starts_with(&format!("{}@", std::process::id())), "{id}");
        assert_eq!(this_process(), id, "one id per process");
        assert!(!gone(id), "this process is not gone");
    }

    #[test]
    fn a_holder_of_this_namespace_whose_process_ended_is_gone_and_any_other_is_judged_by_its_lease() {
        let here = this_process().split_once('@').unwrap().1.split_once('#').unwrap().0;
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(gone(&format!("{pid}@{here}#00")), "an ended process of this namespace");
        let parent = std::os::unix::process::parent_id();
        assert!(!gone(&format!("{parent}@{here}#00")), "a live process");
        assert!(!gone(&format!("{pid}@0123456789ab.4026531836#00")), "another machine or namespace");
        assert!(!gone("4821"), "an id from before holders had one");
        assert!(expired(1_000, 1_000 + LEASE.as_millis() as u64) && !expired(1_000, 1_000 + 14_999));
    }

    #[test]
    fn a_run_is_told_interrupted_when_its_holder_is_gone_or_its_lease_lapsed() {
        let here = this_process().split_once('@').unwrap().1.split_once('#').unwrap().0;
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = format!("{pid}@{here}#00");
        let why = interrupted("r1", &gone, 1_000, 2_000).unwrap();
        assert_eq!(why, format!("its host {gone} is gone; a serving host resumes it, or `paddock flow resume r1`"));
        let elsewhere = "7@0123456789ab.4026531836#00";
        assert_eq!(interrupted("r1", elsewhere, 1_000, 2_000), None, "a live lease of another machine");
        let lapsed = interrupted("r1", elsewhere, 1_000, 21_000).unwrap();
        assert!(lapsed.starts_with(&format!("its host {elsewhere} has not renewed its lease for 20 s; ")), "{lapsed}");
        assert_eq!(interrupted("r1", this_process(), now(), now()), None, "this process holds it");
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    }
}
