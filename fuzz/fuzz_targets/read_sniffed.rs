//! Fuzzes the whole read path: gzip detection, text decoding, sniffing, the reader.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sharedefend_fuzz::read_sniffed(data);
});
