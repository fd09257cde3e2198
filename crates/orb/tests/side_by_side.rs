//! A Graph tenant and an EWS tenant in one `orb serve` (one child process, configured through the CLI), on
//! SQLite and on PostgreSQL: contoso on Exchange Online (the Graph emulator), fabrikam on Exchange Server
//! (the EWS emulator, heard over ORB's own streaming connection), both on one TOPdesk. A booking on each side of each tenant crosses to its own
//! counterpart only; neither tenant's calls reach the other's Exchange, and no job fails.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Duration;
use orb_core::{CorrelationId, EmailAddress, SystemClock};
use orb_emulators::ews::{EwsEmulator, RoomSettings, Scope};
use orb_emulators::topdesk::DoubleBooking;
use orb_ews::model::NewMeeting;
use orb_ews::{Auth, EwsClient, EwsConfig, Target};
use orb_store::{BookingFilter, JobStatus};
use orb_topdesk::wire::{CreateReservationDto, ReservationStatus};
use secrecy::SecretString;
use support::{ROOMS, Site, TD_LOGIN, TD_PASSWORD, databases, tomorrow};

const FAB_ROOM: &str = "board@fabrikam.com";
const ERIK: &str = "erik@fabrikam.com";
const FAB_SENDER: &str = "orb@fabrikam.com";
const SERVICE: &str = "FABRIKAM\\svc-orb";
const SERVICE_PASSWORD: &str = "side-by-side-ews-password";

