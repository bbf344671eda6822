//! Every broken bench and profile file in `fixtures/invalid/` gives exactly the
//! error text kept beside it in `<name>.expected` (the suite files are checked
//! in rig-suite). The paths in the messages are relative to the workspace root,
//! so the snapshots are stable. After a deliberate change to the messages, run
//! with `RIG_BLESS=1` to rewrite the snapshots, and review the diff.

use std::path::{Path, PathBuf};

use rig_bench::file::Bench;
use rig_bench::profile::Profile;

#[test]
fn invalid_bench_and_profile_fixtures_match_their_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Relative paths in messages; the only test in this binary, so changing
    // the working directory affects nothing else.
    std::env::set_current_dir(&root).unwrap();
    let dir = Path::new("fixtures/invalid");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| (n.starts_with("bench-") || n.starts_with("profile-")) && n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 15,
        "too few bench/profile fixtures: {names:?}"
    );
    let bless = std::env::var_os("RIG_BLESS").is_some();
    let mut mismatches = Vec::new();
    for name in &names {
        let path: PathBuf = dir.join(name);
        let result = if name.starts_with("bench-") {
            Bench::load(&path).map(|_| ())
        } else {
            Profile::load(&path).map(|_| ())
        };
        let got = match result {
            Ok(()) => format!("(no error: {name} loads fine)"),
            Err(d) => {
                // Every problem names the file and, but for unreadable files, a line.
                for diag in d.iter() {
                    assert!(diag.line > 0, "{name}: diagnostic without a line: {diag}");
                }
                d.to_string()
            }
        } + "\n";
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != got {
            mismatches.push(format!("--- {name}: expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
