//! Seeded firmware images: a tiny package format, a documented PRNG, and the
//! standard set of images the FOTA cases use (valid, oversized, corrupt,
//! unsupported type, install-fails).
//!
//! Nothing here is stored: every byte of every image is a pure function of its
//! [`ImageSpec`], computable at any offset ([`FirmwareImage::read_at`]), so a
//! server can stream a 64 MiB image without holding it in memory and a test can
//! regenerate `fixtures/firmware/manifest.toml` byte for byte.
//!
//! # Package layout (all integers big-endian)
//!
//! ```text
//! offset size field
//!      0    4 magic "RIGF" (52 49 47 46)
//!      4    1 header format version = 1
//!      5    1 package type = 1 (firmware for rig-agent)
//!      6    1 flags: bit 0 = the install must fail (test hook for int-779); others 0
//!      7    1 reserved = 0
//!      8    8 payload length in bytes (= file size - 64)
//!     16   32 SHA-256 of the payload
//!     48   16 firmware version, ASCII, NUL-padded
//!     64    … payload
//! ```
//!
//! # Payload PRNG: SplitMix64
//!
//! Payload word `k` (bytes `8k..8k+8`, little-endian) is
//! `mix(seed + (k + 1) * 0x9E3779B97F4A7C15)` (wrapping arithmetic) with
//! `mix(z) = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^ (z >> 31)`.
//! That is Vigna's SplitMix64 stream, whose `k`-th output can be computed
//! directly, which is what makes random access (HTTP Range, CoAP Block2) cheap.
//! A payload whose length is not a multiple of 8 ends with a prefix of the
//! last word.

use std::fmt;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

/// Size of the package header.
pub const HEADER_LEN: usize = 64;
/// The package magic.
pub const MAGIC: [u8; 4] = *b"RIGF";
/// The magic of the "unsupported package type" variant.
pub const BAD_MAGIC: [u8; 4] = *b"RIGX";
/// Header format version.
pub const HEADER_VERSION: u8 = 1;
/// Package type of a rig-agent firmware.
pub const PACKAGE_TYPE_FIRMWARE: u8 = 1;
/// Header flag: the reference agent must fail the install (int-779).
pub const FLAG_INSTALL_FAILS: u8 = 0x01;
/// The study's image size (1 MiB).
pub const STUDY_SIZE: u64 = 1_048_576;
/// Declared size of the oversized image (64 MiB).
pub const OVERSIZED_SIZE: u64 = 64 * 1024 * 1024;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the SplitMix64 stream of `seed`, starting at byte `offset`
/// of the stream (see the [module documentation](self)).
pub fn splitmix_fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let k = pos / 8;
        let word = mix(seed.wrapping_add(k.wrapping_add(1).wrapping_mul(GAMMA))).to_le_bytes();
        let within = (pos % 8) as usize;
        let n = (8 - within).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[within..within + n]);
        i += n;
        pos += n as u64;
    }
}

/// What makes an image deliberately wrong (and so which Update Result a
/// correct device ends with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// A valid package.
    Valid,
    /// Valid, but the header asks the device to fail the install (Result 8).
    InstallFails,
    /// One payload byte flipped (XOR 0xFF at payload offset `size / 2`): the
    /// header's SHA-256 no longer matches the payload (Result 5).
    Corrupt,
    /// The magic is `RIGX` instead of `RIGF` (Result 6).
    UnsupportedType,
}

