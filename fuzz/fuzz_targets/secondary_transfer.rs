//! Fuzzes the secondary's transfer parser: any answer messages must be refused
//! cleanly or give records that survive the saved copy's zone-file form.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sharedefend_fuzz::secondary_transfer(data);
});
