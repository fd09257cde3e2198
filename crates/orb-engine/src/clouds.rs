//! The clouds tenants may use, and one validation-token key cache per cloud.
//!
//! A tenant's settings name a cloud (`graph.cloud`): one of Microsoft's ([`orb_graph::Cloud`]) or `custom`,
//! the one free-form cloud the operator may define in the installation configuration
//! (`graph.custom_cloud_root`, for emulators and tests). Endpoints are never tenant data: a tenant cannot
//! point ORB, with its client secret, at another host. The JWKS that checks a notification's
//! `validationTokens` belongs to the tenant's cloud and is shared only by tenants of that cloud, so no
//! tenant's settings decide another tenant's trust.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orb_core::Clock;
use orb_graph::{Cloud, CloudEndpoints, JwksCache, JwksCacheOptions};
use url::Url;

/// The name of the operator-defined cloud in tenant settings.
pub const CUSTOM_CLOUD: &str = "custom";

/// The clouds of an installation and their key caches.
pub struct Clouds {
    custom: Option<CloudEndpoints>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    caches: Mutex<BTreeMap<String, Arc<JwksCache>>>,
}

impl std::fmt::Debug for Clouds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clouds").field("custom", &self.custom).finish_non_exhaustive()
    }
}

impl Clouds {
    /// Microsoft's clouds, plus `custom` at `custom_root` when the operator defined it.
    pub fn new(custom_root: Option<&Url>, clock: Arc<dyn Clock>) -> Self {
        // Bounded like every other client: a JWKS endpoint that does not answer cannot hold a worker, and
        // a redirect is not followed (the keys are where the cloud says).
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            custom: custom_root.map(CloudEndpoints::from_root),
            clock,
            http,
            caches: Mutex::new(BTreeMap::new()),
        }
    }

    /// The names a tenant may give as `graph.cloud`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Cloud::ALL.iter().map(|c| c.name()).collect();
        if self.custom.is_some() {
            names.push(CUSTOM_CLOUD);
        }
        names
    }

    /// The endpoints of the cloud `name`, or why there is none.
    pub fn endpoints(&self, name: &str) -> Result<CloudEndpoints, String> {
        if let Some(cloud) = Cloud::from_name(name) {
            return Ok(cloud.endpoints());
        }
        match (&self.custom, name == CUSTOM_CLOUD) {
            (Some(custom), true) => Ok(custom.clone()),
            (None, true) => Err("this installation defines no custom cloud (the operator's \
                                 graph.custom_cloud_root): use one of Microsoft's clouds"
                .to_owned()),
            _ => Err(format!("{name:?} is not a cloud: use one of {}", self.names().join(", "))),
        }
    }

    /// The key cache of the cloud `name` (made on first use, then shared by its tenants).
    pub fn jwks(&self, name: &str) -> Result<Arc<JwksCache>, String> {
        let endpoints = self.endpoints(name)?;
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = caches.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(JwksCache::new(
                self.http.clone(),
                endpoints.jwks_url,
                self.clock.clone(),
                JwksCacheOptions::default(),
            ))
        });
        Ok(cache.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clouds(custom: Option<&str>) -> Clouds {
        let clock: Arc<dyn Clock> = Arc::new(orb_core::FixedClock::new(chrono::Utc::now()));
        Clouds::new(custom.map(|c| Url::parse(c).unwrap()).as_ref(), clock)
    }

    #[test]
    fn each_cloud_has_its_own_key_cache_and_tenants_of_one_cloud_share_it() {
        let c = clouds(Some("http://127.0.0.1:9/"));
        let global = c.jwks("global").unwrap();
        assert!(Arc::ptr_eq(&global, &c.jwks("global").unwrap()), "one cache per cloud");
        let china = c.jwks("china").unwrap();
        let custom = c.jwks("custom").unwrap();
        assert!(!Arc::ptr_eq(&global, &china) && !Arc::ptr_eq(&global, &custom));
        assert_eq!(global.url().as_str(), "https://login.microsoftonline.com/common/discovery/keys");
        assert_eq!(china.url().as_str(), "https://login.chinacloudapi.cn/common/discovery/keys");
        assert_eq!(custom.url().as_str(), "http://127.0.0.1:9/common/discovery/keys");
    }

    #[test]
    fn unknown_clouds_and_an_undefined_custom_cloud_are_refused() {
        let c = clouds(None);
        assert!(c.endpoints("custom").unwrap_err().contains("graph.custom_cloud_root"));
        let err = c.endpoints("https://evil.example").unwrap_err();
        assert!(err.contains("global, usgov-l4, usgov-dod, china"), "{err}");
        assert_eq!(c.names(), ["global", "usgov-l4", "usgov-dod", "china"]);
    }
}
