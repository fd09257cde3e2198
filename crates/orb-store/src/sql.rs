//! SQL text shared by both back-ends (both accept `$n` placeholders). The column lists were generated once
//! and live only here, so the insert and the update bind in one order (see `bind_mutable!`).

/// Insert a booking: 7 set-once columns, then the 32 mutable ones.
pub(crate) const INSERT_BOOKING: &str = "INSERT INTO bookings (id, tenant_id, correlation_id, original_organizer, created_at, \
     processor_created, version, appointment_type, series_id, original_start, organizer, booked_by, \
     location_text, room_id, participants, subject, start_at, end_at, time_zone, cancelled, \
     complexity_index, last_updated_at, last_updated_processor, failed_at, failed_processor, \
     failed_count, retry_count, exchange_status, topdesk_status, exchange_organizer_event_id, \
     exchange_room_event_id, exchange_ical_uid, exchange_change_key, exchange_modified_at, \
     topdesk_reservation_id, topdesk_reservation_number, topdesk_modification_date, \
     exchange_fingerprint, topdesk_fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, \
     $31, $32, $33, $34, $35, $36, $37, $38, $39)";

/// Update the 32 mutable columns of a booking at an expected version; bumps the version.
pub(crate) const UPDATE_BOOKING: &str = "UPDATE bookings SET appointment_type = $4, series_id = $5, original_start = $6, organizer = $7, \
     booked_by = $8, location_text = $9, room_id = $10, participants = $11, subject = $12, start_at = \
     $13, end_at = $14, time_zone = $15, cancelled = $16, complexity_index = $17, last_updated_at = \
     $18, last_updated_processor = $19, failed_at = $20, failed_processor = $21, failed_count = $22, \
     retry_count = $23, exchange_status = $24, topdesk_status = $25, exchange_organizer_event_id = \
     $26, exchange_room_event_id = $27, exchange_ical_uid = $28, exchange_change_key = $29, \
     exchange_modified_at = $30, topdesk_reservation_id = $31, topdesk_reservation_number = $32, \
     topdesk_modification_date = $33, exchange_fingerprint = $34, topdesk_fingerprint = $35, version \
     = version + 1 WHERE tenant_id = $1 AND id = $2 AND version = $3";

/// Tenant settings, `expected_version = None`: insert at version 1, or overwrite and bump the version.
pub(crate) const UPSERT_TENANT_SETTINGS: &str = "INSERT INTO tenant_settings (tenant_id, document, version, updated_at) \
     VALUES ($1, $2, 1, $3) ON CONFLICT (tenant_id) DO UPDATE SET document = excluded.document, \
     version = tenant_settings.version + 1, updated_at = excluded.updated_at RETURNING *";

/// Tenant settings, `expected_version = Some(0)`: insert at version 1 only if none exist (no row returned
/// otherwise).
pub(crate) const INSERT_TENANT_SETTINGS: &str = "INSERT INTO tenant_settings (tenant_id, document, version, updated_at) \
     VALUES ($1, $2, 1, $3) ON CONFLICT (tenant_id) DO NOTHING RETURNING *";

/// Tenant settings, `expected_version = Some(v)`: overwrite only at version `$4`, bumping it.
pub(crate) const UPDATE_TENANT_SETTINGS: &str = "UPDATE tenant_settings SET document = $2, version = version + 1, updated_at = $3 \
     WHERE tenant_id = $1 AND version = $4 RETURNING *";

/// Takes or renews a lease in one statement: `$1` name, `$2` holder, `$3` new expiry, `$4` now. The row is
/// written (and returned) only when the lease is free, expired or already ours; otherwise nothing is
/// returned. Atomic on both back-ends: PostgreSQL re-checks the `WHERE` against the row a concurrent
/// inserter committed, SQLite runs it inside `BEGIN IMMEDIATE`.
pub(crate) const TRY_LEASE: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
     WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 RETURNING holder";

// ---- retention purge (`$1` tenant, `$2` cutoff) ----

/// Inbox items processed before the cutoff.
pub(crate) const PURGE_INBOX: &str =
    "DELETE FROM inbox WHERE tenant_id = $1 AND processed_at IS NOT NULL AND processed_at < $2";
/// Done jobs finished before the cutoff.
pub(crate) const PURGE_DONE_JOBS: &str =
    "DELETE FROM jobs WHERE tenant_id = $1 AND status = 'done' AND finished_at < $2";
