//! What people's Outlook sends, for tests and the demo acting as people: a meeting created the way Outlook
//! writes it, without ORB's extended property (orb-ews' builder always sets one, since ORB's own creates must
//! carry the match id).

use orb_ews::model::NewMeeting;
use orb_ews::xml::Element;

/// The `CreateItem` Outlook sends for `meeting` (its `match_id` is ignored: no ORB property is written).
pub fn outlook_create_meeting(meeting: &NewMeeting) -> Element {
    fn strip(el: &mut Element) {
        el.children.retain(|c| c.name != "ExtendedProperty");
        el.children.iter_mut().for_each(strip);
    }
    let mut op = orb_ews::request::create_meeting(meeting);
    strip(&mut op);
    op
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use orb_core::EmailAddress;

    use super::*;

    #[test]
    fn outlook_writes_no_orb_property_and_everything_else() {
        let start = Utc.with_ymd_and_hms(2026, 9, 3, 8, 0, 0).unwrap();
        let meeting = NewMeeting {
            subject: "Budget".into(),
            match_id: "not-written".into(),
            start,
            end: start + chrono::Duration::hours(1),
            location: Some("Room 1".into()),
            room: Some(EmailAddress::parse("room1@contoso.com").unwrap()),
            attendees: Vec::new(),
            time_zone: None,
            recurrence: None,
        };
        let ours = orb_ews::request::create_meeting(&meeting).to_document();
        let theirs = outlook_create_meeting(&meeting).to_document();
        assert!(ours.contains("ExtendedProperty") && !theirs.contains("ExtendedProperty"));
        assert!(!theirs.contains("not-written"));
        assert!(theirs.contains("Budget") && theirs.contains("room1@contoso.com"));
    }
}
