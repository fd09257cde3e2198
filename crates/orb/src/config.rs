//! The binary's typed configuration, loaded and validated once at start-up and passed down explicitly.
//!
//! Sources, each overriding the one before:
//! 1. built-in defaults;
//! 2. a TOML file: the one named by `--config`, which must exist, or else `orb.toml` in the working
//!    directory when it is present;
//! 3. environment variables `ORB__SECTION__KEY` (e.g. `ORB__DATABASE__URL`; section and key are
//!    case-insensitive).
//!
//! For every text key `k`, `k_file` (in the file) or `ORB__SECTION__K_FILE` (in the environment) names a
//! file whose content, without trailing whitespace, is the value: the way to pass secrets such as a
//! PostgreSQL password. Setting both `k` and `k_file` in one source is an error; a later source overrides
//! either. Relative paths (in `k_file`, `data.dir`, SQLite URLs) are relative to the working directory.
//!
//! Unknown keys, in the file or as `ORB__` variables, are errors that name the key. Empty text values are
//! rejected. The master key is not part of this configuration: it comes from `ORB_MASTER_KEY_FILE` /
//! `ORB_MASTER_KEY` (see `orb_crypto::MasterKey::from_env_or_file`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

/// The file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "orb.toml";
/// Prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "ORB__";
/// Default for `database.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Default for `data.dir`.
pub const DEFAULT_DATA_DIR: &str = "./orb-data";
/// Default for `log.level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default port of `server.listen`.
pub const DEFAULT_PORT: u16 = 8080;
/// Upper bound for `database.max_connections`.
const MAX_CONNECTIONS_LIMIT: u32 = 1000;

/// ORB's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[data]`
    pub data: DataConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[server]`
    pub server: ServerConfig,
    /// `[schedule]`
    pub schedule: ScheduleConfig,
    /// `[graph]`
    pub graph: GraphInstallConfig,
    /// `[topdesk]`
    pub topdesk: TopdeskInstallConfig,
    /// `[ews]`
    pub ews: EwsInstallConfig,
    /// `[observability]`
    pub observability: ObservabilityConfig,
    /// `[portal]`
    pub portal: PortalInstallConfig,
}

/// `[portal]`: the admin portal. By default it is served on `server.listen` beside the webhooks; `listen`
/// moves it to a listener of its own (keep it off the public webhook address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalInstallConfig {
    /// `listen`: a separate address for the portal (and its API); unset: `server.listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// `allow_cidrs`: addresses the portal answers at all (comma-separated CIDR ranges); empty: anywhere.
    /// Tenants narrow it further in their own settings.
    pub allow_cidrs: Vec<String>,
    /// `trusted_proxies`: reverse proxies whose `X-Forwarded-For` is believed (comma-separated CIDR
    /// ranges), for the portal and the webhooks; empty: the socket's address is the client's.
    pub trusted_proxies: Vec<String>,
    /// `origin`: the portal's origin as browsers see it (e.g. `https://orb.example.com`), checked against
    /// `Origin` on every state-changing request; unset: `https://` + the request's `Host`.
    pub origin: Option<String>,
    /// `idle_minutes`: a session unused this long ends (5–1440, default 30).
    pub idle_minutes: u32,
    /// `absolute_hours`: a session ends this long after login (1–168, default 12).
    pub absolute_hours: u32,
}

impl Default for PortalInstallConfig {
    fn default() -> Self {
        Self {
            listen: None,
            allow_cidrs: Vec::new(),
            trusted_proxies: Vec::new(),
            origin: None,
            idle_minutes: 30,
            absolute_hours: 12,
        }
    }
}

impl PortalInstallConfig {
    /// The portal's configuration; `secure_cookies` is false only for `orb demo` on a loopback address.
    pub fn portal_config(&self, secure_cookies: bool) -> orb_web::portal::PortalConfig {
        orb_web::portal::PortalConfig {
            secure_cookies,
            origin: self.origin.clone(),
            trusted_proxies: self.trusted_proxies(),
            allow: orb_auth::IpAllowList::parse(&self.allow_cidrs).unwrap_or_default(),
            idle_timeout: chrono::Duration::minutes(self.idle_minutes.into()),
            absolute_timeout: chrono::Duration::hours(self.absolute_hours.into()),
            ..orb_web::portal::PortalConfig::default()
        }
    }

    /// The trusted proxies (checked when the configuration was read).
    pub fn trusted_proxies(&self) -> orb_auth::IpAllowList {
        orb_auth::IpAllowList::parse(&self.trusted_proxies).unwrap_or_default()
    }
}

/// A CA bundle named by a `ca_file` key, as read: its path, its PEM text and its certificates (DER).
type CaBundle = (PathBuf, Vec<u8>, Vec<Vec<u8>>);

/// A comma- or space-separated list of CIDR ranges, checked.
fn cidr_list(text: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> =
        text.split([',', ' ', '\n']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
    orb_auth::IpAllowList::parse(&list).map_err(|e| e.to_string())?;
    Ok(list)
}

/// `[observability]`: the operator listener (Prometheus `/metrics`, `/healthz`, `/readyz`), separate from
/// the public webhook listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservabilityConfig {
    /// `listen`: the socket address of the operator listener, e.g. `127.0.0.1:9090`; unset (the default):
    /// no operator listener and no metrics are recorded. `orb serve --metrics-listen` overrides it. It
    /// must not be `server.listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// `otlp_endpoint`: an OpenTelemetry collector's OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`);
    /// spans are exported to `{otlp_endpoint}/v1/traces`. Unset (the default): no trace export.
    pub otlp_endpoint: Option<String>,
}

/// `[topdesk]`: the installation's rules for requests to tenants' TOPdesk instances (a tenant's TOPdesk URL
/// is tenant data, checked against these when saved and when its runtime is built).
#[derive(Debug, Clone, Default)]
pub struct TopdeskInstallConfig {
    /// `allow_cidrs` (comma-separated ranges, IPv4 and IPv6) and `allow_http` (`true`/`false`, default
    /// `false`): the address policy. By default a TOPdesk URL must be https and must not be or resolve to
    /// a loopback, private, link-local, unspecified, CGNAT or metadata address; the listed ranges are
    /// allowed anyway (an on-premises TOPdesk), and `allow_http` accepts http:// (emulators, tests).
    pub addresses: orb_topdesk::AddressPolicy,
    /// `ca_file`: a PEM file of one or more CA certificates trusted for TOPdesk besides the built-in roots
    /// (an on-premises TOPdesk with the organisation's own CA); never `SSL_CERT_FILE`.
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file` (DER), checked at load.
    pub ca_roots: Vec<Vec<u8>>,
}

impl TopdeskInstallConfig {
    /// The rules as `build_runtime` and the save-time check take them.
    pub fn outbound(&self) -> orb_engine::settings::TopdeskOutbound {
        orb_engine::settings::TopdeskOutbound {
            addresses: self.addresses.clone(),
            extra_roots: self.ca_roots.clone(),
        }
    }
}

/// `[ews]`: the installation's rules for requests to tenants' Exchange Servers (EWS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EwsInstallConfig {
    /// `allow_http` (`true`/`false`, default `false`): let EWS credentials cross plain `http://` (the EWS
    /// emulator and tests only; an Exchange Server is always reached over https).
    pub allow_http: bool,
    /// `ca_file`: a PEM file of CA certificates trusted for Exchange Servers besides the built-in roots (an
    /// on-premises Exchange whose certificate the organisation's own CA issued).
    pub ca_file: Option<PathBuf>,
    /// The content of `ca_file` (PEM), checked at load.
    pub ca_pem: Option<Vec<u8>>,
}

impl EwsInstallConfig {
    /// These rules applied to the clients' tuning.
    pub fn apply(&self, tuning: &mut orb_engine::settings::ClientTuning) {
        tuning.ews_allow_plain_http |= self.allow_http;
        if let Some(pem) = &self.ca_pem {
            tuning.ews_extra_roots_pem = vec![pem.clone()];
        }
    }
}

/// `[graph]`: installation-wide Graph settings.
#[derive(Debug, Clone, Default)]
pub struct GraphInstallConfig {
    /// `custom_cloud_root`: the root of a Graph-compatible service (an emulator, a test double) that tenants
    /// may name as `graph.cloud = "custom"` (token endpoint at the root, Graph under `/v1.0`, keys under
    /// `/common/discovery/keys`). Endpoints are installation configuration, never tenant settings.
    pub custom_cloud_root: Option<url::Url>,
}

