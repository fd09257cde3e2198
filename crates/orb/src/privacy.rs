//! `orb purge` and `orb privacy export | erase`: retention on demand and data-subject requests
//! (docs/PRIVACY.md).
//!
//! - `orb purge` deletes what outlived each tenant's `[retention]` periods, as the scheduled
//!   `retention.purge` task of `orb serve` does, and prints the counts; `--dry-run` only counts.
//! - `orb privacy export` writes everything the tenant's tables hold about one address as JSON, to
//!   standard output or a new file readable only by its owner; the export is audited under the address's
//!   pseudonym, so the audit log does not store the address again.
//! - `orb privacy erase` replaces the address everywhere in the tenant's data with its stable pseudonym
//!   (`orb_core::privacy::pseudonym`) in one transaction, audited without the address.
//!
//! Bad input (an unknown tenant, an invalid address) is refused with one message and changes nothing.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use orb_core::EmailAddress;
use orb_core::privacy::pseudonym;
use orb_store::{Store, Tenant};

use crate::PrivacyCommand;
use crate::commands::{audit, find_tenant};

/// Runs `orb purge`.
pub async fn purge(store: &dyn Store, tenant: Option<&str>, dry_run: bool) -> Result<()> {
    let tenants: Vec<Tenant> = match tenant {
        Some(name) => vec![find_tenant(store, name).await?],
        None => store.list_tenants().await?,
    };
    if tenants.is_empty() {
        out!("no tenants yet; nothing to purge");
    }
    for tenant in tenants {
        let counts = orb_engine::retention::purge_tenant(store, tenant.id, "cli", Utc::now(), dry_run)
            .await
            .with_context(|| format!("purging tenant {}", tenant.name))?;
        let verb = if dry_run { "would delete" } else { "deleted" };
        out!("tenant {}: {verb} {counts}", tenant.name);
    }
    Ok(())
}

/// Runs one `orb privacy` command.
pub async fn run(store: &dyn Store, cmd: PrivacyCommand) -> Result<()> {
    match cmd {
        PrivacyCommand::Export { tenant, email, out } => {
            let address = parse_address(&email)?;
            let tenant = find_tenant(store, &tenant.tenant).await?;
            let data = store.person_data(tenant.id, &address).await?;
            let document = serde_json::json!({
                "tenant": tenant.name.as_str(),
                "email": address.as_str(),
                "exported_at": Utc::now(),
                "data": data,
            });
            let text = serde_json::to_string_pretty(&document).context("cannot render the export")?;
            if let Some(path) = out.as_deref() {
                write_new_file(path, &text)?;
            }
            let alias = pseudonym(tenant.id, &address);
            store.append_audit(&audit(&tenant, "privacy.exported", alias.as_str())).await?;
            match out {
                Some(path) => out!("wrote the data of one person to {}", path.display()),
                None => out!("{text}"),
            }
            Ok(())
        }
        PrivacyCommand::Erase { tenant, email } => {
            let address = parse_address(&email)?;
            let tenant = find_tenant(store, &tenant.tenant).await?;
            let alias = pseudonym(tenant.id, &address);
            let counts = store.erase_person(tenant.id, &address, &alias, "cli", Utc::now()).await?;
            out!("tenant {}: replaced the address with {alias} in {counts}", tenant.name);
            out!(
                "Outlook and TOPdesk keep their own copies: the next change of one of this person's bookings \
                 brings the address back from there (see docs/PRIVACY.md)"
            );
            Ok(())
        }
    }
}

fn parse_address(text: &str) -> Result<EmailAddress> {
    EmailAddress::parse(text)
        .map_err(|e| anyhow!("{e}; give the person's e-mail address, e.g. anna@contoso.com"))
}

/// Writes `text` to a new file only its owner can read; refuses to overwrite.
fn write_new_file(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("cannot write {}", path.display()))
}
