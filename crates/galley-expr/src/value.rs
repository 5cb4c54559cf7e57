//! Compile-time values and the typed SQL operands they become.

use galley_sql::{ColumnType, Sql, SqlValue};
use std::collections::BTreeSet;

/// A value known when the expression is compiled (a literal, a macro, an `@request.*` value).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    Text(String),
    Num(f64),
    Bool(bool),
}

impl Lit {
    pub(crate) fn from_json(v: &serde_json::Value) -> Lit {
        match v {
            serde_json::Value::Null => Lit::Null,
            serde_json::Value::Bool(b) => Lit::Bool(*b),
            serde_json::Value::Number(n) => Lit::Num(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Lit::Text(s.clone()),
            other => Lit::Text(other.to_string()),
        }
    }

    /// Empty in PocketBase's sense: NULL or `""`.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Lit::Null) || matches!(self, Lit::Text(s) if s.is_empty())
    }

    /// The value as Go's `cast.ToString` prints it (used for LIKE patterns).
    pub(crate) fn to_go_string(&self) -> String {
        match self {
            Lit::Null => String::new(),
            Lit::Text(s) => s.clone(),
            Lit::Num(n) => format!("{n}"),
            Lit::Bool(b) => b.to_string(),
        }
    }

    /// The value as SQLite converts it to text when it meets a TEXT column.
    pub(crate) fn to_sqlite_text(&self) -> String {
        match self {
            Lit::Null => String::new(),
            Lit::Text(s) => s.clone(),
            Lit::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{n:.1}"),
            Lit::Num(n) => format!("{n}"),
            Lit::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Lit::Null => serde_json::Value::Null,
            Lit::Text(s) => serde_json::Value::String(s.clone()),
            Lit::Num(n) => serde_json::Number::from_f64(*n)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Lit::Bool(b) => serde_json::Value::Bool(*b),
        }
    }

    /// The bound value as PocketBase binds it (SQLite, untyped).
    pub(crate) fn to_sql_value(&self) -> SqlValue {
        match self {
            Lit::Null => SqlValue::Null,
            Lit::Text(s) => SqlValue::Text(s.clone()),
            Lit::Num(n) => SqlValue::Real(*n),
            Lit::Bool(b) => SqlValue::Bool(*b),
        }
    }
}

/// The logical type of an operand's SQL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    Number,
    Bool,
    /// A date column: text on SQLite, timestamptz on PostgreSQL.
    Date,
    /// A JSON value (json field or JSON path): native scalars on SQLite, jsonb on PostgreSQL.
    Json,
    /// A JSON column compared as its text (multi-value fields, geoPoint).
    JsonText,
}

impl Ty {
    pub(crate) fn column_type(self) -> ColumnType {
        match self {
            Ty::Text => ColumnType::Text,
            Ty::Number => ColumnType::Number,
            Ty::Bool => ColumnType::Bool,
            Ty::Date => ColumnType::Timestamp,
            Ty::Json => ColumnType::Json,
            Ty::JsonText => ColumnType::JsonArray,
        }
    }
}

/// A resolved SQL operand.
#[derive(Debug, Clone)]
pub(crate) struct ExprVal {
    pub sql: Sql,
    pub ty: Ty,
    /// Joins (ids into the compiler's registry) the expression reads from.
    pub joins: BTreeSet<usize>,
    /// Whether the operand has several values per row (multi relation, back relation,
    /// `@collection`, `:each`).
    pub multi: bool,
    /// Condition ANDed to any comparison with this operand (auth `email` visibility).
    pub guard: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Lit(Lit),
    Expr(ExprVal),
}

impl Val {
    pub(crate) fn expr(sql: Sql, ty: Ty) -> Val {
        Val::Expr(ExprVal {
            sql,
            ty,
            joins: BTreeSet::new(),
            multi: false,
            guard: None,
        })
    }

    pub(crate) fn joins(&self) -> BTreeSet<usize> {
        match self {
            Val::Lit(_) => BTreeSet::new(),
            Val::Expr(e) => e.joins.clone(),
        }
    }

    pub(crate) fn is_multi(&self) -> bool {
        matches!(self, Val::Expr(e) if e.multi)
    }

    /// The guard of this operand, if any.
    pub(crate) fn guard(&self) -> Option<&str> {
        match self {
            Val::Expr(e) => e.guard.as_deref(),
            Val::Lit(_) => None,
        }
    }
}

/// The guards of a function's arguments as one, so that its value is read only where
/// each argument may be read.
pub(crate) fn merge_guards<'v>(vals: impl IntoIterator<Item = &'v Val>) -> Option<String> {
    let gs: Vec<&str> = vals.into_iter().filter_map(Val::guard).collect();
    (!gs.is_empty()).then(|| gs.join(" AND "))
}
