//! Fuzzes the minisign parsers `sharedefend verify` runs on downloaded, untrusted
//! files: any bytes as a signature file and as a public key must parse or fail cleanly,
//! and checking a parsed signature must never panic.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let key = sign::PublicKey::parse(&text);
    if let Ok(sig) = sign::Signature::parse(&text) {
        // Check it against a key read from the same input (when there is one) or a
        // fixed one: the verifier must reject cleanly too.
        let fixed =
            sign::PublicKey::parse("RWSqB7K3VDvd8U4VfqJ+AwNfg4foTQxvUV8ivhRc8JUFex/yDyGXZ5Gz");
        if let Ok(k) = key.or(fixed) {
            let _ = sign::verify(&k, data, &sig);
        }
    }
});
