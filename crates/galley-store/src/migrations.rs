//! Embedded migrations of the system tables. Each runs once, recorded in `_migrations`,
//! inside the write job that opened the store; on PostgreSQL an advisory lock held for that
//! transaction keeps two nodes starting together from racing.

use crate::{Conn, ConnExt, StoreError};
use galley_sql::{ColumnType as T, Dialect, SqlValue};

type Migration = (&'static str, fn(&Dialect) -> String);

/// How many embedded migrations there are (each leaves one `_migrations` row).
pub fn count() -> usize {
    MIGRATIONS.len()
}

/// The first migration's name: a database that records it was made by Galley.
pub const FIRST: &str = "0001_system_tables";

const MIGRATIONS: &[Migration] = &[
    ("0001_system_tables", system_tables),
    ("0002_auth_tables", auth_tables),
    ("0003_auth_origins", auth_origins),
    ("0004_jobs", jobs_tables),
    ("0005_dev_outbox", dev_outbox),
    ("0006_broker_outbox", broker_outbox),
    ("0007_events", events_table),
];

/// The cross-node bus (galley-core's `bus`): one row per committed record event or schema
/// change, numbered by the database. NOTIFY only wakes the other nodes, which read the rows
/// after the last number they saw; `kind` is `create`, `update`, `delete` or `schema`,
/// `record` the record as JSON text (a deleted one included), `created` ms since the epoch
/// (old rows are pruned).
fn events_table(d: &Dialect) -> String {
    let key = d.serial_key_def();
    let text = d.column_def(T::Text);
    format!(
        "CREATE TABLE \"_events\" (
            \"id\" {key},
            \"node\" {text},
            \"kind\" {text},
            \"collection\" {text},
            \"record\" {text},
            \"created\" BIGINT DEFAULT 0 NOT NULL
        );
        CREATE INDEX \"idx__events_created\" ON \"_events\" (\"created\");"
    )
}

/// Record events waiting to be published to a message broker (`target`: `nats`,
/// `rabbitmq`), numbered per collection by `_brokerSeq` (whose row lock orders the writers
/// of one collection, so `seq` order is commit order), and `_leases`: which node
/// publishes for a target.
fn broker_outbox(d: &Dialect) -> String {
    let pk = d.primary_key_def();
    let text = d.column_def(T::Text);
    format!(
        "CREATE TABLE \"_brokerOutbox\" (
            \"id\" {pk},
            \"target\" {text},
            \"collection\" {text},
            \"seq\" BIGINT DEFAULT 0 NOT NULL,
            \"subject\" {text},
            \"body\" {text},
            \"created\" BIGINT DEFAULT 0 NOT NULL
        );
        CREATE INDEX \"idx__brokerOutbox_order\" ON \"_brokerOutbox\" (\"target\", \"collection\", \"seq\");
        CREATE TABLE \"_brokerSeq\" (
            \"collection\" {pk},
            \"seq\" BIGINT DEFAULT 0 NOT NULL
        );
        CREATE TABLE \"_leases\" (
            \"id\" {pk},
            \"holder\" {text},
            \"until\" BIGINT DEFAULT 0 NOT NULL
        );"
    )
}

/// The durable job queue (galley-jobs) and the last scheduled run of each cron entry.
/// Times are integer milliseconds since the epoch on both engines, so comparisons and
/// arithmetic need no engine-specific SQL. `uniqueKey` is unique among live jobs only
/// (queued or running): a finished or dead job frees its key.
fn jobs_tables(d: &Dialect) -> String {
    let pk = d.primary_key_def();
    let text = d.column_def(T::Text);
    format!(
        "CREATE TABLE \"_jobs\" (
            \"id\" {pk},
            \"kind\" {text},
            \"queue\" {text},
            \"payload\" {text},
            \"priority\" BIGINT DEFAULT 0 NOT NULL,
            \"runAt\" BIGINT DEFAULT 0 NOT NULL,
            \"attempts\" BIGINT DEFAULT 0 NOT NULL,
            \"maxAttempts\" BIGINT DEFAULT 0 NOT NULL,
            \"uniqueKey\" TEXT NULL,
            \"state\" {text},
            \"leaseUntil\" BIGINT DEFAULT 0 NOT NULL,
            \"worker\" {text},
            \"lastError\" {text},
            \"created\" BIGINT DEFAULT 0 NOT NULL,
            \"updated\" BIGINT DEFAULT 0 NOT NULL
        );
        CREATE INDEX \"idx__jobs_due\" ON \"_jobs\" (\"state\", \"priority\" DESC, \"runAt\", \"id\");
        CREATE INDEX \"idx__jobs_lease\" ON \"_jobs\" (\"state\", \"leaseUntil\");
        CREATE UNIQUE INDEX \"idx__jobs_unique\" ON \"_jobs\" (\"uniqueKey\")
            WHERE \"uniqueKey\" IS NOT NULL AND \"state\" IN ('queued', 'running');
        CREATE TABLE \"_cronRuns\" (
            \"id\" {pk},
            \"lastRun\" BIGINT DEFAULT 0 NOT NULL
        );"
    )
}

