//! What each command does. Configuration is loaded once here and passed down; the wall clock is read
//! here and passed to the store as `now`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use orb_core::{RoomMailbox, TenantName, TopdeskLocationId};
use orb_crypto::secrecy::{ExposeSecret, SecretString};
use orb_crypto::{KeyRing, MasterKey};
use orb_engine::settings::{
    SECRET_GRAPH_CERTIFICATE, SECRET_GRAPH_CLIENT_SECRET, SECRET_TOPDESK_PASSWORD, TenantSettings,
    check_topdesk_url,
};
use orb_store::{NewAuditEntry, NewRoom, PgStore, SqliteStore, Store, StoreError, Tenant};

use zeroize::Zeroizing;

use crate::config::{Backend, Config, process_env};
use crate::{
    Cli, Command, KeysCommand, PushTokenCommand, RoomCommand, SecretCommand, TenantCommand, secrets,
};

/// `[schedule]` as the configuration's file and environment say now (for `orb serve`'s reloads).
fn schedule_source(file: Option<std::path::PathBuf>) -> crate::serve::ScheduleSource {
    Arc::new(move || Ok(Config::load(file.as_deref(), process_env())?.schedule))
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref(), process_env())?;
    let log_file = match &cli.command {
        Command::Demo { verbose, .. } => crate::demo::log_file(&config.data.dir, *verbose),
        _ => None,
    };
    let service = matches!(cli.command, Command::Serve { .. });
    let telemetry = crate::telemetry::init(&config, service, log_file.as_deref())?;
    let result = run_command(cli, config).await;
    telemetry.shutdown();
    result
}

