//! Writes the standard seeded firmware images and their manifest into a
//! directory: `cargo run -p rig-services --example gen-firmware -- <dir>`.
//!
//! The images are a pure function of the seeds in
//! `rig_services::file_server::images::standard_images`, so the manifest this
//! writes equals `fixtures/firmware/manifest.toml` byte for byte.

use std::process::ExitCode;

use rig_services::file_server::images::{standard_images, write_images};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: gen-firmware <dir>");
        return ExitCode::from(3);
    };
    match write_images(std::path::Path::new(&dir), &standard_images()) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-firmware: {e}");
            ExitCode::from(2)
        }
    }
}
