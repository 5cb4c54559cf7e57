//! Sort keys: a field path as one orderable expression.

use super::joins::Scope;
use super::Compiler;
use crate::ast::Span;
use crate::error::ExprError;
use crate::value::{Ty, Val};
use galley_sql::Sql;

impl<'a> Compiler<'a> {
    /// One sort key: the expression to order by and whether it is text.
    pub(crate) fn sort_expr(&mut self, path: &str, pos: usize) -> Result<(Sql, Ty), ExprError> {
        let mut scope = Scope::new();
        let span = Span::new(pos, pos + path.len());
        let v = self.ident(path, span, &mut scope)?;
        let Val::Expr(e) = v else {
            return Err(ExprError::InvalidSort {
                msg: format!("cannot sort by {path:?}"),
            });
        };
        if e.guard.is_some() && self.client {
            return Err(ExprError::InvalidSort {
                msg: format!("cannot sort by {path:?}"),
            });
        }
        if e.joins.is_empty() {
            return Ok((e.sql, e.ty));
        }
        // A scalar sub-query: the first joined row's value, as one shared LEFT JOIN would
        // give, without multiplying the outer rows.
        let mut sql = self.joined_select(&e.sql, &e.joins, None);
        sql.text = format!("({} LIMIT 1)", sql.text);
        Ok((sql, e.ty))
    }
}
