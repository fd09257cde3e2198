-- ORB schema, SQLite. Append-only: never edit an applied migration, add a new file.
-- Instants are BIGINT microseconds since the Unix epoch (UTC), the same on both back-ends.

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE rooms (
    id                   BLOB PRIMARY KEY,
    tenant_id            BLOB NOT NULL REFERENCES tenants(id),
    mailbox              TEXT NOT NULL,
    topdesk_location_id  TEXT NOT NULL,
    display_name         TEXT,
    enabled              INTEGER NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (tenant_id, mailbox),
    UNIQUE (tenant_id, topdesk_location_id),
    UNIQUE (tenant_id, id)
);

CREATE TABLE series (
    id                        BLOB PRIMARY KEY,
    tenant_id                 BLOB NOT NULL REFERENCES tenants(id),
    room_id                   BLOB NOT NULL,
    organizer                 TEXT NOT NULL,
    ical_uid                  TEXT,
    exchange_master_event_id  TEXT,
    topdesk_series_id         TEXT,
    pattern                   TEXT NOT NULL,
    time_zone                 TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, room_id) REFERENCES rooms(tenant_id, id),
    UNIQUE (tenant_id, id)
);

CREATE TABLE bookings (
    id                           BLOB PRIMARY KEY,
    tenant_id                    BLOB NOT NULL REFERENCES tenants(id),
    correlation_id               BLOB NOT NULL,
    appointment_type             TEXT NOT NULL,
    series_id                    BLOB,
    original_start               BIGINT,
    organizer                    TEXT NOT NULL,
    original_organizer           TEXT NOT NULL,
    booked_by                    TEXT,
    location_text                TEXT,
    room_id                      BLOB NOT NULL,
    participants                 TEXT NOT NULL,
    subject                      TEXT,
    start_at                     BIGINT NOT NULL,
    end_at                       BIGINT NOT NULL,
    time_zone                    TEXT NOT NULL,
    cancelled                    INTEGER NOT NULL,
    complexity_index             BIGINT NOT NULL,
    created_at                   BIGINT NOT NULL,
    processor_created            TEXT NOT NULL,
    last_updated_at              BIGINT NOT NULL,
    last_updated_processor       TEXT,
    failed_at                    BIGINT,
    failed_processor             TEXT,
    failed_count                 BIGINT NOT NULL,
    retry_count                  BIGINT NOT NULL,
    exchange_status              TEXT NOT NULL,
    topdesk_status               TEXT NOT NULL,
    exchange_organizer_event_id  TEXT,
    exchange_room_event_id       TEXT,
    exchange_ical_uid            TEXT,
    exchange_change_key          TEXT,
    exchange_modified_at         BIGINT,
    topdesk_reservation_id       TEXT,
    topdesk_reservation_number   TEXT,
    topdesk_modification_date    BIGINT,
    exchange_fingerprint         TEXT,
    topdesk_fingerprint          TEXT,
    version                      BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, room_id) REFERENCES rooms(tenant_id, id),
    FOREIGN KEY (tenant_id, series_id) REFERENCES series(tenant_id, id),
    UNIQUE (tenant_id, id),
    CHECK (end_at >= start_at)
);
CREATE INDEX bookings_room_start ON bookings (tenant_id, room_id, start_at);
CREATE INDEX bookings_series ON bookings (tenant_id, series_id);
CREATE UNIQUE INDEX bookings_topdesk_reservation ON bookings (tenant_id, topdesk_reservation_id)
    WHERE topdesk_reservation_id IS NOT NULL;
CREATE INDEX bookings_exchange_organizer_event ON bookings (tenant_id, exchange_organizer_event_id);
CREATE INDEX bookings_exchange_room_event ON bookings (tenant_id, exchange_room_event_id);
CREATE INDEX bookings_ical_uid ON bookings (tenant_id, exchange_ical_uid, original_start);

CREATE TABLE booking_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       BLOB NOT NULL,
    booking_id      BLOB NOT NULL,
    correlation_id  BLOB NOT NULL,
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    side            TEXT,
    detail          TEXT NOT NULL,
    FOREIGN KEY (tenant_id, booking_id) REFERENCES bookings(tenant_id, id)
);
CREATE INDEX booking_events_booking ON booking_events (tenant_id, booking_id, id);

CREATE TABLE cursors (
    tenant_id   BLOB NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  BLOB REFERENCES tenants(id),
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    ip         TEXT
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE TABLE secrets (
    tenant_id   BLOB NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id         BLOB NOT NULL REFERENCES tenants(id),
    lane              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    correlation_id    BLOB,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts          BIGINT NOT NULL,
    run_at            BIGINT NOT NULL,
    lease_owner       TEXT,
    lease_token       BLOB,
    lease_expires_at  BIGINT,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    finished_at       BIGINT
);
-- The lane invariant, enforced by the database: never two running jobs in one lane.
CREATE UNIQUE INDEX jobs_one_running_per_lane ON jobs (tenant_id, lane) WHERE status = 'running';
CREATE INDEX jobs_lane_head ON jobs (tenant_id, lane, id) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_ready ON jobs (run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_tenant_status ON jobs (tenant_id, status, id);
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';

-- Append-only tables.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER booking_events_no_update BEFORE UPDATE ON booking_events
BEGIN SELECT RAISE(ABORT, 'booking_events is append-only'); END;
