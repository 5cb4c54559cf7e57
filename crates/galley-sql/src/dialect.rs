use crate::ColumnType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Everything that differs between the SQL of SQLite and PostgreSQL. There is exactly one
/// value per engine ([`SQLITE`], [`POSTGRES`]); code that needs engine-specific SQL asks the
/// dialect rather than matching on the engine itself.
#[derive(Debug)]
pub struct Dialect {
    pub engine: Engine,
    /// Placeholder prefix: `?` for SQLite (`?1`), `$` for PostgreSQL (`$1`).
    placeholder: char,
}

pub static SQLITE: Dialect = Dialect {
    engine: Engine::Sqlite,
    placeholder: '?',
};
pub static POSTGRES: Dialect = Dialect {
    engine: Engine::Postgres,
    placeholder: '$',
};

impl Dialect {
    pub fn quote_into(&self, out: &mut String, ident: &str) {
        out.push('"');
        for c in ident.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }

    pub fn quote(&self, ident: &str) -> String {
        let mut s = String::with_capacity(ident.len() + 2);
        self.quote_into(&mut s, ident);
        s
    }

    pub fn placeholder_into(&self, out: &mut String, n: usize) {
        out.push(self.placeholder);
        out.push_str(&n.to_string());
    }

    /// Copies `text` into `out`, shifting every placeholder number by `offset`.
    pub(crate) fn renumber_into(&self, out: &mut String, text: &str, offset: usize) {
        let mut chars = text.char_indices().peekable();
        let mut in_str = false;
        while let Some((_, c)) = chars.next() {
            if c == '\'' {
                in_str = !in_str;
            }
            if !in_str && c == self.placeholder {
                let mut num = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        num.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if let Ok(n) = num.parse::<usize>() {
                    self.placeholder_into(out, n + offset);
                    continue;
                }
                out.push(c);
                out.push_str(&num);
                continue;
            }
            out.push(c);
        }
    }

