//! Fuzz CoRE link-format payloads and Write-Attributes queries (see `rig_fuzz::link_format` for the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rig_fuzz::link_format(data);
});
