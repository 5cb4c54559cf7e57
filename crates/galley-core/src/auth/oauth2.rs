//! `auth-with-oauth2` and the `@oauth2` realtime redirect.
//!
//! Which record a provider's user becomes, in order: the one linked to it in
//! `_externalAuths`; the caller's own record (linking another provider to a logged-in
//! account); the record with the same email, but only when the provider vouches for that
//! email (PocketBase links by any email, which lets whoever controls an unverified address
//! at some provider take over the account that owns it: DESIGN §16); else a new record,
//! created through the collection's create rule like any sign-up. The link, the new record
//! and any change to an existing one are written in one job.

use super::{auth_collection, respond, Method};
use crate::app::App;
use crate::context::{Caller, RequestMeta};
use crate::error::CoreError;
use crate::identity::SUPERUSERS;
use crate::records::write;
use crate::rows::{find_by, rec_id, rec_str};
use galley_auth::oauth2::{AuthUser, Provider};
use galley_sql::{Sql, SqlValue};
use galley_store::{Conn, ConnExt, StoreError};
use galley_types::{Collection, FieldError, FieldErrors, FieldKind};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The realtime topic the SDK's popup flow subscribes to.
pub const TOPIC: &str = "@oauth2";

const LOAD_FAILED: &str = "An error occurred while loading the submitted data.";
const FAILED: &str = "Failed to authenticate.";

/// The body of `auth-with-oauth2`.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub provider: String,
    pub code: String,
    pub code_verifier: String,
    pub redirect_url: String,
    pub create_data: Map<String, Value>,
}

/// Whether OAuth2 sign-in is on for `col`: never for superusers, even if an older version
/// stored it enabled.
pub fn enabled(col: &Collection) -> bool {
    col.name != SUPERUSERS && col.auth.as_ref().is_some_and(|a| a.oauth2.enabled)
}

/// The providers `auth-methods` lists, each with a fresh state and PKCE pair.
pub async fn provider_infos(app: &App, col: &Collection) -> Vec<Value> {
    let Some(a) = col.auth.as_ref().filter(|_| enabled(col)) else {
        return vec![];
    };
    let mut out = Vec::new();
    for cfg in &a.oauth2.providers {
        let name = cfg.get("name").and_then(Value::as_str).unwrap_or_default();
        let p = match app.auth.oauth.provider(&a.oauth2.providers, name).await {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(provider = name, error = %e, "OAuth2 provider left out of auth-methods");
                continue;
            }
        };
        let state = galley_types::ids::secret(30);
        let (verifier, challenge, method) = if p.pkce {
            let v = galley_types::ids::secret(43);
            let c = galley_auth::oauth2::s256(&v);
            (v, c, "S256")
        } else {
            (String::new(), String::new(), "")
        };
        let url = galley_auth::oauth2::auth_url(&p, &state, p.pkce.then_some(challenge.as_str()));
        out.push(json!({
            "name": p.name,
            "displayName": p.display_name,
            // PocketBase sends its SVG logos here; Galley ships none.
            "logo": "",
            "state": state,
            "authURL": url,
            "authUrl": url,
            "codeVerifier": verifier,
            "codeChallenge": challenge,
            "codeChallengeMethod": method,
        }));
    }
    out
}

fn validate(col: &Collection, form: &Form) -> Result<(), CoreError> {
    let providers = col
        .auth
        .as_ref()
        .map(|a| a.oauth2.providers.clone())
        .unwrap_or_default();
    let mut errors = FieldErrors::new();
    if form.provider.is_empty() {
        errors.add("provider", FieldError::required());
    } else if !providers
        .iter()
        .any(|p| p.get("name").and_then(Value::as_str) == Some(form.provider.as_str()))
    {
        errors.add(
            "provider",
            FieldError::new(
                "validation_invalid_provider",
                format!(
                    "Provider with name {} is missing or is not enabled.",
                    form.provider
                ),
            )
            .with_params(json!({"name": form.provider})),
        );
    }
    if form.code.is_empty() {
        errors.add("code", FieldError::required());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CoreError::validation(LOAD_FAILED, errors))
    }
}

