//! What a new version of an agent asks for that its predecessor did not.
//!
//! A hot reload must never quietly widen what an agent may do: a version
//! whose manifest asks for more is held until the operator approves it, or
//! until every tenant that may run it already grants the new capabilities by
//! its own explicit policy.

use paddock_core::{BoardRequest, Capabilities};
use paddock_tenants::{TenantPolicy, Tenants};

/// The capabilities a new version asks for beyond an old one.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Widening {
    /// Routes not asked for before.
    pub routes: Vec<String>,
    /// Callees not asked for before.
    pub agents: Vec<String>,
    /// Asking people questions, when the old version did not.
    pub approvals: bool,
    /// Directories not asked for before.
    pub dirs: Vec<String>,
    /// Blackboard prefixes read that no old prefix covers.
    pub read: Vec<String>,
    /// Blackboard prefixes written that no old write prefix covers.
    pub write: Vec<String>,
    /// Tool patterns that no old pattern covers.
    pub tools: Vec<String>,
    /// Host patterns that no old pattern covers.
    pub http: Vec<String>,
}

impl Widening {
    /// What `new` asks for beyond `old`.
    pub fn between(old: &Capabilities, new: &Capabilities) -> Widening {
        let added = |old: &[String], new: &[String]| -> Vec<String> {
            new.iter().filter(|n| !old.contains(n)).cloned().collect()
        };
        let (old_board, new_board) = (old.board(), new.board());
        // Writing implies reading, on both sides.
        let readable = |b: &BoardRequest| -> Vec<String> { b.read.iter().chain(&b.write).cloned().collect() };
        let old_read = readable(&old_board);
        Widening {
            routes: added(&old.routes, &new.routes),
            agents: added(&old.agents, &new.agents),
            approvals: new.approvals && !old.approvals,
            dirs: added(&old.dirs, &new.dirs),
            read: uncovered(&readable(&new_board), &old_read),
            write: uncovered(&new_board.write, &old_board.write),
            tools: not_covered(&new.tools, &old.tools, paddock_core::tools::covers),
            http: not_covered(&new.http, &old.http, paddock_core::hosts::covers),
        }
    }

    /// Whether it asks for nothing new.
    pub fn is_empty(&self) -> bool {
        *self == Widening::default()
    }

    /// Each new capability, as `paddock plugins list` shows it.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.routes.iter().map(|r| format!("route {r:?}")));
        out.extend(self.agents.iter().map(|a| format!("calling agent {a:?}")));
        if self.approvals {
            out.push("approvals".into());
        }
        out.extend(self.dirs.iter().map(|d| format!("dir {d:?}")));
        out.extend(self.read.iter().map(|p| format!("blackboard read {p:?}")));
        out.extend(self.write.iter().map(|p| format!("blackboard write {p:?}")));
        out.extend(self.tools.iter().map(|t| format!("tool {t:?}")));
        out.extend(self.http.iter().map(|h| format!("host {h:?}")));
        out
    }

    /// Whether `policy` grants every new capability outright.
    pub fn granted_by(&self, policy: &TenantPolicy) -> bool {
        let readable: Vec<String> = policy.read.iter().chain(&policy.write).cloned().collect();
        self.routes.iter().all(|r| policy.routes.allows(r))
            && self.agents.iter().all(|a| policy.agents.allows(a))
            && (!self.approvals || policy.approvals)
            && self.dirs.iter().all(|d| policy.dirs.iter().any(|g| &g.guest == d))
            && uncovered(&self.read, &readable).is_empty()
            && uncovered(&self.write, &policy.write).is_empty()
            && self.tools.iter().all(|t| grants(&policy.tools, t, paddock_core::tools::covers))
            && self.http.iter().all(|h| grants(&policy.http, h, paddock_core::hosts::covers))
    }

    /// Whether the operator granted it in advance: tenants are configured,
    /// and each one that may run `agent` grants every new capability. With
    /// no tenants configured nothing is granted explicitly, so nothing is
    /// granted in advance.
    pub fn granted_in_advance(&self, tenants: &Tenants, agent: &str) -> bool {
        tenants.configured()
            && tenants.iter().filter(|p| p.check_agent(agent).is_ok()).all(|policy| self.granted_by(policy))
    }
}

