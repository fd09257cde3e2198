-- The admin portal: users (one e-mail address per installation; an operator belongs to no tenant, every
-- other role to exactly one), their login sessions and recovery codes (hashes only), login-failure counters
-- for throttling, API tokens (hashes only) and short-lived OpenID Connect login flows. The TOTP secret is
-- stored only sealed by the caller. The append-only triggers of the audit log are not touched.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       BLOB REFERENCES tenants(id),
    email           TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'tenant-admin', 'tenant-viewer')),
    password_hash   TEXT,
    totp_sealed     BLOB,
    totp_key_id     TEXT,
    totp_enabled    INTEGER NOT NULL,
    last_totp_step  BIGINT,
    disabled        INTEGER NOT NULL,
    created_at      BIGINT NOT NULL,
    last_login_at   BIGINT,
    CHECK ((role = 'operator') = (tenant_id IS NULL)),
    CHECK ((totp_sealed IS NULL) = (totp_key_id IS NULL)),
    CHECK (NOT totp_enabled OR totp_sealed IS NOT NULL)
);
CREATE INDEX users_tenant ON users (tenant_id, email);

CREATE TABLE user_sessions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash    BLOB NOT NULL UNIQUE,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    stage         TEXT NOT NULL CHECK (stage IN ('second-factor', 'full')),
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    source_ip     TEXT,
    user_agent    TEXT
);
CREATE INDEX user_sessions_user ON user_sessions (user_id, created_at);

CREATE TABLE recovery_codes (
    user_id     INTEGER NOT NULL REFERENCES users(id),
    code_hash   BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE login_failures (
    throttle_key     TEXT PRIMARY KEY,
    failures         BIGINT NOT NULL CHECK (failures >= 1),
    last_failure_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    scope         TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked       INTEGER NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id, id);

CREATE TABLE oidc_flows (
    state_hash     BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES tenants(id),
    nonce          TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    return_to      TEXT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX oidc_flows_created ON oidc_flows (created_at);

-- The portal's audit search and dashboard, and the bookings list's organizer filter.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX bookings_updated ON bookings (tenant_id, last_updated_at);
CREATE INDEX bookings_organizer ON bookings (tenant_id, organizer, start_at);
