//! Checks of the whole tree, once every step is read.

use super::error::{Bad, bad};
use super::{Flow, Kind, StepId};
use crate::expr::{Ref, Root};

/// Whole-flow checks: no step contains itself, every step is used, and
/// `steps.NAME` references name steps.
pub(super) fn check_tree(flow: &Flow) -> Result<(), Bad> {
    fn walk(flow: &Flow, id: StepId, path: &mut Vec<StepId>, seen: &mut Vec<bool>) -> Result<(), Bad> {
        if let Some(p) = path.iter().position(|&x| x == id) {
            let names: Vec<&str> = path[p..].iter().chain([&id]).map(|&i| flow.steps[i].name.as_str()).collect();
            return Err(bad(
                format!("steps.{}", flow.steps[id].name),
                format!("contains itself ({})", names.join(" → ")),
            ));
        }
        seen[id] = true;
        path.push(id);
        for child in flow.steps[id].kind.children() {
            walk(flow, child, path, seen)?;
        }
        path.pop();
        Ok(())
    }
    let mut seen = vec![false; flow.steps.len()];
    walk(flow, flow.start, &mut Vec::new(), &mut seen)?;
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(bad(
            format!("steps.{}", flow.steps[i].name),
            format!("never runs (it is not reachable from flow.start = {:?})", flow.steps[flow.start].name),
        ));
    }
    for s in &flow.steps {
        let mut refs: Vec<(&Ref, &str)> = s.input.iter().flat_map(|t| t.refs()).map(|r| (r, "input")).collect();
        match &s.kind {
            Kind::Parallel { for_each: Some((r, _)), .. } => refs.push((r, "for-each")),
            Kind::Branch { cases, .. } => {
                refs.extend(cases.iter().flat_map(|c| &c.0).map(|c| (c.reference(), "cases")))
            }
            Kind::Machine { states, .. } => refs.extend(
                states.iter().flat_map(|st| &st.next).filter_map(|n| n.0.as_ref()).map(|c| (c.reference(), "states")),
            ),
            Kind::Approval { question, .. } => refs.extend(question.refs().into_iter().map(|r| (r, "question"))),
            _ => {}
        }
        for (r, key) in refs {
            if let Root::Step(name) = &r.root
                && flow.step_named(name).is_none()
            {
                return Err(bad(format!("steps.{}.{key}", s.name), format!("`steps.{name}` names no step")));
            }
        }
    }
    Ok(())
}