/// The patterns of `new` that no pattern of `old` covers, by `covers`.
fn not_covered(new: &[String], old: &[String], covers: fn(&str, &str) -> bool) -> Vec<String> {
    new.iter().filter(|n| !old.iter().any(|o| covers(o, n))).cloned().collect()
}

/// Whether `grant` grants every name `pattern` does, by `covers`.
fn grants(grant: &paddock_tenants::NameGrant, pattern: &str, covers: fn(&str, &str) -> bool) -> bool {
    match grant {
        paddock_tenants::NameGrant::Any => true,
        paddock_tenants::NameGrant::Only(granted) => granted.iter().any(|g| covers(g, pattern)),
    }
}

/// The prefixes of `asked` that no prefix of `held` covers.
fn uncovered(asked: &[String], held: &[String]) -> Vec<String> {
    let mut out: Vec<String> =
        asked.iter().filter(|a| !held.iter().any(|h| a.starts_with(h.as_str()))).cloned().collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(toml: &str) -> Capabilities {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_new_route_callee_dir_and_approvals_are_each_a_widening() {
        let old = caps("routes = [\"fast\"]\nagents = [\"a\"]\n");
        let new =
            caps("routes = [\"fast\", \"smart\"]\nagents = [\"a\", \"b\"]\ndirs = [\"/data\"]\napprovals = true\n");
        let w = Widening::between(&old, &new);
        assert_eq!(
            w.describe(),
            ["route \"smart\"", "calling agent \"b\"", "approvals", "dir \"/data\""].map(String::from).to_vec()
        );
        assert!(Widening::between(&new, &old).is_empty());
    }

    #[test]
    fn a_narrower_blackboard_prefix_is_not_a_widening_and_a_wider_one_is() {
        let old = caps("blackboard = { read = [\"tasks/\"], write = [\"tasks/out/\"] }");
        let narrower = caps("blackboard = { read = [\"tasks/a/\"], write = [\"tasks/out/x\"] }");
        assert!(Widening::between(&old, &narrower).is_empty());
        let wider = caps("blackboard = { read = [\"\"], write = [\"tasks/\"] }");
        let w = Widening::between(&old, &wider);
        assert_eq!((w.read, w.write), (vec![String::new()], vec!["tasks/".to_string()]));
    }

    #[test]
    fn a_tool_no_old_pattern_covers_is_a_widening() {
        let old = caps("tools = [\"kit/*\", \"web/get\"]");
        assert!(Widening::between(&old, &caps("tools = [\"kit/echo\", \"web/get\"]")).is_empty());
        let new = caps("tools = [\"kit/*\", \"web/*\", \"git/log\"]");
        let w = Widening::between(&old, &new);
        assert_eq!(w.describe(), ["tool \"web/*\"", "tool \"git/log\""].map(String::from).to_vec());
        let policy = |tools: &[&str]| paddock_tenants::TenantPolicy {
            open: false,
            tools: paddock_tenants::NameGrant::Only(tools.iter().map(|t| t.to_string()).collect()),
            ..paddock_tenants::TenantPolicy::open("acme")
        };
        assert!(!w.granted_by(&policy(&["web/get", "git/log"])), "web/get does not cover web/*");
        assert!(w.granted_by(&policy(&["web/*", "git/*"])));
    }

    #[test]
    fn dropping_the_blackboard_section_asks_for_the_whole_board() {
        let old = caps("blackboard = { read = [\"tasks/\"] }");
        let w = Widening::between(&old, &Capabilities::default());
        assert_eq!(w.write, vec![String::new()]);
    }
}
