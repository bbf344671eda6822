//! Fuzz the SenmlCbor decoder: `<base path>\n<payload>` must decode or fail
//! with an offset, never panic; what decodes must round-trip
//! (see `rig_fuzz::content`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rig_fuzz::content(rig_proto::content::ContentFormat::SenmlCbor, data);
});
