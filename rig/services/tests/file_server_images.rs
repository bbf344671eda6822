//! The seeded images: the committed manifest equals what the generator makes
//! now, and the written files hash to the manifest's values.

#![allow(clippy::unwrap_used, clippy::panic)]

use rig_services::file_server::images::{
    FirmwareImage, PackageHeader, STUDY_SIZE, hex, manifest_toml, parse_manifest, standard_images,
    write_images,
};
use sha2::{Digest, Sha256};

const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/firmware/manifest.toml"
);

#[test]
fn committed_manifest_matches_the_generator() {
    let committed = std::fs::read_to_string(MANIFEST).unwrap();
    let now = manifest_toml(&standard_images());
    assert_eq!(
        committed, now,
        "fixtures/firmware/manifest.toml is stale: rerun the gen-firmware example"
    );
    let entries = parse_manifest(MANIFEST, &committed).unwrap();
    assert_eq!(entries.len(), standard_images().len());
    let study = entries.iter().find(|e| e.name == "fw-1mib").unwrap();
    assert_eq!(study.size, STUDY_SIZE);
}

#[test]
fn written_files_hash_to_the_manifest_values() {
    let dir = tempfile::tempdir().unwrap();
    // The oversized image is 64 MiB: write only the 1 MiB-and-smaller ones here
    // (its hash is covered by the manifest comparison above).
    let small: Vec<_> = standard_images()
        .into_iter()
        .filter(|n| n.image.len() <= STUDY_SIZE)
        .collect();
    write_images(dir.path(), &small).unwrap();
    let manifest = std::fs::read_to_string(dir.path().join("manifest.toml")).unwrap();
    for e in parse_manifest("written", &manifest).unwrap() {
        let bytes = std::fs::read(dir.path().join(&e.file)).unwrap();
        assert_eq!(bytes.len() as u64, e.size, "{}", e.name);
        assert_eq!(hex(&Sha256::digest(&bytes)), e.sha256, "{}", e.name);
        match e.variant.as_str() {
            "valid" | "install-fails" => {
                let h = PackageHeader::parse(&bytes).unwrap();
                assert_eq!(
                    hex(&Sha256::digest(&bytes[64..])),
                    e.payload_sha256_in_header
                );
                assert_eq!(hex(&h.payload_sha256), e.payload_sha256_in_header);
                assert_eq!(h.version, e.version);
            }
            "corrupt" => {
                let h = PackageHeader::parse(&bytes).unwrap();
                assert_ne!(hex(&Sha256::digest(&bytes[64..])), hex(&h.payload_sha256));
            }
            "unsupported-type" => assert!(PackageHeader::parse(&bytes).is_err()),
            other => panic!("unknown variant {other}"),
        }
    }
}

#[test]
fn malformed_manifest_names_file_and_line() {
    let err = parse_manifest("bad.toml", "[[image]]\nname = 3\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("bad.toml:"), "{text}");
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn generate_is_deterministic_and_seed_sensitive() {
    let a = FirmwareImage::generate(42, 10_000).to_vec();
    let b = FirmwareImage::generate(42, 10_000).to_vec();
    let c = FirmwareImage::generate(43, 10_000).to_vec();
    assert_eq!(a, b);
    assert_ne!(a[64..], c[64..]);
}