/// Dead jobs that died before the cutoff.
pub(crate) const PURGE_DEAD_JOBS: &str =
    "DELETE FROM jobs WHERE tenant_id = $1 AND status = 'dead' AND finished_at < $2";
/// The timelines of bookings that ended before the cutoff (before the bookings: foreign key).
pub(crate) const PURGE_BOOKING_EVENTS: &str = "DELETE FROM booking_events WHERE tenant_id = $1 AND booking_id IN \
     (SELECT id FROM bookings WHERE tenant_id = $1 AND end_at < $2)";
/// Bookings that ended before the cutoff.
pub(crate) const PURGE_BOOKINGS: &str = "DELETE FROM bookings WHERE tenant_id = $1 AND end_at < $2";
/// Series without bookings, unchanged since before the cutoff (a live series is upserted again by the
/// next observation of one of its occurrences).
pub(crate) const PURGE_SERIES: &str = "DELETE FROM series WHERE tenant_id = $1 AND updated_at < $2 AND NOT EXISTS \
     (SELECT 1 FROM bookings b WHERE b.tenant_id = series.tenant_id AND b.series_id = series.id)";
/// Audit rows written before the cutoff.
pub(crate) const PURGE_AUDIT: &str = "DELETE FROM audit_log WHERE tenant_id = $1 AND at < $2";

// ---- a person's rows (`$1` tenant, `$2` the lower-case address as a LIKE pattern, `\` escapes) ----
// The LIKE only narrows the rows down; the caller keeps those that name the address as a whole
// (`orb_core::privacy::mentions`).

/// Records that may name the person.
pub(crate) const PERSON_BOOKINGS: &str = "SELECT * FROM bookings WHERE tenant_id = $1 AND (\
     lower(organizer) LIKE $2 ESCAPE '\\' OR lower(original_organizer) LIKE $2 ESCAPE '\\' \
     OR lower(COALESCE(booked_by, '')) LIKE $2 ESCAPE '\\' OR lower(participants) LIKE $2 ESCAPE '\\' \
     OR lower(COALESCE(subject, '')) LIKE $2 ESCAPE '\\' OR lower(COALESCE(location_text, '')) LIKE $2 ESCAPE '\\') \
     ORDER BY start_at, id";
/// Timeline entries that may name the person.
pub(crate) const PERSON_BOOKING_EVENTS: &str =
    "SELECT * FROM booking_events WHERE tenant_id = $1 AND lower(detail) LIKE $2 ESCAPE '\\' ORDER BY id";
/// Series the person may organize.
pub(crate) const PERSON_SERIES: &str =
    "SELECT * FROM series WHERE tenant_id = $1 AND lower(organizer) LIKE $2 ESCAPE '\\' ORDER BY id";
/// Audit rows that may name the person.
pub(crate) const PERSON_AUDIT: &str = "SELECT * FROM audit_log WHERE tenant_id = $1 AND \
     (lower(actor) LIKE $2 ESCAPE '\\' OR lower(target) LIKE $2 ESCAPE '\\') ORDER BY id";
/// Jobs that may name the person.
pub(crate) const PERSON_JOBS: &str = "SELECT * FROM jobs WHERE tenant_id = $1 AND \
     (lower(payload) LIKE $2 ESCAPE '\\' OR lower(COALESCE(last_error, '')) LIKE $2 ESCAPE '\\') ORDER BY id";
/// Inbox items that may name the person.
pub(crate) const PERSON_INBOX: &str =
    "SELECT * FROM inbox WHERE tenant_id = $1 AND lower(payload) LIKE $2 ESCAPE '\\' ORDER BY id";

/// Erasure of a record's person fields, set-once original organizer included; bumps the version so a
/// sync holding the record conflicts and replans.
pub(crate) const ERASE_BOOKING: &str = "UPDATE bookings SET organizer = $3, original_organizer = $4, booked_by = $5, \
     participants = $6, subject = $7, location_text = $8, version = version + 1 WHERE tenant_id = $1 AND id = $2";

/// `%address%` for the `PERSON_*` queries, with LIKE's wildcards in the address escaped.
pub(crate) fn like_pattern(address: &str) -> String {
    let mut out = String::with_capacity(address.len() + 2);
    out.push('%');
    for c in address.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