/// `[server]`: what `orb serve` listens on and how it is reached.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `listen`: the socket address of the web server (webhooks, health); default `127.0.0.1:8080`.
    pub listen: std::net::SocketAddr,
    /// `public_url`: the HTTPS base URL under which Graph reaches this server (`{public_url}/hooks/graph/…`);
    /// without it no Graph subscription can be made.
    pub public_url: Option<String>,
    /// `portal_url`: the admin portal's base URL for links in mails; default `public_url`, else
    /// `http://{listen}`.
    pub portal_url: String,
    /// `workers`: queue workers (1–64, default 4).
    pub workers: u32,
    /// `instance`: this instance's name in job and scheduler leases; default `{hostname}-{pid}`.
    pub instance: Option<String>,
    /// `job_lease_seconds`: how long a worker's claim on a job lasts without a heartbeat (10–3600, default
    /// 60): after an instance dies, its jobs (and their rooms' lanes) wait this long for another instance.
    pub job_lease_seconds: u32,
    /// `header_read_timeout_seconds`: a client must send a request's line and headers within this many
    /// seconds (1–300, default 10), else the connection is closed; idle keep-alive connections too.
    pub header_read_timeout_seconds: u32,
    /// `request_timeout_seconds`: reading a request's body and answering it must take at most this many
    /// seconds (1–600, default 30), else `408` and the connection is closed.
    pub request_timeout_seconds: u32,
    /// `max_connections`: connections served at once on `listen` (1–100000, default 1024); more wait to
    /// be accepted.
    pub max_connections: u32,
    /// `hooks_per_minute_per_address`: webhook requests one source address may send per minute, all
    /// tenants together (1–1000000, default 6000); more are answered `429`.
    pub hooks_per_minute_per_address: u32,
    /// `hooks_per_minute_per_tenant`: webhook requests to one tenant's URLs per minute, all addresses
    /// together (1–1000000, default 12000); keep it above the per-address limit so one flooding address
    /// cannot use up a tenant's quota.
    pub hooks_per_minute_per_tenant: u32,
}

impl ServerConfig {
    /// The public listener's limits.
    pub fn listener_limits(&self) -> orb_web::ListenerLimits {
        orb_web::ListenerLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_seconds.into()),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds.into()),
            max_connections: self.max_connections,
        }
    }

    /// The webhook rate limits.
    pub fn rate_limits(&self) -> orb_web::RateLimits {
        let per_minute = |n: u32| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
        orb_web::RateLimits {
            per_address_per_minute: per_minute(self.hooks_per_minute_per_address),
            per_tenant_per_minute: per_minute(self.hooks_per_minute_per_tenant),
        }
    }
}

/// `[schedule]`: the beats of the periodic work, in seconds. `orb serve` re-reads this section (file and
/// environment) at every reload (`reload_seconds`): a changed beat applies at once, no restart needed. A
/// changed `reload_seconds` itself takes a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// `near_poll_seconds`: TOPdesk near-window poll (default 10).
    pub near_poll_seconds: u32,
    /// `horizon_poll_seconds`: TOPdesk whole-horizon poll (default 300).
    pub horizon_poll_seconds: u32,
    /// `subscriptions_seconds`: Graph subscription upkeep (default 300).
    pub subscriptions_seconds: u32,
    /// `reconcile_seconds`: reconciliation sweep of every room (default 300, so a missed change or a failed
    /// write heals within minutes). Each sweep of a room costs one paged `calendarView` of the room mailbox
    /// (50 events a page) and one paged TOPdesk reservation list (500 a page), plus by-id reads only where
    /// the listings cannot answer (a record's item not listed, an owed record's items, a new or changed
    /// reservation read in full).
    pub reconcile_seconds: u32,
    /// `reload_seconds`: how often tenants, rooms and settings are re-read (default 10).
    pub reload_seconds: u32,
    /// `purge_seconds`: retention purge of every tenant (60 to 604800, default 3600): deletes what outlived
    /// the tenant's `[retention]` periods (see docs/PRIVACY.md), audited with the counts.
    pub purge_seconds: u32,
}

/// `[database]`: where ORB keeps its state.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `url`: `sqlite:` or `postgres:`/`postgresql:`; default `sqlite://<data.dir>/orb.db`.
    pub url: DatabaseUrl,
    /// `max_connections`: size of the connection pool (1–1000, default 8).
    pub max_connections: u32,
}

/// `[data]`: local files.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// `dir`: where ORB keeps local files (the default SQLite database among them); default `./orb-data`.
    pub dir: PathBuf,
}

/// `[log]`: logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `level`: a `tracing` filter such as `info` or `info,orb=debug` (default `info`).
    pub level: String,
    /// `format`: `text` or `json`; unset: JSON for `orb serve` (a service's log goes to a collector),
    /// text for every other command (a person reads it).
    pub format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which store back-end the database URL selects.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite database file (or `:memory:`).
    Sqlite {
        /// The file's path as written in the URL (query options removed).
        path: PathBuf,
    },
    /// A PostgreSQL server. The URL may hold a password, so it is kept secret and never printed.
    Postgres {
        /// The full URL as given.
        url: SecretString,
    },
}

/// A validated database URL. `Debug` shows it with any password and query removed
/// ([`DatabaseUrl::redacted`]).
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
}

impl DatabaseUrl {
    /// Parses a URL, accepting only the schemes ORB has a store for.
    pub fn parse(url: &str) -> Result<Self, DatabaseUrlError> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(DatabaseUrlError::Scheme { scheme: String::new() });
        };
        let backend = match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.split_once('?').map_or(path, |(p, _)| p);
                if path.is_empty() {
                    return Err(DatabaseUrlError::NoSqlitePath);
                }
                Backend::Sqlite { path: PathBuf::from(path) }
            }
            "postgres" | "postgresql" => Backend::Postgres { url: SecretString::from(url) },
            _ => return Err(DatabaseUrlError::Scheme { scheme: scheme.to_owned() }),
        };
        Ok(Self { backend })
    }

    /// The SQLite database at `path`.
    pub fn sqlite(path: &Path) -> Self {
        Self { backend: Backend::Sqlite { path: path.to_owned() } }
    }

    /// The back-end this URL selects.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The URL for logs and messages: a password is replaced by `***` and any query (which may carry a
    /// password too) is dropped.
    pub fn redacted(&self) -> String {
        match &self.backend {
            Backend::Sqlite { path } => format!("sqlite://{}", path.display()),
            Backend::Postgres { url } => redact_url(url.expose_secret()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

/// Why a database URL was refused (without the URL, which may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DatabaseUrlError {
    /// The scheme is not one ORB has a store for.
    #[error(
        "the scheme {scheme:?} is not supported: use a sqlite: URL (e.g. sqlite://./orb-data/orb.db) or a \
         postgres:/postgresql: URL (e.g. postgres://orb@db.example.com/orb)"
    )]
    Scheme {
        /// The scheme as written (empty when there is none).
        scheme: String,
    },
    /// A `sqlite:` URL without a file path.
    #[error("the sqlite: URL has no file path: write e.g. sqlite://./orb-data/orb.db")]
    NoSqlitePath,
}

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[REDACTED]".to_owned();
    };
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let password = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{password}@{host}")
        }
        None => format!("{scheme}://{rest}"),
    }
}

/// Why the configuration could not be loaded. Every message names the key and where it was set, and says
/// what to change; none shows a secret value.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file named by `--config` does not exist.
    #[error(
        "configuration file {path:?} does not exist: check the --config path, or leave --config out to \
         use ./{DEFAULT_CONFIG_FILE} when present"
    )]
    MissingFile {
        /// The path as given.
        path: PathBuf,
    },
    /// The configuration file exists but cannot be read.
    #[error("cannot read configuration file {path:?}: check that ORB may read it")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not TOML.
    #[error("configuration file {path:?} is not valid TOML: fix the syntax error described in the cause")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: toml::de::Error,
    },
    /// A key in the file that ORB does not know.
    #[error(
        "unknown configuration key {key:?} in {}: correct or remove it (known keys: {})",
        path.display(),
        known_keys()
    )]
    UnknownFileKey {
        /// The full dotted key, e.g. `database.urll`.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// An `ORB__` environment variable that does not map to a known key.
    #[error(
        "unknown configuration key {var} (environment): correct or unset it; variables have the form \
         ORB__SECTION__KEY for the keys {}",
        known_keys()
    )]
    UnknownEnvKey {
        /// The variable's name.
        var: String,
    },
    /// A value of the wrong TOML type.
    #[error("{key} {origin} must be {expected}")]
    WrongType {
        /// The dotted key.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// What it must be.
        expected: &'static str,
    },
    /// Both `k` and `k_file` in one source.
    #[error("both {key} and {key}_file are set {origin}: set only one of them")]
    ValueAndFile {
        /// The dotted key (without `_file`).
        key: String,
        /// The source that sets both.
        origin: Origin,
    },
    /// The same key set twice in the environment (variables differing only in case).
    #[error("{key} is set twice in the environment, by {first} and {second}: unset one of them")]
    DuplicateEnvKey {
        /// The dotted key.
        key: String,
        /// One variable.
        first: String,
        /// The other.
        second: String,
    },
    /// The file named by a `k_file` key cannot be read.
    #[error("cannot read {path:?}, named by {key}_file {origin}: check the path and that ORB may read it")]
    ReadValueFile {
        /// The dotted key (without `_file`).
        key: String,
        /// The file.
        path: PathBuf,
        /// Where `k_file` was set.
        origin: Origin,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value that does not pass validation.
    #[error("invalid {key} {origin}: {reason}")]
    InvalidValue {
        /// The dotted key.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The operator listener's address is the public listener's.
    #[error(
        "the operator listener {addr} ({via}) is server.listen: give it another address or port; it serves \
         /metrics and /readyz, which must not be reachable where Graph and TOPdesk post"
    )]
    OperatorListenerIsPublic {
        /// The address.
        addr: std::net::SocketAddr,
        /// Where it was set (`observability.listen` or `--metrics-listen`).
        via: &'static str,
    },
    /// A database URL that ORB cannot use.
    #[error("invalid database.url {origin}: {problem}")]
    DatabaseUrl {
        /// Where it was set.
        origin: Origin,
        /// What is wrong (shown in the message, not as a cause).
        problem: DatabaseUrlError,
    },
}

