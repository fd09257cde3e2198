//! FindItem over a mailbox's calendar, in the two forms ORB uses:
//!
//! - a `CalendarView`: series expanded into their occurrences and exceptions within the window (never
//!   the master), `MaxEntriesReturned` with `IncludesLastItemInRange`, the two-year limit;
//! - an `IndexedPageItemView` (or no view): the stored single items and series masters, never an
//!   occurrence (exceptions live inside their master), paged by `Offset` from the `BasePoint`, with
//!   `IndexedPagingOffset`, `TotalItemsInView` and `IncludesLastItemInRange`.
//!
//! A `Restriction` is evaluated with an indexed view: `IsEqualTo` of an extended property
//! (`PropertySetId` + `PropertyName` + `PropertyType`) and a `Constant`, compared exactly — ORB's
//! match-id lookup (ews.md §3.3). A malformed restriction is an `ErrorSchemaValidation` fault; a valid one
//! the emulator does not evaluate (another operator or path, a comparison of two properties) is refused
//! with `ErrorUnsupportedQueryFilter` naming what it evaluates, never ignored. A `Restriction` or
//! `SortOrder` with a `CalendarView` is refused with `ErrorInvalidRestriction` and the message users
//! report from Exchange ("Restrictions and sort order may not be specified for a CalendarView.", U8:
//! the strict case). Only the calendar folder is listed (`DistinguishedFolderId Id="calendar"`).

use chrono::Duration;
use orb_ews::model::parse_time;
use orb_ews::xml::{Element, MESSAGES, TYPES};

use super::ops::{Ctx, Fault, fault, m, message, response, schema, t};
use super::render::{Props, prop_key, render, shape};
use super::series as ser;
use super::state::{Inner, Item, PropKey, Refusal, refuse};

/// A restriction the emulator evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    /// `IsEqualTo` of an extended property and a constant (compared exactly).
    ExtendedEquals(PropKey, String),
}

impl Filter {
    fn matches(&self, item: &Item) -> bool {
        match self {
            Self::ExtendedEquals(key, value) => item.ext.get(key) == Some(value),
        }
    }
}

/// The schema's search expressions (`SearchExpression`'s substitution group).
const SEARCH_EXPRESSIONS: &[&str] = &[
    "Exists",
    "Excludes",
    "IsEqualTo",
    "IsNotEqualTo",
    "IsGreaterThan",
    "IsGreaterThanOrEqualTo",
    "IsLessThan",
    "IsLessThanOrEqualTo",
    "Contains",
    "Not",
    "And",
    "Or",
];

/// The schema's property paths (`Path`'s substitution group).
const PATHS: &[&str] = &["FieldURI", "IndexedFieldURI", "ExtendedFieldURI"];

fn is_path(el: &Element) -> bool {
    el.ns == TYPES && PATHS.contains(&el.name.as_str())
}

/// What FindItem views and options the emulator does not evaluate (refused, not ignored).
const UNSUPPORTED: &[&str] =
    &["FractionalPageItemView", "ContactsView", "GroupBy", "DistinguishedGroupBy", "QueryString"];

/// Reads `m:Restriction`: malformed is a schema fault (`Err`); valid but not evaluated by the emulator is
/// a per-message refusal (`Ok(Err)`).
pub(crate) fn restriction(el: &Element) -> Result<Result<Filter, Refusal>, Fault> {
    let [expr] = el.children.as_slice() else {
        return Err(schema("Restriction must hold exactly one search expression"));
    };
    if expr.ns != TYPES || !SEARCH_EXPRESSIONS.contains(&expr.name.as_str()) {
        return Err(schema(format!("{} is not a search expression", expr.name)));
    }
    let unsupported = |what: String| {
        Ok(Err(refuse(
            "ErrorUnsupportedQueryFilter",
            format!(
                "The emulator evaluates only IsEqualTo of an ExtendedFieldURI (PropertySetId, PropertyName, \
                 PropertyType) and a Constant; {what} is not supported."
            ),
        )))
    };
    if expr.name != "IsEqualTo" {
        return unsupported(expr.name.clone());
    }
    // TwoOperandExpressionType: a property path, then FieldURIOrConstant.
    let [path, operand] = expr.children.as_slice() else {
        return Err(schema("IsEqualTo must hold a property path and FieldURIOrConstant"));
    };
    if !is_path(path) {
        return Err(schema(format!("{} is not a property path", path.name)));
    }
    if !operand.is(TYPES, "FieldURIOrConstant") {
        return Err(schema(format!("{} is not FieldURIOrConstant", operand.name)));
    }
    let [value] = operand.children.as_slice() else {
        return Err(schema("FieldURIOrConstant must hold one property path or Constant"));
    };
    let constant = if value.is(TYPES, "Constant") {
        value.get_attr("Value").ok_or_else(|| schema("Constant without Value"))?
    } else if is_path(value) {
        return unsupported("comparing two properties".into());
    } else {
        return Err(schema(format!("{} is not a property path or Constant", value.name)));
    };
    if path.name != "ExtendedFieldURI" {
        let name = path.get_attr("FieldURI").unwrap_or(path.name.as_str());
        return unsupported(format!("IsEqualTo on {name}"));
    }
    if path.get_attr("PropertyType").is_none() {
        return Err(schema("ExtendedFieldURI without PropertyType"));
    }
    match prop_key(path) {
        Some(key) => Ok(Ok(Filter::ExtendedEquals(key, constant.to_owned()))),
        None => unsupported("an ExtendedFieldURI without PropertySetId and PropertyName".into()),
    }
}

