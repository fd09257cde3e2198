//! `orb audit`: the audit log from the command line — one tenant's rows, or the whole installation's,
//! including the rows that belong to no tenant (operators' logins, failed logins for addresses no
//! account has, blocked source addresses, key rotations), which no tenant's portal page shows.
//!
//! Reads only; a CSV or JSON export is itself audited (`audit.export`, actor `cli`), as the portal's
//! export is.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use orb_core::TenantId;
use orb_store::{AuditEntry, AuditFilter, NewAuditEntry, Store};
use orb_web::portal::pages::audit::csv_field;
use serde::Serialize;

use crate::commands::find_tenant;

/// How `orb audit` prints the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// Aligned columns for a terminal.
    Table,
    /// CSV with a header line (spreadsheet formulas neutralised).
    Csv,
    /// A JSON array.
    Json,
}

/// What `orb audit` was asked for.
#[derive(Debug, Clone)]
pub struct AuditArgs {
    pub tenant: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: u32,
    pub format: AuditFormat,
}

/// One printed row.
#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    at: String,
    tenant: String,
    actor: String,
    action: String,
    target: String,
    ip: String,
}

/// `YYYY-MM-DD` (the day's start in UTC; for `--until` the next day's start, so the day is included) or
/// an RFC 3339 instant.
fn instant(flag: &str, text: &str, until: bool) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if until { day.succ_opt().unwrap_or(day) } else { day };
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).with_context(|| {
        format!(
            "{flag} {text:?} is not a date: write YYYY-MM-DD or an RFC 3339 time like 2026-12-06T09:30:00Z"
        )
    })
}

/// Runs `orb audit`.
pub(crate) async fn run(store: &dyn Store, args: AuditArgs) -> Result<()> {
    if args.limit == 0 || args.limit > 100_000 {
        bail!("--limit {}: give a number from 1 to 100000", args.limit);
    }
    let tenant = match &args.tenant {
        Some(name) => Some(find_tenant(store, name).await?),
        None => None,
    };
    let filter = AuditFilter {
        actor: args.actor.clone().filter(|a| !a.is_empty()),
        action_prefix: args.action.clone().filter(|a| !a.is_empty()),
        since: args.since.as_deref().map(|t| instant("--since", t, false)).transpose()?,
        until: args.until.as_deref().map(|t| instant("--until", t, true)).transpose()?,
        limit: args.limit,
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        bail!("--since must be before --until");
    }
    let entries = store.search_audit(tenant.as_ref().map(|t| t.id), &filter).await?;
    let names: BTreeMap<TenantId, String> =
        store.list_tenants().await?.into_iter().map(|t| (t.id, t.name.as_str().to_owned())).collect();
    let rows: Vec<Row> = entries.iter().map(|e| row(e, &names)).collect();
    match args.format {
        AuditFormat::Table => {
            if rows.is_empty() {
                out!("no audit rows match");
            }
            for r in &rows {
                out!("{}  {:<12} {:<28} {:<36} {}  {}", r.at, r.tenant, r.actor, r.action, r.target, r.ip);
            }
        }
        AuditFormat::Csv | AuditFormat::Json => {
            let text = if args.format == AuditFormat::Csv {
                to_csv(&rows)
            } else {
                serde_json::to_string_pretty(&rows).context("writing the rows as JSON")?
            };
            let format = if args.format == AuditFormat::Csv { "csv" } else { "json" };
            store
                .append_audit(&NewAuditEntry {
                    tenant_id: tenant.as_ref().map(|t| t.id),
                    at: Utc::now(),
                    actor: "cli".into(),
                    action: "audit.export".into(),
                    target: format!("{format}, {} rows", rows.len()),
                    ip: None,
                })
                .await?;
            out!("{}", text.trim_end());
        }
    }
    Ok(())
}

fn row(e: &AuditEntry, names: &BTreeMap<TenantId, String>) -> Row {
    Row {
        id: e.id,
        at: e.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        tenant: match e.tenant_id {
            None => "-".into(),
            Some(id) => names.get(&id).cloned().unwrap_or_else(|| id.to_string()),
        },
        actor: e.actor.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        ip: e.ip.clone().unwrap_or_default(),
    }
}

fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from("id,at,tenant,actor,action,target,ip\n");
    for r in rows {
        let fields = [&r.id.to_string(), &r.at, &r.tenant, &r.actor, &r.action, &r.target, &r.ip];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(flag: &str, text: &str, until: bool, expected: Result<&str, &str>) {
        match (instant(flag, text, until), expected) {
            (Ok(t), Ok(want)) => assert_eq!(t.to_rfc3339(), want, "{text}"),
            (Err(e), Err(needle)) => assert!(format!("{e:#}").contains(needle), "{e:#}"),
            (got, want) => panic!("{text}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn dates_and_instants_are_read_and_a_day_given_to_until_is_included() {
        check("--since", "2026-12-06", false, Ok("2026-12-06T00:00:00+00:00"));
        check("--until", "2026-12-06", true, Ok("2026-12-07T00:00:00+00:00"));
        check("--since", "2026-12-06T09:30:00+01:00", false, Ok("2026-12-06T08:30:00+00:00"));
        check("--since", "yesterday", false, Err("--since \"yesterday\" is not a date"));
        check("--until", "2026-13-01", true, Err("YYYY-MM-DD"));
    }
}
