//! PostgreSQL engine: a deadpool pool of tokio-postgres clients. A job runs on a blocking
//! thread that drives the async client with `Handle::block_on`, so service code is written
//! once, synchronously, for both engines.

use crate::{Conn, Row, StoreError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use galley_sql::{Dialect, SqlValue, POSTGRES};
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    pub async fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let cfg: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Config(format!(
                "invalid database URL: {e}. Expected postgres://USER[:PASSWORD]@HOST:PORT/DATABASE"
            ))
        })?;
        let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(pool_size.max(2))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot create the connection pool: {e}")))?;
        // Fail at start-up with a clear message rather than on the first request.
        let client = pool.get().await.map_err(|e| {
            StoreError::Config(format!(
                "cannot connect to PostgreSQL: {e}. Check the host, port, user, password and database in --database-url"
            ))
        })?;
        drop(client);
        Ok(PgStore { pool })
    }

    pub async fn run<T, E, F>(&self, write: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    {
        let client = self.pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut c = PgConn { client, handle };
            if !write {
                return f(&mut c);
            }
            c.batch("BEGIN")?;
            match f(&mut c) {
                Ok(v) => {
                    c.batch("COMMIT")?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = c.batch("ROLLBACK");
                    Err(e)
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(StoreError::Query("database job panicked".into()).into()))
    }

    pub fn close(&self) {
        self.pool.close();
    }
}

struct PgConn {
    client: deadpool_postgres::Object,
    handle: Handle,
}

fn map_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
            // detail: "Key (title)=(x) already exists."
            let columns = db
                .detail()
                .and_then(|d| d.strip_prefix("Key ("))
                .and_then(|d| d.split_once(")="))
                .map(|(cols, _)| cols.split(',').map(|c| c.trim().trim_matches('"').to_owned()).collect())
                .unwrap_or_default();
            return StoreError::UniqueViolation { columns };
        }
        return StoreError::Query(format!("{}: {}", db.code().code(), db.message()));
    }
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Query(e.to_string())
}

#[derive(Debug)]
struct Param<'a>(&'a SqlValue);

type BoxErr = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxErr> {
        use SqlValue as V;
        let text_like = matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN);
        match self.0 {
            V::Null => Ok(IsNull::Yes),
            V::Text(s) => match *ty {
                Type::FLOAT8 => s.trim().parse::<f64>().unwrap_or(0.0).to_sql(ty, out),
                Type::FLOAT4 => (s.trim().parse::<f64>().unwrap_or(0.0) as f32).to_sql(ty, out),
                Type::INT8 => s.trim().parse::<i64>().unwrap_or(0).to_sql(ty, out),
                Type::INT4 => s.trim().parse::<i32>().unwrap_or(0).to_sql(ty, out),
                Type::INT2 => s.trim().parse::<i16>().unwrap_or(0).to_sql(ty, out),
                Type::BOOL => (s == "1" || s.eq_ignore_ascii_case("true")).to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::from_str::<serde_json::Value>(s)
                    .unwrap_or_else(|_| serde_json::Value::String(s.clone()))
                    .to_sql(ty, out),
                Type::TIMESTAMPTZ => match parse_ts(s) {
                    Some(t) => t.to_sql(ty, out),
                    None => Ok(IsNull::Yes),
                },
                _ => s.as_str().to_sql(&Type::TEXT, out),
            },
            V::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => (*i as i32).to_sql(ty, out),
                Type::INT2 => (*i as i16).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::Value::from(*i).to_sql(ty, out),
                _ if text_like => i.to_string().to_sql(&Type::TEXT, out),
                _ => (*i as f64).to_sql(&Type::FLOAT8, out),
            },
            V::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::INT8 => (*f as i64).to_sql(ty, out),
                Type::INT4 => (*f as i32).to_sql(ty, out),
                Type::INT2 => (*f as i16).to_sql(ty, out),
                Type::BOOL => (*f != 0.0).to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::json!(f).to_sql(ty, out),
                _ if text_like => f.to_string().to_sql(&Type::TEXT, out),
                _ => f.to_sql(&Type::FLOAT8, out),
            },
            V::Bool(b) => match *ty {
                Type::INT8 => (*b as i64).to_sql(ty, out),
                Type::INT4 => (*b as i32).to_sql(ty, out),
                Type::FLOAT8 => (*b as i64 as f64).to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::Value::Bool(*b).to_sql(ty, out),
                _ if text_like => b.to_string().to_sql(&Type::TEXT, out),
                _ => b.to_sql(&Type::BOOL, out),
            },
            V::Json(j) => match *ty {
                _ if text_like => j.to_string().to_sql(&Type::TEXT, out),
                Type::JSON => j.to_sql(ty, out),
                _ => j.to_sql(&Type::JSONB, out),
            },
            V::Timestamp(t) => match *ty {
                _ if text_like => t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string().to_sql(&Type::TEXT, out),
                Type::TIMESTAMP => t.naive_utc().to_sql(ty, out),
                _ => t.to_sql(&Type::TIMESTAMPTZ, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = s.trim();
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&s.replacen(' ', "T", 1)))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn decode(row: &tokio_postgres::Row, i: usize) -> SqlValue {
    let ty = row.columns()[i].type_();
    let v = match *ty {
        Type::BOOL => row.try_get::<_, Option<bool>>(i).ok().flatten().map(SqlValue::Bool),
        Type::INT2 => row.try_get::<_, Option<i16>>(i).ok().flatten().map(|v| SqlValue::Int(v.into())),
        Type::INT4 => row.try_get::<_, Option<i32>>(i).ok().flatten().map(|v| SqlValue::Int(v.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(i).ok().flatten().map(SqlValue::Int),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).ok().flatten().map(|v| SqlValue::Real(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).ok().flatten().map(SqlValue::Real),
        Type::JSON | Type::JSONB => {
            row.try_get::<_, Option<serde_json::Value>>(i).ok().flatten().map(SqlValue::Json)
        }
        Type::TIMESTAMPTZ => row
            .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
            .ok()
            .flatten()
            .map(SqlValue::Timestamp),
        Type::TIMESTAMP => row
            .try_get::<_, Option<chrono::NaiveDateTime>>(i)
            .ok()
            .flatten()
            .map(|n| SqlValue::Timestamp(n.and_utc())),
        _ => row.try_get::<_, Option<String>>(i).ok().flatten().map(SqlValue::Text),
    };
    v.unwrap_or(SqlValue::Null)
}

impl Conn for PgConn {
    fn dialect(&self) -> &'static Dialect {
        &POSTGRES
    }

    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let client = &self.client;
        let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.handle.block_on(async {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, &refs).await
        });
        let rows = rows.map_err(map_err)?;
        let Some(first) = rows.first() else { return Ok(Vec::new()) };
        let columns: Arc<[String]> = first.columns().iter().map(|c| c.name().to_owned()).collect();
        Ok(rows
            .iter()
            .map(|r| Row { columns: columns.clone(), values: (0..columns.len()).map(|i| decode(r, i)).collect() })
            .collect())
    }

    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let client = &self.client;
        let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.handle
            .block_on(async {
                let stmt = client.prepare_cached(sql).await?;
                client.execute(&stmt, &refs).await
            })
            .map_err(map_err)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let client = &self.client;
        self.handle.block_on(client.batch_execute(sql)).map_err(map_err)
    }
}
