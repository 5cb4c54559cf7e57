//! Comparisons: both sides rendered in one domain and the operator written with
//! PocketBase's semantics (empty means `''` or NULL, `~` is an escaped LIKE), plus the
//! all-of form of a comparison over multi-valued operands.

use super::joins::Scope;
use super::{combine, raw, Compiler, Cond};
use crate::ast::{CmpOp, Comparison, Span};
use crate::error::ExprError;
use crate::value::{ExprVal, Lit, Ty, Val};
use galley_sql::{ColumnType, Sql, SqlValue};
use std::collections::BTreeSet;

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
fn like_pattern(s: &str) -> String {
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

impl<'a> Compiler<'a> {
    pub(super) fn comparison(&mut self, c: &Comparison) -> Result<Cond, ExprError> {
        let mut shared = std::mem::take(&mut self.shared);
        let l = self.operand(&c.left, &mut shared);
        let r = l.as_ref().ok().map(|_| self.operand(&c.right, &mut shared));
        self.shared = shared;
        let l = l?;
        let r = r.unwrap_or_else(|| Err(ExprError::Empty))?;
        let op = c.op.base();
        let sql = self.compare(&l, op, &r, c.span)?;
        let mut sql = self.guarded(sql, [&l, &r]);
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
            // Guarded too: a row whose email is hidden is a counter-example whatever its
            // address, so the answer says nothing about the address.
            let inner = self.compare(&lm, op, &rm, c.span)?;
            let inner = self.guarded(inner, [&lm, &rm]);
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

    /// `sql` ANDed with the guards of the operands it reads (an email readable only where
    /// `emailVisibility` is set).
    fn guarded<'v>(&self, mut sql: Sql, vals: impl IntoIterator<Item = &'v Val>) -> Sql {
        for v in vals {
            if let Val::Expr(ExprVal { guard: Some(g), .. }) = v {
                let gs = raw(self.d, g);
                sql = combine(self.d, &[&sql, &gs], |t| format!("({} AND {})", t[0], t[1]));
            }
        }
        sql
    }

    /// A bound literal for a statically typed comparison domain (PostgreSQL), or `None` if
    /// the literal does not convert (the comparison then falls back to text).
    fn typed_lit(&self, lit: &Lit, ty: Ty) -> Option<Sql> {
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
    /// With dynamic typing (SQLite): PocketBase's bindings (text, float, bool, NULL).
    /// Otherwise (PostgreSQL): both sides of one type, falling back to text.
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
        let text_lit = |l: &Lit| {
            self.typed_lit(l, Ty::Text)
                .unwrap_or_else(|| raw(d, "NULL"))
        };
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
                let (es, ls, ty) = match self.typed_lit(lit, e.ty) {
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
                let ra = self.typed_lit(a, ty).unwrap_or_else(|| text_lit(a));
                let rb = self.typed_lit(b, ty).unwrap_or_else(|| text_lit(b));
                (ra, rb, ty)
            }
        }
    }

    pub(super) fn compare(
        &self,
        l: &Val,
        op: CmpOp,
        r: &Val,
        _span: Span,
    ) -> Result<Sql, ExprError> {
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
                    // date; here an empty date is stored as NULL (PostgreSQL).
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
}
