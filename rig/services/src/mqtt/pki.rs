//! A test PKI made at run time (rcgen) and written to a directory as PEM files.
//!
//! Two profiles, after `mqtt-baseline.md` §6.2 and §6.3:
//!
//! - [`PkiProfile::Protocol`]: P-256 everywhere, one root CA that signs the
//!   broker's certificate and every client certificate; the broker sends its
//!   leaf only. This is the "protocol-only" MQTT variant, whose certificates
//!   are as compact as the LwM2M side's.
//! - [`PkiProfile::AwsLike`]: RSA-2048 keys, client certificates signed by the
//!   root, and a 3-certificate server chain (leaf, intermediate, root) padded
//!   with a non-critical private extension so that the TLS Certificate message
//!   is about the size AWS IoT sends (4-4.5 KB).
//!
//! Every profile also makes a client certificate from a second, unrelated CA
//! (`other-ca-client`) for negative tests.
//!
//! Client certificates carry the client id as their Common Name and **no
//! Organization**: rumqttd with `verify-client-cert` treats the Organization as
//! a tenant id and rewrites client ids (`tenant.client`), which would split the
//! device and the platform into different tenants.
//!
//! Files are world-readable (0644) on purpose: Debian's mosquitto drops to user
//! `mosquitto` when started as root and must still read its key. These are
//! throwaway test keys.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};

use super::MqttError;

/// Which keys and chain shapes the PKI uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkiProfile {
    /// P-256 keys, leaf-only server chain (protocol-only variant, §6.3).
    Protocol,
    /// RSA-2048 keys, 3-certificate server chain of AWS-like size (§6.2).
    AwsLike,
}

/// One client's credentials: PEM text and the files holding it.
#[derive(Debug, Clone)]
pub struct ClientCreds {
    /// The client id (the certificate's Common Name).
    pub client_id: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Where the certificate is written.
    pub cert_path: PathBuf,
    /// Where the key is written.
    pub key_path: PathBuf,
}

/// A CA, a broker certificate and client certificates, written to a directory.
pub struct TestPki {
    dir: PathBuf,
    profile: PkiProfile,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    clients: BTreeMap<String, ClientCreds>,
    other_ca_client: ClientCreds,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir)
            .field("profile", &self.profile)
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Size of the padding extension in each certificate of the AWS-like server
/// chain (root included). With it the three certificates are about 1.4 KB each, so the TLS
/// Certificate message lands near 4.3 KB.
const AWS_CHAIN_PADDING: usize = 620;

/// A private-enterprise OID for the padding extension (non-critical; ignored by verifiers).
const PADDING_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1, 1];

impl TestPki {
    /// Makes a new PKI in `dir` (created if missing) with client certificates
    /// for `client_ids`.
    ///
    /// Files: `ca.pem`, `server.pem` (the chain the broker sends), `server.key`,
    /// `<client_id>.pem` / `<client_id>.key` per client, `other-ca.pem`,
    /// `other-ca-client.pem` / `other-ca-client.key`.
    pub fn generate(
        dir: impl AsRef<Path>,
        profile: PkiProfile,
        client_ids: &[&str],
    ) -> Result<TestPki, MqttError> {
        Self::generate_for(dir, profile, client_ids, &[])
    }