impl Variant {
    /// The name used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Valid => "valid",
            Variant::InstallFails => "install-fails",
            Variant::Corrupt => "corrupt",
            Variant::UnsupportedType => "unsupported-type",
        }
    }

    /// Parses a manifest name.
    pub fn parse(s: &str) -> Option<Variant> {
        [
            Variant::Valid,
            Variant::InstallFails,
            Variant::Corrupt,
            Variant::UnsupportedType,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything an image is a function of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageSpec {
    /// Seed of the payload PRNG.
    pub seed: u64,
    /// Total file size in bytes (header included); at least [`HEADER_LEN`].
    pub size: u64,
    /// Firmware version written in the header (at most 16 ASCII bytes).
    pub version: String,
    /// What is deliberately wrong with it.
    pub variant: Variant,
}

#[derive(Debug)]
struct Inner {
    spec: ImageSpec,
    payload_sha: OnceLock<[u8; 32]>,
    file_sha: OnceLock<[u8; 32]>,
}

/// One firmware image, computed on demand from its [`ImageSpec`]. Cheap to
/// clone; the SHA-256 values are computed once, on first use.
#[derive(Debug, Clone)]
pub struct FirmwareImage {
    inner: Arc<Inner>,
}

impl PartialEq for FirmwareImage {
    fn eq(&self, other: &Self) -> bool {
        self.inner.spec == other.inner.spec
    }
}

impl FirmwareImage {
    /// A valid package of `size` bytes in total whose payload is the
    /// SplitMix64 stream of `seed`, with version `"seed-<seed>"` (truncated to
    /// 16 bytes). Sizes below [`HEADER_LEN`] are raised to it.
    pub fn generate(seed: u64, size: usize) -> FirmwareImage {
        FirmwareImage::from_spec(ImageSpec {
            seed,
            size: size as u64,
            version: format!("seed-{seed}"),
            variant: Variant::Valid,
        })
    }

    /// The image described by `spec`.
    pub fn from_spec(mut spec: ImageSpec) -> FirmwareImage {
        spec.size = spec.size.max(HEADER_LEN as u64);
        spec.version.truncate(16);
        FirmwareImage {
            inner: Arc::new(Inner {
                spec,
                payload_sha: OnceLock::new(),
                file_sha: OnceLock::new(),
            }),
        }
    }

    /// Its description.
    pub fn spec(&self) -> &ImageSpec {
        &self.inner.spec
    }

    /// Total size in bytes.
    pub fn len(&self) -> u64 {
        self.inner.spec.size
    }

    /// Never true (an image holds at least its header); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn payload_len(&self) -> u64 {
        self.len() - HEADER_LEN as u64
    }

    /// Offset in the payload of the byte the corrupt variant flips.
    fn flip_offset(&self) -> u64 {
        self.payload_len() / 2
    }

    /// Payload bytes of the *valid* image at `offset` (no flip applied).
    fn fill_clean_payload(&self, offset: u64, buf: &mut [u8]) {
        splitmix_fill(self.inner.spec.seed, offset, buf);
    }

    /// SHA-256 of the valid payload: what the header claims (also for the
    /// corrupt variant, which is the point of it).
    pub fn header_payload_sha256(&self) -> [u8; 32] {
        *self.inner.payload_sha.get_or_init(|| {
            let mut h = Sha256::new();
            let mut chunk = vec![0u8; 64 * 1024];
            let mut off = 0u64;
            while off < self.payload_len() {
                let n = (self.payload_len() - off).min(chunk.len() as u64) as usize;
                self.fill_clean_payload(off, &mut chunk[..n]);
                h.update(&chunk[..n]);
                off += n as u64;
            }
            h.finalize().into()
        })
    }

    /// The 64-byte header.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let spec = &self.inner.spec;
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(match spec.variant {
            Variant::UnsupportedType => &BAD_MAGIC,
            _ => &MAGIC,
        });
        h[4] = HEADER_VERSION;
        h[5] = PACKAGE_TYPE_FIRMWARE;
        h[6] = if spec.variant == Variant::InstallFails {
            FLAG_INSTALL_FAILS
        } else {
            0
        };
        h[8..16].copy_from_slice(&self.payload_len().to_be_bytes());
        h[16..48].copy_from_slice(&self.header_payload_sha256());
        let v = spec.version.as_bytes();
        let n = v.len().min(16);
        h[48..48 + n].copy_from_slice(&v[..n]);
        h
    }

    /// Fills `buf` with the file's bytes from `offset`; returns how many were
    /// written (fewer than `buf.len()` only at the end of the file).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        if offset >= self.len() {
            return 0;
        }
        let n = (self.len() - offset).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        let mut done = 0usize;
        let mut pos = offset;
        if pos < HEADER_LEN as u64 {
            let header = self.header();
            let k = (HEADER_LEN - pos as usize).min(n);
            buf[..k].copy_from_slice(&header[pos as usize..pos as usize + k]);
            done = k;
            pos += k as u64;
        }
        if done < n {
            let p = pos - HEADER_LEN as u64;
            self.fill_clean_payload(p, &mut buf[done..]);
            if self.inner.spec.variant == Variant::Corrupt {
                let flip = self.flip_offset();
                let end = p + (n - done) as u64;
                if (p..end).contains(&flip) {
                    buf[done + (flip - p) as usize] ^= 0xFF;
                }
            }
        }
        n
    }

    /// The whole file in memory.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len() as usize];
        self.read_at(0, &mut v);
        v
    }

    /// SHA-256 of the whole file as served.
    pub fn sha256(&self) -> [u8; 32] {
        *self.inner.file_sha.get_or_init(|| {
            let mut h = Sha256::new();
            let mut chunk = vec![0u8; 64 * 1024];
            let mut off = 0u64;
            loop {
                let n = self.read_at(off, &mut chunk);
                if n == 0 {
                    break;
                }
                h.update(&chunk[..n]);
                off += n as u64;
            }
            h.finalize().into()
        })
    }

    /// [`FirmwareImage::sha256`] in lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256())
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A parsed package header, as a device checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageHeader {
    /// Header format version.
    pub format_version: u8,
    /// Package type.
    pub package_type: u8,
    /// Flags ([`FLAG_INSTALL_FAILS`]).
    pub flags: u8,
    /// Declared payload length.
    pub payload_len: u64,
    /// Declared payload SHA-256.
    pub payload_sha256: [u8; 32],
    /// Firmware version (NULs stripped).
    pub version: String,
}

