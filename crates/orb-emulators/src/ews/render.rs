//! Item shapes and rendering: what an `ItemShape` asks for, and a calendar item (single, occurrence,
//! exception or master) rendered with exactly those properties in the schema's order — FindItem's
//! limits (no body, no recipient lists, organizer name only) included.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use orb_ews::series::Recurrence;
use orb_ews::xml::{Element, MESSAGES, TYPES};

use super::ops::{Fault, schema};
use super::series::Occ;
use super::state::{Att, Item, PropKey};

fn t(name: &str) -> Element {
    Element::new(TYPES, name)
}

/// What an item shape asks for.
#[derive(Debug, Default)]
pub(crate) struct Props {
    fields: BTreeSet<String>,
    ext: Vec<PropKey>,
    wide: bool,
}

pub(crate) fn prop_key(uri: &Element) -> Option<PropKey> {
    Some((
        uri.get_attr("PropertySetId")?.to_ascii_lowercase(),
        uri.get_attr("PropertyName")?.to_owned(),
        uri.get_attr("PropertyType")?.to_owned(),
    ))
}

pub(crate) fn shape(op: &Element) -> Result<Props, Fault> {
    let shape = op.find(MESSAGES, "ItemShape").ok_or_else(|| schema("ItemShape is required"))?;
    let base = shape.child_text(TYPES, "BaseShape").ok_or_else(|| schema("BaseShape is required"))?;
    let mut props = Props { wide: matches!(base.trim(), "AllProperties" | "Default"), ..Props::default() };
    if let Some(add) = shape.find(TYPES, "AdditionalProperties") {
        for p in &add.children {
            match p.name.as_str() {
                "FieldURI" => {
                    props.fields.insert(
                        p.get_attr("FieldURI").ok_or_else(|| schema("FieldURI without value"))?.to_owned(),
                    );
                }
                "ExtendedFieldURI" => {
                    props.ext.push(prop_key(p).ok_or_else(|| schema("incomplete ExtendedFieldURI"))?)
                }
                _ => return Err(schema(format!("{} is not a property path", p.name))),
            }
        }
    }
    Ok(props)
}

fn mailbox_el(name: &str, email: Option<&str>) -> Element {
    let mut mb = t("Mailbox").child(t("Name").text(name));
    if let Some(email) = email {
        mb = mb
            .child(t("EmailAddress").text(email))
            .child(t("RoutingType").text("SMTP"))
            .child(t("MailboxType").text("Mailbox"));
    }
    mb
}

fn attendees(name: &str, list: &[Att]) -> Element {
    t(name).children(list.iter().map(|a| {
        t("Attendee")
            .child(mailbox_el(&a.name, Some(&a.email)))
            .child(t("ResponseType").text(a.response.as_str()))
    }))
}

pub(crate) fn time(v: DateTime<Utc>) -> String {
    orb_ews::model::format_time(v)
}