    /// Column definition (type, default, nullability) for a logical column type.
    pub fn column_def(&self, ty: ColumnType) -> &'static str {
        match (self.engine, ty) {
            (Engine::Sqlite, ColumnType::Text) => "TEXT DEFAULT '' NOT NULL",
            (Engine::Sqlite, ColumnType::Number) => "NUMERIC DEFAULT 0 NOT NULL",
            (Engine::Sqlite, ColumnType::Bool) => "BOOLEAN DEFAULT FALSE NOT NULL",
            (Engine::Sqlite, ColumnType::Timestamp) => "TEXT DEFAULT '' NOT NULL",
            (Engine::Sqlite, ColumnType::Json) => "JSON DEFAULT NULL",
            (Engine::Sqlite, ColumnType::JsonArray) => "JSON DEFAULT '[]' NOT NULL",
            (Engine::Sqlite, ColumnType::JsonPoint) => {
                "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL"
            }
            (Engine::Postgres, ColumnType::Text) => "TEXT DEFAULT '' NOT NULL",
            (Engine::Postgres, ColumnType::Number) => "DOUBLE PRECISION DEFAULT 0 NOT NULL",
            (Engine::Postgres, ColumnType::Bool) => "BOOLEAN DEFAULT FALSE NOT NULL",
            (Engine::Postgres, ColumnType::Timestamp) => "TIMESTAMPTZ NULL",
            (Engine::Postgres, ColumnType::Json) => "JSONB DEFAULT NULL",
            (Engine::Postgres, ColumnType::JsonArray) => "JSONB DEFAULT '[]'::jsonb NOT NULL",
            (Engine::Postgres, ColumnType::JsonPoint) => {
                "JSONB DEFAULT '{\"lon\":0,\"lat\":0}'::jsonb NOT NULL"
            }
        }
    }

    /// Extra column every record table gets, giving rows an insertion order (SQLite has
    /// `_rowid_` built in).
    pub fn rowid_column_def(&self) -> Option<&'static str> {
        match self.engine {
            Engine::Sqlite => None,
            // UNIQUE gives it an index, so an unsorted page (ORDER BY the row id) is an index
            // scan rather than a sort of the whole table.
            Engine::Postgres => Some("\"_rowid\" BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE"),
        }
    }

    /// Primary-key text column.
    pub fn primary_key_def(&self) -> &'static str {
        "TEXT PRIMARY KEY NOT NULL"
    }

    /// Expression for a random row order.
    pub fn random(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "RANDOM()",
            Engine::Postgres => "RANDOM()",
        }
    }

    /// Expression for the insertion-order row id, used by `@rowid` and stable counts.
    pub fn rowid(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "_rowid_",
            Engine::Postgres => "_rowid",
        }
    }

    /// `LIKE` that is case-insensitive for ASCII on both engines.
    pub fn like(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "LIKE",
            Engine::Postgres => "ILIKE",
        }
    }

    /// A set-returning source that yields each element of a JSON array column as text,
    /// aliased as `alias` with a `value` column: `json_each(x) alias` / `jsonb_array_elements_text(x) alias(value)`.
    pub fn json_each(&self, expr: &str, alias: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!("json_each({expr}) {}", self.quote(alias)),
            Engine::Postgres => format!(
                "jsonb_array_elements_text(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} ELSE '[]'::jsonb END) {}(value)",
                self.quote(alias)
            ),
        }
    }

    /// Number of elements of a JSON array column (0 when not an array).
    pub fn json_array_length(&self, expr: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!(
                "(CASE WHEN json_valid({expr}) AND json_type({expr}) = 'array' THEN json_array_length({expr}) ELSE 0 END)"
            ),
            Engine::Postgres => format!(
                "(CASE WHEN jsonb_typeof({expr}) = 'array' THEN jsonb_array_length({expr}) ELSE 0 END)"
            ),
        }
    }

    /// Extracts a JSON path (`segments` are keys or array indexes) as a scalar.
    pub fn json_extract(&self, expr: &str, segments: &[String]) -> String {
        match self.engine {
            Engine::Sqlite => {
                let mut path = String::from("$");
                for s in segments {
                    if s.chars().all(|c| c.is_ascii_digit()) {
                        path.push('[');
                        path.push_str(s);
                        path.push(']');
                    } else {
                        path.push('.');
                        path.push('"');
                        path.push_str(&s.replace('"', ""));
                        path.push('"');
                    }
                }
                format!("JSON_EXTRACT({expr}, '{}')", path.replace('\'', "''"))
            }
            Engine::Postgres => {
                let mut out = format!("({expr})");
                for s in segments {
                    out = format!("({out} -> '{}')", s.replace('\'', "''"));
                }
                // Scalars come back as text; objects/arrays as their JSON text.
                format!("({out} #>> '{{}}')")
            }
        }
    }

    /// Literal for the current time in the wire format.
    pub fn now(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "strftime('%Y-%m-%d %H:%M:%fZ')",
            Engine::Postgres => "now()",
        }
    }

    /// Lower-cases an expression (for case-insensitive unique names and `:lower`).
    pub fn lower(&self, expr: &str) -> String {
        format!("LOWER({expr})")
    }

    /// A statement that serialises concurrent migrations for the rest of the transaction.
    pub fn migration_lock(&self) -> Option<&'static str> {
        match self.engine {
            Engine::Sqlite => None,
            // Any constant works; this one spells "galley" in ASCII.
            Engine::Postgres => Some("SELECT pg_advisory_xact_lock(103971897845113)"),
        }
    }

    /// `INSERT … ON CONFLICT … DO UPDATE` works the same on both engines (SQLite ≥ 3.24).
    pub fn supports_returning(&self) -> bool {
        true
    }

    /// The SQLSTATE / extended code meaning "unique constraint violated" is engine specific;
    /// the store maps it, this is only documentation of the mapping.
    pub fn name(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sql;

    #[test]
    fn append_renumbers_placeholders() {
        let mut a = Sql::new(&POSTGRES);
        a.push("a = ").push_param(1i64);
        let mut b = Sql::new(&POSTGRES);
        b.push(" AND b = ").push_param(2i64).push(" AND c = '$1'");
        a.append(&b);
        assert_eq!(a.text, "a = $1 AND b = $2 AND c = '$1'");
        assert_eq!(a.params.len(), 2);
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(SQLITE.quote("a\"b"), "\"a\"\"b\"");
    }
}