/// Where the provider's user lands.
enum Target {
    Linked(Map<String, Value>),
    LoggedIn(Map<String, Value>),
    ByEmail(Map<String, Value>),
    New,
}

/// `POST /api/collections/{c}/auth-with-oauth2`.
pub async fn auth_with_oauth2(
    app: &App,
    col_name: &str,
    form: Form,
    mfa_id: Option<&str>,
    requester: &Caller,
) -> Result<super::AuthResult, CoreError> {
    let col = auth_collection(app, col_name)?;
    let auth = col
        .auth
        .clone()
        .ok_or_else(|| CoreError::Internal("auth options missing".into()))?;
    if !enabled(&col) {
        return Err(CoreError::Forbidden(
            "The collection is not configured to allow OAuth2 authentication.".into(),
        ));
    }
    validate(&col, &form)?;
    let provider = app
        .auth
        .oauth
        .provider(&auth.oauth2.providers, &form.provider)
        .await?
        .ok_or_else(|| CoreError::Internal("Missing or invalid provider config.".into()))?;
    let mut user = app
        .auth
        .oauth
        .exchange(
            &provider,
            &form.code,
            &form.code_verifier,
            &form.redirect_url,
        )
        .await?;
    if let Some(name) = take_redirect_name(app, &form.code) {
        if user.name.is_empty() {
            user.name = name;
        }
    }
    let logged_in = match requester {
        Caller::Record { collection, record } if collection.id == col.id => Some(rec_id(record)),
        _ => None,
    };
    let (col2, pname, uid, email) = (
        col.clone(),
        provider.name.clone(),
        user.id.clone(),
        user.email.clone(),
    );
    let logged_in2 = logged_in.clone();
    let target = app
        .store
        .read(move |c: &mut dyn Conn| -> Result<Target, CoreError> {
            if let Some(rec) = linked_record(c, &col2, &pname, &uid)? {
                return Ok(Target::Linked(rec));
            }
            if let Some(id) = logged_in2 {
                if let Some(r) = find_by(c, &col2, "id", &id, false)? {
                    return Ok(Target::LoggedIn(r));
                }
            }
            if !email.is_empty() {
                if let Some(r) = find_by(c, &col2, "email", &email, true)? {
                    return Ok(Target::ByEmail(r));
                }
            }
            Ok(Target::New)
        })
        .await?;
    let (record, is_new) = match target {
        Target::ByEmail(_) if !user.email_verified => {
            // The address is taken and the provider does not vouch for it.
            tracing::info!(provider = %provider.name, "OAuth2 login refused: the email matches a record but the provider does not verify it");
            return Err(CoreError::bad_request(FAILED));
        }
        Target::New => (
            create(app, &col, &provider, &user, &form, requester).await?,
            true,
        ),
        Target::Linked(r) => (
            update_existing(app, &col, &provider, &user, r, &logged_in, false).await?,
            false,
        ),
        Target::LoggedIn(r) | Target::ByEmail(r) => (
            update_existing(app, &col, &provider, &user, r, &logged_in, true).await?,
            false,
        ),
    };
    let mut out = respond(app, &col, &record, requester, Some(Method::OAuth2), mfa_id).await?;
    out.meta = Some(user.meta(is_new));
    Ok(out)
}

fn linked_record(
    c: &mut dyn Conn,
    col: &Collection,
    provider: &str,
    provider_id: &str,
) -> Result<Option<Map<String, Value>>, CoreError> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT \"recordRef\" FROM \"_externalAuths\" WHERE \"collectionRef\" = ")
        .push_param(col.id.as_str())
        .push(" AND \"provider\" = ")
        .push_param(provider)
        .push(" AND \"providerId\" = ")
        .push_param(provider_id);
    let Some(row) = c.query_sql(&sql)?.into_iter().next() else {
        return Ok(None);
    };
    find_by(c, col, "id", &row.text("recordRef"), false)
}

