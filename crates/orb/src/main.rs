//! # orb
//!
//! The ORB binary: the command line, the typed configuration, and the wiring of the library crates. It is
//! the only crate that knows which store back-end is in use (picked from the database URL) and the only
//! one that reads the wall clock and the process environment; everything below receives them.
//!
//! ## Invariants
//! - A secret value is read from standard input, never from the command line (argv is visible to every
//!   user of the machine), and is never printed.
//! - A command either completes or changes nothing: every multi-row change is one store transaction.
//! - Every error is printed once, as one message saying what to do, with a non-zero exit status.

/// `println!` that treats a closed standard output (`orb tenant list | head -1`) as the end of the
/// command instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(anyhow::Error::from(err).context("cannot write to standard output"));
        }
    }};
}

mod audit;
mod backfill;
mod bench;
mod check;
mod commands;
mod config;
mod demo;
mod jobs;
mod observability;
mod portal;
mod privacy;
mod secrets;
mod serve;
mod telemetry;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// ORB, the Outlook Room Booker: keeps Exchange Online room bookings and TOPdesk reservations in step.
#[derive(Debug, Parser)]
#[command(name = "orb", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Configuration file (TOML). Default: ./orb.toml if it exists.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run ORB against built-in Graph (or, with --exchange ews, EWS) and TOPdesk emulators (embedded SQLite,
    /// generated master key) with an organisation that keeps booking: one line per change that crossed, the
    /// portal and /metrics.
    Demo {
        /// Serve the webhooks and the portal on this address (default: a free port on 127.0.0.1).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Stop this many seconds after the simulation started (default: run until Ctrl-C).
        #[arg(long = "for", value_name = "SECONDS")]
        run_for: Option<u64>,
        /// Serve /metrics, /healthz and /readyz on this address (overrides observability.listen;
        /// default: a free port on 127.0.0.1).
        #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Seconds between two simulated changes (fractions allowed, e.g. 0.5).
        #[arg(long, value_name = "SECONDS", default_value = "4", value_parser = demo::parse_pace)]
        pace: f64,
        /// Seed of the simulation's choices (default: from the clock; printed at start).
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Log to standard error instead of <data.dir>/demo.log.
        #[arg(long)]
        verbose: bool,
        /// Which Exchange people book in: Exchange Online through Graph, or Exchange Server
        /// on-premises through EWS (each its built-in emulator).
        #[arg(long, value_enum, value_name = "KIND", default_value = "graph")]
        exchange: demo::ExchangeKind,
    },
    /// Measure ORB against built-in emulators in one process (webhook acknowledgement, the notification
    /// pipeline against the machine's RSA speed, added latency, TOPdesk → Outlook with push and polling,
    /// API calls per change, backfill, idle memory) and print a table of the figures.
    Bench {
        /// Also print one JSON object with every figure as the last line.
        #[arg(long)]
        json: bool,
        /// Rooms loaded for the idle memory figure and backfilled.
        #[arg(long, value_name = "N", default_value_t = 20)]
        rooms: usize,
        /// Outlook bookings per room for the backfill.
        #[arg(long, value_name = "N", default_value_t = 10)]
        bookings: usize,
        /// Webhook notifications per second for the acknowledgement figures.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        rate: u32,
        /// How long the acknowledgement load runs.
        #[arg(long, value_name = "N", default_value_t = 5)]
        seconds: u64,
        /// The store: a fresh SQLite file, or the configured (empty) PostgreSQL database.
        #[arg(long, value_enum, default_value_t = bench::BenchStore::Sqlite)]
        store: bench::BenchStore,
    },
    /// Run ORB: webhook intake, workers and schedulers, until SIGTERM or Ctrl-C.
    Serve {
        /// Serve the webhooks (and the portal, unless `portal.listen` moves it) on this address
        /// (overrides server.listen).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Serve /metrics, /healthz and /readyz on this address (overrides observability.listen); never
        /// the public listener's.
        #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Compare the rooms' calendars, TOPdesk reservations and ORB's records; with --dry-run only print
    /// what ORB would do (nothing is written), otherwise carry it out like `orb backfill`. Records a side
    /// owes (a failed write) are listed with their side, since when and the last error.
    Sync {
        /// Print the plan and the owed records, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write every record a side owes again now, ignoring the back-off of scheduled sweeps.
        #[arg(long)]
        retry_failed: bool,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this room mailbox.
        #[arg(long)]
        room: Option<String>,
        /// Carry out the cancellations the mass-deletion guard holds for this room (needs --tenant and
        /// --room; recorded in the audit log with the counts).
        #[arg(long, requires_all = ["tenant", "room"])]
        approve_mass_deletion: bool,
        /// Reject the deletions the mass-deletion guard holds for this room: nothing is cancelled, the
        /// bookings gone on one side are written to it again from the side that still has them (needs
        /// --tenant and --room; recorded in the audit log).
        #[arg(long, requires_all = ["tenant", "room"], conflicts_with = "approve_mass_deletion")]
        reject_mass_deletion: bool,
    },
    /// Onboard and repair rooms: link bookings already on both sides, create the missing ones, write records
    /// a side owes again (once their back-off is over), with a progress bar.
    Backfill {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this room mailbox.
        #[arg(long)]
        room: Option<String>,
    },
    /// Pre-flight check of a tenant's (or every tenant's) setup against Graph and TOPdesk: credentials and
    /// permissions, room mailboxes (with probe bookings), TOPdesk rights and locations, the webhook URL and
    /// clock skew. Prints each finding with why it matters and how to fix it; exits 1 if one is an error.
    Check {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Print one JSON document (an array of findings) instead of text.
        #[arg(long)]
        json: bool,
        /// Do not book probe meetings in the rooms (the rooms' calendar processing is then not checked).
        #[arg(long)]
        no_probe: bool,
        /// How long to wait for a room to answer a probe meeting.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        probe_wait: u64,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// Manage tenants (customers).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage room mappings (Exchange room mailbox ↔ TOPdesk location).
    #[command(subcommand)]
    Room(RoomCommand),
    /// Manage a tenant's secrets (values are read from standard input, never shown).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Manage the master key that seals the secrets.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage a tenant's TOPdesk push token (the bearer token TOPdesk's action sequence sends to ORB).
    #[command(subcommand)]
    PushToken(PushTokenCommand),
    /// Portal users: add, reset the second factor or password, disable, list.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the job queue; put dead jobs back in it or dismiss them.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Delete what outlived the tenants' retention periods (finished jobs, processed inbox items, bookings
    /// long over with their timelines, old audit rows; see docs/PRIVACY.md) and print the counts. `orb
    /// serve` does this every schedule.purge_seconds.
    Purge {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A person's data (data-subject requests): export it, or erase it.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// The audit log (who did what, when, from which address), newest first: one tenant's rows, or
    /// without --tenant the whole installation's, including rows of no tenant (operators' logins,
    /// failed logins for unknown addresses, blocked addresses). A CSV or JSON export is audited.
    Audit {
        /// Only this tenant's rows.
        #[arg(long)]
        tenant: Option<String>,
        /// Only rows by this actor (an e-mail address, `cli`, `orb`, ...).
        #[arg(long)]
        actor: Option<String>,
        /// Only actions starting with this text, e.g. `login` or `secret.`.
        #[arg(long)]
        action: Option<String>,
        /// From this day (YYYY-MM-DD, UTC) or instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Up to and including this day (YYYY-MM-DD, UTC), or before this instant (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 200)]
        limit: u32,
        /// table, csv or json.
        #[arg(long, value_enum, default_value_t = audit::AuditFormat::Table)]
        format: audit::AuditFormat,
    },
}

/// `orb privacy ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Write everything ORB stores about a person as JSON: bookings they organize or attend, their
    /// timelines, series, audit rows, queued jobs and received notifications that name them.
    Export {
        #[command(flatten)]
        tenant: TenantArg,
        /// The person's e-mail address.
        #[arg(long)]
        email: String,
        /// Write to this new file (readable only by its owner) instead of standard output.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Replace a person's address everywhere in the tenant's data with a stable pseudonym
    /// (erased-…@erased.invalid), in one transaction, audited without the address.
    Erase {
        #[command(flatten)]
        tenant: TenantArg,
        /// The person's e-mail address.
        #[arg(long)]
        email: String,
    },
}

/// `orb push-token ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PushTokenCommand {
    /// Make the tenant's first push token and print it once (only its SHA-256 is stored).
    Create {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Replace the tenant's push token with a new one, printed once; the old one is refused at once.
    Rotate {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Remove the tenant's push token: every TOPdesk push is refused until a new one is created.
    Revoke {
        #[command(flatten)]
        tenant: TenantArg,
    },
}

/// `orb user ...`: portal accounts (bootstrap; tenant-admins manage their users in the portal).
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a portal user and print a one-time password for them (unless --sso): an operator (every
    /// tenant, the installation; no --tenant) or a tenant-admin / tenant-viewer of one tenant.
    Add {
        /// The tenant (not for operators).
        #[arg(long)]
        tenant: Option<String>,
        /// The user's e-mail address (their login).
        #[arg(long)]
        email: String,
        /// operator, tenant-admin or tenant-viewer.
        #[arg(long)]
        role: String,
        /// No password: the user logs in with the tenant's single sign-on only.
        #[arg(long)]
        sso: bool,
        /// Read the password from standard input instead of generating one.
        #[arg(long, conflicts_with = "sso")]
        password_stdin: bool,
    },
    /// Remove a user's second factor and recovery codes: they enrol again at their next login.
    ResetMfa {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Set a new one-time password for a user, printed once, and end their sessions.
    ResetPassword {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Disable a user (their sessions and API tokens end) or enable them again.
    Disable {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// Enable instead.
        #[arg(long)]
        undo: bool,
    },
    /// List users: e-mail, role, tenant, second factor, state, last login.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `orb jobs ...`
#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// List queued, running and dead jobs: id, tenant, kind, lane, status, attempts, run at, last error
    /// (never the payload).
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only dead jobs.
        #[arg(long)]
        dead: bool,
    },
    /// Put a dead job (or every dead job) back in the queue: attempts reset, due now.
    Retry {
        /// The dead job's id (see `orb jobs list --dead`).
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Every dead job (of --tenant, otherwise of every tenant).
        #[arg(long)]
        all_dead: bool,
        /// With --all-dead: only this tenant.
        #[arg(long, requires = "all_dead")]
        tenant: Option<String>,
    },
    /// Remove a dead job that should not run again (the audit log keeps what it was).
    Dismiss {
        /// The dead job's id (see `orb jobs list --dead`).
        id: i64,
    },
}

/// `orb tenant ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Add a tenant.
    Add {
        /// Short name: lower-case letters, digits and '-', starting with a letter.
        name: String,
    },
    /// List tenants.
    List,
    /// Show a tenant's settings, or replace them with a TOML file (checked before anything is stored).
    Settings {
        #[command(flatten)]
        tenant: TenantArg,
        /// The settings file (TOML with the sections graph, topdesk, sync and retention); without it the
        /// current settings are shown.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

/// Selects a tenant.
#[derive(Debug, Args)]
pub(crate) struct TenantArg {
    /// The tenant's name.
    #[arg(long)]
    pub tenant: String,
}

/// `orb room ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RoomCommand {
    /// Map an Exchange room mailbox to a TOPdesk location.
    Add {
        #[command(flatten)]
        tenant: TenantArg,
        /// The Exchange room mailbox (SMTP address).
        #[arg(long)]
        mailbox: String,
        /// The TOPdesk location (or reservable asset) id.
        #[arg(long = "topdesk-location")]
        topdesk_location: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a tenant's rooms.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Stop syncing a room.
    Disable {
        #[command(flatten)]
        tenant: TenantArg,
        /// The room's mailbox.
        mailbox: String,
    },
    /// Resume syncing a room.
    Enable {
        #[command(flatten)]
        tenant: TenantArg,
        /// The room's mailbox.
        mailbox: String,
    },
}

/// `orb secret ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Store a secret; the value is read from standard input (one line, or everything until EOF).
    Set {
        #[command(flatten)]
        tenant: TenantArg,
        /// The secret's name, e.g. graph.client_secret or topdesk.app_password.
        key: String,
    },
    /// List a tenant's secrets: names, sealing key and date; never values.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
}

/// `orb keys ...`
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Print a new random master key (base64), or write it to a file readable only by its owner.
    Generate {
        /// Write the key to this file instead of standard output (refuses to overwrite).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Re-encrypt every secret under a new master key, in one transaction.
    Rotate {
        /// File holding the new key (base64). If it does not exist, a new key is generated into it.
        #[arg(long = "new-key-file", value_name = "PATH")]
        new_key_file: PathBuf,
    },
    /// Check that every stored secret opens with the configured master key (shows no values).
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
