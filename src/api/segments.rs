//! A downloaded body kept as the pieces it arrived in. Joining them into one
//! buffer would copy every byte once more and touch a fresh allocation's
//! pages; a reader asking for bytes inside one piece gets a slice of it.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, Default)]
pub struct Segments {
    pieces: Vec<Bytes>,
    /// Where each piece starts within the body.
    starts: Vec<usize>,
    len: usize,
}

impl Segments {
    pub fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        self.starts.push(self.len);
        self.len += piece.len();
        self.pieces.push(piece);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// The bytes in `range` (which must lie within the body): a slice of
    /// one piece when they lie in one, else a copy of just these bytes.
    pub fn slice(&self, range: Range<usize>) -> Bytes {
        assert!(range.start <= range.end && range.end <= self.len);
        if range.is_empty() {
            return Bytes::new();
        }
        let first = self.starts.partition_point(|&s| s <= range.start) - 1;
        let in_first = range.start - self.starts[first]..range.end - self.starts[first];
        if in_first.end <= self.pieces[first].len() {
            return self.pieces[first].slice(in_first);
        }
        let mut out = BytesMut::with_capacity(range.len());
        for (piece, &start) in self.pieces[first..].iter().zip(&self.starts[first..]) {
            if start >= range.end {
                break;
            }
            let from = range.start.saturating_sub(start);
            let to = (range.end - start).min(piece.len());
            out.extend_from_slice(&piece[from..to]);
        }
        out.freeze()
    }

    /// The whole body as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        self.slice(0..self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(sizes: &[usize]) -> (Segments, Vec<u8>) {
        let whole: Vec<u8> = (0..sizes.iter().sum::<usize>())
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut segments = Segments::default();
        let mut at = 0;
        for &n in sizes {
            segments.push(Bytes::copy_from_slice(&whole[at..at + n]));
            at += n;
        }
        (segments, whole)
    }

    #[test]
    fn every_range_reads_the_bytes_it_names() {
        let (segments, whole) = body(&[5, 0, 1, 9, 3]);
        assert_eq!(segments.len(), whole.len());
        assert_eq!(segments.pieces().len(), 4, "empty pieces are not kept");
        for start in 0..=whole.len() {
            for end in start..=whole.len() {
                assert_eq!(&segments.slice(start..end)[..], &whole[start..end]);
            }
        }
        assert_eq!(&segments.to_bytes()[..], &whole[..]);
    }

    #[test]
    fn a_range_inside_one_piece_is_that_piece_not_a_copy() {
        let (segments, _) = body(&[4, 8]);
        let inside = segments.slice(5..11);
        let piece = &segments.pieces()[1];
        assert_eq!(inside.as_ptr(), piece[1..].as_ptr());
    }
}
