//! The NTLM message codec (MS-NLMP), pure functions only: NEGOTIATE (type 1), reading a CHALLENGE
//! (type 2: flags, server challenge, target info AV pairs with `MsvAvTimestamp`), AUTHENTICATE (type 3)
//! with an **NTLMv2** response, and the pieces a server needs to check one (the emulator uses them).
//!
//! HTTP authentication only: no signing or sealing, no key exchange (`NTLMSSP_NEGOTIATE_KEY_EXCH` is
//! never asked for), no MIC, and neither NTLMv1 nor LM. Over TLS the client adds the channel-binding
//! token (`MsvAvChannelBindings`, RFC 5929 `tls-server-end-point`) that Windows Extended Protection
//! checks (ews.md U3). The I/O (one kept-alive connection per handshake) is in the client's transport.
//!
//! - NTOWFv2 = HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) ‖ domain)).
//! - NTProofStr = HMAC-MD5(NTOWFv2, server challenge ‖ blob); the NT response is NTProofStr ‖ blob with
//!   blob = `01 01`, 6 zero bytes, the timestamp (FILETIME), the client challenge, 4 zero bytes, the
//!   AV pairs, 4 zero bytes.
//! - LMv2 is 24 zero bytes when the server sent `MsvAvTimestamp` (MS-NLMP 3.1.5.1.2), otherwise
//!   HMAC-MD5(NTOWFv2, server challenge ‖ client challenge) ‖ client challenge.

use hmac::{KeyInit as _, Mac as _};
use md4::Digest as _;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// `NTLMSSP_NEGOTIATE_UNICODE`.
pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
/// `NTLMSSP_REQUEST_TARGET`.
pub const REQUEST_TARGET: u32 = 0x0000_0004;
/// `NTLMSSP_NEGOTIATE_NTLM`.
pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
/// `NTLMSSP_NEGOTIATE_ALWAYS_SIGN`.
pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
/// `NTLMSSP_TARGET_TYPE_DOMAIN`.
pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
/// `NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY`.
pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
/// `NTLMSSP_NEGOTIATE_TARGET_INFO`.
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
/// `NTLMSSP_NEGOTIATE_128`.
pub const NEGOTIATE_128: u32 = 0x2000_0000;
/// `NTLMSSP_NEGOTIATE_56`.
pub const NEGOTIATE_56: u32 = 0x8000_0000;

/// The flags ORB's NEGOTIATE asks for (Unicode, NTLM with extended session security, target info).
pub const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_128
    | NEGOTIATE_56;

/// AV pair ids (MS-NLMP 2.2.2.1).
pub mod av {
    /// `MsvAvEOL`.
    pub const EOL: u16 = 0;
    /// `MsvAvNbComputerName`.
    pub const NB_COMPUTER_NAME: u16 = 1;
    /// `MsvAvNbDomainName`.
    pub const NB_DOMAIN_NAME: u16 = 2;
    /// `MsvAvDnsComputerName`.
    pub const DNS_COMPUTER_NAME: u16 = 3;
    /// `MsvAvDnsDomainName`.
    pub const DNS_DOMAIN_NAME: u16 = 4;
    /// `MsvAvTimestamp` (FILETIME, 8 bytes).
    pub const TIMESTAMP: u16 = 7;
    /// `MsvAvChannelBindings` (16 bytes: MD5 of `gss_channel_bindings_struct`).
    pub const CHANNEL_BINDINGS: u16 = 10;
}

/// A message ORB cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// The bytes are not the NTLM message expected.
    #[error("the NTLM {message} message is malformed: {what}")]
    Malformed {
        /// Which message (`CHALLENGE`, `AUTHENTICATE`, …).
        message: &'static str,
        /// What is wrong.
        what: String,
    },
}

