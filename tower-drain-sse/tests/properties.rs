//! S2–S5 and the layer's contract, on bodies driven by hand.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures_util::{stream, FutureExt, StreamExt};
use http::{header, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::{mpsc, oneshot};
use tower::{Layer, ServiceExt};
use tower_drain::Drain;
use tower_drain_sse::{SseDrainLayer, StreamEnd};

type Chunks = mpsc::UnboundedSender<Bytes>;

/// A streaming body fed by the test. It holds `_alive` as the application's
/// generator would: dropped with the body.
fn generator(alive: oneshot::Sender<()>) -> (Chunks, impl Body<Data = Bytes, Error = Infallible>) {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let frames = stream::unfold((rx, alive), |(mut rx, alive)| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), (rx, alive)))
    });
    (tx, StreamBody::new(frames))
}

/// A response of `content_type` around a fresh generator.
struct Served<B> {
    chunks: Chunks,
    generator_dropped: oneshot::Receiver<()>,
    body: Pin<Box<B>>,
}

async fn serve<L, B>(layer: L, content_type: &'static str) -> Served<B>
where
    L: Layer<
        tower::util::ServiceFn<
            Box<
                dyn FnMut(
                    Request<()>,
                )
                    -> std::future::Ready<Result<Response<BoxedGen>, Infallible>>,
            >,
        >,
    >,
    L::Service: tower::Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    let (alive, generator_dropped) = oneshot::channel();
    let (chunks, body) = generator(alive);
    let mut body = Some(BoxedGen(Box::pin(body)));
    let handler: Box<dyn FnMut(Request<()>) -> _> = Box::new(move |_req| {
        let mut res = Response::new(body.take().expect("one request"));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        std::future::ready(Ok(res))
    });
    let res = layer
        .layer(tower::service_fn(handler))
        .oneshot(Request::new(()))
        .await
        .unwrap();
    Served {
        chunks,
        generator_dropped,
        body: Box::pin(res.into_body()),
    }
}

/// The generator's body, boxed so the handler has a nameable type.
struct BoxedGen(Pin<Box<dyn Body<Data = Bytes, Error = Infallible> + Send>>);

impl Body for BoxedGen {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.as_mut().poll_frame(cx)
    }
}

/// Reads what is ready without waiting.
fn ready_frames<B: Body<Data = Bytes>>(body: &mut Pin<Box<B>>) -> (Vec<Bytes>, bool)
where
    B::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    loop {
        match body.frame().now_or_never() {
            Some(Some(frame)) => out.push(frame.unwrap().into_data().unwrap()),
            Some(None) => return (out, true),
            None => return (out, false),
        }
    }
}

fn parse(chunks: &[Bytes]) -> Vec<Event> {
    stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>))
        .eventsource()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap()
}

/// One poll: the data frame, or `None` while pending.
fn poll_data<B: Body<Data = Bytes>>(body: &mut Pin<Box<B>>, cx: &mut Context<'_>) -> Option<Bytes>
where
    B::Error: std::fmt::Debug,
{
    match body.as_mut().poll_frame(cx) {
        Poll::Ready(Some(frame)) => Some(frame.unwrap().into_data().unwrap()),
        Poll::Ready(None) => panic!("the stream ended"),
        Poll::Pending => None,
    }
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_terminal_frame_parses_as_an_event_of_its_own() {
    let drain = Drain::new();
    let layer = SseDrainLayer::new(drain.signal())
        .event("bye")
        .reason("deploy")
        .message("new version rolling out")
        .retry(Some(Duration::from_millis(1500)));
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks.send("id: 7\ndata: hello\n\n".into()).unwrap();
    let (mut out, ended) = ready_frames(&mut s.body);
    assert!(!ended);

    drain.trip();
    let (rest, ended) = ready_frames(&mut s.body);
    assert!(ended, "the stream ends after the terminal frame");
    out.extend(rest);

    let events = parse(&out);
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].data.as_str(), events[0].id.as_str()),
        ("hello", "7")
    );
    let end = &events[1];
    assert_eq!(end.event, "bye");
    assert_eq!(end.retry, Some(Duration::from_millis(1500)));
    assert_eq!(
        end.data,
        r#"{"type":"end","reason":"deploy","message":"new version rolling out"}"#
    );
}