/// Where a configuration value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A file named by a `k_file` key.
    ValueFile {
        /// The file holding the value.
        path: PathBuf,
        /// The `k_file` key (dotted, or the variable name) that named it.
        named_by: String,
        /// Where `k_file` was set.
        via: Box<Origin>,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "in {}", path.display()),
            Self::Env(var) => write!(f, "in environment variable {var}"),
            Self::ValueFile { path, named_by, via } => {
                write!(f, "in file {} (named by {named_by} {via})", path.display())
            }
        }
    }
}

/// Which configuration file to read.
#[derive(Debug, Clone, Copy)]
pub enum ConfigFile<'a> {
    /// Named explicitly (`--config`): it must exist.
    Explicit(&'a Path),
    /// The default location: read when it exists, skipped otherwise.
    IfPresent(&'a Path),
}

/// The kind of value a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Count,
    Flag,
}

/// Every known key: (section, key, kind).
const KEYS: &[(&str, &str, Kind)] = &[
    ("database", "url", Kind::Text),
    ("database", "max_connections", Kind::Count),
    ("data", "dir", Kind::Text),
    ("log", "level", Kind::Text),
    ("log", "format", Kind::Text),
    ("server", "listen", Kind::Text),
    ("server", "public_url", Kind::Text),
    ("server", "portal_url", Kind::Text),
    ("server", "workers", Kind::Count),
    ("server", "instance", Kind::Text),
    ("server", "job_lease_seconds", Kind::Count),
    ("server", "header_read_timeout_seconds", Kind::Count),
    ("server", "request_timeout_seconds", Kind::Count),
    ("server", "max_connections", Kind::Count),
    ("server", "hooks_per_minute_per_address", Kind::Count),
    ("server", "hooks_per_minute_per_tenant", Kind::Count),
    ("schedule", "near_poll_seconds", Kind::Count),
    ("schedule", "horizon_poll_seconds", Kind::Count),
    ("schedule", "subscriptions_seconds", Kind::Count),
    ("schedule", "reconcile_seconds", Kind::Count),
    ("schedule", "reload_seconds", Kind::Count),
    ("graph", "custom_cloud_root", Kind::Text),
    ("topdesk", "allow_cidrs", Kind::Text),
    ("topdesk", "allow_http", Kind::Flag),
    ("topdesk", "ca_file", Kind::Text),
    ("ews", "allow_http", Kind::Flag),
    ("ews", "ca_file", Kind::Text),
    ("schedule", "purge_seconds", Kind::Count),
    ("observability", "listen", Kind::Text),
    ("observability", "otlp_endpoint", Kind::Text),
    ("portal", "listen", Kind::Text),
    ("portal", "allow_cidrs", Kind::Text),
    ("portal", "trusted_proxies", Kind::Text),
    ("portal", "origin", Kind::Text),
    ("portal", "idle_minutes", Kind::Count),
    ("portal", "absolute_hours", Kind::Count),
];

fn known_keys() -> String {
    KEYS.iter().map(|(s, k, _)| format!("{s}.{k}")).collect::<Vec<_>>().join(", ")
}

/// Looks up `section.key`, also as `key_file` for text keys. Returns the dotted name of the base key and
/// whether the `_file` form was used.
fn lookup(section: &str, key: &str) -> Option<(&'static str, &'static str, Kind, bool)> {
    let find = |k: &str| KEYS.iter().find(|(s, name, _)| *s == section && *name == k);
    if let Some(&(s, k, kind)) = find(key) {
        return Some((s, k, kind, false));
    }
    let base = key.strip_suffix("_file")?;
    match find(base) {
        Some(&(s, k, Kind::Text)) => Some((s, k, Kind::Text, true)),
        _ => None,
    }
}

/// A value as a source gives it, before typing.
#[derive(Debug)]
enum Raw {
    Text(String),
    Integer(i64),
    Bool(bool),
    FromFile(PathBuf),
}

#[derive(Debug)]
struct Setting {
    raw: Raw,
    origin: Origin,
    /// For the environment: the variable's name (to report duplicates).
    name: String,
}

/// One source's settings, keyed by dotted key (`database.url`).
type Layer = BTreeMap<String, Setting>;

fn insert(layer: &mut Layer, key: String, setting: Setting) -> Result<(), ConfigError> {
    if let Some(earlier) = layer.get(&key) {
        let one_is_file = matches!(earlier.raw, Raw::FromFile(_)) != matches!(setting.raw, Raw::FromFile(_));
        return Err(match setting.origin {
            Origin::Env(_) if !one_is_file => {
                ConfigError::DuplicateEnvKey { key, first: earlier.name.clone(), second: setting.name }
            }
            origin => ConfigError::ValueAndFile { key, origin },
        });
    }
    layer.insert(key, setting);
    Ok(())
}

