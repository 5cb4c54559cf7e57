//! The schema as stored: `_collections` rows (read, written, bootstrapped) and the DDL of
//! collection tables ([`ddl`]). Below the collections service, which validates changes.

pub mod ddl;
use crate::error::CoreError;
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt, Row};
use galley_types::collection::superusers_collection;
use galley_types::{AuthOptions, Collection, CollectionType, Field, Rules};
use serde_json::Value;

pub(crate) fn parse_row(row: &Row) -> Result<Collection, CoreError> {
    let kind = match row.text("type").as_str() {
        "auth" => CollectionType::Auth,
        "view" => CollectionType::View,
        _ => CollectionType::Base,
    };
    let fields: Vec<Field> = serde_json::from_value(row.json("fields")).map_err(|e| {
        CoreError::Internal(format!("bad stored fields of {}: {e}", row.text("name")))
    })?;
    let indexes: Vec<String> = serde_json::from_value(row.json("indexes")).unwrap_or_default();
    let options = row.json("options");
    let auth = if kind == CollectionType::Auth {
        Some(
            serde_json::from_value::<AuthOptions>(options.clone())
                .map_err(|e| CoreError::Internal(format!("bad stored auth options: {e}")))?,
        )
    } else {
        None
    };
    let ts = |name: &str| {
        galley_types::datetime::parse(&row.text(name))
            .map(|t| galley_types::datetime::format(&t))
            .unwrap_or_default()
    };
    Ok(Collection {
        id: row.text("id"),
        name: row.text("name"),
        kind,
        system: row.bool("system"),
        fields,
        indexes,
        rules: Rules {
            list_rule: row.opt_text("listRule"),
            view_rule: row.opt_text("viewRule"),
            create_rule: row.opt_text("createRule"),
            update_rule: row.opt_text("updateRule"),
            delete_rule: row.opt_text("deleteRule"),
        },
        auth,
        view_query: options
            .get("viewQuery")
            .and_then(Value::as_str)
            .map(str::to_owned),
        created: ts("created"),
        updated: ts("updated"),
    })
}

pub fn load_all(c: &mut dyn Conn) -> Result<Vec<Collection>, CoreError> {
    let rows = c.query(
        "SELECT * FROM \"_collections\" ORDER BY \"created\", \"name\"",
        &[],
    )?;
    rows.iter().map(parse_row).collect()
}

fn row_values(col: &Collection) -> Vec<(&'static str, SqlValue)> {
    let ts = |s: &str| {
        galley_types::datetime::parse(s)
            .map(SqlValue::Timestamp)
            .unwrap_or(SqlValue::Null)
    };
    vec![
        ("id", SqlValue::from(col.id.as_str())),
        ("system", SqlValue::Bool(col.system)),
        ("type", SqlValue::from(col.kind.as_str())),
        ("name", SqlValue::from(col.name.as_str())),
        (
            "fields",
            SqlValue::Json(serde_json::to_value(&col.fields).unwrap_or(Value::Null)),
        ),
        (
            "indexes",
            SqlValue::Json(serde_json::to_value(&col.indexes).unwrap_or(Value::Null)),
        ),
        ("listRule", SqlValue::from(col.rules.list_rule.clone())),
        ("viewRule", SqlValue::from(col.rules.view_rule.clone())),
        ("createRule", SqlValue::from(col.rules.create_rule.clone())),
        ("updateRule", SqlValue::from(col.rules.update_rule.clone())),
        ("deleteRule", SqlValue::from(col.rules.delete_rule.clone())),
        ("options", SqlValue::Json(col.options_json())),
        ("created", ts(&col.created)),
        ("updated", ts(&col.updated)),
    ]
}

pub fn insert_row(c: &mut dyn Conn, col: &Collection) -> Result<(), CoreError> {
    let values = row_values(col);
    let mut sql = Sql::new(c.dialect());
    sql.push("INSERT INTO \"_collections\" (");
    for (i, (name, _)) in values.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(name);
    }
    sql.push(") VALUES (");
    for (i, (_, v)) in values.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push_param(v);
    }
    sql.push(")");
    c.execute_sql(&sql)?;
    Ok(())
}

pub fn update_row(c: &mut dyn Conn, col: &Collection) -> Result<(), CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("UPDATE \"_collections\" SET ");
    let values = row_values(col);
    for (i, (name, v)) in values.into_iter().skip(1).enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(name).push(" = ").push_param(v);
    }
    sql.push(" WHERE \"id\" = ").push_param(col.id.as_str());
    c.execute_sql(&sql)?;
    Ok(())
}

pub fn delete_row(c: &mut dyn Conn, id: &str) -> Result<(), CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("DELETE FROM \"_collections\" WHERE \"id\" = ")
        .push_param(id);
    c.execute_sql(&sql)?;
    Ok(())
}

/// Creates the built-in `_superusers` collection on a fresh database.
pub fn bootstrap(c: &mut dyn Conn) -> Result<(), CoreError> {
    let existing = load_all(c)?;
    let now = galley_types::datetime::now_string();
    // Each missing system collection is created, so an older database gains new ones.
    for col in [
        superusers_collection(&now),
        galley_types::collection::external_auths_collection(&now),
        galley_types::collection::webhooks_collection(&now),
        galley_types::collection::webhook_deliveries_collection(&now),
    ] {
        if existing.iter().any(|e| e.name == col.name) {
            continue;
        }
        c.batch(&ddl::create_table(c.dialect(), &col))?;
        for idx in ddl::index_statements(c.dialect(), &col)? {
            c.batch(&idx)?;
        }
        insert_row(c, &col)?;
    }
    Ok(())
}
