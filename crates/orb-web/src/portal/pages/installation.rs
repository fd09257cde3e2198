//! The installation's audit log, for operators only: every tenant's rows and the rows that belong to no
//! tenant — operators' logins, failed logins for addresses no account has, blocked source addresses —
//! which no tenant's page shows. The filters of a tenant's page plus the tenant; times in UTC (the
//! installation has no zone of its own); an export is audited as the installation's (`audit.export`, no
//! tenant). Also in the JSON API (`GET /api/v1/audit`). A tenant's user is refused (403) on all of it.

use std::collections::BTreeMap;

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use orb_core::TenantId;
use orb_store::{AuditEntry, NewAuditEntry, Role};
use serde::Serialize;

use super::audit::{AuditQuery, AuditRow, download, export_format, rows, serde_urlencoded_query, to_csv};
use super::{Layout, render};
use crate::portal::PortalState;
use crate::portal::api::ApiPrincipal;
use crate::portal::error::{ApiError, PortalError};
use crate::portal::session::Principal;

/// An audit row of the installation: the row and its tenant's name (`-`: none).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstallationAuditRow {
    /// The tenant's name; `-` for the installation's own rows.
    pub tenant: String,
    /// The row.
    #[serde(flatten)]
    pub row: AuditRow,
}

fn operator(p: &Principal) -> Result<(), PortalError> {
    if p.user.role == Role::Operator { Ok(()) } else { Err(PortalError::Forbidden) }
}

/// The rows the filters select (at most `limit`), with their tenants' names; the tenant names known.
async fn select(
    state: &PortalState,
    q: &AuditQuery,
    limit: u32,
    zone: chrono_tz::Tz,
) -> Result<(Vec<InstallationAuditRow>, Vec<String>), PortalError> {
    let tenants = state.store.list_tenants().await?;
    let names: BTreeMap<TenantId, String> = tenants.iter().map(|t| (t.id, t.name.to_string())).collect();
    let only = match q.tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => None,
        Some(name) => Some(
            tenants
                .iter()
                .find(|t| t.name.as_str() == name)
                .map(|t| t.id)
                .ok_or_else(|| PortalError::BadRequest(format!("there is no tenant {name:?}")))?,
        ),
    };
    let entries: Vec<AuditEntry> = state.store.search_audit(only, &q.filter(limit, chrono_tz::UTC)?).await?;
    let shown = rows(&entries, zone);
    let out = entries
        .iter()
        .zip(shown)
        .map(|(e, row)| InstallationAuditRow {
            tenant: e
                .tenant_id
                .map_or_else(|| "-".to_owned(), |id| names.get(&id).cloned().unwrap_or(id.to_string())),
            row,
        })
        .collect();
    Ok((out, names.into_values().collect()))
}

#[derive(Template)]
#[template(path = "installation_audit.html")]
struct InstallationAuditPage {
    layout: Layout,
    q: AuditQuery,
    rows: Vec<InstallationAuditRow>,
    tenants: Vec<String>,
    /// The zone of the filter's days and the rows' times: UTC (the installation has no zone of its own).
    zone: &'static str,
    export_query: String,
}

/// `GET /audit`: the installation's audit log (operators).
pub async fn page(
    State(state): State<PortalState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PortalError> {
    operator(&principal)?;
    let (rows, tenants) = select(&state, &q, 500, chrono_tz::UTC).await?;
    let export_query = serde_urlencoded_query(&q);
    let layout = Layout::plain(&state, &principal, "installation-audit", None);
    Ok(render(&InstallationAuditPage { layout, q, rows, tenants, zone: "UTC", export_query })?
        .into_response())
}

/// `GET /audit/export?format=csv|json`: the rows the filters select (operators; audited).
pub async fn export(
    State(state): State<PortalState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PortalError> {
    operator(&principal)?;
    let format = export_format(&q)?;
    let (rows, _) = select(&state, &q, 100_000, chrono_tz::UTC).await?;
    let entry = NewAuditEntry {
        tenant_id: None,
        at: state.now(),
        actor: principal.actor(),
        action: "audit.export".into(),
        target: format!("installation: {format}, {} rows", rows.len()),
        ip: Some(principal.ip.0.to_string()),
    };
    state.store.append_audit(&entry).await?;
    let body = if format == "csv" {
        let plain: Vec<AuditRow> = rows.iter().map(|r| r.row.clone()).collect();
        // The tenant as a first column, in the same quoting as the rest.
        let csv = to_csv(&plain);
        let mut lines = csv.lines();
        let mut out = format!("tenant,{}\n", lines.next().unwrap_or_default());
        for (line, r) in lines.zip(&rows) {
            out.push_str(&format!("{},{line}\n", super::audit::csv_field(&r.tenant)));
        }
        out
    } else {
        serde_json::to_string_pretty(&rows).unwrap_or_default()
    };
    Ok(download("orb-audit-installation", &format, body))
}

/// The installation's audit log, newest first (at most 1,000 rows; operators only).
#[utoipa::path(get, path = "/api/v1/audit",
    params(("tenant" = Option<String>, Query, description = "only this tenant (by name)"),
        ("actor" = Option<String>, Query, description = "who"),
        ("action" = Option<String>, Query, description = "action prefix"),
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD (UTC)"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD (UTC)")),
    responses((status = 200, body = [InstallationAuditRow]), (status = 403)))]
pub async fn api(
    State(state): State<PortalState>,
    ApiPrincipal(p): ApiPrincipal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<InstallationAuditRow>>, ApiError> {
    operator(&p)?;
    Ok(Json(select(&state, &q, 1000, chrono_tz::UTC).await?.0))
}
