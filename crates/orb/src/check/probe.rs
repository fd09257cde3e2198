//! **room.probe**: bookings that show how a room's calendar processing answers ORB (see the parent
//! module's docs), through the tenant's Exchange — Graph or EWS alike.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Utc};
use orb_core::{Clock, CorrelationId, RoomMailbox, SubjectPolicy};
use orb_engine::exchange::ExchangeError;
use orb_engine::runtime::TenantRuntime;
use orb_graph::GraphError;
use orb_graph::model::{Attendee, DateTimeTimeZone, Event, FreeBusyStatus, Location, ResponseType};

use super::{Report, Status};

/// How a room answered one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accepted,
    Declined,
    None,
}

/// The probe bookings of one room.
pub(super) struct Probe<'a> {
    pub(super) runtime: &'a TenantRuntime,
    pub(super) clock: &'a dyn Clock,
    pub(super) room: &'a RoomMailbox,
    pub(super) wait: StdDuration,
    /// What to do when no probe can be booked (it names the protocol's settings).
    pub(super) fix: &'a str,
}

/// One probe meeting, created in the sender's calendar.
#[derive(Clone)]
struct Made {
    id: String,
    ical_uid: Option<String>,
    subject: String,
    start: DateTime<Utc>,
}

impl Probe<'_> {
    /// A correlation id for one call.
    fn corr(&self) -> CorrelationId {
        CorrelationId::generate(self.clock.now())
    }

    pub(super) async fn run(&self, now: DateTime<Utc>, report: &mut Report) {
        let day = now.duration_trunc(Duration::days(1)).unwrap_or(now);
        // 02:10 UTC: an hour nobody books.
        let near = day + Duration::days(14) + Duration::minutes(130);
        let far = day + self.runtime.policy.horizon - Duration::days(1) + Duration::minutes(130);
        let mut made = Vec::new();
        self.probe(near, far, &mut made, report).await;
        self.cleanup(made, report).await;
    }

    async fn probe(
        &self,
        near: DateTime<Utc>,
        far: DateTime<Utc>,
        made: &mut Vec<Made>,
        report: &mut Report,
    ) {
        let room = self.room;
        let first = match self.create(near, made).await {
            Ok(m) => m,
            Err(e) => {
                report.add(
                    "room.probe",
                    Status::Error,
                    format!("no probe meeting can be booked in {room}: {}", protocol_error(&e)),
                    "ORB books rooms from the organizer's (or the sender's) calendar",
                    self.fix,
                );
                return;
            }
        };
        match self.answer(&first).await {
            Answer::None => {
                report.add(
                    "room.probe",
                    Status::Error,
                    format!("{room} did not answer a meeting request within {} s", self.wait.as_secs()),
                    "a room that does not accept by itself leaves bookings unconfirmed",
                    "set the room to accept by itself: Set-CalendarProcessing -AutomateProcessing AutoAccept",
                );
                return;
            }
            Answer::Declined => {
                report.add(
                    "room.probe",
                    Status::Error,
                    format!("{room} declined a probe meeting in a free slot two weeks ahead"),
                    "the room refuses bookings ORB makes",
                    "check the room's booking policy (BookInPolicy, AllBookInPolicy, booking window)",
                );
                return;
            }
            Answer::Accepted => {
                report.ok("room.probe", format!("{room} accepts meeting requests by itself"), "auto-accept");
            }
        }
        self.subjects(&first, report).await;
        // A second meeting over the first one.
        match self.create(near, made).await {
            Ok(second) => match self.answer(&second).await {
                Answer::Accepted => report.add(
                    "room.probe",
                    Status::Error,
                    format!("{room} accepted a meeting overlapping another one"),
                    "a double-booked room is booked twice in Outlook while TOPdesk holds one reservation",
                    "Set-CalendarProcessing -AllowConflicts $false",
                ),
                _ => report.ok("room.probe", format!("{room} refuses conflicting meetings"), "no doubles"),
            },
            Err(e) => report.add(
                "room.probe",
                Status::Warning,
                format!("the overlapping probe could not be booked in {room}: {}", protocol_error(&e)),
                "whether the room allows conflicts is unknown",
                "run the check again",
            ),
        }
        // One at the end of the horizon.
        let horizon_days = self.runtime.policy.horizon.num_days();
        if far > near {
            match self.create(far, made).await {
                Ok(last) => match self.answer(&last).await {
                    Answer::Accepted => report.ok(
                        "room.probe",
                        format!("{room} accepts meetings {horizon_days} days ahead (the sync horizon)"),
                        "booking window",
                    ),
                    _ => report.add(
                        "room.probe",
                        Status::Warning,
                        format!("{room} declined a meeting near the end of the {horizon_days}-day sync horizon"),
                        "the room's booking window is shorter than the horizon: TOPdesk reservations that far \
                         ahead are declined in Outlook",
                        &format!(
                            "Set-CalendarProcessing -BookingWindowInDays {horizon_days} (or more), or lower \
                             sync.horizon_days"
                        ),
                    ),
                },
                Err(e) => report.add(
                    "room.probe",
                    Status::Warning,
                    format!("the horizon probe could not be booked in {room}: {}", protocol_error(&e)),
                    "whether the booking window covers the horizon is unknown",
                    "run the check again",
                ),
            }
        }
    }

    /// The room's copy of an accepted probe: is the subject kept?
    async fn subjects(&self, probe: &Made, report: &mut Report) {
        let room = self.room;
        let keeps = matches!(self.runtime.policy.subject, SubjectPolicy::Keep);
        let Some(uid) = &probe.ical_uid else { return };
        let around = (probe.start, probe.start + Duration::minutes(15));
        let copy = self.runtime.exchange.find_by_ical_uid(room.address(), uid, &[around], self.corr()).await;
        let copy = match copy {
            Ok(copy) => copy,
            Err(e) => {
                report.add(
                    "room.probe",
                    Status::Warning,
                    format!("the room's copy of the probe cannot be read: {}", protocol_error(&e)),
                    "whether the room keeps subjects is unknown",
                    "run the check again",
                );
                return;
            }
        };
        let Some(copy) = copy else { return };
        let subject = copy.subject.unwrap_or_default();
        if subject == probe.subject {
            report.ok("room.probe", format!("{room} keeps meeting subjects"), "subjects");
        } else if keeps {
            report.add(
                "room.probe",
                Status::Warning,
                format!(
                    "{room} rewrites meeting subjects on its copy (DeleteSubject / AddOrganizerToSubject)"
                ),
                "the subject policy is keep, but sweeps and notifications of the room show the organizer's \
                 name instead of the subject",
                "Set-CalendarProcessing -DeleteSubject $false -AddOrganizerToSubject $false, or choose \
                 another sync.subject policy",
            );
        } else {
            report.ok(
                "room.probe",
                format!("{room} rewrites subjects, which the subject policy does not rely on"),
                "subjects",
            );
        }
    }

    async fn create(&self, start: DateTime<Utc>, made: &mut Vec<Made>) -> Result<Made, ExchangeError> {
        let tag = uuid_tag(self.corr());
        let subject = format!("ORB check probe {tag}");
        let event = Event {
            subject: Some(subject.clone()),
            start: Some(DateTimeTimeZone::from_utc(start)),
            end: Some(DateTimeTimeZone::from_utc(start + Duration::minutes(15))),
            location: Some(Location::room(self.room.as_str(), self.room.as_str())),
            attendees: Some(vec![Attendee::resource(self.room.as_str(), None)]),
            show_as: Some(FreeBusyStatus::Busy),
            ..Event::default()
        };
        let sender = &self.runtime.mail_sender;
        let match_id = format!("orb-check-{tag}");
        let written = self.runtime.exchange.create_event(sender, &event, &match_id, self.corr()).await?;
        let id = written.id.clone().ok_or_else(|| {
            ExchangeError::from(GraphError::Permanent {
                status: 201,
                code: "noId".to_owned(),
                message: "the created probe has no id".to_owned(),
            })
        })?;
        let probe = Made { id, ical_uid: written.ical_uid, subject, start };
        made.push(probe.clone());
        Ok(probe)
    }

    /// The room's answer on the sender's copy, waiting up to `wait` for it.
    async fn answer(&self, probe: &Made) -> Answer {
        let deadline = std::time::Instant::now() + self.wait;
        loop {
            let read = self.runtime.exchange.get_event(&self.runtime.mail_sender, &probe.id, self.corr());
            if let Ok(event) = read.await {
                let response = event
                    .attendees
                    .iter()
                    .flatten()
                    .find(|a| a.address().is_some_and(|a| a.eq_ignore_ascii_case(self.room.as_str())))
                    .and_then(Attendee::response);
                match response {
                    Some(ResponseType::Accepted) => return Answer::Accepted,
                    Some(ResponseType::Declined) => return Answer::Declined,
                    _ => {}
                }
            }
            if std::time::Instant::now() >= deadline {
                return Answer::None;
            }
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
    }

    async fn cleanup(&self, made: Vec<Made>, report: &mut Report) {
        for probe in made {
            let gone =
                self.runtime.exchange.delete_event(&self.runtime.mail_sender, &probe.id, None, self.corr());
            match gone.await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => report.add(
                    "room.probe",
                    Status::Warning,
                    format!(
                        "probe meeting \"{}\" could not be deleted: {}",
                        probe.subject,
                        protocol_error(&e)
                    ),
                    "it stays in the room's calendar",
                    &format!("delete it from the calendar of {}", self.runtime.mail_sender),
                ),
            }
        }
    }
}

/// A failed Exchange call's own error, without the protocol's prefix (the findings read as before the
/// Exchange seam).
fn protocol_error(e: &ExchangeError) -> String {
    match e {
        ExchangeError::Graph(e) => e.to_string(),
        ExchangeError::Ews(e) => e.to_string(),
    }
}

/// A fresh tag for one probe (its subject and match id): the random end of a new UUIDv7.
fn uuid_tag(corr: CorrelationId) -> String {
    let text: Vec<char> = corr.to_string().chars().filter(char::is_ascii_alphanumeric).collect();
    text[text.len().saturating_sub(12)..].iter().collect()
}
