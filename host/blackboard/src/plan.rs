//! The rules of a write that every backend applies the same way: a
//! compare-and-swap conflict, a delete of an absent key, and the tenant's key
//! and byte quotas.

use crate::{BoardError, BoardLimits, Write};

/// What a tenant holds after a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys plus values.
    pub bytes: u64,
}

impl Totals {
    /// `total` moved by what a write took from `before` to `self`.
    pub fn moved(self, before: Totals, total: Totals) -> Totals {
        Totals {
            keys: (total.keys + self.keys).saturating_sub(before.keys),
            bytes: (total.bytes + self.bytes).saturating_sub(before.bytes),
        }
    }
}

/// Decides a write against the key's current `(revision, value length)` and
/// the tenant's totals: the conflict, quota and delete-of-absent rules every
/// backend applies. Returns the totals after the write.
pub fn plan_write(
    tenant: &str,
    limits: &BoardLimits,
    current: Option<(u64, usize)>,
    totals: Totals,
    write: &Write<'_>,
) -> Result<Totals, BoardError> {
    plan(Holder::Tenant, tenant, limits, current, totals, write)
}

/// [`plan_write`] against the totals of every tenant together, for a tenant
/// whose limits are [`BoardLimits::shared`]: the quota all unnamed tenants
/// share. Returns those totals after the write.
pub fn plan_shared(
    tenant: &str,
    limits: &BoardLimits,
    current: Option<(u64, usize)>,
    all: Totals,
    write: &Write<'_>,
) -> Result<Totals, BoardError> {
    plan(Holder::Shared, tenant, limits, current, all, write)
}

/// Whose totals a write is decided against: the tenant's, or those of every
/// tenant sharing its quota. Named only in a refusal, so a write that passes
/// formats nothing.
#[derive(Clone, Copy)]
enum Holder {
    Tenant,
    Shared,
}

impl Holder {
    /// Who holds, with the verb that agrees with it ("holds" or "hold").
    fn named(self, tenant: &str) -> (String, &'static str) {
        match self {
            Holder::Tenant => (format!("tenant {tenant:?}"), "holds"),
            Holder::Shared => {
                (format!("tenant {tenant:?} and every other tenant not named in [tenants] together"), "hold")
            }
        }
    }
}

fn plan(
    holder: Holder,
    tenant: &str,
    limits: &BoardLimits,
    current: Option<(u64, usize)>,
    totals: Totals,
    write: &Write<'_>,
) -> Result<Totals, BoardError> {
    let current_rev = current.map_or(0, |c| c.0);
    if let Some(expected) = write.expected
        && expected != current_rev
    {
        return Err(BoardError::Conflict { current: current_rev });
    }
    if write.value.is_none() && current.is_none() {
        return Err(BoardError::Conflict { current: 0 });
    }
    let key = write.key.len() as u64;
    let old_bytes = current.map_or(0, |c| key + c.1 as u64);
    let new_bytes = write.value.map_or(0, |v| key + v.len() as u64);
    let keys = match (current.is_some(), write.value.is_some()) {
        (false, true) => totals.keys + 1,
        (true, false) => totals.keys.saturating_sub(1),
        _ => totals.keys,
    };
    let key = |name: &str| {
        if limits.per_tenant { format!("tenants.{tenant}.blackboard.{name}") } else { format!("blackboard.{name}") }
    };
    if keys > limits.max_keys && keys > totals.keys {
        let (who, holds) = holder.named(tenant);
        return Err(BoardError::QuotaExceeded(format!(
            "{who} {holds} {} keys, the limit ({})",
            limits.max_keys,
            key("max-keys")
        )));
    }
    let bytes = totals.bytes.saturating_sub(old_bytes) + new_bytes;
    if bytes > limits.max_bytes && new_bytes > old_bytes {
        let (who, _) = holder.named(tenant);
        return Err(BoardError::QuotaExceeded(format!(
            "{who} would hold {bytes} bytes, over the limit of {} ({})",
            limits.max_bytes,
            key("max-bytes")
        )));
    }
    Ok(Totals { keys, bytes })
}
