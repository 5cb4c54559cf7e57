#![no_main]
use galley_types::field::*;
use galley_types::Field;
use libfuzzer_sys::fuzz_target;

// Every submitted record value goes through prepare → validate → to_sql → from_sql; none of
// those may panic, whatever JSON arrives.
fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let kinds = [
        FieldKind::Text(TextOptions { pattern: "^[a-z]+$".into(), max: 10, ..Default::default() }),
        FieldKind::Number(NumberOptions { min: Some(-5.0), max: Some(5.0), only_int: true, required: true }),
        FieldKind::Bool(RequiredOnly::default()),
        FieldKind::Email(DomainOptions::default()),
        FieldKind::Url(DomainOptions::default()),
        FieldKind::Editor(EditorOptions::default()),
        FieldKind::Date(DateOptions { min: "2000-01-01".into(), ..Default::default() }),
        FieldKind::Select(SelectOptions { max_select: 2, values: vec!["a".into(), "b".into()], required: false }),
        FieldKind::Json(JsonOptions::default()),
        FieldKind::Relation(RelationOptions { max_select: 3, min_select: 1, ..Default::default() }),
        FieldKind::GeoPoint(RequiredOnly::default()),
    ];
    for k in kinds {
        let f = Field::new("f", k);
        if let Ok(p) = f.prepare(&v) {
            let _ = f.validate(&p);
            for d in [&galley_sql::SQLITE, &galley_sql::POSTGRES] {
                let s = f.to_sql(&p, d);
                let _ = f.from_sql(s);
            }
        }
    }
});
