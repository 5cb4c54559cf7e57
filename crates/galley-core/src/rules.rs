//! Access decisions for the five collection rules, and compiled filters and sorts.

use crate::caller::Caller;
use crate::error::{CoreError, GENERIC_400};
use crate::records::RequestMeta;
use galley_sql::{Dialect, Sql};
use galley_types::{Collection, Schema};

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
}

impl RuleCtx<'_> {
    pub fn access(&self, rule: &Option<String>) -> Result<Access, CoreError> {
        if self.caller.is_superuser() {
            return Ok(Access::Allow);
        }
        match rule {
            None => Ok(Access::SuperuserOnly),
            Some(r) if r.trim().is_empty() => Ok(Access::Allow),
            Some(_) => {
                // Rule expressions are evaluated by the expression engine (galley-expr);
                // until it is wired in, a non-empty rule admits no one but superusers.
                let mut s = Sql::new(self.dialect);
                s.push("1 = 0");
                Ok(Access::Where(s))
            }
        }
    }

    /// A `filter=` parameter as a condition.
    pub fn filter(&self, filter: &str) -> Result<Option<Sql>, CoreError> {
        if filter.trim().is_empty() {
            return Ok(None);
        }
        Err(CoreError::bad_request("Invalid filter parameter: filtering is not available yet."))
    }

    /// A `sort=` parameter as an ORDER BY list (without the keywords).
    pub fn sort(&self, sort: &str) -> Result<Option<Sql>, CoreError> {
        let sort = sort.trim();
        if sort.is_empty() {
            return Ok(None);
        }
        let keys: Vec<&str> = sort.split(',').map(str::trim).collect();
        if keys.len() > 8 {
            return Err(CoreError::bad_request("Invalid sort parameter: at most 8 sort fields are allowed."));
        }
        let mut out = Sql::new(self.dialect);
        for (i, key) in keys.iter().enumerate() {
            let (desc, name) = match key.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, key.strip_prefix('+').unwrap_or(key)),
            };
            if i > 0 {
                out.push(", ");
            }
            match name {
                "@random" => {
                    out.push(self.dialect.random());
                }
                "@rowid" => {
                    out.qualified(&self.collection.name, self.dialect.rowid());
                }
                _ => {
                    let visible = self.collection.field(name).filter(|f| {
                        self.caller.is_superuser() || (!f.hidden && f.type_name() != "password")
                    });
                    let Some(f) = visible else {
                        return Err(CoreError::BadRequest {
                            message: format!("Invalid sort parameter: unknown field {name:?}."),
                            data: serde_json::json!({}),
                        });
                    };
                    out.qualified(&self.collection.name, &f.name);
                }
            }
            if desc {
                out.push(" DESC");
            } else {
                out.push(" ASC");
            }
        }
        let _ = GENERIC_400;
        Ok(Some(out))
    }
}
