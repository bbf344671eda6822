//! Fuzz Register / Update / De-register requests into the server-side registry (see `rig_fuzz::registry_register` for the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rig_fuzz::registry_register(data);
});
