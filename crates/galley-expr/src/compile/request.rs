//! `@request.*`: static request values become literals; `@request.auth.*` and
//! `@request.body.*` relation paths become joins seeded with bound ids.

use super::joins::{JoinSpec, Scope};
use super::resolve::{split_modifier, Walk};
use super::{combine, raw, Compiler};
use crate::ast::{CmpOp, Span};
use crate::error::ExprError;
use crate::value::{ExprVal, Lit, Ty, Val};
use galley_sql::{ColumnType, Sql};
use galley_types::{field::FieldKind, Collection};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

impl<'a> Compiler<'a> {
    pub(super) fn request(
        &mut self,
        name: &str,
        span: Span,
        scope: &mut Scope,
    ) -> Result<Val, ExprError> {
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
        let (id, alias) = self.join(
            scope,
            JoinSpec::table("@auth".into(), None, &ac.id, pos),
            |c, a| {
                let mut on = Sql::new(c.d);
                on.push(&c.col(a, "id")).push(" = ").push_param(auth_id);
                on.push(c.d.param_cast(ColumnType::Text));
                Ok(combine(c.d, &[&on], |t| {
                    c.d.left_join(&format!("{} {}", c.d.quote(&ac.name), c.d.quote(a)), &t[0])
                }))
            },
        )?;
        let start = Walk {
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
            let target = self.relation_target(rel, name, pos)?;
            let key = format!("@body.{}", field.name);
            let (id, alias) = self.join(
                scope,
                JoinSpec::table(key.clone(), None, &target.id, pos),
                |c, a| {
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
                },
            )?;
            let start = Walk {
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
                    let (id, je) =
                        self.join(scope, JoinSpec::json_each(key, None, pos), |c, a| {
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
                    let here = Walk {
                        coll,
                        alias: self.main.clone(),
                        key: String::new(),
                        cur: None,
                        joins: BTreeSet::new(),
                        multi: false,
                        allow_hidden: true,
                        nullify: false,
                    };
                    let fv = self.last_prop(here, name, span, scope)?;
                    let sql = self.compare(&bv, CmpOp::Neq, &fv, span)?;
                    let sql = combine(self.d, &[&sql], |t| format!("({})", t[0]));
                    return Ok(Val::expr(sql, Ty::Bool));
                }
                _ => {}
            }
        }
        self.static_field(&props[1..], pos)
    }
}