impl NtlmError {
    /// Never: the same bytes stay malformed.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

fn malformed(message: &'static str, what: impl Into<String>) -> NtlmError {
    NtlmError::Malformed { message, what: what.into() }
}

/// UTF-16LE bytes of `s`.
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn from_utf16le(b: &[u8]) -> String {
    let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

/// HMAC-MD5.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    let mut mac = <hmac::Hmac<md5::Md5>>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2(password, user, domain) = HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) ‖ domain)).
pub fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = md4::Md4::digest(utf16le(password)).into();
    let mut who = user.to_uppercase();
    who.push_str(domain);
    hmac_md5(&nt_hash, &[&utf16le(&who)])
}

/// Microseconds-free FILETIME (100 ns ticks since 1601-01-01 UTC) of a time.
pub fn filetime(t: chrono::DateTime<chrono::Utc>) -> u64 {
    const UNIX_TO_1601_SECS: i64 = 11_644_473_600;
    let secs = t.timestamp().saturating_add(UNIX_TO_1601_SECS).max(0);
    (secs as u64).saturating_mul(10_000_000).saturating_add(u64::from(t.timestamp_subsec_nanos() / 100))
}

/// One AV pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvPair {
    /// `AvId`.
    pub id: u16,
    /// The value.
    pub value: Vec<u8>,
}

/// Reads AV pairs up to `MsvAvEOL` (a list without one is refused).
pub fn parse_av_pairs(mut b: &[u8]) -> Result<Vec<AvPair>, NtlmError> {
    let mut out = Vec::new();
    loop {
        if b.len() < 4 {
            return Err(malformed("target info", "the AV pairs end without MsvAvEOL"));
        }
        let id = u16::from_le_bytes([b[0], b[1]]);
        let len = usize::from(u16::from_le_bytes([b[2], b[3]]));
        if id == av::EOL {
            return Ok(out);
        }
        let value =
            b.get(4..4 + len).ok_or_else(|| malformed("target info", "an AV pair runs past the end"))?;
        out.push(AvPair { id, value: value.to_vec() });
        b = &b[4 + len..];
    }
}

/// Writes AV pairs and the closing `MsvAvEOL`.
pub fn write_av_pairs(pairs: &[AvPair]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pairs {
        out.extend_from_slice(&p.id.to_le_bytes());
        out.extend_from_slice(&(p.value.len() as u16).to_le_bytes());
        out.extend_from_slice(&p.value);
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// The NEGOTIATE message (type 1): [`CLIENT_FLAGS`], no domain or workstation supplied.
pub fn negotiate() -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    m.extend_from_slice(&[0; 16]);
    m
}

fn header<'a>(b: &'a [u8], kind: u32, message: &'static str, min: usize) -> Result<&'a [u8], NtlmError> {
    if b.len() < min {
        return Err(malformed(message, format!("{} bytes, at least {min} expected", b.len())));
    }
    if &b[..8] != SIGNATURE {
        return Err(malformed(message, "no NTLMSSP signature"));
    }
    let got = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if got != kind {
        return Err(malformed(message, format!("message type {got}, {kind} expected")));
    }
    Ok(b)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The payload a `(len, maxlen, offset)` field at `at` points to.
fn field<'a>(b: &'a [u8], at: usize, message: &'static str, name: &str) -> Result<&'a [u8], NtlmError> {
    let len = usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let offset = u32_at(b, at + 4) as usize;
    if len == 0 {
        return Ok(&[]);
    }
    b.get(offset..offset.saturating_add(len))
        .ok_or_else(|| malformed(message, format!("the {name} field points past the end")))
}

/// Whether `b` is a NEGOTIATE message (type 1).
pub fn is_negotiate(b: &[u8]) -> bool {
    header(b, 1, "NEGOTIATE", 16).is_ok()
}

/// A read CHALLENGE message (type 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `NegotiateFlags`.
    pub flags: u32,
    /// The server challenge.
    pub server_challenge: [u8; 8],
    /// The raw target info (AV pairs), as the NTLMv2 blob repeats it.
    pub target_info: Vec<u8>,
    /// `MsvAvTimestamp`, if the server sent one (FILETIME).
    pub timestamp: Option<u64>,
}

/// Reads a CHALLENGE message (type 2).
pub fn parse_challenge(b: &[u8]) -> Result<Challenge, NtlmError> {
    const M: &str = "CHALLENGE";
    let b = header(b, 2, M, 32)?;
    let flags = u32_at(b, 20);
    let mut server_challenge = [0; 8];
    server_challenge.copy_from_slice(&b[24..32]);
    let target_info = if b.len() >= 48 { field(b, 40, M, "TargetInfo")?.to_vec() } else { Vec::new() };
    let mut timestamp = None;
    if !target_info.is_empty() {
        for p in parse_av_pairs(&target_info)? {
            if p.id == av::TIMESTAMP {
                let v: [u8; 8] = p
                    .value
                    .as_slice()
                    .try_into()
                    .map_err(|_| malformed(M, "MsvAvTimestamp is not 8 bytes"))?;
                timestamp = Some(u64::from_le_bytes(v));
            }
        }
    }
    Ok(Challenge { flags, server_challenge, target_info, timestamp })
}

/// Writes a CHALLENGE message (type 2; for servers such as the emulator).
pub fn challenge_message(
    flags: u32,
    server_challenge: [u8; 8],
    target_name: &str,
    target_info: &[u8],
) -> Vec<u8> {
    let name = utf16le(target_name);
    let name_at = 48u32;
    let info_at = name_at + name.len() as u32;
    let mut m = Vec::new();
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    push_field(&mut m, name.len(), name_at);
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&server_challenge);
    m.extend_from_slice(&[0; 8]);
    push_field(&mut m, target_info.len(), info_at);
    m.extend_from_slice(&name);
    m.extend_from_slice(target_info);
    m
}

