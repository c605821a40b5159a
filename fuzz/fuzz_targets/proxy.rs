//! PROXY protocol admission on any bytes, arriving in the splits the first byte chooses, as
//! `ClientStream::with_header` reads them: decide after each chunk.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use sshbio::server::proxy::{HeaderProgress, read_header};

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let peer = SocketAddr::from(([10, 0, 0, 1], 5000));
    let step = usize::from(split % 64) + 1;
    let mut buf = Vec::new();
    for chunk in bytes.chunks(step) {
        buf.extend_from_slice(chunk);
        match read_header(&buf, peer) {
            HeaderProgress::NeedMore => {}
            HeaderProgress::Header { len, .. } => {
                assert!(len <= buf.len());
                return;
            }
            HeaderProgress::Refused(_) => return,
        }
    }
});
