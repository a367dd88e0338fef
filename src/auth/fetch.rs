//! Reading JSON documents from authorization servers: their metadata and their keys (RFC 8414,
//! RFC 7517), over HTTPS with the system's roots or `auth.ca_file` (plain HTTP only where the
//! config allows it: a loopback authorization server).
//!
//! Every fetch is bounded: `auth.http_timeout` for the whole exchange, [`MAX_DOCUMENT`] bytes,
//! no redirects (a metadata or key URL that moved is an operator's fix, not something to follow
//! on a client's behalf).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The largest metadata or key set accepted.
pub const MAX_DOCUMENT: usize = 1 << 20;

/// Why a document could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not a URL")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach it: {0}")]
    Connect(String),
    #[error("it answered {0}")]
    Status(StatusCode),
    #[error("its answer is not the JSON expected: {0}")]
    Json(String),
    #[error("its answer is larger than {MAX_DOCUMENT} bytes or broke off: {0}")]
    Body(String),
}

/// Why the HTTPS client could not be set up (a config error: it names the file).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA certificates in {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot load the system's CA certificates: {0}")]
    System(String),
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// A client for authorization servers.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Fetcher {
    /// Trusting the CAs in `ca_file` (PEM), or the system's when it is empty.
    pub fn new(ca_file: &str, timeout: Duration) -> Result<Fetcher, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        if ca_file.is_empty() {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                if let Some(e) = found.errors.first() {
                    return Err(TlsError::System(e.to_string()));
                }
            }
            roots.add_parsable_certificates(found.certs);
        } else {
            let ca_error = |reason: String| TlsError::CaFile {
                path: ca_file.to_owned(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no certificate in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
        }
        let tls = builder.with_root_certificates(roots).with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// GETs `url` and reads its JSON body as `T`.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let body = self.get(url).await?;
        serde_json::from_slice(&body).map_err(|e| FetchError::Json(e.to_string()))
    }

    async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
        let request = Request::get(uri)
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| FetchError::Url(url.to_owned()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Connect(format!("{e:#}")))?;
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status(response.status()));
            }
            let limited = Limited::new(response.into_body(), MAX_DOCUMENT);
            limited
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| FetchError::Body(e.to_string()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }
}