impl Config {
    /// Loads the configuration: `file` is the `--config` path (must exist) or `None` for `./orb.toml`
    /// when present; `env` is the environment (pass [`process_env`] in production).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = match file {
            Some(path) => ConfigFile::Explicit(path),
            None => ConfigFile::IfPresent(Path::new(DEFAULT_CONFIG_FILE)),
        };
        Self::load_with(file, env)
    }

    /// Like [`Config::load`] with the file choice spelt out.
    pub fn load_with(
        file: ConfigFile<'_>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file_layer = match file {
            ConfigFile::Explicit(path) => {
                if !path.exists() {
                    return Err(ConfigError::MissingFile { path: path.to_owned() });
                }
                file_layer(path)?
            }
            ConfigFile::IfPresent(path) if path.exists() => file_layer(path)?,
            ConfigFile::IfPresent(_) => Layer::new(),
        };
        let env_layer = env_layer(env)?;
        let mut merged = file_layer;
        merged.extend(env_layer);
        let mut values = BTreeMap::new();
        for (key, setting) in merged {
            values.insert(key.clone(), resolve(&key, setting)?);
        }
        Self::build(values)
    }

    fn build(mut values: BTreeMap<String, (Raw, Origin)>) -> Result<Self, ConfigError> {
        let mut take_text = |key: &str| -> Result<Option<(String, Origin)>, ConfigError> {
            match values.remove(key) {
                None => Ok(None),
                Some((Raw::Text(text), origin)) if text.trim().is_empty() => Err(ConfigError::InvalidValue {
                    key: key.to_owned(),
                    origin,
                    reason: "it is empty: set a value or remove the key".to_owned(),
                }),
                Some((Raw::Text(text), origin)) => Ok(Some((text, origin))),
                Some((_, origin)) => {
                    Err(ConfigError::WrongType { key: key.to_owned(), origin, expected: "a string" })
                }
            }
        };

        let dir = take_text("data.dir")?.map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |(d, _)| d.into());
        let url = match take_text("database.url")? {
            Some((url, origin)) => DatabaseUrl::parse(url.trim())
                .map_err(|problem| ConfigError::DatabaseUrl { origin, problem })?,
            None => DatabaseUrl::sqlite(&dir.join("orb.db")),
        };
        let level = match take_text("log.level")? {
            Some((level, origin)) => {
                let level = level.trim().to_owned();
                tracing_subscriber::EnvFilter::builder().parse(&level).map_err(|e| {
                    ConfigError::InvalidValue {
                        key: "log.level".to_owned(),
                        origin,
                        reason: format!(
                            "{e}; use a level (error, warn, info, debug, trace) or a filter such as \
                             info,orb=debug"
                        ),
                    }
                })?;
                level
            }
            None => DEFAULT_LOG_LEVEL.to_owned(),
        };
        let format = match take_text("log.format")? {
            None => None,
            Some((format, origin)) => match format.trim().to_ascii_lowercase().as_str() {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => {
                    return Err(ConfigError::InvalidValue {
                        key: "log.format".to_owned(),
                        origin,
                        reason: format!("{format:?} is not a log format: use \"text\" or \"json\""),
                    });
                }
            },
        };
        let listen = match take_text("server.listen")? {
            None => std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            Some((text, origin)) => text.trim().parse().map_err(|_| ConfigError::InvalidValue {
                key: "server.listen".to_owned(),
                origin,
                reason: format!("{text:?} is not a socket address: write e.g. 0.0.0.0:8080 or [::]:8080"),
            })?,
        };
        let metrics_listen = match take_text("observability.listen")? {
            None => None,
            Some((text, origin)) => {
                let addr: std::net::SocketAddr =
                    text.trim().parse().map_err(|_| ConfigError::InvalidValue {
                        key: "observability.listen".to_owned(),
                        origin: origin.clone(),
                        reason: format!("{text:?} is not a socket address: write e.g. 127.0.0.1:9090"),
                    })?;
                check_operator_listen(addr, listen, "observability.listen")?;
                Some(addr)
            }
        };
        let otlp_endpoint = match take_text("observability.otlp_endpoint")? {
            None => None,
            Some((text, origin)) => {
                let text = text.trim().trim_end_matches('/').to_owned();
                let ok = url::Url::parse(&text).is_ok_and(|u| {
                    matches!(u.scheme(), "https" | "http") && u.query().is_none() && u.host().is_some()
                });
                if !ok {
                    return Err(ConfigError::InvalidValue {
                        key: "observability.otlp_endpoint".to_owned(),
                        origin,
                        reason: format!(
                            "{text:?} is not an OTLP/HTTP base URL: write e.g. http://127.0.0.1:4318 (spans go to \
                             /v1/traces under it)"
                        ),
                    });
                }
                Some(text)
            }
        };
        let portal_listen = match take_text("portal.listen")? {
            None => None,
            Some((text, origin)) => {
                let addr: std::net::SocketAddr =
                    text.trim().parse().map_err(|_| ConfigError::InvalidValue {
                        key: "portal.listen".to_owned(),
                        origin: origin.clone(),
                        reason: format!("{text:?} is not a socket address: write e.g. 127.0.0.1:8443"),
                    })?;
                Some(addr)
            }
        };
        let mut portal_cidrs = |key: &str| -> Result<Vec<String>, ConfigError> {
            match take_text(key)? {
                None => Ok(Vec::new()),
                Some((text, origin)) => cidr_list(&text).map_err(|reason| ConfigError::InvalidValue {
                    key: key.to_owned(),
                    origin,
                    reason: format!(
                        "{reason}; write comma-separated CIDR ranges, e.g. 10.0.0.0/8, 192.0.2.7"
                    ),
                }),
            }
        };
        let portal_allow = portal_cidrs("portal.allow_cidrs")?;
        let portal_proxies = portal_cidrs("portal.trusted_proxies")?;
        let portal_origin = match take_text("portal.origin")? {
            None => None,
            Some((text, origin)) => {
                let text = text.trim().trim_end_matches('/').to_owned();
                let ok = url::Url::parse(&text).is_ok_and(|u| {
                    matches!(u.scheme(), "https" | "http") && u.path() == "/" && u.query().is_none()
                });
                if !ok {
                    return Err(ConfigError::InvalidValue {
                        key: "portal.origin".to_owned(),
                        origin,
                        reason: format!("{text:?} is not an origin: write e.g. https://orb.example.com"),
                    });
                }
                Some(text)
            }
        };
        let mut base_url = |key: &str| -> Result<Option<String>, ConfigError> {
            let Some((text, origin)) = take_text(key)? else { return Ok(None) };
            let text = text.trim().trim_end_matches('/').to_owned();
            let ok = (text.starts_with("https://") || text.starts_with("http://"))
                && !text.contains('?')
                && !text.contains('#');
            if !ok {
                return Err(ConfigError::InvalidValue {
                    key: key.to_owned(),
                    origin,
                    reason: format!("{text:?} is not a base URL: write e.g. https://orb.example.com"),
                });
            }
            if key == "server.public_url"
                && text.starts_with("http://")
                && !url::Url::parse(&text).is_ok_and(|u| is_loopback_host(&u))
            {
                return Err(ConfigError::InvalidValue {
                    key: key.to_owned(),
                    origin,
                    reason: format!(
                        "{text:?}: Graph delivers notifications only to https:// URLs; use https (http \
                         only on 127.0.0.1, [::1] or localhost, for tests)"
                    ),
                });
            }
            Ok(Some(text))
        };
        let public_url = base_url("server.public_url")?;
        let portal_url = base_url("server.portal_url")?
            .or_else(|| public_url.clone())
            .unwrap_or_else(|| format!("http://{listen}"));
        let instance = take_text("server.instance")?.map(|(t, _)| t.trim().to_owned());
        let custom_cloud_root = match take_text("graph.custom_cloud_root")? {
            None => None,
            Some((text, origin)) => {
                Some(url::Url::parse(text.trim()).map_err(|e| ConfigError::InvalidValue {
                    key: "graph.custom_cloud_root".to_owned(),
                    origin,
                    reason: format!("{text:?} is not a URL ({e}): write e.g. http://127.0.0.1:4000"),
                })?)
            }
        };
        let allow_cidrs = match take_text("topdesk.allow_cidrs")? {
            None => Vec::new(),
            Some((text, origin)) => {
                orb_topdesk::AddressPolicy::parse_cidrs(&text).map_err(|e| ConfigError::InvalidValue {
                    key: "topdesk.allow_cidrs".to_owned(),
                    origin,
                    reason: e.to_string(),
                })?
            }
        };
        let mut ca_bundle = |key: &str, server: &str| -> Result<Option<CaBundle>, ConfigError> {
            let Some((text, origin)) = take_text(key)? else { return Ok(None) };
            let path = PathBuf::from(text.trim());
            let invalid = |reason: String| ConfigError::InvalidValue {
                key: key.to_owned(),
                origin: origin.clone(),
                reason,
            };
            let pem = std::fs::read(&path).map_err(|e| {
                invalid(format!(
                    "cannot read {} ({e}): check the path and that ORB may read it",
                    path.display()
                ))
            })?;
            let roots = orb_topdesk::tls::parse_ca_bundle(&pem).map_err(|e| {
                invalid(format!(
                    "{} is not a PEM file of CA certificates: {e}; give the CA certificate(s) that issued \
                     the {server} server's certificate",
                    path.display()
                ))
            })?;
            Ok(Some((path, pem, roots)))
        };
        let (ca_file, ca_roots) = match ca_bundle("topdesk.ca_file", "TOPdesk")? {
            None => (None, Vec::new()),
            Some((path, _, roots)) => (Some(path), roots),
        };
        let (ews_ca_file, ews_ca_pem) = match ca_bundle("ews.ca_file", "Exchange")? {
            None => (None, None),
            Some((path, pem, _)) => (Some(path), Some(pem)),
        };
        let mut flag = |key: &str| -> Result<bool, ConfigError> {
            match values.remove(key) {
                None => Ok(false),
                Some((Raw::Bool(b), _)) => Ok(b),
                Some((Raw::Text(text), origin)) => match text.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(ConfigError::InvalidValue {
                        key: key.to_owned(),
                        origin,
                        reason: format!("{text:?} is not allowed: use true or false"),
                    }),
                },
                Some((_, origin)) => {
                    Err(ConfigError::WrongType { key: key.to_owned(), origin, expected: "true or false" })
                }
            }
        };
        let allow_http = flag("topdesk.allow_http")?;
        let ews = EwsInstallConfig {
            allow_http: flag("ews.allow_http")?,
            ca_file: ews_ca_file,
            ca_pem: ews_ca_pem,
        };
        let topdesk = TopdeskInstallConfig {
            addresses: orb_topdesk::AddressPolicy::new(allow_cidrs, allow_http),
            ca_file,
            ca_roots,
        };
        let mut counted_from = |key: &str, default: u32, min: u32, max: u32| -> Result<u32, ConfigError> {
            match values.remove(key) {
                None => Ok(default),
                Some((raw, origin)) => count(key, raw, origin, min, max),
            }
        };

        let job_lease_seconds = counted_from("server.job_lease_seconds", 60, 10, 3600)?;
        let header_read_timeout_seconds = counted_from("server.header_read_timeout_seconds", 10, 1, 300)?;
        let request_timeout_seconds = counted_from("server.request_timeout_seconds", 30, 1, 600)?;
        let max_server_connections = counted_from("server.max_connections", 1024, 1, 100_000)?;
        let hooks_per_minute_per_address =
            counted_from("server.hooks_per_minute_per_address", 6000, 1, 1_000_000)?;
        let hooks_per_minute_per_tenant =
            counted_from("server.hooks_per_minute_per_tenant", 12_000, 1, 1_000_000)?;
        let purge_seconds = counted_from("schedule.purge_seconds", 3600, 60, 7 * 86_400)?;
        let portal_idle = counted_from("portal.idle_minutes", 30, 5, 1440)?;
        let portal_absolute = counted_from("portal.absolute_hours", 12, 1, 168)?;
        let mut counted = |key: &str, default: u32, max: u32| counted_from(key, default, 1, max);
        let max_connections =
            counted("database.max_connections", DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_LIMIT)?;
        let workers = counted("server.workers", 4, 64)?;
        let day = 86_400;
        let schedule = ScheduleConfig {
            near_poll_seconds: counted("schedule.near_poll_seconds", 10, day)?,
            horizon_poll_seconds: counted("schedule.horizon_poll_seconds", 300, day)?,
            subscriptions_seconds: counted("schedule.subscriptions_seconds", 300, 3600)?,
            reconcile_seconds: counted("schedule.reconcile_seconds", 300, day)?,
            reload_seconds: counted("schedule.reload_seconds", 10, 3600)?,
            purge_seconds,
        };
        debug_assert!(values.is_empty(), "every known key is read: {values:?}");

        Ok(Self {
            database: DatabaseConfig { url, max_connections },
            data: DataConfig { dir },
            log: LogConfig { level, format },
            server: ServerConfig {
                listen,
                public_url,
                portal_url,
                workers,
                instance,
                job_lease_seconds,
                header_read_timeout_seconds,
                request_timeout_seconds,
                max_connections: max_server_connections,
                hooks_per_minute_per_address,
                hooks_per_minute_per_tenant,
            },
            schedule,
            graph: GraphInstallConfig { custom_cloud_root },
            topdesk,
            ews,
            observability: ObservabilityConfig { listen: metrics_listen, otlp_endpoint },
            portal: PortalInstallConfig {
                listen: portal_listen,
                allow_cidrs: portal_allow,
                trusted_proxies: portal_proxies,
                origin: portal_origin,
                idle_minutes: portal_idle,
                absolute_hours: portal_absolute,
            },
        })
    }

    /// The configuration with `orb serve --metrics-listen` applied (it overrides `observability.listen`),
    /// checked like the key.
    pub fn with_metrics_listen(mut self, flag: Option<std::net::SocketAddr>) -> Result<Self, ConfigError> {
        if let Some(addr) = flag {
            check_operator_listen(addr, self.server.listen, "--metrics-listen")?;
            self.observability.listen = Some(addr);
        }
        Ok(self)
    }
}

