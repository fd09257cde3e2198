//! The little DER reading this crate needs: the `SubjectPublicKeyInfo` of an X.509 certificate.
//!
//! aws-lc-rs has no X.509 parser, and a full one (x509-parser and its dependency tree) is a lot of code for
//! walking six fields. The reader is strict DER: single-byte tags, definite lengths in minimal form, no
//! trailing bytes where a structure must end.

/// One tag-length-value.
struct Tlv<'a> {
    tag: u8,
    /// The contents (without tag and length).
    value: &'a [u8],
    /// Tag, length and contents.
    whole: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;

/// Reads one TLV from the front of `input`; returns it and the rest.
fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("unexpected end of data")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not used in certificates".to_owned());
    }
    let (&first, mut rest) = rest.split_first().ok_or("missing length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err("indefinite or oversized length".to_owned());
        }
        if rest.len() < n {
            return Err("truncated length".to_owned());
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        if bytes[0] == 0 {
            return Err("non-minimal length".to_owned());
        }
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return Err("non-minimal length".to_owned());
        }
        len
    };
    if rest.len() < len {
        return Err("truncated value".to_owned());
    }
    let header = input.len() - rest.len();
    let (value, after) = rest.split_at(len);
    Ok((Tlv { tag, value, whole: &input[..header + len] }, after))
}

/// Reads one TLV with the expected tag.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), String> {
    let (tlv, rest) = read(input).map_err(|e| format!("{what}: {e}"))?;
    if tlv.tag != tag {
        return Err(format!("{what}: expected tag 0x{tag:02x}, found 0x{:02x}", tlv.tag));
    }
    Ok((tlv, rest))
}

/// The DER `SubjectPublicKeyInfo` (tag and length included) of a DER X.509 certificate.
pub(crate) fn certificate_spki(cert: &[u8]) -> Result<&[u8], String> {
    let (certificate, rest) = expect(cert, SEQUENCE, "certificate")?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".to_owned());
    }
    let (tbs, _) = expect(certificate.value, SEQUENCE, "tbsCertificate")?;
    let mut fields = tbs.value;
    // version [0] EXPLICIT, absent for v1 certificates
    if fields.first() == Some(&CONTEXT_0_CONSTRUCTED) {
        fields = expect(fields, CONTEXT_0_CONSTRUCTED, "version")?.1;
    }
    fields = expect(fields, INTEGER, "serialNumber")?.1;
    for what in ["signature algorithm", "issuer", "validity", "subject"] {
        fields = expect(fields, SEQUENCE, what)?.1;
    }
    let (spki, _) = expect(fields, SEQUENCE, "subjectPublicKeyInfo")?;
    Ok(spki.whole)
}
