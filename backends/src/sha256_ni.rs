//! SHA-256's block function with the x86 SHA extensions (SHA-NI), for
//! [`crate::sha256`]. `sha2` 0.10 has one too, but its message schedule is
//! a separate function without the `sha` target feature, so its
//! intrinsics are called out of line: about 350 MB/s on this machine's
//! kind, where the instructions give several times that. Here every
//! intrinsic is in one function compiled with the features, and the CPU
//! is asked for them at run time ([`available`]); without them the caller
//! uses `sha2`'s (portable) function.
//!
//! The rounds follow Intel's description of the extensions: the state is
//! kept as the two vectors `ABEF` and `CDGH`, each `sha256rnds2` does two
//! rounds, and `sha256msg1`/`sha256msg2` extend the message schedule four
//! words at a time.

#![allow(unsafe_code)]

use std::arch::x86_64::*;

/// FIPS 180-4's round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Whether this CPU has what [`blocks`] uses.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
}

/// Hash whole 64-byte blocks of `data` into `state`; a trailing partial
/// block is left alone (the caller passes whole blocks).
pub fn blocks(state: &mut [u32; 8], data: &[u8]) {
    assert!(available(), "SHA-NI block function on a CPU without SHA-NI");
    // SAFETY: the CPU has the features `blocks_ni` is compiled with
    // (checked just above); it reads `data` and `state` only within their
    // bounds (whole 64-byte chunks, 8 words) with unaligned loads.
    unsafe { blocks_ni(state, data) }
}

/// Four rounds: the schedule words `w` plus their constants, two
/// `sha256rnds2` of two rounds each.
macro_rules! rounds4 {
    ($abef:ident, $cdgh:ident, $w:expr, $i:expr) => {{
        let k = _mm_loadu_si128(K.as_ptr().add(4 * $i) as *const __m128i);
        let wk = _mm_add_epi32($w, k);
        $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, wk);
        $abef = _mm_sha256rnds2_epu32($abef, $cdgh, _mm_shuffle_epi32(wk, 0x0E));
    }};
}

/// The next four schedule words from the last sixteen (`w0` oldest).
macro_rules! next4 {
    ($w0:expr, $w1:expr, $w2:expr, $w3:expr) => {
        _mm_sha256msg2_epu32(
            _mm_add_epi32(_mm_sha256msg1_epu32($w0, $w1), _mm_alignr_epi8($w3, $w2, 4)),
            $w3,
        )
    };
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn blocks_ni(state: &mut [u32; 8], data: &[u8]) {
    // Each 32-bit word big-endian, the words in order.
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let s = state.as_mut_ptr() as *mut __m128i;
    let dcba = _mm_loadu_si128(s);
    let hgfe = _mm_loadu_si128(s.add(1));
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    let mut abef = _mm_alignr_epi8(cdab, efgh, 8);
    let mut cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for block in data.chunks_exact(64) {
        let (abef0, cdgh0) = (abef, cdgh);
        let p = block.as_ptr() as *const __m128i;
        let mut w0 = _mm_shuffle_epi8(_mm_loadu_si128(p), swap);
        let mut w1 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), swap);
        let mut w2 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), swap);
        let mut w3 = _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), swap);
        rounds4!(abef, cdgh, w0, 0);
        rounds4!(abef, cdgh, w1, 1);
        rounds4!(abef, cdgh, w2, 2);
        rounds4!(abef, cdgh, w3, 3);
        // Rounds 16..64: each group of four words replaces the oldest.
        let mut i = 4;
        while i < 16 {
            w0 = next4!(w0, w1, w2, w3);
            rounds4!(abef, cdgh, w0, i);
            w1 = next4!(w1, w2, w3, w0);
            rounds4!(abef, cdgh, w1, i + 1);
            w2 = next4!(w2, w3, w0, w1);
            rounds4!(abef, cdgh, w2, i + 2);
            w3 = next4!(w3, w0, w1, w2);
            rounds4!(abef, cdgh, w3, i + 3);
            i += 4;
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    let feba = _mm_shuffle_epi32(abef, 0x1B);
    let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128(s, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128(s.add(1), _mm_alignr_epi8(dchg, feba, 8));
}

#[cfg(test)]
mod tests {
    /// The same state as `sha2`'s portable block function, over data of
    /// every block count up to 40 and 1 MiB, from several start states.
    #[test]
    fn the_same_as_sha2s_block_function() {
        if !super::available() {
            eprintln!("no SHA-NI on this CPU: nothing to compare");
            return;
        }
        let data: Vec<u8> = (0..(1u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut start = crate::sha256::Sha256State::default().words;
        for n in (0..=40).chain([1 << 14]) {
            let d = &data[..64 * n];
            let mut ni = start;
            super::blocks(&mut ni, d);
            let mut soft = start;
            crate::sha256::blocks_sha2(&mut soft, d);
            assert_eq!(ni, soft, "{n} blocks");
            start = ni;
        }
    }
}
