-- Webhook intake: Graph subscriptions (clientState kept only as a SHA-256 hash), the durable inbox of raw
-- notifications / push hints, and per-tenant push tokens (hash only).

CREATE TABLE subscriptions (
    id                         TEXT PRIMARY KEY,
    tenant_id                  BLOB NOT NULL REFERENCES tenants(id),
    room_id                    BLOB NOT NULL,
    resource                   TEXT NOT NULL,
    client_state_hash          BLOB NOT NULL,
    rich                       INTEGER NOT NULL,
    encryption_certificate_id  TEXT,
    expires_at                 BIGINT NOT NULL,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, room_id) REFERENCES rooms(tenant_id, id)
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, room_id);

CREATE TABLE inbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     BLOB NOT NULL REFERENCES tenants(id),
    source        TEXT NOT NULL CHECK (source IN ('graph', 'graph-lifecycle', 'topdesk')),
    received_at   BIGINT NOT NULL,
    remote_ip     TEXT,
    payload       TEXT NOT NULL,
    processed_at  BIGINT
);
CREATE INDEX inbox_unprocessed ON inbox (tenant_id, id) WHERE processed_at IS NULL;

CREATE TABLE push_tokens (
    tenant_id   BLOB PRIMARY KEY REFERENCES tenants(id),
    token_hash  BLOB NOT NULL,
    updated_at  BIGINT NOT NULL
);
