//! What the hook files registered: routes, middlewares, event handlers, cron jobs and
//! migrations. Handlers are kept as source text (PocketBase's model: a handler runs in
//! whichever engine is free, so it sees only its own scope and what it `require()`s).

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// Names of PocketBase's JavaScript API (plugins/jsvm types.d.ts) that Galley does not
/// offer; calling one at load fails with its name.
pub(crate) const UNSUPPORTED: &[&str] = &[
    // Not yet offered: the execute events, the mailer events.
    "onRecordCreateExecute",
    "onRecordUpdateExecute",
    "onRecordDeleteExecute",
    "onBackupCreate",
    "onBackupRestore",
    "onCollectionCreate",
    "onCollectionUpdate",
    "onCollectionDelete",
    "onCollectionValidate",
    "onCollectionCreateRequest",
    "onCollectionUpdateRequest",
    "onCollectionDeleteRequest",
    "onCollectionsListRequest",
    "onCollectionViewRequest",
    "onCollectionsImportRequest",
    "onCollectionAfterCreateSuccess",
    "onCollectionAfterUpdateSuccess",
    "onCollectionAfterDeleteSuccess",
    "onCollectionAfterCreateError",
    "onCollectionAfterUpdateError",
    "onCollectionAfterDeleteError",
    "onModelCreate",
    "onModelUpdate",
    "onModelDelete",
    "onModelValidate",
    "onModelCreateExecute",
    "onModelUpdateExecute",
    "onModelDeleteExecute",
    "onModelAfterCreateSuccess",
    "onModelAfterUpdateSuccess",
    "onModelAfterDeleteSuccess",
    "onModelAfterCreateError",
    "onModelAfterUpdateError",
    "onModelAfterDeleteError",
    "onRecordAfterCreateError",
    "onRecordAfterUpdateError",
    "onRecordAfterDeleteError",
    "onRecordAuthWithPasswordRequest",
    "onRecordAuthWithOAuth2Request",
    "onRecordAuthWithOTPRequest",
    "onRecordAuthRefreshRequest",
    "onRecordRequestPasswordResetRequest",
    "onRecordConfirmPasswordResetRequest",
    "onRecordRequestVerificationRequest",
    "onRecordConfirmVerificationRequest",
    "onRecordRequestEmailChangeRequest",
    "onRecordConfirmEmailChangeRequest",
    "onRecordRequestOTPRequest",
    "onMailerRecordPasswordResetSend",
    "onMailerRecordVerificationSend",
    "onMailerRecordEmailChangeSend",
    "onMailerRecordOTPSend",
    "onMailerRecordAuthAlertSend",
    "onRealtimeConnectRequest",
    "onRealtimeSubscribeRequest",
    "onRealtimeMessageSend",
    "onFileDownloadRequest",
    "onFileTokenRequest",
    "onSettingsListRequest",
    "onSettingsUpdateRequest",
    "onSettingsReload",
    "onBatchRequest",
    "$filesystem",
    "$mails",
    "$template",
    "$filepath",
    "$dbx",
    "$tokens",
    "$inflector",
    "$mailer",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum Registration {
    Route {
        method: String,
        path: String,
        src: String,
        mws: Vec<MwSpec>,
    },
    Use {
        mws: Vec<MwSpec>,
    },
    Event {
        event: String,
        src: String,
        tags: Vec<String>,
    },
    Migration {
        up: Option<String>,
        down: Option<String>,
    },
    Cron {
        id: String,
        expr: String,
        src: String,
    },
    CronRemove {
        id: String,
    },
    Job {
        #[serde(rename = "jobKind")]
        job_kind: String,
        src: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum MwSpec {
    Fn { src: String },
    Api { name: String, args: Vec<Value> },
}

/// A registered middleware as the engine receives it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum Mw {
    Fn { id: usize },
    Api { name: String, args: Vec<Value> },
}

#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub handler: usize,
    /// routerUse's middlewares then the route's, as JSON for the engine.
    pub mws: String,
}

#[derive(Debug, Clone)]
pub(crate) struct EventHandler {
    pub id: usize,
    /// Collection names or ids; empty: every collection.
    pub tags: Vec<String>,
}

/// A `cronAdd` entry.
#[derive(Debug, Clone)]
pub(crate) struct Cron {
    pub id: String,
    pub expression: String,
    pub handler: usize,
}

/// Everything one load of the hook files produced.
#[derive(Default)]
pub struct Registry {
    pub(crate) sources: Vec<String>,
    pub(crate) routes: Vec<Route>,
    pub(crate) events: HashMap<String, Vec<EventHandler>>,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) crons: Vec<Cron>,
    /// `cronRemove` ids (of built-in entries or earlier files).
    pub(crate) cron_removes: Vec<String>,
    /// `jobAdd` handlers by job kind.
    pub(crate) jobs: HashMap<String, usize>,
    matchers: HashMap<String, matchit::Router<usize>>,
}