#[tokio::test]
async fn a_stream_is_woken_by_the_trip_not_by_a_timer() {
    let drain = Drain::new();
    let mut s = serve(SseDrainLayer::new(drain.signal()), "text/event-stream").await;
    s.chunks.send("data: a\n\n".into()).unwrap();

    let wakes = Arc::new(CountingWaker::default());
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(
        poll_data(&mut s.body, &mut cx).as_deref(),
        Some(&b"data: a\n\n"[..])
    );
    assert_eq!(
        poll_data(&mut s.body, &mut cx),
        None,
        "waiting for the application"
    );
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

    drain.trip();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken by the trip, once");
    let terminal = poll_data(&mut s.body, &mut cx).unwrap();
    assert!(terminal.starts_with(b"event: end\n"));
    assert!(
        s.generator_dropped.await.is_err(),
        "the generator is dropped with the stream"
    );
}

#[tokio::test]
async fn an_event_in_progress_and_what_is_ready_go_out_before_the_terminal_frame() {
    let drain = Drain::new();
    let mut s = serve(SseDrainLayer::new(drain.signal()), "text/event-stream").await;
    s.chunks.send("data: par".into()).unwrap();
    let (mut out, _) = ready_frames(&mut s.body);
    drain.trip();
    assert!(
        ready_frames(&mut s.body).0.is_empty(),
        "mid-event: waits for the rest"
    );
    // The rest of the event, and more the application has ready: all of it
    // goes out (frames pass whole, never split), and the stream ends where
    // the application next waits.
    s.chunks.send("t\n".into()).unwrap();
    s.chunks.send("\ndata: next\n\n".into()).unwrap();
    s.chunks.send("data: ready too\n\n".into()).unwrap();
    let (rest, ended) = ready_frames(&mut s.body);
    assert!(ended);
    out.extend(rest);
    let events = parse(&out);
    let datas: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(&datas[..3], ["part", "next", "ready too"]);
    assert_eq!((events.len(), events[3].event.as_str()), (4, "end"));
    s.chunks
        .send("data: too late\n\n".into())
        .expect_err("the generator is dropped with the stream");
}

#[tokio::test(start_paused = true)]
async fn grace_lets_a_stream_run_on_then_ends_it_at_a_boundary() {
    let drain = Drain::new();
    let layer = SseDrainLayer::new(drain.signal()).grace(Duration::from_secs(10));
    let mut s = serve(layer, "text/event-stream").await;
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(frame) = s.body.frame().await {
            out.push(frame.unwrap().into_data().unwrap());
        }
        out
    });
    drain.trip();
    for i in 0..3 {
        s.chunks.send(format!("data: {i}\n\n").into()).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Grace runs out 10 s after the trip; the stream is between events.
    let out = reader.await.unwrap();
    let events = parse(&out);
    let datas: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(&datas[..3], ["0", "1", "2"]);
    assert_eq!(events[3].event, "end");
    assert!(s.chunks.is_closed(), "the generator is dropped");
}