async fn run_command(cli: Cli, config: Config) -> Result<()> {
    match cli.command {
        Command::Keys(KeysCommand::Generate { out }) => keys_generate(out.as_deref()),
        Command::Demo { run_for, metrics_listen, listen, pace, seed, verbose, exchange } => {
            let options = crate::demo::Options { listen, run_for, pace, seed, verbose, exchange };
            crate::demo::demo(&config.with_metrics_listen(metrics_listen)?, options).await
        }
        Command::Bench { json, rooms, bookings, rate, seconds, store } => {
            let opts = crate::bench::Options { json, rooms, bookings, rate, seconds, store };
            crate::bench::run(&config, opts).await
        }
        Command::Sync {
            dry_run,
            retry_failed,
            tenant,
            room,
            approve_mass_deletion,
            reject_mass_deletion,
        } => {
            let run =
                crate::backfill::Run { dry_run, retry_failed, approve_mass_deletion, reject_mass_deletion };
            crate::backfill::run(&config, crate::backfill::Selection { tenant, room }, run).await
        }
        Command::Backfill { tenant, room } => {
            let run = crate::backfill::Run::default();
            crate::backfill::run(&config, crate::backfill::Selection { tenant, room }, run).await
        }
        Command::Serve { metrics_listen, listen } => {
            let mut config = config;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            let config = config.with_metrics_listen(metrics_listen)?;
            let master = MasterKey::from_process_env()?;
            let store = open_store(&config).await?;
            let clock: Arc<dyn orb_core::Clock> = Arc::new(orb_core::SystemClock);
            crate::serve::serve(
                &config,
                store,
                KeyRing::new(master),
                clock,
                crate::serve::ServeOptions {
                    schedule_source: Some(schedule_source(cli.config.clone())),
                    ..crate::serve::ServeOptions::default()
                },
                std::future::pending(),
                crate::serve::Bind::default(),
            )
            .await
        }
        Command::Check { tenant, json, no_probe, probe_wait } => {
            let probe_wait = std::time::Duration::from_secs(probe_wait);
            crate::check::run(&config, crate::check::Options { tenant, json, no_probe, probe_wait }).await
        }
        Command::Migrate => {
            let store = open_store(&config).await?;
            out!("database schema is up to date ({})", config.database.url.redacted());
            drop(store);
            Ok(())
        }
        Command::Tenant(cmd) => tenant(&config, &*open_store(&config).await?, cmd).await,
        Command::Room(cmd) => room(&*open_store(&config).await?, cmd).await,
        Command::Secret(cmd) => secret(&config, cmd).await,
        Command::PushToken(cmd) => push_token(&config, &*open_store(&config).await?, cmd).await,
        Command::User(cmd) => crate::users::run(&*open_store(&config).await?, cmd).await,
        Command::Jobs(cmd) => crate::jobs::run(&*open_store(&config).await?, cmd).await,
        Command::Purge { tenant, dry_run } => {
            crate::privacy::purge(&*open_store(&config).await?, tenant.as_deref(), dry_run).await
        }
        Command::Privacy(cmd) => crate::privacy::run(&*open_store(&config).await?, cmd).await,
        Command::Audit { tenant, actor, action, since, until, limit, format } => {
            let args = crate::audit::AuditArgs { tenant, actor, action, since, until, limit, format };
            crate::audit::run(&*open_store(&config).await?, args).await
        }
        Command::Keys(KeysCommand::Rotate { new_key_file }) => {
            let current = MasterKey::from_process_env()?;
            let store = open_store(&config).await?;
            let (new, created) = secrets::load_or_create_key(&new_key_file)?;
            let count = secrets::rotate(&*store, current.clone(), new.clone(), Utc::now()).await?;
            // The notification certificates' private keys are sealed under the master key too.
            let ring = KeyRing::new(new.clone()).with_previous([current])?;
            let certificates = orb_engine::keys::reseal_all(&*store, &ring, Utc::now()).await?;
            // And the portal users' second factors.
            let totp = crate::portal::reseal_totp(&*store, &ring).await?;
            if created {
                out!("generated a new master key {} in {}", new.id(), new_key_file.display());
            }
            out!(
                "re-encrypted {count} secret(s), {certificates} notification certificate key(s) and {totp} portal \
                 second factor(s) under key {}; now set ORB_MASTER_KEY_FILE={} (and unset ORB_MASTER_KEY) \
                 wherever ORB runs, and restart it",
                new.id(),
                new_key_file.display()
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Check) => {
            let key = MasterKey::from_process_env()?;
            let store = open_store(&config).await?;
            let ring = KeyRing::new(key.clone());
            let count = secrets::check(&*store, &ring).await?;
            let certificates = orb_engine::keys::load_ring(&*store, &ring).await?.len();
            out!(
                "all {count} secret(s) open with master key {}, and all {certificates} notification \
                 certificate key(s)",
                key.id()
            );
            Ok(())
        }
    }
}

/// Opens the store the database URL names, and brings its schema up to date.
pub(crate) async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let max = config.database.max_connections;
    let store: Arc<dyn Store> = match config.database.url.backend() {
        Backend::Sqlite { path } => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create the data directory {}", parent.display()))?;
            }
            Arc::new(SqliteStore::open(path, max).await?)
        }
        Backend::Postgres { url } => Arc::new(PgStore::connect(url.expose_secret(), max).await?),
    };
    store.migrate().await?;
    Ok(store)
}

pub(crate) async fn find_tenant(store: &dyn Store, name: &str) -> Result<Tenant> {
    let name = TenantName::parse(name)?;
    match store.tenant_by_name(&name).await {
        Err(StoreError::NotFound { .. }) => {
            bail!("tenant {:?} does not exist; create it with `orb tenant add {}`", name.as_str(), name)
        }
        other => Ok(other?),
    }
}

pub(crate) fn audit(tenant: &Tenant, action: &str, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: Some(tenant.id),
        at: Utc::now(),
        actor: "cli".into(),
        action: action.into(),
        target: target.into(),
        ip: None,
    }
}

/// How long the save-time probe of a TOPdesk URL may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

