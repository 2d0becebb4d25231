//! S1: the terminal frame lands only where the application would wait, and
//! only at an event boundary, whatever the events, the chunking, the waits
//! and the trip point, as judged by an independent WHATWG parser
//! (`eventsource-stream`), not by this crate's scanner.
//!
//! For every case, with `p` the bytes of the application's stream that went
//! out before the terminal frame:
//! - the output is exactly `stream[..p]` followed by the terminal frame, so
//!   every event passed arrives byte for byte;
//! - parsed, it is the events of `stream[..p]` and then the terminal event:
//!   no partial event was completed by, or merged into, the terminal frame;
//! - `p` is the first place at or after the trip where the application
//!   waits and the stream is at a boundary: everything the application had
//!   ready was delivered;
//! - with no such place, the stream ends by itself, whole, with no terminal
//!   frame.

use std::convert::Infallible;

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures_util::{stream, FutureExt, StreamExt};
use proptest::prelude::*;
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;

mod common;
use common::{Part, Stop};

/// Parses a whole byte stream with the independent parser.
fn parse(bytes: &[u8]) -> Vec<Event> {
    let chunks = stream::iter([Ok::<_, Infallible>(Bytes::copy_from_slice(bytes))]);
    chunks
        .eventsource()
        .map(|event| event.expect("well-formed SSE"))
        .collect::<Vec<_>>()
        .now_or_never()
        .expect("parsing in-memory bytes never waits")
}

/// The length of the longest prefix of `bytes` that ends between characters.
fn whole_chars(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(err) if err.error_len().is_none() => err.valid_up_to(),
        Err(err) => panic!("the generator writes UTF-8: {err}"),
    }
}

/// The events a client has received once `prefix` has arrived. The parser
/// waits, at a trailing CR, for a LF that might belong to it; a LF there means
/// nothing more (CRLF is one line end), so one is added to settle it.
fn events_in(prefix: &[u8]) -> Vec<Event> {
    // A character cut in two is inside a line: it has no say in what was
    // dispatched, and the parser would reject it at the end of input.
    let prefix = &prefix[..whole_chars(prefix)];
    if prefix.ends_with(b"\r") {
        parse(&[prefix, b"\n"].concat())
    } else {
        parse(prefix)
    }
}

/// Whether `prefix` ends at an event boundary: no field line is waiting for
/// its event's blank line, and an event appended to it is read as exactly
/// that event.
///
/// The first condition matters where the second cannot see: a pending
/// `id:` line that repeats the last event's ID changes nothing a parser
/// reports, yet the position is inside an event, and the layer rightly
/// waits for its end (found by a 20 000-case run).
fn is_boundary(prefix: &[u8]) -> bool {
    if whole_chars(prefix) < prefix.len() {
        return false;
    }
    if field_pending(prefix) {
        return false;
    }
    let before = events_in(prefix);
    let mut probed = prefix.to_vec();
    probed.extend_from_slice(b"data: PROBE\n\n");
    let after = parse(&probed);
    let last_id = before.last().map_or("", |e| e.id.as_str());
    after.len() == before.len() + 1
        && after[..before.len()] == before[..]
        && after.last().is_some_and(|probe| {
            probe.event == "message"
                && probe.data == "PROBE"
                && probe.id == last_id
                && probe.retry.is_none()
        })
}

/// Whether a field line (not a comment) has come since the last blank line,
/// with CR, LF and CRLF all ending lines.
fn field_pending(prefix: &[u8]) -> bool {
    let mut pending = false;
    let mut line_start = true;
    let mut after_cr = false;
    for &byte in prefix {
        match byte {
            b'\n' if after_cr => after_cr = false,
            b'\r' | b'\n' => {
                if line_start {
                    pending = false; // a blank line: the event is dispatched
                }
                line_start = true;
                after_cr = byte == b'\r';
            }
            _ => {
                if line_start && byte != b':' {
                    pending = true;
                }
                line_start = false;
                after_cr = false;
            }
        }
    }
    pending || !line_start
}

#[derive(Clone, Copy, Debug)]
enum Ending {
    Lf,
    CrLf,
    Cr,
    /// LF or CRLF, line by line.
    Mixed,
}

fn line_ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        Just(Ending::Lf),
        Just(Ending::CrLf),
        Just(Ending::Cr),
        Just(Ending::Mixed)
    ]
}

/// Text for a field value: no line breaks; ASCII, spaces, colons, multi-byte.
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 :{}\"é✓]{1,12}").unwrap()
}

