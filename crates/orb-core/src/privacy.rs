//! **Erasure of a person** (a data-subject request): the stable pseudonym that replaces an address, the
//! exact, case-insensitive text replacement the store applies to every column that may name the person,
//! and [`restore_erased`], with which the engine puts the real address back into a record when a source
//! system shows it again (the source systems are the customer's systems of record; ORB only mirrors them).
//!
//! ## Invariants
//! - A pseudonym is a valid [`EmailAddress`] in the reserved `.invalid` top-level domain (RFC 2606), so it
//!   parses wherever an address is expected and no mail can ever reach it.
//! - The same tenant and address always give the same pseudonym, so an erasure run twice, or a booking
//!   erased in two steps, stays consistent; another tenant gets another pseudonym.
//! - [`replace_address`] replaces whole addresses only: erasing `bob@contoso.com` leaves
//!   `jimbob@contoso.com` and `bob@contoso.com.au` alone.

use sha2::{Digest, Sha256};

use crate::{BookingRecord, EmailAddress, TenantId};

/// The domain of every pseudonym (reserved, never resolvable).
pub const ERASED_DOMAIN: &str = "erased.invalid";

/// The pseudonym that replaces `address` in `tenant`'s data:
/// `erased-<first 16 hex digits of SHA-256("orb-erase-v1", tenant, address)>@erased.invalid`.
///
/// It is a pseudonym, not an anonymisation: whoever already knows the address and the tenant can compute
/// it (to find what is left of that person's bookings); nobody can compute the address from it.
pub fn pseudonym(tenant: TenantId, address: &EmailAddress) -> EmailAddress {
    let mut hash = Sha256::new();
    hash.update(b"orb-erase-v1\0");
    hash.update(tenant.as_uuid().as_bytes());
    hash.update(b"\0");
    hash.update(address.as_str().as_bytes());
    let digest = hash.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    EmailAddress::parse(&format!("erased-{hex}@{ERASED_DOMAIN}"))
        .expect("a pseudonym is a valid address by construction")
}

/// Whether `address` is a pseudonym left by an erasure.
pub fn is_pseudonym(address: &EmailAddress) -> bool {
    address.domain() == ERASED_DOMAIN
}

/// Characters that continue an address to the left (a longer local part).
fn continues_local(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'+' | b'-' | b'\'')
}

/// Whether the address found at `[start, end)` of `text` stands on its own (is not part of a longer one).
fn whole(text: &[u8], start: usize, end: usize) -> bool {
    let left_ok = start == 0 || !continues_local(text[start - 1]);
    let right_ok = match text.get(end) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || *b == b'-' => false,
        Some(b'.') => !text.get(end + 1).is_some_and(u8::is_ascii_alphanumeric),
        Some(_) => true,
    };
    left_ok && right_ok
}