/// The operator listener must not be the public one (port 0 asks the system for a free port each time, so
/// two `:0` addresses never collide).
fn check_operator_listen(
    addr: std::net::SocketAddr,
    public: std::net::SocketAddr,
    via: &'static str,
) -> Result<(), ConfigError> {
    if addr == public && addr.port() != 0 {
        return Err(ConfigError::OperatorListenerIsPublic { addr, via });
    }
    Ok(())
}

/// Whether `url` names this machine (loopback address or `localhost`).
fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The process environment as `(name, value)` pairs, for [`Config::load`]. Variables whose name is not
/// Unicode are skipped (they cannot be ORB's); a non-Unicode value is converted lossily.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .collect()
}

fn count(key: &str, raw: Raw, origin: Origin, min: u32, max: u32) -> Result<u32, ConfigError> {
    let invalid = |origin, shown: String| ConfigError::InvalidValue {
        key: key.to_owned(),
        origin,
        reason: format!("{shown} is not allowed: use a whole number from {min} to {max}"),
    };
    let n = match raw {
        Raw::Integer(n) => n,
        Raw::Text(text) => match text.trim().parse::<i64>() {
            Ok(n) => n,
            Err(_) => return Err(invalid(origin, format!("{text:?}"))),
        },
        Raw::FromFile(_) | Raw::Bool(_) => {
            return Err(ConfigError::WrongType { key: key.to_owned(), origin, expected: "a number" });
        }
    };
    match u32::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(origin, n.to_string())),
    }
}

/// Reads the value of a `k_file` setting.
fn resolve(key: &str, setting: Setting) -> Result<(Raw, Origin), ConfigError> {
    let Setting { raw, origin, name } = setting;
    match raw {
        Raw::FromFile(path) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                let value = text.trim_end().to_owned();
                Ok((Raw::Text(value), Origin::ValueFile { path, named_by: name, via: Box::new(origin) }))
            }
            Err(source) => Err(ConfigError::ReadValueFile { key: key.to_owned(), path, origin, source }),
        },
        raw => Ok((raw, origin)),
    }
}

fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
    let table: toml::Table =
        text.parse().map_err(|source| ConfigError::ParseFile { path: path.to_owned(), source })?;
    let origin = Origin::File(path.to_owned());
    let unknown = |key: String| ConfigError::UnknownFileKey { key, path: path.to_owned() };
    let mut layer = Layer::new();
    for (section, value) in table {
        let toml::Value::Table(entries) = value else {
            return Err(unknown(section));
        };
        for (key, value) in entries {
            let dotted = format!("{section}.{key}");
            let Some((s, k, kind, is_file)) = lookup(&section, &key) else {
                return Err(unknown(dotted));
            };
            let wrong =
                |expected| ConfigError::WrongType { key: dotted.clone(), origin: origin.clone(), expected };
            let raw = match (value, kind, is_file) {
                (toml::Value::String(p), _, true) => Raw::FromFile(PathBuf::from(p)),
                (_, _, true) => return Err(wrong("a string (a file path)")),
                (toml::Value::String(s), Kind::Text, false) => Raw::Text(s),
                (_, Kind::Text, false) => return Err(wrong("a string")),
                (toml::Value::Integer(n), Kind::Count, false) => Raw::Integer(n),
                (_, Kind::Count, false) => return Err(wrong("a whole number")),
                (toml::Value::Boolean(b), Kind::Flag, false) => Raw::Bool(b),
                (_, Kind::Flag, false) => return Err(wrong("true or false")),
            };
            insert(&mut layer, format!("{s}.{k}"), Setting { raw, origin: origin.clone(), name: dotted })?;
        }
    }
    Ok(layer)
}

