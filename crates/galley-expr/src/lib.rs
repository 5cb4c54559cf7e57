//! Galley's filter / API-rule / sort expression language — the same language as
//! PocketBase's (`pocketbase-api.md` §12), compiled to parameterised SQL for SQLite and
//! PostgreSQL. Pure: no IO, no async.
//!
//! Pipeline:
//!
//! 1. **lex** ([`lexer`]) — text → tokens with byte spans; `// comments` dropped.
//! 2. **parse** ([`parse`]) — tokens → [`Ast`] (`&&` binds tighter than `||`), enforcing
//!    the limits: ≤ 3500 characters, ≤ 200 comparisons, ≤ 32 nested parentheses.
//! 3. **resolve** — every identifier is bound to a field of the [`Schema`] (relation
//!    paths, back relations `coll_via_field`, `@collection.name[:alias]`, JSON paths,
//!    modifiers), to a macro (`@now`, …) or to an `@request.*` value; request values are
//!    known when compiling and become bound literals. Joins are planned per path
//!    (≤ 6 relation levels, ≤ 20 joined collections).
//! 4. **generate** — a self-contained boolean [`Sql`] fragment through the [`Dialect`]:
//!    joined rows are read in correlated `EXISTS` sub-queries (never joins of the outer
//!    query, so no `DISTINCT`), "all of" comparisons on multi-value operands add a
//!    `NOT EXISTS` over an independent copy of the joins, and a non-superuser's filter
//!    gets each joined collection's `listRule` in the join condition.
//!
//! Architecture invariant: values only ever enter the SQL as bound parameters
//! ([`Sql::push_param`]) and identifiers only come from the schema (quoted by the
//! dialect); nothing here knows which engine runs except through the [`Dialect`].

pub mod ast;
mod compile;
mod error;
pub mod lexer;
mod params;
mod parser;
mod value;

pub use ast::{Ast, CmpOp, Comparison, Node, Operand, Span};
pub use compile::{MAX_JOINS, MAX_RELATION_DEPTH};
pub use error::ExprError;
pub use params::bind_params;
pub use parser::{parse, MAX_DEPTH, MAX_EXPRESSIONS, MAX_LEN};

use chrono::{DateTime, Utc};
use galley_sql::{Dialect, Sql, SQLITE};
use galley_types::{Collection, Schema};
use serde_json::{Map, Value};

/// Most keys in a `sort` parameter.
pub const MAX_SORT_KEYS: usize = 8;
/// Longest single sort key.
pub const MAX_SORT_KEY_LEN: usize = 255;
/// Deepest `expand` path.
pub const MAX_EXPAND_DEPTH: usize = 6;

/// What `@request.*` sees.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// `GET`, `POST`, …
    pub method: String,
    /// `default`, `expand`, `realtime`, `protectedFile`, `batch`, `oauth2`, `otp`, `password`.
    pub context: String,
    /// First value of each query parameter (strings).
    pub query: Map<String, Value>,
    /// Snake-cased header names → first value.
    pub headers: Map<String, Value>,
    /// The submitted body after modifiers; `None` for reads.
    pub body: Option<Map<String, Value>>,
    /// `None` for guests.
    pub auth: Option<AuthInfo>,
}

/// The authenticated record behind `@request.auth.*`.
#[derive(Debug, Clone, Default)]
pub struct AuthInfo {
    pub collection_id: String,
    pub collection_name: String,
    /// The full record (id, email, verified, …).
    pub record: Map<String, Value>,
    pub is_superuser: bool,
}

/// How an expression is compiled.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// A superuser's filter/sort: hidden fields allowed, joined collections' listRules
    /// skipped, `@request.*`/`@collection.*` allowed.
    pub superuser: bool,
    /// True for API rules: hidden fields allowed, no listRule on joins, no email
    /// visibility condition. A compile with neither flag is a *client* filter or sort.
    pub allow_hidden: bool,
    /// The time the date macros (`@now`, `@todayStart`, …) are computed from.
    pub now: DateTime<Utc>,
}

impl CompileOptions {
    /// Options for an API rule.
    pub fn rule(now: DateTime<Utc>) -> Self {
        CompileOptions {
            superuser: false,
            allow_hidden: true,
            now,
        }
    }

    /// Options for a filter or sort sent by the client.
    pub fn client(superuser: bool, now: DateTime<Utc>) -> Self {
        CompileOptions {
            superuser,
            allow_hidden: false,
            now,
        }
    }

    fn is_client(&self) -> bool {
        !self.superuser && !self.allow_hidden
    }
}

/// PocketBase answers 403 when a non-superuser's filter or sort mentions these.
fn check_forbidden(expr: &str, opts: &CompileOptions) -> Result<(), ExprError> {
    if opts.is_client() && (expr.contains("@request.") || expr.contains("@collection.")) {
        return Err(ExprError::Forbidden);
    }
    Ok(())
}

/// Compiles a filter or rule into a self-contained boolean SQL fragment that refers to the
/// main table by the alias `main_alias` (e.g. `posts`); every value is a bound parameter.
pub fn compile_filter(
    schema: &Schema,
    collection: &Collection,
    main_alias: &str,
    expr: &str,
    req: &RequestInfo,
    opts: &CompileOptions,
    dialect: &'static Dialect,
) -> Result<Sql, ExprError> {
    check_forbidden(expr, opts)?;
    let ast = parse(expr)?;
    compile::Compiler::new(schema, collection, main_alias, req, opts, dialect).compile(&ast)
}

