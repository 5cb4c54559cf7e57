//! Submitted forms: urlencoded bodies, and multipart bodies whose file parts are spooled to
//! temporary files by galley-http's `spool_file` (as the API's are), so that an upload never
//! sits whole in memory.

use axum::extract::{FromRequest, Multipart, Request};
use axum::response::{IntoResponse, Response};
use galley_core::files::Upload;
use galley_http::SpoolError;

/// Largest urlencoded form accepted (settings and schemas are small).
const FORM_LIMIT: usize = 4 << 20;
/// Most fields in one form.
const MAX_FIELDS: usize = 2000;

#[derive(Debug, Default)]
pub struct FormData {
    pub pairs: Vec<(String, String)>,
    pub files: Vec<Upload>,
}

impl FormData {
    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn bad(msg: &str) -> Response {
    crate::layout::error_page(axum::http::StatusCode::BAD_REQUEST, msg)
}

impl FromRequest<crate::AppState> for FormData {
    type Rejection = Response;
    async fn from_request(req: Request, app: &crate::AppState) -> Result<Self, Response> {
        let ct = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ct.starts_with("multipart/form-data") {
            let limit = app.config.body_limit as u64 + (64 << 20);
            let declared = req
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(bad("The upload is too large."));
            }
            let mp = Multipart::from_request(req, app)
                .await
                .map_err(|e| e.into_response())?;
            return read_multipart(mp, app, limit).await;
        }
        let body = axum::body::to_bytes(req.into_body(), FORM_LIMIT)
            .await
            .map_err(|_| bad("The form is too large."))?;
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&body).map_err(|_| bad("The form cannot be read."))?;
        if pairs.len() > MAX_FIELDS {
            return Err(bad("The form has too many fields."));
        }
        Ok(FormData {
            pairs,
            files: vec![],
        })
    }
}

/// A form from someone not signed in (sign-in, install, confirm pages): urlencoded only, so
/// that nobody can spool uploads to disk without a session.
pub struct PublicForm(pub FormData);

impl FromRequest<crate::AppState> for PublicForm {
    type Rejection = Response;
    async fn from_request(req: Request, app: &crate::AppState) -> Result<Self, Response> {
        let multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/"));
        if multipart {
            return Err(bad("This form takes no files."));
        }
        Ok(PublicForm(FormData::from_request(req, app).await?))
    }
}

async fn read_multipart(
    mut mp: Multipart,
    app: &crate::AppState,
    limit: u64,
) -> Result<FormData, Response> {
    let mut out = FormData::default();
    let mut total: u64 = 0;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|_| bad("The form cannot be read."))?
    {
        if out.pairs.len() + out.files.len() > MAX_FIELDS {
            return Err(bad("The form has too many fields."));
        }
        let name = field.name().unwrap_or_default().to_owned();
        match field
            .file_name()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
        {
            Some(filename) => {
                let upload = galley_http::spool_file(
                    &app.upload_dir(),
                    name,
                    filename,
                    field,
                    limit - total,
                )
                .await
                .map_err(|e| match e {
                    SpoolError::Read(_) => bad("The upload was cut off."),
                    SpoolError::TooLarge(_) => bad("The upload is too large."),
                    SpoolError::Io(_) => bad("The upload could not be stored."),
                })?;
                total += upload.size;
                // An empty file input: nothing to store (the spooled file goes with it).
                if upload.size > 0 {
                    out.files.push(upload);
                }
            }
            None => {
                let text = field
                    .text()
                    .await
                    .map_err(|_| bad("The form cannot be read."))?;
                total += text.len() as u64;
                if total > limit {
                    return Err(bad("The form is too large."));
                }
                out.pairs.push((name, text));
            }
        }
    }
    Ok(out)
}
