//! The terminal frame, and what a stream the drain ended had sent.

use std::fmt;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use tower_drain::DrainSignal;

use crate::framing::{Framing, Seen};

/// How the drain ended a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// Ended early, cleanly: the terminal frame went out after the last whole
    /// event, and the stream ended.
    Early,
    /// Cut at the drain deadline, without a clean end (mid-event, or still
    /// producing when the unwind was over): the client sees an error.
    Cut,
}

/// A stream the drain ended, and what it had sent: for the
/// [`on_stream_end`](crate::SseDrainLayer::on_stream_end) hook and for a
/// custom terminal frame.
#[derive(Debug)]
pub struct StreamEnd<'a> {
    framing: Framing,
    ending: Ending,
    seen: &'a Seen,
}

impl<'a> StreamEnd<'a> {
    pub(crate) fn new(framing: Framing, ending: Ending, seen: &'a Seen) -> Self {
        Self {
            framing,
            ending,
            seen,
        }
    }

    /// The stream's framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Ended early with the terminal frame, or cut.
    pub fn ending(&self) -> Ending {
        self.ending
    }

    /// Whole events the client received: SSE events dispatched, NDJSON
    /// lines, or gRPC messages.
    pub fn events(&self) -> u64 {
        self.seen.events
    }

    /// Bytes of the application's stream the client received (the terminal
    /// frame not included).
    pub fn bytes(&self) -> u64 {
        self.seen.bytes
    }

    /// The last SSE event ID the client holds, the one it will send back as
    /// `Last-Event-ID` when it reconnects.
    pub fn last_event_id(&self) -> Option<&'a str> {
        self.seen.last_event_id()
    }
}

/// The longest reason a Close frame has room for (RFC 6455 §5.5: a control
/// frame's payload is at most 125 bytes, two of which are the code).
const MAX_CLOSE_REASON: usize = 123;

type FrameFn = dyn Fn(&StreamEnd<'_>) -> Bytes + Send + Sync;
type HookFn = dyn Fn(&StreamEnd<'_>) + Send + Sync;

/// Everything a watched stream needs, shared by the layer's services.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) signal: DrainSignal,
    pub(crate) grace: Duration,
    spec: FrameSpec,
    sse: Bytes,
    ndjson: Bytes,
    grpc: HeaderMap,
    custom: Option<Arc<FrameFn>>,
    on_stream_end: Option<Arc<HookFn>>,
}

#[derive(Clone, Debug)]
pub(crate) struct FrameSpec {
    pub(crate) event: String,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) retry: Option<Duration>,
    pub(crate) data: Option<String>,
}

impl Default for FrameSpec {
    fn default() -> Self {
        Self {
            event: "end".into(),
            reason: "server_shutdown".into(),
            message: "the server is shutting down; reconnect to resume".into(),
            retry: Some(Duration::from_secs(3)),
            data: None,
        }
    }
}

impl Config {
    pub(crate) fn new(signal: DrainSignal) -> Self {
        let mut config = Self {
            signal,
            grace: Duration::ZERO,
            spec: FrameSpec::default(),
            sse: Bytes::new(),
            ndjson: Bytes::new(),
            grpc: HeaderMap::new(),
            custom: None,
            on_stream_end: None,
        };
        config.render();
        config
    }

    /// Changes the frame's fields and renders it again.
    pub(crate) fn edit(&mut self, edit: impl FnOnce(&mut FrameSpec)) {
        edit(&mut self.spec);
        self.render();
    }

    pub(crate) fn set_custom(&mut self, f: Arc<FrameFn>) {
        self.custom = Some(f);
    }

    pub(crate) fn set_on_stream_end(&mut self, f: Arc<HookFn>) {
        self.on_stream_end = Some(f);
    }

    /// The terminal frame for a stream that had sent `end`: data for SSE and
    /// NDJSON, trailers for gRPC (a custom frame does not apply there).
    pub(crate) fn terminal(&self, end: &StreamEnd<'_>) -> Frame<Bytes> {
        match (&self.custom, end.framing()) {
            (_, Framing::Grpc) => Frame::trailers(self.grpc.clone()),
            (Some(custom), _) => Frame::data(custom(end)),
            (None, Framing::Sse) => Frame::data(self.sse.clone()),
            (None, Framing::Ndjson | Framing::WebSocket) => Frame::data(self.ndjson.clone()),
        }
    }

    /// The reason of the Close frame that ends a WebSocket: the terminal
    /// frame's JSON (or its `data`, or the custom frame, as text), in the 123
    /// bytes a Close frame's reason may have. The JSON stays JSON: a message
    /// too long for it is shortened, not the object; anything else is cut
    /// at a character boundary.
    pub(crate) fn close_reason(&self, end: &StreamEnd<'_>) -> String {
        if let Some(custom) = &self.custom {
            return cut_to_reason(&String::from_utf8_lossy(&custom(end))).to_owned();
        }
        let spec = &self.spec;
        if spec.data.is_none() {
            let mut message = cut_to_reason(&spec.message);
            loop {
                let json = end_json(&spec.reason, message);
                if json.len() <= MAX_CLOSE_REASON {
                    return json;
                }
                match message.char_indices().next_back() {
                    Some((last, _)) => message = &message[..last],
                    // The reason alone is too long: cut like any text.
                    None => break,
                }
            }
        }
        cut_to_reason(&String::from_utf8_lossy(&self.ndjson)).to_owned()
    }

