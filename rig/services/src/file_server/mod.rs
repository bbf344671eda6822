//! Firmware file servers for FOTA pull: CoAP(S) Block2 and HTTP(S) with
//! Range/If-Match/ETag, over one shared [`FileStore`] of seeded images.
//!
//! ```text
//!   images.rs  FirmwareImage: bytes = f(seed, size, variant), random access
//!        │
//!   FileStore  name → (image, ETag, weak?)   set_etag / replace_image
//!     │    │
//!     │    └── http.rs  HttpFileServer  GET/HEAD /fw/<name>, Range, If-Match,
//!     │                 If-Range, 416, presigned-URL expiry, TLS, throttling
//!     └─────── coap.rs  CoapFileServer  GET /fw/<name>, Block2 via rig-proto's
//!                       Endpoint, over any DatagramTransport: UDP, or
//!                       coaps.rs DtlsTransport (rig-dtls over a given socket)
//!   tls.rs  HttpsPki: a CA + server certificate for the address served on
//! ```
//!
//! Every server records what it served (see [`record`]): each request with
//! its range or block, and a [`ServeSummary`] with repeats and duplicated
//! payload bytes, which the FOTA interruption cases turn into measurements.
//! The servers decide nothing about verdicts.

pub mod coap;
pub mod coaps;
pub mod http;
pub mod images;
pub mod record;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub use coap::{CoapFileServer, CoapServerConfig, DatagramTransport};
pub use coaps::{DtlsLog, DtlsTransport};
pub use http::{HttpFileServer, HttpServerConfig, Presigner, TlsIdentity};
pub use images::{FirmwareImage, ImageSpec, NamedImage, PackageHeader, Variant};
pub use record::{CoapRecord, HttpRecord, ServeSummary};
pub use tls::HttpsPki;

/// Errors of the file servers.
#[derive(Debug, thiserror::Error)]
pub enum FileServerError {
    /// A socket could not be bound or queried.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A TLS certificate or key was refused.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// One image as served right now: its bytes, its entity tag and when it last
/// changed.
#[derive(Clone)]
pub struct ServedImage {
    /// The image.
    pub image: FirmwareImage,
    /// Entity tag (8 bytes; HTTP shows it as 16 hex digits in quotes).
    pub etag: Vec<u8>,
    /// Whether HTTP advertises it as a weak validator (`W/"…"`).
    pub weak: bool,
    /// When it was (re)placed, for `Last-Modified`.
    pub last_modified: SystemTime,
    materialized: Arc<OnceLock<Arc<Vec<u8>>>>,
}

impl std::fmt::Debug for ServedImage {
    // Not derived: the materialized bytes would print a megabyte.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedImage")
            .field("spec", self.image.spec())
            .field("etag", &images::hex(&self.etag))
            .field("weak", &self.weak)
            .field("last_modified", &self.last_modified)
            .finish()
    }
}

impl ServedImage {
    /// The whole file in memory, made once per image version and shared.
    pub fn bytes(&self) -> Arc<Vec<u8>> {
        self.materialized
            .get_or_init(|| Arc::new(self.image.to_vec()))
            .clone()
    }

    /// The ETag in HTTP form: `"0123456789abcdef"` or `W/"…"`.
    pub fn http_etag(&self) -> String {
        let tag = format!("\"{}\"", images::hex(&self.etag));
        if self.weak { format!("W/{tag}") } else { tag }
    }
}

#[derive(Debug, Default)]
struct StoreInner {
    images: BTreeMap<String, ServedImage>,
    versions: u64,
}

/// The images the file servers serve, by name (`/fw/<name>`). Cloning gives
/// another handle to the same store, so a test can change an image while a
/// server is serving it.
#[derive(Debug, Clone, Default)]
pub struct FileStore {
    inner: Arc<Mutex<StoreInner>>,
    generation: Arc<AtomicU64>,
}

impl FileStore {
    /// An empty store.
    pub fn new() -> FileStore {
        FileStore::default()
    }

    /// A store holding [`images::standard_images`].
    pub fn with_standard_images() -> FileStore {
        let s = FileStore::new();
        for n in images::standard_images() {
            s.insert(n.name, n.image);
        }
        s
    }

    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        // A poisoned lock only means a panic elsewhere; the data is still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) an image under `name`, with a fresh strong ETag.
    /// Returns the ETag.
    pub fn insert(&self, name: &str, image: FirmwareImage) -> Vec<u8> {
        let mut inner = self.lock();
        inner.versions += 1;
        let spec = image.spec();
        let mut h = Sha256::new();
        h.update(b"rig-fw-etag\0");
        h.update(name.as_bytes());
        h.update(spec.seed.to_be_bytes());
        h.update(spec.size.to_be_bytes());
        h.update(spec.version.as_bytes());
        h.update(spec.variant.as_str().as_bytes());
        h.update(inner.versions.to_be_bytes());
        let etag = h.finalize()[..8].to_vec();
        inner.images.insert(
            name.to_string(),
            ServedImage {
                image,
                etag: etag.clone(),
                weak: false,
                last_modified: SystemTime::now(),
                materialized: Arc::new(OnceLock::new()),
            },
        );
        drop(inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        etag
    }

    /// Replaces the image under `name` (a new version with a new ETag), as an
    /// operator would while a device is mid-download. Returns the new ETag.
    pub fn replace_image(&self, name: &str, image: FirmwareImage) -> Vec<u8> {
        self.insert(name, image)
    }

    /// Changes only the ETag of `name` (same bytes). False if unknown.
    pub fn set_etag(&self, name: &str, etag: &[u8]) -> bool {
        let changed = match self.lock().images.get_mut(name) {
            Some(e) => {
                e.etag = etag.to_vec();
                e.last_modified = SystemTime::now();
                true
            }
            None => false,
        };
        if changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        changed
    }

    /// Makes HTTP advertise `name`'s ETag as weak (`W/"…"`) or strong again.
    /// False if unknown.
    pub fn set_weak_etag(&self, name: &str, weak: bool) -> bool {
        match self.lock().images.get_mut(name) {
            Some(e) => {
                e.weak = weak;
                true
            }
            None => false,
        }
    }

    /// Removes an image. False if unknown.
    pub fn remove(&self, name: &str) -> bool {
        let removed = self.lock().images.remove(name).is_some();
        if removed {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        removed
    }

    /// The image under `name` as served now.
    pub fn get(&self, name: &str) -> Option<ServedImage> {
        self.lock().images.get(name).cloned()
    }

    /// The ETag of `name`.
    pub fn etag(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().images.get(name).map(|e| e.etag.clone())
    }

    /// Names of all images.
    pub fn names(&self) -> Vec<String> {
        self.lock().images.keys().cloned().collect()
    }

    /// A counter that changes whenever an image or ETag changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

/// The image name of a request path `fw/<name>` or `/fw/<name>`, if it is one.
pub fn image_name(path: &str) -> Option<&str> {
    let name = path.trim_start_matches('/').strip_prefix("fw/")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}
