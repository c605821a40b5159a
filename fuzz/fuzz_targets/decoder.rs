//! The terminal input decoder on any bytes, in the splits the first byte chooses. A panic in
//! termina would be caught by the decoder's guard, so the guard's counter must stay 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshbio::tui::input::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let step = usize::from(split % 32) + 1;
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for chunk in bytes.chunks(step) {
        decoder.feed(chunk, &mut out);
        if split & 0x80 != 0 && decoder.has_pending() {
            decoder.flush(&mut out);
        }
    }
    decoder.flush(&mut out);
    assert_eq!(decoder.panics_caught(), 0, "termina panicked; the guard hid it");
});