fn insert_link(
    c: &mut dyn Conn,
    col: &Collection,
    record_id: &str,
    provider: &str,
    provider_id: &str,
) -> Result<(), CoreError> {
    // A link whose record is gone (a collection dropped and made again keeps its id) would
    // block this provider user for good through the unique key.
    let mut stale = Sql::new(c.dialect());
    stale
        .push("DELETE FROM \"_externalAuths\" WHERE \"collectionRef\" = ")
        .push_param(col.id.as_str())
        .push(" AND \"provider\" = ")
        .push_param(provider)
        .push(" AND \"providerId\" = ")
        .push_param(provider_id)
        .push(" AND \"recordRef\" NOT IN (SELECT ")
        .ident("id")
        .push(" FROM ")
        .ident(&col.name)
        .push(")");
    c.execute_sql(&stale)?;
    // Values go in as the system collection's fields store them.
    let def = galley_types::collection::external_auths_collection("");
    let now = galley_types::datetime::now_string();
    let values = [
        ("id", galley_types::ids::record_id()),
        ("collectionRef", col.id.clone()),
        ("recordRef", record_id.to_owned()),
        ("provider", provider.to_owned()),
        ("providerId", provider_id.to_owned()),
        ("created", now.clone()),
        ("updated", now),
    ];
    let d = c.dialect();
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO ").ident(&def.name).push(" (");
    for (i, (k, _)) in values.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(k);
    }
    sql.push(") VALUES (");
    for (i, (k, v)) in values.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        let v = json!(v);
        let value = match def.field(k) {
            Some(f) => f.to_sql(&v, d),
            None => SqlValue::from(v.as_str().unwrap_or_default()),
        };
        sql.push_param(value);
    }
    sql.push(")");
    c.execute_sql(&sql).map_err(|e| match e {
        // This account already has another user of this provider linked.
        StoreError::UniqueViolation { .. } => CoreError::bad_request(FAILED),
        other => other.into(),
    })?;
    Ok(())
}

/// Sets columns of one record (and `updated`).
fn set_columns(
    c: &mut dyn Conn,
    col: &Collection,
    id: &str,
    values: Vec<(&'static str, SqlValue)>,
) -> Result<(), CoreError> {
    if values.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(c.dialect());
    sql.push("UPDATE ").ident(&col.name).push(" SET ");
    for (i, (k, v)) in values.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(k).push(" = ").push_param(v);
    }
    if col.field("updated").is_some() {
        sql.push(", ")
            .ident("updated")
            .push(" = ")
            .push_param(SqlValue::Timestamp(galley_types::datetime::now()));
    }
    sql.push(" WHERE ").ident("id").push(" = ").push_param(id);
    c.execute_sql(&sql).map_err(|e| match e {
        StoreError::UniqueViolation { .. } => CoreError::bad_request(FAILED),
        other => other.into(),
    })?;
    Ok(())
}

