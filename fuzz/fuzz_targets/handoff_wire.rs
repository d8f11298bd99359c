//! The binary upgrade's handoff messages (`handoff::wire`), as a new
//! process reads what an old one sent (and the other way): never a
//! panic; what decodes encodes back to bytes that decode the same; a
//! frame tracker state that `Frames::from_bytes` accepts can be fed any
//! bytes without a panic and survives its own round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::handoff::wire::{decode, encode};
use ringway::proxy::frames::Frames;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        let again = encode(&msg);
        assert_eq!(decode(&again).as_ref(), Ok(&msg), "round trip");
        if let ringway::handoff::Message::Tunnels { records, .. } = &msg {
            for r in records {
                if let Some(mut f) = r.frames.as_deref().and_then(Frames::from_bytes) {
                    assert_eq!(Frames::from_bytes(&f.to_bytes()), Some(f));
                    f.feed(0, data);
                    f.feed(1, data);
                }
            }
        }
    }
    if let Some(mut f) = Frames::from_bytes(data) {
        assert_eq!(Frames::from_bytes(&f.to_bytes()), Some(f));
        f.feed(0, data);
        f.feed(1, data);
    }
});