fn mail(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graph_tenant_and_an_ews_tenant_sync_side_by_side_without_touching_each_other() {
    for db in databases() {
        let mut site = Site::new(&db, "side-by-side").await;

        // Fabrikam's Exchange Server, and its room and person in the shared TOPdesk.
        let em = EwsEmulator::new(Arc::new(SystemClock));
        em.add_user(ERIK, "Erik Jansen");
        em.add_user(FAB_SENDER, "ORB");
        em.add_room(FAB_ROOM, "Board room", RoomSettings::default());
        em.add_room_list("Fabrikam rooms", "rooms@fabrikam.com", &[FAB_ROOM]);
        let scope: BTreeSet<String> = [ERIK, FAB_SENDER, FAB_ROOM].iter().map(|s| (*s).to_owned()).collect();
        em.add_account(SERVICE, SERVICE_PASSWORD, Scope::Mailboxes(scope));
        em.add_account("outlook", "outlook-password", Scope::All);
        let served = orb_emulators::ews::serve(em.clone()).await.unwrap();
        let erik = site.td.emulator.add_person("Erik", "Jansen", Some(ERIK));
        let board = site.td.emulator.add_room("Fabrikam board room", 0, DoubleBooking::Refuse);

        site.set_var("ORB__EWS__ALLOW_HTTP", "true");
        site.ok(&["tenant", "add", "fabrikam"], None);
        let file = site.dir.path().join("fabrikam.toml");
        std::fs::write(
            &file,
            format!(
                "[exchange]\nkind = \"ews\"\n\n[ews]\nurl = \"{}\"\nusername = '{SERVICE}'\nmail_sender = \
                 \"{FAB_SENDER}\"\nnotifications = \"streaming\"\n\n[topdesk]\nurl = \"{}\"\nusername = \
                 \"{TD_LOGIN}\"\nlink_type = 7\n",
                served.ews_url(),
                site.td.base_url
            ),
        )
        .unwrap();
        site.ok(&["tenant", "settings", "--tenant", "fabrikam", "--file", file.to_str().unwrap()], None);
        site.ok(&["secret", "set", "--tenant", "fabrikam", "ews.password"], Some(SERVICE_PASSWORD));
        site.ok(&["secret", "set", "--tenant", "fabrikam", "topdesk.app_password"], Some(TD_PASSWORD));
        site.ok(
            &[
                "room",
                "add",
                "--tenant",
                "fabrikam",
                "--mailbox",
                FAB_ROOM,
                "--topdesk-location",
                board.as_str(),
            ],
            None,
        );
        let mut orb = site.spawn();
        site.eventually("both tenants loaded", 30, || {
            site.log_text().contains("2 of 2 tenant(s) synced").then_some(())
        })
        .await;
        let ticking = em.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                ticking.tick().await;
            }
        });
        site.eventually("contoso's Graph subscription", 30, || site.subscribed(ROOMS[0]).then_some(())).await;
        // Fabrikam hears of changes over ORB's own streaming connection (its Exchange never calls ORB).
        site.eventually("fabrikam's EWS streaming connection", 30, || {
            em.streaming_subscriptions().iter().any(|s| s.mailbox == FAB_ROOM && s.connected).then_some(())
        })
        .await;
        assert!(em.subscriptions().is_empty(), "no push subscription for a streaming tenant");

        // Contoso books in Outlook (Graph); Erik books in Outlook (EWS); the desk books for each in TOPdesk.
        let day = tomorrow() + Duration::hours(8);
        site.book(ROOMS[0], day, "Contoso planning").await;
        let outlook = {
            let auth =
                Auth::Basic { username: "outlook".into(), password: SecretString::from("outlook-password") };
            let config = EwsConfig {
                allow_plain_http: true,
                ..EwsConfig::new(served.ews_url().parse().unwrap(), auth)
            };
            EwsClient::new(config).unwrap()
        };
        let erik_mailbox = mail(ERIK);
        let meeting = NewMeeting {
            subject: "Fabrikam board".into(),
            match_id: "stripped".into(),
            start: day + Duration::hours(2),
            end: day + Duration::hours(3),
            location: Some("Board room".into()),
            room: Some(mail(FAB_ROOM)),
            attendees: Vec::new(),
            time_zone: Some("W. Europe Standard Time".into()),
            recurrence: None,
        };
        // As Outlook writes it: without ORB's extended property.
        let op = orb_emulators::ews::outlook_create_meeting(&meeting);
        let target = Target { mailbox: &erik_mailbox, correlation: CorrelationId::generate(day) };
        outlook.call(target, op).await.unwrap();
        site.reserve(1, day + Duration::hours(4)).await;
        let mut desk =
            CreateReservationDto::new(erik, &board, day + Duration::hours(5), day + Duration::hours(6));
        desk.brief_description = Some("Made in TOPdesk for Fabrikam".into());
        site.topdesk.create_reservation(&desk).await.unwrap();

        // Each crosses to its own tenant's other side.
        site.eventually("Contoso's meeting reserved in Room 1", 30, || {
            site.td
                .emulator
                .reservations()
                .into_iter()
                .find(|r| r.planned_start_date == Some(day) && r.location_ids() == [site.rooms[0].1.clone()])
        })
        .await;
        let fab = site
            .eventually("Fabrikam's meeting reserved in its board room", 30, || {
                site.td.emulator.reservations().into_iter().find(|r| {
                    r.planned_start_date == Some(day + Duration::hours(2))
                        && r.location_ids() == [board.clone()]
                })
            })
            .await;
        assert_eq!(fab.requester.as_ref().and_then(|p| p.id), Some(erik), "Erik reserved it");
        assert_eq!(fab.status, Some(ReservationStatus::Planned));
        site.eventually("the desk's Contoso reservation in Anna's Graph calendar", 30, || {
            site.meeting_at(ROOMS[1], day + Duration::hours(4))
        })
        .await;
        site.eventually("the desk's Fabrikam reservation in Erik's Exchange Server calendar", 30, || {
            em.items(ERIK)
                .into_iter()
                .find(|i| i.start == day + Duration::hours(5) && !i.is_cancelled && !i.deleted)
        })
        .await;

        // Nothing crossed tenants: each Exchange saw only its own mailboxes, each tenant holds two bookings.
        let contoso_mail = ["contoso.com"];
        for r in em.requests() {
            let mailbox = r.mailbox.unwrap_or_default();
            assert!(!contoso_mail.iter().any(|d| mailbox.ends_with(d)), "EWS asked for {mailbox}");
        }
        let graph_paths: Vec<String> = site.graph_em.requests().into_iter().map(|r| r.path).collect();
        assert!(graph_paths.iter().all(|p| !p.contains("fabrikam")), "Graph asked about fabrikam");
        // A booking's record is committed just after its writes land, so the counts are waited for.
        let store = site.open_store().await;
        for tenant in store.list_tenants().await.unwrap() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let bookings = store.list_bookings(tenant.id, &BookingFilter::default()).await.unwrap();
                if bookings.len() == 2 {
                    break;
                }
                assert!(
                    bookings.len() < 2 && std::time::Instant::now() < deadline,
                    "{}: {bookings:?}",
                    tenant.name
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let dead = store.list_jobs(tenant.id, JobStatus::Dead).await.unwrap();
            assert!(dead.is_empty(), "{}: {dead:?}", tenant.name);
        }
        let db_name = if matches!(db, support::Db::Sqlite) { "SQLite" } else { "PostgreSQL" };
        eprintln!(
            "side by side ({db_name}): 2 bookings per tenant crossed both ways, no request crossed tenants"
        );
        ticker.abort();
        let _ = orb.0.kill();
        let _ = orb.0.wait();
        assert!(em.body_requests().is_empty(), "no EWS request asked for a body");
    }
}