/// `ParentFolderIds` is required and must name the calendar (the only folder the emulator lists).
fn calendar_folder(op: &Element) -> Result<(), Fault> {
    let ids = op.find(MESSAGES, "ParentFolderIds").ok_or_else(|| schema("ParentFolderIds is required"))?;
    match ids.children.as_slice() {
        [f] if f.is(TYPES, "DistinguishedFolderId") && f.get_attr("Id") == Some("calendar") => Ok(()),
        [] => Err(schema("ParentFolderIds must name a folder")),
        _ => Err(fault(
            "ErrorInvalidRequest",
            "The emulator lists one folder: DistinguishedFolderId calendar of the impersonated mailbox.",
        )),
    }
}

/// `FindItem`.
pub(crate) fn find_item(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let mb = ctx.mailbox()?;
    let props = shape(op)?;
    calendar_folder(op)?;
    let filter = op.find(MESSAGES, "Restriction").map(restriction).transpose()?;
    let sorted = op.find(MESSAGES, "SortOrder").is_some();
    let result = if let Some(view) = op.find(MESSAGES, "CalendarView") {
        if filter.is_some() || sorted {
            Err(refuse(
                "ErrorInvalidRestriction",
                "Restrictions and sort order may not be specified for a CalendarView.",
            ))
        } else {
            calendar_view(inner, mb, &props, view)?
        }
    } else {
        if let Some(name) = UNSUPPORTED.iter().find(|n| op.find(MESSAGES, n).is_some()) {
            return Err(fault(
                "ErrorInvalidRequest",
                format!(
                    "The emulator lists items through a CalendarView or an IndexedPageItemView; {name} is \
                     not supported."
                ),
            ));
        }
        if sorted {
            return Err(fault(
                "ErrorInvalidRequest",
                "The emulator lists items in creation order; SortOrder is not supported.",
            ));
        }
        match filter {
            Some(Err(refusal)) => Err(refusal),
            Some(Ok(filter)) => indexed(inner, mb, &props, op, Some(&filter))?,
            None => indexed(inner, mb, &props, op, None)?,
        }
    };
    Ok(response("FindItem", vec![message("FindItem", result)]))
}

type Answer = Result<Vec<Element>, Refusal>;

/// A `CalendarView`: series expanded within the window.
fn calendar_view(inner: &Inner, mb: &str, props: &Props, view: &Element) -> Result<Answer, Fault> {
    let date = |name: &str| {
        view.get_attr(name)
            .and_then(parse_time)
            .ok_or_else(|| schema(format!("CalendarView {name} is required")))
    };
    let (start, end) = (date("StartDate")?, date("EndDate")?);
    let max: usize = view.get_attr("MaxEntriesReturned").and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
    if end < start {
        return Ok(Err(refuse(
            "ErrorInvalidRequest",
            "The EndDate of the CalendarView is earlier than its StartDate.",
        )));
    }
    if end - start > Duration::days(731) {
        return Ok(Err(refuse(
            "ErrorCalendarViewRangeTooBig",
            "The calendar view range exceeds the two-year limit.",
        )));
    }
    // Series are expanded: their occurrences and exceptions in the window, never the master.
    let mut items: Vec<Item> = Vec::new();
    for i in inner.mailboxes[mb].items.values().filter(|i| !i.deleted) {
        if i.recurrence.is_some() {
            items.extend(
                ser::instances(i, start, end).iter().map(|o| ser::occurrence_item(i, o.original_start)),
            );
        } else if i.start < end && i.end > start {
            items.push(i.clone());
        }
    }
    items.sort_by_key(|i| (i.start, i.id.clone()));
    let includes_last = items.len() <= max;
    let shown: Vec<Element> = items.iter().take(max).map(|i| render(i, props, true)).collect();
    Ok(Ok(vec![
        m("RootFolder")
            .attr("TotalItemsInView", shown.len().to_string())
            .attr("IncludesLastItemInRange", if includes_last { "true" } else { "false" })
            .child(t("Items").children(shown)),
    ]))
}

