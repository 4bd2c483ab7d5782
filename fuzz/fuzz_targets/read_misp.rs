//! Fuzzes the `misp` reader: any bytes, as lossy UTF-8, must parse or fail cleanly.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sharedefend_fuzz::read_as(formats::Format::Misp, data);
});
