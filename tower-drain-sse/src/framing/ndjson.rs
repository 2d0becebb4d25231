use super::Seen;

/// Newline-delimited JSON: a boundary follows every `\n`.
#[derive(Debug, Default)]
pub(crate) struct NdjsonScanner {
    in_line: bool,
    /// Count the lines (for the cut hook); otherwise only the last byte counts.
    counting: bool,
    seen: Seen,
}

impl NdjsonScanner {
    pub(crate) fn new(counting: bool) -> Self {
        Self {
            counting,
            ..Self::default()
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.seen.bytes += data.len() as u64;
        let Some(last) = data.last() else { return };
        if self.counting {
            self.seen.events += memchr::memchr_iter(b'\n', data).count() as u64;
        }
        self.in_line = *last != b'\n';
    }

    pub(crate) fn at_boundary(&self) -> bool {
        !self.in_line
    }

    pub(crate) fn seen(&self) -> &Seen {
        &self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::NdjsonScanner;

    #[test]
    fn boundary_after_each_newline() {
        let mut s = NdjsonScanner::new(true);
        assert!(s.at_boundary(), "nothing sent yet");
        s.feed(b"{\"a\":1}\n{\"b\"");
        assert!(!s.at_boundary());
        s.feed(b":2}");
        assert!(!s.at_boundary());
        s.feed(b"\n");
        assert!(s.at_boundary());
        s.feed(b"");
        assert!(s.at_boundary());
        assert_eq!((s.seen().events, s.seen().bytes), (2, 16));
    }
}