#[derive(Clone, Debug)]
struct SseEvent {
    name: Option<String>,
    id: Option<u32>,
    comment: Option<String>,
    data: Vec<String>,
    ending: Ending,
}

fn event() -> impl Strategy<Value = SseEvent> {
    (
        proptest::option::of("[a-z]{1,8}"),
        proptest::option::of(0u32..1000),
        proptest::option::of(text()),
        proptest::collection::vec(text(), 1..4),
        line_ending(),
    )
        .prop_map(|(name, id, comment, data, ending)| SseEvent {
            name,
            id,
            comment,
            data,
            ending,
        })
}

impl SseEvent {
    fn encode(&self, out: &mut Vec<u8>, flip: &mut bool) {
        let mut lines = Vec::new();
        if let Some(comment) = &self.comment {
            lines.push(format!(":{comment}"));
        }
        if let Some(name) = &self.name {
            lines.push(format!("event: {name}"));
        }
        if let Some(id) = self.id {
            lines.push(format!("id: {id}"));
        }
        lines.extend(self.data.iter().map(|d| format!("data: {d}")));
        lines.push(String::new());
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(match self.ending {
                Ending::Lf => b"\n",
                Ending::CrLf => b"\r\n",
                Ending::Cr => b"\r",
                Ending::Mixed => {
                    *flip = !*flip;
                    if *flip {
                        b"\r\n"
                    } else {
                        b"\n"
                    }
                }
            });
        }
    }
}

/// A stream cut into chunks: the bytes, the chunk ends (sorted, last =
/// len), whether the application waits after each chunk, and whether it
/// ends by itself after the last one (or would run on forever).
#[derive(Clone, Debug)]
struct Stream {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    waits: Vec<bool>,
    ends_by_itself: bool,
}

impl Stream {
    /// Where the application waits: after a chunk it waits after, and after
    /// the last one if it never ends by itself.
    fn waits_at(&self, chunk: usize) -> bool {
        if chunk == self.ends.len() {
            !self.ends_by_itself
        } else {
            self.waits[chunk - 1]
        }
    }

    fn parts(&self) -> Vec<Part> {
        let mut parts = Vec::new();
        let mut start = 0;
        for (&end, &wait) in self.ends.iter().zip(&self.waits) {
            parts.push(Part::Data(Bytes::copy_from_slice(&self.bytes[start..end])));
            if wait && end < self.bytes.len() {
                parts.push(Part::Wait);
            }
            start = end;
        }
        if !self.ends_by_itself {
            parts.push(Part::Hang);
        }
        parts
    }
}

/// A stream, and after how many chunks the drain trips.
fn case() -> impl Strategy<Value = (Stream, usize)> {
    proptest::collection::vec(event(), 1..8)
        .prop_map(|events| {
            let (mut out, mut flip) = (Vec::new(), false);
            for event in &events {
                event.encode(&mut out, &mut flip);
            }
            out
        })
        .prop_flat_map(|bytes| {
            let len = bytes.len();
            let cuts = proptest::collection::btree_set(1..len, 0..len.min(24));
            (Just(bytes), cuts)
        })
        .prop_flat_map(|(bytes, cuts)| {
            let mut ends: Vec<usize> = cuts.into_iter().collect();
            ends.push(bytes.len());
            let chunks = ends.len();
            (
                Just(bytes),
                Just(ends),
                proptest::collection::vec(any::<bool>(), chunks),
                any::<bool>(),
                0..=chunks,
            )
        })
        .prop_map(|(bytes, ends, waits, ends_by_itself, trip_after)| {
            let stream = Stream {
                bytes,
                ends,
                waits,
                ends_by_itself,
            };
            (stream, trip_after)
        })
}