fn push_field(m: &mut Vec<u8>, len: usize, offset: u32) {
    let len = len as u16;
    m.extend_from_slice(&len.to_le_bytes());
    m.extend_from_slice(&len.to_le_bytes());
    m.extend_from_slice(&offset.to_le_bytes());
}

/// The NTLMv2 computation's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ntlmv2 {
    /// `NTProofStr`.
    pub nt_proof: [u8; 16],
    /// The blob (`temp` in MS-NLMP 3.3.2) after NTProofStr in the NT response.
    pub blob: Vec<u8>,
    /// The LMv2 response (24 bytes).
    pub lm_response: [u8; 24],
    /// `SessionBaseKey` = HMAC-MD5(NTOWFv2, NTProofStr).
    pub session_base_key: [u8; 16],
}

impl Ntlmv2 {
    /// The NT challenge response: NTProofStr ‖ blob.
    pub fn nt_response(&self) -> Vec<u8> {
        let mut v = self.nt_proof.to_vec();
        v.extend_from_slice(&self.blob);
        v
    }
}

/// The blob of an NTLMv2 response: `01 01`, zeros, `time`, the client challenge, zeros, the AV pairs
/// `target_info` (ending in `MsvAvEOL`), zeros.
pub fn blob(time: u64, client_challenge: [u8; 8], target_info: &[u8]) -> Vec<u8> {
    let mut b = vec![1, 1, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&time.to_le_bytes());
    b.extend_from_slice(&client_challenge);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(target_info);
    b.extend_from_slice(&[0; 4]);
    b
}

/// NTProofStr = HMAC-MD5(NTOWFv2, server challenge ‖ blob).
pub fn nt_proof(ntowf: &[u8; 16], server_challenge: &[u8; 8], blob: &[u8]) -> [u8; 16] {
    hmac_md5(ntowf, &[server_challenge, blob])
}

/// The NTLMv2 response for a challenge (MS-NLMP 3.3.2); `zero_lm` when the server sent a timestamp.
pub fn ntlmv2(
    ntowf: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: [u8; 8],
    time: u64,
    target_info: &[u8],
    zero_lm: bool,
) -> Ntlmv2 {
    let blob = blob(time, client_challenge, target_info);
    let nt_proof = nt_proof(ntowf, server_challenge, &blob);
    let mut lm_response = [0; 24];
    if !zero_lm {
        lm_response[..16].copy_from_slice(&hmac_md5(ntowf, &[server_challenge, &client_challenge]));
        lm_response[16..].copy_from_slice(&client_challenge);
    }
    let session_base_key = hmac_md5(ntowf, &[&nt_proof]);
    Ntlmv2 { nt_proof, blob, lm_response, session_base_key }
}

