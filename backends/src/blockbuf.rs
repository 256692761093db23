//! The partial 64-byte block of a Merkle-Damgård hash (MD5, SHA-256):
//! what both hashes here buffer between calls, and their padding.

/// Bytes not yet making a whole block.
#[derive(Debug, Clone)]
pub(crate) struct BlockBuf {
    buf: [u8; 64],
    len: usize,
}

impl Default for BlockBuf {
    fn default() -> Self {
        BlockBuf {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl BlockBuf {
    /// Nothing buffered: the hash's state is between blocks.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feed `data`: `blocks` gets every whole block in order (a run of
    /// them at a time, a multiple of 64 bytes); the rest stays buffered.
    pub(crate) fn feed(&mut self, mut data: &[u8], mut blocks: impl FnMut(&[u8])) {
        if self.len > 0 {
            let n = (64 - self.len).min(data.len());
            self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len < 64 {
                return;
            }
            let block = self.buf;
            blocks(&block);
            self.len = 0;
        }
        let whole = data.len() / 64 * 64;
        if whole > 0 {
            blocks(&data[..whole]);
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.len = rest.len();
    }

    /// The padding that ends a message of `len` bytes (0x80, zeros, then
    /// the length in bits, little-endian for MD5, big-endian for SHA-256).
    pub(crate) fn padding(&self, len: u64, big_endian: bool) -> Vec<u8> {
        let pad = if self.len < 56 {
            56 - self.len
        } else {
            120 - self.len
        };
        let mut tail = vec![0u8; pad];
        tail[0] = 0x80;
        let bits = len.wrapping_mul(8);
        tail.extend_from_slice(&if big_endian {
            bits.to_be_bytes()
        } else {
            bits.to_le_bytes()
        });
        tail
    }
}
