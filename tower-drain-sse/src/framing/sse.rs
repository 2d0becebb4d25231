use super::Seen;

/// The longest `id` value kept for the cut hook.
const MAX_ID: usize = 1024;

/// Server-Sent Events, read as the WHATWG parser reads them: lines end at
/// CRLF, LF or CR (a LF right after a CR belongs to it, even across chunks); a
/// blank line dispatches the event built from the field lines before it;
/// lines starting with `:` are comments.
///
/// A boundary is a line start with no field line pending: appending an event
/// there can neither complete a partial event nor merge into one.
#[derive(Debug, Default)]
pub(crate) struct SseScanner {
    /// Bytes of the current line so far; 0 at a line start.
    line_len: usize,
    /// The first bytes of the current line: enough to tell `:` and `id:`.
    head: [u8; 3],
    /// The last byte ended a line with CR.
    after_cr: bool,
    /// A field line has ended since the last blank line.
    fields_pending: bool,
    /// The current line is an `id:` field; its value goes to `pending_id`.
    in_id: bool,
    /// The value of the last `id` field since the last blank line (the
    /// WHATWG "last event ID buffer" when `id_pending`).
    pending_id: Vec<u8>,
    id_pending: bool,
    /// Keep `seen.events` and the last event ID (for the cut hook).
    counting: bool,
    seen: Seen,
}

impl SseScanner {
    pub(crate) fn new(counting: bool) -> Self {
        Self {
            counting,
            ..Self::default()
        }
    }

    #[inline]
    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.seen.bytes += data.len() as u64;
        // At a clean boundary, a frame that ends with a blank line leaves the
        // stream at a boundary again, whatever it holds: nothing in between
        // can leave a field pending past a blank line. Unless the hook needs
        // the counts, its tail is all that has to be read.
        if !self.counting && self.at_boundary() && !self.after_cr {
            if let Some(last) = blank_line_end(data) {
                self.after_cr = last == b'\r';
                return;
            }
        }
        self.scan(data);
    }

    #[inline(never)]
    fn scan(&mut self, mut data: &[u8]) {
        while let Some((&first, rest)) = data.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                data = rest;
                continue;
            }
            match memchr::memchr2(b'\n', b'\r', data) {
                Some(end) => {
                    self.line_bytes(&data[..end]);
                    self.end_line();
                    self.after_cr = data[end] == b'\r';
                    data = &data[end + 1..];
                }
                None => {
                    self.line_bytes(data);
                    return;
                }
            }
        }
    }

    #[inline]
    pub(crate) fn at_boundary(&self) -> bool {
        self.line_len == 0 && !self.fields_pending
    }

    pub(crate) fn seen(&self) -> &Seen {
        &self.seen
    }

    fn line_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.line_len;
        self.line_len += bytes.len();
        if start < self.head.len() {
            let n = (self.head.len() - start).min(bytes.len());
            self.head[start..start + n].copy_from_slice(&bytes[..n]);
            if start + n == self.head.len() && self.head == *b"id:" {
                self.in_id = true;
                self.pending_id.clear();
                self.push_id(&bytes[n..], true);
            }
        } else if self.in_id {
            // A value whose first segment was empty ("id:" ended a chunk).
            self.push_id(bytes, start == self.head.len());
        }
    }

    /// Collects `id` value bytes; `value_start` when `bytes` begins the
    /// value (right after `id:`), whose one leading space is not part of it.
    fn push_id(&mut self, bytes: &[u8], value_start: bool) {
        let bytes = match value_start {
            true => bytes.strip_prefix(b" ").unwrap_or(bytes),
            false => bytes,
        };
        let room = MAX_ID.saturating_sub(self.pending_id.len());
        self.pending_id
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    fn end_line(&mut self) {
        let len = std::mem::take(&mut self.line_len);
        let in_id = std::mem::take(&mut self.in_id);
        if len == 0 {
            // A blank line: the event is dispatched, and with it the last
            // event ID the client now holds (a swap, not a copy).
            if std::mem::take(&mut self.fields_pending) {
                self.seen.events += 1;
            }
            if std::mem::take(&mut self.id_pending) {
                std::mem::swap(&mut self.seen.last_event_id, &mut self.pending_id);
                self.seen.has_last_event_id = true;
            }
            return;
        }
        if self.head[0] == b':' {
            return;
        }
        self.fields_pending = true;
        if len == 2 && self.head[..2] == *b"id" {
            // `id` with no colon: an empty value.
            self.pending_id.clear();
        } else if !in_id {
            return;
        }
        // An id containing NUL is ignored (WHATWG). (It has overwritten an
        // earlier valid `id` of the same event in `pending_id`, so that one is
        // lost too: the hook's id may be older than the client's. Rare enough
        // not to pay a copy per `id` line for.)
        self.id_pending = !self.pending_id.contains(&0);
    }
}

