//! The admin API over HTTPS: reqwest with rustls, trusting only the
//! context's CA bundle, the token sent as a bearer header (never logged,
//! never in an error). Every answer other than a success becomes a
//! [`CliError`] here, in one place.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, header};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::context_file::Target;
use super::error::{CliError, Problem, file_error};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Long enough for a rotation that makes a key in an HSM or KMS.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// What `GET /api/v1/certificates/{serial}` and the authority chain answer
/// as PEM.
const PEM_CHAIN: &str = "application/pem-certificate-chain";

pub struct Client {
    http: reqwest::Client,
    server: url::Url,
    token: SecretString,
}

/// A successful answer, its body as it came.
pub struct Answer {
    pub body: bytes::Bytes,
    server: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, CliError> {
        self.parse()
    }

    /// The body read into one of the CLI's own wire types.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, CliError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CliError::BadAnswer { server: self.server.clone(), reason: format!("body: {e}") })
    }

    /// The body as text (PEM).
    pub fn text(&self) -> Result<String, CliError> {
        String::from_utf8(self.body.to_vec())
            .map_err(|_| CliError::BadAnswer { server: self.server.clone(), reason: "body is not UTF-8".into() })
    }
}

impl Client {
    pub fn new(target: Target) -> Result<Self, CliError> {
        // reqwest is built with rustls and no provider of its own.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let bundle = &target.ca_bundle;
        let pem = std::fs::read(bundle).map_err(|e| file_error(bundle, e))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| file_error(bundle, e))?;
        if roots.is_empty() {
            return Err(file_error(bundle, "holds no PEM certificate"));
        }
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .tls_built_in_root_certs(false)
            // The admin API never redirects; a redirect is not followed
            // with the token, and shows as an unexpected answer.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("tessera-admin/", env!("CARGO_PKG_VERSION")));
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let http = builder.build().map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
        Ok(Self { http, server: target.server, token: target.token })
    }

    /// The server this client speaks to, for messages.
    pub fn server(&self) -> &url::Url {
        &self.server
    }

    /// `GET` with query parameters, JSON expected.
    pub async fn get(&self, segments: &[impl AsRef<str>], query: &[(&str, String)]) -> Result<Answer, CliError> {
        self.send(self.request(Method::GET, segments)?.query(query)).await
    }

    /// `GET` of a PEM chain.
    pub async fn get_pem(&self, segments: &[impl AsRef<str>]) -> Result<Answer, CliError> {
        self.send(self.request(Method::GET, segments)?.header(header::ACCEPT, PEM_CHAIN)).await
    }

    /// `POST` with a JSON body, or none for the routes that take none.
    pub async fn post(
        &self,
        segments: &[impl AsRef<str>],
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, CliError> {
        let request = self.request(Method::POST, segments)?;
        self.send(match body {
            Some(body) => request.json(body),
            None => request,
        })
        .await
    }

    pub async fn put(&self, segments: &[impl AsRef<str>], body: &serde_json::Value) -> Result<Answer, CliError> {
        self.send(self.request(Method::PUT, segments)?.json(body)).await
    }

    pub async fn delete(&self, segments: &[impl AsRef<str>]) -> Result<Answer, CliError> {
        self.send(self.request(Method::DELETE, segments)?).await
    }

    /// A request to the server's URL plus `segments`, each percent-encoded:
    /// a serial, name or kid typed by someone cannot reach another route.
    fn request(&self, method: Method, segments: &[impl AsRef<str>]) -> Result<RequestBuilder, CliError> {
        let mut url = self.server.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| CliError::Usage(format!("server {} cannot take a path", self.server)))?;
            path.pop_if_empty();
            for segment in segments.iter().map(AsRef::as_ref) {
                // The URL library drops `.` and `..`, which would name another route.
                if segment.is_empty() || matches!(segment, "." | "..") {
                    return Err(CliError::Usage(format!("{segment:?} is not a name or id")));
                }
                path.push(segment);
            }
        }
        Ok(self.http.request(method, url).bearer_auth(self.token.expose_secret()))
    }

    async fn send(&self, request: RequestBuilder) -> Result<Answer, CliError> {
        let server = self.server.to_string();
        let response =
            request.send().await.map_err(|e| CliError::Unreachable { server: server.clone(), reason: chain(&e) })?;
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body =
            response.bytes().await.map_err(|e| CliError::Unreachable { server: server.clone(), reason: chain(&e) })?;
        if status.is_success() {
            return Ok(Answer { body, server });
        }
        match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) if problem.status == status.as_u16() => {
                Err(CliError::Problem(Problem { retry_after, ..problem }))
            }
            _ => Err(CliError::BadAnswer { server, reason: format!("HTTP {status} without a problem document") }),
        }
    }
}

/// An error with its causes, which say what failed (refused connection,
/// unknown issuer, expired certificate...).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
