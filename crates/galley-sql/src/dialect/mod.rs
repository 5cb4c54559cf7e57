//! The [`Dialect`]: one value per engine ([`SQLITE`], [`POSTGRES`]), each backed by an
//! [`Engine`] implementation in its own file (`sqlite.rs`, `postgres.rs`). All SQL text that
//! differs between the engines lives in those two files; this one holds the interface and
//! the SQL both engines share.

mod postgres;
mod sqlite;

pub use postgres::POSTGRES;
pub use sqlite::SQLITE;

use crate::{ColumnType, SqlValue};

/// What each engine implements. Every method is documented on the [`Dialect`] method of the
/// same name, which is how the rest of the workspace reaches it: the trait is private, so
/// code outside this crate asks for the SQL it needs instead of branching on the engine.
pub(crate) trait Engine: Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    // ---- schema and store
    fn column_def(&self, ty: ColumnType) -> &'static str;
    fn rowid_column_def(&self) -> Option<&'static str>;
    fn rowid(&self) -> &'static str;
    fn migration_lock(&self) -> Option<&'static str>;
    fn notify(&self) -> Option<&'static str>;
    fn empty_timestamp(&self) -> SqlValue;
    fn nocase_index_key(&self, quoted: &str) -> String;
    fn bool_literal(&self, b: bool) -> &'static str;
    fn skip_locked(&self) -> &'static str;
    fn optimize(&self) -> &'static str;
    fn serial_key_def(&self) -> &'static str;
    fn xact_horizon(&self) -> Option<&'static str>;

    // ---- expressions
    fn dynamic_typing(&self) -> bool;
    fn param_cast(&self, ty: ColumnType) -> &'static str;
    fn json_param(&self, doc: serde_json::Value) -> SqlValue;
    fn to_text(&self, expr: &str, ty: ColumnType) -> String;
    fn to_number(&self, expr: &str, ty: ColumnType) -> Option<String>;
    fn null_safe_op(&self, eq: bool) -> &'static str;
    fn null_safe_eq(&self, x: &str, y: &str, eq: bool) -> String;
    fn not_empty_text(&self, x: &str) -> String;
    fn like(&self) -> &'static str;
    fn rejects_dangling_like_escape(&self) -> bool;
    fn now(&self) -> &'static str;
    fn clamp_unit(&self, x: &str) -> String;
    fn strftime_format(&self, fmt: &str) -> Option<String>;
    fn strftime(&self, fmt: &str, time: &str, modifiers: &[String]) -> Option<String>;
    fn nulls_order(&self, desc: bool) -> &'static str;
    fn binary_collation(&self) -> &'static str;

    // ---- JSON
    fn json_each(&self, expr: &str, quoted_alias: &str) -> String;
    fn json_array_length(&self, expr: &str) -> String;
    fn json_array_contains(&self, col: &str, param: &str) -> String;
    fn json_extract(&self, expr: &str, segments: &[String]) -> String;
    fn json_value(&self, expr: &str, segments: &[String]) -> String;
}

/// Everything that differs between the SQL of SQLite and PostgreSQL. There is exactly one
/// value per engine ([`SQLITE`], [`POSTGRES`]); code that needs engine-specific SQL asks the
/// dialect, and cannot do otherwise: which engine a dialect stands for is private.
#[derive(Debug)]
pub struct Dialect {
    engine: &'static dyn Engine,
    /// Placeholder prefix: `?` for SQLite (`?1`), `$` for PostgreSQL (`$1`). A field rather
    /// than an [`Engine`] method because renumbering compares it with every character.
    placeholder: char,
}

// ------------------------------------------------------------------ shared by both engines

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

    /// The placeholder of the `n`th bound parameter (1-based): `?1` / `$1`.
    pub fn placeholder(&self, n: usize) -> String {
        let mut s = String::new();
        self.placeholder_into(&mut s, n);
        s
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

    /// Primary-key text column.
    pub fn primary_key_def(&self) -> &'static str {
        "TEXT PRIMARY KEY NOT NULL"
    }

    /// Expression for a random row order.
    pub fn random(&self) -> &'static str {
        "RANDOM()"
    }

    /// Lower-cases an expression (for case-insensitive unique names and `:lower`).
    pub fn lower(&self, expr: &str) -> String {
        format!("LOWER({expr})")
    }

    /// `INSERT … ON CONFLICT … DO UPDATE` works the same on both engines (SQLite ≥ 3.24).
    pub fn supports_returning(&self) -> bool {
        true
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
        format!("(6371 * acos({}))", self.engine.clamp_unit(&inner))
    }
}

// ------------------------------------------------------------------ schema and store

