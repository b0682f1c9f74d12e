//! What the operating system lets a host hold at once, against what its
//! settings ask for: open files (each running agent may hold a connection to
//! a provider or a granted host, each client one) and memory mappings (each
//! running instance holds several). A serving host raises its own limit on
//! open files as far as it may, and says at start which knob stops it
//! before its first refused connection or instance would.

/// Open files a host may want at once: a connection for each instance and
/// each client connection, and room for its stores, logs and listeners.
pub fn wanted_files(max_instances: u32, max_connections: usize) -> u64 {
    u64::from(max_instances) + max_connections as u64 + 256
}

/// Memory mappings one running instance holds at most (its memories and
/// tables with their guards, its stack): measured, 20,000 agents started at
/// once stopped at 6,293 under the default `vm.max_map_count` of 65,530.
const MAPS_PER_INSTANCE: u64 = 10;
/// Mappings the process holds besides its instances (code, heaps, threads).
const MAPS_OF_THE_PROCESS: u64 = 4_096;

/// Raises the soft limit on open files to the hard one (never lowers it);
/// the limit in force after, or why it could not be read.
#[cfg(unix)]
pub fn raise_open_files() -> Result<u64, String> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the limit into the struct it is given, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct; raising the soft limit up to the hard one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(not(unix))]
pub fn raise_open_files() -> Result<u64, String> {
    Err("not known on this system".into())
}

/// A warning when `open_files` is below what the settings may hold at once.
pub fn open_files_warning(open_files: u64, max_instances: u32, max_connections: usize) -> Option<String> {
    let wanted = wanted_files(max_instances, max_connections);
    (open_files < wanted).then(|| {
        format!(
            "this process may open {open_files} files (ulimit -n; LimitNOFILE= in a systemd unit), fewer than the \
             {wanted} that engine.max-instances = {max_instances} agents and serve.max-connections = \
             {max_connections} clients may hold at once: past it, connections fail with \"Too many open files\"; \
             raise the limit or lower those settings"
        )
    })
}

/// A warning when `max_map_count` (the kernel's `vm.max_map_count`) is below
/// what `max_instances` instances running at once may map.
pub fn map_count_warning(max_map_count: u64, max_instances: u32) -> Option<String> {
    let wanted = u64::from(max_instances) * MAPS_PER_INSTANCE + MAPS_OF_THE_PROCESS;
    (max_map_count < wanted).then(|| {
        let suggested = wanted.next_power_of_two();
        format!(
            "the kernel allows this process {max_map_count} memory mappings (vm.max_map_count), fewer than the about \
             {wanted} that engine.max-instances = {max_instances} instances running at once may hold: past it, \
             invocations fail to start; raise it (sysctl vm.max_map_count={suggested}) or lower \
             engine.max-instances"
        )
    })
}

/// The kernel's `vm.max_map_count`, where it says.
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_thousand_instances_fit_the_kernels_default_mappings_and_ten_thousand_do_not() {
        assert_eq!(map_count_warning(65_530, 1_000), None);
        let warned = map_count_warning(65_530, 10_000).expect("10,000 instances want more than 65,530 mappings");
        assert_eq!(
            warned,
            "the kernel allows this process 65530 memory mappings (vm.max_map_count), fewer than the about 104096 \
             that engine.max-instances = 10000 instances running at once may hold: past it, invocations fail to \
             start; raise it (sysctl vm.max_map_count=131072) or lower engine.max-instances"
        );
        assert_eq!(map_count_warning(262_144, 20_000), None, "the setting the waiting bench ran 20,000 with");
    }

    #[test]
    fn open_files_below_instances_and_connections_are_named_with_both_knobs() {
        assert_eq!(open_files_warning(1_048_576, 1_000, 512), None);
        let warned = open_files_warning(1_024, 1_000, 512).expect("1,024 files are fewer than 1,768");
        assert!(
            warned.starts_with("this process may open 1024 files (ulimit -n; LimitNOFILE= in a systemd unit), fewer than the 1768 that engine.max-instances = 1000 agents and serve.max-connections = 512 clients"),
            "{warned}"
        );
    }

    #[test]
    fn raising_open_files_never_lowers_the_limit() {
        let mut before = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct it is given.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) }, 0);
        let now = raise_open_files().expect("the limit can be read");
        assert!(
            now >= before.rlim_cur && now == before.rlim_max,
            "{now} against {} / {}",
            before.rlim_cur,
            before.rlim_max
        );
    }
}
