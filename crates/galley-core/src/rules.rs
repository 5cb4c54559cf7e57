//! Access decisions for the five collection rules, and compiled filters and sorts, all
//! through the one expression engine (galley-expr).

use crate::context::{Caller, RequestMeta};
use crate::error::CoreError;
use galley_expr::{CompileOptions, ExprError, RequestInfo};
use galley_sql::{Dialect, Sql};
use galley_types::{Collection, Schema};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Parsed stored rules by their text. Parsing is independent of the schema and the request,
/// so a rule is parsed once; resolution and SQL generation still run per request because
/// `@request.*` values are bound then. Bounded: cleared when it grows past the limit.
const RULE_CACHE_LIMIT: usize = 10_000;

fn parsed_rule(rule: &str) -> Result<Arc<galley_expr::Ast>, ExprError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<galley_expr::Ast>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(ast) = cache.lock().ok().and_then(|c| c.get(rule).cloned()) {
        return Ok(ast);
    }
    let ast = Arc::new(galley_expr::parse(rule)?);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= RULE_CACHE_LIMIT {
            c.clear();
        }
        c.insert(rule.to_owned(), ast.clone());
    }
    Ok(ast)
}

/// What a rule means for one caller.
pub enum Access {
    /// Everything is allowed (superuser, or an empty rule).
    Allow,
    /// The rule is locked (`null`) and the caller is not a superuser.
    SuperuserOnly,
    /// Allowed where this condition (over the collection's table) holds.
    Where(Sql),
}

/// Everything a rule, filter or sort needs to be compiled for one request.
pub struct RuleCtx<'a> {
    pub schema: &'a Schema,
    pub collection: &'a Collection,
    pub caller: &'a Caller,
    pub meta: &'a RequestMeta,
    pub dialect: &'static Dialect,
    /// `@request.body`: the submitted values after modifiers, for create and update.
    pub body: Option<&'a Map<String, Value>>,
}

impl<'a> RuleCtx<'a> {
    pub fn new(
        schema: &'a Schema,
        collection: &'a Collection,
        caller: &'a Caller,
        meta: &'a RequestMeta,
        dialect: &'static Dialect,
    ) -> Self {
        RuleCtx {
            schema,
            collection,
            caller,
            meta,
            dialect,
            body: None,
        }
    }

    pub fn with_body(mut self, body: &'a Map<String, Value>) -> Self {
        self.body = Some(body);
        self
    }

    fn request(&self) -> RequestInfo {
        RequestInfo {
            method: self.meta.method.clone(),
            context: if self.meta.context.is_empty() {
                "default".into()
            } else {
                self.meta.context.clone()
            },
            query: self.meta.query.clone(),
            headers: self.meta.headers.clone(),
            body: self.body.cloned(),
            auth: self.caller.auth_info(),
        }
    }

    /// The caller's access under `rule`.
    pub fn access(&self, rule: &Option<String>) -> Result<Access, CoreError> {
        if self.caller.is_superuser() {
            return Ok(Access::Allow);
        }
        let Some(rule) = rule else {
            return Ok(Access::SuperuserOnly);
        };
        if rule.trim().is_empty() {
            return Ok(Access::Allow);
        }
        let _span =
            tracing::info_span!(target: "galley_trace", "rule", collection = %self.collection.name)
                .entered();
        let opts = CompileOptions::rule(chrono::Utc::now());
        let compiled = parsed_rule(rule).and_then(|ast| {
            galley_expr::compile_ast(
                self.schema,
                self.collection,
                &self.collection.name,
                &ast,
                &self.request(),
                &opts,
                self.dialect,
            )
        });
        match compiled {
            Ok(sql) => Ok(Access::Where(sql)),
            Err(e) => {
                // A stored rule that no longer compiles (a field was removed) admits nobody.
                tracing::warn!(collection = %self.collection.name, %rule, error = %e, "rule does not compile; denying");
                let mut s = Sql::new(self.dialect);
                s.push("1 = 0");
                Ok(Access::Where(s))
            }
        }
    }

    fn client_error(&self, what: &str, text: &str, e: ExprError) -> CoreError {
        if e.is_forbidden() {
            let which = if text.contains("@collection.") && !text.contains("@request.") {
                "@collection."
            } else {
                "@request."
            };
            // PocketBase says "filter" for a sort too.
            return CoreError::Forbidden(format!("Only superusers can filter by {which}"));
        }
        CoreError::bad_request(format!("Invalid {what} parameter: {e}."))
    }

