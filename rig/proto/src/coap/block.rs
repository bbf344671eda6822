//! Block1/Block2 option values (RFC 7959 §2.2): block number, "more" flag
//! and size exponent, packed into 0-3 bytes.

use coap_lite::{CoapOption, Packet};

use super::message::{decode_uint, encode_uint, set_uint_option};

/// A decoded Block1 or Block2 option value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockValue {
    /// Block number (20 bits at most).
    pub num: u32,
    /// More blocks follow.
    pub more: bool,
    /// Size exponent: the block size is `2^(szx + 4)` bytes, 0..=6.
    pub szx: u8,
}

/// Why a Block option value cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// More than 3 bytes of option value.
    TooLong(usize),
    /// SZX 7 is reserved (RFC 7959 §2.2).
    ReservedSzx,
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::TooLong(n) => write!(f, "block option value of {n} bytes (max 3)"),
            BlockError::ReservedSzx => write!(f, "block size exponent 7 is reserved"),
        }
    }
}

/// The largest block number a Block option can carry (20 bits, RFC 7959 §2.2).
pub const MAX_NUM: u32 = 0xf_ffff;

impl BlockValue {
    /// A block value; `size` must be a power of two in 16..=1024 (else the
    /// nearest smaller allowed size is used).
    pub fn new(num: u32, more: bool, size: usize) -> BlockValue {
        BlockValue {
            num,
            more,
            szx: size_to_szx(size),
        }
    }

    /// The block size in bytes.
    pub fn size(self) -> usize {
        szx_to_size(self.szx)
    }

    /// Byte offset of this block in the body.
    pub fn offset(self) -> usize {
        (self.num as usize).saturating_mul(self.size())
    }

    /// Decodes an option value.
    pub fn decode(v: &[u8]) -> Result<BlockValue, BlockError> {
        if v.len() > 3 {
            return Err(BlockError::TooLong(v.len()));
        }
        let raw = decode_uint(v).unwrap_or(0);
        let szx = (raw & 0x7) as u8;
        if szx == 7 {
            return Err(BlockError::ReservedSzx);
        }
        Ok(BlockValue {
            num: raw >> 4,
            more: raw & 0x8 != 0,
            szx,
        })
    }

    /// Encodes the option value (minimal length).
    pub fn encode(self) -> alloc::vec::Vec<u8> {
        encode_uint(
            ((self.num & 0xf_ffff) << 4) | (u32::from(self.more) << 3) | u32::from(self.szx & 7),
        )
    }

    /// Reads `opt` (Block1 or Block2) from a packet.
    pub fn from_packet(p: &Packet, opt: CoapOption) -> Option<Result<BlockValue, BlockError>> {
        p.get_first_option(opt).map(|v| BlockValue::decode(v))
    }

    /// Writes this value as option `opt` of a packet (replacing any).
    pub fn set_on(self, p: &mut Packet, opt: CoapOption) {
        p.clear_option(opt);
        p.add_option(opt, self.encode());
    }
}

/// `2^(szx+4)`.
pub fn szx_to_size(szx: u8) -> usize {
    1usize << (u32::from(szx.min(6)) + 4)
}

/// The largest SZX whose size is at most `size` (16 bytes at least, 1024 at most).
pub fn size_to_szx(size: usize) -> u8 {
    let mut szx = 6u8;
    while szx > 0 && szx_to_size(szx) > size {
        szx -= 1;
    }
    szx
}

/// Sets Size1/Size2 to `total`.
pub fn set_size(p: &mut Packet, opt: CoapOption, total: usize) {
    set_uint_option(p, opt, u32::try_from(total).unwrap_or(u32::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7959_examples() {
        // RFC 7959 §2.2: NUM=0, M=0, SZX=2 (64 bytes) is encoded as 0x02.
        assert_eq!(
            BlockValue {
                num: 0,
                more: false,
                szx: 2
            }
            .encode(),
            vec![0x02]
        );
        // zero value encodes as the empty option.
        assert_eq!(
            BlockValue {
                num: 0,
                more: false,
                szx: 0
            }
            .encode(),
            Vec::<u8>::new()
        );
        let v = BlockValue {
            num: 1,
            more: true,
            szx: 6,
        };
        assert_eq!(v.encode(), vec![0x1e]);
        assert_eq!(BlockValue::decode(&[0x1e]), Ok(v));
        assert_eq!(v.size(), 1024);
        assert_eq!(v.offset(), 1024);
        let big = BlockValue {
            num: 0xf_ffff,
            more: true,
            szx: 1,
        };
        assert_eq!(BlockValue::decode(&big.encode()), Ok(big));
        assert_eq!(BlockValue::decode(&[7]), Err(BlockError::ReservedSzx));
        assert_eq!(
            BlockValue::decode(&[0, 0, 0, 1]),
            Err(BlockError::TooLong(4))
        );
        assert_eq!(size_to_szx(1024), 6);
        assert_eq!(size_to_szx(5000), 6);
        assert_eq!(size_to_szx(100), 2);
        assert_eq!(size_to_szx(1), 0);
    }
}