/// If `data` ends with a blank line (its last line end closes an empty
/// line), the last byte: CR or LF.
#[inline]
fn blank_line_end(data: &[u8]) -> Option<u8> {
    let last = *data.last()?;
    let before = match data {
        [rest @ .., b'\r', b'\n'] => rest,
        [rest @ .., b'\n' | b'\r'] => rest,
        _ => return None,
    };
    matches!(before.last(), Some(b'\n' | b'\r')).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::{blank_line_end, SseScanner};

    /// Every check runs in both modes, which must agree on boundaries.
    fn scan(chunks: &[&str]) -> SseScanner {
        let (mut counting, mut fast) = (SseScanner::new(true), SseScanner::new(false));
        for chunk in chunks {
            counting.feed(chunk.as_bytes());
            fast.feed(chunk.as_bytes());
            assert_eq!(counting.at_boundary(), fast.at_boundary(), "{chunks:?}");
        }
        counting
    }

    #[test]
    fn blank_line_ends() {
        for end in [
            "\n\n", "\r\r", "\r\n\r\n", "\n\r\n", "\r\n\n", "\r\r\n", "\n\r",
        ] {
            assert!(
                blank_line_end(format!("data: x{end}").as_bytes()).is_some(),
                "{end:?}"
            );
        }
        for end in ["\n", "\r", "\r\n", "", "x"] {
            assert!(
                blank_line_end(format!("data: x{end}").as_bytes()).is_none(),
                "{end:?}"
            );
        }
    }

    #[test]
    fn boundary_only_after_a_blank_line() {
        assert!(scan(&[]).at_boundary(), "nothing sent yet");
        assert!(!scan(&["data: a"]).at_boundary());
        assert!(!scan(&["data: a\n"]).at_boundary(), "field pending");
        assert!(scan(&["data: a\n\n"]).at_boundary());
        assert!(scan(&["data: a\r\n\r\n"]).at_boundary());
        assert!(scan(&["data: a\r\r"]).at_boundary());
        assert!(scan(&["data: a\r\n\n"]).at_boundary(), "mixed endings");
        assert!(scan(&["data: a\n\r\n"]).at_boundary(), "mixed endings");
        assert!(
            !scan(&["data: a\r\n"]).at_boundary(),
            "CRLF is one line end"
        );
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let s = scan(&["data: a\r", "\n"]);
        assert!(!s.at_boundary());
        let s = scan(&["data: a\r", "\n", "\r", "\n"]);
        assert!(s.at_boundary());
        assert_eq!(s.seen().events, 1);
        // A CR, then a LF that belongs to it, then a field: still one event pending.
        let s = scan(&["data: a\r", "\ndata: b\r", "\r"]);
        assert!(s.at_boundary());
        assert_eq!(s.seen().events, 1);
    }

    #[test]
    fn comments_keep_a_boundary() {
        assert!(scan(&[": keep-alive\n"]).at_boundary());
        assert!(scan(&["data: a\n\n: ping\n"]).at_boundary());
        assert!(!scan(&["data: a\n\n: pi"]).at_boundary(), "mid-line");
    }

    #[test]
    fn counts_events_bytes_and_the_last_id() {
        let chunks = [
            "id: 1\ndata: a\n\n",
            "data: b\n\nid:",
            " 7",
            "\ndata: c\n",
            "\n",
        ];
        let s = scan(&chunks);
        assert_eq!(s.seen().events, 3);
        assert_eq!(
            s.seen().bytes,
            chunks.iter().map(|c| c.len() as u64).sum::<u64>()
        );
        assert_eq!(s.seen().last_event_id(), Some("7"));

        // The id counts once its event is dispatched, and persists after it.
        let s = scan(&["id: 9\ndata: x\n"]);
        assert_eq!(s.seen().last_event_id(), None);
        let s = scan(&["id: 9\ndata: x\n\ndata: y\n\n"]);
        assert_eq!(s.seen().last_event_id(), Some("9"));

        // `id` alone resets it; an id with NUL is ignored.
        let s = scan(&["id: 9\n\nid\n\n"]);
        assert_eq!(s.seen().last_event_id(), Some(""));
        let s = scan(&["id: 9\n\nid: a\0b\n\n"]);
        assert_eq!(s.seen().last_event_id(), Some("9"));
    }
}
