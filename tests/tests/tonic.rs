//! tonic 0.14 on 127.0.0.1 with `DrainLayer` and `SseDrainLayer`, driven by
//! a real tonic client: P7 end to end, and gRPC server streams ended with
//! `UNAVAILABLE` after their last whole message.

use std::net::SocketAddr;
use std::pin::Pin;

use futures_util::{stream, Stream};
use tokio::sync::oneshot;
use tonic::service::LayerExt;
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::ServiceBuilder;
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;
use tower_drain_tests::{listen, within, Gate};

#[allow(clippy::all, missing_debug_implementations, unreachable_pub)]
mod chat {
    tonic::include_proto!("chat");
}

use chat::chat_client::ChatClient;
use chat::chat_server::{Chat, ChatServer};
use chat::{Answer, Question, Token};

const DRAINING: &str = "chat server is draining";

struct ChatService {
    gate: Gate,
}

#[tonic::async_trait]
impl Chat for ChatService {
    /// Answers at once, or, for the text "wait", once the test opens the
    /// gate.
    async fn ask(&self, request: Request<Question>) -> Result<Response<Answer>, Status> {
        let question = request.into_inner().text;
        if question == "wait" {
            self.gate.pass().await;
        }
        let text = format!("echo: {question}");
        Ok(Response::new(Answer { text }))
    }

    type StreamStream = Pin<Box<dyn Stream<Item = Result<Token, Status>> + Send>>;

    /// `tokens` tokens, `eager` of them at once and the rest one per gate
    /// pass; for the text "wait", the answer itself waits for the gate, and
    /// then every token is ready at once.
    async fn stream(
        &self,
        request: Request<Question>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let Question {
            tokens,
            eager,
            text,
        } = request.into_inner();
        if text == "wait" {
            self.gate.pass().await;
            let all = (0..tokens).map(|index| {
                Ok(Token {
                    index,
                    text: format!("token-{index}"),
                })
            });
            return Ok(Response::new(Box::pin(stream::iter(all))));
        }
        let gate = self.gate.clone();
        let tokens = stream::unfold(0, move |index| {
            let gate = gate.clone();
            async move {
                if index == tokens {
                    return None;
                }
                if index >= eager {
                    gate.pass().await;
                }
                let token = Token {
                    index,
                    text: format!("token-{index}"),
                };
                Some((Ok(token), index + 1))
            }
        });
        Ok(Response::new(Box::pin(tokens)))
    }
}

/// A tonic server with both layers. It stops (GOAWAY) once drained *and*
/// the test is done: stopping at `drained()` alone would, with nothing in
/// flight, close the server at the trip itself, and late requests would meet
/// a GOAWAY instead of the clean `UNAVAILABLE` under test.
async fn serve(drain: &Drain, gate: Gate) -> (SocketAddr, oneshot::Sender<()>) {
    let (listener, addr) = listen().await;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let (done, test_done) = oneshot::channel::<()>();
    let drained = drain.drained();
    let server = Server::builder()
        .layer(drain.layer().grpc_message(DRAINING))
        .layer(SseDrainLayer::new(drain.signal()))
        .add_service(ChatServer::new(ChatService { gate }))
        .serve_with_incoming_shutdown(incoming, async move {
            drained.await;
            let _ = test_done.await;
        });
    tokio::spawn(server);
    (addr, done)
}

