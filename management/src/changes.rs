//! The routes that change a running process: `POST /plugins/reload?plugin=NAME`,
//! `GET|PUT /plugins/config?plugin=NAME` and `POST /config/reload`, answered in the shapes of
//! `hkp-plugin-core` (`plugin`, `status`, `message`, `timestamp`). The binary does the work
//! ([`Changes`]); the token check of [`crate::server`] guards every one but the GET.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::plugins::now;

/// What became of a change (or of a request for a configuration).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: fields to add to the answer (`message`, `version`, `config`, ...).
    Applied(Value),
    /// Refused before anything changed: each error names file or body, line, column, key.
    Invalid(Vec<String>),
    /// Validated, but the new instance could not start: the previous one runs on.
    RolledBack(String),
    /// No such plugin, or not one that changes alone: why, and what there is.
    Unknown(String),
}

/// What a binary can change while it runs.
pub trait Changes: Send + Sync + 'static {
    /// Reloads one plugin from the configuration files (drain, swap, roll back on failure).
    fn reload_plugin<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Outcome>;
    /// The plugin's effective configuration, secrets redacted, with its version.
    fn config_of<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Outcome>;
    /// Applies `body` (YAML or JSON) as the plugin's new configuration.
    fn put_config<'a>(&'a self, name: &'a str, body: &'a str) -> BoxFuture<'a, Outcome>;
    /// Reloads the whole configuration (as SIGHUP does).
    fn reload_config<'a>(&'a self, trigger: &'a str) -> BoxFuture<'a, Outcome>;
}

#[derive(Deserialize)]
struct Plugin {
    plugin: Option<String>,
}

/// The change routes, for [`crate::Server::bind`].
pub fn routes(changes: Arc<dyn Changes>) -> Router {
    Router::new()
        .route("/plugins/reload", post(reload))
        .route("/plugins/config", get(config).put(put))
        .route("/config/reload", post(reload_all))
        .with_state(changes)
}

type Shared = State<Arc<dyn Changes>>;

async fn reload(State(changes): Shared, Query(q): Query<Plugin>) -> Response {
    let Some(name) = q.plugin else {
        return missing();
    };
    let outcome = changes.reload_plugin(&name).await;
    answer(
        Some(&name),
        outcome,
        "plugin reloaded with graceful draining",
    )
}

async fn config(State(changes): Shared, Query(q): Query<Plugin>) -> Response {
    let Some(name) = q.plugin else {
        return missing();
    };
    let outcome = changes.config_of(&name).await;
    answer(Some(&name), outcome, "")
}

async fn put(State(changes): Shared, Query(q): Query<Plugin>, body: String) -> Response {
    let Some(name) = q.plugin else {
        return missing();
    };
    let outcome = changes.put_config(&name, &body).await;
    answer(
        Some(&name),
        outcome,
        "configuration updated and plugin reloaded",
    )
}

async fn reload_all(State(changes): Shared) -> Response {
    let outcome = changes.reload_config("POST /config/reload").await;
    answer(None, outcome, "configuration reloaded")
}

fn missing() -> Response {
    let body = json!({
        "status": "error",
        "message": "which plugin? add ?plugin=NAME (GET /plugins/list names them)",
        "timestamp": now(),
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The answer to `outcome`: 200 success, 400 invalid (with every error), 404 unknown, 500
/// rolled back.
fn answer(plugin: Option<&str>, outcome: Outcome, done: &str) -> Response {
    let (status, mut body) = match outcome {
        Outcome::Applied(fields) => {
            let mut body = json!({"status": "success"});
            if !done.is_empty() {
                body["message"] = done.into();
            }
            if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
                body.extend(fields);
            }
            (StatusCode::OK, body)
        }
        Outcome::Invalid(errors) => (
            StatusCode::BAD_REQUEST,
            json!({
                "status": "invalid",
                "message": errors.first().cloned().unwrap_or_default(),
                "errors": errors,
            }),
        ),
        Outcome::RolledBack(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "status": "rolled_back",
                "message": "the new instance could not start; the previous one runs on",
                "error": error,
            }),
        ),
        Outcome::Unknown(message) => (
            StatusCode::NOT_FOUND,
            json!({"status": "error", "message": message}),
        ),
    };
    if let Some(plugin) = plugin {
        body["plugin"] = plugin.into();
    }
    body["timestamp"] = now().into();
    (status, axum::Json(body)).into_response()
}
