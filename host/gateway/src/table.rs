//! The routes a gateway serves, built from its settings, and their
//! replacement when the settings change.
//!
//! A call takes the route it names out of the table once, at its start, and
//! keeps that `Arc` to its end: a reload never changes a call in flight, which
//! finishes on the targets, breakers and timeouts it started with.
//!
//! What is learnt about a target survives a reload that does not change it: a
//! route whose settings, providers and prices are all unchanged is carried
//! over whole (its breakers, affinity and metrics series), and a provider
//! account (cool-downs, headroom, latency) is carried over wherever its
//! provider's settings are unchanged. A changed provider — another URL or key —
//! may be another account altogether, so it starts with a clean slate.

use super::metrics::Metrics;
use super::providers::simulated::Simulated;
use super::providers::{Kind, Provider};
use super::route::{Account, Route};
use super::settings::GatewaySettings;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The routes of one version of the settings.
pub(super) struct Table {
    pub(super) routes: HashMap<String, Arc<Route>>,
    /// Each provider's settings and, for a simulated one, its simulator.
    providers: BTreeMap<String, (Arc<Provider>, Option<Arc<Simulated>>)>,
    /// Provider accounts by (provider, model).
    accounts: HashMap<(String, String), Arc<Account>>,
    pub(super) simulated_defaults: bool,
}

/// What a reload changed, by route name.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoutesChanged {
    /// Routes the new settings add.
    pub added: Vec<String>,
    /// Routes whose settings, providers or prices changed: they start afresh.
    pub changed: Vec<String>,
    /// Routes the new settings drop; calls already on them finish.
    pub removed: Vec<String>,
    /// Routes carried over with their breakers and affinity.
    pub kept: Vec<String>,
}

impl RoutesChanged {
    /// Whether anything but kept routes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl Table {
    /// The table for `settings`, taking over from `prior` whatever did not change.
    pub(super) fn build(
        settings: &GatewaySettings,
        metrics: &Metrics,
        prior: Option<&Table>,
    ) -> (Table, RoutesChanged) {
        let providers: BTreeMap<String, (Arc<Provider>, Option<Arc<Simulated>>)> = settings
            .providers
            .iter()
            .map(|(name, p)| {
                let same = prior.and_then(|t| t.providers.get(name)).filter(|(old, _)| **old == *p);
                let entry = same.cloned().unwrap_or_else(|| {
                    let simulator = (p.kind == Kind::Simulated).then(|| Arc::new(Simulated::new(p.simulated.clone())));
                    (Arc::new(p.clone()), simulator)
                });
                (name.clone(), entry)
            })
            .collect();
        let unchanged_provider = |name: &str| {
            prior
                .and_then(|t| t.providers.get(name))
                .is_some_and(|(old, _)| Some(&**old) == settings.providers.get(name))
        };
        let mut accounts: HashMap<(String, String), Arc<Account>> = HashMap::new();
        let mut routes = HashMap::new();
        let mut changes = RoutesChanged::default();
        for (name, route) in &settings.routes {
            let old = prior.and_then(|t| t.routes.get(name));
            let same = old.filter(|old| {
                old.settings == *route
                    && old.targets.iter().all(|t| {
                        unchanged_provider(&t.provider.name) && t.price == settings.price(&t.provider.name, &t.model)
                    })
            });
            if let Some(old) = same {
                for t in &old.targets {
                    accounts.insert((t.provider.name.clone(), t.model.clone()), t.account.clone());
                }
                routes.insert(name.clone(), old.clone());
                changes.kept.push(name.clone());
                continue;
            }
            let built = Route::new(name, route.clone(), metrics, |provider, model| {
                let key = (provider.to_string(), model.to_string());
                let account = accounts
                    .entry(key.clone())
                    .or_insert_with(|| {
                        prior
                            .filter(|_| unchanged_provider(provider))
                            .and_then(|t| t.accounts.get(&key).cloned())
                            .unwrap_or_default()
                    })
                    .clone();
                let (provider_settings, simulator) = providers[provider].clone();
                (provider_settings, simulator, settings.price(provider, model), account)
            });
            routes.insert(name.clone(), Arc::new(built));
            if old.is_some() { &mut changes.changed } else { &mut changes.added }.push(name.clone());
        }
        if let Some(prior) = prior {
            changes.removed = prior.routes.keys().filter(|name| !routes.contains_key(*name)).cloned().collect();
        }
        for list in [&mut changes.added, &mut changes.changed, &mut changes.removed, &mut changes.kept] {
            list.sort();
        }
        let table = Table { routes, providers, accounts, simulated_defaults: settings.simulated_defaults };
        (table, changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{RouteSettings, TargetPolicy, TargetSettings};
    use std::time::Instant;

    /// The simulated defaults plus providers `a` and `b` and route `r` on `a/m`.
    fn settings() -> GatewaySettings {
        let mut s = GatewaySettings::simulated_defaults();
        let simulated = s.providers["simulated"].clone();
        for name in ["a", "b"] {
            s.providers.insert(name.into(), Provider { name: name.into(), ..simulated.clone() });
        }
        let mut route: RouteSettings = s.routes["fast"].clone();
        route.targets =
            vec![TargetSettings { provider: "a".into(), model: "m".into(), policy: TargetPolicy::default() }];
        s.routes.insert("r".into(), route);
        s
    }

    fn cool_down(table: &Table, route: &str) {
        table.routes[route].targets[0].account.cool_down(Instant::now(), std::time::Duration::from_secs(60));
    }

    fn cooling(table: &Table, route: &str) -> bool {
        table.routes[route].targets[0].account.cooling(Instant::now()).is_some()
    }

    #[test]
    fn a_reload_keeps_unchanged_routes_whole_and_rebuilds_changed_ones() {
        let metrics = Metrics::default();
        let (first, _) = Table::build(&settings(), &metrics, None);
        let mut next = settings();
        next.routes.get_mut("smart").unwrap().timeout = std::time::Duration::from_secs(5);
        next.routes.remove("fast");
        next.routes.insert("new".into(), next.routes["r"].clone());
        let (second, changes) = Table::build(&next, &metrics, Some(&first));
        assert_eq!(
            changes,
            RoutesChanged {
                added: vec!["new".into()],
                changed: vec!["smart".into()],
                removed: vec!["fast".into()],
                kept: vec!["r".into()],
            }
        );
        assert!(Arc::ptr_eq(&first.routes["r"], &second.routes["r"]), "an unchanged route is the same route");
        assert!(!Arc::ptr_eq(&first.routes["smart"], &second.routes["smart"]));
    }

    #[test]
    fn a_provider_account_survives_a_reload_unless_its_provider_changes() {
        let metrics = Metrics::default();
        let (first, _) = Table::build(&settings(), &metrics, None);
        cool_down(&first, "r");
        // Another timeout rebuilds the route, but `a` is the same account.
        let mut retimed = settings();
        retimed.routes.get_mut("r").unwrap().timeout = std::time::Duration::from_secs(5);
        let (second, changes) = Table::build(&retimed, &metrics, Some(&first));
        assert_eq!(changes.changed, vec!["r".to_string()]);
        assert!(cooling(&second, "r"), "the cool-down a 429 set still holds");
        // Another URL for `a` may be another account: it starts afresh.
        let mut moved = retimed.clone();
        moved.providers.get_mut("a").unwrap().base_url = "http://127.0.0.1:9".into();
        let (third, _) = Table::build(&moved, &metrics, Some(&second));
        assert!(!cooling(&third, "r"));
    }
}
