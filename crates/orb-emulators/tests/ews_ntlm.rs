//! The EWS emulator's NTLM over raw TCP connections: the challenge and the authenticated state belong
//! to the connection that asked (an AUTHENTICATE on another connection is refused), later requests on
//! an authenticated connection need no header, raw NTLM inside `Negotiate` works, a challenge is used
//! once, and Basic still works beside it.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{TimeZone, Utc};
use orb_core::{EmailAddress, FixedClock};
use orb_emulators::ews::{self, EwsEmulator, RoomSettings, Scope, Served};
use orb_ews::{ntlm, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROOM: &str = "room-4.12@contoso.com";

async fn emulator() -> (EwsEmulator, Served) {
    let clock = FixedClock::new(Utc.with_ymd_and_hms(2026, 8, 20, 9, 0, 0).unwrap());
    let em = EwsEmulator::new(Arc::new(clock));
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    em.add_account("svc", "pw", Scope::Mailboxes([ROOM.to_owned()].into_iter().collect::<BTreeSet<_>>()));
    let served = ews::serve(em.clone()).await.unwrap();
    (em, served)
}

/// One kept-alive HTTP/1.1 connection, written and read by hand.
struct Conn(TcpStream);

struct Answer {
    status: u16,
    offers: Vec<String>,
}

impl Conn {
    async fn open(served: &Served) -> Self {
        Self(TcpStream::connect(served.base_url.trim_start_matches("http://")).await.unwrap())
    }

    async fn post(&mut self, authorization: Option<&str>) -> Answer {
        let body = request::envelope(Some(&EmailAddress::parse(ROOM).unwrap()), request::get_room_lists())
            .to_document();
        let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let head = format!(
            "POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: emulator\r\nContent-Type: text/xml; charset=utf-8\r\n\
             {auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.0.write_all(head.as_bytes()).await.unwrap();
        self.0.write_all(body.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.0.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let mut offers = Vec::new();
        let mut length = 0usize;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "www-authenticate" => offers.push(value.trim().to_owned()),
                    "content-length" => length = value.trim().parse().unwrap(),
                    _ => {}
                }
            }
        }
        while buf.len() < end + length {
            let mut chunk = [0u8; 4096];
            let n = self.0.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        Answer { status, offers }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn challenge_of(a: &Answer, scheme: &str) -> ntlm::Challenge {
    assert_eq!(a.status, 401);
    let token = a.offers.iter().find_map(|o| o.strip_prefix(&format!("{scheme} "))).unwrap();
    ntlm::parse_challenge(&base64::engine::general_purpose::STANDARD.decode(token).unwrap()).unwrap()
}

fn authenticate(c: &ntlm::Challenge, password: &str) -> Vec<u8> {
    let who = ntlm::Identity { user: "svc", domain: "CONTOSO", password };
    ntlm::authenticate(&who, c, [0x5a; 8], 0, None).unwrap()
}

#[tokio::test]
async fn ntlm_is_bound_to_the_connection_that_asked() {
    let (em, served) = emulator().await;
    let (mut a, mut b) = (Conn::open(&served).await, Conn::open(&served).await);

    let bare = a.post(None).await;
    assert_eq!(bare.status, 401);
    assert_eq!(bare.offers, ["Negotiate", "NTLM", "Basic realm=\"exchange.emulator\""]);

    let challenge = challenge_of(&a.post(Some(&format!("NTLM {}", b64(&ntlm::negotiate())))).await, "NTLM");
    let pairs = ntlm::parse_av_pairs(&challenge.target_info).unwrap();
    let ids: Vec<u16> = pairs.iter().map(|p| p.id).collect();
    for id in [ntlm::av::NB_DOMAIN_NAME, ntlm::av::NB_COMPUTER_NAME, ntlm::av::TIMESTAMP] {
        assert!(ids.contains(&id), "AV pair {id} in {ids:?}");
    }
    assert_eq!(
        challenge.timestamp,
        Some(ntlm::filetime(Utc.with_ymd_and_hms(2026, 8, 20, 9, 0, 0).unwrap()))
    );
    let type3 = format!("NTLM {}", b64(&authenticate(&challenge, "pw")));

    // The right answer to A's challenge, sent on B: refused.
    assert_eq!(b.post(Some(&type3)).await.status, 401);
    // On A it authenticates A, and A needs no header afterwards; B still does.
    assert_eq!(a.post(Some(&type3)).await.status, 200);
    assert_eq!(a.post(None).await.status, 200);
    assert_eq!(b.post(None).await.status, 401);

    let log = em.requests();
    let steps: Vec<(&str, u16)> = log.iter().map(|r| (r.auth.as_deref().unwrap_or("-"), r.status)).collect();
    assert_eq!(
        steps,
        [
            ("none", 401),
            ("ntlm-negotiate", 401),
            ("ntlm-no-challenge", 401),
            ("ntlm-authenticate", 200),
            ("ntlm-connection", 200),
            ("none", 401)
        ]
    );
    let conn_a = log[0].connection.unwrap();
    let conn_b = log[2].connection.unwrap();
    assert_ne!(conn_a, conn_b);
    assert_eq!(log[3].account.as_deref(), Some("svc"));
    assert_eq!([log[1].connection, log[3].connection, log[4].connection], [Some(conn_a); 3]);
}

#[tokio::test]
async fn negotiate_wrong_passwords_replays_and_basic() {
    let (_em, served) = emulator().await;
    // Raw NTLM inside Negotiate: answered in Negotiate.
    let mut c = Conn::open(&served).await;
    let challenge =
        challenge_of(&c.post(Some(&format!("Negotiate {}", b64(&ntlm::negotiate())))).await, "Negotiate");
    assert_eq!(
        c.post(Some(&format!("Negotiate {}", b64(&authenticate(&challenge, "pw"))))).await.status,
        200
    );

    // A wrong password is refused; its challenge is spent, so the right answer after it is refused too.
    let mut d = Conn::open(&served).await;
    let challenge = challenge_of(&d.post(Some(&format!("NTLM {}", b64(&ntlm::negotiate())))).await, "NTLM");
    let wrong = d.post(Some(&format!("NTLM {}", b64(&authenticate(&challenge, "nope"))))).await;
    assert_eq!((wrong.status, wrong.offers.len()), (401, 3));
    assert_eq!(d.post(Some(&format!("NTLM {}", b64(&authenticate(&challenge, "pw"))))).await.status, 401);

    // Garbage, an SPNEGO token (not emulated), and Basic beside NTLM.
    let mut e = Conn::open(&served).await;
    let cases: &[(String, u16)] = &[
        ("NTLM !!!".into(), 401),
        (format!("Negotiate {}", b64(&[0x60, 0x28, 0x06, 0x06])), 401),
        (format!("Basic {}", b64(b"svc:pw")), 200),
        (format!("Basic {}", b64(b"svc:nope")), 401),
    ];
    for (header, status) in cases {
        assert_eq!(e.post(Some(header)).await.status, *status, "{header}");
    }
}

#[tokio::test]
async fn with_ntlm_off_only_basic_is_offered() {
    let (em, served) = emulator().await;
    em.set_knobs(ews::Knobs { ntlm_disabled: true, ..ews::Knobs::default() });
    let mut c = Conn::open(&served).await;
    let a = c.post(Some(&format!("NTLM {}", b64(&ntlm::negotiate())))).await;
    assert_eq!((a.status, a.offers), (401, vec!["Basic realm=\"exchange.emulator\"".to_owned()]));
}
