//! Sending the plain-text mails ORB writes to people, from a sender mailbox it impersonates.

use super::{EwsClient, Target};
use crate::error::EwsError;
use crate::model::OutgoingMail;
use crate::request;
use crate::response;

impl EwsClient {
    /// Sends `mail` from `target`'s mailbox (impersonated, like every call), keeping no copy:
    /// `CreateItem MessageDisposition="SendOnly"` of a `t:Message` ([`request::send_mail`]); Exchange
    /// answers `Success` with an empty `Items`. A mail that [`OutgoingMail::validate`] refuses is
    /// [`EwsError::Invalid`] and nothing is sent.
    ///
    /// The sender mailbox must be inside the management scope of the service account's
    /// ApplicationImpersonation role assignment. A scope of room mailboxes alone does not cover it: a
    /// refusal is [`EwsError::ImpersonationDenied`] saying so.
    pub async fn send_mail(&self, target: Target<'_>, mail: &OutgoingMail) -> Result<(), EwsError> {
        mail.validate().map_err(|reason| EwsError::Invalid { reason })?;
        let sent = self.call(target, request::send_mail(mail)).await;
        match sent.and_then(|answer| response::no_payload(&answer, Some(target.mailbox.as_str()))) {
            Err(EwsError::ImpersonationDenied { code, mailbox, .. })
                if code == "ErrorImpersonateUserDenied" =>
            {
                let hint = format!(
                    "ORB sends mail as the configured sender mailbox, which must be inside the management scope \
                     of the service account's ApplicationImpersonation role assignment (a scope of room \
                     mailboxes alone does not cover it); add {mailbox} to the scope (New-ManagementScope … \
                     -RecipientRestrictionFilter, New-ManagementRoleAssignment -Role ApplicationImpersonation \
                     -CustomRecipientWriteScope) or configure a sender mailbox that is in it"
                );
                Err(EwsError::ImpersonationDenied { code, mailbox, hint })
            }
            other => other,
        }
    }
}
