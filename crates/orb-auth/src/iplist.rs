//! IP allow-lists in CIDR notation, and which address a request comes from.
//!
//! Invariants: IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an
//! IPv4 peer) are treated as the IPv4 address, in the list and in the address checked; an empty list
//! allows everyone; `X-Forwarded-For` is believed only from a peer the operator named as a trusted proxy.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::error::AuthError;

/// A list of networks. Serialises as a list of strings (`["192.0.2.0/24", "2001:db8::/32"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct IpAllowList(Vec<IpNet>);

/// An IPv4-mapped IPv6 network (`::ffff:a.b.c.d/n`, n ≥ 96) as the IPv4 network it stands for; any
/// other network with its host bits cleared.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped.trunc());
    }
    net.trunc()
}

impl IpAllowList {
    /// Parses entries: a CIDR network (`192.0.2.0/24`, `2001:db8::/32`; host bits are cleared) or a bare
    /// address (one host: /32 or /128). Surrounding spaces are ignored. The error names the first bad
    /// entry.
    pub fn parse(entries: &[String]) -> Result<Self, AuthError> {
        entries.iter().map(|entry| parse_entry(entry)).collect::<Result<Vec<_>, _>>().map(Self)
    }

    /// Whether `ip` may connect: an empty list allows everyone, otherwise `ip` must be in a network.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.contains(ip)
    }

    /// Whether `ip` is in one of the networks (an empty list contains nothing).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks, canonical (as they serialise).
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

fn parse_entry(entry: &str) -> Result<IpNet, AuthError> {
    let text = entry.trim();
    let bad = |reason: String| AuthError::InvalidIpEntry { entry: entry.to_owned(), reason };
    if text.is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    let net = if text.contains('/') {
        text.parse::<IpNet>().map_err(|e| bad(e.to_string()))?
    } else {
        IpNet::from(text.parse::<IpAddr>().map_err(|e| bad(e.to_string()))?)
    };
    Ok(canonical_net(net))
}

impl TryFrom<Vec<String>> for IpAllowList {
    type Error = AuthError;

    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(&entries)
    }
}

impl From<IpAllowList> for Vec<String> {
    fn from(list: IpAllowList) -> Self {
        list.0.iter().map(IpNet::to_string).collect()
    }
}

impl fmt::Display for IpAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&entries.join(", "))
    }
}