/// An `IndexedPageItemView` (or none: everything): the stored singles and masters matching `filter`.
fn indexed(
    inner: &Inner,
    mb: &str,
    props: &Props,
    op: &Element,
    filter: Option<&Filter>,
) -> Result<Answer, Fault> {
    let (max, offset, from_end) = match op.find(MESSAGES, "IndexedPageItemView") {
        None => (usize::MAX, 0, false),
        Some(view) => {
            let number = |name: &str| {
                view.get_attr(name)
                    .map(|v| {
                        v.trim().parse::<i64>().map_err(|_| schema(format!("{name} `{v}` is not an int")))
                    })
                    .transpose()
            };
            let max = number("MaxEntriesReturned")?;
            let offset = number("Offset")?.ok_or_else(|| schema("IndexedPageItemView Offset is required"))?;
            let from_end = match view.get_attr("BasePoint") {
                Some("Beginning") => false,
                Some("End") => true,
                Some(other) => return Err(schema(format!("BasePoint `{other}` is not Beginning or End"))),
                None => return Err(schema("IndexedPageItemView BasePoint is required")),
            };
            if offset < 0 || max.is_some_and(|n| n < 1) {
                return Ok(Err(refuse(
                    "ErrorInvalidIndexedPagingParameters",
                    "Offset must not be negative and MaxEntriesReturned must be at least 1.",
                )));
            }
            let max = max.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
            (max, usize::try_from(offset).unwrap_or(usize::MAX), from_end)
        }
    };
    // Not expanded: stored single items and masters (an exception lives in its master), in creation
    // order (ids increase).
    let matching: Vec<&Item> = inner.mailboxes[mb]
        .items
        .values()
        .filter(|i| !i.deleted && filter.is_none_or(|f| f.matches(i)))
        .collect();
    let total = matching.len();
    let page: &[&Item] = if from_end {
        let end = total.saturating_sub(offset);
        &matching[end.saturating_sub(max)..end]
    } else {
        let start = offset.min(total);
        &matching[start..start.saturating_add(max).min(total)]
    };
    let next = offset.saturating_add(page.len());
    let shown: Vec<Element> = page.iter().map(|i| render(i, props, true)).collect();
    Ok(Ok(vec![
        m("RootFolder")
            .attr("IndexedPagingOffset", next.to_string())
            .attr("TotalItemsInView", total.to_string())
            .attr("IncludesLastItemInRange", if next >= total { "true" } else { "false" })
            .child(t("Items").children(shown)),
    ]))
}

#[cfg(test)]
mod tests {
    use orb_ews::request;

    use super::*;

    fn restriction_of(op: &Element) -> &Element {
        op.find(MESSAGES, "Restriction").unwrap()
    }

    #[test]
    fn restrictions_are_evaluated_refused_or_faulted() {
        // ORB's lookup: evaluated, on ORB's property (set id lower case) and the constant.
        let lookup = request::find_by_match_id("m-1");
        let Ok(Ok(Filter::ExtendedEquals(key, value))) = restriction(restriction_of(&lookup)) else {
            panic!("ORB's lookup is evaluated")
        };
        assert_eq!(key.0, orb_ews::model::ORB_PROPERTY_SET_ID);
        assert_eq!((key.1.as_str(), key.2.as_str(), value.as_str()), ("OrbMatchId", "String", "m-1"));
        let expr = |inner: Element| m("Restriction").child(inner);
        let equals = |path: Element, operand: Element| {
            t("IsEqualTo").child(path).child(t("FieldURIOrConstant").child(operand))
        };
        let constant = || t("Constant").attr("Value", "x");
        let subject = || t("FieldURI").attr("FieldURI", "item:Subject");
        // Valid but not evaluated: a per-message refusal naming what is.
        for unsupported in [
            expr(equals(subject(), constant())),
            expr(equals(request::match_field_uri(), subject())),
            expr(t("And").child(equals(request::match_field_uri(), constant()))),
            expr(equals(
                t("ExtendedFieldURI").attr("PropertyTag", "0x0037").attr("PropertyType", "String"),
                constant(),
            )),
        ] {
            let Ok(Err(r)) = restriction(&unsupported) else { panic!("{unsupported:?}") };
            assert_eq!(r.code, "ErrorUnsupportedQueryFilter");
            assert!(r.message.contains("IsEqualTo of an ExtendedFieldURI"), "{}", r.message);
        }
        // Malformed: a schema fault.
        for malformed in [
            m("Restriction"),
            expr(t("Equals")),
            expr(t("IsEqualTo").child(subject())),
            expr(equals(subject(), t("Constant"))),
            expr(equals(t("Value"), constant())),
            expr(equals(t("ExtendedFieldURI").attr("PropertyName", "n"), constant())),
        ] {
            let Err(f) = restriction(&malformed) else { panic!("{malformed:?}") };
            assert_eq!(f.code, "ErrorSchemaValidation", "{malformed:?}");
        }
    }
}
