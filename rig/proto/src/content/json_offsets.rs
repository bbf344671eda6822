//! Byte offsets of JSON objects at a given nesting depth, so JSON decoders can
//! point an error at the record that caused it (serde_json's `Value` keeps no
//! positions). Tolerant: on malformed input it just returns fewer offsets.

use alloc::vec::Vec;

/// Start offsets of every `{` opened at nesting `depth` (0 = top level).
pub(crate) fn object_starts(b: &[u8], depth: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut d = 0usize;
    let mut in_str = false;
    let mut esc = false;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => {
                if c == b'{' && d == depth {
                    out.push(i);
                }
                d += 1;
            }
            b'}' | b']' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    out
}

/// Byte offset of a serde_json error's line/column.
pub(crate) fn line_col_offset(b: &[u8], line: usize, column: usize) -> usize {
    let mut l = 1usize;
    let mut start = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if l == line {
            break;
        }
        if c == b'\n' {
            l += 1;
            start = i + 1;
        }
    }
    (start + column.saturating_sub(1)).min(b.len())
}
