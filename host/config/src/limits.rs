//! `[limits]` and `[ceiling]`: per-invocation limits, the operator's maximum
//! for each, and the byte caps at the sandbox boundary.

use crate::file::{CeilingSection, LimitsSection};
use crate::retention::FlowLimits;
use paddock_core::{ByteSize, Limits, SizeCaps, show};
use std::time::Duration;

/// The ceiling, the defaults under it, and the byte caps.
pub(crate) fn limits(file: &LimitsSection, ceiling: &CeilingSection) -> Result<(Limits, Limits, SizeCaps), String> {
    let ceiling = Limits {
        fuel: ceiling.fuel.unwrap_or(1_000_000_000_000),
        memory: ceiling.memory.map_or(1 << 30, |b| b.0),
        timeout: ceiling.timeout.map_or(Duration::from_secs(600), |s| s.0),
    };
    // Checked first: a zero ceiling would be reported as the default under it.
    for (key, max) in
        [("fuel", ceiling.fuel), ("memory", ceiling.memory), ("timeout", ceiling.timeout.as_millis() as u64)]
    {
        if max == 0 {
            return Err(format!("ceiling.{key} must be greater than zero"));
        }
    }
    let limits = Limits {
        fuel: file.fuel.unwrap_or(10_000_000_000.min(ceiling.fuel)),
        memory: file.memory.map_or((128 << 20).min(ceiling.memory), |b| b.0),
        timeout: file.timeout.map_or(Duration::from_secs(30).min(ceiling.timeout), |s| s.0),
    };
    for (key, value, max) in [
        ("fuel", limits.fuel, ceiling.fuel),
        ("memory", limits.memory, ceiling.memory),
        ("timeout", limits.timeout.as_millis() as u64, ceiling.timeout.as_millis() as u64),
    ] {
        if value == 0 {
            return Err(format!("limits.{key} must be greater than zero"));
        }
        if value > max {
            return Err(format!(
                "limits.{key} ({}) is above ceiling.{key} ({}); raise the ceiling or lower the default",
                show(key, value),
                show(key, max)
            ));
        }
    }
    // The pooling allocator reserves address space for the largest memory
    // up front, so the memory ceiling must fit a wasm32 address space.
    if ceiling.memory > 4 << 30 {
        return Err(format!(
            "ceiling.memory ({}) is above 4 GiB, the most a 32-bit wasm memory can hold",
            ByteSize(ceiling.memory)
        ));
    }
    Ok((limits, ceiling, size_caps(file)?))
}

fn size_caps(l: &LimitsSection) -> Result<SizeCaps, String> {
    let caps = SizeCaps {
        arg_bytes: l.max_arg_bytes.map_or(1 << 20, |b| b.0),
        log_bytes: l.max_log_bytes.map_or(64 << 10, |b| b.0),
        log_total_bytes: l.max_log_total_bytes.map_or(1 << 20, |b| b.0),
        key_bytes: l.max_key_bytes.map_or(512, |b| b.0),
        value_bytes: l.max_value_bytes.map_or(1 << 20, |b| b.0),
        output_bytes: l.max_output_bytes.map_or(64 << 10, |b| b.0),
        io_bytes: l.max_io_bytes.map_or(4 << 20, |b| b.0),
        log_rate: l.log_bytes_per_second.map_or(256 << 10, |b| b.0),
        http_request_bytes: l.max_http_request_bytes.map_or(1 << 20, |b| b.0),
        http_response_bytes: l.max_http_response_bytes.map_or(4 << 20, |b| b.0),
        http_timeout: l.http_timeout.map_or(std::time::Duration::from_secs(30), |t| t.0),
    };
    if caps.http_timeout.is_zero() {
        return Err("limits.http-timeout must be greater than zero".into());
    }
    for (key, value) in [
        ("max-arg-bytes", caps.arg_bytes),
        ("max-log-bytes", caps.log_bytes),
        ("max-key-bytes", caps.key_bytes),
        ("max-value-bytes", caps.value_bytes),
        ("max-io-bytes", caps.io_bytes),
        ("max-http-request-bytes", caps.http_request_bytes),
        ("max-http-response-bytes", caps.http_response_bytes),
    ] {
        if value == 0 {
            return Err(format!("limits.{key} must be greater than zero"));
        }
    }
    Ok(caps)
}

/// Validates the flow store's limits in `[limits]`.
pub(crate) fn flow_limits(l: &LimitsSection) -> Result<FlowLimits, String> {
    let d = FlowLimits::default();
    let f = FlowLimits {
        run_bytes: l.max_run_bytes.map_or(d.run_bytes, |b| b.0),
        tenant_bytes: l.max_flow_bytes.map_or(d.tenant_bytes, |b| b.0),
        question_bytes: l.max_question_bytes.map_or(d.question_bytes, |b| b.0),
    };
    for (key, value) in
        [("max-run-bytes", f.run_bytes), ("max-flow-bytes", f.tenant_bytes), ("max-question-bytes", f.question_bytes)]
    {
        if value == 0 {
            return Err(format!("limits.{key} must be greater than zero"));
        }
    }
    if f.run_bytes > f.tenant_bytes {
        return Err(format!(
            "limits.max-run-bytes ({}) is above limits.max-flow-bytes ({}): a tenant could not keep one such run",
            paddock_core::ByteSize(f.run_bytes),
            paddock_core::ByteSize(f.tenant_bytes)
        ));
    }
    Ok(f)
}
