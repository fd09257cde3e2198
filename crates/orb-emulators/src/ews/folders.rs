//! The EWS operations on a mailbox's folders and on the directory: `GetRoomLists` and `GetRooms`,
//! `SyncFolderItems` (a sync state per mailbox), and `Subscribe` / `Unsubscribe` for push and streaming
//! subscriptions. The item operations are in [`super::ops`], whose answer helpers these share.

use orb_ews::xml::{Element, MESSAGES, TYPES};

use super::ops::{Ctx, Fault, fault, m, message, response, schema, t};
use super::push::{parse_watermark, watermark};
use super::render::{render, shape};
use super::state::{Inner, Item, refuse};

// ---------------------------------------------------------------------------------------------------
// Rooms

fn address(name: &str, email: &str, kind: &str) -> Vec<Element> {
    vec![
        t("Name").text(name),
        t("EmailAddress").text(email),
        t("RoutingType").text("SMTP"),
        t("MailboxType").text(kind),
    ]
}

pub(super) fn get_room_lists(inner: &Inner) -> Element {
    m("GetRoomListsResponse").attr("ResponseClass", "Success").child(m("ResponseCode").text("NoError")).child(
        m("RoomLists").children(
            inner.room_lists.iter().map(|l| t("Address").children(address(&l.name, &l.email, "PublicDL"))),
        ),
    )
}

pub(super) fn get_rooms(inner: &Inner, op: &Element) -> Element {
    let wanted = op
        .path(&[(MESSAGES, "RoomList"), (TYPES, "EmailAddress")])
        .map(|e| e.text.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match inner.room_lists.iter().find(|l| l.email == wanted) {
        Some(list) => m("GetRoomsResponse")
            .attr("ResponseClass", "Success")
            .child(m("ResponseCode").text("NoError"))
            .child(m("Rooms").children(list.rooms.iter().map(|r| {
                let name = inner.mailboxes.get(r).map(|m| m.name.clone()).unwrap_or_default();
                t("Room").child(t("Id").children(address(&name, r, "Mailbox")))
            }))),
        None => m("GetRoomsResponse")
            .attr("ResponseClass", "Error")
            .child(m("MessageText").text("No room list has this address."))
            .child(m("ResponseCode").text("ErrorNameResolutionNoResults"))
            .child(m("DescriptiveLinkKey").text("0")),
    }
}

// ---------------------------------------------------------------------------------------------------
// SyncFolderItems

fn sync_state(mailbox: &str, seq: u64) -> String {
    watermark(mailbox, seq).replace('=', "") + "S"
}

fn parse_sync_state(mailbox: &str, s: &str) -> Option<u64> {
    let raw = s.trim().strip_suffix('S')?;
    let padded = format!("{raw}{}", "=".repeat((4 - raw.len() % 4) % 4));
    parse_watermark(mailbox, &padded)
}

pub(super) fn sync_folder_items(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let mb = ctx.mailbox()?;
    let props = shape(op)?;
    let max: usize = op
        .child_text(MESSAGES, "MaxChangesReturned")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| (1..=512).contains(n))
        .ok_or_else(|| schema("MaxChangesReturned must be 1–512"))?;
    let mailbox = &inner.mailboxes[mb];
    let from = match op.child_text(MESSAGES, "SyncState") {
        None => Some(0),
        Some(s) => parse_sync_state(mb, s).filter(|seq| *seq <= mailbox.seq),
    };
    let Some(from) = from else {
        let r = Err(refuse(
            "ErrorInvalidSyncStateData",
            "Synchronization state data is corrupt or otherwise invalid.",
        ));
        return Ok(response("SyncFolderItems", vec![message("SyncFolderItems", r)]));
    };
    let mut changed: Vec<&Item> = mailbox
        .items
        .values()
        .filter(|i| i.changed_seq > from && !(i.deleted && i.created_seq > from))
        .collect();
    changed.sort_by_key(|i| i.changed_seq);
    let all = changed.len() <= max;
    let page: Vec<&Item> = changed.into_iter().take(max).collect();
    let next = if all { mailbox.seq } else { page.last().map_or(from, |i| i.changed_seq) };
    let changes = page.iter().map(|i| {
        if i.deleted {
            t("Delete").child(t("ItemId").attr("Id", i.id.as_str()).attr("ChangeKey", i.change_key.as_str()))
        } else if i.created_seq > from {
            t("Create").child(render(i, &props, true))
        } else {
            t("Update").child(render(i, &props, true))
        }
    });
    let payload = vec![
        m("SyncState").text(sync_state(mb, next)),
        m("IncludesLastItemInRange").text(if all { "true" } else { "false" }),
        m("Changes").children(changes.collect::<Vec<_>>()),
    ];
    Ok(response("SyncFolderItems", vec![message("SyncFolderItems", Ok(payload))]))
}

