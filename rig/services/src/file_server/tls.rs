//! A throwaway HTTPS identity for the file server, made at run time: a P-256
//! CA and a server certificate naming the host the DUT connects to (the
//! services IP, `localhost`, `127.0.0.1`), written as PEM so the DUT can be
//! told to trust `ca.pem` (the agent's `--fota-ca`).
//!
//! The MQTT test PKI names only `localhost`/`127.0.0.1`, which a DUT reaching
//! the services namespace at `10.77.0.1` would refuse; this one names the
//! address the case actually serves on.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::FileServerError;
use super::http::TlsIdentity;

/// A CA and a server identity signed by it, with the CA's file.
#[derive(Debug, Clone)]
pub struct HttpsPki {
    /// The server's chain and key, for [`super::HttpServerConfig::tls`].
    pub identity: TlsIdentity,
    /// The CA certificate (PEM file) a client must trust.
    pub ca_path: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: String,
}

fn pki_err(what: &str) -> impl FnOnce(rcgen::Error) -> FileServerError {
    let what = what.to_string();
    move |e| FileServerError::Tls(format!("{what}: {e}"))
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

impl HttpsPki {
    /// Makes a CA and a server certificate for `hosts` (IP addresses or DNS
    /// names; `localhost` and `127.0.0.1` are always added) and writes
    /// `fota-ca.pem`, `fota-server.pem` and `fota-server.key` into `dir`.
    pub fn generate(dir: &Path, hosts: &[String]) -> Result<HttpsPki, FileServerError> {
        std::fs::create_dir_all(dir).map_err(|source| FileServerError::Io {
            context: format!("create {}", dir.display()),
            source,
        })?;
        let ca_key = KeyPair::generate().map_err(pki_err("CA key"))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("CA"))?;
        ca.distinguished_name = named("rig firmware server test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(pki_err("CA certificate"))?;
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca, ca_key);

        let mut names: Vec<String> = hosts.to_vec();
        for n in ["localhost", "127.0.0.1"] {
            if !names.iter().any(|h| h == n) {
                names.push(n.to_string());
            }
        }
        let key = KeyPair::generate().map_err(pki_err("server key"))?;
        let mut leaf = CertificateParams::new(names).map_err(pki_err("server certificate"))?;
        leaf.distinguished_name = named("rig firmware server");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf
            .signed_by(&key, &issuer)
            .map_err(pki_err("server certificate"))?;
        let write = |name: &str, text: &str| -> Result<PathBuf, FileServerError> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|source| FileServerError::Io {
                context: format!("write {}", p.display()),
                source,
            })?;
            Ok(p)
        };
        let ca_path = write("fota-ca.pem", &ca_pem)?;
        let identity = TlsIdentity {
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        write("fota-server.pem", &identity.cert_chain_pem)?;
        write("fota-server.key", &identity.key_pem)?;
        Ok(HttpsPki {
            identity,
            ca_path,
            ca_pem,
        })
    }
}