/// Mail kept while SMTP is off (the dev outbox), so that it survives restarts.
fn dev_outbox(d: &Dialect) -> String {
    let pk = d.primary_key_def();
    let text = d.column_def(T::Text);
    format!(
        "CREATE TABLE \"_devOutbox\" (
            \"id\" {pk},
            \"mail\" {text},
            \"created\" BIGINT DEFAULT 0 NOT NULL
        );
        CREATE INDEX \"idx__devOutbox_created\" ON \"_devOutbox\" (\"created\");"
    )
}

/// The recent login origins of auth records that auth alerts compare against, with
/// PocketBase's columns and unique key. (`_externalAuths` is a system collection, created
/// with the collections at start-up.)
fn auth_origins(d: &Dialect) -> String {
    let ts = d.column_def(T::Timestamp);
    let text = d.column_def(T::Text);
    let pk = d.primary_key_def();
    format!(
        "CREATE TABLE \"_authOrigins\" (
            \"id\" {pk},
            \"collectionRef\" {text},
            \"recordRef\" {text},
            \"fingerprint\" {text},
            \"created\" {ts},
            \"updated\" {ts}
        );
        CREATE UNIQUE INDEX \"idx__authOrigins_unique_pairs\" ON \"_authOrigins\" (\"collectionRef\", \"recordRef\", \"fingerprint\");"
    )
}

/// One-time passwords and pending MFA sessions of auth records.
fn auth_tables(d: &Dialect) -> String {
    let ts = d.column_def(T::Timestamp);
    let text = d.column_def(T::Text);
    let num = d.column_def(T::Number);
    let pk = d.primary_key_def();
    format!(
        "CREATE TABLE \"_otps\" (
            \"id\" {pk},
            \"collectionRef\" {text},
            \"recordRef\" {text},
            \"password\" {text},
            \"sentTo\" {text},
            \"attempts\" {num},
            \"created\" {ts},
            \"updated\" {ts}
        );
        CREATE INDEX \"idx__otps_record\" ON \"_otps\" (\"collectionRef\", \"recordRef\");
        CREATE TABLE \"_mfas\" (
            \"id\" {pk},
            \"collectionRef\" {text},
            \"recordRef\" {text},
            \"method\" {text},
            \"created\" {ts},
            \"updated\" {ts}
        );
        CREATE INDEX \"idx__mfas_record\" ON \"_mfas\" (\"collectionRef\", \"recordRef\");"
    )
}

fn system_tables(d: &Dialect) -> String {
    let ts = d.column_def(T::Timestamp);
    let json = d.column_def(T::Json);
    let arr = d.column_def(T::JsonArray);
    let text = d.column_def(T::Text);
    let boolean = d.column_def(T::Bool);
    let pk = d.primary_key_def();
    format!(
        "CREATE TABLE \"_collections\" (
            \"id\" {pk},
            \"system\" {boolean},
            \"type\" {text},
            \"name\" {text},
            \"fields\" {arr},
            \"indexes\" {arr},
            \"listRule\" TEXT,
            \"viewRule\" TEXT,
            \"createRule\" TEXT,
            \"updateRule\" TEXT,
            \"deleteRule\" TEXT,
            \"options\" {json},
            \"created\" {ts},
            \"updated\" {ts}
        );
        CREATE UNIQUE INDEX \"idx__collections_name\" ON \"_collections\" ({name_ci});
        CREATE INDEX \"idx__collections_type\" ON \"_collections\" (\"type\");
        CREATE TABLE \"_params\" (
            \"id\" {pk},
            \"value\" {json},
            \"created\" {ts},
            \"updated\" {ts}
        );",
        name_ci = d.lower("\"name\""),
    )
}

pub fn run(c: &mut dyn Conn) -> Result<(), StoreError> {
    let d = c.dialect();
    if let Some(lock) = d.migration_lock() {
        c.batch(lock)?;
    }
    c.batch(
        "CREATE TABLE IF NOT EXISTS \"_migrations\" (\"file\" TEXT PRIMARY KEY NOT NULL, \"applied\" BIGINT NOT NULL)",
    )?;
    for (name, sql) in MIGRATIONS {
        let mut probe = String::from("SELECT 1 AS x FROM \"_migrations\" WHERE \"file\" = ");
        d.placeholder_into(&mut probe, 1);
        if c.query_one(&probe, &[SqlValue::from(*name)])?.is_some() {
            continue;
        }
        c.batch(&sql(d))?;
        let mut ins = String::from("INSERT INTO \"_migrations\" (\"file\", \"applied\") VALUES (");
        d.placeholder_into(&mut ins, 1);
        ins.push_str(", ");
        d.placeholder_into(&mut ins, 2);
        ins.push(')');
        let now = chrono::Utc::now().timestamp_micros();
        c.execute(&ins, &[SqlValue::from(*name), SqlValue::Int(now)])?;
        tracing::info!(migration = name, "applied system migration");
    }
    Ok(())
}