impl Registry {
    fn source(&mut self, src: String) -> usize {
        self.sources.push(src);
        self.sources.len() - 1
    }

    fn mws(&mut self, specs: Vec<MwSpec>) -> Vec<Mw> {
        specs
            .into_iter()
            .map(|m| match m {
                MwSpec::Fn { src } => Mw::Fn {
                    id: self.source(src),
                },
                MwSpec::Api { name, args } => Mw::Api { name, args },
            })
            .collect()
    }

    /// Adds one file's registrations, in order.
    pub(crate) fn add(&mut self, regs: Vec<Registration>) -> Result<(), String> {
        let mut uses: Vec<Mw> = Vec::new();
        for r in regs {
            match r {
                Registration::Use { mws } => {
                    let m = self.mws(mws);
                    uses.extend(m);
                }
                Registration::Route {
                    method,
                    path,
                    src,
                    mws,
                } => {
                    let handler = self.source(src);
                    let mut all = uses.clone();
                    all.extend(self.mws(mws));
                    let pattern = matchit_pattern(&path)?;
                    let index = self.routes.len();
                    self.matchers
                        .entry(method.clone())
                        .or_default()
                        .insert(pattern, index)
                        .map_err(|e| format!("routerAdd({method:?}, {path:?}): {e}"))?;
                    self.routes.push(Route {
                        handler,
                        mws: serde_json::to_string(&all).unwrap_or_else(|_| "[]".into()),
                    });
                }
                Registration::Migration { .. } => {
                    return Err(
                        "migrate() belongs in a file of the migrations folder (--migrations-dir)"
                            .into(),
                    )
                }
                Registration::Cron { id, expr, src } => {
                    galley_jobs::cron::Schedule::parse(&expr)
                        .map_err(|e| format!("cronAdd({id:?}, {expr:?}): {e}"))?;
                    let handler = self.source(src);
                    self.crons.retain(|c| c.id != id);
                    self.crons.push(Cron {
                        id,
                        expression: expr,
                        handler,
                    });
                }
                Registration::CronRemove { id } => {
                    self.crons.retain(|c| c.id != id);
                    self.cron_removes.push(id);
                }
                Registration::Job {
                    job_kind: kind,
                    src,
                } => {
                    if kind.is_empty()
                        || kind == galley_core::mail::JOB_KIND
                        || kind.starts_with("webhook")
                    {
                        return Err(format!(
                            "jobAdd({kind:?}): the kind is empty or Galley's own"
                        ));
                    }
                    let handler = self.source(src);
                    self.jobs.insert(kind, handler);
                }
                Registration::Event { event, src, tags } => {
                    let id = self.source(src);
                    self.events
                        .entry(event)
                        .or_default()
                        .push(EventHandler { id, tags });
                }
            }
        }
        Ok(())
    }

    /// The route for `method` and `path`, with its path parameters.
    pub(crate) fn route(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&Route, Vec<(String, String)>)> {
        let m = self
            .matchers
            .get(method)
            .or_else(|| self.matchers.get("*"))?;
        let found = m.at(path).ok()?;
        let params = found
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some((&self.routes[*found.value], params))
    }

    pub fn has_routes(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Handlers of `event` for `collection` (by name or id), in registration order.
    pub(crate) fn handlers(&self, event: &str, name: &str, id: &str) -> Vec<usize> {
        self.events
            .get(event)
            .map(|hs| {
                hs.iter()
                    .filter(|h| h.tags.is_empty() || h.tags.iter().any(|t| t == name || t == id))
                    .map(|h| h.id)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn listens(&self, event: &str) -> bool {
        self.events.get(event).is_some_and(|h| !h.is_empty())
    }
}

/// PocketBase's route patterns (`/a/{name}`, `/files/{path...}`, a trailing `{$}`) in
/// matchit's syntax.
fn matchit_pattern(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("route path {path:?} must start with /"));
    }
    let path = path.strip_suffix("{$}").unwrap_or(path);
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            return Err(format!("route path {path:?}: unclosed {{"));
        };
        let name = &rest[i + 1..i + j];
        match name.strip_suffix("...") {
            Some(n) => out.push_str(&format!("{{*{n}}}")),
            None => out.push_str(&format!("{{{name}}}")),
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
