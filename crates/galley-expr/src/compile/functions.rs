//! Functions (`geoDistance`, `strftime`) and date macros (`@now`, `@todayStart`, …).

use super::joins::Scope;
use super::{combine, Compiler};
use crate::ast::{Operand, Span};
use crate::error::ExprError;
use crate::value::{merge_guards, ExprVal, Lit, Ty, Val};
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use galley_sql::{ColumnType, Sql, SqlValue};
use std::collections::BTreeSet;

const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3fZ";

fn date_string(t: chrono::DateTime<Utc>) -> String {
    t.format(DATE_FORMAT).to_string()
}

impl<'a> Compiler<'a> {
    pub(super) fn macro_value(&self, name: &str) -> Option<Lit> {
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

    pub(super) fn func(
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
                let mut guards = Vec::new();
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
                    guards.push(v);
                }
                let refs: Vec<&Sql> = parts.iter().collect();
                let d = self.d;
                let sql = combine(d, &refs, |t| d.geo_distance_km(&t[0], &t[1], &t[2], &t[3]));
                Ok(Val::Expr(ExprVal {
                    sql,
                    ty: Ty::Number,
                    joins,
                    multi,
                    guard: merge_guards(&guards),
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
                    guard: merge_guards([&time]),
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
}