/// Who authenticates: `user` and `domain` as they go into NTOWFv2 and the message.
#[derive(Clone)]
pub struct Identity<'a> {
    /// The user name (a UPN `user@domain` goes here whole, with an empty domain).
    pub user: &'a str,
    /// The NetBIOS (or DNS) domain; empty for a UPN.
    pub domain: &'a str,
    /// The password.
    pub password: &'a str,
}

impl std::fmt::Debug for Identity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({}\\{}, password redacted)", self.domain, self.user)
    }
}

/// Splits a configured user name: `DOMAIN\user` gives the domain (unless one is configured), a UPN or
/// a bare name is the user with the configured domain (or none).
pub fn split_user<'a>(username: &'a str, domain: Option<&'a str>) -> (&'a str, &'a str) {
    match (domain, username.split_once('\\')) {
        (Some(d), Some((_, u))) => (u, d),
        (Some(d), None) => (username, d),
        (None, Some((d, u))) => (u, d),
        (None, None) => (username, ""),
    }
}

/// The AUTHENTICATE message (type 3) answering `challenge` with an NTLMv2 response. `client_challenge`
/// is 8 random bytes; `now` (FILETIME) is used when the server sent no `MsvAvTimestamp`;
/// `channel_bindings` (the MD5 of the TLS channel bindings, [`channel_bindings`]) goes into the AV pairs
/// when given.
pub fn authenticate(
    who: &Identity<'_>,
    challenge: &Challenge,
    client_challenge: [u8; 8],
    now: u64,
    channel_bindings: Option<[u8; 16]>,
) -> Result<Vec<u8>, NtlmError> {
    let mut pairs =
        if challenge.target_info.is_empty() { Vec::new() } else { parse_av_pairs(&challenge.target_info)? };
    if let Some(cb) = channel_bindings {
        pairs.retain(|p| p.id != av::CHANNEL_BINDINGS);
        pairs.push(AvPair { id: av::CHANNEL_BINDINGS, value: cb.to_vec() });
    }
    let target_info = write_av_pairs(&pairs);
    let ntowf = ntowf_v2(who.password, who.user, who.domain);
    let time = challenge.timestamp.unwrap_or(now);
    let resp = ntlmv2(
        &ntowf,
        &challenge.server_challenge,
        client_challenge,
        time,
        &target_info,
        challenge.timestamp.is_some(),
    );
    Ok(authenticate_message(
        challenge.flags & CLIENT_FLAGS | NEGOTIATE_UNICODE,
        &resp.lm_response,
        &resp.nt_response(),
        who.domain,
        who.user,
        "",
    ))
}

/// Writes an AUTHENTICATE message (type 3) from its parts (no session key, version or MIC).
pub fn authenticate_message(
    flags: u32,
    lm_response: &[u8],
    nt_response: &[u8],
    domain: &str,
    user: &str,
    workstation: &str,
) -> Vec<u8> {
    let (domain, user, workstation) = (utf16le(domain), utf16le(user), utf16le(workstation));
    let mut at = 64u32;
    let mut m = Vec::new();
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut payload = Vec::new();
    for part in [lm_response, nt_response, &domain, &user, &workstation, &[]] {
        push_field(&mut m, part.len(), at);
        payload.extend_from_slice(part);
        at += part.len() as u32;
    }
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&payload);
    m
}

/// A read AUTHENTICATE message (type 3), for a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// `NegotiateFlags`.
    pub flags: u32,
    /// `LmChallengeResponse`.
    pub lm_response: Vec<u8>,
    /// `NtChallengeResponse` (NTProofStr ‖ blob for NTLMv2).
    pub nt_response: Vec<u8>,
    /// `DomainName`.
    pub domain: String,
    /// `UserName`.
    pub user: String,
    /// `Workstation`.
    pub workstation: String,
}

