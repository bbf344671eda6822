//! Structured fuzzing of the CoAP message layer: arbitrary sequences of
//! datagrams, link faults, time steps, timeouts and app calls against two
//! endpoints (see `rig_fuzz::ops` for the operations and invariants).
#![no_main]

libfuzzer_sys::fuzz_target!(|case: rig_fuzz::ops::Case| {
    rig_fuzz::ops::run(case);
});