#[tokio::test(start_paused = true)]
async fn inside_drain_layer_the_deadline_ends_a_stream_in_its_grace_early() {
    let drain = Drain::new();
    let cuts = Arc::new(AtomicUsize::new(0));
    let layer = tower::layer::layer_fn({
        let (drain, cuts) = (drain.clone(), cuts.clone());
        move |svc| {
            let cuts = cuts.clone();
            drain.layer().layer(
                SseDrainLayer::new(drain.signal())
                    .grace(Duration::from_secs(3600))
                    .on_stream_end(move |_| {
                        cuts.fetch_add(1, Ordering::SeqCst);
                    })
                    .layer(svc),
            )
        }
    });
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks.send("data: a\n\n".into()).unwrap();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(frame) = s.body.frame().await {
            out.push(frame.expect("ended cleanly, not cut").into_data().unwrap());
        }
        (out, s.chunks)
    });
    // The grace is an hour, the deadline 5 s: the deadline wins.
    let report = drain.shutdown(Duration::from_secs(5)).await;
    let (out, _chunks) = reader.await.unwrap();
    let events = parse(&out);
    assert_eq!(events.last().unwrap().event, "end");
    assert!(report.deadline_reached());
    assert_eq!(
        (report.completed(), report.ended_early(), report.cut()),
        (0, 1, 0),
        "ended early by its frame, not cut: {report}"
    );
    assert_eq!(cuts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_hook_hears_once_of_a_stream_cut_mid_event() {
    let drain = Drain::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = tower::layer::layer_fn({
        let (drain, seen) = (drain.clone(), seen.clone());
        move |svc| {
            let seen = seen.clone();
            drain.layer().layer(
                SseDrainLayer::new(drain.signal())
                    .on_stream_end(move |cut: &StreamEnd<'_>| {
                        seen.lock()
                            .unwrap()
                            .push((cut.events(), cut.last_event_id().map(String::from)));
                    })
                    .layer(svc),
            )
        }
    });
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks
        .send("id: 41\ndata: a\n\ndata: half-an-ev".into())
        .unwrap();
    // Out before the drain starts: one whole event and half of the next.
    assert_eq!(ready_frames(&mut s.body).0.len(), 1);
    let reader = tokio::spawn(async move {
        let mut frames = 1;
        loop {
            match s.body.frame().await {
                Some(Ok(_)) => frames += 1,
                Some(Err(err)) => return (frames, err.is::<tower_drain::Cut>(), s.chunks),
                None => panic!("a stream mid-event is cut, not ended"),
            }
        }
    });
    let report = drain.shutdown(Duration::from_secs(1)).await;
    let (frames, cut, _chunks) = reader.await.unwrap();
    assert_eq!((frames, cut), (1, true));
    assert_eq!(report.cut(), 1);
    assert_eq!(*seen.lock().unwrap(), [(1, Some("41".to_string()))]);
}

#[tokio::test]
async fn the_hook_sees_what_was_sent_and_never_hears_of_a_natural_end() {
    let drain = Drain::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = SseDrainLayer::new(drain.signal()).on_stream_end({
        let seen = seen.clone();
        move |cut: &StreamEnd<'_>| {
            seen.lock().unwrap().push((
                cut.events(),
                cut.bytes(),
                cut.last_event_id().map(String::from),
            ));
        }
    });

    // Ends by itself, before and after the trip: no hook.
    let mut natural = serve(layer.clone(), "text/event-stream").await;
    natural.chunks.send("data: x\n\n".into()).unwrap();
    drop(natural.chunks);
    assert!(ready_frames(&mut natural.body).1);

    let mut cut = serve(layer, "text/event-stream").await;
    let sent = "id: a1\ndata: x\n\nid: a2\ndata: y\n\n: comment\n";
    cut.chunks.send(sent.into()).unwrap();
    ready_frames(&mut cut.body);
    drain.trip();
    assert!(ready_frames(&mut cut.body).1);
    drop(cut);

    assert_eq!(
        *seen.lock().unwrap(),
        [(2, sent.len() as u64, Some("a2".to_string()))],
        "exactly once, for the cut stream"
    );
}

#[tokio::test]
async fn frames_pass_through_as_the_same_bytes() {
    let drain = Drain::new();
    let mut s = serve(SseDrainLayer::new(drain.signal()), "text/event-stream").await;
    let sent: Vec<Bytes> = (0..4)
        .map(|i| Bytes::from(format!("data: {i}\n\n")))
        .collect();
    for chunk in &sent {
        s.chunks.send(chunk.clone()).unwrap();
    }
    let (got, _) = ready_frames(&mut s.body);
    assert_eq!(got.len(), sent.len());
    for (got, sent) in got.iter().zip(&sent) {
        assert_eq!(got.as_ptr(), sent.as_ptr(), "not copied");
    }
}

#[tokio::test]
async fn ndjson_stream_ends_with_one_json_line() {
    let drain = Drain::new();
    let mut s = serve(SseDrainLayer::new(drain.signal()), "application/x-ndjson").await;
    s.chunks.send("{\"token\":\"a\"}\n{\"tok".into()).unwrap();
    let (mut out, _) = ready_frames(&mut s.body);
    drain.trip();
    s.chunks.send("en\":\"b\"}\n".into()).unwrap();
    let (rest, ended) = ready_frames(&mut s.body);
    assert!(ended);
    out.extend(rest);
    let text = String::from_utf8(out.concat().to_vec()).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    let end: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "server_shutdown");
    assert!(end["message"].is_string());
}

