//! PostgreSQL: native column types (double precision, boolean, timestamptz, jsonb), so
//! values need casts to compare the way SQLite would; several nodes, told of changes by
//! `NOTIFY`.

use super::{is_index, Dialect, Engine};
use crate::{ColumnType, SqlValue};

pub static POSTGRES: Dialect = Dialect {
    engine: &Postgres,
    placeholder: '$',
};

#[derive(Debug)]
struct Postgres;

impl Engine for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn column_def(&self, ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Text => "TEXT DEFAULT '' NOT NULL",
            ColumnType::Number => "DOUBLE PRECISION DEFAULT 0 NOT NULL",
            ColumnType::Bool => "BOOLEAN DEFAULT FALSE NOT NULL",
            ColumnType::Timestamp => "TIMESTAMPTZ NULL",
            ColumnType::Json => "JSONB DEFAULT NULL",
            ColumnType::JsonArray => "JSONB DEFAULT '[]'::jsonb NOT NULL",
            ColumnType::JsonPoint => "JSONB DEFAULT '{\"lon\":0,\"lat\":0}'::jsonb NOT NULL",
        }
    }

    fn rowid_column_def(&self) -> Option<&'static str> {
        // UNIQUE gives it an index, so an unsorted page (ORDER BY the row id) is an index
        // scan rather than a sort of the whole table.
        Some("\"_rowid\" BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE")
    }

    fn rowid(&self) -> &'static str {
        "_rowid"
    }

    fn migration_lock(&self) -> Option<&'static str> {
        // Any constant works; this one spells "galley" in ASCII.
        Some("SELECT pg_advisory_xact_lock(103971897845113)")
    }

    fn notify(&self) -> Option<&'static str> {
        Some("SELECT pg_notify($1::text, $2::text)")
    }

    fn empty_timestamp(&self) -> SqlValue {
        SqlValue::Null
    }

    fn nocase_index_key(&self, quoted: &str) -> String {
        format!("(LOWER({quoted}))")
    }

    fn bool_literal(&self, b: bool) -> &'static str {
        if b {
            "true"
        } else {
            "false"
        }
    }

    fn dynamic_typing(&self) -> bool {
        false
    }

    fn param_cast(&self, ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Text => "::text",
            ColumnType::Number => "::double precision",
            ColumnType::Bool => "::boolean",
            ColumnType::Timestamp => "::timestamptz",
            ColumnType::Json | ColumnType::JsonArray | ColumnType::JsonPoint => "::jsonb",
        }
    }

    fn json_param(&self, doc: serde_json::Value) -> SqlValue {
        SqlValue::Json(doc)
    }

    fn to_text(&self, expr: &str, ty: ColumnType) -> String {
        match ty {
            ColumnType::Text => expr.to_owned(),
            ColumnType::Number => format!("CAST({expr} AS TEXT)"),
            ColumnType::Bool => format!("CAST(CAST({expr} AS INTEGER) AS TEXT)"),
            ColumnType::Timestamp => format!(
                "COALESCE(to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS\"Z\"'), '')"
            ),
            ColumnType::Json => format!("(({expr}) #>> '{{}}')"),
            ColumnType::JsonArray | ColumnType::JsonPoint => format!("CAST({expr} AS TEXT)"),
        }
    }

    fn to_number(&self, expr: &str, ty: ColumnType) -> Option<String> {
        match ty {
            ColumnType::Number => Some(expr.to_owned()),
            ColumnType::Json => Some(format!(
                "CAST({} AS DOUBLE PRECISION)",
                self.to_text(expr, ColumnType::Json)
            )),
            _ => None,
        }
    }

    fn null_safe_op(&self, eq: bool) -> &'static str {
        if eq {
            "IS NOT DISTINCT FROM"
        } else {
            "IS DISTINCT FROM"
        }
    }

    fn null_safe_eq(&self, x: &str, y: &str, eq: bool) -> String {
        let is_null = if eq { "IS NULL" } else { "IS NOT NULL" };
        if y == "NULL" {
            format!("{x} {is_null}")
        } else if x == "NULL" {
            format!("{y} {is_null}")
        } else {
            format!("{x} {} {y}", self.null_safe_op(eq))
        }
    }

    fn not_empty_text(&self, x: &str) -> String {
        format!("({x} <> '' AND {x} IS NOT NULL)")
    }

    fn like(&self) -> &'static str {
        // LIKE is case-sensitive here; ILIKE matches SQLite's ASCII case folding.
        "ILIKE"
    }

    fn rejects_dangling_like_escape(&self) -> bool {
        true
    }

    fn now(&self) -> &'static str {
        "now()"
    }

    fn clamp_unit(&self, x: &str) -> String {
        format!("LEAST(1.0, GREATEST(-1.0, {x}))")
    }

    fn strftime_format(&self, fmt: &str) -> Option<String> {
        let mut out = String::new();
        let mut lit = String::new();
        let flush = |out: &mut String, lit: &mut String| {
            if !lit.is_empty() {
                out.push('"');
                out.push_str(&lit.replace('\\', "\\\\").replace('"', "\\\""));
                out.push('"');
                lit.clear();
            }
        };
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let spec = match chars.next()? {
                'Y' => "YYYY",
                'm' => "MM",
                'd' => "DD",
                'H' => "HH24",
                'M' => "MI",
                'S' => "SS",
                'f' => "SS.MS",
                'j' => "DDD",
                'W' => "IW",
                '%' => {
                    lit.push('%');
                    continue;
                }
                _ => return None,
            };
            flush(&mut out, &mut lit);
            out.push_str(spec);
        }
        flush(&mut out, &mut lit);
        Some(out)
    }

    fn strftime(&self, fmt: &str, time: &str, modifiers: &[String]) -> Option<String> {
        if !modifiers.is_empty() {
            return None;
        }
        Some(format!("to_char(({time}) AT TIME ZONE 'UTC', {fmt})"))
    }

    fn nulls_order(&self, desc: bool) -> &'static str {
        // SQLite puts NULLs first ascending; PostgreSQL's default is the opposite.
        if desc {
            " NULLS LAST"
        } else {
            " NULLS FIRST"
        }
    }

    fn skip_locked(&self) -> &'static str {
        " FOR UPDATE SKIP LOCKED"
    }

    fn optimize(&self) -> &'static str {
        "ANALYZE"
    }

    fn serial_key_def(&self) -> &'static str {
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    }

    fn xact_horizon(&self) -> Option<&'static str> {
        Some("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax")
    }

    fn binary_collation(&self) -> &'static str {
        " COLLATE \"C\""
    }

    fn json_each(&self, expr: &str, quoted_alias: &str) -> String {
        format!(
            "jsonb_array_elements_text(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} ELSE '[]'::jsonb END) {quoted_alias}(value)"
        )
    }

    fn json_array_length(&self, expr: &str) -> String {
        format!(
            "(CASE WHEN jsonb_typeof({expr}) = 'array' THEN jsonb_array_length({expr}) ELSE 0 END)"
        )
    }

    fn json_array_contains(&self, col: &str, param: &str) -> String {
        format!("jsonb_exists({col}, {param})")
    }

    fn json_extract(&self, expr: &str, segments: &[String]) -> String {
        let mut out = format!("({expr})");
        for s in segments {
            out = format!("({out} -> '{}')", s.replace('\'', "''"));
        }
        // Scalars come back as text; objects/arrays as their JSON text.
        format!("({out} #>> '{{}}')")
    }

    fn json_value(&self, expr: &str, segments: &[String]) -> String {
        let mut out = expr.to_owned();
        for s in segments {
            if is_index(s) {
                out = format!("({out} -> {s})");
            } else {
                out = format!("({out} -> '{}')", s.replace('\'', "''"));
            }
        }
        format!("NULLIF({out}, 'null'::jsonb)")
    }
}