/// Why a package header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    #[error("package header truncated: {0} of 64 bytes")]
    Truncated(usize),
    /// Not `RIGF` (an unsupported package type).
    #[error("unsupported package: magic {0:02x?}, expected \"RIGF\"")]
    BadMagic([u8; 4]),
    /// Unknown format version or package type.
    #[error("unsupported package: format version {version}, package type {package_type}")]
    Unsupported {
        /// Format version found.
        version: u8,
        /// Package type found.
        package_type: u8,
    },
}

impl PackageHeader {
    /// Parses and checks the first 64 bytes of a package.
    pub fn parse(bytes: &[u8]) -> Result<PackageHeader, HeaderError> {
        if bytes.len() < HEADER_LEN {
            return Err(HeaderError::Truncated(bytes.len()));
        }
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(HeaderError::BadMagic(magic));
        }
        if bytes[4] != HEADER_VERSION || bytes[5] != PACKAGE_TYPE_FIRMWARE {
            return Err(HeaderError::Unsupported {
                version: bytes[4],
                package_type: bytes[5],
            });
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&bytes[16..48]);
        let version = String::from_utf8_lossy(&bytes[48..64])
            .trim_end_matches('\0')
            .to_string();
        Ok(PackageHeader {
            format_version: bytes[4],
            package_type: bytes[5],
            flags: bytes[6],
            payload_len: u64::from_be_bytes(len),
            payload_sha256: sha,
            version,
        })
    }
}

/// One named image of the standard set.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedImage {
    /// File name without extension, also the path segment in `/fw/<name>`.
    pub name: &'static str,
    /// What a correct device ends with after downloading it (Update Result):
    /// 0 = downloads fine (1 after the update), 2 storage, 5 integrity,
    /// 6 unsupported type, 8 install fails.
    pub expected_result: u8,
    /// What it is for.
    pub purpose: &'static str,
    /// The image.
    pub image: FirmwareImage,
}

