//! SHA-256 (FIPS 180-4) whose state between 64-byte blocks can be saved
//! and resumed, like [`crate::integrity::Md5`]: the digest rpm records for
//! each file (`FILEDIGESTS` with `FILEDIGESTALGO` 8), checked in slices
//! across runs. The block function is this crate's SHA-NI one on x86_64
//! CPUs that have the extensions ([`crate::sha256_ni`]), else `sha2`'s (the
//! ARMv8 crypto extension when the CPU has it, else portable code).

use sha2::digest::generic_array::GenericArray;
use sha2::digest::typenum::U64;

/// The state of a [`Sha256`] between blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256State {
    pub words: [u32; 8],
    /// Bytes hashed so far.
    pub len: u64,
}

impl Default for Sha256State {
    fn default() -> Self {
        Sha256State {
            words: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            len: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sha256 {
    st: Sha256State,
    buf: crate::blockbuf::BlockBuf,
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::resume(Sha256State::default())
    }
}

/// The block function over whole blocks: SHA-NI's when the CPU has it
/// ([`crate::sha256_ni`]), else `sha2`'s.
fn blocks(words: &mut [u32; 8], data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::sha256_ni::available() {
        return crate::sha256_ni::blocks(words, data);
    }
    blocks_sha2(words, data)
}

/// `sha2`'s block function over whole blocks, 16 at a time (copied into
/// its block type, without `unsafe`; the copy costs little next to the
/// hashing, and one call per block would cost its set-up every block).
pub(crate) fn blocks_sha2(words: &mut [u32; 8], data: &[u8]) {
    debug_assert_eq!(data.len() % 64, 0);
    for group in data.chunks(64 * 16) {
        let n = group.len() / 64;
        let arr: [GenericArray<u8, U64>; 16] = std::array::from_fn(|i| match i < n {
            true => *GenericArray::from_slice(&group[i * 64..(i + 1) * 64]),
            false => GenericArray::default(),
        });
        sha2::compress256(words, &arr[..n]);
    }
}

impl Sha256 {
    /// Continue from a saved state.
    pub fn resume(st: Sha256State) -> Sha256 {
        Sha256 {
            st,
            buf: Default::default(),
        }
    }

    /// The state to save; `None` in the middle of a block.
    pub fn state(&self) -> Option<Sha256State> {
        self.buf.is_empty().then_some(self.st)
    }

    pub fn update(&mut self, data: &[u8]) {
        self.st.len += data.len() as u64;
        let words = &mut self.st.words;
        self.buf.feed(data, |b| blocks(words, b));
    }

    /// The digest as `sha256sum` and rpm print it (64 lowercase hex digits).
    pub fn hex(mut self) -> String {
        let tail = self.buf.padding(self.st.len, true);
        self.update(&tail);
        debug_assert!(self.buf.is_empty());
        self.st.words.iter().map(|w| format!("{w:08x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(data: &[u8]) -> String {
        let mut h = Sha256::default();
        h.update(data);
        h.hex()
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(&vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn resumed_in_pieces_is_the_same_digest() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = hex(&data);
        for cut in [64usize, 640, 4096, 9984] {
            let mut a = Sha256::default();
            a.update(&data[..cut]);
            let saved = a.state().expect("a multiple of 64");
            let mut b = Sha256::resume(saved);
            // odd-sized pieces after the resume
            for piece in data[cut..].chunks(37) {
                b.update(piece);
            }
            assert_eq!(b.hex(), whole, "cut at {cut}");
        }
    }
}

#[cfg(test)]
mod speed {
    /// `cargo test --release -p teleport-upgrade-backends --lib sha256_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn sha256_speed() {
        let data: Vec<u8> = (0..64u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let t = std::time::Instant::now();
        let mut h = super::Sha256::default();
        h.update(&data);
        let d = h.hex();
        let s = t.elapsed().as_secs_f64();
        println!("sha256: {:.0} MB/s ({d})", data.len() as f64 / s / 1e6);
    }
}
