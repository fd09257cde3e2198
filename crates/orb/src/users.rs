//! `orb user`: portal accounts from the command line — the first operator and tenant-admins before anyone
//! can log in, and the way back in when a second factor is lost. Every change is audited (actor `cli`).

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use orb_core::EmailAddress;
use orb_store::{AdminGuard, NewAuditEntry, NewUser, Role, Store, User};
use secrecy::{ExposeSecret, SecretString};

use crate::UserCommand;
use crate::commands::find_tenant;

fn audit(
    user: Option<&User>,
    tenant: Option<orb_core::TenantId>,
    action: &str,
    target: &str,
) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: user.and_then(|u| u.tenant_id).or(tenant),
        at: Utc::now(),
        actor: "cli".into(),
        action: action.to_owned(),
        target: target.to_owned(),
        ip: None,
    }
}

fn email(text: &str) -> Result<EmailAddress> {
    EmailAddress::parse(text.trim()).with_context(|| format!("{text:?} is not an e-mail address"))
}

async fn user(store: &dyn Store, address: &str) -> Result<User> {
    let address = email(address)?;
    store.user_by_email(&address).await.with_context(|| format!("no portal user has the address {address}"))
}

/// Runs an `orb user` command.
pub(crate) async fn run(store: &dyn Store, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add { tenant, email: address, role, sso, password_stdin } => {
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let tenant = match (role, tenant) {
                (Role::Operator, Some(_)) => bail!("an operator sees every tenant: leave out --tenant"),
                (Role::Operator, None) => None,
                (_, None) => bail!("a {role} belongs to one tenant: give --tenant NAME"),
                (_, Some(name)) => Some(find_tenant(store, &name).await?.id),
            };
            let address = email(&address)?;
            let (password, generated) = if sso {
                (None, false)
            } else if password_stdin {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprintln!("Enter the password, then press Ctrl-D:");
                }
                let value = crate::secrets::read_value(stdin.lock())?;
                orb_auth::check_new_password(&value)
                    .map_err(|e| anyhow::anyhow!("{e}; nothing was stored"))?;
                (Some(value), false)
            } else {
                (Some(orb_auth::generate_password()), true)
            };
            let hash = match &password {
                Some(p) => Some(orb_auth::hash_password(p).map_err(|e| anyhow::anyhow!("{e}"))?),
                None => None,
            };
            let entry = audit(None, tenant, "user.add", &format!("{address} ({role})"));
            let user = store
                .create_user(
                    // A password ORB made is temporary: its owner chooses their own at the first login. One
                    // given with --password-stdin is the operator's deliberate choice (e.g. their own).
                    &NewUser {
                        tenant_id: tenant,
                        email: address,
                        role,
                        password_hash: hash,
                        password_temporary: generated,
                    },
                    &entry,
                    Utc::now(),
                )
                .await?;
            out!("added portal user {} ({})", user.email, user.role);
            if let (Some(p), true) = (&password, generated) {
                out!(
                    "one-time password (shown once; they choose their own at the first login): {}",
                    p.expose_secret()
                );
            }
            if sso {
                out!("they log in with their tenant's single sign-on (set it up in the tenant's settings)");
            }
        }
        UserCommand::ResetMfa { email: address } => {
            let user = user(store, &address).await?;
            let entry = audit(Some(&user), None, "user.reset_mfa", user.email.as_str());
            store.set_user_totp(user.id, None, false, Some(&entry)).await?;
            out!("second factor of {} removed; they enrol again at their next login", user.email);
        }
        UserCommand::ResetPassword { email: address } => {
            let user = user(store, &address).await?;
            let password: SecretString = orb_auth::generate_password();
            let hash = orb_auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let entry = audit(Some(&user), None, "user.reset_password", user.email.as_str());
            store.set_user_password(user.id, &hash, true, &entry).await?;
            let ended = store.delete_sessions_of(user.id).await?;
            out!(
                "new one-time password for {} (shown once; they choose their own at the next login): {}",
                user.email,
                password.expose_secret()
            );
            out!("{ended} session(s) ended");
        }
        UserCommand::Disable { email: address, undo } => {
            let user = user(store, &address).await?;
            let action = if undo { "user.enable" } else { "user.disable" };
            // The operator on the server may leave a tenant without an enabled administrator (and make one
            // again with `orb user add`); the portal refuses that to tenant-admins.
            let audit = audit(Some(&user), None, action, user.email.as_str());
            store.set_user_disabled(user.id, !undo, AdminGuard::Off, &audit).await?;
            out!(
                "{} is {}",
                user.email,
                if undo { "enabled" } else { "disabled; their sessions and tokens ended" }
            );
        }
        UserCommand::List { tenant } => {
            let scope = match tenant {
                Some(name) => Some(find_tenant(store, &name).await?.id),
                None => None,
            };
            let tenants = store.list_tenants().await?;
            let name_of = |id: Option<orb_core::TenantId>| {
                id.and_then(|id| tenants.iter().find(|t| t.id == id))
                    .map_or("-".to_owned(), |t| t.name.to_string())
            };
            out!("{:<40} {:<14} {:<16} {:<4} {:<9} last login", "e-mail", "role", "tenant", "mfa", "state");
            for u in store.list_users(scope).await? {
                out!(
                    "{:<40} {:<14} {:<16} {:<4} {:<9} {}",
                    u.email.to_string(),
                    u.role.to_string(),
                    name_of(u.tenant_id),
                    if u.totp_enabled { "on" } else { "off" },
                    if u.disabled { "disabled" } else { "active" },
                    u.last_login_at.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
                );
            }
        }
    }
    Ok(())
}
