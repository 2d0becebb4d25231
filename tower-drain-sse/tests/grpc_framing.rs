//! gRPC server streams: after the trip, the stream ends where the
//! application waits after a complete length-prefixed message, with
//! `grpc-status: 14` trailers, whatever the message sizes, the chunking, the
//! waits and the trip point. Never inside a message, and never before what
//! the application had ready.

use bytes::{Buf, Bytes};
use http::{header, HeaderMap};
use proptest::prelude::*;
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;

mod common;
use common::{Part, Stop};

fn encode(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.push(0);
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Decodes length-prefixed messages; `None` if the bytes end inside one.
fn decode(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 5 {
            return None;
        }
        let len = (&bytes[1..5]).get_u32() as usize;
        if bytes.len() < 5 + len {
            return None;
        }
        messages.push(bytes[5..5 + len].to_vec());
        bytes = &bytes[5 + len..];
    }
    Some(messages)
}

/// The frames out of the layer: data, then what ended the stream, and
/// whether it ended.
fn run(parts: Vec<Part>, trip_after: usize) -> (Vec<Bytes>, Option<HeaderMap>, Stop) {
    let drain = Drain::new();
    let layer = SseDrainLayer::new(drain.signal());
    let body = std::pin::pin!(common::through(&layer, "application/grpc", parts));
    let (frames, stop) = common::drive(body, |received| {
        if received == trip_after {
            drain.trip();
        }
    });
    let (mut data, mut trailers) = (Vec::new(), None);
    for frame in frames {
        match frame.into_data() {
            Ok(bytes) => data.push(bytes),
            Err(frame) => {
                assert!(trailers.is_none(), "one trailers frame at most");
                trailers = Some(frame.into_trailers().unwrap());
            }
        }
    }
    (data, trailers, stop)
}

/// The chunks of `bytes` ending at `ends`, the application waiting after
/// those marked in `waits`, then running on forever (a server stream that
/// has not ended).
fn chunks(bytes: &[u8], ends: &[usize], waits: &[bool]) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (&end, &wait) in ends.iter().zip(waits) {
        parts.push(Part::Data(Bytes::copy_from_slice(&bytes[start..end])));
        if wait && end < bytes.len() {
            parts.push(Part::Wait);
        }
        start = end;
    }
    parts.push(Part::Hang);
    parts
}

type Case = (Vec<Vec<u8>>, Vec<usize>, Vec<bool>, usize);

fn case() -> impl Strategy<Value = Case> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8)
        .prop_flat_map(|messages| {
            let len = encode(&messages).len();
            (
                Just(messages),
                proptest::collection::btree_set(1..len, 0..len.min(20)),
            )
        })
        .prop_flat_map(|(messages, cuts)| {
            let mut ends: Vec<usize> = cuts.into_iter().collect();
            ends.push(encode(&messages).len());
            let n = ends.len();
            (
                Just(messages),
                Just(ends),
                proptest::collection::vec(any::<bool>(), n),
                0..=n,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(), ..ProptestConfig::default() })]

    #[test]
    fn grpc_stream_ends_after_a_complete_message_where_it_waits(
        (messages, ends, waits, trip_after) in case(),
    ) {
        let bytes = encode(&messages);
        let (data, trailers, stop) = run(chunks(&bytes, &ends, &waits), trip_after);
        prop_assert_eq!(stop, Stop::Ended);

        let passed = data.concat();
        prop_assert_eq!(&passed[..], &bytes[..passed.len()], "bytes intact");
        let got = decode(&passed).expect("never ends inside a message");
        prop_assert_eq!(&got[..], &messages[..got.len()]);
        let trailers = trailers.expect("ends with trailers");
        prop_assert_eq!(&trailers["grpc-status"], "14");

        // The first chunk end at or after the trip where the application
        // waits (after the last chunk it waits for good) and a message is
        // complete: what it had ready before that was delivered.
        let n = ends.len();
        let first = (trip_after.max(1)..=n)
            .find(|&chunk| {
                (chunk == n || waits[chunk - 1]) && decode(&bytes[..ends[chunk - 1]]).is_some()
            })
            .map(|chunk| ends[chunk - 1])
            .expect("the last chunk ends the last message");
        prop_assert_eq!(passed.len(), first);
    }
}

/// A call whose last message and status are ready when the drain trips
/// completes with its own status (a unary answer, or the end of a stream):
/// the client would otherwise retry a call that already ran.
#[test]
fn a_call_that_ends_by_itself_keeps_its_own_status() {
    let bytes = Bytes::from(encode(&[b"done".to_vec()]));
    let mut ok = HeaderMap::new();
    ok.insert("grpc-status", header::HeaderValue::from_static("0"));
    let ready = vec![Part::Data(bytes.clone()), Part::Trailers(ok.clone())];
    for trip_after in 0..=2 {
        let (data, trailers, stop) = run(ready.clone(), trip_after);
        assert_eq!((data, stop), (vec![bytes.clone()], Stop::Ended));
        assert_eq!(
            trailers.unwrap()["grpc-status"],
            "0",
            "trip after {trip_after}"
        );
    }

    // If it waits between its last message and its status, the drain ends
    // it there, at a message boundary.
    let waiting = vec![Part::Data(bytes.clone()), Part::Wait, Part::Trailers(ok)];
    let (data, trailers, _) = run(waiting.clone(), 1);
    assert_eq!(data, vec![bytes.clone()]);
    assert_eq!(trailers.unwrap()["grpc-status"], "14");
    // Tripped after its status passed: its end stands, nothing follows.
    let (_, trailers, stop) = run(waiting, 2);
    assert_eq!(stop, Stop::Ended);
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}
