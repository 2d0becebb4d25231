use super::Seen;

/// Length of a gRPC message header: a compressed flag and a big-endian u32
/// payload length.
const HEADER: usize = 5;

/// gRPC length-prefixed messages: a boundary follows every complete message.
#[derive(Debug, Default)]
pub(crate) struct GrpcScanner {
    /// Header bytes of the next message seen so far (0 to 5).
    header: [u8; HEADER],
    header_len: usize,
    /// Payload bytes of the current message still to come.
    payload_left: u64,
    seen: Seen,
}

impl GrpcScanner {
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        self.seen.bytes += data.len() as u64;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= n as u64;
                data = &data[n..];
                if self.payload_left == 0 {
                    self.seen.events += 1;
                }
                continue;
            }
            let n = (HEADER - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == HEADER {
                self.header_len = 0;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.payload_left = u64::from(len);
                if len == 0 {
                    self.seen.events += 1;
                }
            }
        }
    }

    pub(crate) fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.payload_left == 0
    }

    pub(crate) fn seen(&self) -> &Seen {
        &self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::GrpcScanner;

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn boundary_after_each_complete_message() {
        let mut s = GrpcScanner::default();
        assert!(s.at_boundary(), "nothing sent yet");
        let one = message(b"hello");
        s.feed(&one[..3]);
        assert!(!s.at_boundary(), "inside the header");
        s.feed(&one[3..7]);
        assert!(!s.at_boundary(), "inside the payload");
        s.feed(&one[7..]);
        assert!(s.at_boundary());

        let two = [message(b""), message(b"x")].concat();
        s.feed(&two);
        assert!(s.at_boundary());
        assert_eq!(
            (s.seen().events, s.seen().bytes),
            (3, (one.len() + two.len()) as u64)
        );
    }
}