    /// Whether anything reads what a stream sent (a hook or a custom frame):
    /// only then do scanners count events and keep the last event ID.
    pub(crate) fn counts(&self) -> bool {
        self.on_stream_end.is_some() || self.custom.is_some()
    }

    /// Tells the hook, if there is one, that the drain ended a stream.
    pub(crate) fn ended(&self, end: &StreamEnd<'_>) {
        if let Some(hook) = &self.on_stream_end {
            hook(end);
        }
    }

    fn render(&mut self) {
        let spec = &self.spec;
        let json;
        let data = match &spec.data {
            Some(data) => data.as_str(),
            None => {
                json = end_json(&spec.reason, &spec.message);
                &json
            }
        };

        let mut sse = String::new();
        if !spec.event.is_empty() {
            let _ = writeln!(sse, "event: {}", one_line(&spec.event));
        }
        for line in data.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
            let _ = writeln!(sse, "data: {line}");
        }
        if let Some(retry) = spec.retry {
            let _ = writeln!(sse, "retry: {}", retry.as_millis());
        }
        sse.push('\n');
        self.sse = Bytes::from(sse);

        let mut ndjson = one_line(data);
        ndjson.push('\n');
        self.ndjson = Bytes::from(ndjson);

        self.grpc = tower_drain::grpc::unavailable(&spec.message);
    }
}

/// The terminal frame's JSON object.
fn end_json(reason: &str, message: &str) -> String {
    // Written by hand for the field order; serde_json escapes the values.
    format!(
        r#"{{"type":"end","reason":{},"message":{}}}"#,
        serde_json::Value::from(reason),
        serde_json::Value::from(message),
    )
}

/// `text` without its line end, cut at a character boundary to the longest
/// reason a Close frame has room for.
fn cut_to_reason(text: &str) -> &str {
    let text = text.trim_end_matches(['\r', '\n']);
    let mut len = text.len().min(MAX_CLOSE_REASON);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    &text[..len]
}

/// `s` with line breaks replaced by spaces: it must stay one line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("grace", &self.grace)
            .field("frame", &self.spec)
            .field("custom_frame", &self.custom.is_some())
            .field("on_stream_end", &self.on_stream_end.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use tower_drain::Drain;

    use super::{Config, Ending, StreamEnd};
    use crate::framing::{Framing, Seen};

    fn frame(config: &Config, framing: Framing) -> String {
        let seen = Seen::default();
        let frame = config.terminal(&StreamEnd::new(framing, Ending::Early, &seen));
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn grpc_ends_with_unavailable_trailers() {
        let config = Config::new(Drain::new().signal());
        let seen = Seen::default();
        let frame = config.terminal(&StreamEnd::new(Framing::Grpc, Ending::Early, &seen));
        let trailers = frame.into_trailers().unwrap();
        assert_eq!(trailers["grpc-status"], "14");
        assert_eq!(
            trailers["grpc-message"],
            "the server is shutting down; reconnect to resume"
        );
    }

    #[test]
    fn default_frames() {
        let config = Config::new(Drain::new().signal());
        assert_eq!(
            frame(&config, Framing::Sse),
            "event: end\n\
             data: {\"type\":\"end\",\"reason\":\"server_shutdown\",\"message\":\"the server is shutting down; reconnect to resume\"}\n\
             retry: 3000\n\n"
        );
        assert_eq!(
            frame(&config, Framing::Ndjson),
            "{\"type\":\"end\",\"reason\":\"server_shutdown\",\"message\":\"the server is shutting down; reconnect to resume\"}\n"
        );
    }

    #[test]
    fn fields_cannot_break_the_framing() {
        let mut config = Config::new(Drain::new().signal());
        config.edit(|spec| {
            spec.event = "bye\nevent: x".into();
            spec.message = "line one\nline \"two\"".into();
            spec.retry = None;
        });
        let sse = frame(&config, Framing::Sse);
        assert!(sse.starts_with("event: bye event: x\ndata: {\"type\":\"end\""));
        assert!(sse.contains(r#""message":"line one\nline \"two\"""#));
        assert!(!sse.contains("retry"));

        config.edit(|spec| spec.data = Some("a\r\nb\nc".into()));
        assert_eq!(
            frame(&config, Framing::Sse),
            "event: bye event: x\ndata: a\ndata: b\ndata: c\n\n"
        );
        assert_eq!(frame(&config, Framing::Ndjson), "a  b c\n");
    }
}
