-- Retention purge and per-person erasure. The append-only tables accept a change only inside the store's
-- purge transaction (deletes) or erasure transaction (updates): that transaction sets the
-- transaction-local setting `orb.gate` (`set_config('orb.gate', 'purge' | 'erase', true)`), which ends
-- with it. Every other UPDATE or DELETE is refused as before, and booking_events now refuses deletes too
-- (its timeline is never rewritten).

CREATE OR REPLACE FUNCTION orb_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('orb.gate', true) = 'purge' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('orb.gate', true) = 'erase' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER booking_events_no_delete BEFORE DELETE ON booking_events
    FOR EACH ROW EXECUTE FUNCTION orb_reject_change();

-- What the purge looks for.
CREATE INDEX bookings_end ON bookings (tenant_id, end_at);
CREATE INDEX jobs_finished ON jobs (tenant_id, status, finished_at) WHERE status IN ('done', 'dead');
CREATE INDEX inbox_processed ON inbox (tenant_id, processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX audit_log_at ON audit_log (tenant_id, at);
