//! Fuzzes indicator normalisation under every hint (no panic, idempotent).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sharedefend_fuzz::normalise(data);
});