fn named(
    name: &'static str,
    expected_result: u8,
    purpose: &'static str,
    seed: u64,
    size: u64,
    version: &str,
    variant: Variant,
) -> NamedImage {
    NamedImage {
        name,
        expected_result,
        purpose,
        image: FirmwareImage::from_spec(ImageSpec {
            seed,
            size,
            version: version.to_string(),
            variant,
        }),
    }
}

/// The standard image set, as listed in `fixtures/firmware/manifest.toml`.
pub fn standard_images() -> Vec<NamedImage> {
    vec![
        named(
            "fw-1mib",
            0,
            "the study's 1,048,576-byte image",
            1,
            STUDY_SIZE,
            "2.0.0",
            Variant::Valid,
        ),
        named(
            "fw-1mib-b",
            0,
            "a second valid 1 MiB version (ETag-change tests)",
            2,
            STUDY_SIZE,
            "2.0.1",
            Variant::Valid,
        ),
        named(
            "fw-small",
            0,
            "a valid 16 KiB image for quick tests",
            3,
            16 * 1024,
            "2.0.2",
            Variant::Valid,
        ),
        named(
            "fw-oversized",
            2,
            "64 MiB declared size: not enough storage (int-773)",
            4,
            OVERSIZED_SIZE,
            "2.1.0",
            Variant::Valid,
        ),
        named(
            "fw-corrupt",
            5,
            "fw-1mib with one payload byte flipped: integrity failure (int-776)",
            1,
            STUDY_SIZE,
            "2.0.0",
            Variant::Corrupt,
        ),
        named(
            "fw-bad-type",
            6,
            "fw-1mib with magic RIGX: unsupported package type (int-777)",
            1,
            STUDY_SIZE,
            "2.0.0",
            Variant::UnsupportedType,
        ),
        named(
            "fw-install-fails",
            8,
            "valid download whose header asks the agent to fail the install (int-779)",
            5,
            STUDY_SIZE,
            "9.9.9",
            Variant::InstallFails,
        ),
    ]
}

/// Renders the manifest TOML for a set of images (what
/// `fixtures/firmware/manifest.toml` holds).
pub fn manifest_toml(images: &[NamedImage]) -> String {
    let mut s = String::from(
        "# Generated by `cargo run -p rig-services --example gen-firmware -- <dir>`; checked by\n\
         # rig/services/tests/file_server_images.rs. See README.md for the format and the PRNG.\n",
    );
    for n in images {
        let spec = n.image.spec();
        s.push_str(&format!(
            "\n[[image]]\nname = \"{}\"\nfile = \"{}.bin\"\nseed = {}\nsize = {}\nversion = \"{}\"\nvariant = \"{}\"\nexpected_result = {}\nsha256 = \"{}\"\npayload_sha256_in_header = \"{}\"\npurpose = \"{}\"\n",
            n.name,
            n.name,
            spec.seed,
            spec.size,
            spec.version,
            spec.variant,
            n.expected_result,
            n.image.sha256_hex(),
            hex(&n.image.header_payload_sha256()),
            n.purpose,
        ));
    }
    s
}

/// One entry of a parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Image name.
    pub name: String,
    /// File name in the image directory.
    pub file: String,
    /// PRNG seed.
    pub seed: u64,
    /// Total size.
    pub size: u64,
    /// Version in the header.
    pub version: String,
    /// Variant name ([`Variant::as_str`]).
    pub variant: String,
    /// Update Result a correct device ends with.
    pub expected_result: u8,
    /// SHA-256 of the whole file (hex).
    pub sha256: String,
    /// SHA-256 the header claims for the payload (hex).
    pub payload_sha256_in_header: String,
    /// What it is for.
    pub purpose: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    image: Vec<ManifestEntry>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown/missing keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What toml said (with line and column).
        message: String,
    },
}

