//! The mails ORB sends, through the client against the EWS emulator over real HTTP: sent from a sender
//! mailbox the service account may impersonate, kept in the emulator's outbox, never counted as reading
//! a body; refused clearly when the sender is outside the ApplicationImpersonation scope, and before
//! sending when the mail is bad.

use std::collections::BTreeSet;
use std::sync::Arc;

use orb_emulators::ews::{self, EwsEmulator, RoomSettings, Scope, Served};
use orb_ews::model::OutgoingMail;
use orb_ews::{EwsClient, EwsError};

mod support;
use support::{ALICE, ROOM, addr, client, start_clock, target};

const SENDER: &str = "orb-noreply@contoso.com";
const BOB: &str = "bob@contoso.com";

struct World {
    em: EwsEmulator,
    served: Served,
    orb: EwsClient,
}

async fn world() -> World {
    let em = EwsEmulator::new(Arc::new(start_clock()));
    em.add_user(ALICE, "Alice Example");
    em.add_user(BOB, "Bob");
    em.add_user(SENDER, "Room booking");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    // The operator put the sender mailbox in the scope beside the rooms and organizers; Bob is not in it.
    let scope: BTreeSet<String> = [ALICE, ROOM, SENDER].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    em.add_account("svc-rooms", "rooms-password", Scope::Mailboxes([ROOM.to_owned()].into()));
    let served = ews::serve(em.clone()).await.unwrap();
    let orb = client(&served, "svc-orb", "orb-password");
    World { em, served, orb }
}

fn confirmation() -> OutgoingMail {
    OutgoingMail {
        to: vec![addr(ALICE), addr(BOB)],
        subject: "Room 4.12 booked for 1 September".into(),
        body_text: "Your booking of Room 4.12 on 1 September, 10:00–11:00, is confirmed.\n\n— ORB".into(),
    }
}

#[tokio::test]
async fn a_mail_is_sent_from_the_sender_mailbox_and_kept_in_the_outbox() {
    let w = world().await;
    let sender = addr(SENDER);
    w.orb.send_mail(target(&sender), &confirmation()).await.unwrap();

    let outbox = w.em.outbox();
    assert_eq!(outbox.len(), 1);
    let sent = &outbox[0];
    assert_eq!(sent.from, SENDER);
    assert_eq!(sent.to, [ALICE, BOB]);
    assert!(sent.cc.is_empty() && sent.bcc.is_empty());
    assert_eq!(sent.subject, "Room 4.12 booked for 1 September");
    assert_eq!(sent.body, confirmation().body_text, "the text as written, line breaks and all");
    assert_eq!((sent.body_type.as_str(), sent.saved_copy), ("Text", false));
    assert_eq!(sent.at, start_clock_now());

    // One CreateItem impersonating the sender, anchored on it, and not a body read.
    let log = w.em.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].operation, "CreateItem");
    assert_eq!(log[0].mailbox.as_deref(), Some(SENDER));
    assert_eq!(log[0].anchor_mailbox.as_deref(), Some(SENDER));
    assert_eq!(log[0].response_code, "NoError");
    assert!(w.em.body_requests().is_empty());
    assert!(w.em.items(SENDER).is_empty(), "SendOnly keeps no copy");
}

fn start_clock_now() -> chrono::DateTime<chrono::Utc> {
    use orb_core::Clock as _;
    start_clock().now()
}

#[tokio::test]
async fn a_sender_outside_the_impersonation_scope_is_refused_saying_what_to_configure() {
    let w = world().await;
    // A person's mailbox outside the scope.
    let bob = addr(BOB);
    let e = w.orb.send_mail(target(&bob), &confirmation()).await.unwrap_err();
    let EwsError::ImpersonationDenied { code, mailbox, .. } = &e else { panic!("{e:?}") };
    assert_eq!((code.as_str(), mailbox.as_str()), ("ErrorImpersonateUserDenied", BOB));
    let text = e.to_string();
    for says in
        ["sender mailbox", BOB, "ApplicationImpersonation", "management scope", "CustomRecipientWriteScope"]
    {
        assert!(text.contains(says), "{says}: {text}");
    }
    // An account scoped to rooms only cannot send from the sender mailbox either.
    let rooms_only = client(&w.served, "svc-rooms", "rooms-password");
    let sender = addr(SENDER);
    let e = rooms_only.send_mail(target(&sender), &confirmation()).await.unwrap_err();
    assert!(e.to_string().contains("room mailboxes alone"), "{e}");
    // An unknown sender address keeps Exchange's own hint.
    let ghost = addr("ghost@contoso.com");
    let e = w.orb.send_mail(target(&ghost), &confirmation()).await.unwrap_err();
    assert!(
        matches!(&e, EwsError::ImpersonationDenied { code, .. } if code == "ErrorNonExistentMailbox"),
        "{e:?}"
    );
    assert!(w.em.outbox().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_bad_mail_is_refused_before_anything_is_sent() {
    let w = world().await;
    let sender = addr(SENDER);
    let bad = [
        OutgoingMail { to: vec![], ..confirmation() },
        OutgoingMail { subject: " ".into(), ..confirmation() },
        OutgoingMail { subject: "Booked\r\nBcc: someone@example.com".into(), ..confirmation() },
        OutgoingMail { body_text: "bell\u{7}".into(), ..confirmation() },
    ];
    for mail in bad {
        let e = w.orb.send_mail(target(&sender), &mail).await.unwrap_err();
        assert!(matches!(e, EwsError::Invalid { .. }), "{mail:?}: {e:?}");
    }
    assert!(w.em.requests().is_empty() && w.em.outbox().is_empty());
}
