//! [`Exchange`] over Microsoft Graph: each call is the Graph client's own; versions travel as `If-Match`
//! ETags made from the change key ([`orb_graph::etag_for_change_key`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orb_core::{CorrelationId, EmailAddress};
use orb_graph::GraphClient;
use orb_graph::model::{Event, Message};

use super::{DirectoryRoom, Exchange, ExchangeError, ExchangeKind};

/// A tenant's Exchange Online, through its Graph client.
#[derive(Debug, Clone)]
pub struct GraphExchange {
    client: Arc<GraphClient>,
}

impl GraphExchange {
    /// Over `client`.
    pub fn new(client: Arc<GraphClient>) -> Self {
        Self { client }
    }

    /// The Graph client (subscriptions and notification checks are Graph's own, outside the seam).
    pub fn client(&self) -> &Arc<GraphClient> {
        &self.client
    }
}

fn etag(change_key: Option<&str>) -> Option<String> {
    change_key.map(orb_graph::etag_for_change_key)
}

#[async_trait]
impl Exchange for GraphExchange {
    fn kind(&self) -> ExchangeKind {
        ExchangeKind::Graph
    }

    async fn get_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError> {
        Ok(self.client.get_event(mailbox, id, corr).await?)
    }

    async fn find_by_match_id(
        &self,
        mailbox: &EmailAddress,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Option<Event>, ExchangeError> {
        Ok(self.client.find_by_match_id(mailbox, match_id, corr).await?)
    }

    async fn find_by_ical_uid(
        &self,
        mailbox: &EmailAddress,
        ical_uid: &str,
        _around: &[(DateTime<Utc>, DateTime<Utc>)],
        corr: CorrelationId,
    ) -> Result<Option<Event>, ExchangeError> {
        // `$filter` on iCalUId: only that meeting is read, wherever it lies in time.
        Ok(self.client.find_by_ical_uid(mailbox, ical_uid, corr).await?)
    }

    async fn instances(
        &self,
        mailbox: &EmailAddress,
        series_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, ExchangeError> {
        Ok(self.client.instances(mailbox, series_id, from, to, corr).await?)
    }

    async fn calendar_view(
        &self,
        mailbox: &EmailAddress,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, ExchangeError> {
        Ok(self.client.calendar_view(mailbox, from, to, corr).await?)
    }

    async fn create_event(
        &self,
        mailbox: &EmailAddress,
        event: &Event,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError> {
        Ok(self.client.create_event(mailbox, event, match_id, corr).await?)
    }

    async fn update_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        changes: &Event,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError> {
        Ok(self.client.update_event(mailbox, id, changes, etag(change_key).as_deref(), corr).await?)
    }

    async fn cancel_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        comment: Option<&str>,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError> {
        Ok(self.client.cancel_event(mailbox, id, comment, etag(change_key).as_deref(), corr).await?)
    }

    async fn delete_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError> {
        Ok(self.client.delete_event(mailbox, id, etag(change_key).as_deref(), corr).await?)
    }

    async fn list_rooms(&self, corr: CorrelationId) -> Result<Vec<DirectoryRoom>, ExchangeError> {
        let places = self.client.list_rooms(corr).await?;
        Ok(places
            .into_iter()
            .filter_map(|p| Some(DirectoryRoom { email: p.email_address?, name: p.display_name }))
            .collect())
    }

    async fn send_mail(
        &self,
        from: &EmailAddress,
        message: &Message,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError> {
        Ok(self.client.send_mail(from, message, false, corr).await?)
    }
}
