//! Resolution and SQL generation: AST → typed operands (fields of the schema, joins
//! planned) → one self-contained boolean SQL fragment.
//!
//! Joined collections never become joins of the outer query. Every comparison that reads
//! a joined row is wrapped in `EXISTS (SELECT 1 FROM (SELECT 1) b LEFT JOIN … WHERE …)`
//! over exactly the joins it needs. Joins are keyed by path, so the comparisons of one
//! `&&` chain that share a path are put in the same `EXISTS` and see the same joined row,
//! which is PocketBase's semantics (one shared LEFT JOIN for the whole query): `EXISTS`
//! distributes over `||`, and over `&&` only between comparisons with disjoint joins.
//! Because the join chain starts from a one-row base with LEFT JOINs, it always has at
//! least one (possibly all-NULL) row, exactly like the outer LEFT JOIN it stands for.
//!
//! By concern: `resolve` (field names and relation paths to operands), `request`
//! (`@request.*`), `joins` (the join registry and where joins are placed), `compare`
//! (comparisons and their SQL per engine typing), `functions` (functions and date macros),
//! `sort` (sort keys).

mod compare;
mod functions;
mod joins;
mod request;
mod resolve;
mod sort;

use crate::ast::{Ast, Node};
use crate::error::ExprError;
use crate::{CompileOptions, RequestInfo};
use galley_sql::{Dialect, Sql};
use galley_types::{Collection, Schema};
use joins::{Join, Scope};
use std::collections::BTreeSet;

/// Most relation hops in one path.
pub const MAX_RELATION_DEPTH: usize = 6;

/// Most joined collections in one expression (shared joins plus all-of sub-queries).
pub const MAX_JOINS: usize = 20;

/// A boolean condition before its joins are placed.
enum Cond {
    Leaf(Sql, BTreeSet<usize>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

pub(crate) struct Compiler<'a> {
    pub schema: &'a Schema,
    pub coll: &'a Collection,
    pub main: String,
    pub req: &'a RequestInfo,
    pub opts: &'a CompileOptions,
    pub d: &'static Dialect,
    /// A client filter/sort (non-superuser, hidden fields not allowed): joined collections
    /// get their listRule, auth emails need emailVisibility.
    pub client: bool,
    pub allow_hidden: bool,
    pub prefix: String,
    counter: usize,
    joins: Vec<Join>,
    tables: usize,
    shared: Scope,
}

/// Joins SQL pieces into one fragment: each piece's placeholders are renumbered in order,
/// then `f` assembles the renumbered texts.
fn combine(d: &'static Dialect, parts: &[&Sql], f: impl FnOnce(&[String]) -> String) -> Sql {
    let mut acc = Sql::new(d);
    let mut texts = Vec::with_capacity(parts.len());
    for p in parts {
        let start = acc.text.len();
        acc.append(p);
        texts.push(acc.text[start..].to_owned());
    }
    acc.text = f(&texts);
    acc
}

fn raw(d: &'static Dialect, s: &str) -> Sql {
    let mut q = Sql::new(d);
    q.push(s);
    q
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(
        schema: &'a Schema,
        coll: &'a Collection,
        main: &str,
        req: &'a RequestInfo,
        opts: &'a CompileOptions,
        d: &'static Dialect,
    ) -> Self {
        let client = !opts.superuser && !opts.allow_hidden;
        Compiler {
            schema,
            coll,
            main: main.to_owned(),
            req,
            opts,
            d,
            client,
            allow_hidden: opts.superuser || opts.allow_hidden,
            prefix: "__".into(),
            counter: 0,
            joins: Vec::new(),
            tables: 0,
            shared: Scope::new(),
        }
    }

    pub(crate) fn compile(&mut self, ast: &Ast) -> Result<Sql, ExprError> {
        let cond = self.node(&ast.root)?;
        Ok(self.emit(&cond, &BTreeSet::new()))
    }

    fn node(&mut self, n: &Node) -> Result<Cond, ExprError> {
        Ok(match n {
            Node::Cmp(c) => self.comparison(c)?,
            Node::And(items) => Cond::And(
                items
                    .iter()
                    .map(|i| self.node(i))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Or(items) => Cond::Or(
                items
                    .iter()
                    .map(|i| self.node(i))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}
