//! Name resolution: identifiers and relation paths (`author.name`, `tags_via_post.x`,
//! `@collection.NAME.field`) to typed operands over planned joins.

use super::joins::{JoinSpec, Scope};
use super::{raw, Compiler, MAX_RELATION_DEPTH};
use crate::ast::{Operand, Span};
use crate::error::ExprError;
use crate::value::{ExprVal, Lit, Ty, Val};
use galley_types::{field::FieldKind, Collection};
use std::collections::BTreeSet;

/// A field path walk: where it starts, then how far it has got (the collection and alias
/// reached, the join it hangs from, the joins it needs, whether it may yield many rows).
pub(super) struct Walk<'a> {
    pub(super) coll: &'a Collection,
    pub(super) alias: String,
    pub(super) key: String,
    pub(super) cur: Option<usize>,
    pub(super) joins: BTreeSet<usize>,
    pub(super) multi: bool,
    pub(super) allow_hidden: bool,
    pub(super) nullify: bool,
}

pub(super) fn split_modifier(prop: &str, pos: usize) -> Result<(&str, Option<&str>), ExprError> {
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

impl<'a> Compiler<'a> {
    pub(super) fn operand(&mut self, o: &Operand, scope: &mut Scope) -> Result<Val, ExprError> {
        match o {
            Operand::Text { value, .. } => Ok(Val::Lit(Lit::Text(value.clone()))),
            Operand::Number { value, .. } => Ok(Val::Lit(Lit::Num(*value))),
            Operand::Ident { name, span } => self.ident(name, *span, scope),
            Operand::Func { name, args, span } => self.func(name, args, *span, scope),
        }
    }

    pub(super) fn ident(
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
        let start = Walk {
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

    pub(super) fn walk(
        &mut self,
        mut at: Walk<'a>,
        props: &[&str],
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let pos = span.start;
        let total = props.len();
        for (i, &prop) in props.iter().enumerate() {
            if i == total - 1 {
                return self.last_prop(at, prop, span, scope);
            }
            let field = at.coll.field(prop);
            if let Some(f) = field {
                if f.hidden && !at.allow_hidden {
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
                        &self.d.json_value(&self.col(&at.alias, &f.name), &segs),
                    );
                    return Ok(Val::Expr(ExprVal {
                        sql,
                        ty: Ty::Json,
                        joins: at.joins,
                        multi: at.multi,
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
                    if at.nullify {
                        Ok(Val::Lit(Lit::Null))
                    } else {
                        Err(ExprError::UnknownField {
                            name: name.to_owned(),
                            pos,
                        })
                    }
                };
                let Some(via) = prop.rfind("_via_") else {
                    return missing(prop);
                };
                let (cname, fname) = (&prop[..via], &prop[via + 5..]);
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
                if rel.collection_id != at.coll.id {
                    return missing(prop);
                }
                if bf.hidden && !at.allow_hidden {
                    return Err(ExprError::HiddenField {
                        name: bf.name.clone(),
                        pos,
                    });
                }
                let back_multi = bf.is_multiple() || !has_unique_index(back, &bf.name);
                at.key = format!("{}.{prop}", at.key);
                let parent_alias = at.alias.clone();
                let bf_name = bf.name.clone();
                let (id, new_alias) = self.join(
                    scope,
                    JoinSpec::table(at.key.clone(), at.cur, &back.id, pos),
                    |c, a| {
                        let on = if back_multi && bf.is_multiple() {
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
                    },
                )?;
                at.joins.insert(id);
                at.cur = Some(id);
                at.multi |= back_multi;
                at.coll = back;
                at.alias = new_alias;
                continue;
            };
            let Some(rel) = f.relation() else {
                return Err(ExprError::invalid(
                    pos,
                    format!("field {prop:?} is not a valid relation"),
                ));
            };
            let target = self.relation_target(rel, prop, pos)?;
            if !f.is_multiple() && i == total - 2 && props[i + 1] == "id" {
                return self.last_prop(at, &f.name, span, scope);
            }
            at.key = format!("{}.{prop}", at.key);
            let src_col = self.col(&at.alias, &f.name);
            let mut parent = at.cur;
            let on_value = if f.is_multiple() {
                let (je_id, je) = self.join(
                    scope,
                    JoinSpec::json_each(format!("{}#je", at.key), at.cur, pos),
                    |c, a| Ok(raw(c.d, &c.d.left_join(&c.d.json_each(&src_col, a), "1=1"))),
                )?;
                at.joins.insert(je_id);
                parent = Some(je_id);
                at.multi = true;
                format!("{}.value", self.d.quote(&je))
            } else {
                src_col
            };
            let (id, new_alias) = self.join(
                scope,
                JoinSpec::table(at.key.clone(), parent, &target.id, pos),
                |c, a| {
                    let on = raw(c.d, &format!("{} = {on_value}", c.col(a, "id")));
                    c.table_join(target, a, on)
                },
            )?;
            at.joins.insert(id);
            at.cur = Some(id);
            at.coll = target;
            at.alias = new_alias;
        }
        Err(ExprError::UnknownField {
            name: props.join("."),
            pos,
        })
    }

    /// Resolves `prop`, the last name of a path, where the walk `at` has got to.
    pub(super) fn last_prop(
        &mut self,
        at: Walk<'a>,
        prop: &str,
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
        let Walk {
            coll,
            alias,
            cur,
            mut joins,
            mut multi,
            allow_hidden,
            nullify,
            ..
        } = at;
        let alias = alias.as_str();
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
                let (id, je) = self.join(scope, JoinSpec::json_each(key, cur, pos), |c, a| {
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
        let (id, alias) = self.join(
            scope,
            JoinSpec::table(key.clone(), None, &target.id, pos),
            |c, a| c.table_join(target, a, raw(c.d, "1=1")),
        )?;
        let start = Walk {
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
}