async fn client(addr: SocketAddr) -> ChatClient<tonic::transport::Channel> {
    within("connect", ChatClient::connect(format!("http://{addr}")))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_is_answered_before_the_trip_and_unavailable_after() {
    let drain = Drain::new();
    let (addr, _done) = serve(&drain, Gate::new()).await;
    let mut client = client(addr).await;
    let question = || Question {
        text: "hi".into(),
        ..Question::default()
    };

    let answer = within("ask", client.ask(question())).await.unwrap();
    assert_eq!(answer.into_inner().text, "echo: hi");

    drain.trip();
    let status = within("ask after trip", client.ask(question()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), DRAINING);
    within("drained", drain.drained()).await;
}

/// A server stream in progress at the trip, whatever the trip point: every
/// whole message arrives, then `UNAVAILABLE`; no decode error, no `Internal`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_stream_ends_unavailable_after_its_last_whole_message() {
    for eager in 0..=5 {
        let drain = Drain::new();
        let (addr, _done) = serve(&drain, Gate::new()).await;
        let mut client = client(addr).await;
        let question = Question {
            text: String::new(),
            tokens: 10,
            eager,
        };
        let mut tokens = within("stream", client.stream(question))
            .await
            .unwrap()
            .into_inner();

        let mut got = Vec::new();
        for _ in 0..eager {
            got.push(
                within("token", tokens.message())
                    .await
                    .unwrap()
                    .expect("a token"),
            );
        }
        assert_eq!(drain.in_flight(), 1);
        drain.trip();

        let status = loop {
            match within("stream end", tokens.message()).await {
                Ok(Some(token)) => got.push(token),
                Ok(None) => panic!("eager {eager}: the stream ended without a status"),
                Err(status) => break status,
            }
        };
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "eager {eager}: {status:?}"
        );
        assert!(status.message().contains("shutting down"), "{status:?}");
        assert_eq!(
            got.len(),
            eager as usize,
            "every token sent before the trip, no more"
        );
        for (i, token) in got.iter().enumerate() {
            assert_eq!(
                (token.index as usize, token.text.as_str()),
                (i, format!("token-{i}").as_str())
            );
        }

        // The count ends with the trailers.
        within("drained", drain.drained()).await;
        assert_eq!(drain.in_flight(), 0);
    }
}

/// The health recipe: the drain layers go on the chat service alone (so the
/// health service keeps answering through the drain), and the health status
/// flips to `NOT_SERVING` at the trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_serving_before_the_trip_and_not_serving_after() {
    let drain = Drain::new();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_serving::<ChatServer<ChatService>>().await;
    tokio::spawn({
        let tripped = drain.signal().tripped();
        async move {
            tripped.await;
            reporter.set_not_serving::<ChatServer<ChatService>>().await;
        }
    });
    let chat = ServiceBuilder::new()
        .layer(drain.layer().grpc_message(DRAINING))
        .layer(SseDrainLayer::new(drain.signal()))
        .named_layer(ChatServer::new(ChatService { gate: Gate::new() }));

    let (listener, addr) = listen().await;
    let (_done, test_done) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(health_service)
            .add_service(chat)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = test_done.await;
                },
            ),
    );
    let channel = within(
        "connect",
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let check = || HealthCheckRequest {
        service: "chat.Chat".into(),
    };
    let status = within("check", health.check(check()))
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);

    drain.trip();
    // The flip runs on its own task: wait for it (bounded).
    within("NOT_SERVING", async {
        while health.check(check()).await.unwrap().into_inner().status()
            != ServingStatus::NotServing
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Meanwhile the chat service itself refuses.
    let question = Question {
        text: "hi".into(),
        ..Question::default()
    };
    let refused = within("ask", ChatClient::new(channel).ask(question))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
}

/// `Shutdown::server_stop` handed to tonic's `serve_with_incoming_shutdown`:
/// during the drain a call gets the clean `UNAVAILABLE` (no GOAWAY yet), the
/// stream in progress finishes, and the server returns once the drain is
/// over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stop_ends_tonic_serve_with_shutdown_after_the_drain() {
    use tower_drain::shutdown::Shutdown;

    let drain = Drain::new();
    let (pull, pulled) = oneshot::channel::<()>();
    let shutdown = Shutdown::with_trigger(&drain, async move {
        let _ = pulled.await;
    });
    let gate = Gate::new();
    let (listener, addr) = listen().await;
    let server = tokio::spawn(
        Server::builder()
            .layer(drain.layer().grpc_message(DRAINING))
            .layer(SseDrainLayer::new(drain.signal()).grace(std::time::Duration::from_secs(60)))
            .add_service(ChatServer::new(ChatService { gate: gate.clone() }))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.server_stop(),
            ),
    );
    let mut client = client(addr).await;
    let question = Question {
        text: "hi".into(),
        tokens: 3,
        eager: 1,
    };
    let mut tokens = within("stream", client.stream(question.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        within("first", tokens.message())
            .await
            .unwrap()
            .unwrap()
            .index,
        0
    );

    let sequence = tokio::spawn(shutdown.run());
    pull.send(()).unwrap();
    within("trip", drain.signal().tripped()).await;
    let refused = within("ask", client.ask(question)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(refused.message(), DRAINING);
    assert!(!server.is_finished(), "no GOAWAY during the drain");

    gate.open(2);
    let mut rest = Vec::new();
    while let Some(token) = within("rest", tokens.message()).await.unwrap() {
        rest.push(token.index);
    }
    assert_eq!(rest, [1, 2], "the stream finished within its grace");
    let report = within("sequence", sequence).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        (report.drain().completed(), report.drain().refused()),
        (1, 1)
    );
    within("server", server).await.unwrap().unwrap();
}

