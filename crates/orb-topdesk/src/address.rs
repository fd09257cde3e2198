//! **Where ORB may send a tenant's TOPdesk credentials.** A tenant's settings name its TOPdesk by URL, so
//! the URL is tenant data: without a check, a tenant admin could point ORB (and the Basic-auth password
//! it sends) at a cloud metadata service, at ORB's own host or at the operator's internal network. The
//! policy here is the one place that decides:
//!
//! - `https` only; plain `http` only where the installation allows it (`[topdesk] allow_http`, for the
//!   emulators of tests and the demo);
//! - never an address that is, or that the host name resolves to, a loopback, private (RFC 1918,
//!   `fc00::/7`), link-local (`169.254/16`, `fe80::/10`), unspecified, shared (CGNAT `100.64/10`),
//!   multicast, broadcast or cloud metadata (`169.254.169.254`, `fd00:ec2::254`) address — unless the
//!   installation's `[topdesk] allow_cidrs` lists a range holding it (an on-premises TOPdesk);
//! - IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged as the IPv4 address they carry.
//!
//! The decision is pure ([`AddressPolicy::check_url`] for the URL itself, [`AddressPolicy::check_resolved`]
//! for the addresses a name resolved to); [`AddressPolicy::resolve_and_check`] is the thin async wrapper
//! that asks DNS. The TOPdesk client given a policy ([`crate::TopdeskConfig::address_policy`]) also
//! resolves through it at every connection, so a name that later resolves elsewhere (DNS rebinding) is
//! refused too, and it never follows a redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use thiserror::Error;
use url::{Host, Url};

/// Why a TOPdesk URL was refused. Every message names the setting (`topdesk.url`) and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlRefusal {
    /// Not `https` (and the installation does not allow `http`).
    #[error(
        "topdesk.url {url} is not an https:// URL: give the TOPdesk instance's https:// address (plain \
         http:// is accepted only where the operator sets [topdesk] allow_http = true in ORB's \
         configuration, for emulators and tests)"
    )]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// The URL has no host name.
    #[error(
        "topdesk.url {url} has no host: give the TOPdesk instance's address, e.g. https://contoso.topdesk.net"
    )]
    NoHost {
        /// The URL as given.
        url: String,
    },
    /// The host is, or resolves to, an address ORB does not call.
    #[error(
        "topdesk.url {url}: {host} {how} {ip}, a {kind} address, where ORB does not send credentials; give \
         the TOPdesk instance's public address, or, for a TOPdesk on the operator's own network, the \
         operator allows its range in ORB's configuration ([topdesk] allow_cidrs = \"{suggestion}\")"
    )]
    Forbidden {
        /// The URL as given.
        url: String,
        /// The URL's host.
        host: String,
        /// `is` for an address in the URL, `resolves to` for a name.
        how: &'static str,
        /// The refused address.
        ip: IpAddr,
        /// What kind of address it is, e.g. `link-local (cloud metadata)`.
        kind: &'static str,
        /// A range that would allow it (the address itself).
        suggestion: String,
    },
    /// The host name does not resolve.
    #[error("topdesk.url {url}: the host {host} cannot be resolved ({reason}); check the address")]
    Unresolved {
        /// The URL as given.
        url: String,
        /// The host name.
        host: String,
        /// The resolver's message.
        reason: String,
    },
}

/// Why the save-time probe of a TOPdesk URL failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProbeError {
    /// TOPdesk (or something in front of it) answered with a redirect.
    #[error(
        "topdesk.url {url}: {probed} answered HTTP {status}, a redirect to {location}; ORB does not follow \
         redirects: give the address TOPdesk itself serves"
    )]
    Redirect {
        /// The URL as given.
        url: String,
        /// The URL probed.
        probed: String,
        /// The status.
        status: u16,
        /// Where it pointed.
        location: String,
    },
    /// No answer (connection refused, TLS failure, timeout, refused address).
    #[error(
        "topdesk.url {url}: ORB cannot reach {probed} ({reason}); check the address and the network (a \
         TOPdesk with a certificate of the organisation's own CA needs the operator's [topdesk] ca_file)"
    )]
    Unreachable {
        /// The URL as given.
        url: String,
        /// The URL probed.
        probed: String,
        /// What went wrong.
        reason: String,
    },
}

