//! Atomic file replacement: write a temp file in the same directory, then rename.
//!
//! A rename within one file system is atomic, so a reader (or a user who presses
//! Ctrl-C twice, killing the process mid-write) only ever sees the previous
//! complete file or the new complete file.

use std::io::Write;
use std::path::Path;

use crate::ReportError;

/// Replaces `path` with `contents` atomically. The parent directory is created
/// if missing.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let wrap = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(wrap)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".rig-tmp-")
        .tempfile_in(dir)
        .map_err(wrap)?;
    tmp.write_all(contents).map_err(wrap)?;
    tmp.as_file().sync_all().map_err(wrap)?;
    tmp.persist(path).map_err(|e| wrap(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("run.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["run.json".to_string()]);
    }

    #[test]
    fn names_the_file_it_could_not_write() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way of the file.
        let path = dir.path().join("junit.xml");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("x"), b"x").unwrap();
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("junit.xml"), "{err}");
    }
}
