//! The HTTP server: `GET /healthz`, `/readyz`, `/metrics`, `/plugins/status`, `/plugins/list`,
//! `/plugins/health`; every other method than GET and HEAD needs `Authorization: Bearer
//! <token>` (401 when it is missing or wrong, 403 when no token is configured at all).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hb_pipeline::config::Token;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::plugins::{Plugins, now};

/// Why the process is not ready: one reason each (empty when ready). Called per request.
pub type Probe = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address is taken or not ours.
    #[error("management server: cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct Shared {
    plugins: Arc<Plugins>,
    metrics: Arc<Metrics>,
    ready: Probe,
    token: Option<Token>,
}

/// A bound management server, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
}

impl Server {
    /// Binds `addr` (port 0: a free one, see [`local_addr`](Self::local_addr)); `routes` are
    /// the binary's own (those that change state), behind the same token check.
    pub async fn bind(
        addr: SocketAddr,
        token: Option<Token>,
        plugins: Arc<Plugins>,
        metrics: Arc<Metrics>,
        ready: Probe,
        routes: Router,
    ) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let shared = Shared {
            plugins,
            metrics,
            ready,
            token,
        };
        Ok(Self {
            listener,
            router: router(shared, routes),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown`, on a task of its own; requests in flight then finish.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let addr = self.local_addr();
        tracing::info!(
            addr = %addr.map_or_else(|| "?".into(), |a| a.to_string()),
            "management server listening"
        );
        tokio::spawn(async move {
            let serve = axum::serve(self.listener, self.router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "management server stopped");
            }
        })
    }
}

fn router(shared: Shared, routes: Router) -> Router {
    let own = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/plugins/status", get(status))
        .route("/plugins/list", get(list))
        .route("/plugins/health", get(health))
        .with_state(shared.clone());
    own.merge(routes)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared, authorize))
}

/// Lets GET and HEAD through; anything else needs the token.
async fn authorize(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let Some(token) = &shared.token else {
        return error(
            StatusCode::FORBIDDEN,
            "changes are refused: no management token is configured (management.token_file or \
             HB_MANAGEMENT_TOKEN)",
        );
    };
    let mut refused = match bearer(request.headers()) {
        Some(given) if token.matches(given) => return next.run(request).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "wrong token"),
        None => error(
            StatusCode::UNAUTHORIZED,
            "changes need an Authorization: Bearer <token> header",
        ),
    };
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"hb\""),
    );
    refused
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"status": "error", "message": message, "timestamp": now()});
    (status, axum::Json(body)).into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    let message = format!(
        "no {method} {} here (GET /healthz, /readyz, /metrics, /plugins/status, \
         /plugins/list, /plugins/health, GET|PUT /plugins/config?plugin=NAME, \
         POST /plugins/reload?plugin=NAME, POST /config/reload)",
        uri.path()
    );
    error(StatusCode::NOT_FOUND, &message)
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok", "timestamp": now()})).into_response()
}

async fn readyz(State(shared): State<Shared>) -> Response {
    let mut reasons = (shared.ready)();
    reasons.extend(shared.plugins.unhealthy());
    let (status, word) = if reasons.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    let body = json!({"status": word, "reasons": reasons, "timestamp": now()});
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let text = shared.metrics.encode();
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response()
}

async fn status(State(shared): State<Shared>) -> Response {
    axum::Json(shared.plugins.status()).into_response()
}

async fn list(State(shared): State<Shared>) -> Response {
    axum::Json(shared.plugins.list()).into_response()
}

async fn health(State(shared): State<Shared>) -> Response {
    let (healthy, body) = shared.plugins.health();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn shared(token: Option<&str>) -> Shared {
        Shared {
            plugins: Arc::default(),
            metrics: Arc::new(Metrics::new("test")),
            ready: Arc::new(Vec::new),
            token: token.map(Token::new),
        }
    }

    async fn call(router: &Router, method: Method, auth: Option<&str>) -> StatusCode {
        let mut request = Request::builder().method(method).uri("/change");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let request = request.body(Body::empty()).expect("request");
        router
            .clone()
            .oneshot(request)
            .await
            .expect("response")
            .status()
    }

    #[tokio::test]
    async fn mutations_need_the_token_and_reads_do_not() {
        let routes = || {
            Router::new().route(
                "/change",
                axum::routing::post(|| async { "done" }).get(|| async { "read" }),
            )
        };
        let open = router(shared(None), routes());
        assert_eq!(call(&open, Method::GET, None).await, StatusCode::OK);
        assert_eq!(call(&open, Method::POST, None).await, StatusCode::FORBIDDEN);
        assert_eq!(
            call(&open, Method::POST, Some("Bearer x")).await,
            StatusCode::FORBIDDEN
        );
        let guarded = router(shared(Some("T0k3n")), routes());
        assert_eq!(call(&guarded, Method::GET, None).await, StatusCode::OK);
        assert_eq!(
            call(&guarded, Method::POST, None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&guarded, Method::POST, Some("Bearer nope")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&guarded, Method::POST, Some("T0k3n")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&guarded, Method::POST, Some("Bearer T0k3n")).await,
            StatusCode::OK
        );
        assert_eq!(
            call(&guarded, Method::POST, Some("bearer T0k3n")).await,
            StatusCode::OK
        );
        assert_eq!(
            call(&guarded, Method::POST, Some("Bearer T0k3n2")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&guarded, Method::DELETE, Some("Bearer T0k3n")).await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(&guarded, Method::DELETE, None).await,
            StatusCode::UNAUTHORIZED
        );
    }
}
