-- Retention purge and per-person erasure. The append-only tables accept a change only inside the store's
-- purge transaction (deletes) or erasure transaction (updates): that transaction sets the gate's mode and
-- sets it back before it commits, so no committed state ever has the gate open. Every other UPDATE or
-- DELETE is refused as before, and booking_events now refuses deletes too (its timeline is never
-- rewritten). A missing gate row refuses everything.

CREATE TABLE append_only_gate (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    mode  TEXT CHECK (mode IN ('purge', 'erase'))
);
INSERT INTO append_only_gate (id, mode) VALUES (1, NULL);
CREATE TRIGGER append_only_gate_no_delete BEFORE DELETE ON append_only_gate
BEGIN SELECT RAISE(ABORT, 'append_only_gate must keep its row'); END;

DROP TRIGGER audit_log_no_update;
DROP TRIGGER audit_log_no_delete;
DROP TRIGGER booking_events_no_update;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN (SELECT mode FROM append_only_gate WHERE id = 1) IS NOT 'erase'
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN (SELECT mode FROM append_only_gate WHERE id = 1) IS NOT 'purge'
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER booking_events_no_update BEFORE UPDATE ON booking_events
WHEN (SELECT mode FROM append_only_gate WHERE id = 1) IS NOT 'erase'
BEGIN SELECT RAISE(ABORT, 'booking_events is append-only'); END;
CREATE TRIGGER booking_events_no_delete BEFORE DELETE ON booking_events
WHEN (SELECT mode FROM append_only_gate WHERE id = 1) IS NOT 'purge'
BEGIN SELECT RAISE(ABORT, 'booking_events is append-only'); END;

-- What the purge looks for.
CREATE INDEX bookings_end ON bookings (tenant_id, end_at);
CREATE INDEX jobs_finished ON jobs (tenant_id, status, finished_at) WHERE status IN ('done', 'dead');
CREATE INDEX inbox_processed ON inbox (tenant_id, processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX audit_log_at ON audit_log (tenant_id, at);
