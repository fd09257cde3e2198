//! CreateItem of mail: a `t:Message` sent from the impersonated mailbox, kept in the emulator's outbox
//! ([`SentMail`], [`super::EwsEmulator::outbox`], `GET /_emulator/outbox`) as the Graph emulator keeps
//! `sendMail`'s.
//!
//! Like Exchange: `MessageDisposition` is required for messages (`ErrorMessageDispositionRequired`);
//! `SendOnly` and `SendAndSaveCopy` send (a `SavedItemFolderId` is ignored with `SendOnly`) and answer
//! `Success` with an empty `Items` (no item id); a message without a valid recipient is
//! `ErrorInvalidRecipients`; `Message` children out of the schema's sequence are `ErrorSchemaValidation`.
//! `SaveOnly` (a draft) is refused: the emulator keeps no drafts. Who may send is the impersonation
//! check every request passes ([`super::soap`]): a sender mailbox outside the account's
//! ApplicationImpersonation scope is `ErrorImpersonateUserDenied` before this runs.

use chrono::{DateTime, Utc};
use orb_core::EmailAddress;
use orb_ews::xml::{Element, TYPES};
use serde::Serialize;

use super::ops::{Ctx, Fault, check_order, fault, m, message, schema};
use super::state::{Inner, Refusal, refuse};

/// A mail sent through EWS, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMail {
    /// The sending (impersonated) mailbox.
    pub from: String,
    /// `ToRecipients` addresses, as sent.
    pub to: Vec<String>,
    /// `CcRecipients` addresses.
    pub cc: Vec<String>,
    /// `BccRecipients` addresses.
    pub bcc: Vec<String>,
    /// `Subject`.
    pub subject: String,
    /// `Body` text.
    pub body: String,
    /// `Body`'s `BodyType` (`Text` or `HTML`).
    pub body_type: String,
    /// `SendAndSaveCopy`: a copy went to Sent Items.
    pub saved_copy: bool,
    /// When (the emulator's clock).
    pub at: DateTime<Utc>,
}

/// `t:Message` children the emulator knows, in the schema's order (`ItemType`, then `MessageType`).
const MESSAGE_ORDER: &[&str] = &[
    "Subject",
    "Sensitivity",
    "Body",
    "Categories",
    "Importance",
    "ExtendedProperty",
    "ToRecipients",
    "CcRecipients",
    "BccRecipients",
    "IsReadReceiptRequested",
    "IsDeliveryReceiptRequested",
    "From",
    "ReplyTo",
];

/// The addresses of a recipient list (`t:Mailbox/t:EmailAddress`); a malformed one is refused.
fn recipients(msg: &Element, name: &str) -> Result<Vec<String>, Refusal> {
    let Some(list) = msg.find(TYPES, name) else { return Ok(Vec::new()) };
    list.find_all(TYPES, "Mailbox")
        .map(|mb| {
            let text = mb.child_text(TYPES, "EmailAddress").unwrap_or_default().trim();
            EmailAddress::parse(text).map(|a| a.as_str().to_owned()).map_err(|_| {
                refuse(
                    "ErrorInvalidRecipients",
                    format!("The recipient `{text}` is not a valid SMTP address."),
                )
            })
        })
        .collect()
}

/// One `t:Message` of a `CreateItem`: checked, sent, answered.
pub(crate) fn create_message(
    inner: &mut Inner,
    ctx: &Ctx<'_>,
    op: &Element,
    msg: &Element,
) -> Result<Element, Fault> {
    let from = ctx.mailbox()?.to_owned();
    check_order(msg, MESSAGE_ORDER)?;
    let saved_copy = match op.get_attr("MessageDisposition") {
        None => {
            return Ok(message(
                "CreateItem",
                Err(refuse(
                    "ErrorMessageDispositionRequired",
                    "MessageDisposition is required for messages.",
                )),
            ));
        }
        Some("SendOnly") => false,
        Some("SendAndSaveCopy") => true,
        Some("SaveOnly") => {
            return Err(fault(
                "ErrorInvalidRequest",
                "The emulator keeps no drafts; send with SendOnly or SendAndSaveCopy.",
            ));
        }
        Some(other) => return Err(schema(format!("MessageDisposition `{other}` is not valid"))),
    };
    let result = (|| {
        let (to, cc, bcc) = (
            recipients(msg, "ToRecipients")?,
            recipients(msg, "CcRecipients")?,
            recipients(msg, "BccRecipients")?,
        );
        if to.is_empty() && cc.is_empty() && bcc.is_empty() {
            return Err(refuse("ErrorInvalidRecipients", "At least one recipient isn't valid."));
        }
        let body = msg.find(TYPES, "Body");
        inner.outbox.push(SentMail {
            from,
            to,
            cc,
            bcc,
            subject: msg.child_text(TYPES, "Subject").unwrap_or_default().to_owned(),
            body: body.map(|b| b.text.clone()).unwrap_or_default(),
            body_type: body.and_then(|b| b.get_attr("BodyType")).unwrap_or("Text").to_owned(),
            saved_copy,
            at: ctx.now,
        });
        // Sent, not saved (or saved in Sent Items): no item id in the answer.
        Ok(vec![m("Items")])
    })();
    Ok(message("CreateItem", result))
}
