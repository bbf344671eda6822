//! The resume store: what survives an agent restart in `--state-dir`.
//!
//! Two files:
//! - `fota-image.bin`: the image as received so far (partial while
//!   downloading, whole once Downloaded). Its length is the resume offset.
//! - `fota-state.json`: Object 5's State and Update Result, the Package URI,
//!   the entity tag the bytes belong to (HTTP: the header value as sent,
//!   `"…"` or `W/"…"`; CoAP: hex of the ETag option), PkgName and PkgVersion.
//!
//! The JSON file is replaced atomically (temp file + rename); the image file
//! is appended to as bytes arrive, so after a kill its length is at most what
//! arrived. A resumed CoAP pull truncates it to a whole number of blocks.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// File name of the image.
pub const IMAGE_FILE: &str = "fota-image.bin";
/// File name of the metadata.
pub const STATE_FILE: &str = "fota-state.json";

/// The persisted metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// /5/0/3.
    pub state: i64,
    /// /5/0/5.
    pub result: i64,
    /// The Package URI being pulled (empty for push).
    pub uri: String,
    /// The entity tag of the bytes in the image file, if known.
    pub etag: Option<String>,
    /// /5/0/6.
    pub name: String,
    /// /5/0/7.
    pub version: String,
    /// Whether the image (when Downloaded) must fail to install.
    pub install_fails: bool,
}

/// The store in one directory.
#[derive(Clone, Debug)]
pub struct ResumeStore {
    dir: PathBuf,
}

impl ResumeStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> ResumeStore {
        ResumeStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The image file's path.
    pub fn image_path(&self) -> PathBuf {
        self.dir.join(IMAGE_FILE)
    }

    /// Reads the metadata; `Ok(None)` when there is none. A file that cannot
    /// be parsed is an error naming the file and the field.
    pub fn load(&self) -> Result<Option<Saved>, String> {
        let path = self.dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let int = |k: &str| {
            v.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("{}: field `{k}` missing or not an integer", path.display()))
        };
        let string = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_default()
        };
        Ok(Some(Saved {
            state: int("state")?,
            result: int("result")?,
            uri: string("uri"),
            etag: v.get("etag").and_then(Value::as_str).map(str::to_string),
            name: string("name"),
            version: string("version"),
            install_fails: v
                .get("install_fails")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }))
    }

    /// Writes the metadata atomically.
    pub fn save(&self, s: &Saved) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let v = json!({
            "state": s.state,
            "result": s.result,
            "uri": s.uri,
            "etag": s.etag,
            "name": s.name,
            "version": s.version,
            "install_fails": s.install_fails,
        });
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, v.to_string()).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Bytes of the image received so far (0 if none).
    pub fn image_len(&self) -> u64 {
        std::fs::metadata(self.image_path()).map_or(0, |m| m.len())
    }

    /// The image bytes.
    pub fn read_image(&self) -> Result<Vec<u8>, String> {
        let p = self.image_path();
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Truncates the image to `len` bytes (0: start over).
    pub fn truncate_image(&self, len: u64) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let p = self.image_path();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        f.set_len(len).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Replaces the image with `bytes` (a push).
    pub fn write_image(&self, bytes: &[u8]) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let p = self.image_path();
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Opens the image for appending.
    pub fn append(&self) -> Result<std::fs::File, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let p = self.image_path();
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Opens the image for writing at any offset (blocks that arrive out
    /// of order), creating it.
    pub fn open_random(&self) -> Result<std::fs::File, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let p = self.image_path();
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&p)
            .map_err(|e| format!("{}: {e}", p.display()))
    }

    /// Forgets everything (reset, or a finished update).
    pub fn clear(&self) {
        let _ = std::fs::remove_file(self.image_path());
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
    }
}

/// Appends `bytes` to an open image file.
pub fn append_bytes(f: &mut std::fs::File, bytes: &[u8]) -> Result<(), String> {
    f.write_all(bytes)
        .map_err(|e| format!("writing the image: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_bad_files_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let s = ResumeStore::new(dir.path());
        assert_eq!(s.load().unwrap(), None);
        let saved = Saved {
            state: 1,
            result: 0,
            uri: "coap://127.0.0.1:5683/fw/a".into(),
            etag: Some("W/\"ab\"".into()),
            name: "a".into(),
            version: "1.0".into(),
            install_fails: true,
        };
        s.save(&saved).unwrap();
        assert_eq!(s.load().unwrap(), Some(saved));
        std::fs::write(dir.path().join(STATE_FILE), "{\"state\":\"x\"}").unwrap();
        let e = s.load().unwrap_err();
        assert!(e.contains("`state`") && e.contains(STATE_FILE), "{e}");
    }

    #[test]
    fn image_appends_truncates_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let s = ResumeStore::new(dir.path().join("sub"));
        let mut f = s.append().unwrap();
        append_bytes(&mut f, &[1; 100]).unwrap();
        append_bytes(&mut f, &[2; 50]).unwrap();
        assert_eq!(s.image_len(), 150);
        s.truncate_image(64).unwrap();
        assert_eq!(s.read_image().unwrap(), vec![1; 64]);
        s.clear();
        assert_eq!(s.image_len(), 0);
    }
}
