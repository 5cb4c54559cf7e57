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

use crate::ast::{Ast, CmpOp, Comparison, Node, Operand, Span};
use crate::error::ExprError;
use crate::value::{ExprVal, Lit, Ty, Val};
use crate::{CompileOptions, RequestInfo};
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use galley_sql::{ColumnType, Dialect, Sql, SqlValue};
use galley_types::{field::FieldKind, Collection, Schema};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// Most relation hops in one path.
pub const MAX_RELATION_DEPTH: usize = 6;
/// Most joined collections in one expression (shared joins plus all-of sub-queries).
pub const MAX_JOINS: usize = 20;

const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3fZ";

/// A boolean condition before its joins are placed.
enum Cond {
    Leaf(Sql, BTreeSet<usize>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

struct Join {
    alias: String,
    parent: Option<usize>,
    /// ` LEFT JOIN … ON …`
    sql: Sql,
    collection: String,
}

/// Where the path keys of joins live: the shared scope of the whole expression, or a
/// private scope (the independent copy an all-of sub-query iterates over).
type Scope = HashMap<String, usize>;

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

/// Where a field path walk starts.
struct Start<'a> {
    coll: &'a Collection,
    alias: String,
    key: String,
    cur: Option<usize>,
    joins: BTreeSet<usize>,
    multi: bool,
    allow_hidden: bool,
    nullify: bool,
}

fn split_modifier(prop: &str, pos: usize) -> Result<(&str, Option<&str>), ExprError> {
    let parts: Vec<&str> = prop.split(':').collect();
    if parts.len() != 2 {
        return Ok((prop, None));
    }
    match parts[1] {
        "isset" | "each" | "length" | "lower" | "changed" => Ok((parts[0], Some(parts[1]))),
        m => Err(ExprError::invalid(pos, format!("unknown modifier {m:?}"))),
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn columnify(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Whether `field` of `c` has a single-column unique index.
fn has_unique_index(c: &Collection, field: &str) -> bool {
    c.indexes.iter().any(|idx| {
        let upper = idx.to_ascii_uppercase();
        if !upper.contains("UNIQUE") {
            return false;
        }
        let Some(open) = idx.rfind('(') else {
            return false;
        };
        let Some(close) = idx[open..].find(')') else {
            return false;
        };
        let cols: Vec<&str> = idx[open + 1..open + close].split(',').collect();
        cols.len() == 1 && {
            let col = cols[0]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']');
            col.eq_ignore_ascii_case(field)
        }
    })
}

/// Escapes `\`, `%`, `_` that are not already escaped (PocketBase's LIKE auto-escaping).
fn escape_unescaped(s: &str) -> String {
    let rs: Vec<char> = s.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(rs.len() + 4);
    let mut matched = false;
    for i in (0..rs.len()).rev() {
        if matched {
            if rs[i] != '\\' {
                out.push('\\');
            }
            matched = false;
        } else if matches!(rs[i], '\\' | '%' | '_') {
            matched = true;
        }
        out.push(rs[i]);
        if i == 0 && matched {
            out.push('\\');
        }
    }
    out.into_iter().rev().collect()
}

fn contains_unescaped(s: &str, ch: char) -> bool {
    let mut prev = '\0';
    for c in s.chars() {
        if c == ch && prev != '\\' {
            return true;
        }
        prev = if c == '\\' && prev == '\\' { '\0' } else { c };
    }
    false
}

/// The LIKE pattern for a `~` literal: `%value%` with wildcards escaped, unless the value
/// already contains an unescaped `%`.
pub(crate) fn like_pattern(s: &str) -> String {
    if contains_unescaped(s, '%') {
        s.to_owned()
    } else {
        format!("%{}%", escape_unescaped(s))
    }
}

/// Whether a LIKE pattern ends with an escape character that escapes nothing.
fn dangling_escape(p: &str) -> bool {
    p.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
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

fn date_string(t: chrono::DateTime<Utc>) -> String {
    t.format(DATE_FORMAT).to_string()
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

    // ---------------------------------------------------------------- conditions

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

    fn closure(&self, set: &BTreeSet<usize>) -> BTreeSet<usize> {
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

    /// `EXISTS (SELECT 1 FROM (SELECT 1) b LEFT JOIN … WHERE cond)` over `joins` (closed
    /// over their parents).
    fn exists(&self, joins: &BTreeSet<usize>, cond: &Sql, negate: bool) -> Sql {
        let all = self.closure(joins);
        let mut parts: Vec<&Sql> = all.iter().map(|&j| &self.joins[j].sql).collect();
        parts.push(cond);
        let n = parts.len();
        combine(self.d, &parts, |t| {
            let mut s = String::from(if negate { "NOT EXISTS (" } else { "EXISTS (" });
            s.push_str("SELECT 1 FROM (SELECT 1) ");
            s.push_str(&self.d.quote(&format!("{}b", self.prefix)));
            for j in &t[..n - 1] {
                s.push_str(j);
            }
            s.push_str(" WHERE ");
            s.push_str(&t[n - 1]);
            s.push(')');
            s
        })
    }

    fn emit(&self, c: &Cond, bound: &BTreeSet<usize>) -> Sql {
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

    fn comparison(&mut self, c: &Comparison) -> Result<Cond, ExprError> {
        let mut shared = std::mem::take(&mut self.shared);
        let l = self.operand(&c.left, &mut shared);
        let r = l.as_ref().ok().map(|_| self.operand(&c.right, &mut shared));
        self.shared = shared;
        let l = l?;
        let r = r.unwrap_or_else(|| Err(ExprError::Empty))?;
        let op = c.op.base();
        let mut sql = self.compare(&l, op, &r, c.span)?;
        for v in [&l, &r] {
            if let Val::Expr(ExprVal { guard: Some(g), .. }) = v {
                let gs = raw(self.d, g);
                sql = combine(self.d, &[&sql, &gs], |t| format!("({} AND {})", t[0], t[1]));
            }
        }
        let mut joins = l.joins();
        joins.extend(r.joins());
        if !c.op.is_any() && (l.is_multi() || r.is_multi()) {
            let mut fresh = Scope::new();
            let lm = if l.is_multi() {
                self.operand(&c.left, &mut fresh)?
            } else {
                l.clone()
            };
            let rm = if r.is_multi() {
                self.operand(&c.right, &mut fresh)?
            } else {
                r.clone()
            };
            let inner = self.compare(&lm, op, &rm, c.span)?;
            let cond = combine(self.d, &[&inner], |t| format!("NOT ({})", t[0]));
            let mut mm_joins = BTreeSet::new();
            // As in PocketBase, a value that makes the comparison NULL (an empty set's
            // LEFT JOIN row, a missing nested record) is not a counter-example.
            for (orig, m) in [(&l, &lm), (&r, &rm)] {
                if let (true, Val::Expr(e)) = (orig.is_multi(), m) {
                    mm_joins.extend(e.joins.iter().copied());
                }
            }
            // Joins of a single-valued side stay in the shared scope.
            let shared_of: BTreeSet<usize> = joins.clone();
            let own: BTreeSet<usize> = self
                .closure(&mm_joins)
                .difference(&self.closure(&shared_of))
                .copied()
                .collect();
            let not_exists = self.exists(&own, &cond, true);
            sql = combine(self.d, &[&sql, &not_exists], |t| {
                format!("({} AND {})", t[0], t[1])
            });
        }
        Ok(Cond::Leaf(sql, self.closure(&joins)))
    }

    // ---------------------------------------------------------------- operands

    fn operand(&mut self, o: &Operand, scope: &mut Scope) -> Result<Val, ExprError> {
        match o {
            Operand::Text { value, .. } => Ok(Val::Lit(Lit::Text(value.clone()))),
            Operand::Number { value, .. } => Ok(Val::Lit(Lit::Num(*value))),
            Operand::Ident { name, span } => self.ident(name, *span, scope),
            Operand::Func { name, args, span } => self.func(name, args, *span, scope),
        }
    }

    pub(crate) fn ident(
        &mut self,
        name: &str,
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        match name.to_ascii_lowercase().as_str() {
            "null" => return Ok(Val::Lit(Lit::Null)),
            "true" => return Ok(Val::Lit(Lit::Bool(true))),
            "false" => return Ok(Val::Lit(Lit::Bool(false))),
            _ => {}
        }
        if let Some(m) = self.macro_value(name) {
            return Ok(Val::Lit(m));
        }
        if name == "@request" || name.starts_with("@request.") {
            return self.request(name, span, scope);
        }
        if name.starts_with("@collection.") {
            return self.collection_path(name, span, scope);
        }
        if name.starts_with('@') || name.starts_with('#') {
            return Err(ExprError::UnknownField {
                name: name.to_owned(),
                pos: span.start,
            });
        }
        let props: Vec<&str> = name.split('.').collect();
        let start = Start {
            coll: self.coll,
            alias: self.main.clone(),
            key: String::new(),
            cur: None,
            joins: BTreeSet::new(),
            multi: false,
            allow_hidden: self.allow_hidden,
            nullify: false,
        };
        self.walk(start, &props, span, scope)
    }

    fn macro_value(&self, name: &str) -> Option<Lit> {
        let now = self.opts.now;
        let day = now.date_naive();
        let start_of = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map(|n| Utc.from_utc_datetime(&n))
                .unwrap_or(now)
        };
        let end_of = |d: NaiveDate| start_of(d) + Duration::days(1) - Duration::milliseconds(1);
        let month_start = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(day);
        let next_month = if now.month() == 12 {
            NaiveDate::from_ymd_opt(now.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(now.year(), now.month() + 1, 1)
        }
        .unwrap_or(day);
        let year_start = NaiveDate::from_ymd_opt(now.year(), 1, 1).unwrap_or(day);
        let year_end = NaiveDate::from_ymd_opt(now.year(), 12, 31).unwrap_or(day);
        let t = |x| Some(Lit::Text(date_string(x)));
        let n = |x: u32| Some(Lit::Num(f64::from(x)));
        match name {
            "@now" => t(now),
            "@yesterday" => t(now - Duration::days(1)),
            "@tomorrow" => t(now + Duration::days(1)),
            "@todayStart" => t(start_of(day)),
            "@todayEnd" => t(end_of(day)),
            "@monthStart" => t(start_of(month_start)),
            "@monthEnd" => t(start_of(next_month) - Duration::milliseconds(1)),
            "@yearStart" => t(start_of(year_start)),
            "@yearEnd" => t(end_of(year_end)),
            "@second" => n(now.second()),
            "@minute" => n(now.minute()),
            "@hour" => n(now.hour()),
            "@day" => n(now.day()),
            "@month" => n(now.month()),
            "@weekday" => n(now.weekday().num_days_from_sunday()),
            "@year" => Some(Lit::Num(f64::from(now.year()))),
            _ => None,
        }
    }

    fn new_alias(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{}{}{}", self.prefix, kind, self.counter)
    }

    /// Registers (or reuses, by path key) a join. `make` gets the alias and returns
    /// the ` LEFT JOIN … ON …` fragment.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        scope: &mut Scope,
        key: String,
        parent: Option<usize>,
        kind: &str,
        collection: &str,
        pos: usize,
        make: impl FnOnce(&mut Self, &str) -> Result<Sql, ExprError>,
    ) -> Result<(usize, String), ExprError> {
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
    fn table_join(&mut self, target: &Collection, alias: &str, on: Sql) -> Result<Sql, ExprError> {
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

    fn col(&self, alias: &str, name: &str) -> String {
        format!("{}.{}", self.d.quote(alias), self.d.quote(name))
    }

    fn walk(
        &mut self,
        start: Start<'a>,
        props: &[&str],
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let Start {
            mut coll,
            mut alias,
            mut key,
            mut cur,
            mut joins,
            mut multi,
            allow_hidden,
            nullify,
        } = start;
        let pos = span.start;
        let total = props.len();
        for (i, &prop) in props.iter().enumerate() {
            if i == total - 1 {
                return self.last_prop(
                    coll,
                    &alias,
                    prop,
                    cur,
                    joins,
                    multi,
                    allow_hidden,
                    nullify,
                    span,
                    scope,
                );
            }
            let field = coll.field(prop);
            if let Some(f) = field {
                if f.hidden && !allow_hidden {
                    return Err(ExprError::HiddenField {
                        name: prop.to_owned(),
                        pos,
                    });
                }
                if matches!(f.kind, FieldKind::Json(_) | FieldKind::GeoPoint(_)) {
                    let segs: Vec<String> = props[i + 1..].iter().map(|s| columnify(s)).collect();
                    if segs.iter().any(String::is_empty) {
                        return Err(ExprError::invalid(pos, "invalid JSON path"));
                    }
                    let sql = raw(
                        self.d,
                        &self.d.json_value(&self.col(&alias, &f.name), &segs),
                    );
                    return Ok(Val::Expr(ExprVal {
                        sql,
                        ty: Ty::Json,
                        joins,
                        multi,
                        guard: None,
                    }));
                }
            }
            if i >= MAX_RELATION_DEPTH {
                return Err(ExprError::TooManyRelations {
                    pos,
                    max: MAX_RELATION_DEPTH,
                });
            }
            let Some(f) = field else {
                // back relation: collection_via_field
                let missing = |name: &str| -> Result<Val, ExprError> {
                    if nullify {
                        Ok(Val::Lit(Lit::Null))
                    } else {
                        Err(ExprError::UnknownField {
                            name: name.to_owned(),
                            pos,
                        })
                    }
                };
                let Some(at) = prop.rfind("_via_") else {
                    return missing(prop);
                };
                let (cname, fname) = (&prop[..at], &prop[at + 5..]);
                if !is_word(cname) || !is_word(fname) {
                    return missing(prop);
                }
                let schema = self.schema;
                let Some(back) = schema.find(cname) else {
                    return missing(prop);
                };
                let back: &'a Collection = back;
                let Some(bf) = back.field(fname) else {
                    return missing(prop);
                };
                let Some(rel) = bf.relation() else {
                    return missing(prop);
                };
                if rel.collection_id != coll.id {
                    return missing(prop);
                }
                if bf.hidden && !allow_hidden {
                    return Err(ExprError::HiddenField {
                        name: bf.name.clone(),
                        pos,
                    });
                }
                let back_multi = bf.is_multiple() || !has_unique_index(back, &bf.name);
                key = format!("{key}.{prop}");
                let parent_alias = alias.clone();
                let bf_name = bf.name.clone();
                let (id, new_alias) =
                    self.join(scope, key.clone(), cur, "r", &back.id, pos, |c, a| {
                        let on = if back_multi && bf_is_multiple(bf) {
                            let je = format!("{a}_je");
                            let each = c.d.json_each(&c.col(a, &bf_name), &je);
                            raw(
                                c.d,
                                &format!(
                                    "{} IN (SELECT {}.value FROM {each})",
                                    c.col(&parent_alias, "id"),
                                    c.d.quote(&je)
                                ),
                            )
                        } else {
                            raw(
                                c.d,
                                &format!("{} = {}", c.col(a, &bf_name), c.col(&parent_alias, "id")),
                            )
                        };
                        c.table_join(back, a, on)
                    })?;
                joins.insert(id);
                cur = Some(id);
                multi |= back_multi;
                coll = back;
                alias = new_alias;
                continue;
            };
            let Some(rel) = f.relation() else {
                return Err(ExprError::invalid(
                    pos,
                    format!("field {prop:?} is not a valid relation"),
                ));
            };
            let schema = self.schema;
            let Some(target) = schema
                .by_id(&rel.collection_id)
                .or_else(|| schema.find(&rel.collection_id))
            else {
                return Err(ExprError::invalid(
                    pos,
                    format!("failed to load the collection of field {prop:?}"),
                ));
            };
            let target: &'a Collection = target;
            if !f.is_multiple() && i == total - 2 && props[i + 1] == "id" {
                return self.last_prop(
                    coll,
                    &alias,
                    &f.name,
                    cur,
                    joins,
                    multi,
                    allow_hidden,
                    nullify,
                    span,
                    scope,
                );
            }
            key = format!("{key}.{prop}");
            let src_col = self.col(&alias, &f.name);
            let mut parent = cur;
            let on_value = if f.is_multiple() {
                let (je_id, je) =
                    self.join(scope, format!("{key}#je"), cur, "je", "", pos, |c, a| {
                        Ok(raw(c.d, &c.d.left_join(&c.d.json_each(&src_col, a), "1=1")))
                    })?;
                joins.insert(je_id);
                parent = Some(je_id);
                multi = true;
                format!("{}.value", self.d.quote(&je))
            } else {
                src_col
            };
            let (id, new_alias) =
                self.join(scope, key.clone(), parent, "r", &target.id, pos, |c, a| {
                    let on = raw(c.d, &format!("{} = {on_value}", c.col(a, "id")));
                    c.table_join(target, a, on)
                })?;
            joins.insert(id);
            cur = Some(id);
            coll = target;
            alias = new_alias;
        }
        Err(ExprError::UnknownField {
            name: props.join("."),
            pos,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn last_prop(
        &mut self,
        coll: &'a Collection,
        alias: &str,
        prop: &str,
        cur: Option<usize>,
        mut joins: BTreeSet<usize>,
        mut multi: bool,
        allow_hidden: bool,
        nullify: bool,
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let pos = span.start;
        let (name, mut modifier) = split_modifier(prop, pos)?;
        let Some(field) = coll.field(name) else {
            if nullify {
                return Ok(Val::Lit(Lit::Null));
            }
            return Err(ExprError::UnknownField {
                name: name.to_owned(),
                pos,
            });
        };
        if field.hidden && !allow_hidden {
            return Err(ExprError::HiddenField {
                name: name.to_owned(),
                pos,
            });
        }
        let col = self.col(alias, &field.name);
        let multivaluer = matches!(
            field.kind,
            FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_)
        );
        if matches!(modifier, Some("length") | Some("each")) && !multivaluer {
            // PocketBase ignores :length and :each on fields that hold one value.
            modifier = None;
        }
        let mk = |sql: String, ty: Ty, joins: BTreeSet<usize>, multi: bool, d| {
            Val::Expr(ExprVal {
                sql: raw(d, &sql),
                ty,
                joins,
                multi,
                guard: None,
            })
        };
        match modifier {
            Some("length") => {
                let sql = if field.is_multiple() {
                    self.d.json_array_length(&col)
                } else {
                    format!("(CASE WHEN {col} = '' OR {col} IS NULL THEN 0 ELSE 1 END)")
                };
                Ok(mk(sql, Ty::Number, joins, multi, self.d))
            }
            Some("each") => {
                if !field.is_multiple() {
                    return Ok(mk(col, Ty::Text, joins, multi, self.d));
                }
                let key = format!("{}:{}#each", alias, field.name);
                let (id, je) = self.join(scope, key, cur, "je", "", pos, |c, a| {
                    Ok(raw(c.d, &c.d.left_join(&c.d.json_each(&col, a), "1=1")))
                })?;
                joins.insert(id);
                multi = true;
                let value = format!("{}.value", self.d.quote(&je));
                Ok(mk(value, Ty::Text, joins, multi, self.d))
            }
            Some("isset") | Some("changed") => Err(ExprError::invalid(
                pos,
                format!(
                    "the :{} modifier is only supported for @request.body fields",
                    modifier.unwrap_or_default()
                ),
            )),
            _ => {
                let (sql, ty) = if field.is_multiple() {
                    (col, Ty::JsonText)
                } else {
                    match field.kind {
                        FieldKind::Number(_) => (col, Ty::Number),
                        FieldKind::Bool(_) => (col, Ty::Bool),
                        FieldKind::Date(_) | FieldKind::Autodate(_) => (col, Ty::Date),
                        FieldKind::Json(_) => (self.d.json_value(&col, &[]), Ty::Json),
                        FieldKind::GeoPoint(_) => (col, Ty::JsonText),
                        _ => (col, Ty::Text),
                    }
                };
                let (sql, ty) = if modifier == Some("lower") {
                    (
                        format!("LOWER({})", self.d.to_text(&sql, ty.column_type())),
                        Ty::Text,
                    )
                } else {
                    (sql, ty)
                };
                let guard = (field.name == "email" && coll.is_auth() && !allow_hidden)
                    .then(|| format!("{} = TRUE", self.col(alias, "emailVisibility")));
                Ok(Val::Expr(ExprVal {
                    sql: raw(self.d, &sql),
                    ty,
                    joins,
                    multi,
                    guard,
                }))
            }
        }
    }

    fn collection_path(
        &mut self,
        name: &str,
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let pos = span.start;
        let props: Vec<&str> = name.split('.').collect();
        if props.len() < 3 {
            return Err(ExprError::invalid(
                pos,
                format!("invalid @collection field path in {name:?}"),
            ));
        }
        let (cname, calias) = match props[1].split_once(':') {
            Some((c, a)) if !a.is_empty() => (c, Some(a)),
            Some((c, _)) => (c, None),
            None => (props[1], None),
        };
        let schema = self.schema;
        let Some(target) = schema.find(cname) else {
            return Err(ExprError::invalid(
                pos,
                format!("failed to load collection {cname:?}"),
            ));
        };
        let target: &'a Collection = target;
        let key = match calias {
            Some(a) => format!("@collection:alias:{a}"),
            None => format!("@collection:{}", target.id),
        };
        let (id, alias) = self.join(scope, key.clone(), None, "r", &target.id, pos, |c, a| {
            c.table_join(target, a, raw(c.d, "1=1"))
        })?;
        let start = Start {
            coll: target,
            alias,
            key,
            cur: Some(id),
            joins: BTreeSet::from([id]),
            multi: true,
            allow_hidden: true,
            nullify: false,
        };
        self.walk(start, &props[2..], span, scope)
    }

    // ---------------------------------------------------------------- @request

    fn request(&mut self, name: &str, span: Span, scope: &mut Scope) -> Result<Val, ExprError> {
        let pos = span.start;
        let props: Vec<&str> = name.split('.').collect();
        if props.len() < 2 {
            return Ok(Val::Lit(Lit::Null));
        }
        match props[1] {
            "auth" if props.len() > 2 => self.request_auth(&props, span, scope),
            "body" if props.len() > 2 => self.request_body(&props, span, scope),
            _ => self.static_field(&props[1..], pos),
        }
    }

    fn static_root(&self) -> Value {
        let r = self.req;
        let mut m = Map::new();
        m.insert("context".into(), Value::String(r.context.clone()));
        m.insert("method".into(), Value::String(r.method.clone()));
        m.insert("query".into(), Value::Object(r.query.clone()));
        m.insert("headers".into(), Value::Object(r.headers.clone()));
        m.insert(
            "body".into(),
            r.body.clone().map_or(Value::Null, Value::Object),
        );
        m.insert(
            "auth".into(),
            match &r.auth {
                None => Value::Null,
                Some(a) => {
                    let mut rec = a.record.clone();
                    rec.insert(
                        "collectionId".into(),
                        Value::String(a.collection_id.clone()),
                    );
                    rec.insert(
                        "collectionName".into(),
                        Value::String(a.collection_name.clone()),
                    );
                    Value::Object(rec)
                }
            },
        );
        Value::Object(m)
    }

    /// A request value looked up by path (`["query", "x"]`), as PocketBase's
    /// `resolveStaticRequestField`.
    fn static_field(&self, path: &[&str], pos: usize) -> Result<Val, ExprError> {
        let Some((last, init)) = path.split_last() else {
            return Ok(Val::Lit(Lit::Null));
        };
        let (last, modifier) = split_modifier(last, pos)?;
        let root = self.static_root();
        let mut cur = Some(&root);
        for k in init.iter().copied().chain(std::iter::once(last)) {
            cur = match cur {
                Some(Value::Object(m)) => m.get(k),
                Some(Value::Array(a)) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
        }
        if modifier == Some("isset") {
            return Ok(Val::Lit(Lit::Bool(cur.is_some())));
        }
        let mut lit = cur.map_or(Lit::Null, Lit::from_json);
        if let Lit::Text(s) = &lit {
            if let Some(f) = self.coll.field(last) {
                if matches!(f.kind, FieldKind::Number(_)) {
                    if let Ok(n) = s.trim().parse::<f64>() {
                        if n.is_finite() {
                            lit = Lit::Num(n);
                        }
                    }
                }
            }
        }
        if modifier == Some("lower") && lit != Lit::Null {
            lit = Lit::Text(lit.to_go_string().to_ascii_lowercase());
        }
        Ok(Val::Lit(lit))
    }

    fn request_auth(
        &mut self,
        props: &[&str],
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let pos = span.start;
        let Some(auth) = &self.req.auth else {
            return Ok(Val::Lit(Lit::Null));
        };
        let (first, modifier) = split_modifier(props[2], pos)?;
        const STATIC: [&str; 6] = [
            "id",
            "collectionId",
            "collectionName",
            "email",
            "emailVisibility",
            "verified",
        ];
        let plain = props.len() == 3
            && (STATIC.contains(&first)
                || (matches!(modifier, None | Some("lower") | Some("isset"))
                    && auth.record.contains_key(first)));
        if plain {
            return self.static_field(&props[1..], pos);
        }
        let schema = self.schema;
        let Some(ac) = schema
            .by_id(&auth.collection_id)
            .or_else(|| schema.find(&auth.collection_name))
        else {
            return Ok(Val::Lit(Lit::Null));
        };
        let ac: &'a Collection = ac;
        let auth_id = auth
            .record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (id, alias) = self.join(scope, "@auth".into(), None, "r", &ac.id, pos, |c, a| {
            let mut on = Sql::new(c.d);
            on.push(&c.col(a, "id")).push(" = ").push_param(auth_id);
            on.push(c.d.param_cast(ColumnType::Text));
            Ok(combine(c.d, &[&on], |t| {
                c.d.left_join(&format!("{} {}", c.d.quote(&ac.name), c.d.quote(a)), &t[0])
            }))
        })?;
        let start = Start {
            coll: ac,
            alias,
            key: "@auth".into(),
            cur: Some(id),
            joins: BTreeSet::from([id]),
            multi: false,
            allow_hidden: true,
            nullify: true,
        };
        self.walk(start, &props[2..], span, scope)
    }

    fn request_body(
        &mut self,
        props: &[&str],
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let pos = span.start;
        let (name, modifier) = split_modifier(props[2], pos)?;
        let coll = self.coll;
        let Some(field) = coll.field(name) else {
            return self.static_field(&props[1..], pos);
        };
        let body_val = self
            .req
            .body
            .as_ref()
            .and_then(|b| b.get(&field.name))
            .cloned();
        let items = || -> Vec<Value> {
            match &body_val {
                None | Some(Value::Null) => vec![],
                Some(Value::Array(a)) => a.clone(),
                Some(v) => vec![v.clone()],
            }
        };
        if let (Some(rel), true) = (field.relation(), props.len() > 3) {
            let ids: Vec<String> = {
                let mut seen = Vec::new();
                for v in items() {
                    if let Some(s) = v.as_str() {
                        if !s.is_empty() && !seen.iter().any(|x: &String| x == s) {
                            seen.push(s.to_owned());
                        }
                    }
                }
                seen
            };
            if ids.is_empty() {
                return Ok(Val::Lit(Lit::Null));
            }
            let schema = self.schema;
            let Some(target) = schema
                .by_id(&rel.collection_id)
                .or_else(|| schema.find(&rel.collection_id))
            else {
                return Err(ExprError::invalid(
                    pos,
                    format!("failed to load the collection of field {name:?}"),
                ));
            };
            let target: &'a Collection = target;
            let key = format!("@body.{}", field.name);
            let (id, alias) =
                self.join(scope, key.clone(), None, "r", &target.id, pos, |c, a| {
                    let mut on = Sql::new(c.d);
                    on.push(&c.col(a, "id")).push(" IN (");
                    for (i, v) in ids.iter().enumerate() {
                        if i > 0 {
                            on.push(", ");
                        }
                        on.push_param(v.as_str());
                        on.push(c.d.param_cast(ColumnType::Text));
                    }
                    on.push(")");
                    Ok(combine(c.d, &[&on], |t| {
                        c.d.left_join(
                            &format!("{} {}", c.d.quote(&target.name), c.d.quote(a)),
                            &t[0],
                        )
                    }))
                })?;
            let start = Start {
                coll: target,
                alias,
                key,
                cur: Some(id),
                joins: BTreeSet::from([id]),
                multi: field.is_multiple(),
                allow_hidden: true,
                nullify: true,
            };
            return self.walk(start, &props[3..], span, scope);
        }
        if props.len() == 3 {
            match modifier {
                Some("each") => {
                    let multivaluer = matches!(
                        field.kind,
                        FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_)
                    );
                    if !multivaluer {
                        return Err(ExprError::invalid(
                            pos,
                            format!("field {name:?} doesn't support multivalue operations"),
                        ));
                    }
                    let arr = Value::Array(items());
                    let key = format!("@body:each.{}", field.name);
                    let (id, je) = self.join(scope, key, None, "je", "", pos, |c, a| {
                        let mut p = Sql::new(c.d);
                        p.push_param(c.d.json_param(arr))
                            .push(c.d.param_cast(ColumnType::Json));
                        Ok(combine(c.d, &[&p], |t| {
                            c.d.left_join(&c.d.json_each(&t[0], a), "1=1")
                        }))
                    })?;
                    return Ok(Val::Expr(ExprVal {
                        sql: raw(self.d, &format!("{}.value", self.d.quote(&je))),
                        ty: Ty::Text,
                        joins: BTreeSet::from([id]),
                        multi: field.is_multiple(),
                        guard: None,
                    }));
                }
                Some("length") => {
                    let multivaluer = matches!(
                        field.kind,
                        FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_)
                    );
                    if !multivaluer {
                        return Err(ExprError::invalid(
                            pos,
                            format!("field {name:?} doesn't support multivalue operations"),
                        ));
                    }
                    return Ok(Val::Lit(Lit::Num(items().len() as f64)));
                }
                Some("lower") => {
                    let s = body_val
                        .as_ref()
                        .map_or(String::new(), |v| Lit::from_json(v).to_go_string());
                    return Ok(Val::Lit(Lit::Text(s.to_ascii_lowercase())));
                }
                Some("changed") => {
                    if body_val.is_none() {
                        return Ok(Val::Lit(Lit::Bool(false)));
                    }
                    let bare = [props[1], name];
                    let bv = self.static_field(&bare, pos)?;
                    let main = self.main.clone();
                    let fv = self.last_prop(
                        coll,
                        &main,
                        name,
                        None,
                        BTreeSet::new(),
                        false,
                        true,
                        false,
                        span,
                        scope,
                    )?;
                    let sql = self.compare(&bv, CmpOp::Neq, &fv, span)?;
                    let sql = combine(self.d, &[&sql], |t| format!("({})", t[0]));
                    return Ok(Val::expr(sql, Ty::Bool));
                }
                _ => {}
            }
        }
        self.static_field(&props[1..], pos)
    }

    // ---------------------------------------------------------------- functions

    fn func(
        &mut self,
        name: &str,
        args: &[Operand],
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let pos = span.start;
        match name {
            "geoDistance" => {
                if args.len() != 4 {
                    return Err(ExprError::invalid(
                        pos,
                        "geoDistance expects 4 arguments (lonA, latA, lonB, latB)",
                    ));
                }
                let mut parts = Vec::new();
                let mut joins = BTreeSet::new();
                let mut multi = false;
                for a in args {
                    if matches!(a, Operand::Func { .. }) {
                        return Err(ExprError::invalid(
                            a.span().start,
                            "geoDistance arguments must be fields or numbers",
                        ));
                    }
                    let v = self.operand(a, scope)?;
                    joins.extend(v.joins());
                    multi |= v.is_multi();
                    parts.push(self.number(&v, a.span().start)?);
                }
                let refs: Vec<&Sql> = parts.iter().collect();
                let d = self.d;
                let sql = combine(d, &refs, |t| d.geo_distance_km(&t[0], &t[1], &t[2], &t[3]));
                Ok(Val::Expr(ExprVal {
                    sql,
                    ty: Ty::Number,
                    joins,
                    multi,
                    guard: None,
                }))
            }
            "strftime" => {
                let Some(Operand::Text { value: fmt, .. }) = args.first() else {
                    return Err(ExprError::invalid(
                        pos,
                        "strftime expects a text format as its first argument",
                    ));
                };
                let d = self.d;
                let Some(fmt) = d.strftime_format(fmt) else {
                    return Err(ExprError::invalid(
                        pos,
                        "unsupported strftime format specifier on this database",
                    ));
                };
                let mut f = Sql::new(d);
                f.push_param(fmt).push(d.param_cast(ColumnType::Text));
                let time = match args.get(1) {
                    Some(a) => self.operand(a, scope)?,
                    None => Val::Lit(Lit::Text("now".into())),
                };
                let (joins, multi) = (time.joins(), time.is_multi());
                let time_sql = self.time_arg(&time, pos)?;
                let mut mods = Vec::new();
                for a in args.iter().skip(2) {
                    match self.operand(a, scope)? {
                        Val::Lit(l) => {
                            let mut m = Sql::new(d);
                            m.push_param(Lit::Text(l.to_go_string()).to_sql_value())
                                .push(d.param_cast(ColumnType::Text));
                            mods.push(m);
                        }
                        Val::Expr(_) => {
                            return Err(ExprError::invalid(
                                a.span().start,
                                "strftime modifiers must be literals",
                            ))
                        }
                    }
                }
                let mut refs: Vec<&Sql> = vec![&f, &time_sql];
                refs.extend(mods.iter());
                let mut ok = true;
                let sql = combine(d, &refs, |t| {
                    d.strftime(&t[0], &t[1], &t[2..]).unwrap_or_else(|| {
                        ok = false;
                        String::new()
                    })
                });
                if !ok {
                    return Err(ExprError::invalid(
                        pos,
                        "strftime modifiers are not supported on this database",
                    ));
                }
                Ok(Val::Expr(ExprVal {
                    sql,
                    ty: Ty::Text,
                    joins,
                    multi,
                    guard: None,
                }))
            }
            _ => Err(ExprError::invalid(
                pos,
                format!("unknown function {name:?}"),
            )),
        }
    }

    fn time_arg(&self, v: &Val, pos: usize) -> Result<Sql, ExprError> {
        let d = self.d;
        let mut s = Sql::new(d);
        match (d.dynamic_typing(), v) {
            (true, Val::Lit(Lit::Null)) => {
                s.push("NULL");
            }
            (true, Val::Lit(l)) => {
                s.push_param(l.to_sql_value());
            }
            (true, Val::Expr(e)) => return Ok(e.sql.clone()),
            (false, Val::Expr(e)) if e.ty == Ty::Date => return Ok(e.sql.clone()),
            (false, Val::Lit(Lit::Text(t))) => {
                let t = if t == "now" {
                    Some(self.opts.now)
                } else {
                    galley_types::datetime::parse(t)
                };
                let Some(t) = t else {
                    return Err(ExprError::invalid(pos, "strftime: invalid time value"));
                };
                s.push_param(SqlValue::Timestamp(t))
                    .push(d.param_cast(ColumnType::Timestamp));
            }
            (false, _) => {
                return Err(ExprError::invalid(
                    pos,
                    "strftime expects a date field or a date text on this database",
                ))
            }
        }
        Ok(s)
    }

    /// The operand as a number expression (geoDistance arguments).
    fn number(&self, v: &Val, pos: usize) -> Result<Sql, ExprError> {
        let d = self.d;
        let mut s = Sql::new(d);
        match v {
            Val::Lit(Lit::Null) => {
                s.push("NULL");
            }
            Val::Lit(Lit::Num(n)) => {
                s.push_param(*n).push(d.param_cast(ColumnType::Number));
            }
            Val::Lit(Lit::Text(t)) => match t.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => {
                    s.push_param(n).push(d.param_cast(ColumnType::Number));
                }
                _ => return Err(ExprError::invalid(pos, "expected a number")),
            },
            Val::Lit(Lit::Bool(_)) => return Err(ExprError::invalid(pos, "expected a number")),
            Val::Expr(e) => {
                let ty = e.ty.column_type();
                let mut ok = true;
                let sql = combine(d, &[&e.sql], |t| {
                    d.to_number(&t[0], ty).unwrap_or_else(|| {
                        ok = false;
                        String::new()
                    })
                });
                if !ok {
                    return Err(ExprError::invalid(pos, "expected a number field"));
                }
                return Ok(sql);
            }
        }
        Ok(s)
    }

    // ---------------------------------------------------------------- comparisons

    /// A bound literal for a PostgreSQL comparison domain, or `None` if the literal does
    /// not convert (the comparison then falls back to text).
    fn pg_lit(&self, lit: &Lit, ty: Ty) -> Option<Sql> {
        let d = self.d;
        let mut s = Sql::new(d);
        let v = match (lit, ty) {
            (Lit::Null, _) => {
                s.push("NULL");
                return Some(s);
            }
            (_, Ty::Json) => SqlValue::Json(lit.to_json()),
            (l, Ty::Text | Ty::JsonText) => SqlValue::Text(l.to_sqlite_text()),
            (Lit::Num(n), Ty::Number) => SqlValue::Real(*n),
            (Lit::Bool(b), Ty::Number) => SqlValue::Real(if *b { 1.0 } else { 0.0 }),
            (Lit::Text(t), Ty::Number) => match t.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && !t.trim().is_empty() => SqlValue::Real(n),
                _ => return None,
            },
            (Lit::Bool(b), Ty::Bool) => SqlValue::Bool(*b),
            (Lit::Num(n), Ty::Bool) if *n == 0.0 || *n == 1.0 => SqlValue::Bool(*n == 1.0),
            (Lit::Text(t), Ty::Bool) if t == "0" || t == "1" => SqlValue::Bool(t == "1"),
            (Lit::Text(t), Ty::Date) => SqlValue::Timestamp(galley_types::datetime::parse(t)?),
            _ => return None,
        };
        let cast = match ty {
            Ty::JsonText => ColumnType::Text,
            t => t.column_type(),
        };
        s.push_param(v).push(d.param_cast(cast));
        Some(s)
    }

    /// Renders both sides for a comparison and reports the domain they are compared in.
    /// SQLite: PocketBase's bindings (text, float, bool, NULL). PostgreSQL: both sides of
    /// one type, falling back to text.
    fn sides(&self, l: &Val, r: &Val) -> (Sql, Sql, Ty) {
        let d = self.d;
        if d.dynamic_typing() {
            let render = |v: &Val| match v {
                Val::Lit(Lit::Null) => raw(d, "NULL"),
                Val::Lit(l) => {
                    let mut s = Sql::new(d);
                    s.push_param(l.to_sql_value());
                    s
                }
                Val::Expr(e) => e.sql.clone(),
            };
            let ty = match (l, r) {
                (Val::Expr(e), _) | (_, Val::Expr(e)) => e.ty,
                _ => Ty::Text,
            };
            return (render(l), render(r), ty);
        }
        let as_text = |e: &ExprVal| {
            if e.ty == Ty::Text {
                e.sql.clone()
            } else {
                combine(d, &[&e.sql], |t| d.to_text(&t[0], e.ty.column_type()))
            }
        };
        let text_lit = |l: &Lit| self.pg_lit(l, Ty::Text).unwrap_or_else(|| raw(d, "NULL"));
        match (l, r) {
            (Val::Expr(a), Val::Expr(b)) => {
                if a.ty == b.ty && a.ty != Ty::JsonText {
                    (a.sql.clone(), b.sql.clone(), a.ty)
                } else {
                    (as_text(a), as_text(b), Ty::Text)
                }
            }
            (Val::Expr(e), Val::Lit(lit)) | (Val::Lit(lit), Val::Expr(e)) => {
                let expr_left = matches!(l, Val::Expr(_));
                let (es, ls, ty) = match self.pg_lit(lit, e.ty) {
                    Some(ls) if e.ty != Ty::JsonText => (e.sql.clone(), ls, e.ty),
                    _ => (as_text(e), text_lit(lit), Ty::Text),
                };
                if expr_left {
                    (es, ls, ty)
                } else {
                    (ls, es, ty)
                }
            }
            (Val::Lit(a), Val::Lit(b)) => {
                let ty = match (a, b) {
                    (Lit::Num(_), Lit::Num(_)) => Ty::Number,
                    (Lit::Bool(_), Lit::Bool(_)) => Ty::Bool,
                    _ => Ty::Text,
                };
                let ra = self.pg_lit(a, ty).unwrap_or_else(|| text_lit(a));
                let rb = self.pg_lit(b, ty).unwrap_or_else(|| text_lit(b));
                (ra, rb, ty)
            }
        }
    }

    fn compare(&self, l: &Val, op: CmpOp, r: &Val, _span: Span) -> Result<Sql, ExprError> {
        Ok(match op {
            CmpOp::Eq => self.equal(true, l, r),
            CmpOp::Neq => self.equal(false, l, r),
            CmpOp::Like => self.like(true, l, r),
            CmpOp::NotLike => self.like(false, l, r),
            other => {
                let (a, b, ty) = self.sides(l, r);
                let sym = match other {
                    CmpOp::Lt => "<",
                    CmpOp::Lte => "<=",
                    CmpOp::Gt => ">",
                    _ => ">=",
                };
                let null_lit = |v: &Val| matches!(v, Val::Lit(Lit::Null));
                let (xn, yn) = (matches!(l, Val::Expr(_)), matches!(r, Val::Expr(_)));
                let low = match other {
                    CmpOp::Lt | CmpOp::Lte => xn,
                    _ => yn,
                };
                if self.d.empty_timestamp().is_null()
                    && ty == Ty::Date
                    && low
                    && !null_lit(l)
                    && !null_lit(r)
                {
                    // PocketBase compares date text, where an empty date ("") is below every
                    // date; PostgreSQL stores it as NULL.
                    return Ok(combine(self.d, &[&a, &b], |t| {
                        let (x, y) = (&t[0], &t[1]);
                        match other {
                            CmpOp::Lt if yn => {
                                format!("(({x} IS NULL AND {y} IS NOT NULL) OR {x} < {y})")
                            }
                            CmpOp::Lt => format!("({x} IS NULL OR {x} < {y})"),
                            CmpOp::Lte => format!("({x} IS NULL OR {x} <= {y})"),
                            CmpOp::Gt if xn => {
                                format!("(({y} IS NULL AND {x} IS NOT NULL) OR {x} > {y})")
                            }
                            CmpOp::Gt => format!("({y} IS NULL OR {x} > {y})"),
                            _ => format!("({y} IS NULL OR {x} >= {y})"),
                        }
                    }));
                }
                combine(self.d, &[&a, &b], |t| format!("{} {sym} {}", t[0], t[1]))
            }
        })
    }

    fn equal(&self, eq: bool, l: &Val, r: &Val) -> Sql {
        let d = self.d;
        let empty = |v: &Val| matches!(v, Val::Lit(x) if x.is_empty());
        let known = |v: &Val| matches!(v, Val::Lit(x) if !x.is_empty());
        let json = |v: &Val| matches!(v, Val::Expr(e) if e.ty == Ty::Json);
        let (le, re) = (empty(l), empty(r));
        let dynamic = d.dynamic_typing();
        let f2 = |a: &Sql, b: &Sql, f: &dyn Fn(&str, &str) -> String| {
            combine(d, &[a, b], |t| f(&t[0], &t[1]))
        };
        if json(l) || json(r) {
            let (a, b, _) = self.sides(l, r);
            return f2(&a, &b, &|x, y| d.null_safe_eq(x, y, eq));
        }
        let op = if eq { "=" } else { d.null_safe_op(false) };
        if le && re {
            if dynamic {
                return raw(d, &format!("'' {op} ''"));
            }
            return raw(d, if eq { "1=1" } else { "1=0" });
        }
        // Emptiness as PocketBase means it: '' or NULL for text, NULL for other types.
        let empty_check = |x: &str, textual: bool| -> String {
            match (textual, eq) {
                (true, true) => format!("({x} = '' OR {x} IS NULL)"),
                (true, false) => d.not_empty_text(x),
                (false, true) => format!("{x} IS NULL"),
                (false, false) => format!("{x} IS NOT NULL"),
            }
        };
        if !dynamic && (le || re) {
            // An empty literal against a typed expression checks the expression's own
            // emptiness.
            if let (Val::Expr(e), _) | (_, Val::Expr(e)) = (l, r) {
                let textual = matches!(e.ty, Ty::Text | Ty::JsonText);
                return combine(d, &[&e.sql], |t| {
                    let x = if e.ty == Ty::JsonText {
                        d.to_text(&t[0], e.ty.column_type())
                    } else {
                        t[0].clone()
                    };
                    empty_check(&x, textual)
                });
            }
        }
        let (a, b, ty) = self.sides(l, r);
        let textual = dynamic || matches!(ty, Ty::Text | Ty::JsonText);
        if known(l) || known(r) {
            if !dynamic && (le || re) {
                // a non-empty value never equals an empty one
                return raw(d, if eq { "1=0" } else { "1=1" });
            }
            let a = if le { raw(d, "''") } else { a };
            let b = if re { raw(d, "''") } else { b };
            return f2(&a, &b, &|x, y| format!("{x} {op} {y}"));
        }
        if le {
            if dynamic {
                // PocketBase's own form, with the empty literal on the left.
                return f2(&a, &b, &|_, y| {
                    if eq {
                        format!("('' = {y} OR {y} IS NULL)")
                    } else {
                        format!("('' {op} {y} AND {y} IS NOT NULL)")
                    }
                });
            }
            return combine(d, &[&b], |t| empty_check(&t[0], textual));
        }
        if re {
            return combine(d, &[&a], |t| empty_check(&t[0], textual));
        }
        if textual {
            f2(&a, &b, &|x, y| {
                format!("COALESCE({x}, '') {op} COALESCE({y}, '')")
            })
        } else {
            f2(&a, &b, &|x, y| d.null_safe_eq(x, y, eq))
        }
    }

    fn like(&self, pos: bool, l: &Val, r: &Val) -> Sql {
        let d = self.d;
        let kw = d.like();
        let op = if pos {
            kw.to_owned()
        } else {
            format!("NOT {kw}")
        };
        let render = |v: &Val| -> Sql {
            match v {
                Val::Lit(Lit::Null) => raw(d, "NULL"),
                Val::Lit(lit) => {
                    let mut s = Sql::new(d);
                    if d.dynamic_typing() {
                        s.push_param(lit.to_sql_value());
                    } else {
                        s.push_param(lit.to_go_string())
                            .push(d.param_cast(ColumnType::Text));
                    }
                    s
                }
                Val::Expr(e) => combine(d, &[&e.sql], |t| d.to_text(&t[0], e.ty.column_type())),
            }
        };
        let a = render(l);
        match r {
            Val::Lit(lit) if *lit != Lit::Null => {
                let pattern = like_pattern(&lit.to_go_string());
                if d.rejects_dangling_like_escape() && dangling_escape(&pattern) {
                    // SQLite: a pattern ending in a lone escape never matches;
                    // PostgreSQL would raise an error instead.
                    let v = if pos { "FALSE" } else { "TRUE" };
                    return combine(d, &[&a], |t| {
                        format!("(CASE WHEN {} IS NULL THEN NULL ELSE {v} END)", t[0])
                    });
                }
                let mut b = Sql::new(d);
                b.push_param(pattern).push(d.param_cast(ColumnType::Text));
                combine(d, &[&a, &b], |t| {
                    format!("{} {op} {} ESCAPE '\\'", t[0], t[1])
                })
            }
            _ => {
                let b = render(r);
                combine(d, &[&a, &b], |t| {
                    format!("{} {op} ('%' || {} || '%') ESCAPE '\\'", t[0], t[1])
                })
            }
        }
    }

    // ---------------------------------------------------------------- sort

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
        let all = self.closure(&e.joins);
        let mut parts: Vec<&Sql> = vec![&e.sql];
        parts.extend(all.iter().map(|&j| &self.joins[j].sql));
        let n = parts.len();
        let base = self.d.quote(&format!("{}b", self.prefix));
        let sql = combine(self.d, &parts, |t| {
            let mut s = format!("(SELECT {} FROM (SELECT 1) {base}", t[0]);
            for j in &t[1..n] {
                s.push_str(j);
            }
            s.push_str(" LIMIT 1)");
            s
        });
        Ok((sql, e.ty))
    }
}

fn bf_is_multiple(f: &galley_types::Field) -> bool {
    f.is_multiple()
}
