//! Turning a submitted collection body into a valid [`Collection`] (parse, don't validate).

use crate::error::CoreError;
use galley_types::collection::{auth_system_fields, id_field};
use galley_types::field::FieldKind;
use galley_types::index::IndexDef;
use galley_types::{AuthOptions, Collection, CollectionType, Field, Schema};
use serde_json::{json, Map, Value};

const RESERVED_FIELD_NAMES: &[&str] = &[
    "null",
    "true",
    "false",
    "_rowid_",
    "_rowid",
    "collectionid",
    "collectionname",
    "expand",
];
/// System tables that are not collections (lowercase: names compare case-insensitively).
const RESERVED_COLLECTION_NAMES: &[&str] = &[
    "_collections",
    "_params",
    "_migrations",
    "_otps",
    "_mfas",
    "_authorigins",
    // On PostgreSQL the stored logs (galley-ops) are a table of the same database.
    "_logs",
];
const MAX_RULE_LEN: usize = 3500;

fn bad_format() -> CoreError {
    CoreError::bad_request("Failed to load the submitted data due to invalid formatting.")
}

fn err(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

/// `^\w+$` as Go's RE2 reads it: ASCII letters, digits and `_` only.
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.chars().count() <= max
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// PocketBase's checks of a collection or field name, in its order and with its codes.
fn name_error(s: &str, max: usize) -> Option<Value> {
    if s.is_empty() {
        Some(err("validation_required", "Cannot be blank."))
    } else if s.chars().count() > max {
        let mut e = err(
            "validation_length_out_of_range",
            &format!("The length must be between 1 and {max}."),
        );
        e["params"] = json!({"max": max, "min": 1});
        Some(e)
    } else if !valid_name(s, max) {
        Some(err(
            "validation_match_invalid",
            "Must be in a valid format.",
        ))
    } else if s.contains("_via_") {
        Some(err(
            "validation_found_via",
            "The value cannot contain \"_via_\".",
        ))
    } else {
        None
    }
}

fn parse_rule(
    body: &Map<String, Value>,
    key: &str,
    current: Option<String>,
    errors: &mut Map<String, Value>,
) -> Option<String> {
    match body.get(key) {
        None => current,
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > MAX_RULE_LEN => {
            errors.insert(
                key.into(),
                err("validation_length_too_long", "The rule is too long."),
            );
            current
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.insert(
                key.into(),
                err(
                    "validation_invalid_rule",
                    "Invalid rule. Raw error: must be a string or null.",
                ),
            );
            current
        }
    }
}

/// Builds the collection a create (`old = None`) or update request asks for.
pub fn parse_collection(
    schema: &Schema,
    old: Option<&Collection>,
    body: &Value,
) -> Result<Collection, CoreError> {
    let body = body.as_object().ok_or_else(bad_format)?;
    let failed = if old.is_some() {
        "Failed to update collection."
    } else {
        "Failed to create collection."
    };
    let mut errors = Map::new();
    let now = galley_types::datetime::now_string();

    let kind = match (old, body.get("type")) {
        (Some(o), None) => o.kind,
        (_, None) => CollectionType::Base,
        (_, Some(v)) => {
            serde_json::from_value::<CollectionType>(v.clone()).map_err(|_| bad_format())?
        }
    };
    if let Some(o) = old {
        if o.kind != kind {
            errors.insert(
                "type".into(),
                err(
                    "validation_collection_type_change",
                    "Collection type cannot be changed.",
                ),
            );
        }
    }
    if kind == CollectionType::View {
        return Err(CoreError::BadRequest {
            message: failed.into(),
            data: json!({"type": err("validation_invalid_value", "View collections are not supported yet.")}),
        });
    }

    let name = match body.get("name") {
        Some(Value::String(s)) => s.clone(),
        None if old.is_some() => old.map(|o| o.name.clone()).unwrap_or_default(),
        Some(_) => return Err(bad_format()),
        None => String::new(),
    };
    if let Some(e) = name_error(&name, 255) {
        errors.insert("name".into(), e);
    } else if RESERVED_COLLECTION_NAMES.contains(&name.to_lowercase().as_str())
        || schema
            .find(&name)
            .is_some_and(|c| old.is_none_or(|o| o.id != c.id))
    {
        errors.insert(
            "name".into(),
            err(
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
            ),
        );
    }
    if let Some(o) = old {
        if o.system && o.name != name {
            errors.insert(
                "name".into(),
                err(
                    "validation_system_collection",
                    "System collection names cannot be changed.",
                ),
            );
        }
    }

    let id = match (old, body.get("id")) {
        (Some(o), _) => o.id.clone(),
        (None, Some(Value::String(s))) if !s.is_empty() => {
            if !valid_name(s, 100) {
                errors.insert(
                    "id".into(),
                    err("validation_invalid_format", "Must be in a valid format."),
                );
            } else if schema.by_id(s).is_some() {
                errors.insert(
                    "id".into(),
                    err("validation_not_unique", "Value must be unique."),
                );
            }
            s.clone()
        }
        (None, _) => {
            let mut id = galley_types::ids::collection_id(kind.as_str(), &name);
            let mut n = 2;
            while schema.by_id(&id).is_some() {
                id = format!(
                    "{}{n}",
                    galley_types::ids::collection_id(kind.as_str(), &name)
                );
                n += 1;
            }
            id
        }
    };

    // Fields: a submitted list replaces the whole list.
    let mut fields: Vec<Field> = match body.get("fields") {
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let mut f: Field =
                    serde_json::from_value(item.clone()).map_err(|_| bad_format())?;
                if f.id.is_empty() {
                    f.id = galley_types::ids::field_id(f.type_name(), &f.name);
                }
                out.push(f);
            }
            out
        }
        Some(Value::Null) | None => old.map(|o| o.fields.clone()).unwrap_or_default(),
        Some(_) => return Err(bad_format()),
    };
    if let Err(e) = ensure_system_fields(kind, old, &mut fields) {
        errors.insert("fields".into(), e);
    } else {
        let mut field_errors = Map::new();
        for (i, f) in fields.iter().enumerate() {
            if let Some(e) = validate_field(schema, old, &fields, i, f, &id) {
                field_errors.insert(i.to_string(), e);
            }
        }
        if !field_errors.is_empty() {
            errors.insert("fields".into(), Value::Object(field_errors));
        }
    }

    let rules_base = old.map(|o| o.rules.clone()).unwrap_or_default();
    let mut rules = rules_base.clone();
    rules.list_rule = parse_rule(body, "listRule", rules_base.list_rule.clone(), &mut errors);
    rules.view_rule = parse_rule(body, "viewRule", rules_base.view_rule.clone(), &mut errors);
    rules.create_rule = parse_rule(
        body,
        "createRule",
        rules_base.create_rule.clone(),
        &mut errors,
    );
    rules.update_rule = parse_rule(
        body,
        "updateRule",
        rules_base.update_rule.clone(),
        &mut errors,
    );
    rules.delete_rule = parse_rule(
        body,
        "deleteRule",
        rules_base.delete_rule.clone(),
        &mut errors,
    );
    if old.is_some_and(|o| o.system) && rules != rules_base {
        errors.insert(
            "listRule".into(),
            err(
                "validation_system_collection",
                "System collection rules cannot be changed.",
            ),
        );
    }

    let raw_indexes: Vec<String> = match body.get("indexes") {
        Some(v @ Value::Array(_)) => serde_json::from_value(v.clone()).map_err(|_| bad_format())?,
        Some(Value::Null) | None => old.map(|o| o.indexes.clone()).unwrap_or_default(),
        Some(_) => return Err(bad_format()),
    };
    let mut raw_indexes = raw_indexes;
    if kind == CollectionType::Auth {
        crate::auth::options::ensure_indexes(&id, &name, &mut raw_indexes);
    }
    let indexes = match normalize_indexes(&name, &fields, &raw_indexes) {
        Ok(v) => v,
        Err((i, msg)) => {
            errors.insert(
                "indexes".into(),
                json!({i.to_string(): err("validation_invalid_index_expression", &format!("Invalid index expression: {msg}."))}),
            );
            vec![]
        }
    };
    // Index names share one namespace per database.
    for s in &indexes {
        if let Ok(idx) = galley_types::index::IndexDef::parse(s) {
            let taken = schema.all().iter().filter(|c| c.id != id).any(|c| {
                c.indexes
                    .iter()
                    .filter_map(|x| galley_types::index::IndexDef::parse(x).ok())
                    .any(|x| x.name.eq_ignore_ascii_case(&idx.name))
            });
            if taken {
                errors.insert(
                    "indexes".into(),
                    err(
                        "validation_index_name_exists",
                        &format!(
                            "Index name {:?} is already used by another collection.",
                            idx.name
                        ),
                    ),
                );
            }
        }
    }

    let mut auth = old.and_then(|o| o.auth.clone());
    if kind == CollectionType::Auth {
        let mut a = auth.take().unwrap_or_else(|| AuthOptions::new(432000));
        if let Some(v) = body.get("authRule") {
            a.auth_rule = v.as_str().map(str::to_owned);
        }
        if let Some(v) = body.get("manageRule") {
            a.manage_rule = v.as_str().map(str::to_owned);
        }
        if let Some(v) = body.get("passwordAuth") {
            if let Ok(p) = serde_json::from_value(v.clone()) {
                a.password_auth = p;
            }
        }
        for (key, tok) in [
            ("authToken", &mut a.auth_token),
            ("passwordResetToken", &mut a.password_reset_token),
            ("emailChangeToken", &mut a.email_change_token),
            ("verificationToken", &mut a.verification_token),
            ("fileToken", &mut a.file_token),
        ] {
            if let Some(d) = body
                .get(key)
                .and_then(|t| t.get("duration"))
                .and_then(Value::as_i64)
            {
                if !(10..=94_670_856).contains(&d) {
                    errors.insert(key.into(), json!({"duration": err("validation_invalid_value", "Must be between 10 and 94670856 seconds.")}));
                }
                tok.duration = d;
            }
        }
        crate::auth::options::apply(&mut a, body, &mut errors);
        if name == crate::identity::SUPERUSERS {
            crate::auth::options::superusers(&mut a, &mut errors);
        }
        auth = Some(a);
    }

    let col = Collection {
        id,
        name,
        kind,
        system: old.is_some_and(|o| o.system),
        fields,
        indexes,
        rules,
        auth,
        view_query: None,
        created: old
            .map(|o| o.created.clone())
            .unwrap_or_else(|| now.clone()),
        updated: now,
    };
    let rules_to_check = [
        ("listRule", &col.rules.list_rule),
        ("viewRule", &col.rules.view_rule),
        ("createRule", &col.rules.create_rule),
        ("updateRule", &col.rules.update_rule),
        ("deleteRule", &col.rules.delete_rule),
    ];
    for (key, rule) in rules_to_check {
        if let Some(r) = rule {
            if errors.contains_key(key) || errors.contains_key("fields") {
                continue;
            }
            if let Err(e) = crate::rules::validate(schema, &col, r) {
                errors.insert(
                    key.into(),
                    err(
                        "validation_invalid_rule",
                        &format!("Invalid rule. Raw error: {e}."),
                    ),
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(CoreError::BadRequest {
            message: failed.into(),
            data: Value::Object(errors),
        });
    }
    Ok(col)
}

/// Puts back the system fields a collection of this type must have and, as PocketBase,
/// their flags whatever was submitted (`password` and `tokenKey` hidden and required,
/// `email` visible: its visibility is per record). A system name taken by a field of
/// another type, or a system field renamed, is the `fields` error.
fn ensure_system_fields(
    kind: CollectionType,
    old: Option<&Collection>,
    fields: &mut Vec<Field>,
) -> Result<(), Value> {
    if let Some(o) = old {
        let renamed = o
            .fields
            .iter()
            .filter(|f| f.system)
            .any(|of| fields.iter().any(|f| f.id == of.id && f.name != of.name));
        if renamed {
            return Err(err(
                "validation_system_field_change",
                "System fields cannot be deleted or renamed.",
            ));
        }
    }
    match fields.iter_mut().find(|f| f.name == "id") {
        Some(f) => {
            f.system = true;
            f.hidden = false;
        }
        None => fields.insert(0, id_field()),
    }
    if kind != CollectionType::Auth {
        return Ok(());
    }
    for sys in auth_system_fields() {
        let Some(f) = fields.iter_mut().find(|f| f.name == sys.name) else {
            // As PocketBase: missing system fields go after the submitted ones (the stored
            // one when there is one, so its id stays).
            let stored = old.and_then(|o| o.field(&sys.name)).filter(|f| f.system);
            fields.push(stored.cloned().unwrap_or(sys));
            continue;
        };
        if f.type_name() != sys.type_name() {
            return Err(err(
                &format!("validation_missing_{}_field", sys.name),
                &format!("System \"{}\" field is required.", sys.name),
            ));
        }
        f.system = true;
        if matches!(sys.name.as_str(), "password" | "tokenKey" | "email") {
            f.hidden = sys.hidden;
        }
        match &mut f.kind {
            FieldKind::Password(o) => o.required = true,
            FieldKind::Text(o) if sys.name == "tokenKey" => o.required = true,
            _ => {}
        }
    }
    Ok(())
}

fn validate_field(
    schema: &Schema,
    old: Option<&Collection>,
    all: &[Field],
    i: usize,
    f: &Field,
    col_id: &str,
) -> Option<Value> {
    let mut e = Map::new();
    if let Some(ne) = name_error(&f.name, 100) {
        e.insert("name".into(), ne);
    } else if RESERVED_FIELD_NAMES.contains(&f.name.to_lowercase().as_str()) {
        e.insert(
            "name".into(),
            err("validation_not_in_invalid", "Must not be in list."),
        );
    } else if all
        .iter()
        .take(i)
        .any(|g| g.name.eq_ignore_ascii_case(&f.name))
    {
        // As PocketBase: the later of two clashing names is the one reported.
        let mut d = err(
            "validation_duplicated_field_name",
            &format!("Duplicated or invalid field name {}.", f.name),
        );
        d["params"] = json!({"fieldName": f.name});
        e.insert("name".into(), d);
    }
    if all.iter().enumerate().any(|(j, g)| j < i && g.id == f.id) {
        e.insert(
            "id".into(),
            err("validation_duplicated_field_id", "Duplicated field id."),
        );
    }
    if f.help.chars().count() > 300 {
        e.insert(
            "help".into(),
            err(
                "validation_length_too_long",
                "Must be no more than 300 characters.",
            ),
        );
    }
    if f.name == "id" && !f.is_primary_key() {
        e.insert(
            "primaryKey".into(),
            err(
                "validation_invalid_value",
                "The id field must be the text primary key.",
            ),
        );
    }
    if f.is_primary_key() && f.name != "id" {
        e.insert(
            "primaryKey".into(),
            err(
                "validation_invalid_value",
                "Only the id field can be the primary key.",
            ),
        );
    }
    if let Some(prev) = old.and_then(|o| o.fields.iter().find(|g| g.id == f.id)) {
        if prev.type_name() != f.type_name() {
            e.insert(
                "type".into(),
                err(
                    "validation_field_type_change",
                    "The field type cannot be changed.",
                ),
            );
        }
        if let (Some(a), Some(b)) = (prev.relation(), f.relation()) {
            if a.collection_id != b.collection_id {
                e.insert(
                    "collectionId".into(),
                    err(
                        "validation_field_old_collection_id",
                        "The relation collection cannot be changed.",
                    ),
                );
            }
        }
    }
    match &f.kind {
        FieldKind::Text(o) => {
            if !o.pattern.is_empty() && regex::Regex::new(&o.pattern).is_err() {
                e.insert(
                    "pattern".into(),
                    err("validation_invalid_regex", "Invalid regular expression."),
                );
            }
            if !o.autogenerate_pattern.is_empty()
                && galley_types::ids::generate_from_pattern(&o.autogenerate_pattern).is_none()
            {
                e.insert(
                    "autogeneratePattern".into(),
                    err(
                        "validation_invalid_regex",
                        "Unsupported autogenerate pattern.",
                    ),
                );
            }
            if o.min < 0 || (o.max > 0 && o.min > o.max) {
                e.insert(
                    "min".into(),
                    err("validation_invalid_value", "Must be between 0 and max."),
                );
            }
        }
        FieldKind::Number(o) => {
            if let (Some(a), Some(b)) = (o.min, o.max) {
                if a > b {
                    e.insert(
                        "max".into(),
                        err("validation_invalid_value", "Must be no less than min."),
                    );
                }
            }
        }
        FieldKind::Select(o) => {
            if o.values.is_empty() {
                e.insert(
                    "values".into(),
                    err("validation_required", "Cannot be blank."),
                );
            }
            if o.max_select < 0 || o.max_select as usize > o.values.len().max(1) {
                e.insert(
                    "maxSelect".into(),
                    err(
                        "validation_invalid_value",
                        "Must be between 0 and the number of values.",
                    ),
                );
            }
        }
        FieldKind::Relation(o) => {
            let target = if o.collection_id == col_id {
                Some(())
            } else {
                schema.by_id(&o.collection_id).map(|_| ())
            };
            if target.is_none() {
                e.insert(
                    "collectionId".into(),
                    err(
                        "validation_missing_collection",
                        "The relation collection doesn't exist.",
                    ),
                );
            }
            if o.min_select < 0
                || o.max_select < 0
                || (o.max_select > 0 && o.min_select > o.max_select.max(1))
            {
                e.insert(
                    "minSelect".into(),
                    err(
                        "validation_invalid_value",
                        "Must be no more than maxSelect.",
                    ),
                );
            }
        }
        FieldKind::Autodate(o) if !o.on_create && !o.on_update => {
            e.insert(
                "onCreate".into(),
                err(
                    "validation_required",
                    "At least one of onCreate or onUpdate is required.",
                ),
            );
        }
        FieldKind::File(o) => {
            let thumb = regex::Regex::new(r"^(\d+)x(\d+)(t|b|f)?$").ok();
            for t in &o.thumbs {
                let ok = thumb.as_ref().is_some_and(|re| re.is_match(t))
                    && !t.starts_with("0x0")
                    // Galley bounds thumbnail sides (a huge one would be a memory bomb).
                    && t
                        .split(['x', 't', 'b', 'f'])
                        .filter(|p| !p.is_empty())
                        .all(|p| p.parse::<u32>().is_ok_and(|n| n <= galley_files::thumbs::MAX_SIDE));
                if !ok {
                    e.insert(
                        "thumbs".into(),
                        err("validation_invalid_thumb_format", "Invalid thumb format."),
                    );
                }
            }
        }
        _ => {}
    }
    if e.is_empty() {
        None
    } else {
        Some(Value::Object(e))
    }
}

/// Validates an index list against the fields and returns the canonical strings.
pub(crate) fn normalize_indexes(
    table: &str,
    fields: &[Field],
    raw: &[String],
) -> Result<Vec<String>, (usize, String)> {
    let mut out = Vec::new();
    let mut names = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let idx = IndexDef::parse(s).map_err(|e| (i, e))?;
        for col in idx
            .columns
            .iter()
            .map(|c| c.name.clone())
            .chain(idx.where_columns())
        {
            if !fields.iter().any(|f| f.name == col) {
                return Err((i, format!("unknown column {col:?}")));
            }
        }
        if names.contains(&idx.name.to_lowercase()) {
            return Err((i, "duplicated index name".into()));
        }
        names.push(idx.name.to_lowercase());
        out.push(idx.display(table));
    }
    Ok(out)
}
