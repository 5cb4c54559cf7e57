//! The join registry (one join per path key and scope) and where joins are placed:
//! correlated `EXISTS` for conditions, scalar sub-queries for sort keys.

use super::{combine, raw, Compiler, Cond, MAX_JOINS};
use crate::error::ExprError;
use crate::CompileOptions;
use galley_sql::Sql;
use galley_types::{field::RelationOptions, Collection};
use std::collections::{BTreeSet, HashMap};

pub(super) struct Join {
    alias: String,
    parent: Option<usize>,
    /// ` LEFT JOIN … ON …`
    sql: Sql,
    collection: String,
}

/// What a join is, apart from its SQL: the identity it is shared by and where it hangs.
pub(super) struct JoinSpec<'s> {
    /// Two references with the same key in one scope share the join (and so the row).
    key: String,
    parent: Option<usize>,
    /// The alias prefix: `r` (a table, counted against [`MAX_JOINS`]) or `je` (json_each).
    kind: &'static str,
    /// The joined collection's id, so that a reused `@collection` alias naming another
    /// collection is caught; empty for `je`.
    collection: &'s str,
    /// Where the reference starts, for errors.
    pos: usize,
}

impl<'s> JoinSpec<'s> {
    /// A join of `collection`'s table.
    pub(super) fn table(
        key: String,
        parent: Option<usize>,
        collection: &'s str,
        pos: usize,
    ) -> Self {
        JoinSpec {
            key,
            parent,
            kind: "r",
            collection,
            pos,
        }
    }

    /// A `json_each` over a multi-valued column or bound array.
    pub(super) fn json_each(key: String, parent: Option<usize>, pos: usize) -> Self {
        JoinSpec {
            key,
            parent,
            kind: "je",
            collection: "",
            pos,
        }
    }
}

/// Where the path keys of joins live: the shared scope of the whole expression, or a
/// private scope (the independent copy an all-of sub-query iterates over).
pub(super) type Scope = HashMap<String, usize>;

impl<'a> Compiler<'a> {
    fn new_alias(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{}{}{}", self.prefix, kind, self.counter)
    }

    /// Registers (or reuses, by `spec.key`) a join. `make` gets the alias and returns
    /// the ` LEFT JOIN … ON …` fragment.
    pub(super) fn join(
        &mut self,
        scope: &mut Scope,
        spec: JoinSpec<'_>,
        make: impl FnOnce(&mut Self, &str) -> Result<Sql, ExprError>,
    ) -> Result<(usize, String), ExprError> {
        let JoinSpec {
            key,
            parent,
            kind,
            collection,
            pos,
        } = spec;
        if let Some(&id) = scope.get(&key) {
            if self.joins[id].collection != collection {
                return Err(ExprError::invalid(
                    pos,
                    "the same @collection alias is used for different collections",
                ));
            }
            return Ok((id, self.joins[id].alias.clone()));
        }
        if kind == "r" {
            self.tables += 1;
            if self.tables > MAX_JOINS {
                return Err(ExprError::TooManyJoins { max: MAX_JOINS });
            }
        }
        let alias = self.new_alias(kind);
        let sql = make(self, &alias)?;
        self.joins.push(Join {
            alias: alias.clone(),
            parent,
            sql,
            collection: collection.to_owned(),
        });
        let id = self.joins.len() - 1;
        scope.insert(key, id);
        Ok((id, alias))
    }

