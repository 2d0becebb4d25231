//! gRPC server streams: at the trip, the stream ends after the last complete
//! length-prefixed message, with `grpc-status: 14` trailers, whatever the
//! message sizes, the chunking and the trip point. Never inside a message.

use bytes::{Buf, Bytes};
use futures_util::FutureExt;
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;

mod common;
use common::Parts;

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

/// The frames out of the layer: data, then what ended the stream.
fn run(parts: Parts, trip_after: usize) -> (Vec<Bytes>, Option<HeaderMap>) {
    let drain = Drain::new();
    let layer = SseDrainLayer::new(drain.signal());
    let mut body = std::pin::pin!(common::through(&layer, "application/grpc", parts));
    let (mut data, mut trailers, mut polled) = (Vec::new(), None, 0);
    loop {
        if polled == trip_after {
            drain.trip();
        }
        polled += 1;
        match body
            .frame()
            .now_or_never()
            .expect("in-memory body never waits")
        {
            Some(frame) => match frame.unwrap().into_data() {
                Ok(bytes) => data.push(bytes),
                Err(frame) => {
                    assert!(trailers.is_none(), "one trailers frame at most");
                    trailers = Some(frame.into_trailers().unwrap());
                }
            },
            None => return (data, trailers),
        }
    }
}

fn chunks(bytes: &[u8], ends: &[usize]) -> Parts {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let chunk = Bytes::copy_from_slice(&bytes[start..end]);
            start = end;
            Ok(chunk)
        })
        .collect()
}

fn case() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<usize>, usize)> {
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
            (Just(messages), Just(ends), 0..=n)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(), ..ProptestConfig::default() })]

    #[test]
    fn grpc_stream_ends_after_a_complete_message((messages, ends, trip_after) in case()) {
        let bytes = encode(&messages);
        let (data, trailers) = run(chunks(&bytes, &ends), trip_after);

        let passed = data.concat();
        prop_assert_eq!(&passed[..], &bytes[..passed.len()], "bytes intact");
        let got = decode(&passed).expect("never ends inside a message");
        prop_assert_eq!(&got[..], &messages[..got.len()]);
        let trailers = trailers.expect("ends with trailers");
        prop_assert_eq!(&trailers["grpc-status"], "14");

        // The first chunk end at or after the trip that completes a message.
        let trip_at = ends[..trip_after].last().copied().unwrap_or(0);
        let first_boundary = ends
            .iter()
            .copied()
            .chain([0])
            .filter(|&q| q >= trip_at && decode(&bytes[..q]).is_some())
            .min()
            .unwrap();
        prop_assert_eq!(passed.len(), first_boundary);
    }
}

#[test]
fn application_trailers_are_never_followed_by_the_drains() {
    let bytes = encode(&[b"done".to_vec()]);
    let mut ok = HeaderMap::new();
    ok.insert("grpc-status", header::HeaderValue::from_static("0"));
    let parts: Parts = vec![Ok(Bytes::from(bytes)), Err(ok)];
    for trip_after in 0..=3 {
        let (data, trailers) = run(parts.clone(), trip_after);
        let trailers = trailers.unwrap();
        let status = &trailers["grpc-status"];
        match trip_after {
            0 => assert!(data.is_empty() && status == "14", "tripped before anything"),
            // Between the last message and the application's trailers: a
            // boundary, so the drain's end comes first.
            1 => assert!(data.len() == 1 && status == "14"),
            // The application's trailers passed: its end stands, nothing follows.
            _ => assert!(data.len() == 1 && status == "0", "trip after {trip_after}"),
        }
    }
}