async fn tenant(config: &Config, store: &dyn Store, cmd: TenantCommand) -> Result<()> {
    match cmd {
        TenantCommand::Add { name } => {
            let name = TenantName::parse(&name)?;
            let tenant = store.create_tenant(&name, Utc::now()).await?;
            store.append_audit(&audit(&tenant, "tenant.add", tenant.name.as_str())).await?;
            out!("added tenant {} ({})", tenant.name, tenant.id);
        }
        TenantCommand::Settings { tenant, file } => {
            let Some(file) = file else {
                let tenant = find_tenant(store, &tenant.tenant).await?;
                match store.get_tenant_settings(tenant.id).await? {
                    None => out!(
                        "tenant {} has no settings yet; write them with `orb tenant settings --tenant {} --file \
                         FILE`",
                        tenant.name,
                        tenant.name
                    ),
                    Some(row) => {
                        let settings = TenantSettings::from_json(&row.document)?;
                        out!("# settings of tenant {} (version {})", tenant.name, row.version);
                        out!("{}", settings.to_toml().trim_end());
                    }
                }
                return Ok(());
            };
            // Parse and check everything before touching the store: bad input writes nothing.
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the settings file {}", file.display()))?;
            let settings = TenantSettings::from_toml(&text)
                .with_context(|| format!("{} was not stored", file.display()))?;
            let tenant = find_tenant(store, &tenant.tenant).await?;
            // The TOPdesk URL against the installation's address policy, resolved and probed once.
            check_topdesk_url(&settings, &config.topdesk.outbound(), PROBE_TIMEOUT)
                .await
                .with_context(|| format!("{} was not stored", file.display()))?;
            let row = store
                .put_tenant_settings(
                    tenant.id,
                    &settings.to_json(),
                    None,
                    Utc::now(),
                    &audit(&tenant, "tenant.settings", tenant.name.as_str()),
                )
                .await?;
            out!("stored the settings of tenant {} (version {})", tenant.name, row.version);
            let have: Vec<String> =
                store.list_secrets(tenant.id).await?.into_iter().map(|m| m.name).collect();
            let has = |name: &str| have.iter().any(|h| h == name);
            if let Some(ews) = &settings.ews {
                let needed = match ews.auth {
                    orb_engine::settings::EwsAuth::Basic | orb_engine::settings::EwsAuth::Ntlm => {
                        orb_engine::settings::SECRET_EWS_PASSWORD
                    }
                    orb_engine::settings::EwsAuth::Bearer => orb_engine::settings::SECRET_EWS_TOKEN,
                };
                if !has(needed) {
                    out!(
                        "still needed: the secret {needed} (`orb secret set --tenant {} {needed}`)",
                        tenant.name
                    );
                }
            } else if !has(SECRET_GRAPH_CLIENT_SECRET) && !has(SECRET_GRAPH_CERTIFICATE) {
                out!(
                    "still needed: the secret {SECRET_GRAPH_CLIENT_SECRET} (`orb secret set --tenant {} \
                     {SECRET_GRAPH_CLIENT_SECRET}`), or instead the certificate {SECRET_GRAPH_CERTIFICATE}",
                    tenant.name
                );
            }
            if !has(SECRET_TOPDESK_PASSWORD) {
                out!(
                    "still needed: the secret {SECRET_TOPDESK_PASSWORD} (`orb secret set --tenant {} \
                     {SECRET_TOPDESK_PASSWORD}`)",
                    tenant.name
                );
            }
        }
        TenantCommand::List => {
            let tenants = store.list_tenants().await?;
            if tenants.is_empty() {
                out!("no tenants yet; add one with `orb tenant add NAME`");
            }
            for t in tenants {
                out!("{}\t{}\tcreated {}", t.name, t.id, t.created_at.format("%Y-%m-%d %H:%M UTC"));
            }
        }
    }
    Ok(())
}

