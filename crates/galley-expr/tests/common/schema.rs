// The test schema shared by the tests and the fuzz targets (included with `include!`).
// posts(title, views, published, labels multi-select, tags multi-relation, author → users,
// meta json, pubdate date, loc geoPoint, secretdoc hidden), tags(title, owner → users),
// users (auth, listRule `id = @request.auth.id`), comments(post → posts, body),
// profiles(user → users, unique), post_stats(total, listRule null).

#[allow(dead_code)]
pub fn test_schema() -> galley_types::Schema {
    use galley_types::collection::{auth_system_fields, autodate_fields, id_field, AuthOptions};
    use galley_types::field::{
        DateOptions, FieldKind, JsonOptions, NumberOptions, RelationOptions, RequiredOnly,
        SelectOptions, TextOptions,
    };
    use galley_types::{Collection, CollectionType, Field, Rules};

    fn text(name: &str) -> Field {
        Field::new(name, FieldKind::Text(TextOptions::default()))
    }
    fn rel(name: &str, target: &str, max: i64) -> Field {
        Field::new(
            name,
            FieldKind::Relation(RelationOptions {
                collection_id: target.into(),
                max_select: max,
                ..Default::default()
            }),
        )
    }
    fn coll(id: &str, name: &str, kind: CollectionType, fields: Vec<Field>, list: Option<&str>) -> Collection {
        let mut all = vec![id_field()];
        all.extend(fields);
        all.extend(autodate_fields());
        Collection {
            id: id.into(),
            name: name.into(),
            kind,
            system: false,
            fields: all,
            indexes: vec![],
            rules: Rules {
                list_rule: list.map(str::to_owned),
                view_rule: list.map(str::to_owned),
                ..Default::default()
            },
            auth: (kind == CollectionType::Auth).then(|| AuthOptions::new(3600)),
            view_query: None,
            created: String::new(),
            updated: String::new(),
        }
    }
    let mut user_fields = auth_system_fields();
    user_fields.push(text("name"));
    user_fields.push(text("secret").hidden());
    user_fields.push(rel("friends", "pbc_users", 10));
    let users = coll("pbc_users", "users", CollectionType::Auth, user_fields, Some("id = @request.auth.id"));
    let tags = coll(
        "pbc_tags",
        "tags",
        CollectionType::Base,
        vec![text("title"), rel("owner", "pbc_users", 1)],
        Some(""),
    );
    let posts = coll(
        "pbc_posts",
        "posts",
        CollectionType::Base,
        vec![
            text("title"),
            Field::new("views", FieldKind::Number(NumberOptions::default())),
            Field::new("published", FieldKind::Bool(RequiredOnly::default())),
            Field::new(
                "labels",
                FieldKind::Select(SelectOptions {
                    max_select: 3,
                    values: vec!["a".into(), "b".into(), "c".into()],
                    required: false,
                }),
            ),
            Field::new(
                "status",
                FieldKind::Select(SelectOptions {
                    max_select: 1,
                    values: vec!["draft".into(), "live".into()],
                    required: false,
                }),
            ),
            rel("tags", "pbc_tags", 5),
            rel("author", "pbc_users", 1),
            Field::new("meta", FieldKind::Json(JsonOptions::default())),
            Field::new("pubdate", FieldKind::Date(DateOptions::default())),
            Field::new("loc", FieldKind::GeoPoint(RequiredOnly::default())),
            text("secretdoc").hidden(),
        ],
        Some(""),
    );
    let comments = coll(
        "pbc_comments",
        "comments",
        CollectionType::Base,
        vec![rel("post", "pbc_posts", 1), text("body")],
        Some(""),
    );
    let mut profiles = coll(
        "pbc_profiles",
        "profiles",
        CollectionType::Base,
        vec![rel("user", "pbc_users", 1), text("bio")],
        Some(""),
    );
    profiles
        .indexes
        .push("CREATE UNIQUE INDEX `idx_user` ON `profiles` (`user`)".into());
    let stats = coll(
        "pbc_stats",
        "post_stats",
        CollectionType::Base,
        vec![Field::new("total", FieldKind::Number(NumberOptions::default()))],
        None,
    );
    galley_types::Schema::new(1, vec![users, tags, posts, comments, profiles, stats])
}
