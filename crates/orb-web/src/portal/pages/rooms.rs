//! Rooms: the mapping Exchange room ↔ TOPdesk location, with suggestions (Graph Places and TOPdesk locations
//! paired by name and e-mail), enable/disable, and per-room subscription state.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use orb_core::{RoomId, RoomMailbox, TopdeskLocationId};
use orb_store::NewRoom;
use serde::Deserialize;

use super::{Layout, Notice, back, render};
use crate::portal::backend::RoomSuggestion;
use crate::portal::error::PortalError;
use crate::portal::scope::Scope;

/// A room as shown.
#[derive(Debug, Clone)]
pub struct RoomRow {
    /// Id.
    pub id: String,
    /// Mailbox.
    pub mailbox: String,
    /// TOPdesk location id.
    pub location: String,
    /// Name.
    pub name: String,
    /// Synced or not.
    pub enabled: bool,
}

#[derive(Template)]
#[template(path = "rooms.html")]
struct RoomsPage {
    layout: Layout,
    rooms: Vec<RoomRow>,
    suggestions: Vec<RoomSuggestion>,
    suggestions_error: Option<String>,
}

/// `GET /t/{tenant}/rooms`.
pub async fn page(scope: Scope, Query(n): Query<Notice>) -> Result<Response, PortalError> {
    let rooms = scope
        .rooms()
        .await?
        .into_iter()
        .map(|r| RoomRow {
            id: r.id.to_string(),
            mailbox: r.mailbox.to_string(),
            location: r.topdesk_location_id.to_string(),
            name: r.display_name.clone().unwrap_or_default(),
            enabled: r.enabled,
        })
        .collect();
    let (suggestions, suggestions_error) = if scope.can_write() {
        match scope.state().backend.room_suggestions(scope.tenant.id).await {
            Ok(s) => (s, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        }
    } else {
        (Vec::new(), None)
    };
    let layout = Layout::of(&scope, "rooms", n.notice);
    Ok(render(&RoomsPage { layout, rooms, suggestions, suggestions_error })?.into_response())
}

/// The map-a-room form.
#[derive(Debug, Deserialize)]
pub struct RoomForm {
    mailbox: String,
    topdesk_location_id: String,
    #[serde(default)]
    name: Option<String>,
}

impl RoomForm {
    /// The form's values (the API's JSON body).
    pub fn new(mailbox: String, topdesk_location_id: String, name: Option<String>) -> Self {
        Self { mailbox, topdesk_location_id, name }
    }
}

/// Parses the form into a room to map; bad input is a clear error.
pub fn new_room(form: &RoomForm) -> Result<NewRoom, PortalError> {
    let mailbox = RoomMailbox::parse(form.mailbox.trim())
        .map_err(|e| PortalError::BadRequest(format!("room mailbox: {e}")))?;
    let topdesk_location_id = TopdeskLocationId::parse(form.topdesk_location_id.trim())
        .map_err(|e| PortalError::BadRequest(format!("TOPdesk location: {e}")))?;
    let name =
        form.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(|n| n.chars().take(200).collect());
    Ok(NewRoom { mailbox, topdesk_location_id, display_name: name })
}

fn here(scope: &Scope) -> String {
    format!("/t/{}/rooms", scope.tenant.name)
}

/// `POST /t/{tenant}/rooms`.
pub async fn add(scope: Scope, Form(form): Form<RoomForm>) -> Result<Response, PortalError> {
    scope.require_write()?;
    let room = new_room(&form)?;
    let created = scope.add_room(&room).await?;
    Ok(back(&here(&scope), &format!("{} is mapped and will be synced.", created.mailbox)))
}

fn room_id(text: &str) -> Result<RoomId, PortalError> {
    text.parse().map_err(|_| PortalError::NotFound)
}

/// `POST /t/{tenant}/rooms/{room}/enable`.
pub async fn enable(scope: Scope, Path((_, room)): Path<(String, String)>) -> Result<Response, PortalError> {
    let room = scope.set_room_enabled(room_id(&room)?, true).await?;
    Ok(back(&here(&scope), &format!("{} is synced again.", room.mailbox)))
}

/// `POST /t/{tenant}/rooms/{room}/disable`.
pub async fn disable(scope: Scope, Path((_, room)): Path<(String, String)>) -> Result<Response, PortalError> {
    let room = scope.set_room_enabled(room_id(&room)?, false).await?;
    Ok(back(&here(&scope), &format!("{} is no longer synced.", room.mailbox)))
}
