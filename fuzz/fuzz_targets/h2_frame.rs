//! The HTTP/2 frame codec (`h2::frame`): the first two bytes pick the max
//! frame size, the rest is read as a client's bytes (the preface, if they
//! start with it, then frames until an error or an incomplete frame).
//! Never a panic; every frame or stream error consumes at least a header
//! and no more than the buffer, and exactly the header's length; bytes
//! after a frame do not change it, and every shorter prefix of it is
//! incomplete or the same error; a frame the writers can produce, written
//! again, parses back to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::h2::frame::{
    check_preface, parse, write_continuation, write_data, write_goaway, write_headers,
    write_headers_frame, write_ping, write_rst_stream, write_settings, write_settings_ack,
    write_window_update, Frame, FrameError, FrameHeader, Preface, HEADER_LEN, MAX_FRAME_SIZE_LIMIT,
    PREFACE,
};

/// The frame written again by ringway's writers, where they can.
fn rewrite(frame: &Frame<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match *frame {
        Frame::Data {
            stream,
            end_stream,
            data,
            ..
        } => write_data(&mut out, stream, data, end_stream),
        Frame::Headers {
            stream,
            end_stream,
            end_headers,
            priority: None,
            fragment,
        } => write_headers_frame(&mut out, stream, fragment, end_stream, end_headers),
        Frame::RstStream { stream, code } => write_rst_stream(&mut out, stream, code),
        Frame::Settings { ack: true, .. } => write_settings_ack(&mut out),
        Frame::Settings {
            ack: false,
            settings,
        } => write_settings(&mut out, &settings.iter().collect::<Vec<_>>()),
        Frame::Ping { ack, data } => write_ping(&mut out, data, ack),
        Frame::GoAway {
            last_stream,
            code,
            debug,
        } => write_goaway(&mut out, last_stream, code, debug),
        Frame::WindowUpdate { stream, increment } => {
            write_window_update(&mut out, stream, increment)
        }
        Frame::Continuation {
            stream,
            end_headers,
            fragment,
        } => write_continuation(&mut out, stream, fragment, end_headers),
        Frame::Headers { .. }
        | Frame::Priority { .. }
        | Frame::PushPromise { .. }
        | Frame::Unknown { .. } => return None,
    }
    Some(out)
}

/// What survives writing: DATA loses its padding.
fn normalise(frame: Frame<'_>) -> Frame<'_> {
    match frame {
        Frame::Data {
            stream,
            end_stream,
            data,
            ..
        } => Frame::Data {
            stream,
            end_stream,
            data,
            flow_len: data.len() as u32,
        },
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let (max, mut rest) = match data {
        [a, b, rest @ ..] => {
            let pick = u16::from_be_bytes([*a, *b]);
            let max = if pick == u16::MAX {
                MAX_FRAME_SIZE_LIMIT
            } else {
                u32::from(pick)
            };
            (max, rest)
        }
        _ => return,
    };
    let preface = check_preface(rest);
    assert_eq!(
        preface == Preface::Complete,
        rest.starts_with(PREFACE),
        "{preface:?}"
    );
    if preface == Preface::Complete {
        rest = &rest[PREFACE.len()..];
    }
    // Each turn consumes at least a frame header, so this ends.
    loop {
        let result = parse(rest, max);
        let consumed = match result {
            Ok(None) => {
                if let Some(head) = FrameHeader::parse(rest) {
                    assert!(head.len <= max);
                    assert!(rest.len() < HEADER_LEN + head.len as usize);
                }
                break;
            }
            Ok(Some((frame, n))) => {
                let head = FrameHeader::parse(rest).unwrap();
                assert_eq!(n, HEADER_LEN + head.len as usize);
                assert!(head.len <= max && n <= rest.len());
                assert_eq!(frame.frame_type(), head.ty);
                assert_eq!(frame.stream(), head.stream);
                if let Frame::Data { data, flow_len, .. } = frame {
                    assert_eq!(flow_len, head.len);
                    assert!(data.len() <= flow_len as usize);
                }
                if let Some(bytes) = rewrite(&frame) {
                    assert!(bytes.len() <= n, "written longer than read");
                    let again = parse(&bytes, max).expect("rewritten frame parses");
                    assert_eq!(again, Some((normalise(frame), bytes.len())));
                }
                // A HEADERS frame's block through the splitting writer.
                if let Frame::Headers {
                    stream, fragment, ..
                } = frame
                {
                    let mut out = Vec::new();
                    write_headers(&mut out, stream, fragment, false, max);
                    let mut block = Vec::new();
                    let mut at = &out[..];
                    while !at.is_empty() {
                        let (f, k) = parse(at, MAX_FRAME_SIZE_LIMIT).unwrap().unwrap();
                        match f {
                            Frame::Headers { fragment, .. }
                            | Frame::Continuation { fragment, .. } => {
                                block.extend_from_slice(fragment)
                            }
                            other => panic!("{other:?}"),
                        }
                        at = &at[k..];
                    }
                    assert_eq!(block, fragment);
                }
                n
            }
            Err(FrameError::Stream { consumed, .. }) => {
                let head = FrameHeader::parse(rest).unwrap();
                assert_eq!(consumed, HEADER_LEN + head.len as usize);
                assert!(consumed <= rest.len());
                consumed
            }
            Err(FrameError::Connection { .. }) => {
                // Decided by the frame alone: the same with nothing after it.
                let head = FrameHeader::parse(rest).unwrap();
                let end = (HEADER_LEN + head.len as usize).min(rest.len());
                assert_eq!(parse(&rest[..end], max), result);
                break;
            }
        };
        assert!(consumed >= HEADER_LEN && consumed <= rest.len());
        // The frame alone reads the same, and every cut of it is incomplete
        // or the same error.
        assert_eq!(parse(&rest[..consumed], max), result);
        for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, consumed - 1] {
            if cut < consumed {
                match parse(&rest[..cut], max) {
                    Ok(None) => {}
                    other => assert_eq!(other, result, "cut {cut}"),
                }
            }
        }
        rest = &rest[consumed..];
    }
});