/// An existing record: as PocketBase, a record with an unverified email loses its password
/// (someone may have registered with the address before its owner came through the
/// provider), an empty email is filled in, and the email becomes verified when the
/// provider vouches for it; then the link is written if it is new.
async fn update_existing(
    app: &App,
    col: &Arc<Collection>,
    provider: &Provider,
    user: &AuthUser,
    record: Map<String, Value>,
    logged_in: &Option<String>,
    link: bool,
) -> Result<Map<String, Value>, CoreError> {
    let id = rec_id(&record);
    let is_logged_in = logged_in.as_deref() == Some(id.as_str());
    let email = rec_str(&record, "email").to_owned();
    let verified = record.get("verified") == Some(&Value::Bool(true));
    let mut values: Vec<(&'static str, SqlValue)> = vec![];
    if !is_logged_in && !email.is_empty() && !verified && col.name != SUPERUSERS {
        values.push((
            "password",
            format!("!{}", galley_types::ids::secret(30)).into(),
        ));
        values.push(("tokenKey", galley_types::ids::secret(50).into()));
    }
    let mut new_email = email.clone();
    if email.is_empty() && !user.email.is_empty() {
        values.push(("email", user.email.clone().into()));
        new_email = user.email.clone();
    }
    if !verified
        && user.email_verified
        && new_email.eq_ignore_ascii_case(&user.email)
        && col.name != SUPERUSERS
    {
        values.push(("verified", true.into()));
    }
    let (col2, pname, uid) = (col.clone(), provider.name.clone(), user.id.clone());
    app.store
        .write(move |c: &mut dyn Conn| -> Result<_, CoreError> {
            set_columns(c, &col2, &id, values)?;
            if link {
                insert_link(c, &col2, &id, &pname, &uid)?;
            }
            find_by(c, &col2, "id", &id, false)?.ok_or_else(|| CoreError::bad_request(FAILED))
        })
        .await
}

/// A new record from `createData`, the provider's email, a random password and the
/// collection's `mappedFields`, created as the requester through the create rule.
async fn create(
    app: &App,
    col: &Arc<Collection>,
    provider: &Provider,
    user: &AuthUser,
    form: &Form,
    requester: &Caller,
) -> Result<Map<String, Value>, CoreError> {
    if col.name == SUPERUSERS {
        tracing::info!("OAuth2 sign-up refused: superusers cannot sign up with OAuth2");
        return Err(CoreError::bad_request(FAILED));
    }
    let mut payload = form.create_data.clone();
    payload.insert("email".into(), json!(user.email));
    if payload
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        let pw = galley_types::ids::secret(30);
        payload.insert("password".into(), json!(pw));
        payload.insert("passwordConfirm".into(), json!(pw));
    }
    let mapped = col
        .auth
        .as_ref()
        .map(|a| a.oauth2.mapped_fields.clone())
        .unwrap_or(Value::Null);
    let target = |k: &str| {
        mapped
            .get(k)
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty() && col.field(f).is_some())
            .map(str::to_owned)
    };
    let mut username_field = None;
    let mut avatar_file = None;
    for (key, value) in [
        ("id", &user.id),
        ("name", &user.name),
        ("username", &user.username),
        ("avatarURL", &user.avatar_url),
    ] {
        let Some(f) = target(key) else { continue };
        if payload.contains_key(&f) || value.is_empty() {
            continue;
        }
        if let Some(FieldKind::File(o)) = col.field(&f).map(|x| &x.kind) {
            avatar_file = Some((f.clone(), o.max_size));
            continue;
        }
        if key == "username" {
            username_field = Some(f.clone());
        }
        payload.insert(f, json!(value));
    }
    let mut input = crate::records::prepare_input(app, col, payload, true).await?;
    let uploads = match avatar_file {
        Some((field, max)) => avatar_upload(app, provider, &user.avatar_url, &field, max).await,
        None => vec![],
    };
    let staged = if uploads.is_empty() {
        crate::files::Staged::default()
    } else {
        let id = crate::records::id_for_uploads(col, &input);
        input.preset_id = Some(id.clone());
        crate::files::stage(
            app,
            col,
            &id,
            uploads,
            &mut input,
            "Failed to create record.",
        )
        .await?
    };
    let meta = RequestMeta {
        method: "POST".into(),
        context: "oauth2".into(),
        ..Default::default()
    };
    let ctx = app.write_ctx(requester, &meta);
    let events = ctx.events.clone();
    let node = app.node_id.clone();
    let (col2, pname, uid, verified, email) = (
        col.clone(),
        provider.name.clone(),
        user.id.clone(),
        user.email_verified,
        user.email.clone(),
    );
    let record = app
        .store
        .write(move |c: &mut dyn Conn| -> Result<_, CoreError> {
            let mut input = input;
            // A provider username already taken here is left out rather than failing.
            if let Some(f) = &username_field {
                let v = input
                    .values
                    .get(f)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if find_by(c, &col2, f, &v, true)?.is_some() {
                    input.values.remove(f);
                }
            }
            let rec = write::create(c, &ctx, &col2, input)?;
            let id = rec_id(&rec);
            if verified && rec_str(&rec, "email").eq_ignore_ascii_case(&email) {
                set_columns(c, &col2, &id, vec![("verified", true.into())])?;
            }
            insert_link(c, &col2, &id, &pname, &uid)?;
            crate::bus::notify_events(c, &node, &ctx.events)?;
            find_by(c, &col2, "id", &id, false)?.ok_or_else(|| CoreError::bad_request(FAILED))
        })
        .await;
    let record = match record {
        Ok(r) => r,
        Err(e) => {
            staged.discard().await;
            return Err(e);
        }
    };
    app.publish(crate::context::RecordEvent::take(&events))
        .await;
    Ok(record)
}