#[tokio::test]
async fn other_responses_pass_through_untouched() {
    let drain = Drain::new();
    let mut s = serve(SseDrainLayer::new(drain.signal()), "application/json").await;
    drain.trip();
    s.chunks.send("{\"not\":\"a stream\"}".into()).unwrap();
    drop(s.chunks);
    let (out, ended) = ready_frames(&mut s.body);
    assert!(ended);
    assert_eq!(out.concat(), b"{\"not\":\"a stream\"}"[..]);
}

#[tokio::test]
async fn drain_layer_counts_until_the_terminal_frame_is_out() {
    let drain = Drain::new();
    let layer = tower::layer::layer_fn({
        let drain = drain.clone();
        move |svc| {
            drain
                .layer()
                .layer(SseDrainLayer::new(drain.signal()).layer(svc))
        }
    });
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks.send("data: a\n\n".into()).unwrap();
    ready_frames(&mut s.body);
    drain.trip();
    assert_eq!(drain.in_flight(), 1);

    let terminal = s.body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(terminal.starts_with(b"event: end"));
    assert_eq!(
        drain.in_flight(),
        1,
        "still counted while the frame goes out"
    );
    assert!(s.body.frame().await.is_none());
    assert_eq!(drain.in_flight(), 0);
    let drained: Pin<Box<dyn Future<Output = ()>>> = Box::pin(drain.drained());
    drained.await;
}

/// What the application has ready is delivered, even when first asked for
/// after the trip: a complete answer is never replaced by the terminal frame.
#[tokio::test]
async fn a_complete_answer_first_polled_after_the_trip_arrives_whole() {
    let drain = Drain::new();
    let mut s = serve(SseDrainLayer::new(drain.signal()), "application/x-ndjson").await;
    s.chunks.send("{\"n\":1}\n".into()).unwrap();
    s.chunks.send("{\"n\":2}\n".into()).unwrap();
    drop(s.chunks);
    drain.trip();
    let (out, ended) = ready_frames(&mut s.body);
    assert!(ended);
    assert_eq!(
        out.concat(),
        b"{\"n\":1}\n{\"n\":2}\n"[..],
        "no terminal line"
    );
}

/// A stream that always has an event ready never waits, so neither the trip
/// nor the deadline finds a place where it would wait to end it cleanly:
/// it runs on through the first half of the unwind, then `DrainLayer` cuts
/// it, ready or not. Everything it sent arrived whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_ready_stream_is_cut_when_the_unwind_is_over() {
    let drain = Drain::new();
    let svc = tower::ServiceBuilder::new()
        .layer(drain.layer())
        .layer(SseDrainLayer::new(drain.signal()))
        .service(tower::service_fn(|_req: Request<()>| async {
            let events = stream::repeat_with(|| {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"data: token\n\n")))
            });
            let mut res = Response::new(StreamBody::new(events));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/event-stream"),
            );
            Ok::<_, Infallible>(res)
        }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let client = tokio::spawn(async move {
        let mut body = Box::pin(res.into_body());
        let mut tokens = 0u64;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    assert_eq!(frame.into_data().unwrap(), "data: token\n\n");
                    tokens += 1;
                }
                Some(Err(err)) => return (tokens, err.is::<tower_drain::Cut>()),
                None => panic!("an endless stream ended"),
            }
            if tokens & 63 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    while drain.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    drain.trip();
    tokio::task::yield_now().await;
    assert_eq!(
        drain.in_flight(),
        1,
        "ready events keep flowing after the trip"
    );

    let report = drain.shutdown(Duration::ZERO).await;
    let (tokens, cut) = tokio::time::timeout(Duration::from_secs(20), client)
        .await
        .expect("the stream ended")
        .unwrap();
    assert!(tokens > 1 && cut);
    assert_eq!(
        (report.ended_early(), report.cut(), report.unfinished()),
        (0, 1, 0),
        "{report}"
    );
}

