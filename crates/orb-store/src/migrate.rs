//! Append-only migrations, one list per back-end, embedded in the binary.
//!
//! Each applied migration is recorded with a checksum of its text. At start-up an applied migration whose
//! text changed is an error ([`crate::StoreError::MigrationChanged`]), and a database that has migrations
//! this build does not know is refused ([`crate::StoreError::SchemaTooNew`]). All pending migrations apply
//! in one transaction; on PostgreSQL an advisory lock makes concurrent start-ups of several instances safe,
//! on SQLite `BEGIN IMMEDIATE` does the same.

/// One migration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// FNV-1a 64 of the migration text, as 16 hex digits. Not a security measure: it detects edits.
pub(crate) fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Implements `run_migrations` for a back-end. `lock` is an optional statement run first in the
/// transaction; `table` creates the bookkeeping table.
macro_rules! impl_migrations {
    ($store:ident, $migrations:expr, lock = $lock:expr, table = $table:expr) => {
        impl $store {
            async fn run_migrations(&self) -> $crate::Result<()> {
                use sqlx::Row as _;
                use $crate::StoreError;
                let migrations: &[$crate::migrate::Migration] = $migrations;
                let mut tx = self.begin_write().await?;
                let lock: Option<&'static str> = $lock;
                if let Some(lock) = lock {
                    sqlx::query(lock)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("locking migrations"))?;
                }
                sqlx::query($table)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("preparing migrations"))?;
                let applied =
                    sqlx::query("SELECT version, name, checksum FROM orb_schema_migrations ORDER BY version")
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(StoreError::db("reading applied migrations"))?;
                let known = migrations.last().map_or(0, |m| m.version);
                let mut done = std::collections::BTreeSet::new();
                for row in &applied {
                    let version: i64 =
                        row.try_get("version").map_err(StoreError::db("reading applied migrations"))?;
                    let stored: String =
                        row.try_get("checksum").map_err(StoreError::db("reading applied migrations"))?;
                    let Some(m) = migrations.iter().find(|m| m.version == version) else {
                        return Err(StoreError::SchemaTooNew { found: version, known });
                    };
                    let current = $crate::migrate::checksum(m.sql);
                    if stored != current {
                        return Err(StoreError::MigrationChanged {
                            version,
                            name: m.name.to_owned(),
                            stored,
                            current,
                        });
                    }
                    done.insert(version);
                }
                for m in migrations.iter().filter(|m| !done.contains(&m.version)) {
                    tracing::info!(version = m.version, name = m.name, "applying migration");
                    sqlx::raw_sql(m.sql)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("applying a migration"))?;
                    sqlx::query(
                        "INSERT INTO orb_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    )
                    .bind(m.version)
                    .bind(m.name)
                    .bind($crate::migrate::checksum(m.sql))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("recording a migration"))?;
                }
                tx.commit().await.map_err(StoreError::db("committing migrations"))
            }

            async fn count_pending_migrations(&self) -> $crate::Result<u32> {
                use $crate::StoreError;
                let migrations: &[$crate::migrate::Migration] = $migrations;
                let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM orb_schema_migrations")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("reading applied migrations (run orb migrate)"))?;
                let pending = migrations.iter().filter(|m| !applied.contains(&m.version)).count();
                Ok(u32::try_from(pending).unwrap_or(u32::MAX))
            }
        }
    };
}
pub(crate) use impl_migrations;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_detects_any_edit() {
        assert_eq!(checksum("CREATE TABLE t (a INT);"), checksum("CREATE TABLE t (a INT);"));
        assert_ne!(checksum("CREATE TABLE t (a INT);"), checksum("CREATE TABLE t (a INT );"));
        assert_eq!(checksum("").len(), 16);
    }
}