    /// A `filter=` parameter as a condition.
    pub fn filter(&self, filter: &str) -> Result<Option<Sql>, CoreError> {
        // Only an absent/empty filter is no filter: PocketBase rejects a blank one (400).
        if filter.is_empty() {
            return Ok(None);
        }
        let opts = CompileOptions::client(self.caller.is_superuser(), chrono::Utc::now());
        galley_expr::compile_filter(
            self.schema,
            self.collection,
            &self.collection.name,
            filter,
            &self.request(),
            &opts,
            self.dialect,
        )
        .map(Some)
        .map_err(|e| self.client_error("filter", filter, e))
    }

    /// A `sort=` parameter as an ORDER BY list (without the keywords).
    pub fn sort(&self, sort: &str) -> Result<Option<Sql>, CoreError> {
        if sort.trim().is_empty() {
            return Ok(None);
        }
        let opts = CompileOptions::client(self.caller.is_superuser(), chrono::Utc::now());
        galley_expr::compile_sort(
            self.schema,
            self.collection,
            &self.collection.name,
            sort,
            &self.request(),
            &opts,
            self.dialect,
        )
        .map(Some)
        .map_err(|e| self.client_error("sort", sort, e))
    }
}

/// Whether the stored record `id` of `col` is admitted by `access`: `Allow` always,
/// `SuperuserOnly` never, `Where` when the condition holds for that row.
pub fn record_satisfies(
    c: &mut dyn galley_store::Conn,
    col: &Collection,
    id: &str,
    access: Access,
) -> Result<bool, CoreError> {
    use galley_store::ConnExt;
    match access {
        Access::Allow => Ok(true),
        Access::SuperuserOnly => Ok(false),
        Access::Where(w) => {
            let mut sql = Sql::new(c.dialect());
            sql.push("SELECT 1 AS ok FROM ")
                .ident(&col.name)
                .push(" WHERE ");
            sql.qualified(&col.name, "id")
                .push(" = ")
                .push_param(id)
                .push(" AND (")
                .append(&w)
                .push(")");
            Ok(!c.query_sql(&sql)?.is_empty())
        }
    }
}

/// Why a rule does not check, and where: `position` is the byte offset in the rule of the
/// offending token, when the error has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleCheckError {
    pub message: String,
    pub position: Option<usize>,
}

impl From<ExprError> for RuleCheckError {
    fn from(e: ExprError) -> Self {
        use ExprError::*;
        let position = match &e {
            Syntax { pos, .. }
            | UnknownField { pos, .. }
            | HiddenField { pos, .. }
            | TooDeep { pos, .. }
            | TooManyRelations { pos, .. }
            | Invalid { pos, .. } => Some(*pos),
            Empty
            | Forbidden
            | TooLong { .. }
            | TooManyExpressions { .. }
            | TooManyJoins { .. }
            | InvalidSort { .. } => None,
        };
        RuleCheckError {
            message: e.to_string(),
            position,
        }
    }
}

/// Checks a rule as typed against `schema` (which may hold a draft of `collection`), as
/// saving the collection would, with the error's position for an editor to point at.
pub fn check_rule(
    schema: &Schema,
    collection: &Collection,
    rule: &str,
) -> Result<(), RuleCheckError> {
    galley_expr::validate_rule(schema, collection, rule).map_err(RuleCheckError::from)
}

/// Checks a rule's syntax and fields when a collection is saved.
pub fn validate(schema: &Schema, collection: &Collection, rule: &str) -> Result<(), String> {
    if rule.trim().is_empty() {
        return Ok(());
    }
    galley_expr::validate_rule(schema, collection, rule).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_check_errors_carry_their_position() {
        let col = galley_types::collection::superusers_collection("2024-01-01 00:00:00.000Z");
        let schema = Schema::new(0, vec![col.clone()]);
        assert_eq!(check_rule(&schema, &col, "id != ''"), Ok(()));
        let e = check_rule(&schema, &col, "id = ").unwrap_err();
        assert!(e.position.is_some(), "{e:?}");
        let e = check_rule(&schema, &col, "nope = 1").unwrap_err();
        assert_eq!(e.position, Some(0), "{e:?}");
        assert!(e.message.contains("nope"), "{e:?}");
    }
}
