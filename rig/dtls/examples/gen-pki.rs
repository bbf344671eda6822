//! Generates the test PKI in `fixtures/pki/` (test-only keys; never use them for anything else).
//!
//! Run from the workspace root: `cargo run -p rig-dtls --example gen-pki -- fixtures/pki`.
//! Keys are fresh on every run (OpenSSL's RNG); names, dates and extensions are fixed.

use std::fs;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn key() -> Res<PKey<Private>> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

struct Issuer<'a> {
    cert: &'a X509,
    key: &'a PKey<Private>,
}

#[derive(Clone, Copy)]
enum Kind {
    Ca,
    Server,
    Client,
}

fn cert(
    serial: u32,
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<&Issuer<'_>>,
    kind: Kind,
    sans: &[&str],
    validity: (&str, &str),
) -> Res<X509> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "rig test PKI (not for production)")?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial: Asn1Integer = BigNum::from_u32(serial)?.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))?;
    b.set_pubkey(key)?;
    let not_before: Asn1Time = Asn1Time::from_str(validity.0)?;
    let not_after: Asn1Time = Asn1Time::from_str(validity.1)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    match kind {
        Kind::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()?,
            )?;
        }
        Kind::Server | Kind::Client => {
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
            let mut eku = ExtendedKeyUsage::new();
            if matches!(kind, Kind::Server) {
                eku.server_auth();
            } else {
                eku.client_auth();
            }
            b.append_extension(eku.build()?)?;
        }
    }
    if !sans.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for s in sans {
            if s.parse::<std::net::IpAddr>().is_ok() {
                san.ip(s);
            } else {
                san.dns(s);
            }
        }
        let ctx = b.x509v3_context(issuer.map(|i| &**i.cert), None);
        let ext = san.build(&ctx)?;
        b.append_extension(ext)?;
    }
    b.sign(issuer.map_or(key, |i| i.key), MessageDigest::sha256())?;
    Ok(b.build())
}

struct Out(PathBuf);

impl Out {
    fn write(&self, name: &str, data: &[u8]) -> Res<()> {
        fs::write(self.0.join(name), data)?;
        Ok(())
    }
    fn pair(&self, stem: &str, cert: &X509, key: &PKey<Private>) -> Res<()> {
        self.write(&format!("{stem}.pem"), &cert.to_pem()?)?;
        self.write(&format!("{stem}.key"), &key.private_key_to_pem_pkcs8()?)
    }
    fn rpk(&self, stem: &str, key: &PKey<Private>) -> Res<String> {
        // EC PRIVATE KEY form: what libcoap's `-M` option reads.
        self.write(&format!("{stem}.key"), &key.ec_key()?.private_key_to_pem()?)?;
        let der = key.public_key_to_der()?;
        self.write(&format!("{stem}.pub.der"), &der)?;
        self.write(&format!("{stem}.pub.pem"), &key.public_key_to_pem()?)?;
        Ok(rig_dtls::spki_sha256_hex(&der))
    }
}

const VALID: (&str, &str) = ("20240101000000Z", "21240101000000Z");
const EXPIRED: (&str, &str) = ("20200101000000Z", "20210101000000Z");

fn main() -> Res<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/pki".into());
    let dir = Path::new(&dir);
    fs::create_dir_all(dir)?;
    let out = Out(dir.to_path_buf());

    let ca_key = key()?;
    let ca = cert(1, "rig test CA", &ca_key, None, Kind::Ca, &[], VALID)?;
    out.pair("ca", &ca, &ca_key)?;
    let issuer = Issuer {
        cert: &ca,
        key: &ca_key,
    };

    let other_key = key()?;
    let other = cert(1, "rig other CA", &other_key, None, Kind::Ca, &[], VALID)?;
    out.pair("other-ca", &other, &other_key)?;
    let other_issuer = Issuer {
        cert: &other,
        key: &other_key,
    };

    let server_sans = ["localhost", "127.0.0.1", "::1", "server.example.com"];
    let k = key()?;
    let c = cert(
        2,
        "localhost",
        &k,
        Some(&issuer),
        Kind::Server,
        &server_sans,
        VALID,
    )?;
    out.pair("server", &c, &k)?;
    let mut chain = c.to_pem()?;
    chain.extend(ca.to_pem()?);
    out.write("server-chain.pem", &chain)?;

    let k = key()?;
    let c = cert(
        3,
        "server-fail.example.com",
        &k,
        Some(&issuer),
        Kind::Server,
        &["server-fail.example.com"],
        VALID,
    )?;
    out.pair("server-wrong-host", &c, &k)?;

    let k = key()?;
    let c = cert(
        4,
        "localhost",
        &k,
        Some(&issuer),
        Kind::Server,
        &server_sans,
        EXPIRED,
    )?;
    out.pair("server-expired", &c, &k)?;

    let k = key()?;
    let c = cert(5, "rig-dev-1", &k, Some(&issuer), Kind::Client, &[], VALID)?;
    out.pair("client-dev-1", &c, &k)?;

    let k = key()?;
    let c = cert(6, "rig-dev-2", &k, Some(&issuer), Kind::Client, &[], VALID)?;
    out.pair("client-dev-2", &c, &k)?;

    let k = key()?;
    let c = cert(
        7,
        "rig-dev-expired",
        &k,
        Some(&issuer),
        Kind::Client,
        &[],
        EXPIRED,
    )?;
    out.pair("client-expired", &c, &k)?;

    let k = key()?;
    let c = cert(
        2,
        "rig-dev-1",
        &k,
        Some(&other_issuer),
        Kind::Client,
        &[],
        VALID,
    )?;
    out.pair("client-other-ca", &c, &k)?;

    let server_rpk = out.rpk("rpk-server", &key()?)?;
    let dev_rpk = out.rpk("rpk-dev-3", &key()?)?;
    let _unknown = out.rpk("rpk-unknown", &key()?)?;

    let mut psk_key = [0u8; 16];
    openssl::rand::rand_bytes(&mut psk_key)?;
    let mut long_key = [0u8; 64];
    openssl::rand::rand_bytes(&mut long_key)?;
    let long_identity = format!("rig-dev-long-{}", "x".repeat(128 - 13));
    let store = format!(
        "# Credential store for the test PKI (generated by gen-pki; test-only keys).\n\
         # Load it with serde into rig_dtls::CredentialStore.\n\n\
         [[psk]]\nendpoint = \"rig-dev-psk\"\nidentity = \"rig-dev-psk\"\nkey_hex = \"{}\"\n\n\
         [[psk]]\nendpoint = \"rig-dev-long\"\nidentity = \"{long_identity}\"\nkey_hex = \"{}\"\n\n\
         [[certificate]]\nendpoint = \"rig-dev-1\"\nsubject_cn = \"rig-dev-1\"\n\n\
         [[public_key]]\nendpoint = \"rig-dev-3\"\nspki_sha256 = \"{dev_rpk}\"\n\n\
         # The server's own raw public key, for clients that pin it.\n\
         # server_spki_sha256 = \"{server_rpk}\"\n",
        rig_dtls::to_hex(&psk_key),
        rig_dtls::to_hex(&long_key),
    );
    out.write("store.toml", store.as_bytes())?;
    println!("wrote the test PKI to {}", dir.display());
    Ok(())
}