/// Runs the stream through the layer, tripping after `trip_after` frames.
/// With `hook`, the layer counts what passes (the hook reads it); without,
/// it checks frames at their tails where it can. Both must frame alike.
fn run(stream: &Stream, trip_after: usize, hook: bool) -> (Vec<Bytes>, Stop) {
    let drain = Drain::new();
    let mut layer = SseDrainLayer::new(drain.signal());
    if hook {
        layer = layer.on_stream_end(|cut| assert!(cut.bytes() > 0 || cut.events() == 0));
    }
    let body = std::pin::pin!(common::through(&layer, "text/event-stream", stream.parts()));
    let (frames, stop) = common::drive(body, |received| {
        if received == trip_after {
            drain.trip();
        }
    });
    let data = frames
        .into_iter()
        .map(|frame| frame.into_data().expect("SSE is data frames only"))
        .collect();
    (data, stop)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_terminal_frame_lands_only_where_the_stream_waits_at_an_event_boundary(
        (stream, trip_after) in case(),
        hook in any::<bool>(),
    ) {
        let (out, stop) = run(&stream, trip_after, hook);
        let bytes = &stream.bytes;
        let all = events_in(bytes);

        // Where the oracle says the stream must end: the first chunk end at
        // or after the trip where the application waits at a boundary.
        let due = (trip_after.max(1)..=stream.ends.len())
            .find(|&chunk| stream.waits_at(chunk) && is_boundary(&bytes[..stream.ends[chunk - 1]]))
            .map(|chunk| stream.ends[chunk - 1]);

        let Some(p) = due else {
            // Never waiting at a boundary after the trip: the whole stream,
            // as the application sent it, ended as it ended.
            prop_assert_eq!(&out.concat()[..], &bytes[..]);
            prop_assert_eq!(stop, if stream.ends_by_itself { Stop::Ended } else { Stop::Hangs });
            return Ok(());
        };
        prop_assert_eq!(stop, Stop::Ended);
        let Some((terminal, passed)) = out.split_last() else {
            panic!("the stream ended without a terminal frame")
        };
        prop_assert!(terminal.starts_with(b"event: end\n"), "{terminal:?}");
        prop_assert_eq!(&passed.concat()[..], &bytes[..p], "passed bytes intact, up to the wait");

        let mut expected = events_in(&bytes[..p]);
        prop_assert_eq!(&expected[..], &all[..expected.len()], "a prefix of the stream's events");
        let got = parse(&out.concat());
        let end = got.last().unwrap();
        prop_assert_eq!(end.event.as_str(), "end");
        prop_assert!(end.data.contains(r#""reason":"server_shutdown""#));
        prop_assert_eq!(end.retry, Some(std::time::Duration::from_secs(3)));
        expected.push(end.clone());
        prop_assert_eq!(&got, &expected, "the terminal frame is an event of its own");
    }
}

/// A stream whose every frame is ready (a complete answer) is never ended by
/// the drain, wherever the trip comes: it ends by itself.
#[test]
fn a_stream_that_never_waits_ends_by_itself() {
    let bytes = b"data: a\n\ndata: b\n\ndata: c\n\n";
    let stream = Stream {
        bytes: bytes.to_vec(),
        ends: vec![9, 18, bytes.len()],
        waits: vec![false; 3],
        ends_by_itself: true,
    };
    for trip_after in 0..=3 {
        for hook in [false, true] {
            let (out, stop) = run(&stream, trip_after, hook);
            assert_eq!(stop, Stop::Ended);
            assert_eq!(out.concat(), &bytes[..], "trip after {trip_after}");
        }
    }
}

#[test]
fn mixed_line_endings_and_a_split_crlf_keep_their_boundaries() {
    // A CRLF split over two chunks, then events with each line ending; the
    // application waits after every chunk.
    let bytes = b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\ndata: d\r\n\n";
    let ends = vec![8, 9, 12, 20, 30, bytes.len()];
    let stream = Stream {
        bytes: bytes.to_vec(),
        waits: vec![true; ends.len()],
        ends,
        ends_by_itself: false,
    };
    for (trip_after, hook) in (0..=stream.ends.len()).flat_map(|t| [(t, false), (t, true)]) {
        let (out, _) = run(&stream, trip_after, hook);
        let got = parse(&out.concat());
        let datas: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
        let n = datas.len() - 1;
        assert_eq!(
            &datas[..n],
            &["a", "b", "c", "d"][..n],
            "trip after {trip_after}"
        );
        assert_eq!(got[n].event, "end");
    }
}

/// Found by a long run: a frame that ends after an `id:` line repeating the
/// last event's ID ends inside an event, though no parser could tell. The
/// terminal frame waits for that event's end.
#[test]
fn a_pending_id_line_is_inside_an_event() {
    let bytes = b"id: 428\r\ndata: a\r\n\r\nid: 428\r\ndata: b\n\n";
    let ends = vec![20 + 9, bytes.len()];
    assert!(!is_boundary(&bytes[..ends[0]]));
    assert!(is_boundary(&bytes[..20]));
    let stream = Stream {
        bytes: bytes.to_vec(),
        ends,
        waits: vec![true, true],
        ends_by_itself: false,
    };
    let (out, _) = run(&stream, 1, false);
    assert_eq!(out.len(), 3, "both frames, then the terminal one");
    let got = parse(&out.concat());
    let datas: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(&datas[..2], ["a", "b"]);
    assert_eq!(got[2].event, "end");
}
