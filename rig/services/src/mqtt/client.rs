//! MQTT client options for rig's side and for test devices: mutual TLS 1.2 with rumqttc.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::MqttError;

/// TLS material for one MQTT client, PEM.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The CA the client trusts for the broker's certificate.
    pub ca_pem: String,
    /// The client certificate and key, or `None` to connect without one
    /// (negative tests: the broker must refuse).
    pub client_auth: Option<(String, String)>,
}

impl ClientTls {
    /// TLS material from the PKI's CA and a client's credentials.
    pub fn new(ca_pem: &str, creds: &super::ClientCreds) -> Self {
        ClientTls {
            ca_pem: ca_pem.to_string(),
            client_auth: Some((creds.cert_pem.clone(), creds.key_pem.clone())),
        }
    }
}

/// A rustls client configuration: TLS 1.2 only, trusting `tls.ca_pem`, with the client certificate if given.
pub fn rustls_client_config(tls: &ClientTls) -> Result<rustls::ClientConfig, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| MqttError::Tls(format!("CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| MqttError::Tls(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(MqttError::Tls("the CA PEM holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match &tls.client_auth {
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| MqttError::Tls(format!("client certificate PEM: {e}")))?;
            if certs.is_empty() {
                return Err(MqttError::Tls("the client certificate PEM is empty".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| MqttError::Tls(format!("client key PEM: {e}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| MqttError::Tls(format!("client certificate and key: {e}")))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// rumqttc options for `client_id` connecting to `broker` over mutual TLS 1.2,
/// with the given keepalive and a clean session.
pub fn mqtt_options(
    client_id: &str,
    broker: SocketAddr,
    tls: &ClientTls,
    keepalive: Duration,
) -> Result<rumqttc::MqttOptions, MqttError> {
    let config = rustls_client_config(tls)?;
    let mut opts = rumqttc::MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    opts.set_keep_alive(keepalive);
    opts.set_clean_session(true);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
        Arc::new(config),
    )));
    Ok(opts)
}
