//! The CPU time a process has used.

/// CPU time process `pid` has used, from `/proc/PID/stat` (user and system
/// time, fields 14 and 15, in ticks of `USER_HZ`, 100 on Linux).
pub fn seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in field 2 may hold spaces; count from the `)` ending it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