fn env_layer(env: impl IntoIterator<Item = (String, String)>) -> Result<Layer, ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.get(..ENV_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX)))
        .collect();
    // Deterministic errors whatever order the environment comes in.
    vars.sort();
    let mut layer = Layer::new();
    for (var, value) in vars {
        let rest = &var[ENV_PREFIX.len()..];
        let found = rest
            .split_once("__")
            .map(|(s, k)| (s.to_ascii_lowercase(), k.to_ascii_lowercase()))
            .and_then(|(s, k)| lookup(&s, &k));
        let Some((s, k, _, is_file)) = found else {
            return Err(ConfigError::UnknownEnvKey { var });
        };
        let raw = if is_file { Raw::FromFile(PathBuf::from(value)) } else { Raw::Text(value) };
        insert(&mut layer, format!("{s}.{k}"), Setting { raw, origin: Origin::Env(var.clone()), name: var })?;
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a case expects.
    enum Want<'a> {
        /// Loading succeeds and the config passes this check.
        Ok(fn(&Config)),
        /// Loading fails with a message containing every one of these (after `{dir}` substitution).
        Err(&'a [&'a str]),
    }

    struct Case<'a> {
        name: &'a str,
        /// Content of `{dir}/orb.toml`, read as an explicit `--config` file.
        toml: Option<&'a str>,
        env: &'a [(&'a str, &'a str)],
        /// Extra files written into `{dir}` before loading: (name, content).
        files: &'a [(&'a str, &'a str)],
        want: Want<'a>,
    }

    /// Never appears in any message or `Debug` output.
    const PASSWORD: &str = "pa55-w0rd";

    fn check(case: Case<'_>) {
        let dir = tempfile::tempdir().unwrap();
        let dir_s = dir.path().to_str().unwrap().to_owned();
        let sub = |s: &str| s.replace("{dir}", &dir_s);
        for (name, content) in case.files {
            std::fs::write(dir.path().join(name), sub(content)).unwrap();
        }
        let path = dir.path().join("orb.toml");
        if let Some(toml) = case.toml {
            std::fs::write(&path, sub(toml)).unwrap();
        }
        // Without `toml` the file does not exist, so `IfPresent` also checks that a missing default file is
        // skipped.
        let file =
            if case.toml.is_some() { ConfigFile::Explicit(&path) } else { ConfigFile::IfPresent(&path) };
        let env = case.env.iter().map(|(k, v)| (k.to_string(), sub(v)));
        let name = case.name;
        match (Config::load_with(file, env), case.want) {
            (Ok(config), Want::Ok(verify)) => {
                verify(&config);
                let shown = format!("{config:?}");
                assert!(!shown.contains(PASSWORD), "{name}: Debug shows the password: {shown}");
            }
            (Err(err), Want::Err(needles)) => {
                let msg = err.to_string();
                for needle in needles {
                    assert!(msg.contains(&sub(needle)), "{name}: {msg:?} lacks {:?}", sub(needle));
                }
                assert!(!msg.contains(PASSWORD), "{name}: message shows the password: {msg}");
            }
            (Ok(config), Want::Err(_)) => panic!("{name}: expected an error, got {config:?}"),
            (Err(err), Want::Ok(_)) => panic!("{name}: expected success, got: {err}"),
        }
    }

    #[test]
    fn graph_delivers_only_to_https_and_endpoints_are_installation_settings() {
        check(Case {
            name: "public_url on http elsewhere than loopback",
            toml: None,
            env: &[("ORB__SERVER__PUBLIC_URL", "http://orb.example.com")],
            files: &[],
            want: Want::Err(&["server.public_url", "https"]),
        });
        check(Case {
            name: "http on loopback (tests) and a custom cloud",
            toml: None,
            env: &[
                ("ORB__SERVER__PUBLIC_URL", "http://127.0.0.1:8080"),
                ("ORB__GRAPH__CUSTOM_CLOUD_ROOT", "http://127.0.0.1:4000"),
            ],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.server.public_url.as_deref(), Some("http://127.0.0.1:8080"));
                assert_eq!(c.graph.custom_cloud_root.as_ref().unwrap().as_str(), "http://127.0.0.1:4000/");
            }),
        });
        check(Case {
            name: "a custom cloud that is not a URL",
            toml: None,
            env: &[("ORB__GRAPH__CUSTOM_CLOUD_ROOT", "not a url")],
            files: &[],
            want: Want::Err(&["graph.custom_cloud_root"]),
        });
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ca.contoso.local".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn topdesk_outbound_rules_are_read_and_bad_ones_refused() {
        check(Case {
            name: "strict by default",
            toml: None,
            env: &[],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.topdesk.addresses, orb_topdesk::AddressPolicy::default());
                assert!(c.topdesk.ca_file.is_none() && c.topdesk.ca_roots.is_empty());
            }),
        });
        let pem = ca_pem();
        let files = [("ca.pem", pem.as_str())];
        check(Case {
            name: "ranges, http and a CA file",
            toml: Some(
                "[topdesk]\nallow_cidrs = \"127.0.0.0/8, fd00::/8\"\nallow_http = true\n\
                 ca_file = \"{dir}/ca.pem\"\n",
            ),
            env: &[],
            files: &files,
            want: Want::Ok(|c| {
                let a = &c.topdesk.addresses;
                assert!(a.allows_http());
                let shown: Vec<String> = a.allowed().iter().map(ToString::to_string).collect();
                assert_eq!(shown, ["127.0.0.0/8", "fd00::/8"]);
                assert_eq!(c.topdesk.ca_roots.len(), 1);
                assert_eq!(c.topdesk.outbound().extra_roots.len(), 1);
            }),
        });
        check(Case {
            name: "from the environment",
            toml: None,
            env: &[("ORB__TOPDESK__ALLOW_HTTP", "TRUE"), ("ORB__TOPDESK__ALLOW_CIDRS", "10.0.0.0/8")],
            files: &[],
            want: Want::Ok(|c| assert!(c.topdesk.addresses.allows_http())),
        });
        check(Case {
            name: "ews",
            toml: None,
            env: &[("ORB__EWS__ALLOW_HTTP", "true")],
            files: &[],
            want: Want::Ok(|c| {
                assert!(c.ews.allow_http && c.ews.ca_pem.is_none() && !c.topdesk.addresses.allows_http());
                let mut tuning = orb_engine::settings::ClientTuning::default();
                c.ews.apply(&mut tuning);
                assert!(tuning.ews_allow_plain_http);
            }),
        });
        type BadCase<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let bad: [BadCase; 8] = [
            (
                "range",
                None,
                &[("ORB__TOPDESK__ALLOW_CIDRS", "10.0.0.0/33")],
                &["topdesk.allow_cidrs", "10.0.0.0/33"],
            ),
            (
                "flag text",
                None,
                &[("ORB__TOPDESK__ALLOW_HTTP", "yes")],
                &["topdesk.allow_http", "true or false"],
            ),
            (
                "flag type",
                Some("[topdesk]\nallow_http = 1\n"),
                &[],
                &["topdesk.allow_http", "must be true or false"],
            ),
            (
                "no ca file",
                Some("[topdesk]\nca_file = \"{dir}/nope.pem\"\n"),
                &[],
                &["topdesk.ca_file", "cannot read"],
            ),
            (
                "garbage ca file",
                Some("[topdesk]\nca_file = \"{dir}/junk.pem\"\n"),
                &[],
                &["topdesk.ca_file", "no PEM certificate"],
            ),
            ("unknown key", Some("[topdesk]\nurl = \"https://x\"\n"), &[], &["topdesk.url"]),
            ("ews flag text", None, &[("ORB__EWS__ALLOW_HTTP", "yes")], &["ews.allow_http", "true or false"]),
            (
                "garbage ews ca file",
                Some("[ews]\nca_file = \"{dir}/junk.pem\"\n"),
                &[],
                &["ews.ca_file", "no PEM certificate", "Exchange"],
            ),
        ];
        for (name, toml, env, needles) in bad {
            check(Case { name, toml, env, files: &[("junk.pem", "garbage")], want: Want::Err(needles) });
        }
    }

    fn sqlite_path(config: &Config) -> &Path {
        match config.database.url.backend() {
            Backend::Sqlite { path } => path,
            other => panic!("expected SQLite, got {other:?}"),
        }
    }

    fn postgres_url(config: &Config) -> &str {
        match config.database.url.backend() {
            Backend::Postgres { url } => url.expose_secret(),
            other => panic!("expected PostgreSQL, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        check(Case {
            name: "defaults",
            toml: None,
            env: &[("ORB_MASTER_KEY", "ignored"), ("PATH", "/bin")],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.data.dir, Path::new("./orb-data"));
                assert_eq!(sqlite_path(c), Path::new("./orb-data/orb.db"));
                assert_eq!(c.database.url.redacted(), "sqlite://./orb-data/orb.db");
                assert_eq!(c.database.max_connections, 8);
                assert_eq!(c.log.level, "info");
                assert_eq!(c.log.format, None, "unset: each command picks its format");
            }),
        });
    }

    #[test]
    fn the_file_overrides_defaults() {
        check(Case {
            name: "file",
            toml: Some(
                "[data]\ndir = \"/srv/orb\"\n[database]\nmax_connections = 20\n\
                 [log]\nlevel = \"info,orb=debug\"\nformat = \"json\"\n",
            ),
            env: &[],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.data.dir, Path::new("/srv/orb"));
                assert_eq!(sqlite_path(c), Path::new("/srv/orb/orb.db"), "default URL follows data.dir");
                assert_eq!(c.database.max_connections, 20);
                assert_eq!(c.log.level, "info,orb=debug");
                assert_eq!(c.log.format, Some(LogFormat::Json));
            }),
        });
    }

    #[test]
    fn the_environment_overrides_the_file() {
        check(Case {
            name: "env over file",
            toml: Some(
                "[database]\nmax_connections = 20\nurl = \"sqlite://file.db\"\n[log]\nformat = \"json\"\n",
            ),
            env: &[
                ("ORB__DATABASE__MAX_CONNECTIONS", "30"),
                ("orb__Log__Format", "TEXT"),
                ("ORB__DATABASE__URL", "sqlite:///var/lib/orb/env.db?mode=rwc"),
            ],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.database.max_connections, 30);
                assert_eq!(c.log.format, Some(LogFormat::Text), "env keys are case-insensitive");
                assert_eq!(sqlite_path(c), Path::new("/var/lib/orb/env.db"));
            }),
        });
    }

    #[test]
    fn file_indirection_in_the_file_and_in_the_environment() {
        check(Case {
            name: "url_file in toml",
            toml: Some("[database]\nurl_file = \"{dir}/db-url\"\n"),
            env: &[],
            files: &[("db-url", "postgres://orb:pa55-w0rd@db.example.com:5432/orb\n")],
            want: Want::Ok(|c| {
                assert_eq!(postgres_url(c), "postgres://orb:pa55-w0rd@db.example.com:5432/orb");
                assert_eq!(c.database.url.redacted(), "postgres://orb:***@db.example.com:5432/orb");
            }),
        });
        check(Case {
            name: "URL_FILE in env overrides url in toml",
            toml: Some("[database]\nurl = \"sqlite://file.db\"\n"),
            env: &[("ORB__DATABASE__URL_FILE", "{dir}/db-url")],
            files: &[("db-url", "postgresql://orb:pa55-w0rd@db/orb?sslmode=require\r\n")],
            want: Want::Ok(|c| {
                assert_eq!(postgres_url(c), "postgresql://orb:pa55-w0rd@db/orb?sslmode=require");
                assert_eq!(c.database.url.redacted(), "postgresql://orb:***@db/orb");
            }),
        });
        check(Case {
            name: "url in env overrides url_file in toml",
            toml: Some("[database]\nurl_file = \"{dir}/db-url\"\n"),
            env: &[("ORB__DATABASE__URL", "sqlite://env.db")],
            files: &[("db-url", "postgres://orb:pa55-w0rd@db/orb\n")],
            want: Want::Ok(|c| assert_eq!(sqlite_path(c), Path::new("env.db"))),
        });
        check(Case {
            name: "any text key has a _file form",
            toml: Some("[log]\nlevel_file = \"{dir}/level\"\n"),
            env: &[("ORB__DATA__DIR_FILE", "{dir}/data-dir")],
            files: &[("level", "warn\n"), ("data-dir", "/data\n")],
            want: Want::Ok(|c| {
                assert_eq!(c.log.level, "warn");
                assert_eq!(c.data.dir, Path::new("/data"));
            }),
        });
        check(Case {
            name: "unreadable value file",
            toml: Some("[database]\nurl_file = \"{dir}/nope\"\n"),
            env: &[],
            files: &[],
            want: Want::Err(&["cannot read \"{dir}/nope\"", "database.url_file in {dir}/orb.toml"]),
        });
    }

    #[test]
    fn unknown_keys_are_named() {
        let cases: [(&str, &str, &[&str]); 4] = [
            (
                "misspelt key",
                "[database]\nurll = \"sqlite://x.db\"\n",
                &["\"database.urll\" in {dir}/orb.toml"],
            ),
            ("misspelt section", "[databse]\nurl = \"sqlite://x.db\"\n", &["\"databse.url\""]),
            ("top-level key", "url = \"sqlite://x.db\"\n", &["unknown configuration key \"url\""]),
            (
                "no _file for numbers",
                "[database]\nmax_connections_file = \"/x\"\n",
                &["\"database.max_connections_file\""],
            ),
        ];
        for (name, toml, needles) in cases {
            check(Case { name, toml: Some(toml), env: &[], files: &[], want: Want::Err(needles) });
        }
        for var in ["ORB__DATABSE__URL", "ORB__DATABASE", "ORB__DATABASE__URL__X", "ORB__LOG__FORMAT_FILES"] {
            let needle = format!("unknown configuration key {var} (environment)");
            check(Case {
                name: var,
                toml: None,
                env: &[(var, "x")],
                files: &[],
                want: Want::Err(&[&needle, "ORB__SECTION__KEY", "database.url"]),
            });
        }
    }

    #[test]
    fn database_urls_are_validated() {
        check(Case {
            name: "mysql",
            toml: Some("[database]\nurl = \"mysql://root:pa55-w0rd@db/orb\"\n"),
            env: &[],
            files: &[],
            want: Want::Err(&["invalid database.url in {dir}/orb.toml", "\"mysql\"", "sqlite:", "postgres:"]),
        });
        check(Case {
            name: "no scheme",
            toml: None,
            env: &[("ORB__DATABASE__URL", "db.example.com/orb")],
            files: &[],
            want: Want::Err(&["ORB__DATABASE__URL", "scheme \"\" is not supported"]),
        });
        check(Case {
            name: "sqlite without path",
            toml: None,
            env: &[("ORB__DATABASE__URL", "sqlite://")],
            files: &[],
            want: Want::Err(&["no file path"]),
        });
        check(Case {
            name: "sqlite in memory",
            toml: None,
            env: &[("ORB__DATABASE__URL", "sqlite::memory:")],
            files: &[],
            want: Want::Ok(|c| assert_eq!(sqlite_path(c), Path::new(":memory:"))),
        });
    }

    #[test]
    fn postgres_urls_never_print() {
        for (url, shown) in [
            ("postgres://orb:pa55-w0rd@db:5432/orb", "postgres://orb:***@db:5432/orb"),
            ("postgres://orb:p@55-w0rd@db/orb", "postgres://orb:***@db/orb"),
            ("postgres://db/orb?password=pa55-w0rd", "postgres://db/orb"),
            ("postgres:pa55-w0rd", "[REDACTED]"),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.redacted(), shown, "{url}");
            assert_eq!(format!("{parsed:?}"), format!("DatabaseUrl({shown:?})"));
            assert!(!format!("{:?}", parsed.backend()).contains("pa55"), "{url}");
        }
    }

    #[test]
    fn a_missing_explicit_file_is_an_error_but_a_missing_default_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let err = Config::load(Some(&missing), []).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile { .. }), "{err:?}");
        assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
        assert!(err.to_string().contains("--config"), "{err}");

        let config = Config::load_with(ConfigFile::IfPresent(&missing), []).unwrap();
        assert_eq!(config.database.max_connections, DEFAULT_MAX_CONNECTIONS);

        let present = dir.path().join("orb.toml");
        std::fs::write(&present, "[database]\nmax_connections = 3\n").unwrap();
        let config = Config::load_with(ConfigFile::IfPresent(&present), []).unwrap();
        assert_eq!(config.database.max_connections, 3, "a default file that exists is read");
    }

    #[test]
    fn a_value_and_its_file_in_one_source_conflict() {
        check(Case {
            name: "toml",
            toml: Some("[database]\nurl = \"sqlite://x.db\"\nurl_file = \"{dir}/db-url\"\n"),
            env: &[],
            files: &[("db-url", "sqlite://y.db")],
            want: Want::Err(&["both database.url and database.url_file are set in {dir}/orb.toml"]),
        });
        check(Case {
            name: "env",
            toml: None,
            env: &[("ORB__DATABASE__URL", "sqlite://x.db"), ("ORB__DATABASE__URL_FILE", "{dir}/db-url")],
            files: &[("db-url", "sqlite://y.db")],
            want: Want::Err(&["both database.url and database.url_file are set in environment variable"]),
        });
        check(Case {
            name: "env twice in different case",
            toml: None,
            env: &[("ORB__LOG__LEVEL", "info"), ("orb__log__level", "debug")],
            files: &[],
            want: Want::Err(&["log.level is set twice", "ORB__LOG__LEVEL", "orb__log__level"]),
        });
    }

    #[test]
    fn server_and_schedule() {
        check(Case {
            name: "server defaults",
            toml: None,
            env: &[],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
                assert_eq!(c.server.public_url, None);
                assert_eq!(c.server.portal_url, "http://127.0.0.1:8080");
                assert_eq!((c.server.workers, c.server.instance.as_deref()), (4, None));
                assert_eq!(c.server.job_lease_seconds, 60);
                let limits = c.server.listener_limits();
                assert_eq!(limits.header_read_timeout, std::time::Duration::from_secs(10));
                assert_eq!(limits.request_timeout, std::time::Duration::from_secs(30));
                assert_eq!(limits.max_connections, 1024);
                assert_eq!(c.server.rate_limits(), orb_web::RateLimits::default());
                let s = &c.schedule;
                assert_eq!(
                    (s.near_poll_seconds, s.horizon_poll_seconds, s.subscriptions_seconds),
                    (10, 300, 300)
                );
                assert_eq!((s.reconcile_seconds, s.reload_seconds, s.purge_seconds), (300, 10, 3600));
                assert_eq!(c.observability.listen, None, "no operator listener unless asked for");
            }),
        });
        check(Case {
            name: "server set",
            toml: Some(
                "[server]\nlisten = \"0.0.0.0:9000\"\npublic_url = \"https://orb.example.com/\"\nworkers = 2\n\
                 instance = \"orb-a\"\nheader_read_timeout_seconds = 5\nmax_connections = 64\n\
                 hooks_per_minute_per_address = 100\n[schedule]\nnear_poll_seconds = 3\n",
            ),
            env: &[
                ("ORB__SCHEDULE__RECONCILE_SECONDS", "600"),
                ("ORB__SERVER__REQUEST_TIMEOUT_SECONDS", "12"),
                ("ORB__SERVER__HOOKS_PER_MINUTE_PER_TENANT", "1000"),
                ("ORB__SCHEDULE__PURGE_SECONDS", "86400"),
            ],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.server.listen.to_string(), "0.0.0.0:9000");
                assert_eq!(c.server.public_url.as_deref(), Some("https://orb.example.com"));
                assert_eq!(
                    c.server.portal_url, "https://orb.example.com",
                    "the portal defaults to the public URL"
                );
                assert_eq!((c.server.workers, c.server.instance.as_deref()), (2, Some("orb-a")));
                assert_eq!((c.schedule.near_poll_seconds, c.schedule.reconcile_seconds), (3, 600));
                let limits = c.server.listener_limits();
                assert_eq!(
                    (
                        limits.header_read_timeout.as_secs(),
                        limits.request_timeout.as_secs(),
                        limits.max_connections
                    ),
                    (5, 12, 64)
                );
                let rates = c.server.rate_limits();
                assert_eq!(
                    (rates.per_address_per_minute.get(), rates.per_tenant_per_minute.get()),
                    (100, 1000)
                );
                assert_eq!(c.schedule.purge_seconds, 86_400);
            }),
        });
    }

    #[test]
    fn the_operator_listener_is_optional_separate_and_the_flag_overrides_it() {
        check(Case {
            name: "observability.listen set",
            toml: Some("[observability]\nlisten = \"127.0.0.1:9090\"\n"),
            env: &[],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.observability.listen, Some("127.0.0.1:9090".parse().unwrap()));
                let flagged = c.clone().with_metrics_listen(Some("0.0.0.0:9100".parse().unwrap())).unwrap();
                assert_eq!(
                    flagged.observability.listen,
                    Some("0.0.0.0:9100".parse().unwrap()),
                    "the flag wins"
                );
                let kept = c.clone().with_metrics_listen(None).unwrap();
                assert_eq!(kept.observability, c.observability, "no flag: the key stays");
                let err = c.clone().with_metrics_listen(Some(c.server.listen)).unwrap_err().to_string();
                assert!(err.contains("--metrics-listen") && err.contains("server.listen"), "{err}");
            }),
        });
        check(Case {
            name: "observability.listen on the public listener",
            toml: Some("[server]\nlisten = \"0.0.0.0:8080\"\n[observability]\nlisten = \"0.0.0.0:8080\"\n"),
            env: &[],
            files: &[],
            want: Want::Err(&["observability.listen", "server.listen", "another address or port"]),
        });
        check(Case {
            name: "observability.listen not an address",
            toml: None,
            env: &[("ORB__OBSERVABILITY__LISTEN", "metrics.local")],
            files: &[],
            want: Want::Err(&[
                "invalid observability.listen",
                "ORB__OBSERVABILITY__LISTEN",
                "127.0.0.1:9090",
            ]),
        });
    }

    #[test]
    fn the_portal_section_is_read_and_checked() {
        check(Case {
            name: "portal defaults",
            toml: None,
            env: &[],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.portal, PortalInstallConfig::default());
                let p = c.portal.portal_config(true);
                assert!(p.secure_cookies && p.allow.is_empty() && p.trusted_proxies.is_empty());
                assert_eq!(p.idle_timeout, chrono::Duration::minutes(30));
            }),
        });
        check(Case {
            name: "portal keys",
            toml: Some(
                "[portal]\nlisten = \"127.0.0.1:8443\"\nallow_cidrs = \"10.0.0.0/8, 192.0.2.7\"\n\
                 trusted_proxies = \"127.0.0.1\"\norigin = \"https://orb-admin.example.com/\"\n\
                 idle_minutes = 15\nabsolute_hours = 8\n",
            ),
            env: &[],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.portal.listen, Some("127.0.0.1:8443".parse().unwrap()));
                assert_eq!(c.portal.allow_cidrs, ["10.0.0.0/8", "192.0.2.7"]);
                assert_eq!(c.portal.origin.as_deref(), Some("https://orb-admin.example.com"));
                let p = c.portal.portal_config(true);
                assert!(p.allow.allows("10.1.2.3".parse().unwrap()));
                assert!(!p.allow.allows("172.16.0.1".parse().unwrap()));
                assert!(p.trusted_proxies.allows("127.0.0.1".parse().unwrap()));
                assert_eq!(p.absolute_timeout, chrono::Duration::hours(8));
            }),
        });
        check(Case {
            name: "otlp endpoint",
            toml: Some("[observability]\notlp_endpoint = \"http://127.0.0.1:4318/\"\n"),
            env: &[],
            files: &[],
            want: Want::Ok(|c| {
                assert_eq!(c.observability.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"))
            }),
        });
        check(Case {
            name: "otlp endpoint not a URL",
            toml: None,
            env: &[("ORB__OBSERVABILITY__OTLP_ENDPOINT", "collector:4318")],
            files: &[],
            want: Want::Err(&["observability.otlp_endpoint", "http://127.0.0.1:4318"]),
        });
        check(Case {
            name: "portal allow-list with a bad range",
            toml: Some("[portal]\nallow_cidrs = \"10.0.0.0/33\"\n"),
            env: &[],
            files: &[],
            want: Want::Err(&["portal.allow_cidrs", "10.0.0.0/33", "CIDR"]),
        });
        check(Case {
            name: "portal origin with a path",
            toml: None,
            env: &[("ORB__PORTAL__ORIGIN", "https://orb.example.com/admin")],
            files: &[],
            want: Want::Err(&["portal.origin", "not an origin"]),
        });
        check(Case {
            name: "portal idle out of range",
            toml: Some("[portal]\nidle_minutes = 1\n"),
            env: &[],
            files: &[],
            want: Want::Err(&["portal.idle_minutes"]),
        });
    }

    #[test]
    fn bad_values_are_refused_with_the_fix() {
        type BadCase<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [BadCase; 20] = [
            (
                "string count",
                Some("[database]\nmax_connections = \"eight\"\n"),
                &[],
                &["database.max_connections in {dir}/orb.toml must be a whole number"],
            ),
            (
                "non-numeric env count",
                None,
                &[("ORB__DATABASE__MAX_CONNECTIONS", "abc")],
                &["ORB__DATABASE__MAX_CONNECTIONS", "from 1 to 1000"],
            ),
            ("zero connections", Some("[database]\nmax_connections = 0\n"), &[], &["0 is not allowed"]),
            (
                "number as text key",
                Some("[log]\nlevel = 3\n"),
                &[],
                &["log.level in {dir}/orb.toml must be a string"],
            ),
            ("log format", None, &[("ORB__LOG__FORMAT", "yaml")], &["\"yaml\"", "\"text\" or \"json\""]),
            ("log level", None, &[("ORB__LOG__LEVEL", "orb=loud")], &["invalid log.level", "info,orb=debug"]),
            ("empty value", None, &[("ORB__DATA__DIR", "")], &["invalid data.dir", "empty"]),
            ("listen", None, &[("ORB__SERVER__LISTEN", "localhost")], &["server.listen", "0.0.0.0:8080"]),
            ("public url", Some("[server]\npublic_url = \"orb.example.com\"\n"), &[], &["server.public_url"]),
            (
                "public url query",
                None,
                &[("ORB__SERVER__PUBLIC_URL", "https://x/?a=b")],
                &["server.public_url"],
            ),
            ("workers", Some("[server]\nworkers = 65\n"), &[], &["server.workers", "from 1 to 64"]),
            ("beat", None, &[("ORB__SCHEDULE__NEAR_POLL_SECONDS", "0")], &["schedule.near_poll_seconds"]),
            (
                "purge too often",
                Some("[schedule]\npurge_seconds = 59\n"),
                &[],
                &["schedule.purge_seconds", "from 60 to 604800"],
            ),
            (
                "purge too rarely",
                None,
                &[("ORB__SCHEDULE__PURGE_SECONDS", "604801")],
                &["schedule.purge_seconds", "from 60 to 604800"],
            ),
            (
                "lease",
                None,
                &[("ORB__SERVER__JOB_LEASE_SECONDS", "5")],
                &["server.job_lease_seconds", "from 10 to 3600"],
            ),
            (
                "header timeout",
                Some("[server]\nheader_read_timeout_seconds = 0\n"),
                &[],
                &["server.header_read_timeout_seconds", "from 1 to 300"],
            ),
            (
                "request timeout",
                None,
                &[("ORB__SERVER__REQUEST_TIMEOUT_SECONDS", "601")],
                &["server.request_timeout_seconds", "from 1 to 600"],
            ),
            (
                "connections",
                Some("[server]\nmax_connections = 100001\n"),
                &[],
                &["server.max_connections", "from 1 to 100000"],
            ),
            (
                "address rate",
                None,
                &[("ORB__SERVER__HOOKS_PER_MINUTE_PER_ADDRESS", "0")],
                &["server.hooks_per_minute_per_address", "from 1 to 1000000"],
            ),
            (
                "tenant rate",
                Some("[server]\nhooks_per_minute_per_tenant = \"many\"\n"),
                &[],
                &["server.hooks_per_minute_per_tenant", "must be a whole number"],
            ),
        ];
        for (name, toml, env, needles) in cases {
            check(Case { name, toml, env, files: &[], want: Want::Err(needles) });
        }
    }

    #[test]
    fn invalid_toml_names_the_file() {
        check(Case {
            name: "syntax",
            toml: Some("[database\nurl = \n"),
            env: &[],
            files: &[],
            want: Want::Err(&["{dir}/orb.toml", "is not valid TOML"]),
        });
    }
}