/// The client's address: the socket peer's, unless that peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy (each proxy appends the address it saw, so
/// entries further left are the client's own claims). When every entry is a trusted proxy, the
/// left-most. An empty `trusted_proxies` list ignores `X-Forwarded-For` entirely; a header with an
/// entry that is not an IP address is ignored as a whole (the socket address is used). Pass several
/// `X-Forwarded-For` headers joined with `,` in their order. IPv4-mapped addresses come back as IPv4.
pub fn client_ip(socket: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &IpAllowList) -> IpAddr {
    let socket = socket.to_canonical();
    if !trusted_proxies.contains(socket) {
        return socket;
    }
    let Some(header) = forwarded_for else {
        return socket;
    };
    let parsed: Option<Vec<IpAddr>> = header
        .split(',')
        .map(|entry| entry.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical()))
        .collect();
    let Some(chain) = parsed else {
        return socket;
    };
    match chain.iter().rev().find(|ip| !trusted_proxies.contains(**ip)) {
        Some(ip) => *ip,
        None => chain.first().copied().unwrap_or(socket),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// `0.0.0.0`, an address nobody lists.
    const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

    fn list(entries: &[&str]) -> IpAllowList {
        IpAllowList::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).expect("valid list")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid address")
    }

    #[test]
    fn parse_accepts_networks_and_bare_addresses_and_canonicalises() {
        let parsed = list(&[
            " 192.0.2.0/24 ",
            "198.51.100.7",
            "2001:db8::/32",
            "2001:db8::1",
            "10.1.2.3/8",
            "::ffff:203.0.113.0/120",
        ]);
        let text: Vec<String> = parsed.clone().into();
        assert_eq!(
            text,
            [
                "192.0.2.0/24",
                "198.51.100.7/32",
                "2001:db8::/32",
                "2001:db8::1/128",
                "10.0.0.0/8",
                "203.0.113.0/24"
            ]
        );
    }

    #[test]
    fn parse_names_the_bad_entry() {
        for bad in [
            "",
            "   ",
            "192.0.2.0/33",
            "300.1.1.1",
            "example.com",
            "192.0.2.0/",
            "2001:db8::/129",
            "1.2.3.4 5",
        ] {
            let entries = vec!["192.0.2.0/24".to_owned(), bad.to_owned()];
            match IpAllowList::parse(&entries) {
                Err(AuthError::InvalidIpEntry { entry, .. }) => assert_eq!(entry, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn allows_table() {
        let office = list(&["192.0.2.0/24", "2001:db8:1::/48", "198.51.100.7"]);
        let check = |addr: &str, expected: bool| assert_eq!(office.allows(ip(addr)), expected, "{addr}");
        check("192.0.2.1", true);
        check("192.0.2.255", true);
        check("192.0.3.1", false);
        check("198.51.100.7", true);
        check("198.51.100.8", false);
        check("::ffff:192.0.2.9", true); // IPv4-mapped from a dual-stack socket
        check("::ffff:192.0.3.9", false);
        check("2001:db8:1:ffff::1", true);
        check("2001:db8:2::1", false);
        check("::1", false);
        assert!(IpAllowList::default().allows(ip("203.0.113.5")), "empty list allows everyone");
        assert!(IpAllowList::default().allows(UNSPECIFIED));
        assert!(!IpAllowList::default().contains(UNSPECIFIED), "but contains no one");
    }

    #[test]
    fn mapped_entries_match_plain_ipv4_addresses() {
        let mapped = list(&["::ffff:192.0.2.0/120"]);
        assert!(mapped.allows(ip("192.0.2.77")));
        assert!(!mapped.allows(ip("192.0.3.77")));
    }

    #[test]
    fn serde_round_trips_as_strings_and_refuses_bad_entries() {
        let parsed = list(&["192.0.2.0/24", "2001:db8::1"]);
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(json, r#"["192.0.2.0/24","2001:db8::1/128"]"#);
        assert_eq!(serde_json::from_str::<IpAllowList>(&json).unwrap(), parsed);
        let err = serde_json::from_str::<IpAllowList>(r#"["192.0.2.0/24","nope"]"#).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert_eq!(parsed.to_string(), "192.0.2.0/24, 2001:db8::1/128");
    }

    #[test]
    fn client_ip_table() {
        let proxies = list(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let none = IpAllowList::default();
        // (socket, X-Forwarded-For, trusted, expected)
        let cases: &[(&str, Option<&str>, &IpAllowList, &str)] = &[
            ("203.0.113.9", None, &proxies, "203.0.113.9"),
            ("203.0.113.9", Some("198.51.100.1"), &proxies, "203.0.113.9"), // not from a proxy: ignored
            ("10.0.0.2", None, &proxies, "10.0.0.2"),
            ("10.0.0.2", Some("198.51.100.1"), &proxies, "198.51.100.1"),
            ("10.0.0.2", Some("1.1.1.1, 198.51.100.1"), &proxies, "198.51.100.1"), // left entry is a claim
            ("10.0.0.2", Some("198.51.100.1, 10.0.0.3"), &proxies, "198.51.100.1"), // two proxies
            ("10.0.0.2", Some("10.0.0.5, 10.0.0.3"), &proxies, "10.0.0.5"),        // all proxies: left-most
            ("10.0.0.2", Some("198.51.100.1, garbage"), &proxies, "10.0.0.2"),
            ("10.0.0.2", Some(""), &proxies, "10.0.0.2"),
            ("10.0.0.2", Some("198.51.100.1,,"), &proxies, "10.0.0.2"),
            ("10.0.0.2", Some("198.51.100.1:4711"), &proxies, "10.0.0.2"),
            ("::ffff:10.0.0.2", Some("::ffff:198.51.100.1"), &proxies, "198.51.100.1"),
            ("2001:db8:ffff::1", Some("2001:db8:1::5"), &proxies, "2001:db8:1::5"),
            ("10.0.0.2", Some("198.51.100.1"), &none, "10.0.0.2"), // no trusted proxies: XFF ignored
            ("::ffff:203.0.113.9", None, &none, "203.0.113.9"),
        ];
        for (socket, xff, trusted, expected) in cases {
            assert_eq!(client_ip(ip(socket), *xff, trusted), ip(expected), "{socket} {xff:?}");
        }
    }
}
