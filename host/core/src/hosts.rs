//! Host patterns for outbound HTTP: what a manifest asks for
//! (`capabilities.http`) and a tenant grants (`http`, `http-private`).
//!
//! A pattern is a host name (`api.example.com`), every name under a domain
//! (`*.example.com`, not `example.com` itself), or an IP address (`127.0.0.1`,
//! `[::1]`), each optionally with a port (`api.example.com:8443`); without
//! one it names every port. Names are compared without case.

use std::net::IpAddr;

/// Every host: a tenant's grant only.
pub const ANY: &str = "*";

/// A host pattern that breaks the rules; the text states them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a host pattern: use a host name (\"api.example.com\"), \"*.\" and a domain, or an IP address, \
     each with an optional \":port\"",
    .0.escape_debug()
)]
pub struct HostPatternError(pub String);

/// A parsed pattern: the host part (lowercase, `*.` kept) and the port.
fn parse(pattern: &str) -> Option<(String, Option<u16>)> {
    let lower = pattern.to_ascii_lowercase();
    let (host, port) = if let Some(rest) = lower.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        ip.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        (format!("[{ip}]"), port)
    } else {
        match lower.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port.parse::<u16>().ok()?)),
            None => (lower.clone(), None),
        }
    };
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let bracketed = host.starts_with('[');
    (valid_name || bracketed).then_some((host, port))
}

/// Checks a pattern of a manifest or a grant.
pub fn validate_pattern(pattern: &str) -> Result<(), HostPatternError> {
    parse(pattern).map(|_| ()).ok_or_else(|| HostPatternError(pattern.to_string()))
}

/// `host` as patterns name it: lowercase, an IPv6 address in brackets.
pub fn normalize(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host,
    }
}

/// Whether `pattern` grants `host` (as [`normalize`]d) on `port`.
pub fn matches(pattern: &str, host: &str, port: u16) -> bool {
    if pattern == ANY {
        return true;
    }
    let Some((p_host, p_port)) = parse(pattern) else { return false };
    if p_port.is_some_and(|p| p != port) {
        return false;
    }
    match p_host.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1 && host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.')
        }
        None => p_host == host,
    }
}

/// Whether `pattern` is an IP address (with or without a port).
pub fn is_address(pattern: &str) -> bool {
    parse(pattern).is_some_and(|(host, _)| host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok())
}

/// Whether every host and port `inner` grants, `outer` grants too.
pub fn covers(outer: &str, inner: &str) -> bool {
    if outer == ANY {
        return true;
    }
    let (Some((o_host, o_port)), Some((i_host, i_port))) = (parse(outer), parse(inner)) else { return false };
    let ports = match (o_port, i_port) {
        (None, _) => true,
        (Some(o), Some(i)) => o == i,
        (Some(_), None) => false,
    };
    let hosts = match (o_host.strip_prefix("*."), i_host.strip_prefix("*.")) {
        (Some(o), Some(i)) => i == o || i.ends_with(&format!(".{o}")),
        (Some(o), None) => i_host.ends_with(&format!(".{o}")),
        (None, Some(_)) => false,
        (None, None) => o_host == i_host,
    };
    ports && hosts
}

/// The hosts both `asked` and `granted` name: the narrower where one covers the other.
pub fn intersect(asked: &str, granted: &str) -> Option<String> {
    crate::tools::narrower(asked, granted, covers)
}

/// What kind of address `ip` is, when it is not a public one: `loopback`,
/// `private`, `link-local`, `unspecified`, `shared`, `multicast`,
/// `documentation` or `reserved`. `None` for a public address.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            match () {
                () if v4.is_loopback() => Some("loopback"),
                () if v4.is_private() => Some("private"),
                () if v4.is_link_local() => Some("link-local"),
                () if v4.is_unspecified() || a == 0 => Some("unspecified"),
                () if a == 100 && (64..128).contains(&b) => Some("shared"),
                () if v4.is_multicast() => Some("multicast"),
                () if v4.is_documentation() => Some("documentation"),
                () if v4.is_broadcast() || a >= 240 || (a == 192 && b == 0 && v4.octets()[2] == 0) => Some("reserved"),
                () if a == 198 && (b == 18 || b == 19) => Some("reserved"),
                () => None,
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            match () {
                () if v6.is_loopback() => Some("loopback"),
                () if v6.is_unspecified() => Some("unspecified"),
                () if first & 0xfe00 == 0xfc00 => Some("private"),
                () if first & 0xffc0 == 0xfe80 => Some("link-local"),
                () if v6.is_multicast() => Some("multicast"),
                () if first == 0x2001 && v6.segments()[1] == 0x0db8 => Some("documentation"),
                () => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_names_wildcard_domains_or_addresses_with_an_optional_port() {
        for good in [
            "api.example.com",
            "*.internal.example",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:443",
            "API.Example.com:443",
        ] {
            assert_eq!(validate_pattern(good), Ok(()), "{good}");
        }
        for bad in ["", "*", "http://x", "a/b", "x:port", "*.", "-a.com", "[zz]", "a..b"] {
            assert_eq!(validate_pattern(bad), Err(HostPatternError(bad.into())), "{bad}");
        }
    }

    #[test]
    fn a_pattern_matches_its_host_a_wildcard_only_names_below_its_domain() {
        assert!(matches("api.example.com", "api.example.com", 443));
        assert!(matches("API.example.com", "api.example.com", 80));
        assert!(!matches("api.example.com:8443", "api.example.com", 443));
        assert!(matches("*.example.com", "a.b.example.com", 443));
        assert!(!matches("*.example.com", "example.com", 443));
        assert!(!matches("*.example.com", "badexample.com", 443));
        assert!(matches("[::1]", &normalize("::1"), 80));
        assert!(is_address("127.0.0.1:80") && is_address("[::1]") && !is_address("*") && !is_address("localhost"));
    }

    #[test]
    fn patterns_cover_and_intersect() {
        assert!(covers("*.example.com", "api.example.com:443") && covers("*.example.com", "*.a.example.com"));
        assert!(!covers("api.example.com:443", "api.example.com") && !covers("api.example.com", "*.example.com"));
        assert_eq!(intersect("*.example.com", "api.example.com").as_deref(), Some("api.example.com"));
        assert_eq!(intersect("api.example.com", "*").as_deref(), Some("api.example.com"));
        assert_eq!(intersect("a.example.com", "b.example.com"), None);
    }

    #[test]
    fn loopback_private_link_local_and_mapped_addresses_are_not_public() {
        let kind = |ip: &str| non_public(ip.parse().unwrap());
        assert_eq!(kind("127.0.0.1"), Some("loopback"));
        assert_eq!(kind("10.1.2.3"), Some("private"));
        assert_eq!(kind("169.254.169.254"), Some("link-local"));
        assert_eq!(kind("100.64.0.1"), Some("shared"));
        assert_eq!(kind("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(kind("fd00::1"), Some("private"));
        assert_eq!(kind("fe80::1"), Some("link-local"));
        assert_eq!(kind("93.184.216.34"), None);
        assert_eq!(kind("2606:4700::1111"), None);
    }
}
