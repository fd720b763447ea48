//! http-01 (RFC 8555 §8.3): serves `/.well-known/acme-challenge/{token}`
//! with the key authorization as `application/octet-stream`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AbortOnDrop;

type Answers = Arc<Mutex<HashMap<String, String>>>;

/// A plain HTTP listener answering the order's http-01 tokens.
pub(super) struct Http01Server {
    answers: Answers,
    _task: AbortOnDrop,
}

impl Http01Server {
    pub(super) async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let answers = Answers::default();
        let app = axum::Router::new()
            .route("/.well-known/acme-challenge/{token}", axum::routing::get(answer))
            .with_state(answers.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "http-01 listener stopped");
            }
        });
        tracing::debug!(%addr, "http-01 listener open");
        Ok(Self { answers, _task: AbortOnDrop(task) })
    }

    pub(super) fn answer(&self, token: &str, key_authorization: &str) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(token.to_owned(), key_authorization.to_owned());
        }
    }
}

async fn answer(State(answers): State<Answers>, Path(token): Path<String>) -> Response {
    let found = answers.lock().ok().and_then(|a| a.get(&token).cloned());
    match found {
        Some(body) => {
            tracing::debug!(%token, "answering http-01");
            ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "unknown token").into_response(),
    }
}
