//! Base64 (RFC 4648 §4) and base64url (§5), strict. Used by plain text and
//! LwM2M JSON for opaque values and by SenML JSON's `vd` (base64url, no
//! padding, RFC 8428 §4.3). Small enough to keep here instead of a dependency.

use alloc::string::String;
use alloc::vec::Vec;

/// An alphabet and whether `=` padding is written (and required on decode).
#[derive(Debug, Clone, Copy)]
pub struct Alphabet {
    chars: &'static [u8; 64],
    pad: bool,
}

/// Standard alphabet with padding (RFC 4648 §4).
pub const STANDARD: Alphabet = Alphabet {
    chars: b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    pad: true,
};

/// URL-safe alphabet without padding (RFC 4648 §5, as SenML uses it).
pub const URL_NO_PAD: Alphabet = Alphabet {
    chars: b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    pad: false,
};

/// Encode `data`.
pub fn encode(data: &[u8], a: Alphabet) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(a.chars[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if a.pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decode strictly; on error returns the offset of the first bad character.
pub fn decode(text: &[u8], a: Alphabet) -> Result<Vec<u8>, usize> {
    let body_len = if a.pad {
        if !text.len().is_multiple_of(4) {
            return Err(text.len());
        }
        let pads = text.iter().rev().take_while(|&&c| c == b'=').count();
        if pads > 2 {
            return Err(text.len() - pads);
        }
        text.len() - pads
    } else {
        if text.len() % 4 == 1 {
            return Err(text.len() - 1);
        }
        text.len()
    };
    let mut out = Vec::with_capacity(body_len * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for (i, &c) in text[..body_len].iter().enumerate() {
        let v = a.chars.iter().position(|&x| x == c).ok_or(i)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero (canonical encoding).
    if acc != 0 {
        return Err(body_len.saturating_sub(1));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(raw.as_bytes(), STANDARD), enc);
            assert_eq!(decode(enc.as_bytes(), STANDARD).unwrap(), raw.as_bytes());
        }
        assert_eq!(encode(&[0xfb, 0xff], URL_NO_PAD), "-_8");
        assert_eq!(decode(b"-_8", URL_NO_PAD).unwrap(), [0xfb, 0xff]);
        assert_eq!(decode(b"Zm9v!A==", STANDARD), Err(4));
        assert!(decode(b"Zh==", STANDARD).is_err());
        assert!(decode(b"Zg", STANDARD).is_err());
    }
}