/// A stream in the middle of an event at the deadline, whose application
/// has the rest ready: the rest goes out, then the terminal frame, and the
/// stream ends early, not cut (the layer used to drop the frame that
/// completed the event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_progress_at_the_deadline_is_completed_before_the_terminal_frame() {
    let drain = Drain::new();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let layer = tower::layer::layer_fn({
        let (drain, ends) = (drain.clone(), ends.clone());
        move |svc| {
            let ends = ends.clone();
            drain.layer().layer(
                SseDrainLayer::new(drain.signal())
                    .grace(Duration::from_secs(3600))
                    .on_stream_end(move |end: &StreamEnd<'_>| {
                        ends.lock().unwrap().push((
                            end.ending(),
                            end.events(),
                            end.last_event_id().map(String::from),
                        ));
                    })
                    .layer(svc),
            )
        }
    });
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks.send("id: 1\ndata: a\n".into()).unwrap();
    let (mut out, _) = ready_frames(&mut s.body);
    drain.trip();
    // The rest of the event, ready before the deadline's first poll.
    s.chunks.send("\nid: 2\ndata: b\n\n".into()).unwrap();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(frame) = s.body.frame().await {
            out.push(frame.expect("ended early, not cut").into_data().unwrap());
        }
        (out, s.chunks)
    });
    let report = drain.shutdown(Duration::ZERO).await;
    let (rest, _chunks) = reader.await.unwrap();
    out.extend(rest);
    let events = parse(&out);
    let datas: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(&datas[..2], ["a", "b"]);
    assert_eq!(events[2].event, "end");
    assert_eq!((report.ended_early(), report.cut()), (1, 0), "{report}");
    assert_eq!(
        *ends.lock().unwrap(),
        [(tower_drain_sse::Ending::Early, 2, Some("2".to_string()))],
        "the hook saw what the client received"
    );
}

/// Cut at the deadline mid-event, the hook hears exactly what the client
/// received: nothing the layers dropped on the way.
#[tokio::test(start_paused = true)]
async fn a_stream_cut_mid_event_tells_the_hook_only_what_the_client_received() {
    let drain = Drain::new();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let layer = tower::layer::layer_fn({
        let (drain, ends) = (drain.clone(), ends.clone());
        move |svc| {
            let ends = ends.clone();
            drain.layer().layer(
                SseDrainLayer::new(drain.signal())
                    .on_stream_end(move |end: &StreamEnd<'_>| {
                        ends.lock()
                            .unwrap()
                            .push((end.ending(), end.events(), end.bytes()));
                    })
                    .layer(svc),
            )
        }
    });
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks.send("id: 1\ndata: a\n".into()).unwrap();
    let (out, _) = ready_frames(&mut s.body);
    let received: usize = out.iter().map(Bytes::len).sum();
    let reader = tokio::spawn(async move {
        let result = s.body.frame().await;
        (result.map(|frame| frame.is_err()), s.chunks)
    });
    let report = drain.shutdown(Duration::ZERO).await;
    let (cut, _chunks) = reader.await.unwrap();
    assert_eq!(cut, Some(true), "mid-event and waiting: cut");
    assert_eq!(report.cut(), 1, "{report}");
    assert_eq!(
        *ends.lock().unwrap(),
        [(tower_drain_sse::Ending::Cut, 0, received as u64)]
    );
}

/// A complete gRPC answer (message and `OK`) that is first polled after the
/// deadline: it goes out with its own status, not `UNAVAILABLE`, which
/// would tell the client to retry a call that already ran.
#[tokio::test]
async fn a_complete_grpc_answer_first_polled_after_the_deadline_keeps_its_status() {
    let drain = Drain::new();
    let svc = tower::ServiceBuilder::new()
        .layer(drain.layer())
        .layer(SseDrainLayer::new(drain.signal()))
        .service(tower::service_fn(|_req: Request<()>| async {
            let mut ok = header::HeaderMap::new();
            ok.insert("grpc-status", header::HeaderValue::from_static("0"));
            let frames = stream::iter([
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))),
                Ok(Frame::trailers(ok)),
            ]);
            let mut res = Response::new(StreamBody::new(frames));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/grpc"),
            );
            Ok::<_, Infallible>(res)
        }));
    let req = Request::builder()
        .version(http::Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::ZERO).await }
    });
    while !drain.signal().is_forced() {
        tokio::task::yield_now().await;
    }
    let mut body = Box::pin(res.into_body());
    let message = body.frame().await.unwrap().unwrap();
    assert_eq!(message.into_data().unwrap(), &b"\0\0\0\0\x02hi"[..]);
    let trailers = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    assert!(body.frame().await.is_none());
    let report = shutdown.await.unwrap();
    assert_eq!((report.completed(), report.cut()), (1, 0), "{report}");
}