/// Parses manifest text; `path` names it in errors.
pub fn parse_manifest(path: &str, text: &str) -> Result<Vec<ManifestEntry>, ManifestError> {
    toml::from_str::<RawManifest>(text)
        .map(|m| m.image)
        .map_err(|e| ManifestError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })
}

/// Writes every image of `images` as `<dir>/<name>.bin`, plus
/// `<dir>/manifest.toml`. Returns the files written.
pub fn write_images(
    dir: &std::path::Path,
    images: &[NamedImage],
) -> Result<Vec<std::path::PathBuf>, ManifestError> {
    use std::io::Write as _;
    let io = |p: &std::path::Path| {
        let path = p.display().to_string();
        move |source: std::io::Error| ManifestError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    for n in images {
        let path = dir.join(format!("{}.bin", n.name));
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut w = std::io::BufWriter::new(file);
        let mut chunk = vec![0u8; 256 * 1024];
        let mut off = 0u64;
        loop {
            let k = n.image.read_at(off, &mut chunk);
            if k == 0 {
                break;
            }
            w.write_all(&chunk[..k]).map_err(io(&path))?;
            off += k as u64;
        }
        w.flush().map_err(io(&path))?;
        written.push(path);
    }
    let path = dir.join("manifest.toml");
    std::fs::write(&path, manifest_toml(images)).map_err(io(&path))?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 reference outputs for seed 0 (Vigna's splitmix64.c):
    /// 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4.
    #[test]
    fn splitmix_matches_the_reference_stream() {
        let mut b = [0u8; 16];
        splitmix_fill(0, 0, &mut b);
        assert_eq!(&b[..8], &0xe220_a839_7b1d_cdafu64.to_le_bytes());
        assert_eq!(&b[8..], &0x6e78_9e6a_a1b9_65f4u64.to_le_bytes());
    }

    #[test]
    fn random_access_equals_sequential() {
        let img = FirmwareImage::generate(7, 5000);
        let all = img.to_vec();
        for (off, len) in [(0, 10), (3, 70), (63, 2), (64, 9), (1001, 333), (4990, 50)] {
            let mut b = vec![0u8; len];
            let n = img.read_at(off, &mut b);
            assert_eq!(&b[..n], &all[off as usize..off as usize + n]);
        }
    }

    #[test]
    fn header_round_trips_and_variants_differ_as_documented() {
        let ok = FirmwareImage::generate(9, 4096);
        let h = PackageHeader::parse(&ok.to_vec()).unwrap();
        assert_eq!(h.payload_len, 4096 - 64);
        let payload_sha: [u8; 32] = Sha256::digest(&ok.to_vec()[64..]).into();
        assert_eq!(h.payload_sha256, payload_sha);
        assert_eq!(h.version, "seed-9");

        let spec = |variant| ImageSpec {
            seed: 9,
            size: 4096,
            version: "seed-9".into(),
            variant,
        };
        let corrupt = FirmwareImage::from_spec(spec(Variant::Corrupt)).to_vec();
        let diff: Vec<usize> = (0..4096)
            .filter(|&i| corrupt[i] != ok.to_vec()[i])
            .collect();
        assert_eq!(diff, vec![64 + (4096 - 64) / 2]);
        let bad = FirmwareImage::from_spec(spec(Variant::UnsupportedType)).to_vec();
        assert_eq!(
            PackageHeader::parse(&bad),
            Err(HeaderError::BadMagic(*b"RIGX"))
        );
        let fails = FirmwareImage::from_spec(spec(Variant::InstallFails)).to_vec();
        assert_eq!(
            PackageHeader::parse(&fails).unwrap().flags,
            FLAG_INSTALL_FAILS
        );
        assert_eq!(
            PackageHeader::parse(&[0; 10]),
            Err(HeaderError::Truncated(10))
        );
    }
}
