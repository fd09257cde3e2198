//! The codec against MS-NLMP §4.2.4 (NTLMv2 authentication, the spec's worked example) and round
//! trips through the server-side readers.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

// MS-NLMP 4.2.1 common values and 4.2.4 (NTLMv2): user "User", domain "Domain", password "Password",
// server challenge 0123456789abcdef, client challenge aa…, time 0, target info
// MsvAvNbDomainName "Domain" + MsvAvNbComputerName "Server".
const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];
const CHALLENGE_MESSAGE: &str = "4e544c4d53535000 02000000 0c000c00 38000000 33828ae2 0123456789abcdef
    0000000000000000 24002400 44000000 060070170000000f 53006500720076006500720002000c00
    44006f006d00610069006e0001000c0053006500720076006500720000000000";

fn target_info() -> Vec<u8> {
    hex("02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000")
}

#[test]
fn ntlmv2_matches_the_ms_nlmp_4_2_4_example() {
    let ntowf = ntowf_v2("Password", "User", "Domain");
    assert_eq!(ntowf.to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"), "4.2.4.1.1 NTOWFv2");
    let r = ntlmv2(&ntowf, &SERVER_CHALLENGE, CLIENT_CHALLENGE, 0, &target_info(), false);
    assert_eq!(r.nt_proof.to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"), "4.2.4.2.2 NTProofStr");
    assert_eq!(
        r.session_base_key.to_vec(),
        hex("8de40ccadbc14a82f15cb0ad0de95ca3"),
        "4.2.4.1.2 SessionBaseKey"
    );
    assert_eq!(
        r.lm_response.to_vec(),
        hex("86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa"),
        "4.2.4.2.1 LMv2 response"
    );
    let temp = hex("0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000
         02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000 00000000");
    assert_eq!(r.blob, temp, "4.2.4.1.3 temp");
    // With MsvAvTimestamp the LMv2 response is zeros (3.1.5.1.2); the NT response is unchanged.
    let z = ntlmv2(&ntowf, &SERVER_CHALLENGE, CLIENT_CHALLENGE, 0, &target_info(), true);
    assert_eq!((z.lm_response, z.nt_proof), ([0; 24], r.nt_proof));
}

#[test]
fn the_4_2_4_challenge_is_read_and_answered_like_the_example() {
    let msg = hex(CHALLENGE_MESSAGE);
    let c = parse_challenge(&msg).unwrap();
    assert_eq!(c.flags, 0xe28a_8233);
    assert_eq!(c.server_challenge, SERVER_CHALLENGE);
    assert_eq!(c.target_info, target_info());
    assert_eq!(c.timestamp, None);
    let who = Identity { user: "User", domain: "Domain", password: "Password" };
    let auth = authenticate(&who, &c, CLIENT_CHALLENGE, 0, None).unwrap();
    let read = parse_authenticate(&auth).unwrap();
    assert_eq!((read.user.as_str(), read.domain.as_str(), read.workstation.as_str()), ("User", "Domain", ""));
    // The example's AUTHENTICATE carries these two responses (4.2.4.3).
    assert_eq!(read.lm_response, hex("86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa"));
    assert_eq!(&read.nt_response[..16], hex("68cd0ab851e51c96aabc927bebef6a1c").as_slice());
    assert_eq!(read.flags & NEGOTIATE_UNICODE, NEGOTIATE_UNICODE);
    assert!(verify_ntlmv2(&read, "Password", &SERVER_CHALLENGE));
    assert!(!verify_ntlmv2(&read, "password", &SERVER_CHALLENGE), "passwords are case-sensitive");
    assert!(!verify_ntlmv2(&read, "Password", &[0; 8]), "bound to the server challenge");
}

#[test]
fn a_server_timestamp_zeroes_lmv2_and_is_used_in_the_blob() {
    let stamp = 0x01d9_0000_1234_5678u64;
    let info = write_av_pairs(&[
        AvPair { id: av::NB_DOMAIN_NAME, value: utf16le("CONTOSO") },
        AvPair { id: av::TIMESTAMP, value: stamp.to_le_bytes().to_vec() },
    ]);
    let msg = challenge_message(CLIENT_FLAGS, [7; 8], "CONTOSO", &info);
    let c = parse_challenge(&msg).unwrap();
    assert_eq!(c.timestamp, Some(stamp));
    let who = Identity { user: "svc", domain: "CONTOSO", password: "pw" };
    let read = parse_authenticate(&authenticate(&who, &c, [9; 8], 42, None).unwrap()).unwrap();
    assert_eq!(read.lm_response, vec![0; 24]);
    assert_eq!(read.nt_response[16 + 8..16 + 16], stamp.to_le_bytes(), "the server's time, not ours");
    assert!(verify_ntlmv2(&read, "pw", &[7; 8]));
}

#[test]
fn channel_bindings_go_into_the_blob() {
    let c = Challenge {
        flags: CLIENT_FLAGS,
        server_challenge: [1; 8],
        target_info: target_info(),
        timestamp: None,
    };
    let who = Identity { user: "u", domain: "", password: "p" };
    let read = parse_authenticate(&authenticate(&who, &c, [2; 8], 5, Some([0xcb; 16])).unwrap()).unwrap();
    let pairs = blob_av_pairs(&read.nt_response).unwrap();
    assert_eq!(pairs.last(), Some(&AvPair { id: av::CHANNEL_BINDINGS, value: vec![0xcb; 16] }));
    assert_eq!(pairs.len(), 3, "the server's two pairs are kept");
    assert!(verify_ntlmv2(&read, "p", &[1; 8]));
}

#[test]
fn the_channel_binding_hash_is_md5_of_the_gss_struct() {
    // Certificate shapes (only the signature algorithm OID matters): sha256WithRSAEncryption and
    // ecdsa-with-SHA384. Expected values computed independently (Python hashlib: MD5 of 16 zero bytes,
    // the u32 LE length and `tls-server-end-point:` ‖ SHA-256 / SHA-384 of the DER).
    let sha256_rsa = hex("3014 3003020100 300a06092a864886f70d01010b 3000");
    let sha384_ec = hex("3013 3003020100 300a06082a8648ce3d040303 3000");
    assert_eq!(cert_signature_hash(&sha256_rsa), None);
    assert_eq!(cert_signature_hash(&sha384_ec), Some(384));
    assert_eq!(cert_signature_hash(b"junk"), None);
    assert_eq!(channel_bindings(&sha256_rsa).to_vec(), hex("52612ddf4194a2a8b908a6830dc2566f"));
    assert_eq!(channel_bindings(&sha384_ec).to_vec(), hex("8cc32e3867c7d9d9a39f96ec5e341ab6"));
}

#[test]
fn user_names_split_into_user_and_domain() {
    let cases: &[(&str, Option<&str>, (&str, &str))] = &[
        ("CONTOSO\\svc-orb", None, ("svc-orb", "CONTOSO")),
        ("svc-orb@contoso.com", None, ("svc-orb@contoso.com", "")),
        ("svc-orb", Some("CONTOSO"), ("svc-orb", "CONTOSO")),
        ("OTHER\\svc-orb", Some("CONTOSO"), ("svc-orb", "CONTOSO")),
        ("svc-orb", None, ("svc-orb", "")),
    ];
    for (name, domain, want) in cases {
        assert_eq!(split_user(name, *domain), *want, "{name}");
    }
}

#[test]
fn malformed_messages_are_refused_not_panicked_on() {
    let ok = challenge_message(CLIENT_FLAGS, [1; 8], "D", &target_info());
    let mut bad_type = ok.clone();
    bad_type[8] = 3;
    let mut past_end = ok.clone();
    past_end[44] = 0xff; // TargetInfo offset
    // The target info without its MsvAvEOL.
    let mut no_eol = ok.clone();
    no_eol.truncate(ok.len() - 4);
    no_eol[40] = (target_info().len() - 4) as u8;
    let cases: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("short", b"NTLMSSP\0\x02\0\0\0"),
        ("signature", b"NTLMSSX\0\x02\0\0\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("type", &bad_type),
        ("offset", &past_end),
        ("eol", &no_eol),
    ];
    for (what, bytes) in cases {
        let e = parse_challenge(bytes).unwrap_err();
        assert!(!e.is_retryable(), "{what}");
    }
    assert!(parse_authenticate(&ok).is_err());
    assert!(parse_authenticate(&[0; 70]).is_err());
    assert!(is_negotiate(&negotiate()) && !is_negotiate(&ok));
    // Every prefix of a valid message is refused or read, never a panic.
    let auth = authenticate_message(CLIENT_FLAGS, &[0; 24], &[1; 60], "D", "U", "W");
    for n in 0..auth.len() {
        let _ = parse_authenticate(&auth[..n]);
        let _ = parse_challenge(&ok[..n.min(ok.len())]);
        let _ = blob_av_pairs(&auth[..n]);
    }
}

#[test]
fn filetime_counts_from_1601() {
    let unix0 = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    assert_eq!(filetime(unix0), 116_444_736_000_000_000);
    assert_eq!(filetime(unix0 + chrono::Duration::microseconds(1)), 116_444_736_000_000_010);
}
