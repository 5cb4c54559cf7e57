//! Dialect methods used by the expression engine (galley-expr). Kept in their own file so
//! that they stay additive: nothing here changes the behaviour of another method.

use crate::{ColumnType, Dialect, Engine};

impl Dialect {
    /// Cast appended to a bound placeholder so that PostgreSQL knows its type without
    /// inference (`$1::text`); empty on SQLite, whose values are dynamically typed.
    pub fn param_cast(&self, ty: ColumnType) -> &'static str {
        match self.engine {
            Engine::Sqlite => "",
            Engine::Postgres => match ty {
                ColumnType::Text => "::text",
                ColumnType::Number => "::double precision",
                ColumnType::Bool => "::boolean",
                ColumnType::Timestamp => "::timestamptz",
                ColumnType::Json | ColumnType::JsonArray | ColumnType::JsonPoint => "::jsonb",
            },
        }
    }

    /// The expression as text, the way SQLite would compare it with a text value. SQLite:
    /// unchanged. PostgreSQL: numbers and JSON cast to text, booleans as `0`/`1`,
    /// timestamps in the wire format (`''` for NULL, as SQLite stores an empty date).
    /// `ColumnType::Json` here means a jsonb *value* (see [`Dialect::json_value`]).
    pub fn to_text(&self, expr: &str, ty: ColumnType) -> String {
        match self.engine {
            Engine::Sqlite => expr.to_owned(),
            Engine::Postgres => match ty {
                ColumnType::Text => expr.to_owned(),
                ColumnType::Number => format!("CAST({expr} AS TEXT)"),
                ColumnType::Bool => format!("CAST(CAST({expr} AS INTEGER) AS TEXT)"),
                ColumnType::Timestamp => format!(
                    "COALESCE(to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS\"Z\"'), '')"
                ),
                ColumnType::Json => format!("(({expr}) #>> '{{}}')"),
                ColumnType::JsonArray | ColumnType::JsonPoint => format!("CAST({expr} AS TEXT)"),
            },
        }
    }

    /// A JSON path (`segments` are keys or array indexes) as a comparable JSON value:
    /// SQLite `JSON_EXTRACT` (native scalars, NULL for JSON null); PostgreSQL a jsonb value
    /// with JSON null mapped to SQL NULL. Segments must be `[A-Za-z0-9_]+`.
    pub fn json_value(&self, expr: &str, segments: &[String]) -> String {
        match self.engine {
            Engine::Sqlite => {
                let mut path = String::from("$");
                for s in segments {
                    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                        path.push('[');
                        path.push_str(s);
                        path.push(']');
                    } else {
                        path.push('.');
                        path.push_str(s);
                    }
                }
                format!("JSON_EXTRACT({expr}, '{}')", path.replace('\'', "''"))
            }
            Engine::Postgres => {
                let mut out = expr.to_owned();
                for s in segments {
                    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                        out = format!("({out} -> {s})");
                    } else {
                        out = format!("({out} -> '{}')", s.replace('\'', "''"));
                    }
                }
                format!("NULLIF({out}, 'null'::jsonb)")
            }
        }
    }

    /// A LEFT JOIN of a set-returning source (a [`Dialect::json_each`] item or a table with
    /// alias) with an ON condition.
    pub fn left_join(&self, source: &str, on: &str) -> String {
        format!(" LEFT JOIN {source} ON {on}")
    }

    /// Great-circle distance in km between two lon/lat points (numeric expressions),
    /// clamped so rounding never leaves `acos`'s domain.
    pub fn geo_distance_km(&self, lon_a: &str, lat_a: &str, lon_b: &str, lat_b: &str) -> String {
        let rad = |x: &str| format!("(({x}) * 0.017453292519943295)");
        let inner = format!(
            "cos({la})*cos({lb})*cos({ob}-{oa})+sin({la})*sin({lb})",
            la = rad(lat_a),
            lb = rad(lat_b),
            oa = rad(lon_a),
            ob = rad(lon_b)
        );
        let clamped = match self.engine {
            Engine::Sqlite => format!("MIN(1.0, MAX(-1.0, {inner}))"),
            Engine::Postgres => format!("LEAST(1.0, GREATEST(-1.0, {inner}))"),
        };
        format!("(6371 * acos({clamped}))")
    }

    /// Converts a SQLite `strftime` format for this engine: unchanged on SQLite, a
    /// `to_char` pattern on PostgreSQL (`None` if it uses an unsupported specifier).
    pub fn strftime_format(&self, fmt: &str) -> Option<String> {
        if self.engine == Engine::Sqlite {
            return Some(fmt.to_owned());
        }
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

    /// `strftime(format, time, modifiers…)` with already-rendered arguments. PostgreSQL
    /// supports no modifiers and needs `time` as a timestamptz (`None` otherwise).
    pub fn strftime(&self, fmt: &str, time: &str, modifiers: &[String]) -> Option<String> {
        match self.engine {
            Engine::Sqlite => {
                let mut s = format!("strftime({fmt}, {time}");
                for m in modifiers {
                    s.push_str(", ");
                    s.push_str(m);
                }
                s.push(')');
                Some(s)
            }
            Engine::Postgres if modifiers.is_empty() => {
                Some(format!("to_char(({time}) AT TIME ZONE 'UTC', {fmt})"))
            }
            Engine::Postgres => None,
        }
    }

    /// NULL placement that makes PostgreSQL order like SQLite (NULLs first ascending).
    pub fn nulls_order(&self, desc: bool) -> &'static str {
        match (self.engine, desc) {
            (Engine::Sqlite, _) => "",
            (Engine::Postgres, false) => " NULLS FIRST",
            (Engine::Postgres, true) => " NULLS LAST",
        }
    }

    /// Collation that makes text order byte-wise like SQLite's default.
    pub fn binary_collation(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "",
            Engine::Postgres => " COLLATE \"C\"",
        }
    }
}