    /// The collection a relation field points to, looked up by id, then by name; `field`
    /// names the field in the error.
    pub(super) fn relation_target(
        &self,
        rel: &RelationOptions,
        field: &str,
        pos: usize,
    ) -> Result<&'a Collection, ExprError> {
        let schema = self.schema;
        schema
            .by_id(&rel.collection_id)
            .or_else(|| schema.find(&rel.collection_id))
            .map(|c| &**c)
            .ok_or_else(|| {
                ExprError::invalid(
                    pos,
                    format!("failed to load the collection of field {field:?}"),
                )
            })
    }

    /// The listRule condition of a joined collection, for client filters.
    fn list_rule(&mut self, target: &Collection, alias: &str) -> Result<Option<Sql>, ExprError> {
        if !self.client {
            return Ok(None);
        }
        match target.rules.list_rule.as_deref() {
            None => Ok(Some(raw(self.d, "1=0"))),
            Some(r) if r.trim().is_empty() => Ok(None),
            Some(rule) => {
                let ast = crate::parser::parse(rule).map_err(|e| {
                    ExprError::invalid(0, format!("listRule of {:?}: {e}", target.name))
                })?;
                let opts = CompileOptions {
                    superuser: false,
                    allow_hidden: true,
                    now: self.opts.now,
                };
                let mut c = Compiler::new(self.schema, target, alias, self.req, &opts, self.d);
                c.prefix = format!("{}{}_", self.prefix, self.counter);
                let sql = c.compile(&ast).map_err(|e| {
                    ExprError::invalid(0, format!("listRule of {:?}: {e}", target.name))
                })?;
                Ok(Some(sql))
            }
        }
    }

    /// ` LEFT JOIN "table" "alias" ON on [AND listRule]`
    pub(super) fn table_join(
        &mut self,
        target: &Collection,
        alias: &str,
        on: Sql,
    ) -> Result<Sql, ExprError> {
        let rule = self.list_rule(target, alias)?;
        let source = format!("{} {}", self.d.quote(&target.name), self.d.quote(alias));
        let d = self.d;
        Ok(match rule {
            None => combine(d, &[&on], |t| d.left_join(&source, &t[0])),
            Some(r) => combine(d, &[&on, &r], |t| {
                d.left_join(&source, &format!("{} AND {}", t[0], t[1]))
            }),
        })
    }

    pub(super) fn col(&self, alias: &str, name: &str) -> String {
        format!("{}.{}", self.d.quote(alias), self.d.quote(name))
    }

    pub(super) fn closure(&self, set: &BTreeSet<usize>) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for &j in set {
            let mut cur = Some(j);
            while let Some(c) = cur {
                if !out.insert(c) {
                    break;
                }
                cur = self.joins[c].parent;
            }
        }
        out
    }

    fn cond_joins(c: &Cond, out: &mut BTreeSet<usize>) {
        match c {
            Cond::Leaf(_, j) => out.extend(j.iter().copied()),
            Cond::And(items) | Cond::Or(items) => {
                for i in items {
                    Self::cond_joins(i, out);
                }
            }
        }
    }

    /// `SELECT select FROM (SELECT 1) b LEFT JOIN … [WHERE cond]` over `joins` (closed over
    /// their parents): the sub-query that stands for the outer LEFT JOINs, both in
    /// conditions ([`Compiler::exists`]) and in sort keys. Parameters are numbered in text
    /// order: `select`'s, the joins', then `cond`'s.
    pub(super) fn joined_select(
        &self,
        select: &Sql,
        joins: &BTreeSet<usize>,
        cond: Option<&Sql>,
    ) -> Sql {
        let all = self.closure(joins);
        let mut parts: Vec<&Sql> = vec![select];
        parts.extend(all.iter().map(|&j| &self.joins[j].sql));
        parts.extend(cond);
        let base = self.d.quote(&format!("{}b", self.prefix));
        combine(self.d, &parts, |t| {
            let mut s = format!("SELECT {} FROM (SELECT 1) {base}", t[0]);
            for j in &t[1..=all.len()] {
                s.push_str(j);
            }
            if let Some(c) = t.get(all.len() + 1) {
                s.push_str(" WHERE ");
                s.push_str(c);
            }
            s
        })
    }

    /// `EXISTS (SELECT 1 FROM (SELECT 1) b LEFT JOIN … WHERE cond)` over `joins`.
    pub(super) fn exists(&self, joins: &BTreeSet<usize>, cond: &Sql, negate: bool) -> Sql {
        let mut sql = self.joined_select(&raw(self.d, "1"), joins, Some(cond));
        let kw = if negate { "NOT EXISTS" } else { "EXISTS" };
        sql.text = format!("{kw} ({})", sql.text);
        sql
    }

    /// Writes a condition, wrapping its parts in `EXISTS` over the joins they need that no
    /// enclosing `EXISTS` has `bound`; parts of an `&&` that share joins share one.
    pub(super) fn emit(&self, c: &Cond, bound: &BTreeSet<usize>) -> Sql {
        match c {
            Cond::Leaf(sql, joins) => {
                let free: BTreeSet<usize> = joins.difference(bound).copied().collect();
                if free.is_empty() {
                    sql.clone()
                } else {
                    self.exists(&free, sql, false)
                }
            }
            Cond::Or(items) => {
                let parts: Vec<Sql> = items.iter().map(|i| self.emit(i, bound)).collect();
                self.join_parts(&parts, " OR ")
            }
            Cond::And(items) => {
                // group children whose free joins overlap
                let free: Vec<BTreeSet<usize>> = items
                    .iter()
                    .map(|i| {
                        let mut s = BTreeSet::new();
                        Self::cond_joins(i, &mut s);
                        let s = self.closure(&s);
                        s.difference(bound).copied().collect()
                    })
                    .collect();
                let n = items.len();
                let mut group: Vec<usize> = (0..n).collect();
                fn find(g: &mut [usize], i: usize) -> usize {
                    let mut r = i;
                    while g[r] != r {
                        r = g[r];
                    }
                    g[i] = r;
                    r
                }
                for a in 0..n {
                    for b in a + 1..n {
                        if !free[a].is_disjoint(&free[b]) {
                            let (ra, rb) = (find(&mut group, a), find(&mut group, b));
                            if ra != rb {
                                group[rb.max(ra)] = ra.min(rb);
                            }
                        }
                    }
                }
                let mut parts = Vec::new();
                let mut done = vec![false; n];
                for a in 0..n {
                    if done[a] {
                        continue;
                    }
                    if free[a].is_empty() {
                        done[a] = true;
                        parts.push(self.emit(&items[a], bound));
                        continue;
                    }
                    let root = find(&mut group, a);
                    let members: Vec<usize> = (a..n)
                        .filter(|&b| !done[b] && find(&mut group, b) == root)
                        .collect();
                    let mut set = BTreeSet::new();
                    for &m in &members {
                        set.extend(free[m].iter().copied());
                        done[m] = true;
                    }
                    let mut inner_bound = bound.clone();
                    inner_bound.extend(set.iter().copied());
                    let inner: Vec<Sql> = members
                        .iter()
                        .map(|&m| self.emit(&items[m], &inner_bound))
                        .collect();
                    let inner = self.join_parts(&inner, " AND ");
                    parts.push(self.exists(&set, &inner, false));
                }
                self.join_parts(&parts, " AND ")
            }
        }
    }

    fn join_parts(&self, parts: &[Sql], sep: &str) -> Sql {
        if parts.len() == 1 {
            return parts[0].clone();
        }
        let refs: Vec<&Sql> = parts.iter().collect();
        combine(self.d, &refs, |t| format!("({})", t.join(sep)))
    }
}
