//! The admin portal's rows (users, sessions, recovery codes, login throttling, API tokens, OIDC flows),
//! the audit search and the dashboard figures, for both back-ends (see [`super`] and `crate::portal`).
//!
//! One-time uses are single statements, atomic on both back-ends: claiming a TOTP step is an `UPDATE …
//! WHERE last_totp_step IS NULL OR last_totp_step < $step` (PostgreSQL re-checks the `WHERE` against a
//! concurrent writer's row, SQLite runs it under `BEGIN IMMEDIATE`), a recovery code is used by deleting
//! it, an OIDC flow is taken with `DELETE … RETURNING`, a login failure is counted with an upsert.
//! Creating a session or an API token first touches the user's row under the condition that it is
//! enabled: that row lock orders it against a concurrent disabling, so a disabled user never keeps a
//! session or a usable token. A guarded demotion or disabling ([`AdminGuard::KeepOne`](crate::AdminGuard))
//! first writes its tenant's row, which orders it against every other guarded change of that tenant, so a
//! tenant never loses its last enabled administrator to two changes at once.

/// Inherent methods the [`Store`](crate::Store) implementation forwards to, and their row mappers.
macro_rules! impl_portal {
    (
        store = $store:ident,
        db = $db:ty,
    ) => {
        fn user_from_row(row: &DbRow) -> Result<User> {
            let e = || StoreError::db("reading a user");
            let sealed: Option<Vec<u8>> = row.try_get("totp_sealed").map_err(e())?;
            let key_id: Option<String> = row.try_get("totp_key_id").map_err(e())?;
            let totp = match (sealed, key_id) {
                (Some(sealed), Some(key_id)) => Some(SealedTotp { sealed, key_id }),
                (None, None) => None,
                _ => {
                    return Err(StoreError::Corrupt {
                        what: "user totp".into(),
                        reason: "a sealed secret without its key id, or the reverse".into(),
                    })
                }
            };
            Ok(User {
                id: UserId(row.try_get("id").map_err(e())?),
                tenant_id: row.try_get::<Option<Uuid>, _>("tenant_id").map_err(e())?.map(TenantId::from_uuid),
                email: parse(&row.try_get::<String, _>("email").map_err(e())?, "user email")?,
                role: parse(&row.try_get::<String, _>("role").map_err(e())?, "user role")?,
                password_hash: row.try_get("password_hash").map_err(e())?,
                password_temporary: row.try_get("password_temporary").map_err(e())?,
                totp,
                totp_enabled: row.try_get("totp_enabled").map_err(e())?,
                last_totp_step: row.try_get("last_totp_step").map_err(e())?,
                disabled: row.try_get("disabled").map_err(e())?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "user created_at")?,
                last_login_at: opt_ts(row.try_get("last_login_at").map_err(e())?, "user last_login_at")?,
            })
        }

        fn session_from_row(row: &DbRow) -> Result<SessionRow> {
            let e = || StoreError::db("reading a session");
            Ok(SessionRow {
                id: row.try_get("id").map_err(e())?,
                token_hash: row.try_get("token_hash").map_err(e())?,
                user_id: UserId(row.try_get("user_id").map_err(e())?),
                stage: parse(&row.try_get::<String, _>("stage").map_err(e())?, "session stage")?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "session created_at")?,
                last_seen_at: from_ts(row.try_get("last_seen_at").map_err(e())?, "session last_seen_at")?,
                source_ip: row.try_get("source_ip").map_err(e())?,
                user_agent: row.try_get("user_agent").map_err(e())?,
            })
        }

        fn throttle_from_row(row: &DbRow) -> Result<LoginThrottle> {
            let e = || StoreError::db("reading login failures");
            Ok(LoginThrottle {
                failures: count(row.try_get("failures").map_err(e())?, "login failures")?,
                last_failure_at: from_ts(row.try_get("last_failure_at").map_err(e())?, "login failure at")?,
            })
        }

        fn api_token_from_row(row: &DbRow) -> Result<ApiTokenRow> {
            let e = || StoreError::db("reading an API token");
            Ok(ApiTokenRow {
                id: row.try_get("id").map_err(e())?,
                user_id: UserId(row.try_get("user_id").map_err(e())?),
                name: row.try_get("name").map_err(e())?,
                scope: parse(&row.try_get::<String, _>("scope").map_err(e())?, "API token scope")?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "API token created_at")?,
                expires_at: opt_ts(row.try_get("expires_at").map_err(e())?, "API token expires_at")?,
                last_used_at: opt_ts(row.try_get("last_used_at").map_err(e())?, "API token last_used_at")?,
                revoked: row.try_get("revoked").map_err(e())?,
            })
        }

        fn oidc_flow_from_row(row: &DbRow) -> Result<OidcFlow> {
            let e = || StoreError::db("reading an OIDC login flow");
            Ok(OidcFlow {
                state_hash: row.try_get("state_hash").map_err(e())?,
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                nonce: row.try_get("nonce").map_err(e())?,
                pkce_verifier: row.try_get("pkce_verifier").map_err(e())?,
                return_to: row.try_get("return_to").map_err(e())?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "OIDC flow created_at")?,
            })
        }

        /// An update of one user's row touched nothing: the user does not exist.
        fn user_updated(done: <$db as sqlx::Database>::QueryResult, id: UserId) -> Result<()> {
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { what: format!("user {id}") });
            }
            Ok(())
        }

        /// Refuses ([`StoreError::LastAdmin`]) when user `id` is an enabled tenant-admin and no other enabled
        /// tenant-admin of their tenant is left; a user who is not one needs no check. First the tenant's row
        /// is written (to itself): on PostgreSQL that row lock makes every other guarded change of the same
        /// tenant wait until this transaction ends, and the count below, a statement of its own, then sees
        /// what that one committed; SQLite's `BEGIN IMMEDIATE` already runs one writer at a time.
        async fn keep_an_admin(tx: &mut Tx, id: UserId, context: &'static str) -> Result<()> {
            let row: Option<(Option<Uuid>, String)> =
                sqlx::query_as("SELECT tenant_id, email FROM users WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(StoreError::db(context))?;
            let (tenant, email) = require(row, || format!("user {id}"))?;
            let Some(tenant) = tenant else {
                return Ok(()); // an operator
            };
            sqlx::query("UPDATE tenants SET name = name WHERE id = $1")
                .bind(tenant)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db(context))?;
            // Read again under the lock: a concurrent change may have committed meanwhile.
            let admins: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM users WHERE tenant_id = $1 AND role = $2 AND disabled = $3 ORDER BY id",
            )
            .bind(tenant)
            .bind(Role::TenantAdmin.as_str())
            .bind(false)
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::db(context))?;
            if admins == [id.0] {
                return Err(StoreError::LastAdmin { email });
            }
            Ok(())
        }

        async fn user_exists(tx: &mut Tx, id: UserId, context: &'static str) -> Result<bool> {
            let found: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(StoreError::db(context))?;
            Ok(found.is_some())
        }

        /// Locks the user's row if the user is enabled (a no-op update, so a concurrent disabling waits for
        /// this transaction, or this one sees it): [`StoreError::UserDisabled`] or
        /// [`StoreError::NotFound`] otherwise.
        async fn lock_enabled_user(tx: &mut Tx, id: UserId, context: &'static str) -> Result<()> {
            let done = sqlx::query("UPDATE users SET disabled = disabled WHERE id = $1 AND NOT disabled")
                .bind(id.0)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db(context))?;
            if done.rows_affected() == 0 {
                return Err(if user_exists(tx, id, context).await? {
                    StoreError::UserDisabled { user: id.0 }
                } else {
                    StoreError::NotFound { what: format!("user {id}") }
                });
            }
            Ok(())
        }

        impl $store {
            pub(crate) async fn create_user_in(
                &self,
                user: &NewUser,
                audit: &NewAuditEntry,
                now: DateTime<Utc>,
            ) -> Result<User> {
                if user.role.needs_tenant() != user.tenant_id.is_some() {
                    let reason = if user.role.needs_tenant() {
                        format!("a {} belongs to exactly one tenant; name the tenant", user.role)
                    } else {
                        "an operator belongs to no tenant; create it without one".to_owned()
                    };
                    return Err(StoreError::InvalidArgument { reason });
                }
                let context = "creating a user";
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(
                    "INSERT INTO users (tenant_id, email, role, password_hash, totp_enabled, disabled, created_at, \
                     password_temporary) VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING *",
                )
                .bind(user.tenant_id.map(|t| t.as_uuid()))
                .bind(user.email.as_str().to_owned())
                .bind(user.role.as_str())
                .bind(user.password_hash.clone())
                .bind(false)
                .bind(ts(now))
                .bind(user.password_temporary && user.password_hash.is_some())
                .fetch_one(&mut *tx)
                .await
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        StoreError::AlreadyExists { what: "a user with this e-mail address".into() }
                    } else if $crate::error::is_foreign_key_violation(&err) {
                        let tenant = user.tenant_id.map(|t| t.to_string()).unwrap_or_default();
                        StoreError::NotFound { what: format!("tenant {tenant}") }
                    } else {
                        StoreError::db(context)(err)
                    }
                })?;
                let created = user_from_row(&row)?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, context).await?;
                Ok(created)
            }

            pub(crate) async fn user_by_email_in(&self, email: &EmailAddress) -> Result<User> {
                let row = sqlx::query("SELECT * FROM users WHERE email = $1")
                    .bind(email.as_str().to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("looking up a user"))?;
                user_from_row(&require(row, || "a user with this e-mail address".to_owned())?)
            }

            pub(crate) async fn get_user_in(&self, id: UserId) -> Result<User> {
                let row = sqlx::query("SELECT * FROM users WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a user"))?;
                user_from_row(&require(row, || format!("user {id}"))?)
            }

            pub(crate) async fn list_users_in(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
                let rows = sqlx::query("SELECT * FROM users WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY email")
                    .bind(tenant.map(|t| t.as_uuid()))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing users"))?;
                rows.iter().map(user_from_row).collect()
            }

            pub(crate) async fn set_user_password_in(
                &self,
                id: UserId,
                password_hash: &str,
                temporary: bool,
                audit: &NewAuditEntry,
            ) -> Result<()> {
                let context = "setting a user's password";
                let mut tx = self.begin_write().await?;
                let done =
                    sqlx::query("UPDATE users SET password_hash = $2, password_temporary = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(password_hash.to_owned())
                        .bind(temporary)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                user_updated(done, id)?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, context).await
            }

            pub(crate) async fn set_user_totp_in(
                &self,
                id: UserId,
                totp: Option<&SealedTotp>,
                enabled: bool,
                audit: Option<&NewAuditEntry>,
            ) -> Result<()> {
                if enabled && totp.is_none() {
                    return Err(StoreError::InvalidArgument {
                        reason: "TOTP cannot be enabled without a secret; store the sealed secret with it".into(),
                    });
                }
                let context = "setting a user's second factor";
                let mut tx = self.begin_write().await?;
                match totp {
                    Some(totp) => {
                        let done = sqlx::query(
                            "UPDATE users SET totp_sealed = $2, totp_key_id = $3, totp_enabled = $4 WHERE id = $1",
                        )
                        .bind(id.0)
                        .bind(totp.sealed.clone())
                        .bind(totp.key_id.clone())
                        .bind(enabled)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(context))?;
                        user_updated(done, id)?;
                    }
                    None => {
                        let done = sqlx::query(
                            "UPDATE users SET totp_sealed = NULL, totp_key_id = NULL, totp_enabled = $2, \
                             last_totp_step = NULL WHERE id = $1",
                        )
                        .bind(id.0)
                        .bind(false)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(context))?;
                        user_updated(done, id)?;
                        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                            .bind(id.0)
                            .execute(&mut *tx)
                            .await
                            .map_err(StoreError::db(context))?;
                    }
                }
                if let Some(audit) = audit {
                    insert_audit(&mut tx, audit).await?;
                }
                commit(tx, context).await
            }

            pub(crate) async fn set_user_role_in(
                &self,
                id: UserId,
                role: Role,
                guard: AdminGuard,
                audit: &NewAuditEntry,
            ) -> Result<()> {
                let context = "changing a user's role";
                let mut tx = self.begin_write().await?;
                if guard == AdminGuard::KeepOne && role != Role::TenantAdmin {
                    keep_an_admin(&mut tx, id, context).await?;
                }
                let current: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                let current: Role = parse(&require(current, || format!("user {id}"))?, "user role")?;
                if current.needs_tenant() != role.needs_tenant() {
                    return Err(StoreError::InvalidArgument {
                        reason: format!(
                            "user {id} cannot change from {current} to {role}: an operator belongs to no tenant \
                             and every other role to one; create a new user with the other role instead"
                        ),
                    });
                }
                let done = sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                user_updated(done, id)?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, context).await
            }

            pub(crate) async fn set_user_disabled_in(
                &self,
                id: UserId,
                disabled: bool,
                guard: AdminGuard,
                audit: &NewAuditEntry,
            ) -> Result<()> {
                let context = "disabling or enabling a user";
                let mut tx = self.begin_write().await?;
                if guard == AdminGuard::KeepOne && disabled {
                    keep_an_admin(&mut tx, id, context).await?;
                }
                let done = sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(disabled)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                user_updated(done, id)?;
                if disabled {
                    sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(context))?;
                    sqlx::query("UPDATE api_tokens SET revoked = $2 WHERE user_id = $1")
                        .bind(id.0)
                        .bind(true)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(context))?;
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, context).await
            }

            pub(crate) async fn claim_totp_step_in(&self, id: UserId, step: i64) -> Result<bool> {
                let context = "claiming a TOTP step";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE users SET last_totp_step = $2 \
                     WHERE id = $1 AND (last_totp_step IS NULL OR last_totp_step < $2)",
                )
                .bind(id.0)
                .bind(step)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db(context))?;
                let claimed = done.rows_affected() == 1;
                if !claimed && !user_exists(&mut tx, id, context).await? {
                    return Err(StoreError::NotFound { what: format!("user {id}") });
                }
                commit(tx, context).await?;
                Ok(claimed)
            }

            pub(crate) async fn record_login_in(&self, id: UserId, now: DateTime<Utc>) -> Result<()> {
                let context = "recording a login";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                user_updated(done, id)?;
                commit(tx, context).await
            }

            pub(crate) async fn replace_recovery_codes_in(
                &self,
                id: UserId,
                hashes: &[Vec<u8>],
                audit: &NewAuditEntry,
            ) -> Result<()> {
                let context = "replacing recovery codes";
                let mut tx = self.begin_write().await?;
                if !user_exists(&mut tx, id, context).await? {
                    return Err(StoreError::NotFound { what: format!("user {id}") });
                }
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                for hash in hashes {
                    sqlx::query(
                        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (user_id, code_hash) DO NOTHING",
                    )
                    .bind(id.0)
                    .bind(hash.clone())
                    .bind(ts(audit.at))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, context).await
            }

            pub(crate) async fn use_recovery_code_in(&self, id: UserId, hash: &[u8]) -> Result<bool> {
                let context = "using a recovery code";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2")
                    .bind(id.0)
                    .bind(hash.to_vec())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                commit(tx, context).await?;
                Ok(done.rows_affected() == 1)
            }

            pub(crate) async fn count_recovery_codes_in(&self, id: UserId) -> Result<u32> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1")
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::db("counting recovery codes"))?;
                count(n, "recovery code count")
            }

            pub(crate) async fn record_login_failure_in(&self, key: &str, now: DateTime<Utc>) -> Result<LoginThrottle> {
                let context = "counting a failed login";
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(
                    "INSERT INTO login_failures (throttle_key, failures, last_failure_at) VALUES ($1, 1, $2) \
                     ON CONFLICT (throttle_key) DO UPDATE SET failures = login_failures.failures + 1, \
                     last_failure_at = excluded.last_failure_at RETURNING failures, last_failure_at",
                )
                .bind(key.to_owned())
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::db(context))?;
                let throttle = throttle_from_row(&row)?;
                commit(tx, context).await?;
                Ok(throttle)
            }

            pub(crate) async fn login_throttle_in(&self, key: &str) -> Result<Option<LoginThrottle>> {
                let row = sqlx::query("SELECT failures, last_failure_at FROM login_failures WHERE throttle_key = $1")
                    .bind(key.to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading login failures"))?;
                row.as_ref().map(throttle_from_row).transpose()
            }

            pub(crate) async fn clear_login_failures_in(&self, key: &str) -> Result<()> {
                let context = "clearing login failures";
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM login_failures WHERE throttle_key = $1")
                    .bind(key.to_owned())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                commit(tx, context).await
            }

            pub(crate) async fn create_session_in(&self, session: &NewSession, now: DateTime<Utc>) -> Result<SessionRow> {
                let context = "creating a session";
                let mut tx = self.begin_write().await?;
                lock_enabled_user(&mut tx, session.user_id, context).await?;
                let row = sqlx::query(
                    "INSERT INTO user_sessions (token_hash, user_id, stage, created_at, last_seen_at, source_ip, \
                     user_agent) VALUES ($1, $2, $3, $4, $4, $5, $6) RETURNING *",
                )
                .bind(session.token_hash.clone())
                .bind(session.user_id.0)
                .bind(session.stage.as_str())
                .bind(ts(now))
                .bind(session.source_ip.clone())
                .bind(session.user_agent.clone())
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::unique_or_db(context, || "a session with this token".to_owned()))?;
                let created = session_from_row(&row)?;
                commit(tx, context).await?;
                Ok(created)
            }

            pub(crate) async fn session_by_token_hash_in(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
                let row = sqlx::query("SELECT * FROM user_sessions WHERE token_hash = $1")
                    .bind(token_hash.to_vec())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("looking up a session"))?;
                row.as_ref().map(session_from_row).transpose()
            }

            pub(crate) async fn touch_session_in(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
                let context = "recording session activity";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE user_sessions SET last_seen_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound { what: format!("session {id}") });
                }
                commit(tx, context).await
            }

            pub(crate) async fn delete_session_in(&self, id: i64) -> Result<()> {
                let context = "ending a session";
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM user_sessions WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                commit(tx, context).await
            }

            pub(crate) async fn list_sessions_in(&self, user: UserId) -> Result<Vec<SessionRow>> {
                let rows = sqlx::query("SELECT * FROM user_sessions WHERE user_id = $1 ORDER BY created_at DESC, id DESC")
                    .bind(user.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing sessions"))?;
                rows.iter().map(session_from_row).collect()
            }

            pub(crate) async fn delete_user_session_in(&self, user: UserId, id: i64) -> Result<bool> {
                let context = "ending a session";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM user_sessions WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                commit(tx, context).await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn delete_sessions_of_in(&self, user: UserId) -> Result<u64> {
                let context = "ending a user's sessions";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                commit(tx, context).await?;
                Ok(done.rows_affected())
            }

            pub(crate) async fn create_api_token_in(
                &self,
                token: &NewApiToken,
                audit: &NewAuditEntry,
                now: DateTime<Utc>,
            ) -> Result<ApiTokenRow> {
                let context = "creating an API token";
                let mut tx = self.begin_write().await?;
                lock_enabled_user(&mut tx, token.user_id, context).await?;
                let row = sqlx::query(
                    "INSERT INTO api_tokens (user_id, name, token_hash, scope, created_at, expires_at, revoked) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                )
                .bind(token.user_id.0)
                .bind(token.name.clone())
                .bind(token.token_hash.clone())
                .bind(token.scope.as_str())
                .bind(ts(now))
                .bind(token.expires_at.map(ts))
                .bind(false)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::unique_or_db(context, || "an API token with this hash".to_owned()))?;
                let created = api_token_from_row(&row)?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, context).await?;
                Ok(created)
            }

            pub(crate) async fn api_token_by_hash_in(&self, token_hash: &[u8]) -> Result<Option<ApiTokenRow>> {
                let row = sqlx::query("SELECT * FROM api_tokens WHERE token_hash = $1")
                    .bind(token_hash.to_vec())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("looking up an API token"))?;
                row.as_ref().map(api_token_from_row).transpose()
            }

            pub(crate) async fn touch_api_token_in(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
                let context = "recording API token use";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound { what: format!("API token {id}") });
                }
                commit(tx, context).await
            }

            pub(crate) async fn list_api_tokens_in(&self, user: UserId) -> Result<Vec<ApiTokenRow>> {
                let rows = sqlx::query("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY id")
                    .bind(user.0)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing API tokens"))?;
                rows.iter().map(api_token_from_row).collect()
            }

            pub(crate) async fn revoke_api_token_in(&self, user: UserId, id: i64, audit: &NewAuditEntry) -> Result<()> {
                let context = "revoking an API token";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE api_tokens SET revoked = $3 WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user.0)
                    .bind(true)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound { what: format!("API token {id} of user {user}") });
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, context).await
            }

            pub(crate) async fn put_oidc_flow_in(&self, flow: &OidcFlow) -> Result<()> {
                let context = "keeping an OIDC login flow";
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO oidc_flows (state_hash, tenant_id, nonce, pkce_verifier, return_to, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(flow.state_hash.clone())
                .bind(flow.tenant_id.as_uuid())
                .bind(flow.nonce.clone())
                .bind(flow.pkce_verifier.clone())
                .bind(flow.return_to.clone())
                .bind(ts(flow.created_at))
                .execute(&mut *tx)
                .await
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        StoreError::AlreadyExists { what: "an OIDC login flow with this state".into() }
                    } else if $crate::error::is_foreign_key_violation(&err) {
                        StoreError::NotFound { what: format!("tenant {}", flow.tenant_id) }
                    } else {
                        StoreError::db(context)(err)
                    }
                })?;
                commit(tx, context).await
            }

            pub(crate) async fn take_oidc_flow_in(&self, state_hash: &[u8]) -> Result<Option<OidcFlow>> {
                let context = "taking an OIDC login flow";
                let mut tx = self.begin_write().await?;
                let row = sqlx::query("DELETE FROM oidc_flows WHERE state_hash = $1 RETURNING *")
                    .bind(state_hash.to_vec())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                let flow = row.as_ref().map(oidc_flow_from_row).transpose()?;
                commit(tx, context).await?;
                Ok(flow)
            }

            pub(crate) async fn purge_oidc_flows_in(&self, older_than: DateTime<Utc>) -> Result<u64> {
                let context = "purging OIDC login flows";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM oidc_flows WHERE created_at < $1")
                    .bind(ts(older_than))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db(context))?;
                commit(tx, context).await?;
                Ok(done.rows_affected())
            }

            pub(crate) async fn search_audit_in(
                &self,
                tenant: Option<TenantId>,
                filter: &AuditFilter,
            ) -> Result<Vec<AuditEntry>> {
                let rows = sqlx::query(
                    "SELECT * FROM audit_log WHERE ($1 IS NULL OR tenant_id = $1) \
                     AND ($2 IS NULL OR actor = $2) \
                     AND ($3 IS NULL OR substr(action, 1, length($3)) = $3) \
                     AND ($4 IS NULL OR at >= $4) \
                     AND ($5 IS NULL OR at < $5) \
                     ORDER BY id DESC LIMIT $6",
                )
                .bind(tenant.map(|t| t.as_uuid()))
                .bind(filter.actor.clone())
                .bind(filter.action_prefix.clone())
                .bind(filter.since.map(ts))
                .bind(filter.until.map(ts))
                .bind(i64::from(filter.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::db("searching the audit log"))?;
                rows.iter().map(audit_from_row).collect()
            }

            pub(crate) async fn tenant_queue_stats_in(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<QueueStats> {
                let context = "counting a tenant's jobs";
                let row = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM jobs WHERE tenant_id = $2 AND status = 'queued') AS queued, \
                     (SELECT COUNT(*) FROM jobs WHERE tenant_id = $2 AND status = 'running') AS running, \
                     (SELECT COUNT(*) FROM jobs WHERE tenant_id = $2 AND status = 'dead') AS dead, \
                     (SELECT MIN(run_at) FROM jobs WHERE tenant_id = $2 AND status = 'queued' AND run_at <= $1) \
                     AS oldest_due",
                )
                .bind(ts(now))
                .bind(tenant.as_uuid())
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::db(context))?;
                let count = |name: &str| -> Result<u64> {
                    let n: i64 = row.try_get(name).map_err(StoreError::db(context))?;
                    Ok(u64::try_from(n).unwrap_or(0))
                };
                let oldest: Option<i64> = row.try_get("oldest_due").map_err(StoreError::db(context))?;
                Ok(QueueStats {
                    queued: count("queued")?,
                    running: count("running")?,
                    dead: count("dead")?,
                    oldest_due: opt_ts(oldest, "jobs.run_at")?,
                })
            }

            pub(crate) async fn count_bookings_updated_since_in(
                &self,
                tenant: TenantId,
                since: DateTime<Utc>,
            ) -> Result<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM bookings WHERE tenant_id = $1 AND last_updated_at >= $2",
                )
                .bind(tenant.as_uuid())
                .bind(ts(since))
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::db("counting changed bookings"))?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }
    };
}
pub(crate) use impl_portal;