impl UrlRefusal {
    /// Whether the refusal is only that the name did not resolve (DNS may be down for a moment; nothing
    /// can be sent to a name that does not resolve, so a runtime may still be built and retried).
    pub fn is_unresolved(&self) -> bool {
        matches!(self, Self::Unresolved { .. })
    }
}

/// Why an `allow_cidrs` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{text:?} is not an address range: write ranges such as \"10.0.0.0/8,fd12:3456::/48\" ({reason})")]
pub struct CidrError {
    /// The entry as written.
    pub text: String,
    /// The parser's message.
    pub reason: String,
}

/// The installation's outbound address policy for TOPdesk (see the module docs). The default is the
/// strict one: `https` only, no special-purpose address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
    allow_http: bool,
}

impl AddressPolicy {
    /// A policy allowing the ranges `allow` (which may hold otherwise refused addresses) and, with
    /// `allow_http`, plain-http URLs.
    pub fn new(allow: Vec<IpNet>, allow_http: bool) -> Self {
        Self { allow, allow_http }
    }

    /// Parses a comma-separated list of CIDR ranges (IPv4 and IPv6; a bare address is one host). Empty
    /// entries are ignored.
    pub fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, CidrError> {
        let mut out = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(e) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(CidrError { text: entry.to_owned(), reason: e.to_string() }),
                },
            };
            out.push(net);
        }
        Ok(out)
    }

    /// The allowed ranges.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Whether plain-http URLs are allowed.
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// Why ORB does not call `ip` (`None`: it may): the kind of a special-purpose address outside the
    /// allowed ranges.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        let kind = special_kind(ip)?;
        if self.allow.iter().any(|net| net.contains(&ip)) { None } else { Some(kind) }
    }

    /// Checks the URL itself: its scheme, that it has a host, and an address written as the host. Returns
    /// the host name to resolve (`None` when the host is an address).
    pub fn check_url(&self, url: &Url) -> Result<Option<String>, UrlRefusal> {
        let shown = url.as_str().to_owned();
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(UrlRefusal::Scheme { url: shown }),
        }
        let ip = match url.host() {
            None => return Err(UrlRefusal::NoHost { url: shown }),
            Some(Host::Domain(name)) => {
                // `url` keeps a dotted-decimal host as an address, but not every spelling a resolver takes.
                match name.trim_end_matches('.').parse::<IpAddr>() {
                    Ok(ip) => ip,
                    Err(_) => return Ok(Some(name.to_owned())),
                }
            }
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        };
        self.check_ip(url, ip, "is")?;
        Ok(None)
    }

    /// Checks the addresses `url`'s host name resolved to: every one must be allowed.
    pub fn check_resolved(&self, url: &Url, addresses: &[IpAddr]) -> Result<(), UrlRefusal> {
        addresses.iter().try_for_each(|ip| self.check_ip(url, *ip, "resolves to"))
    }

    /// [`Self::check_url`], then resolves the host name (DNS) and [`Self::check_resolved`].
    pub async fn resolve_and_check(&self, url: &Url) -> Result<(), UrlRefusal> {
        let Some(host) = self.check_url(url)? else { return Ok(()) };
        let port = url.port_or_known_default().unwrap_or(443);
        let unresolved = |reason: String| UrlRefusal::Unresolved {
            url: url.as_str().to_owned(),
            host: host.clone(),
            reason,
        };
        let addresses: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| unresolved(e.to_string()))?
            .map(|a| a.ip())
            .collect();
        if addresses.is_empty() {
            return Err(unresolved("no addresses".to_owned()));
        }
        self.check_resolved(url, &addresses)
    }

    /// Asks TOPdesk once, without credentials, for its API version (`GET {url}/tas/api/version`) through
    /// a client under this policy with `extra_roots`, and refuses a redirect or no answer. Any other answer
    /// (200, or 401 from a TOPdesk that wants a login) shows the address serves TOPdesk's API directly.
    pub async fn probe(
        &self,
        url: &Url,
        extra_roots: &[Vec<u8>],
        timeout: std::time::Duration,
    ) -> Result<(), ProbeError> {
        let probed = crate::client::api_url(url).join("version").unwrap_or_else(|_| url.clone());
        let unreachable = |reason: String| ProbeError::Unreachable {
            url: url.as_str().to_owned(),
            probed: probed.as_str().to_owned(),
            reason,
        };
        let http = crate::client::http_client(Some(self.clone()), extra_roots, timeout, timeout)
            .map_err(|e| unreachable(e.to_string()))?;
        let response = http.get(probed.clone()).send().await.map_err(|e| {
            // The whole chain: the resolver's refusal or the TLS error is in a source.
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            unreachable(reason)
        })?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere")
                .to_owned();
            return Err(ProbeError::Redirect {
                url: url.as_str().to_owned(),
                probed: probed.as_str().to_owned(),
                status: status.as_u16(),
                location,
            });
        }
        Ok(())
    }

    fn check_ip(&self, url: &Url, ip: IpAddr, how: &'static str) -> Result<(), UrlRefusal> {
        match self.refusal(ip) {
            None => Ok(()),
            Some(kind) => Err(UrlRefusal::Forbidden {
                url: url.as_str().to_owned(),
                host: url.host_str().unwrap_or_default().to_owned(),
                how,
                ip,
                kind,
                suggestion: IpNet::from(canonical(ip)).to_string(),
            }),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries; any other unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The kind of a special-purpose address ORB does not call, or `None` for an ordinary one.
fn special_kind(ip: IpAddr) -> Option<&'static str> {
    const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
    const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4 == METADATA_V4 {
                Some("cloud metadata")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (CGNAT)")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_broadcast() {
                Some("broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6 == METADATA_V6 {
                Some("cloud metadata")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// The TOPdesk client's resolver under a policy: resolves with the system resolver and keeps only the
/// addresses the policy allows; a name with none left is refused, so no connection is made.
#[derive(Debug)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.iter().copied().filter(|a| policy.refusal(a.ip()).is_none()).collect();
            if allowed.is_empty() {
                let why = found.first().and_then(|a| policy.refusal(a.ip())).unwrap_or("no");
                let message = format!(
                    "{host} resolves only to addresses ORB does not call ({why}); see the installation's \
                     [topdesk] allow_cidrs"
                );
                return Err(message.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(cidrs: &str, http: bool) -> AddressPolicy {
        AddressPolicy::new(AddressPolicy::parse_cidrs(cidrs).unwrap(), http)
    }

    #[test]
    fn special_addresses_are_refused_unless_an_allowed_range_holds_them() {
        // (address, kind under the strict policy, allowed by "127.0.0.0/8,10.0.0.0/8,fd00::/8")
        let table: &[(&str, Option<&str>, bool)] = &[
            ("127.0.0.1", Some("loopback"), true),
            ("127.8.9.10", Some("loopback"), true),
            ("::1", Some("loopback"), false),
            ("10.1.2.3", Some("private"), true),
            ("172.16.0.1", Some("private"), false),
            ("172.31.255.255", Some("private"), false),
            ("192.168.1.1", Some("private"), false),
            ("169.254.1.1", Some("link-local"), false),
            ("169.254.169.254", Some("cloud metadata"), false),
            ("fd00:ec2::254", Some("cloud metadata"), true),
            ("fe80::1", Some("link-local"), false),
            ("fc00::1", Some("private (unique local)"), false),
            ("fd12:3456::1", Some("private (unique local)"), true),
            ("0.0.0.0", Some("unspecified"), false),
            ("::", Some("unspecified"), false),
            ("100.64.0.1", Some("shared (CGNAT)"), false),
            ("100.127.255.254", Some("shared (CGNAT)"), false),
            ("224.0.0.1", Some("multicast"), false),
            ("255.255.255.255", Some("broadcast"), false),
            ("::ffff:169.254.169.254", Some("cloud metadata"), false),
            ("::ffff:127.0.0.1", Some("loopback"), true),
            // Ordinary public addresses.
            ("100.63.255.255", None, true),
            ("100.128.0.0", None, true),
            ("172.32.0.1", None, true),
            ("8.8.8.8", None, true),
            ("2001:4860:4860::8888", None, true),
        ];
        let strict = AddressPolicy::default();
        let lenient = policy("127.0.0.0/8, 10.0.0.0/8,fd00::/8", false);
        for &(text, kind, allowed) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(strict.refusal(ip), kind, "{text} under the strict policy");
            assert_eq!(lenient.refusal(ip).is_none(), allowed, "{text} with allowed ranges");
        }
    }

    #[test]
    fn urls_are_checked_by_scheme_host_and_written_address() {
        let check = |p: &AddressPolicy, url: &str| p.check_url(&Url::parse(url).unwrap());
        let strict = AddressPolicy::default();
        assert_eq!(
            check(&strict, "https://contoso.topdesk.net").unwrap().as_deref(),
            Some("contoso.topdesk.net")
        );
        assert_eq!(check(&strict, "https://8.8.8.8/").unwrap(), None);
        for (url, needle) in [
            ("http://contoso.topdesk.net", "allow_http"),
            ("ftp://contoso.topdesk.net", "not an https:// URL"),
            ("https://169.254.169.254/latest/meta-data", "cloud metadata"),
            ("https://127.0.0.1:8443", "loopback"),
            ("https://[::1]/", "loopback"),
            ("https://[::ffff:a9fe:a9fe]/", "cloud metadata"),
            ("https://10.0.0.7/", "allow_cidrs = \"10.0.0.7/32\""),
        ] {
            let err = check(&strict, url).unwrap_err().to_string();
            assert!(err.contains("topdesk.url") && err.contains(needle), "{url}: {err}");
        }
        let emulators = policy("127.0.0.0/8", true);
        assert_eq!(check(&emulators, "http://127.0.0.1:4010/").unwrap(), None);
        assert!(check(&emulators, "http://169.254.169.254/").is_err(), "only the allowed range");
    }

    #[test]
    fn every_resolved_address_must_be_allowed() {
        let url = Url::parse("https://topdesk.contoso.com").unwrap();
        let ips = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpAddr>>();
        let strict = AddressPolicy::default();
        assert_eq!(strict.check_resolved(&url, &ips(&["20.1.2.3", "2603:1000::1"])), Ok(()));
        let err = strict.check_resolved(&url, &ips(&["20.1.2.3", "192.168.0.9"])).unwrap_err();
        assert!(err.to_string().contains("resolves to 192.168.0.9, a private address"), "{err}");
        let on_prem = policy("192.168.0.0/16", false);
        assert_eq!(on_prem.check_resolved(&url, &ips(&["20.1.2.3", "192.168.0.9"])), Ok(()));
    }

    #[test]
    fn allowed_ranges_parse_or_are_refused() {
        let nets = AddressPolicy::parse_cidrs("127.0.0.0/8,10.1.2.3, fd00::/8 ,").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.0/8", "10.1.2.3/32", "fd00::/8"]);
        assert_eq!(AddressPolicy::parse_cidrs("10.9.9.9/8").unwrap()[0].to_string(), "10.0.0.0/8");
        for bad in ["10.0.0.0/33", "ten/8", "fd00::/129", "10.0.0.0/8;127.0.0.1"] {
            let err = AddressPolicy::parse_cidrs(bad).unwrap_err();
            assert!(err.to_string().contains("is not an address range"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_and_an_unresolvable_one_says_so() {
        let strict = AddressPolicy::default();
        let err = strict.resolve_and_check(&Url::parse("https://localhost:9/").unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = strict
            .resolve_and_check(&Url::parse("https://no-such-host.invalid/").unwrap())
            .await
            .unwrap_err();
        assert!(err.is_unresolved(), "{err}");
    }
}
