//! Fault plans for EWS ([`crate::faults`]): rules keyed by SOAP operation (the body's root element, or
//! `read` / `write`), and the faults as Exchange and IIS send them — `ErrorServerBusy` SOAP faults with
//! `BackOffMilliseconds` (storms with `next`), other SOAP faults, 500 as a SOAP fault
//! `ErrorInternalServerError`, 502/503/504 as IIS's HTML page (with `Retry-After` when asked), plus the
//! shared timeouts, resets and slow bodies, before or after handling.
//!
//! A request the plan picks is logged here (with `fault` and `faultAfterHandling`) when it is not
//! handled; when it is handled first, the handler logs it with the fault marked (the [`FAULT_HEADER`]).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use orb_ews::xml::{self, ERRORS, Element, SOAP, TYPES};

use super::EwsEmulator;
use super::state::RequestRecord;
use crate::faults::{self, BodyStyle, FaultKind, SoapOperation};

/// Marks a request handled under an after-handling fault: the value is the fault's label.
pub(crate) const FAULT_HEADER: &str = "x-orb-emulator-fault";

/// The operations that only read.
const READS: &[&str] =
    &["FindItem", "GetItem", "SyncFolderItems", "GetRoomLists", "GetRooms", "GetStreamingEvents"];

/// The largest request body read to find the operation (EWS requests ORB sends are small).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A SOAP 1.1 fault document as Exchange writes it (ews.md §6.2): `MessageXml` in the types namespace.
pub(crate) fn fault_document(code: &str, message: &str, back_off_ms: Option<u64>) -> String {
    let mut detail = Element::new("", "detail")
        .child(Element::new(ERRORS, "ResponseCode").text(code))
        .child(Element::new(ERRORS, "Message").text(message));
    if let Some(ms) = back_off_ms {
        detail = detail
            .child(Element::new(TYPES, "MessageXml").child(
                Element::new(TYPES, "Value").attr("Name", "BackOffMilliseconds").text(ms.to_string()),
            ));
    }
    let fault = Element::new(SOAP, "Fault")
        .child(Element::new("", "faultcode").attr("xmlns:a", TYPES).text(format!("a:{code}")))
        .child(Element::new("", "faultstring").text(message))
        .child(detail);
    Element::new(SOAP, "Envelope").child(Element::new(SOAP, "Body").child(fault)).to_document()
}

/// The HTML page IIS (HTTP.sys) answers with when the application pool cannot take the request.
fn iis_page(status: u16) -> String {
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n\
         <HTML><HEAD><TITLE>{reason}</TITLE>\r\n\
         <META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n\
         <BODY><h2>{reason}</h2>\r\n<hr><p>HTTP Error {status}. The service is unavailable.</p>\r\n</BODY></HTML>\r\n"
    )
}

/// An injected error answer as EWS sends it (see the module docs).
pub(crate) fn fault_page(fault: &FaultKind, _coin: bool) -> Response {
    let soap = |code: &str, message: &str, back_off: Option<u64>| {
        faults::error_page(
            500,
            Some("text/xml; charset=utf-8"),
            fault_document(code, message, back_off),
            None,
        )
    };
    match fault {
        FaultKind::ServerBusy { back_off_ms } => soap(
            "ErrorServerBusy",
            "The server cannot service this request right now. Try again later.",
            Some(*back_off_ms),
        ),
        FaultKind::SoapFault { code } => {
            soap(code, "An internal server error occurred. Try again later.", None)
        }
        FaultKind::Status { status, body, retry_after_secs } => {
            let html = match body {
                BodyStyle::Auto => *status != 500,
                BodyStyle::Html => true,
                BodyStyle::Json | BodyStyle::Empty => false,
            };
            let (content_type, text) = if *body == BodyStyle::Empty {
                (None, String::new())
            } else if html {
                (Some("text/html"), iis_page(*status))
            } else {
                let doc = fault_document(
                    "ErrorInternalServerError",
                    "An internal server error occurred. The operation failed.",
                    None,
                );
                (Some("text/xml; charset=utf-8"), doc)
            };
            faults::error_page(*status, content_type, text, *retry_after_secs)
        }
        _ => faults::error_page(500, None, String::new(), None),
    }
}

/// The operation (body root element's local name) of a request body, if it is readable.
fn operation_of(body: &[u8]) -> Option<String> {
    let env = xml::parse(std::str::from_utf8(body).ok()?).ok()?;
    env.find(SOAP, "Body")?.children.first().map(|op| op.name.clone())
}

/// Applies the fault plan to a request to `/EWS/Exchange.asmx`.
pub(crate) async fn inject(State(em): State<EwsEmulator>, req: Request, next: Next) -> Response {
    if !em.lock().fault_plan.is_active() {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return faults::error_page(413, None, String::new(), None);
    };
    let operation = operation_of(&bytes).unwrap_or_default();
    let soap = SoapOperation { name: &operation, read: READS.contains(&operation.as_str()) };
    let path = parts.uri.path().to_owned();
    let injection = em.lock().fault_plan.decide_soap(parts.method.as_str(), &path, Some(soap));
    let Some(injection) = injection else {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    };
    let label = injection.fault.label();
    if injection.after_handling || matches!(injection.fault, FaultKind::SlowBody { .. }) {
        parts.headers.insert(FAULT_HEADER, HeaderValue::from_static(label));
    } else {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        em.lock().requests.push(RequestRecord {
            operation: operation.clone(),
            account: None,
            mailbox: None,
            client_request_id: header("client-request-id"),
            anchor_mailbox: header("x-anchormailbox"),
            prefer_server_affinity: super::soap::prefers_affinity(&parts.headers),
            affinity_cookie: super::soap::affinity_cookie(&parts.headers),
            asks_for_body: false,
            response_code: format!("fault:{label}"),
            status: injection.fault.status_code().unwrap_or(0),
            fault: Some(label.to_owned()),
            fault_after_handling: false,
            auth: None,
            connection: parts
                .extensions
                .get::<axum::extract::ConnectInfo<super::ConnId>>()
                .map(|c| c.0.serial),
        });
    }
    if operation == "GetStreamingEvents" && injection.after_handling && injection.fault == FaultKind::Reset {
        // A streaming answer never ends on its own soon: cut it after its first envelope instead of
        // buffering it whole (a reset mid-stream).
        return cut_after_first_frame(next.run(Request::from_parts(parts, Body::from(bytes))).await);
    }
    faults::apply(&injection, next.run(Request::from_parts(parts, Body::from(bytes))), fault_page).await
}

/// Passes the answer's first body frame through, then aborts the connection.
fn cut_after_first_frame(resp: Response) -> Response {
    use futures::StreamExt as _;
    let (parts, body) = resp.into_parts();
    let first = body.into_data_stream().take(1);
    let reset = futures::stream::once(async {
        // Let the server flush the first frame before the connection is aborted.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected: reset",
        ))
    });
    let stream = first.map(|r| r.map_err(std::io::Error::other)).chain(reset);
    Response::from_parts(parts, Body::from_stream(stream))
}