async fn room(store: &dyn Store, cmd: RoomCommand) -> Result<()> {
    match cmd {
        RoomCommand::Add { tenant, mailbox, topdesk_location, name } => {
            // Parse everything before touching the store: bad input writes nothing.
            let mailbox = RoomMailbox::parse(&mailbox)?;
            let topdesk_location_id = TopdeskLocationId::parse(&topdesk_location)?;
            let tenant = find_tenant(store, &tenant.tenant).await?;
            let new = NewRoom { mailbox, topdesk_location_id, display_name: name };
            let room = store.add_room(tenant.id, &new, Utc::now()).await?;
            store.append_audit(&audit(&tenant, "room.add", room.mailbox.as_str())).await?;
            out!(
                "mapped {} to TOPdesk location {} for tenant {}",
                room.mailbox,
                room.topdesk_location_id,
                tenant.name
            );
        }
        RoomCommand::List { tenant } => {
            let tenant = find_tenant(store, &tenant.tenant).await?;
            let rooms = store.list_rooms(tenant.id).await?;
            if rooms.is_empty() {
                out!("tenant {} has no rooms; map one with `orb room add`", tenant.name);
            }
            for r in rooms {
                out!(
                    "{}\t{}\t{}\t{}",
                    r.mailbox,
                    r.topdesk_location_id,
                    if r.enabled { "enabled" } else { "disabled" },
                    r.display_name.unwrap_or_default()
                );
            }
        }
        RoomCommand::Disable { tenant, mailbox } => {
            set_enabled(store, &tenant.tenant, &mailbox, false).await?
        }
        RoomCommand::Enable { tenant, mailbox } => set_enabled(store, &tenant.tenant, &mailbox, true).await?,
    }
    Ok(())
}

async fn set_enabled(store: &dyn Store, tenant: &str, mailbox: &str, enabled: bool) -> Result<()> {
    let mailbox = RoomMailbox::parse(mailbox)?;
    let tenant = find_tenant(store, tenant).await?;
    let room = match store.room_by_mailbox(tenant.id, &mailbox).await {
        Err(StoreError::NotFound { .. }) => {
            bail!(
                "tenant {} has no room {mailbox}; see `orb room list --tenant {}`",
                tenant.name,
                tenant.name
            )
        }
        other => other?,
    };
    store.set_room_enabled(tenant.id, room.id, enabled, Utc::now()).await?;
    let action = if enabled { "room.enable" } else { "room.disable" };
    store.append_audit(&audit(&tenant, action, mailbox.as_str())).await?;
    out!("{} {mailbox}", if enabled { "enabled" } else { "disabled" });
    Ok(())
}

async fn secret(config: &Config, cmd: SecretCommand) -> Result<()> {
    match cmd {
        SecretCommand::Set { tenant, key } => {
            // Check everything that can be checked before reading the value or writing anything.
            secrets::validate_name(&key)?;
            let master = MasterKey::from_process_env()?;
            let store = open_store(config).await?;
            let tenant = find_tenant(&*store, &tenant.tenant).await?;
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!(
                    "Enter the value for {key}, then press Ctrl-D (it is stored encrypted, never shown):"
                );
            }
            let value: SecretString = secrets::read_value(stdin.lock())?;
            if key == SECRET_GRAPH_CERTIFICATE {
                // A key and certificate that do not work are refused before anything is stored.
                orb_graph::CertificateCredential::from_pem(value.expose_secret().as_bytes()).map_err(|e| {
                    anyhow::anyhow!(
                        "{e}; {SECRET_GRAPH_CERTIFICATE} takes a PEM bundle of the PKCS#8 private key and the \
                         certificate uploaded to the app registration; nothing was stored"
                    )
                })?;
            }
            let key_id = secrets::set(&*store, &master, tenant.id, &key, &value, Utc::now()).await?;
            out!("stored secret {key} for tenant {} (sealed under master key {key_id})", tenant.name);
        }
        SecretCommand::List { tenant } => {
            let store = open_store(config).await?;
            let tenant = find_tenant(&*store, &tenant.tenant).await?;
            for meta in store.list_secrets(tenant.id).await? {
                out!(
                    "{}\tkey {}\tset {}",
                    meta.name,
                    meta.key_id,
                    meta.updated_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
    }
    Ok(())
}

/// A new TOPdesk push token: 32 bytes from the operating system's CSPRNG, base64url without padding.
fn new_push_token() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0_u8; 32]);
    SystemRandom::new()
        .fill(&mut bytes[..])
        .map_err(|_| anyhow::anyhow!("the operating system's random generator failed; try again"))?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(&bytes[..])))
}