/// Where `address` occurs in `text` as a whole address, in any letter case.
fn occurrences(text: &str, address: &EmailAddress) -> Vec<usize> {
    let (hay, needle) = (text.as_bytes(), address.as_str().as_bytes());
    if needle.is_empty() || hay.len() < needle.len() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay[i..i + needle.len()].eq_ignore_ascii_case(needle) && whole(hay, i, i + needle.len()) {
            found.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    found
}

/// Whether `text` names `address` (whole, any letter case).
pub fn mentions(text: &str, address: &EmailAddress) -> bool {
    !occurrences(text, address).is_empty()
}

/// `text` with every whole occurrence of `address` (any letter case) replaced by `with`; `None` when it
/// does not occur. Addresses are ASCII ([`EmailAddress`]), so byte positions are character boundaries.
pub fn replace_address(text: &str, address: &EmailAddress, with: &str) -> Option<String> {
    let found = occurrences(text, address);
    if found.is_empty() {
        return None;
    }
    let len = address.as_str().len();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for start in found {
        out.push_str(&text[last..start]);
        out.push_str(with);
        last = start + len;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// Puts real addresses back into an erased record: every pseudonym in the organizer, `booked_by` or the
/// participants that is the pseudonym of one of the `seen` addresses (what a source system shows for the
/// booking now) becomes that address again. The set-once original organizer keeps its pseudonym. Returns
/// whether anything changed.
pub fn restore_erased<'a>(
    record: &mut BookingRecord,
    seen: impl IntoIterator<Item = &'a EmailAddress>,
) -> bool {
    let tenant = record.tenant_id;
    let back: Vec<(EmailAddress, EmailAddress)> =
        seen.into_iter().map(|a| (pseudonym(tenant, a), a.clone())).collect();
    let real = |a: &EmailAddress| back.iter().find(|(p, _)| p == a).map(|(_, r)| r.clone());
    let mut changed = false;
    if let Some(r) = real(&record.organizer) {
        record.organizer = r;
        changed = true;
    }
    if let Some(r) = record.booked_by.as_ref().and_then(real) {
        record.booked_by = Some(r);
        changed = true;
    }
    for p in &mut record.participants {
        if let Some(r) = real(p) {
            *p = r;
            changed = true;
        }
    }
    changed
}

/// Whether the record still names a pseudonym where a real address is used to reach someone (organizer,
/// `booked_by`, participants).
pub fn has_pseudonyms(record: &BookingRecord) -> bool {
    is_pseudonym(&record.organizer)
        || record.booked_by.as_ref().is_some_and(is_pseudonym)
        || record.participants.iter().any(is_pseudonym)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn pseudonyms_are_stable_per_tenant_and_valid() {
        let (t1, t2) =
            (TenantId::from_uuid(uuid::Uuid::from_u128(1)), TenantId::from_uuid(uuid::Uuid::from_u128(2)));
        let anna = addr("anna@contoso.com");
        let p = pseudonym(t1, &anna);
        assert_eq!(p, pseudonym(t1, &addr("Anna@Contoso.com")));
        assert_ne!(p, pseudonym(t2, &anna));
        assert_ne!(p, pseudonym(t1, &addr("bob@contoso.com")));
        assert!(is_pseudonym(&p) && !is_pseudonym(&anna));
        assert!(p.as_str().starts_with("erased-") && p.as_str().ends_with("@erased.invalid"));
        assert_eq!(p.as_str().len(), "erased-".len() + 16 + "@erased.invalid".len());
        assert_eq!(EmailAddress::parse(p.as_str()).unwrap(), p);
    }

    #[test]
    fn restore_puts_back_only_the_addresses_a_source_shows_again() {
        use crate::{AppointmentType, NewBooking, RoomId, Side, TimeZoneName};
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(7));
        let (anna, bob) = (addr("anna@contoso.com"), addr("bob@contoso.com"));
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut record = BookingRecord::new(
            NewBooking {
                tenant_id: tenant,
                appointment_type: AppointmentType::Single,
                series_id: None,
                original_start: None,
                organizer: pseudonym(tenant, &anna),
                booked_by: None,
                location_text: None,
                room_id: RoomId::from_uuid(uuid::Uuid::from_u128(8)),
                participants: vec![pseudonym(tenant, &bob), addr("carl@contoso.com")],
                subject: None,
                start: now,
                end: now + chrono::Duration::hours(1),
                time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                processor_created: Side::Exchange,
            },
            now,
        );
        assert!(has_pseudonyms(&record));
        // Outlook shows only Anna: Bob stays erased.
        assert!(restore_erased(&mut record, [&anna, &addr("dave@contoso.com")]));
        assert_eq!(record.organizer, anna);
        assert_eq!(record.original_organizer, pseudonym(tenant, &anna), "set-once: stays erased");
        assert_eq!(record.participants, [pseudonym(tenant, &bob), addr("carl@contoso.com")]);
        assert!(restore_erased(&mut record, [&bob]));
        assert!(!has_pseudonyms(&record));
        assert!(!restore_erased(&mut record, [&anna, &bob]), "nothing left to restore");
    }

    #[test]
    fn only_whole_addresses_are_replaced_in_any_case() {
        let bob = addr("bob@contoso.com");
        let cases: &[(&str, Option<&str>)] = &[
            ("bob@contoso.com", Some("X")),
            (
                r#"{"organizer":"Bob@Contoso.COM","to":["bob@contoso.com"]}"#,
                Some(r#"{"organizer":"X","to":["X"]}"#),
            ),
            ("mail to bob@contoso.com.", Some("mail to X.")),
            ("<bob@contoso.com>, bob@contoso.com", Some("<X>, X")),
            ("users/bob@contoso.com/events", Some("users/X/events")),
            ("jimbob@contoso.com", None),
            ("jim.bob@contoso.com", None),
            ("bob@contoso.com.au", None),
            ("bob@contoso.community", None),
            ("bob@contoso-com", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(replace_address(text, &bob, "X").as_deref(), *expected, "{text:?}");
            assert_eq!(mentions(text, &bob), expected.is_some(), "{text:?}");
        }
    }
}
