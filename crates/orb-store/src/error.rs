use thiserror::Error;

/// What can go wrong in the store, in ORB's words.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The row does not exist (for this tenant).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `tenant "contoso"`.
        what: String,
    },
    /// A row with the same unique key exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What collided.
        what: String,
    },
    /// Optimistic-concurrency conflict: someone else changed the row first. Reload and plan again.
    #[error(
        "{what} was changed concurrently (expected version {expected}, stored {actual}); reload and retry"
    )]
    Conflict {
        /// What was being updated.
        what: String,
        /// The version the caller had.
        expected: i64,
        /// The version in the store.
        actual: i64,
    },
    /// An operator action meant for a dead job (retry, dismiss) named a job in another state.
    #[error(
        "job {job} is {status}, not dead; only a dead job can be retried or dismissed (a queued or running \
         job is still being worked on, a done job needs nothing)"
    )]
    NotDead {
        /// The job.
        job: i64,
        /// Its state (`queued`, `running`, `done`).
        status: &'static str,
    },
    /// A portal user is disabled: no session or API token can be created for it. Enable the user first.
    #[error("user {user} is disabled; enable the user before it can log in or get an API token")]
    UserDisabled {
        /// The user.
        user: i64,
    },
    /// Demoting or disabling this user would leave their tenant without an enabled tenant-admin (asked for
    /// with [`AdminGuard::KeepOne`](crate::AdminGuard::KeepOne)); nothing was changed.
    #[error("{email} is the tenant's last enabled administrator; make another user tenant-admin first")]
    LastAdmin {
        /// The user's e-mail address.
        email: String,
    },
    /// The job's lease expired or was taken over; the worker must stop working on it.
    #[error("lease on job {job} was lost (expired or re-claimed); stop working on it")]
    LeaseLost {
        /// The job.
        job: i64,
    },
    /// An applied migration's text changed since it was applied. Migrations are append-only: add a new one.
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {stored} in the database, \
         {current} in this build); migrations are append-only: restore it and add a new migration instead"
    )]
    MigrationChanged {
        /// Migration number.
        version: i64,
        /// Migration name.
        name: String,
        /// Checksum recorded when it was applied.
        stored: String,
        /// Checksum of the migration in this build.
        current: String,
    },
    /// The database holds migrations newer than this build knows: an older ORB is running against a newer
    /// schema.
    #[error("the database schema is at migration {found}, newer than this build's {known}; upgrade ORB")]
    SchemaTooNew {
        /// Highest applied migration.
        found: i64,
        /// Highest migration this build has.
        known: i64,
    },
    /// A stored value could not be read back into a domain type (data written by something else).
    #[error("stored {what} is invalid: {reason}")]
    Corrupt {
        /// Which column or row.
        what: String,
        /// Why.
        reason: String,
    },
    /// The caller asked for something the store refuses (a programming error, not bad data).
    #[error("invalid store call: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },
    /// The database could not be reached or is busy; may succeed later.
    #[error("database unavailable: {message}; check that the database is running and reachable")]
    Unavailable {
        /// Context.
        message: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Any other database error.
    #[error("database error while {context}: {source}")]
    Database {
        /// What the store was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Conflict { .. })
    }

    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| match &source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable { message: context.to_owned(), source },
            sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => {
                Self::Unavailable { message: format!("{context} (database busy)"), source }
            }
            _ => Self::Database { context, source },
        }
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::AlreadyExists`] (naming `what`), anything else
    /// as [`StoreError::db`] does.
    pub(crate) fn unique_or_db(
        context: &'static str,
        what: impl FnOnce() -> String,
    ) -> impl FnOnce(sqlx::Error) -> Self {
        move |err| {
            if is_unique_violation(&err) {
                Self::AlreadyExists { what: what() }
            } else {
                Self::db(context)(err)
            }
        }
    }
}

impl StoreError {
    /// Maps a foreign-key violation to [`StoreError::NotFound`] (naming `what`, the missing parent), anything
    /// else as [`StoreError::db`] does.
    pub(crate) fn parent_or_db(
        context: &'static str,
        what: impl FnOnce() -> String,
    ) -> impl FnOnce(sqlx::Error) -> Self {
        move |err| {
            if is_foreign_key_violation(&err) {
                Self::NotFound { what: what() }
            } else {
                Self::db(context)(err)
            }
        }
    }
}

/// SQLite BUSY/LOCKED and PostgreSQL serialization / deadlock / connection errors.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "262" | "40001" | "40P01" | "57P01" | "08006" | "08001"))
}

/// Whether a driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Whether a driver error is a foreign-key violation (e.g. a row naming a tenant that does not exist).
pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_foreign_key_violation(),
        _ => false,
    }
}