async fn push_token(config: &Config, store: &dyn Store, cmd: PushTokenCommand) -> Result<()> {
    let (tenant, action) = match cmd {
        PushTokenCommand::Create { tenant } => (tenant, "push_token.create"),
        PushTokenCommand::Rotate { tenant } => (tenant, "push_token.rotate"),
        PushTokenCommand::Revoke { tenant } => (tenant, "push_token.revoke"),
    };
    let tenant = find_tenant(store, &tenant.tenant).await?;
    let name = &tenant.name;
    let exists = store.push_token_hash(tenant.id).await?.is_some();
    match (action, exists) {
        ("push_token.create", true) => bail!(
            "tenant {name} has a TOPdesk push token already; `orb push-token rotate --tenant {name}` replaces it"
        ),
        ("push_token.rotate" | "push_token.revoke", false) => bail!(
            "tenant {name} has no TOPdesk push token; create one with `orb push-token create --tenant {name}`"
        ),
        ("push_token.revoke", true) => {
            store.delete_push_token(tenant.id, &audit(&tenant, action, "topdesk push token")).await?;
            out!(
                "revoked the TOPdesk push token of tenant {name}: TOPdesk's pushes are refused from now on \
                 (ORB still finds TOPdesk's changes by polling, later)"
            );
            return Ok(());
        }
        _ => {}
    }
    let token = new_push_token()?;
    let hash = digest(&SHA256, token.as_bytes());
    store
        .set_push_token_hash(tenant.id, hash.as_ref(), &audit(&tenant, action, "topdesk push token"))
        .await?;
    let base = config.server.public_url.as_deref().map_or_else(
        || "<server.public_url, not set yet>".to_owned(),
        |url| url.trim_end_matches('/').to_owned(),
    );
    let what = if action == "push_token.rotate" { "new TOPdesk push token" } else { "TOPdesk push token" };
    out!("{what} of tenant {name} (shown only now; ORB keeps only its SHA-256):");
    out!("{}", token.as_str());
    out!(
        "TOPdesk's action sequence must send it as: POST {base}/hooks/topdesk/{name} with the header \
         `Authorization: Bearer <token>`"
    );
    if action == "push_token.rotate" {
        out!("the old token is refused from now on: put the new one in TOPdesk's action sequence now");
    }
    Ok(())
}

fn keys_generate(out: Option<&Path>) -> Result<()> {
    let key = MasterKey::generate()?;
    match out {
        Some(path) => {
            secrets::write_key_file(path, &key)?;
            out!(
                "wrote master key {} to {}; set ORB_MASTER_KEY_FILE={}",
                key.id(),
                path.display(),
                path.display()
            );
        }
        None => out!("{}", key.to_base64().expose_secret()),
    }
    Ok(())
}

/// The demo's master key: from the environment when set, otherwise `<data dir>/master.key`, made on first
/// run.
pub(crate) fn demo_key(config: &Config) -> Result<(MasterKey, String)> {
    let env_has_key = ["ORB_MASTER_KEY", "ORB_MASTER_KEY_FILE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if env_has_key {
        return Ok((MasterKey::from_process_env()?, "from the environment".into()));
    }
    let path = config.data.dir.join("master.key");
    let (key, created) = secrets::load_or_create_key(&path)?;
    let how = if created { "generated into" } else { "read from" };
    Ok((key, format!("{how} {}", path.display())))
}
