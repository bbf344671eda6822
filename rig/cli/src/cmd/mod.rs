//! One module per `rig` command, plus what they share (loading files).

pub(crate) mod bench;
pub(crate) mod completions;
pub(crate) mod doctor;
pub(crate) mod lease;
pub(crate) mod list;
pub(crate) mod power;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod simnet;

use std::path::{Path, PathBuf};

use rig_bench::file::Bench;
use rig_suite::engine::SuiteSelection;

use crate::exit;

/// Loads the bench file, or prints every problem in it and returns exit code 3.
pub(crate) fn load_bench(path: &Path) -> Result<Bench, u8> {
    Bench::load(path).map_err(|diags| {
        eprintln!("{diags}");
        if path.exists() {
            eprintln!(
                "error: the bench file {} is invalid (see above)",
                path.display()
            );
        } else {
            eprintln!(
                "error: no bench file {}; paths are relative to the current folder: \
                 run rig from the repository root, or pass --bench FILE",
                path.display()
            );
        }
        exit::USAGE
    })
}

/// Loads suite files into selections, printing every problem of every file
/// (not only the first file's) before returning exit code 3.
pub(crate) fn load_suites(paths: &[PathBuf]) -> Result<Vec<SuiteSelection>, u8> {
    let mut out = Vec::new();
    let mut bad = 0;
    for path in paths {
        let ids = rig_suite::cases::all().iter().map(|c| c.meta.id);
        let loaded = rig_suite::file::SuiteFile::load(path)
            .and_then(|suite| suite.check_selectors(ids).map(|()| suite));
        match loaded {
            Ok(suite) => out.push(suite.selection()),
            Err(diags) => {
                eprintln!("{diags}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        eprintln!(
            "error: {bad} suite file{} invalid or missing (see above)",
            if bad == 1 { " is" } else { "s are" }
        );
        return Err(exit::USAGE);
    }
    Ok(out)
}