/// The provider's avatar as an upload for a file field (as PocketBase downloads it); none
/// when it cannot be fetched, which does not stop the sign-up.
async fn avatar_upload(
    app: &App,
    provider: &Provider,
    url: &str,
    field: &str,
    max_size: i64,
) -> Vec<crate::files::Upload> {
    let max = if max_size > 0 {
        max_size as usize
    } else {
        5 << 20
    };
    let Some(bytes) = app.auth.oauth.avatar(provider, url, max).await else {
        tracing::info!(provider = %provider.name, "OAuth2 avatar not downloaded");
        return vec![];
    };
    // File IO off the async threads.
    let (size, head) = (
        bytes.len() as u64,
        bytes.iter().take(512).copied().collect(),
    );
    let (dir, data) = (app.upload_dir(), bytes);
    let spooled = tokio::task::spawn_blocking(move || {
        let mut f = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut f, &data)?;
        Ok::<_, std::io::Error>(f.into_temp_path())
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let temp = match spooled {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "could not spool the OAuth2 avatar");
            return vec![];
        }
    };
    let original_name = galley_auth::oauth2::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "avatar".into());
    vec![crate::files::Upload {
        key: field.to_owned(),
        original_name,
        size,
        head,
        temp,
    }]
}

/// How long a name posted to the redirect waits for its code to be exchanged.
const NAME_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Names kept at once (the map is filled by unauthenticated requests).
const MAX_NAMES: usize = 1000;

/// Keeps the user's name that Apple sends only on the first login, as a `user` JSON
/// (`{"name": {"firstName", "lastName"}}`) posted with the code, for the exchange.
fn keep_redirect_name(app: &App, code: &str, user: &str) {
    if code.is_empty() || code.len() > 1000 || user.is_empty() || user.len() > 10_000 {
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(user) else {
        return;
    };
    let part = |k: &str| {
        v.pointer(&format!("/name/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let name: String = format!("{} {}", part("firstName"), part("lastName"))
        .trim()
        .chars()
        .take(150)
        .collect();
    if name.is_empty() {
        return;
    }
    if let Ok(mut m) = app.auth.redirect_names.lock() {
        m.retain(|_, (at, _)| at.elapsed() < NAME_TTL);
        if m.len() < MAX_NAMES {
            m.insert(code.to_owned(), (std::time::Instant::now(), name));
        }
    }
}

fn take_redirect_name(app: &App, code: &str) -> Option<String> {
    let mut m = app.auth.redirect_names.lock().ok()?;
    m.remove(code)
        .filter(|(at, _)| at.elapsed() < NAME_TTL)
        .map(|(_, n)| n)
}

/// `GET|POST /api/oauth2-redirect`: hands `{state, code[, error]}` to the realtime client
/// whose id is `state`, if it subscribed to `@oauth2` (once). True when the login can go
/// on (a client got a code). `user` is Apple's name payload, if any.
pub fn redirect(app: &App, state: &str, code: &str, error: &str, user: &str) -> bool {
    if state.is_empty() || !app.realtime.take_topic(state, TOPIC) {
        tracing::debug!("OAuth2 redirect without a subscribed realtime client");
        return false;
    }
    if error.is_empty() {
        keep_redirect_name(app, code, user);
    }
    let mut data = json!({"state": state, "code": code});
    if !error.is_empty() {
        data["error"] = json!(error);
    }
    let msg = galley_realtime::Message {
        seq: 0,
        event: TOPIC.into(),
        data: data.to_string(),
    };
    let _ = app.realtime.send(state, msg);
    error.is_empty() && !code.is_empty()
}
