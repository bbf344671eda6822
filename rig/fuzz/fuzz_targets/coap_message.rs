//! Fuzz CoAP datagrams through rig-proto's strict parser (see `rig_fuzz::coap_message` for the checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rig_fuzz::coap_message(data);
});
