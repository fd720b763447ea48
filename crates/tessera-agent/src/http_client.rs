//! The HTTP client instant-acme sends its requests through: reqwest,
//! trusting exactly the certificates of `--ca-bundle`, with timeouts so a
//! server that accepts connections but never answers cannot stall renewal.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use axum::http::{Request, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use super::error::AgentError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An ACME transport over reqwest.
#[derive(Debug, Clone)]
pub struct AcmeHttp(reqwest::Client);

impl AcmeHttp {
    /// A client that trusts every certificate in the PEM bundle and nothing else.
    pub fn trusting(bundle: &Path) -> Result<Self, AgentError> {
        let fail = |reason: String| AgentError::CaBundle { path: bundle.to_path_buf(), reason };
        let pem = std::fs::read(bundle).map_err(|e| fail(e.to_string()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| fail(e.to_string()))?;
        if roots.is_empty() {
            return Err(fail("it holds no PEM certificate".into()));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("tessera-agent/", env!("CARGO_PKG_VERSION")));
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        builder.build().map(Self).map_err(|e| fail(e.to_string()))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(|e| instant_acme::Error::Other(e.into()))?.to_bytes();
            let request = reqwest::Request::try_from(Request::from_parts(parts, reqwest::Body::from(body)))
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let response = client.execute(request).await.map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(Response::<reqwest::Body>::from(response)))
        })
    }
}
