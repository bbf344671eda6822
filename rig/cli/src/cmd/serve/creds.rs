//! The credentials `rig serve` accepts: the bench's `[security]` section (or
//! the test PKI in `fixtures/pki/` without a bench) turned into rig-dtls server
//! configurations, plus the banner lines that tell a user what a device must
//! hold.

use std::path::Path;

use rig_bench::file::SecuritySpec;
use rig_dtls::{
    CredentialStore, PKey, Private, ServerConfig, ServerContext, ServerIdentity, X509,
    load_certificates, load_private_key, public_der, spki_sha256_hex,
};

/// What the secure listeners run with.
pub(super) struct Credentials {
    /// PSK + X.509 + RPK (the certificate's key), for the main `coaps` port.
    pub(super) main: ServerConfig,
    /// RPK with `rpk_server_key`, for the RPK port; `None` (with the reason)
    /// when that key cannot be loaded.
    pub(super) rpk: Result<ServerConfig, String>,
    /// Banner lines, already formatted.
    pub(super) lines: Vec<String>,
}

fn load_store(path: &Path) -> Result<CredentialStore, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the credential store {}: {e}", path.display()))?;
    let store: CredentialStore = toml::from_str(&text)
        .map_err(|e| format!("{}: not a credential store: {e}", path.display()))?;
    store
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(store)
}

fn key_hash(key: &PKey<Private>) -> String {
    public_der(key)
        .map(|d| spki_sha256_hex(&d))
        .unwrap_or_else(|e| format!("? ({e})"))
}

/// The CN and DNS/IP subject alternative names of a certificate, for the banner.
fn cert_names(cert: &X509) -> String {
    let cn: Vec<String> = cert
        .subject_name()
        .entries()
        .filter(|e| e.object().nid().short_name().ok() == Some("CN"))
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
        .collect();
    let mut names: Vec<String> = Vec::new();
    if let Some(sans) = cert.subject_alt_names() {
        for n in sans.iter() {
            if let Some(d) = n.dnsname() {
                names.push(d.to_string());
            } else if let Some(ip) = n.ipaddress() {
                match ip.len() {
                    4 => names.push(format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        names.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    format!(
        "CN {}{}",
        cn.first().map_or("(none)", String::as_str),
        if names.is_empty() {
            String::new()
        } else {
            format!(", names {}", names.join(" "))
        }
    )
}

/// Shortens long identities for the banner (the 128-byte test identity).
fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(24).collect();
        format!("{head}… ({} bytes)", s.len())
    } else {
        s.to_string()
    }
}

/// Loads every file `[security]` names for the server side. An error names
/// the file and what is wrong with it.
pub(super) fn load(sec: &SecuritySpec, source: &str) -> Result<Credentials, String> {
    let store = load_store(&sec.store)?;
    let chain = load_certificates(&sec.server_cert).map_err(|e| e.to_string())?;
    let key = load_private_key(&sec.server_key).map_err(|e| e.to_string())?;
    let client_ca = load_certificates(&sec.ca).map_err(|e| e.to_string())?;
    let mut main = ServerConfig::new(store.clone());
    main.identity = Some(ServerIdentity {
        key: key.clone(),
        chain: chain.clone(),
    });
    main.client_ca = client_ca;
    main.raw_public_keys = true;
    // Build the OpenSSL context once now, so a key that does not match its
    // certificate is reported as such rather than as a bind failure later.
    ServerContext::new(main.clone()).map_err(|e| {
        format!(
            "server credentials {} / {}: {e}",
            sec.server_cert.display(),
            sec.server_key.display()
        )
    })?;
    let rpk_key = load_private_key(&sec.rpk_server_key).map_err(|e| e.to_string());
    let rpk = rpk_key.as_ref().map_err(Clone::clone).and_then(|k| {
        let mut c = ServerConfig::new(store.clone());
        c.identity = Some(ServerIdentity {
            key: k.clone(),
            chain: Vec::new(),
        });
        c.raw_public_keys = true;
        ServerContext::new(c.clone())
            .map(|_| c)
            .map_err(|e| format!("{}: {e}", sec.rpk_server_key.display()))
    });

    let mut lines = vec![
        format!("credentials ({source}):"),
        format!("  store        {}", sec.store.display()),
    ];
    for e in &store.psk {
        let id = match (&e.identity, &e.identity_hex) {
            (Some(id), _) => format!("identity \"{}\"", short(id)),
            (None, Some(hex)) => format!("identity (hex) {}", short(hex)),
            (None, None) => "identity ?".to_string(),
        };
        lines.push(format!("  PSK          {id} → endpoint {}", e.endpoint));
    }
    let cas = load_certificates(&sec.ca)
        .map(|c| c.first().map(cert_names).unwrap_or_default())
        .unwrap_or_default();
    lines.push(format!(
        "  X.509        client certificates that chain to {} ({cas})",
        sec.ca.display()
    ));
    for e in &store.certificate {
        lines.push(format!(
            "  X.509        CN \"{}\" → endpoint {}",
            e.subject_cn, e.endpoint
        ));
    }
    lines.push("  X.509        any other CN → endpoint = the CN".to_string());
    for e in &store.public_key {
        lines.push(format!(
            "  RPK          public key SHA-256 {} → endpoint {}",
            e.spki_sha256, e.endpoint
        ));
    }
    lines.push("  RPK          any other public key is refused".to_string());
    lines.push(format!(
        "  server cert  {} ({}), key {}",
        sec.server_cert.display(),
        chain.first().map(cert_names).unwrap_or_default(),
        sec.server_key.display()
    ));
    lines.push(format!(
        "  server RPK   main coaps port: the certificate's key, SPKI SHA-256 {}",
        key_hash(&key)
    ));
    match &rpk_key {
        Ok(k) => lines.push(format!(
            "  server RPK   RPK port: {}, SPKI SHA-256 {} (devices pin {})",
            sec.rpk_server_key.display(),
            key_hash(k),
            sec.rpk_server_public.display()
        )),
        Err(e) => lines.push(format!("  server RPK   RPK port: not available: {e}")),
    }
    Ok(Credentials { main, rpk, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pki")
    }

    #[test]
    fn test_pki_loads_and_the_banner_names_every_mode() {
        let sec = SecuritySpec::defaults(&pki());
        let c = load(&sec, "test PKI").unwrap();
        assert!(c.rpk.is_ok());
        assert!(!c.main.store.psk.is_empty());
        let text = c.lines.join("\n");
        for want in [
            "identity \"rig-dev-psk\" → endpoint rig-dev-psk",
            "CN \"rig-dev-1\" → endpoint rig-dev-1",
            "→ endpoint rig-dev-3",
            "server.example.com",
            "bytes)",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_names_both_files() {
        let mut sec = SecuritySpec::defaults(&pki());
        sec.server_key = pki().join("client-dev-1.key");
        let err = load(&sec, "x").err().unwrap();
        assert!(
            err.contains("server-chain.pem") && err.contains("client-dev-1.key"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_store_is_named() {
        let mut sec = SecuritySpec::defaults(&pki());
        sec.store = pki().join("nope.toml");
        let err = load(&sec, "x").err().unwrap();
        assert!(err.contains("nope.toml"), "{err}");
    }
}
