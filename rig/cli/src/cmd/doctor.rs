//! `rig doctor`: checks what the bench needs from this host and says how to fix
//! what is missing. Exit 0 when everything is in order, 2 otherwise.

use crate::{BenchArg, exit};

/// Runs `rig doctor`.
pub(crate) fn main(args: BenchArg) -> u8 {
    let bench = match super::load_bench(&args.bench) {
        Ok(b) => b,
        Err(code) => return code,
    };
    println!("bench `{}` ({})", bench.name, args.bench.display());
    let checks = rig_bench::doctor::check(&bench);
    let mut failed = 0;
    for c in &checks {
        let mark = if c.ok { "✓" } else { "✗" };
        println!("{mark} {}: {}", c.name, c.detail);
        if !c.ok {
            failed += 1;
            if let Some(fix) = &c.fix {
                for line in fix.lines() {
                    println!("    fix: {line}");
                }
            }
        }
    }
    if failed == 0 {
        println!("all {} checks passed", checks.len());
        exit::OK
    } else {
        println!("{failed} of {} checks failed", checks.len());
        exit::INFRA
    }
}