/// Reads an AUTHENTICATE message (type 3; Unicode names).
pub fn parse_authenticate(b: &[u8]) -> Result<Authenticate, NtlmError> {
    const M: &str = "AUTHENTICATE";
    let b = header(b, 3, M, 64)?;
    let flags = u32_at(b, 60);
    Ok(Authenticate {
        flags,
        lm_response: field(b, 12, M, "LmChallengeResponse")?.to_vec(),
        nt_response: field(b, 20, M, "NtChallengeResponse")?.to_vec(),
        domain: from_utf16le(field(b, 28, M, "DomainName")?),
        user: from_utf16le(field(b, 36, M, "UserName")?),
        workstation: from_utf16le(field(b, 44, M, "Workstation")?),
    })
}

/// Whether `auth`'s NTLMv2 response proves `password` for the challenge (recomputes NTProofStr from the
/// blob sent). NTLMv1 responses (24 bytes) are refused.
pub fn verify_ntlmv2(auth: &Authenticate, password: &str, server_challenge: &[u8; 8]) -> bool {
    if auth.nt_response.len() < 16 + 28 {
        return false;
    }
    let (proof, blob) = auth.nt_response.split_at(16);
    if blob[..2] != [1, 1] {
        return false;
    }
    let ntowf = ntowf_v2(password, &auth.user, &auth.domain);
    // Not secret-dependent in a way worth a constant-time compare here: a test server.
    nt_proof(&ntowf, server_challenge, blob) == proof
}

/// The AV pairs of an NTLMv2 blob (a server reads `MsvAvChannelBindings` from them).
pub fn blob_av_pairs(nt_response: &[u8]) -> Result<Vec<AvPair>, NtlmError> {
    nt_response
        .get(16 + 28..)
        .map_or_else(|| Err(malformed("AUTHENTICATE", "the NTLMv2 blob is short")), parse_av_pairs)
}

/// The channel-binding hash for `MsvAvChannelBindings` over TLS: MD5 of a `gss_channel_bindings_struct`
/// with no addresses and the application data `tls-server-end-point:` ‖ the certificate hash (RFC 5929:
/// SHA-256 for MD5/SHA-1 signed certificates, else the signature's hash; RSASSA-PSS and unknown
/// algorithms take SHA-256).
pub fn channel_bindings(server_cert_der: &[u8]) -> [u8; 16] {
    let alg = match cert_signature_hash(server_cert_der) {
        Some(384) => &aws_lc_rs::digest::SHA384,
        Some(512) => &aws_lc_rs::digest::SHA512,
        _ => &aws_lc_rs::digest::SHA256,
    };
    let hash = aws_lc_rs::digest::digest(alg, server_cert_der);
    let mut app = b"tls-server-end-point:".to_vec();
    app.extend_from_slice(hash.as_ref());
    let mut s = vec![0; 16];
    s.extend_from_slice(&(app.len() as u32).to_le_bytes());
    s.extend_from_slice(&app);
    md5::Md5::digest(&s).into()
}

/// The SHA-2 size of a certificate's signature algorithm (384 or 512 when it says so), by its OID.
fn cert_signature_hash(der: &[u8]) -> Option<u16> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, … }, … }
    let (_, cert, _) = der_tlv(der)?;
    let (_, _, after_tbs) = der_tlv(cert)?;
    let (_, alg, _) = der_tlv(after_tbs)?;
    let (tag, oid, _) = der_tlv(alg)?;
    if tag != 0x06 {
        return None;
    }
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    if SHA384.contains(&oid) {
        Some(384)
    } else if SHA512.contains(&oid) {
        Some(512)
    } else {
        None
    }
}

/// One DER TLV: (tag, contents, the rest after it).
fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b.get(2..2 + n)?.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x));
        (len, 2 + n)
    };
    let contents = b.get(head..head.checked_add(len)?)?;
    Some((tag, contents, &b[head + len..]))
}

#[cfg(test)]
mod tests;
