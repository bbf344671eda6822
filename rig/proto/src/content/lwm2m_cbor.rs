//! LwM2M CBOR (11544), OMA LwM2M 1.2 Core TS §7.4.7: nested CBOR maps keyed
//! by path ids, from the root: `{3: {0: {0: "Open Mobile Alliance", 6: {0: 1}}}}`.
//! A key may also be an array of ids that collapses several levels
//! (`{[3, 0]: {0: "..."}}`). Values as in CBOR 60 (see [`super::cbor`]).
//!
//! The encoder always writes one single-id key per level, from the root, so
//! the same records always give the same bytes. Every level is allowed,
//! composite included.

use alloc::string::ToString;
use alloc::vec::Vec;

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::{
    ContentFormat, DecodeError, DecodeErrorKind, EncodeError, check_duplicates, finish_record,
};
use crate::object::Registry;
use crate::path::ObjectPath;
use crate::value::{Record, Records};

const F: ContentFormat = ContentFormat::Lwm2mCbor;

/// Encode records as LwM2M CBOR.
pub fn encode(base: &ObjectPath, records: &[Record]) -> Result<Vec<u8>, EncodeError> {
    let mut sorted: Vec<(Vec<u16>, &Record)> = records.iter().map(|r| (r.path.ids(), r)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut e = Encoder::new(Vec::new());
    write_level(&mut e, &sorted, 0).map_err(|_| EncodeError::Unrepresentable {
        path: *base,
        what: "CBOR".into(),
    })?;
    Ok(e.into_writer())
}

type EncErr = minicbor::encode::Error<core::convert::Infallible>;

fn write_level(
    e: &mut Encoder<Vec<u8>>,
    items: &[(Vec<u16>, &Record)],
    depth: usize,
) -> Result<(), EncErr> {
    // Groups of items sharing the id at `depth`.
    let mut groups: Vec<&[(Vec<u16>, &Record)]> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let id = items[i].0[depth];
        let j = i + items[i..].iter().take_while(|x| x.0[depth] == id).count();
        groups.push(&items[i..j]);
        i = j;
    }
    e.map(groups.len() as u64)?;
    for g in groups {
        e.u16(g[0].0[depth])?;
        if g.len() == 1 && g[0].0.len() == depth + 1 {
            super::cbor::write_value(e, &g[0].1.value, true)?;
        } else {
            write_level(e, g, depth + 1)?;
        }
    }
    Ok(())
}

/// Decode an LwM2M CBOR payload for `base`.
pub fn decode(
    base: &ObjectPath,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Records, DecodeError> {
    let mut d = Decoder::new(bytes);
    let mut out = Vec::new();
    let mut offs = Vec::new();
    let mut prefix: Vec<u16> = Vec::new();
    read_map(&mut d, &mut prefix, base, registry, &mut out, &mut offs)?;
    if d.position() != bytes.len() {
        return Err(DecodeError::new(
            F,
            d.position(),
            DecodeErrorKind::Trailing(bytes.len() - d.position()),
        ));
    }
    check_duplicates(F, &out, &offs)?;
    Ok(out)
}

fn syn(d: &Decoder<'_>, e: minicbor::decode::Error) -> DecodeError {
    DecodeError::new(F, d.position(), DecodeErrorKind::Syntax(e.to_string()))
}

fn read_map(
    d: &mut Decoder<'_>,
    prefix: &mut Vec<u16>,
    base: &ObjectPath,
    registry: &Registry,
    out: &mut Records,
    offs: &mut Vec<usize>,
) -> Result<(), DecodeError> {
    let at = d.position();
    let n = match d.map() {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(DecodeError::new(
                F,
                at,
                DecodeErrorKind::Invalid("indefinite-length map".into()),
            ));
        }
        Err(e) => return Err(syn(d, e)),
    };
    for _ in 0..n {
        let kpos = d.position();
        let keep = prefix.len();
        match d.datatype().map_err(|e| syn(d, e))? {
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
                let id = d.u16().map_err(|e| syn(d, e))?;
                prefix.push(id);
            }
            Type::Array => {
                let len = d.array().map_err(|e| syn(d, e))?.unwrap_or(0);
                if len == 0 || len > 4 {
                    return Err(DecodeError::new(
                        F,
                        kpos,
                        DecodeErrorKind::Invalid("path key must hold 1 to 4 ids".into()),
                    ));
                }
                for _ in 0..len {
                    let id = d.u16().map_err(|e| syn(d, e))?;
                    prefix.push(id);
                }
            }
            t => {
                return Err(DecodeError::new(
                    F,
                    kpos,
                    DecodeErrorKind::Invalid(alloc::format!("map key of type {t}")),
                ));
            }
        }
        if prefix.len() > 4 {
            return Err(DecodeError::new(
                F,
                kpos,
                DecodeErrorKind::BadPath("more than 4 levels".into()),
            ));
        }
        let vpos = d.position();
        if matches!(
            d.datatype().map_err(|e| syn(d, e))?,
            Type::Map | Type::MapIndef
        ) {
            read_map(d, prefix, base, registry, out, offs)?;
        } else {
            let path = ObjectPath::from_ids(prefix).ok_or_else(|| {
                DecodeError::new(
                    F,
                    kpos,
                    DecodeErrorKind::BadPath(alloc::format!("{prefix:?} (65535 is reserved)")),
                )
            })?;
            let kind = registry.kind_at(&path);
            let v = super::cbor::read_value(d, kind)
                .map_err(|e| syn(d, e))?
                .map_err(|m| DecodeError::new(F, vpos, DecodeErrorKind::Invalid(m.to_string())))?;
            out.push(finish_record(F, vpos, base, path, v, registry)?);
            offs.push(vpos);
        }
        prefix.truncate(keep);
    }
    Ok(())
}
