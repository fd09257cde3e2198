//! Microsoft's clouds: where a tenant's tokens, Graph and validation-token signing keys are.
//!
//! A tenant picks its cloud by name from a fixed list ([`Cloud`]); the endpoints are never tenant data, so
//! a tenant's settings cannot point ORB (and its client secret) at another host, nor decide which keys
//! another tenant's notifications are checked against. Free-form endpoints exist only as
//! [`CloudEndpoints`] an operator defines in the installation configuration (for emulators and tests).

use std::fmt;

use url::Url;

use crate::client::Endpoints;

/// One of Microsoft's clouds (national cloud deployments, reference §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cloud {
    /// The global service (`login.microsoftonline.com`, `graph.microsoft.com`).
    Global,
    /// US Government L4 (GCC High: `login.microsoftonline.us`, `graph.microsoft.us`).
    UsGovL4,
    /// US Government L5 / DoD (`login.microsoftonline.us`, `dod-graph.microsoft.us`).
    UsGovDod,
    /// Microsoft Graph China operated by 21Vianet (`login.chinacloudapi.cn`,
    /// `microsoftgraph.chinacloudapi.cn`).
    China,
}

impl Cloud {
    /// Every cloud, in the order settings documents list them.
    pub const ALL: [Self; 4] = [Self::Global, Self::UsGovL4, Self::UsGovDod, Self::China];

    /// The name a tenant's settings use (`graph.cloud`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::UsGovL4 => "usgov-l4",
            Self::UsGovDod => "usgov-dod",
            Self::China => "china",
        }
    }

    /// The cloud of a settings name, if it is one of Microsoft's.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Its endpoints.
    pub fn endpoints(self) -> CloudEndpoints {
        let (login, graph) = match self {
            Self::Global => ("https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0"),
            Self::UsGovL4 => ("https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0"),
            Self::UsGovDod => ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us/v1.0"),
            Self::China => ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0"),
        };
        let url = |s: &str| Url::parse(s).expect("constant URL");
        CloudEndpoints {
            login_base: url(login),
            graph_base: url(graph),
            jwks_url: url(&format!("{login}/common/discovery/keys")),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one cloud's services are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// The identity platform's root (token endpoint: `{login_base}/{tenant}/oauth2/v2.0/token`).
    pub login_base: Url,
    /// Graph's root including the version.
    pub graph_base: Url,
    /// The keys that sign the `validationTokens` of this cloud's change notifications.
    pub jwks_url: Url,
}

impl CloudEndpoints {
    /// Endpoints from one root as the emulator serves them (`{root}` for login, `{root}/v1.0` for Graph,
    /// `{root}/common/discovery/keys` for the keys).
    pub fn from_root(root: &Url) -> Self {
        let root = root.as_str().trim_end_matches('/');
        let url = |s: String| Url::parse(&s).expect("a URL's own text with a path appended is a URL");
        Self {
            login_base: url(root.to_owned()),
            graph_base: url(format!("{root}/v1.0")),
            jwks_url: url(format!("{root}/common/discovery/keys")),
        }
    }

    /// The token and Graph endpoints, for [`crate::GraphClient`].
    pub fn client_endpoints(&self) -> Endpoints {
        Endpoints { login_base: self.login_base.clone(), graph_base: self.graph_base.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloud_has_https_endpoints_and_its_own_keys_under_its_login_host() {
        for cloud in Cloud::ALL {
            let e = cloud.endpoints();
            assert_eq!(Cloud::from_name(cloud.name()), Some(cloud));
            for url in [&e.login_base, &e.graph_base, &e.jwks_url] {
                assert_eq!(url.scheme(), "https", "{cloud}: {url}");
            }
            assert_eq!(e.jwks_url.host(), e.login_base.host(), "{cloud}");
            assert!(e.graph_base.path().ends_with("/v1.0"), "{cloud}");
        }
        assert_eq!(Cloud::Global.endpoints().client_endpoints().graph_base, Endpoints::global().graph_base);
        assert_eq!(Cloud::from_name("emulator"), None);
    }

    #[test]
    fn endpoints_from_an_emulator_root() {
        let e = CloudEndpoints::from_root(&Url::parse("http://127.0.0.1:4000/").unwrap());
        assert_eq!(e.login_base.as_str(), "http://127.0.0.1:4000/");
        assert_eq!(e.graph_base.as_str(), "http://127.0.0.1:4000/v1.0");
        assert_eq!(e.jwks_url.as_str(), "http://127.0.0.1:4000/common/discovery/keys");
    }
}