    /// As [`TestPki::generate`], with more names in the broker certificate
    /// (e.g. the services address of the simulated network, `10.77.0.1`,
    /// which a device checks when it connects to that IP).
    pub fn generate_for(
        dir: impl AsRef<Path>,
        profile: PkiProfile,
        client_ids: &[&str],
        extra_sans: &[String],
    ) -> Result<TestPki, MqttError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| MqttError::file(&dir, e))?;

        // Root CA.
        let ca_key = new_key(profile, "CA key")?;
        let root_pad = match profile {
            PkiProfile::Protocol => 0,
            PkiProfile::AwsLike => AWS_CHAIN_PADDING,
        };
        let ca_params = ca_cert_params("rig test root CA", root_pad)?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| MqttError::pki("root CA", e))?;
        let ca_pem = ca_cert.pem();
        write(&dir.join("ca.pem"), &ca_pem)?;
        let issuer = Issuer::new(ca_params, ca_key);

        // Broker certificate (and chain).
        let server_key = new_key(profile, "server key")?;
        let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        sans.extend(
            extra_sans
                .iter()
                .filter(|n| !sans.contains(n))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let mut server_params =
            CertificateParams::new(sans).map_err(|e| MqttError::pki("server certificate", e))?;
        server_params.distinguished_name = named("rig broker");
        server_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_chain = match profile {
            PkiProfile::Protocol => {
                let leaf = server_params
                    .signed_by(&server_key, &issuer)
                    .map_err(|e| MqttError::pki("server certificate", e))?;
                leaf.pem()
            }
            PkiProfile::AwsLike => {
                let int_key = new_key(profile, "intermediate key")?;
                let int_params = ca_cert_params("rig test intermediate CA", AWS_CHAIN_PADDING)?;
                let int_cert = int_params
                    .signed_by(&int_key, &issuer)
                    .map_err(|e| MqttError::pki("intermediate CA", e))?;
                let int_issuer = Issuer::new(int_params, int_key);
                server_params
                    .custom_extensions
                    .push(padding(AWS_CHAIN_PADDING));
                let leaf = server_params
                    .signed_by(&server_key, &int_issuer)
                    .map_err(|e| MqttError::pki("server certificate", e))?;
                format!("{}{}{}", leaf.pem(), int_cert.pem(), ca_pem)
            }
        };
        write(&dir.join("server.pem"), &server_chain)?;
        write(&dir.join("server.key"), &server_key.serialize_pem())?;

        // A client of another CA, for negative tests.
        let other_key = new_key(profile, "other CA key")?;
        let other_params = ca_cert_params("unrelated CA", 0)?;
        let other_cert = other_params
            .self_signed(&other_key)
            .map_err(|e| MqttError::pki("other CA", e))?;
        write(&dir.join("other-ca.pem"), &other_cert.pem())?;
        let other_issuer = Issuer::new(other_params, other_key);
        let other_ca_client = issue(&dir, profile, &other_issuer, "other-ca-client")?;

        let mut pki = TestPki {
            dir,
            profile,
            ca_pem,
            issuer,
            clients: BTreeMap::new(),
            other_ca_client,
        };
        for id in client_ids {
            pki.issue_client(id)?;
        }
        Ok(pki)
    }

    /// Issues (or returns the existing) certificate for `client_id`, signed by the root CA.
    pub fn issue_client(&mut self, client_id: &str) -> Result<ClientCreds, MqttError> {
        if let Some(c) = self.clients.get(client_id) {
            return Ok(c.clone());
        }
        if client_id.is_empty() || client_id.contains(['/', '\\', '+', '#', '$']) {
            return Err(MqttError::pki(
                format!("client certificate `{client_id}`"),
                "a client id must be non-empty and free of / \\ + # $",
            ));
        }
        let creds = issue(&self.dir, self.profile, &self.issuer, client_id)?;
        self.clients.insert(client_id.to_string(), creds.clone());
        Ok(creds)
    }

    /// The credentials of a client issued before.
    pub fn client(&self, client_id: &str) -> Option<&ClientCreds> {
        self.clients.get(client_id)
    }

    /// A client certificate signed by an unrelated CA (must be refused).
    pub fn other_ca_client(&self) -> &ClientCreds {
        &self.other_ca_client
    }

    /// The profile.
    pub fn profile(&self) -> PkiProfile {
        self.profile
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root CA certificate, PEM (clients trust it; brokers verify clients with it).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `server.pem`: the chain the broker sends (leaf first).
    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// `server.key`.
    pub fn server_key_path(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The broker-side TLS files, as a [`super::BrokerTls`].
    pub fn broker_tls(&self) -> super::BrokerTls {
        super::BrokerTls {
            ca: self.ca_path(),
            cert: self.server_cert_path(),
            key: self.server_key_path(),
        }
    }
}

fn alg(profile: PkiProfile) -> &'static SignatureAlgorithm {
    match profile {
        PkiProfile::Protocol => &rcgen::PKCS_ECDSA_P256_SHA256,
        PkiProfile::AwsLike => &rcgen::PKCS_RSA_SHA256,
    }
}

fn new_key(profile: PkiProfile, what: &str) -> Result<KeyPair, MqttError> {
    KeyPair::generate_for(alg(profile)).map_err(|e| MqttError::pki(what, e))
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn padding(len: usize) -> CustomExtension {
    // An OCTET STRING's content is opaque; fill it with a readable pattern.
    let content: Vec<u8> = b"rig-aws-like-chain-padding-"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect();
    let mut der = vec![0x04];
    der.extend(der_len(content.len()));
    der.extend(content);
    CustomExtension::from_oid_content(PADDING_OID, der)
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else if len < 0x100 {
        vec![0x81, len as u8]
    } else {
        vec![0x82, (len >> 8) as u8, len as u8]
    }
}

fn ca_cert_params(cn: &str, pad: usize) -> Result<CertificateParams, MqttError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| MqttError::pki(cn, e))?;
    p.distinguished_name = named(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    if pad > 0 {
        p.custom_extensions.push(padding(pad));
    }
    Ok(p)
}

fn issue(
    dir: &Path,
    profile: PkiProfile,
    issuer: &Issuer<'static, KeyPair>,
    client_id: &str,
) -> Result<ClientCreds, MqttError> {
    let what = format!("client certificate `{client_id}`");
    let key = new_key(profile, &what)?;
    let mut p =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| MqttError::pki(&what, e))?;
    p.distinguished_name = named(client_id);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p
        .signed_by(&key, issuer)
        .map_err(|e| MqttError::pki(&what, e))?;
    let creds = ClientCreds {
        client_id: client_id.to_string(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_path: dir.join(format!("{client_id}.pem")),
        key_path: dir.join(format!("{client_id}.key")),
    };
    write(&creds.cert_path, &creds.cert_pem)?;
    write(&creds.key_path, &creds.key_pem)?;
    Ok(creds)
}

fn write(path: &Path, text: &str) -> Result<(), MqttError> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).map_err(|e| MqttError::file(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(|e| MqttError::file(path, e))
}
