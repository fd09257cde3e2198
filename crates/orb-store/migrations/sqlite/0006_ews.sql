-- EWS push intake: inbox items kept by `POST /hooks/ews/{tenant}` (source 'ews'), and the last watermark an
-- EWS subscription received (NULL for Graph subscriptions and for an EWS subscription that has received
-- nothing yet).

ALTER TABLE subscriptions ADD COLUMN watermark TEXT;

-- SQLite cannot change a CHECK constraint: the inbox is rebuilt the documented way (create the new table,
-- copy, drop the old one, rename, recreate the indexes; https://www.sqlite.org/lang_altertable.html,
-- "Making Other Kinds Of Table Schema Changes"), inside the migration's transaction. No table, view or
-- trigger refers to inbox, so foreign keys stay on. AUTOINCREMENT's high-water mark is carried over, so an
-- inbox id is never handed out twice (jobs name their inbox item by id).
CREATE TABLE inbox_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    source        TEXT NOT NULL CHECK (source IN ('graph', 'graph-lifecycle', 'topdesk', 'ews')),
    received_at   BIGINT NOT NULL,
    remote_ip     TEXT,
    payload       TEXT NOT NULL,
    processed_at  BIGINT
);
INSERT INTO inbox_new (id, tenant_id, source, received_at, remote_ip, payload, processed_at)
    SELECT id, tenant_id, source, received_at, remote_ip, payload, processed_at FROM inbox ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'inbox_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'inbox_new', seq FROM sqlite_sequence WHERE name = 'inbox';
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
CREATE INDEX inbox_unprocessed ON inbox (tenant_id, id) WHERE processed_at IS NULL;
CREATE INDEX inbox_processed ON inbox (tenant_id, processed_at) WHERE processed_at IS NOT NULL;