/// The grace timer is tokio's. Polled with no tokio runtime around (another
/// executor), a stream ends as if the grace were zero instead of panicking.
#[test]
fn grace_outside_a_tokio_runtime_is_no_grace() {
    let drain = Drain::new();
    let layer = SseDrainLayer::new(drain.signal()).grace(Duration::from_secs(60));
    let (alive, _generator_dropped) = oneshot::channel();
    let (chunks, body) = generator(alive);
    let mut body = Some(body);
    let svc = layer.layer(tower::service_fn(move |_req: Request<()>| {
        let mut res = Response::new(body.take().expect("one request"));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/event-stream"),
        );
        std::future::ready(Ok::<_, Infallible>(res))
    }));
    let res = svc
        .oneshot(Request::new(()))
        .now_or_never()
        .unwrap()
        .unwrap();
    let mut body = Box::pin(res.into_body());
    chunks.send("data: a\n\n".into()).unwrap();
    assert!(body.frame().now_or_never().is_some());
    drain.trip();
    let terminal = body.frame().now_or_never().unwrap().unwrap().unwrap();
    assert!(terminal.into_data().unwrap().starts_with(b"event: end"));
}

/// A stream dropped unfinished after the deadline tells the hook from its
/// `Drop`. If that drop happens while the thread unwinds from another panic,
/// a hook that panics too must not abort the process.
#[tokio::test(start_paused = true)]
async fn a_hook_that_panics_in_a_drop_during_a_panic_does_not_abort() {
    let drain = Drain::new();
    let layer = tower::layer::layer_fn({
        let drain = drain.clone();
        move |svc| {
            drain.layer().layer(
                SseDrainLayer::new(drain.signal())
                    .on_stream_end(|_| panic!("the hook failed"))
                    .layer(svc),
            )
        }
    });
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks.send("data: half an ev".into()).unwrap();
    ready_frames(&mut s.body);
    let report = drain.shutdown(Duration::ZERO).await;
    assert!(drain.signal().is_forced(), "{report}");

    let body = s.body;
    let unwinding = std::thread::spawn(move || {
        let _body = body;
        panic!("the handler failed");
    });
    let panic = unwinding.join().unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the handler failed"));
}

/// A stream the drain does not count (an exempt route) is ended early all
/// the same, and is not taken off the admitted requests that completed.
#[tokio::test]
async fn an_exempt_stream_ended_early_is_not_counted_among_the_admitted() {
    let drain = Drain::new();
    let svc = tower::ServiceBuilder::new()
        .layer(drain.layer().exempt(|req| req.uri().path() == "/log"))
        .layer(SseDrainLayer::new(drain.signal()))
        .service(tower::service_fn(|req: Request<()>| async move {
            let body = if req.uri().path() == "/log" {
                // One event, then a tail that waits forever.
                let first = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                    b"data: log\n\n",
                )))]);
                StreamBody::new(first.chain(stream::pending()).boxed())
            } else {
                let whole = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                    b"data: work\n\n",
                )))]);
                StreamBody::new(whole.boxed())
            };
            let mut res = Response::new(body);
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/event-stream"),
            );
            Ok::<_, Infallible>(res)
        }));
    let log = svc.clone().oneshot(Request::get("/log").body(()).unwrap());
    let log = Box::pin(log.await.unwrap().into_body());
    let work = svc.oneshot(Request::get("/work").body(()).unwrap());
    let work = work.await.unwrap().into_body();
    assert_eq!(drain.in_flight(), 1, "only the admitted request counts");

    drain.trip();
    let log = log.collect().await.unwrap().to_bytes();
    assert!(
        log.ends_with(b"retry: 3000\n\n"),
        "the log tail ended early"
    );
    work.collect().await.unwrap();
    let report = drain.shutdown(Duration::ZERO).await;
    assert_eq!(
        (report.completed(), report.ended_early()),
        (1, 0),
        "{report}"
    );
}