// ---------------------------------------------------------------------------------------------------
// Subscribe / Unsubscribe

pub(super) fn subscribe(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let mb = ctx.mailbox()?.to_owned();
    if let Some(req) = op.find(MESSAGES, "StreamingSubscriptionRequest") {
        return subscribe_streaming(inner, ctx, &mb, req);
    }
    let Some(req) = op.find(MESSAGES, "PushSubscriptionRequest") else {
        return Err(fault(
            "ErrorInvalidRequest",
            "The emulator supports push and streaming subscriptions (not pull).",
        ));
    };
    let event_types: Vec<String> = req
        .find(TYPES, "EventTypes")
        .map(|e| e.find_all(TYPES, "EventType").map(|t| t.text.trim().to_owned()).collect())
        .unwrap_or_default();
    if event_types.is_empty() {
        return Err(schema("EventTypes is required"));
    }
    let freq: u32 = req
        .child_text(TYPES, "StatusFrequency")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| (1..=1440).contains(n))
        .ok_or_else(|| schema("StatusFrequency must be 1–1440"))?;
    let url = req.child_text(TYPES, "URL").ok_or_else(|| schema("URL is required"))?.trim().to_owned();
    let mailbox = &inner.mailboxes[&mb];
    let current = watermark(&mb, mailbox.seq);
    let resume = match req.child_text(TYPES, "Watermark") {
        None => Vec::new(),
        Some(wm) => match parse_watermark(&mb, wm).filter(|s| *s <= mailbox.seq) {
            Some(seq) => mailbox.events.iter().filter(|e| e.seq > seq).cloned().collect(),
            None => {
                let r = Err(refuse(
                    "ErrorInvalidWatermark",
                    "The watermark used for creating this subscription was not found.",
                ));
                return Ok(response("Subscribe", vec![message("Subscribe", r)]));
            }
        },
    };
    let id = uuid::Uuid::new_v4().to_string();
    inner.push.add(id.clone(), ctx.account, &mb, url, freq, event_types, current.clone(), &resume, ctx.now);
    let payload = vec![m("SubscriptionId").text(id), m("Watermark").text(current)];
    Ok(response("Subscribe", vec![message("Subscribe", Ok(payload))]))
}

/// `StreamingSubscriptionRequest`: event types as for push; no watermark, no URL.
fn subscribe_streaming(inner: &mut Inner, ctx: &Ctx<'_>, mb: &str, req: &Element) -> Result<Element, Fault> {
    let event_types: Vec<String> = req
        .find(TYPES, "EventTypes")
        .map(|e| e.find_all(TYPES, "EventType").map(|t| t.text.trim().to_owned()).collect())
        .unwrap_or_default();
    if event_types.is_empty() {
        return Err(schema("EventTypes is required"));
    }
    if let Some(extra) = req.children.iter().find(|c| !matches!(c.name.as_str(), "FolderIds" | "EventTypes"))
    {
        return Err(schema(format!("StreamingSubscriptionRequest does not take {}", extra.name)));
    }
    let current = watermark(mb, inner.mailboxes[mb].seq);
    let id = inner.streaming.add(ctx.account, mb, event_types, current, ctx.now);
    Ok(response("Subscribe", vec![message("Subscribe", Ok(vec![m("SubscriptionId").text(id)]))]))
}

pub(super) fn unsubscribe(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let id =
        op.child_text(MESSAGES, "SubscriptionId").ok_or_else(|| schema("SubscriptionId is required"))?.trim();
    if let Some(s) = inner.streaming.subs.get(id) {
        let result = if s.account == ctx.account {
            inner.streaming.remove(id);
            Ok(Vec::new())
        } else {
            Err(refuse("ErrorSubscriptionAccessDenied", "Only the creator of a subscription may use it."))
        };
        return Ok(response("Unsubscribe", vec![message("Unsubscribe", result)]));
    }
    let result = match inner.push.subs.get(id) {
        None => Err(refuse("ErrorSubscriptionNotFound", "The specified subscription was not found.")),
        Some(s) if s.account != ctx.account => {
            Err(refuse("ErrorSubscriptionAccessDenied", "Only the creator of a subscription may use it."))
        }
        Some(_) => {
            inner.push.subs.remove(id);
            Ok(Vec::new())
        }
    };
    Ok(response("Unsubscribe", vec![message("Unsubscribe", result)]))
}
