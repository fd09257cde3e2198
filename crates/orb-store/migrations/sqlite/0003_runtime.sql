-- Runtime state: per-tenant settings (one versioned JSON document), installation-wide encryption
-- certificates for Graph rich notifications (private key sealed by the caller, never in clear), and named
-- leases so that only one ORB instance runs a given scheduler task at a time.

CREATE TABLE tenant_settings (
    tenant_id   BLOB PRIMARY KEY REFERENCES tenants(id),
    document    TEXT NOT NULL,
    version     BIGINT NOT NULL CHECK (version >= 1),
    updated_at  BIGINT NOT NULL
);

CREATE TABLE encryption_keys (
    id                  TEXT PRIMARY KEY,
    certificate         BLOB NOT NULL,
    thumbprint          TEXT NOT NULL,
    not_before          BIGINT NOT NULL,
    not_after           BIGINT NOT NULL,
    key_id              TEXT NOT NULL,
    sealed_private_key  BLOB NOT NULL,
    created_at          BIGINT NOT NULL
);

CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
