use super::*;
use paddock_core::BoardRequest;

fn policy() -> TenantPolicy {
    TenantPolicy {
        open: false,
        agents: NameGrant::Only(vec!["executor".into()]),
        routes: NameGrant::Only(vec!["fast".into()]),
        read: vec!["shared/".into()],
        write: vec!["tasks/".into()],
        approvals: false,
        tools: NameGrant::Only(vec!["kit/echo".into(), "kit/big".into(), "fetch/*".into()]),
        http: NameGrant::Only(vec!["api.example.com".into()]),
        ..TenantPolicy::open("acme")
    }
}

fn asks() -> Capabilities {
    Capabilities {
        routes: vec!["fast".into(), "smart".into()],
        agents: vec!["executor".into(), "billing".into()],
        approvals: true,
        blackboard: Some(BoardRequest {
            read: vec!["shared/news".into(), "secrets/".into()],
            write: vec!["tasks/7".into(), "other/".into()],
        }),
        dirs: vec!["/data".into()],
        tools: vec!["kit/*".into(), "fetch/get".into(), "github/search".into()],
        http: vec!["*.example.com".into(), "evil.test".into()],
    }
}

#[test]
fn grants_are_what_was_asked_for_and_granted() {
    let grants = resolve(&policy(), &asks());
    assert_eq!(&*grants.routes, ["fast"]);
    assert_eq!(&*grants.agents, ["executor"]);
    assert_eq!(&*grants.write, ["tasks/7"]);
    assert_eq!(&*grants.read, ["shared/news", "tasks/7"], "writing implies reading");
    assert!(!grants.approvals);
    assert!(grants.dirs.is_empty());
}

#[test]
fn every_refusal_names_the_capability_and_the_policy_key() {
    let grants = resolve(&policy(), &asks());
    let lines: Vec<String> = grants.refused.iter().map(|r| format!("{}: {}", r.capability, r.reason)).collect();
    assert_eq!(
        lines,
        [
            "route \"smart\": not in tenants.acme.routes = [fast]",
            "agent \"billing\": not in tenants.acme.agents = [executor]",
            "blackboard write \"other/\": not under any of tenants.acme.blackboard.write = [\"tasks/\"]",
            "blackboard read \"secrets/\": not under any of tenants.acme.blackboard.read = [\"shared/\", \"tasks/\"]",
            "approvals: tenants.acme.approvals is false",
            "directory \"/data\": no entry with guest = \"/data\" in tenants.acme.dirs",
            "tool \"kit/*\": tenants.acme.tools = [kit/echo, kit/big, fetch/*] grants only kit/echo, kit/big of it",
            "tool \"github/search\": not in tenants.acme.tools = [kit/echo, kit/big, fetch/*]",
            "host \"*.example.com\": tenants.acme.http = [api.example.com] grants only api.example.com of it",
            "host \"evil.test\": not in tenants.acme.http = [api.example.com]",
        ]
    );
}

#[test]
fn tools_granted_are_the_intersection_of_the_patterns_asked_and_granted() {
    let grants = resolve(&policy(), &asks());
    assert_eq!(&*grants.tools, ["fetch/get", "kit/big", "kit/echo"]);
    assert!(grants.allows_tool("kit/echo") && grants.allows_tool("fetch/get"));
    assert!(!grants.allows_tool("kit/sleep") && !grants.allows_tool("fetch/post"));
    let asked = asks().tools;
    assert_eq!(
        grants.tool_denial("github/search", "p", "acme", &asked),
        "tool \"github/search\" is not granted to agent \"p\" by tenant \"acme\": \
         not in tenants.acme.tools = [kit/echo, kit/big, fetch/*]"
    );
    assert_eq!(
        grants.tool_denial("kit/sleep", "p", "acme", &asked),
        "tool \"kit/sleep\" is not granted to agent \"p\" by tenant \"acme\": \
         tenants.acme.tools = [kit/echo, kit/big, fetch/*] grants only kit/echo, kit/big of it"
    );
    assert_eq!(
        grants.tool_denial("slack/post", "p", "acme", &asked),
        "tool \"slack/post\" is not granted to agent \"p\" (its manifest's capabilities.tools: \
         kit/*, fetch/get, github/search)"
    );
}

#[test]
fn hosts_granted_are_the_intersection_and_a_refusal_names_the_tenants_rule() {
    let grants = resolve(&policy(), &asks());
    assert_eq!(&*grants.http, ["api.example.com"]);
    assert!(grants.allows_host("api.example.com", 443) && !grants.allows_host("www.example.com", 443));
    let asked = asks().http;
    assert_eq!(
        grants.host_denial("www.example.com", 443, "p", "acme", &asked),
        "host \"www.example.com:443\" is not granted to agent \"p\" by tenant \"acme\": \
         tenants.acme.http = [api.example.com] grants only api.example.com of it"
    );
    assert_eq!(
        grants.host_denial("127.0.0.1", 80, "p", "acme", &asked),
        "host \"127.0.0.1:80\" is not granted to agent \"p\" (its manifest's capabilities.http: *.example.com, evil.test)"
    );
}

#[test]
fn the_open_policy_grants_whatever_is_asked() {
    let grants = resolve(&TenantPolicy::open("default"), &asks());
    assert!(grants.refused.is_empty(), "{:?}", grants.refused);
    assert_eq!(grants.routes.len(), 2);
    assert!(grants.approvals);
}

#[test]
fn a_manifest_without_a_blackboard_section_gets_what_its_tenant_grants() {
    let grants = resolve(&policy(), &Capabilities::default());
    assert_eq!(
        (&*grants.read, &*grants.write),
        (&["shared/".to_string(), "tasks/".into()][..], &["tasks/".to_string()][..])
    );
    assert!(grants.refused.is_empty(), "{:?}", grants.refused);
}

#[test]
fn board_access_outside_the_granted_prefixes_is_refused_naming_them() {
    let grants = resolve(&policy(), &asks());
    assert_eq!(grants.check_board(BoardAccess::Write("tasks/7"), "p", "acme"), Ok(()));
    assert_eq!(grants.check_board(BoardAccess::Read("tasks/7"), "p", "acme"), Ok(()));
    assert_eq!(grants.check_board(BoardAccess::ReadPrefix("shared/news/"), "p", "acme"), Ok(()));
    assert_eq!(
        grants.check_board(BoardAccess::ReadPrefix("shared/"), "p", "acme").unwrap_err().to_string(),
        "blackboard read of prefix \"shared/\" is not granted to agent \"p\" for tenant \"acme\" (granted: read [\"shared/news\", \"tasks/7\"])"
    );
    assert_eq!(
        grants.check_board(BoardAccess::Write("tasks/8"), "p", "acme").unwrap_err().to_string(),
        "blackboard write of \"tasks/8\" is not granted to agent \"p\" for tenant \"acme\" (granted: write [\"tasks/7\"])"
    );
}

#[test]
fn an_unconfigured_tenant_is_denied_by_name_once_any_is_configured() {
    let tenants = Tenants::new([policy()]);
    assert_eq!(tenants.get("globex").unwrap_err().to_string(), "denied: no tenant named \"globex\" (configured: acme)");
    assert!(Tenants::new([]).get("anyone").unwrap().open);
    assert_eq!(
        tenants.get("acme").unwrap().check_agent("billing").unwrap_err().to_string(),
        "denied: agent \"billing\" is not granted to tenant \"acme\" (tenants.acme.agents = [executor])"
    );
}