impl Dialect {
    /// The engine's name (`sqlite`, `postgres`), for messages and test output.
    pub fn name(&self) -> &'static str {
        self.engine.name()
    }

    /// Column definition (type, default, nullability) for a logical column type.
    pub fn column_def(&self, ty: ColumnType) -> &'static str {
        self.engine.column_def(ty)
    }

    /// Extra column every record table gets, giving rows an insertion order (SQLite has
    /// `_rowid_` built in).
    pub fn rowid_column_def(&self) -> Option<&'static str> {
        self.engine.rowid_column_def()
    }

    /// Expression for the insertion-order row id, used by `@rowid` and stable counts.
    pub fn rowid(&self) -> &'static str {
        self.engine.rowid()
    }

    /// A statement that serialises concurrent migrations for the rest of the transaction.
    pub fn migration_lock(&self) -> Option<&'static str> {
        self.engine.migration_lock()
    }

    /// The statement that publishes `(channel, payload)` to every node when the current
    /// transaction commits; `None` where there is only one node (SQLite).
    pub fn notify(&self) -> Option<&'static str> {
        self.engine.notify()
    }

    /// The stored value of an empty date: `''` on SQLite (as PocketBase stores it), NULL on
    /// PostgreSQL, whose timestamptz has no empty string.
    pub fn empty_timestamp(&self) -> SqlValue {
        self.engine.empty_timestamp()
    }

    /// A case-insensitive index key over a quoted column: `COLLATE NOCASE` on SQLite, an
    /// expression index on `LOWER(col)` on PostgreSQL.
    pub fn nocase_index_key(&self, quoted: &str) -> String {
        self.engine.nocase_index_key(quoted)
    }

    /// A boolean written as a SQL literal (`1`/`0` on SQLite, `true`/`false` on
    /// PostgreSQL), for SQL text that cannot take parameters, such as a query pasted into
    /// a database's command-line client.
    pub fn bool_literal(&self, b: bool) -> &'static str {
        self.engine.bool_literal(b)
    }

    /// Appended to a `SELECT` that picks rows to claim (a job queue): ` FOR UPDATE SKIP
    /// LOCKED` on PostgreSQL, so concurrent claimers on several nodes take different rows
    /// without waiting on each other; empty on SQLite, whose single writer serialises claims.
    pub fn skip_locked(&self) -> &'static str {
        self.engine.skip_locked()
    }

    /// A statement that refreshes the planner's statistics (`PRAGMA optimize` / `ANALYZE`),
    /// for the daily maintenance run; valid inside a write job.
    pub fn optimize(&self) -> &'static str {
        self.engine.optimize()
    }

    /// An integer primary key numbered by the database (`BIGINT GENERATED ALWAYS AS
    /// IDENTITY` / `INTEGER PRIMARY KEY AUTOINCREMENT`), for tables read in insertion order.
    pub fn serial_key_def(&self) -> &'static str {
        self.engine.serial_key_def()
    }

    /// A query answering one row `(xmin, xmax)` as integers: every transaction whose id is
    /// below `xmin` has ended, and every transaction that had an id when the query ran has
    /// one below `xmax`. Readers of a table numbered by [`Dialect::serial_key_def`] use it
    /// to tell a number still held by a running transaction (it may yet appear) from one
    /// that never will (rolled back). `None` where one writer commits in number order
    /// (SQLite).
    pub fn xact_horizon(&self) -> Option<&'static str> {
        self.engine.xact_horizon()
    }
}

// ------------------------------------------------------------------ expressions

impl Dialect {
    /// Whether values carry their own type, as in SQLite: a comparison may mix types (type
    /// affinity decides) and literals are bound as they are, which is what PocketBase's own
    /// SQL relies on. `false` on PostgreSQL, where each column has one static type: the
    /// expression compiler then brings both sides of a comparison to one type and checks
    /// emptiness per type.
    pub fn dynamic_typing(&self) -> bool {
        self.engine.dynamic_typing()
    }