/// Waits until `drain` counts `n` requests in flight.
async fn in_flight(drain: &Drain, n: usize) {
    within("admitted", async {
        while drain.in_flight() < n {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// A unary call admitted before the trip whose handler answers after it
/// gets its answer: the drain does not replace a finished answer with
/// `UNAVAILABLE` (the client would retry a call that already ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_admitted_before_the_trip_and_answered_after_it_gets_its_answer() {
    let drain = Drain::new();
    let gate = Gate::new();
    let (addr, _done) = serve(&drain, gate.clone()).await;
    let mut client = client(addr).await;
    let unary = tokio::spawn({
        let mut client = client.clone();
        async move {
            client
                .ask(Question {
                    text: "wait".into(),
                    ..Question::default()
                })
                .await
        }
    });
    in_flight(&drain, 1).await;
    // A server stream whose answer, every token and the OK status included,
    // is ready only after the trip.
    let streamed = tokio::spawn(async move {
        let question = Question {
            text: "wait".into(),
            tokens: 3,
            eager: 0,
        };
        let mut tokens = client.stream(question).await?.into_inner();
        let mut got = Vec::new();
        while let Some(token) = tokens.message().await? {
            got.push(token.index);
        }
        Ok::<_, Status>(got)
    });
    in_flight(&drain, 2).await;

    let shutdown = tokio::spawn({
        let drain = drain.clone();
        async move { drain.shutdown(std::time::Duration::from_secs(30)).await }
    });
    within("trip", drain.signal().tripped()).await;
    gate.open(2);

    let answer = within("answer", unary).await.unwrap();
    assert_eq!(answer.expect("answered").into_inner().text, "echo: wait");
    let got = within("stream", streamed).await.unwrap();
    assert_eq!(got.expect("ends OK"), [0, 1, 2]);
    let report = within("report", shutdown).await.unwrap();
    assert_eq!((report.completed(), report.cut()), (2, 0), "{report}");
}

/// A call whose handler is still running at the deadline is cut, and told
/// `ABORTED`, not `UNAVAILABLE`: it may have partly run, so a client (or a
/// retry policy) must not replay it blindly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_at_the_deadline_is_aborted_not_unavailable() {
    let drain = Drain::new();
    let (addr, _done) = serve(&drain, Gate::new()).await;
    let mut client = client(addr).await;
    let unary = tokio::spawn(async move {
        client
            .ask(Question {
                text: "wait".into(),
                ..Question::default()
            })
            .await
    });
    in_flight(&drain, 1).await;
    let report = within(
        "shutdown",
        drain.shutdown(std::time::Duration::from_millis(50)),
    )
    .await;
    let status = within("status", unary).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status.message().contains("may have partly run"),
        "{status:?}"
    );
    assert_eq!(report.cut(), 1, "{report}");
}