/// A gRPC answer whose status went out after the deadline, dropped by the
/// server right after its trailers (as hyper's HTTP/2 server does, without
/// polling for the end): it completed, and the hook does not hear of a cut.
#[tokio::test]
async fn a_grpc_answer_dropped_after_its_trailers_is_not_reported_cut() {
    let drain = Drain::new();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let svc = tower::ServiceBuilder::new()
        .layer(drain.layer())
        .layer(SseDrainLayer::new(drain.signal()).on_stream_end({
            let ends = ends.clone();
            move |end: &StreamEnd<'_>| ends.lock().unwrap().push(end.ending())
        }))
        .service(tower::service_fn(|_req: Request<()>| async {
            let mut ok = header::HeaderMap::new();
            ok.insert("grpc-status", header::HeaderValue::from_static("0"));
            let frames = stream::iter([
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))),
                Ok(Frame::trailers(ok)),
            ]);
            let mut res = Response::new(StreamBody::new(frames));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/grpc"),
            );
            Ok::<_, Infallible>(res)
        }));
    let req = Request::builder()
        .version(http::Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::ZERO).await }
    });
    while !drain.signal().is_forced() {
        tokio::task::yield_now().await;
    }
    let mut body = Box::pin(res.into_body());
    body.frame().await.unwrap().unwrap();
    assert!(body.frame().await.unwrap().unwrap().is_trailers());
    drop(body);
    let report = shutdown.await.unwrap();
    assert_eq!(report.cut(), 0, "{report}");
    assert!(
        ends.lock().unwrap().is_empty(),
        "{:?}",
        ends.lock().unwrap()
    );
}

/// A body between the two layers that never says it has ended (as
/// tower-http's compression body does), read slowly: the terminal frame
/// went out, but the body was cut when the unwind was over before it
/// could end. It counts as cut, not also as ended early.
#[tokio::test(start_paused = true)]
async fn a_stream_cut_after_its_terminal_frame_counts_once_as_cut() {
    pin_project_lite::pin_project! {
        struct NeverSaysEnd<B> {
            #[pin]
            inner: B,
        }
    }
    impl<B: Body> Body for NeverSaysEnd<B> {
        type Data = B::Data;
        type Error = B::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
            self.project().inner.poll_frame(cx)
        }
    }

    let drain = Drain::new();
    let layer = tower::layer::layer_fn({
        let drain = drain.clone();
        move |svc| {
            drain.layer().layer(
                tower::util::MapResponseLayer::new(|res: Response<_>| {
                    res.map(|inner| NeverSaysEnd { inner })
                })
                .layer(SseDrainLayer::new(drain.signal()).layer(svc)),
            )
        }
    });
    let mut s = serve(layer, "text/event-stream").await;
    s.chunks.send("data: a\n\n".into()).unwrap();
    ready_frames(&mut s.body);

    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(Duration::ZERO).await }
    });
    while !drain.signal().is_forced() {
        tokio::task::yield_now().await;
    }
    let terminal = s.body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(terminal.starts_with(b"event: end"));
    // Not read again until the unwind is over: the report is made first.
    let first = shutdown.await.unwrap();
    assert_eq!(first.unfinished(), 1, "{first}");
    let cut = s.body.frame().await.unwrap();
    assert!(cut.is_err(), "cut when the unwind is over");
    let report = drain.shutdown(Duration::ZERO).await;
    assert_eq!(
        (report.ended_early(), report.cut(), report.unfinished()),
        (0, 1, 0),
        "{report}"
    );
}

/// A layer and its services keep nothing once they are dropped: the hook's
/// captures are released (a channel it holds closes).
#[test]
fn a_layer_and_its_services_release_the_hook_when_dropped() {
    let drain = Drain::new();
    let held = Arc::new(());
    let layer = SseDrainLayer::new(drain.signal()).on_stream_end({
        let held = held.clone();
        move |_| drop(held.clone())
    });
    let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
    }));
    assert_eq!(Arc::strong_count(&held), 2);
    drop((layer, svc));
    assert_eq!(Arc::strong_count(&held), 1, "the hook was dropped");
}
