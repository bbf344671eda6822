//! Fuzz LwM2M path strings and Uri-Path segments (see `rig_fuzz::path_parse` for the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rig_fuzz::path_parse(data);
});
