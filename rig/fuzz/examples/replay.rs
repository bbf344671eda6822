//! Replays one `coap_endpoint_ops` input outside libFuzzer and prints the
//! decoded case first, for debugging a crash:
//!
//!   cd rig/fuzz && cargo run --release --example replay -- <input file>
use arbitrary::{Arbitrary, Unstructured};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: replay <input file>");
        std::process::exit(2);
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2);
    });
    let case = match rig_fuzz::ops::Case::arbitrary_take_rest(Unstructured::new(&bytes)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{path}: not a case: {e}");
            std::process::exit(2);
        }
    };
    println!("{case:#?}");
    rig_fuzz::ops::run(case);
    println!("ok: every invariant held");
}
