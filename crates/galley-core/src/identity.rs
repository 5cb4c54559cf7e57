//! Who a token names: resolving a token to its [`Caller`] (auth tokens for requests, file
//! tokens for protected downloads), whatever collection issued it.

use crate::app::App;
use crate::context::Caller;
use crate::rows::find_by;
use galley_store::Conn;
use serde_json::Value;

pub const SUPERUSERS: &str = "_superusers";

/// Resolves a token to its caller; anything invalid is a guest, as in PocketBase.
pub async fn authenticate(app: &App, token: &str) -> Caller {
    authenticate_as(app, token, crate::tokens::Kind::Auth).await
}

/// Resolves a token of one kind (auth, or file for protected downloads) to its caller.
pub async fn authenticate_as(app: &App, token: &str, kind: crate::tokens::Kind) -> Caller {
    let Ok(claims) = galley_auth::jwt::unverified_claims(token) else {
        return Caller::Guest;
    };
    if claims.get("type").and_then(Value::as_str) != Some(kind.type_claim()) {
        return Caller::Guest;
    }
    let (Some(id), Some(col_id)) = (
        claims.get("id").and_then(Value::as_str).map(str::to_owned),
        claims.get("collectionId").and_then(Value::as_str),
    ) else {
        return Caller::Guest;
    };
    let Some(col) = app.schema().by_id(col_id).filter(|c| c.is_auth()).cloned() else {
        return Caller::Guest;
    };
    let col2 = col.clone();
    let rec = app
        .store
        .read(move |c: &mut dyn Conn| find_by(c, &col2, "id", &id, false))
        .await;
    let Ok(Some(record)) = rec else {
        return Caller::Guest;
    };
    match crate::tokens::verify(token, kind, &col, &record) {
        Some(_) => Caller::Record {
            collection: col,
            record,
        },
        None => Caller::Guest,
    }
}