    /// Cast appended to a bound placeholder so that PostgreSQL knows its type without
    /// inference (`$1::text`); empty on SQLite, whose values are dynamically typed.
    pub fn param_cast(&self, ty: ColumnType) -> &'static str {
        self.engine.param_cast(ty)
    }

    /// A JSON document as a bound value that the JSON functions of this dialect read:
    /// text on SQLite, jsonb on PostgreSQL.
    pub fn json_param(&self, doc: serde_json::Value) -> SqlValue {
        self.engine.json_param(doc)
    }

    /// The expression as text, the way SQLite would compare it with a text value. SQLite:
    /// unchanged. PostgreSQL: numbers and JSON cast to text, booleans as `0`/`1`,
    /// timestamps in the wire format (`''` for NULL, as SQLite stores an empty date).
    /// `ColumnType::Json` here means a jsonb *value* (see [`Dialect::json_value`]).
    pub fn to_text(&self, expr: &str, ty: ColumnType) -> String {
        self.engine.to_text(expr, ty)
    }

    /// The expression as a number: unchanged on SQLite (any value has a numeric reading);
    /// on PostgreSQL numbers unchanged, JSON values cast, and `None` for other types.
    pub fn to_number(&self, expr: &str, ty: ColumnType) -> Option<String> {
        self.engine.to_number(expr, ty)
    }

    /// The null-safe comparison operator: `IS` / `IS NOT` on SQLite, `IS NOT DISTINCT
    /// FROM` / `IS DISTINCT FROM` on PostgreSQL (`eq` picks the first).
    pub fn null_safe_op(&self, eq: bool) -> &'static str {
        self.engine.null_safe_op(eq)
    }

    /// `x` and `y` compared null-safely (see [`Dialect::null_safe_op`]); PostgreSQL writes
    /// a comparison with the `NULL` literal as `IS NULL` / `IS NOT NULL`.
    pub fn null_safe_eq(&self, x: &str, y: &str, eq: bool) -> String {
        self.engine.null_safe_eq(x, y, eq)
    }

    /// Boolean expression: the text expression `x` is neither `''` nor NULL.
    pub fn not_empty_text(&self, x: &str) -> String {
        self.engine.not_empty_text(x)
    }

    /// `LIKE` that is case-insensitive for ASCII on both engines.
    pub fn like(&self) -> &'static str {
        self.engine.like()
    }

    /// Whether a LIKE pattern ending in a lone escape character is an error (PostgreSQL)
    /// rather than a pattern that matches nothing (SQLite).
    pub fn rejects_dangling_like_escape(&self) -> bool {
        self.engine.rejects_dangling_like_escape()
    }

    /// Literal for the current time in the wire format.
    pub fn now(&self) -> &'static str {
        self.engine.now()
    }

    /// Converts a SQLite `strftime` format for this engine: unchanged on SQLite, a
    /// `to_char` pattern on PostgreSQL (`None` if it uses an unsupported specifier).
    pub fn strftime_format(&self, fmt: &str) -> Option<String> {
        self.engine.strftime_format(fmt)
    }

    /// `strftime(format, time, modifiers…)` with already-rendered arguments. PostgreSQL
    /// supports no modifiers and needs `time` as a timestamptz (`None` otherwise).
    pub fn strftime(&self, fmt: &str, time: &str, modifiers: &[String]) -> Option<String> {
        self.engine.strftime(fmt, time, modifiers)
    }

    /// NULL placement that makes PostgreSQL order like SQLite (NULLs first ascending).
    pub fn nulls_order(&self, desc: bool) -> &'static str {
        self.engine.nulls_order(desc)
    }

    /// Collation that makes text order byte-wise like SQLite's default.
    pub fn binary_collation(&self) -> &'static str {
        self.engine.binary_collation()
    }
}

// ------------------------------------------------------------------ JSON

impl Dialect {
    /// A set-returning source that yields each element of a JSON array column as text,
    /// aliased as `alias` with a `value` column: `json_each(x) alias` / `jsonb_array_elements_text(x) alias(value)`.
    pub fn json_each(&self, expr: &str, alias: &str) -> String {
        self.engine.json_each(expr, &self.quote(alias))
    }

    /// Number of elements of a JSON array column (0 when not an array).
    pub fn json_array_length(&self, expr: &str) -> String {
        self.engine.json_array_length(expr)
    }

    /// Boolean expression: the JSON string array `col` contains the text bound at `param`.
    pub fn json_array_contains(&self, col: &str, param: &str) -> String {
        self.engine.json_array_contains(col, param)
    }

    /// Extracts a JSON path (`segments` are keys or array indexes) as a scalar.
    pub fn json_extract(&self, expr: &str, segments: &[String]) -> String {
        self.engine.json_extract(expr, segments)
    }

    /// A JSON path (`segments` are keys or array indexes) as a comparable JSON value:
    /// SQLite `JSON_EXTRACT` (native scalars, NULL for JSON null); PostgreSQL a jsonb value
    /// with JSON null mapped to SQL NULL. Segments must be `[A-Za-z0-9_]+`.
    pub fn json_value(&self, expr: &str, segments: &[String]) -> String {
        self.engine.json_value(expr, segments)
    }
}

/// Whether a JSON path segment is an array index.
fn is_index(segment: &str) -> bool {
    !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit())
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

    #[test]
    fn placeholders() {
        assert_eq!(SQLITE.placeholder(3), "?3");
        assert_eq!(POSTGRES.placeholder(12), "$12");
    }
}
