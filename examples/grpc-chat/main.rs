//! A tonic gRPC server behind `DrainLayer` and `SseDrainLayer`: a unary call
//! and a server-streaming call that streams tokens like a model.
//!
//! On SIGTERM or Ctrl-C it drains: every connection gets HTTP/2 `GOAWAY` at
//! once (a client balancing over several instances sends its next calls to
//! the others), calls that still arrive fail with `UNAVAILABLE`, token
//! streams end after their last whole message with `UNAVAILABLE`, and the
//! health service (kept outside the drain) answers `NOT_SERVING`. Once the
//! drain is over, the server closes and the process exits.
//!
//! Environment: `ADDR` (default `127.0.0.1:50051`), `LAME_DUCK_SECS` (0),
//! `DRAIN_DEADLINE_SECS` (30). `SERVER=tonic` serves through tonic's own
//! server instead of `tower_drain::serve`, stopped once the drain is over
//! (`Shutdown::server_stop`), for comparison (see
//! `tests/grpc_balance.rs`).

use std::future::IntoFuture;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::{stream, Stream};
use tokio::net::TcpListener;
use tonic::service::{LayerExt, Routes};
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;
use tower_drain::Drain;
use tower_drain_sse::SseDrainLayer;
use tracing::info;

#[path = "../shared.rs"]
mod shared;

#[allow(clippy::all, missing_debug_implementations, unreachable_pub)]
mod chat {
    tonic::include_proto!("chat");
}

use chat::chat_server::{Chat, ChatServer};
use chat::{Answer, Question, Token};

const WORDS: &[&str] = &[
    "tokens", "arrive", "one", "by", "one", "until", "the", "drain",
];

struct ChatService;

#[tonic::async_trait]
impl Chat for ChatService {
    async fn ask(&self, request: Request<Question>) -> Result<Response<Answer>, Status> {
        let text = format!("you asked: {}", request.into_inner().text);
        Ok(Response::new(Answer { text }))
    }

    type StreamStream = Pin<Box<dyn Stream<Item = Result<Token, Status>> + Send>>;

    async fn stream(
        &self,
        request: Request<Question>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let tokens = request.into_inner().tokens;
        let stream = stream::unfold(0, move |index| async move {
            if index == tokens {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let text = WORDS[index as usize % WORDS.len()].to_string();
            Some((Ok(Token { index, text }), index + 1))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, shared::BoxError> {
    let setup = shared::Setup::from_env("127.0.0.1:50051")?;
    let drain = Drain::new();
    let shutdown = setup.shutdown(&drain)?;

    // Health stays outside the drain, so probes are answered throughout;
    // it turns NOT_SERVING when readiness fails (the lame duck, or the trip).
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ChatServer<ChatService>>().await;
    let not_ready = drain.signal().not_ready();
    tokio::spawn(async move {
        not_ready.await;
        health.set_not_serving::<ChatServer<ChatService>>().await;
    });

    // The drain layers on the chat service: calls are counted until their
    // response (stream) ends, refused once tripped.
    let chat = ServiceBuilder::new()
        .layer(drain.layer())
        .layer(SseDrainLayer::new(drain.signal()))
        .named_layer(ChatServer::new(ChatService));

    let listener = TcpListener::bind(&setup.addr).await?;
    info!("gRPC on http://{}", listener.local_addr()?);
    let server = if std::env::var("SERVER").as_deref() == Ok("tonic") {
        // tonic's server, stopped (GOAWAY) only once the drain is over: until
        // then late calls get a clean UNAVAILABLE, but a client's connection
        // stays on this instance.
        let server = Server::builder()
            .add_service(health_service)
            .add_service(chat)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.server_stop(),
            );
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "server failed");
            }
        })
    } else {
        // The server follows the drain: GOAWAY at the trip, the listener open
        // until the drain is over, what is left dropped at the deadline.
        let routes = Routes::new(health_service).add_service(chat);
        tokio::spawn(tower_drain::serve(listener, routes, &drain).into_future())
    };

    shared::run_to_exit(shutdown, server).await
}