/// Renders an item with the asked-for properties in schema order. `find`: FindItem's limits (no body,
/// no recipient lists, organizer name only, no series details). Occurrences and exceptions are rendered
/// from the items [`super::series::occurrence_item`] makes; a master's series details come from
/// [`super::series::summary`].
pub(crate) fn render(item: &Item, props: &Props, find: bool) -> Element {
    let has = |f: &str| props.wide || props.fields.contains(f);
    let mut el = t("CalendarItem")
        .child(t("ItemId").attr("Id", item.id.as_str()).attr("ChangeKey", item.change_key.as_str()));
    if has("item:Subject") {
        el = el.child(t("Subject").text(item.subject.as_str()));
    }
    if !find
        && (props.fields.contains("item:Body") || props.wide)
        && let Some(body) = &item.body
    {
        el = el.child(t("Body").attr("BodyType", "Text").text(body.as_str()));
    }
    for key in &props.ext {
        if let Some(v) = item.ext.get(key) {
            el = el.child(
                t("ExtendedProperty")
                    .child(
                        t("ExtendedFieldURI")
                            .attr("PropertySetId", key.0.as_str())
                            .attr("PropertyName", key.1.as_str())
                            .attr("PropertyType", key.2.as_str()),
                    )
                    .child(t("Value").text(v.as_str())),
            );
        }
    }
    if has("item:LastModifiedTime") {
        el = el.child(t("LastModifiedTime").text(time(item.last_modified)));
    }
    if has("calendar:UID") && !find {
        el = el.child(t("UID").text(item.uid.as_str()));
    }
    if has("calendar:Start") {
        el = el.child(t("Start").text(time(item.start)));
    }
    if has("calendar:End") {
        el = el.child(t("End").text(time(item.end)));
    }
    if has("calendar:OriginalStart")
        && let Some(o) = item.original_start
    {
        el = el.child(t("OriginalStart").text(time(o)));
    }
    if has("calendar:LegacyFreeBusyStatus") {
        el = el.child(t("LegacyFreeBusyStatus").text(item.free_busy.as_str()));
    }
    if has("calendar:Location")
        && let Some(l) = &item.location
    {
        el = el.child(t("Location").text(l.as_str()));
    }
    if has("calendar:IsCancelled") {
        el = el.child(t("IsCancelled").text(if item.is_cancelled { "true" } else { "false" }));
    }
    if has("calendar:CalendarItemType") {
        el = el.child(t("CalendarItemType").text(item.kind.as_str()));
    }
    if has("calendar:MyResponseType") {
        el = el.child(t("MyResponseType").text(item.my_response.as_str()));
    }
    if has("calendar:Organizer") {
        let email = (!find).then_some(item.organizer.1.as_str());
        el = el.child(t("Organizer").child(mailbox_el(&item.organizer.0, email)));
    }
    if !find && has("calendar:RequiredAttendees") && !item.required.is_empty() {
        el = el.child(attendees("RequiredAttendees", &item.required));
    }
    if !find && has("calendar:Resources") && !item.resources.is_empty() {
        el = el.child(attendees("Resources", &item.resources));
    }
    if has("calendar:AppointmentState") {
        el = el.child(t("AppointmentState").text(item.appointment_state().to_string()));
    }
    if !find && let Some(rec) = &item.recurrence {
        el = series_details(el, item, rec, &has);
    }
    // One zone for both ends (ORB sends the same; the emulator keeps one).
    for name in ["StartTimeZone", "EndTimeZone"] {
        if has(&format!("calendar:{name}"))
            && let Some(z) = &item.time_zone
        {
            el = el.child(t(name).attr("Id", z.as_str()));
        }
    }
    el
}

fn occurrence_el(name: &str, o: &Occ) -> Element {
    t(name)
        .child(t("ItemId").attr("Id", o.id.as_str()).attr("ChangeKey", o.change_key.as_str()))
        .child(t("Start").text(time(o.start)))
        .child(t("End").text(time(o.end)))
        .child(t("OriginalStart").text(time(o.original_start)))
}

/// A master's `Recurrence`, `FirstOccurrence`, `LastOccurrence`, `ModifiedOccurrences`,
/// `DeletedOccurrences`, in schema order.
fn series_details(mut el: Element, item: &Item, rec: &Recurrence, has: &dyn Fn(&str) -> bool) -> Element {
    let summary = super::series::summary(item);
    if has("calendar:Recurrence") {
        el = el.child(rec.to_element());
    }
    if has("calendar:FirstOccurrence")
        && let Some(first) = &summary.first
    {
        el = el.child(occurrence_el("FirstOccurrence", first));
    }
    if has("calendar:LastOccurrence")
        && let Some(last) = &summary.last
    {
        el = el.child(occurrence_el("LastOccurrence", last));
    }
    if has("calendar:ModifiedOccurrences") && !summary.modified.is_empty() {
        el = el.child(
            t("ModifiedOccurrences")
                .children(summary.modified.iter().map(|o| occurrence_el("Occurrence", o))),
        );
    }
    if has("calendar:DeletedOccurrences") && !item.deleted_occurrences.is_empty() {
        el = el.child(t("DeletedOccurrences").children(
            item.deleted_occurrences.iter().map(|d| t("DeletedOccurrence").child(t("Start").text(time(*d)))),
        ));
    }
    el
}
