//! Client certificates on the public HTTPS listener, for the Vault API's
//! certificate login: the handshake asks for one without requiring it,
//! checks only that the client holds the key of the certificate it sent,
//! and hands the chain to handlers as a request extension. Whether the
//! certificate is trusted is the login's decision (`vault::cert`), made
//! against trust anchors that change with CA rotations and answered in
//! Vault's form with an audit event; a handshake failure could do neither.
//!
//! Nothing but that login reads the extension: no other route treats a
//! client certificate as an identity.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use axum::Extension;
use axum_server::accept::Accept;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio_rustls::server::TlsStream;
use tower::Layer;

/// The certificate chain a client sent in the TLS handshake, leaf first;
/// absent when it sent none.
#[derive(Debug, Clone, Default)]
pub struct ClientCertificates(Option<Arc<[CertificateDer<'static>]>>);

impl ClientCertificates {
    /// The leaf and what the client sent after it, if it sent a certificate.
    pub fn chain(&self) -> Option<(&CertificateDer<'static>, &[CertificateDer<'static>])> {
        self.0.as_deref().and_then(<[_]>::split_first)
    }
}

/// Asks for a client certificate and takes any, once the client proved it
/// holds its key (the handshake signature is still verified).
#[derive(Debug)]
pub struct RequestClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCertificate {
    pub fn new() -> Arc<Self> {
        let algorithms = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        Arc::new(Self { algorithms })
    }
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hints: clients (Go's among them) then send the certificate they
    /// were given whichever CA issued it, and the login says why it refuses.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Wraps a TLS acceptor so every request of a connection carries the
/// [`ClientCertificates`] its handshake received.
#[derive(Debug, Clone)]
pub struct WithClientCertificates<A>(pub A);

type Accepted<T, S> = io::Result<(TlsStream<T>, S)>;

impl<A, I, S, T> Accept<I, S> for WithClientCertificates<A>
where
    A: Accept<I, S, Stream = TlsStream<T>>,
    A::Future: Send + 'static,
    A::Service: Send + 'static,
    T: Send + 'static,
{
    type Stream = TlsStream<T>;
    type Service = <Extension<ClientCertificates> as Layer<A::Service>>::Service;
    type Future = Pin<Box<dyn Future<Output = Accepted<T, Self::Service>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let chain = stream.get_ref().1.peer_certificates().filter(|chain| !chain.is_empty());
            let certificates =
                ClientCertificates(chain.map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect()));
            Ok((stream, Extension(certificates).layer(service)))
        })
    }
}