/// Compiles an already parsed rule (see [`parse`]); callers cache the [`Ast`] of a stored
/// rule so that only resolution against the schema and the request runs per request.
pub fn compile_ast(
    schema: &Schema,
    collection: &Collection,
    main_alias: &str,
    ast: &Ast,
    req: &RequestInfo,
    opts: &CompileOptions,
    dialect: &'static Dialect,
) -> Result<Sql, ExprError> {
    compile::Compiler::new(schema, collection, main_alias, req, opts, dialect).compile(ast)
}

/// One key of a `sort` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The path (`title`, `author.name`) or `@random` / `@rowid`.
    pub path: String,
    pub desc: bool,
    /// Byte offset of the key in the parameter.
    pub pos: usize,
}

/// Splits a `sort` parameter (`-created,title`) into keys, enforcing the limits.
pub fn parse_sort(sort: &str) -> Result<Vec<SortKey>, ExprError> {
    let mut keys = Vec::new();
    let mut offset = 0;
    for part in sort.split(',') {
        let pos = offset + (part.len() - part.trim_start().len());
        offset += part.len() + 1;
        let t = part.trim();
        if t.is_empty() {
            // PocketBase rejects `title,,views`.
            return Err(ExprError::InvalidSort {
                msg: format!("empty sort field at position {pos}"),
            });
        }
        if t.chars().count() > MAX_SORT_KEY_LEN {
            return Err(ExprError::InvalidSort {
                msg: format!(
                    "sort field at position {pos} is longer than {MAX_SORT_KEY_LEN} characters"
                ),
            });
        }
        let (desc, path) = match t.as_bytes()[0] {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let valid = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '@'));
        if !valid {
            return Err(ExprError::InvalidSort {
                msg: format!("invalid sort field {t:?} at position {pos}"),
            });
        }
        keys.push(SortKey {
            path: path.to_owned(),
            desc,
            pos,
        });
        if keys.len() > MAX_SORT_KEYS {
            return Err(ExprError::InvalidSort {
                msg: format!("too many sort fields (at most {MAX_SORT_KEYS})"),
            });
        }
    }
    Ok(keys)
}

/// Compiles a `sort` parameter (`-created,title,author.name,@random,@rowid`) into an
/// ORDER BY list (without the keywords). Relation paths become scalar sub-queries.
pub fn compile_sort(
    schema: &Schema,
    collection: &Collection,
    main_alias: &str,
    sort: &str,
    req: &RequestInfo,
    opts: &CompileOptions,
    dialect: &'static Dialect,
) -> Result<Sql, ExprError> {
    check_forbidden(sort, opts)?;
    let keys = parse_sort(sort)?;
    let mut out = Sql::new(dialect);
    let mut c = compile::Compiler::new(schema, collection, main_alias, req, opts, dialect);
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(", ");
        }
        let (sql, text) = match k.path.as_str() {
            "@random" => {
                out.push(dialect.random());
                continue;
            }
            "@rowid" => {
                let mut s = Sql::new(dialect);
                s.qualified(main_alias, dialect.rowid());
                (s, false)
            }
            p => {
                let (sql, ty) = c.sort_expr(p, k.pos)?;
                if ty == value::Ty::JsonText {
                    // PocketBase orders multi-value fields by their JSON text.
                    let text = sql.text.clone();
                    let mut s = sql;
                    s.text = dialect.to_text(&text, ty.column_type());
                    (s, true)
                } else {
                    (sql, ty == value::Ty::Text)
                }
            }
        };
        out.append(&sql);
        if text {
            out.push(dialect.binary_collation());
        }
        out.push(if k.desc { " DESC" } else { " ASC" });
        out.push(dialect.nulls_order(k.desc));
    }
    Ok(out)
}

/// Checks a rule when a collection is saved: parses it and resolves every field against
/// the schema (with no request, so `@request.*` values are NULL). The error's Display is
/// suitable for PocketBase's `Invalid rule. Raw error: …`.
pub fn validate_rule(
    schema: &Schema,
    collection: &Collection,
    expr: &str,
) -> Result<(), ExprError> {
    let ast = parse(expr)?;
    let req = RequestInfo::default();
    let opts = CompileOptions::rule(Utc::now());
    compile::Compiler::new(schema, collection, &collection.name, &req, &opts, &SQLITE)
        .compile(&ast)
        .map(|_| ())
}

/// Splits an `expand` parameter (`author,tags.owner`) into relation paths, each at most
/// [`MAX_EXPAND_DEPTH`] deep (deeper is an error). Empty items and paths with characters
/// no field name has are skipped; duplicates are kept once.
pub fn parse_expand(expand: &str) -> Result<Vec<Vec<String>>, ExprError> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for item in expand.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let path: Vec<String> = item.split('.').map(|s| s.trim().to_owned()).collect();
        if path.len() > MAX_EXPAND_DEPTH {
            return Err(ExprError::TooManyRelations {
                pos: 0,
                max: MAX_EXPAND_DEPTH,
            });
        }
        // A segment that cannot name a field matches nothing: PocketBase ignores the
        // path, and so does Galley (it never reaches SQL either way).
        let valid = path
            .iter()
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if valid && !out.contains(&path) {
            out.push(path);
        }
    }
    Ok(out)
}
