//! Fuzzes the MISP feed reader: the input is a `manifest.json`, each event it lists
//! is a fixed small event (or a load error), as `formats::read_misp_feed` gets them.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sharedefend_fuzz::read_misp_feed(data);
});
