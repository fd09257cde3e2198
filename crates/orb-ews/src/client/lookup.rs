//! Finding a meeting again: by ORB's match id (the extended property, `FindItem` with a restriction)
//! and by its `UID` around a known time (a calendar view, then `GetItem`), each answered with the item
//! read with ORB's explicit properties.

use std::collections::BTreeSet;

use super::{EwsClient, Target};
use crate::error::EwsError;
use crate::model::{CalendarItem, CalendarItemType, ItemId, Window};
use crate::request;
use crate::response;
use crate::series::ItemRef;

fn invalid(reason: impl Into<String>) -> EwsError {
    EwsError::Invalid { reason: reason.into() }
}

impl EwsClient {
    /// The single item or series master in `target`'s calendar that carries ORB's match id `match_id`
    /// (the extended property, ews.md §3.3 "Lookup"), read with ORB's explicit properties; `None` when
    /// there is none.
    ///
    /// Two calls: `FindItem` (`IdOnly`, `IndexedPageItemView` of at most
    /// [`request::MATCH_LOOKUP_MAX`], `Restriction` `IsEqualTo` on [`request::match_field_uri`]), then
    /// `GetItem` of the first id found (as [`EwsClient::get_items`] reads it); one when nothing matches.
    /// Without a `CalendarView` Exchange lists single items and masters, never occurrences. Several
    /// items with one match id should not exist (ORB writes each once); the first found is returned. An
    /// item deleted between the two calls is `None`. Only the organizer's item carries the property; a
    /// room's copy is found by its `UID` ([`EwsClient::find_by_uid`], U9).
    pub async fn find_by_match_id(
        &self,
        target: Target<'_>,
        match_id: &str,
    ) -> Result<Option<CalendarItem>, EwsError> {
        if match_id.trim().is_empty() {
            return Err(invalid("a match-id lookup needs the match id; it is blank"));
        }
        if !crate::xml::is_xml_text(match_id) {
            return Err(invalid("the match id contains a control character XML cannot carry"));
        }
        let answer = self.call(target, request::find_by_match_id(match_id)).await?;
        let page = response::find_item(&answer, Some(target.mailbox.as_str()))?;
        let Some(first) = page.items.into_iter().next() else { return Ok(None) };
        match self.get_item(target, &first.item_id).await {
            Ok(item) => Ok(Some(item)),
            Err(EwsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The single item or series master in `target`'s calendar whose `UID` is `uid`, looked for among
    /// the items of `around` (a window about the meeting's known time); `None` when none there has it.
    /// For an occurrence or exception of a series, its master (read with `RecurringMasterItemId`). This is
    /// how an organizer's item is found from a room's copy (they share the `UID`, U9).
    ///
    /// EWS documents no restriction on `calendar:UID` (and a `CalendarView` is not asked for it, U20),
    /// so this costs **two or three calls**: a `CalendarView` of `around` ([`EwsClient::calendar_view`]),
    /// a `GetItem` of every item it lists (ORB's explicit properties, `UID` among them), and for a series
    /// a `GetItem` of the master; one call when the window is empty. Every item in the window is read, so
    /// keep `around` narrow (the known start and end, give or take a little). A window holding more than
    /// [`crate::EwsConfig::max_entries`] items cannot prove an absence: without a match among those
    /// listed, that is [`EwsError::Invalid`] (narrow the window). An item gone between the calls is
    /// skipped; another per-item error is returned when no listed item matched.
    pub async fn find_by_uid(
        &self,
        target: Target<'_>,
        uid: &str,
        around: Window,
    ) -> Result<Option<CalendarItem>, EwsError> {
        if uid.trim().is_empty() {
            return Err(invalid("a UID lookup needs the UID; it is blank"));
        }
        let view = self.calendar_view(target, around).await?;
        let mut seen = BTreeSet::new();
        let ids: Vec<ItemId> =
            view.items.into_iter().map(|i| i.item_id).filter(|id| seen.insert(id.id.clone())).collect();
        let mut failure = None;
        let mut found = None;
        for read in self.get_items(target, &ids).await? {
            match read {
                Ok(item) if item.uid.as_deref() == Some(uid) => {
                    found = Some(item);
                    break;
                }
                Ok(_) | Err(EwsError::NotFound { .. }) => {}
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        match found {
            Some(item)
                if matches!(
                    item.item_type,
                    Some(CalendarItemType::Occurrence | CalendarItemType::Exception)
                ) =>
            {
                self.get_item(target, ItemRef::MasterOf(item.item_id)).await.map(Some)
            }
            Some(item) => Ok(Some(item)),
            None if !view.includes_last => Err(invalid(format!(
                "the window {} – {} holds more than {} items, so the absence of UID {uid} cannot be told; \
                 narrow the window around the meeting's known time",
                crate::model::format_time(around.start),
                crate::model::format_time(around.end),
                self.config.max_entries
            ))),
            None => failure.map_or(Ok(None), Err),
        }
    }
}
