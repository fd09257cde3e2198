//! `POST /EWS/Exchange.asmx`: authentication (Basic, bearer, NTLM bound to the connection:
//! [`super::ntlm`]), the throttling knobs, envelope and header
//! checks (`RequestServerVersion`, `ExchangeImpersonation` against the account's management scope),
//! dispatch to [`super::ops`], the answer envelope with `ServerVersionInfo`, SOAP faults, and the
//! request log.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orb_ews::request::asks_for_body;
use orb_ews::xml::{self, Element, MESSAGES, SOAP, TYPES};

use super::EwsEmulator;
use super::ops::{self, Ctx, Fault, fault};
use super::state::{RequestRecord, Scope};

/// `RequestServerVersion` values Exchange 2019 / SE accept (ews.md §1.3).
const VERSIONS: &[&str] = &[
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
];

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

pub(crate) fn envelope(body: Element) -> String {
    let version = Element::new(TYPES, "ServerVersionInfo")
        .attr("MajorVersion", "15")
        .attr("MinorVersion", "2")
        .attr("MajorBuildNumber", "1544")
        .attr("MinorBuildNumber", "4")
        .attr("Version", "V2017_07_11");
    Element::new(SOAP, "Envelope")
        .child(Element::new(SOAP, "Header").child(version))
        .child(Element::new(SOAP, "Body").child(body))
        .to_document()
}

/// A SOAP 1.1 fault as Exchange writes it (ews.md §6.2): `MessageXml` in the types namespace.
pub(crate) fn fault_document(f: &Fault) -> String {
    super::faults::fault_document(f.code, &f.message, f.back_off_ms)
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The affinity cookie's value the emulator issues (one "Mailbox server").
const AFFINITY_VALUE: &str = "EMU-MBX01.contoso.com~1942062522";

/// Whether `X-PreferServerAffinity: true` was sent.
pub(crate) fn prefers_affinity(headers: &HeaderMap) -> bool {
    header_str(headers, "x-preferserveraffinity").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The `X-BackEndOverrideCookie` sent back: in `Cookie`, or as its own header (exchangelib).
pub(crate) fn affinity_cookie(headers: &HeaderMap) -> Option<String> {
    let name = orb_ews::streaming::AFFINITY_COOKIE;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .or_else(|| header_str(headers, name))
}

/// The impersonated address of the header, if any (all four `ConnectingSID` forms; `SID` is not
/// resolvable here and names no mailbox).
fn impersonated(header: Option<&Element>) -> Option<String> {
    let sid = header?.path(&[(TYPES, "ExchangeImpersonation"), (TYPES, "ConnectingSID")])?;
    let form = sid.children.first()?;
    Some(match form.name.as_str() {
        "PrimarySmtpAddress" | "SmtpAddress" | "PrincipalName" => form.text.trim().to_ascii_lowercase(),
        _ => format!("sid:{}", form.text.trim()),
    })
}

/// The whole request: answers and records it.
pub(crate) async fn handle(
    State(em): State<EwsEmulator>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    let conn = extensions.get::<ConnectInfo<super::ConnId>>().map(|c| c.0);
    let mut record = RequestRecord {
        operation: String::new(),
        account: None,
        mailbox: None,
        client_request_id: header_str(&headers, "client-request-id"),
        anchor_mailbox: header_str(&headers, "x-anchormailbox"),
        prefer_server_affinity: prefers_affinity(&headers),
        affinity_cookie: affinity_cookie(&headers),
        asks_for_body: false,
        response_code: String::new(),
        status: 200,
        fault: header_str(&headers, super::faults::FAULT_HEADER),
        fault_after_handling: headers.contains_key(super::faults::FAULT_HEADER),
        auth: None,
        connection: conn.map(|c| c.serial),
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed = xml::parse(&text).ok();
    if let Some(env) = &parsed {
        record.asks_for_body = asks_for_body(env);
        if let Some(op) = env.find(SOAP, "Body").and_then(|b| b.children.first()) {
            record.operation = op.name.clone();
        }
    }
    let account = match super::ntlm::authorize(&em, &headers, conn) {
        super::ntlm::Outcome::Account { account, how } => {
            record.auth = Some(how.to_owned());
            account
        }
        super::ntlm::Outcome::Challenge { offers, how } => {
            record.auth = Some(how.to_owned());
            record.status = 401;
            record.response_code = "Unauthorized".into();
            em.lock().requests.push(record);
            let mut resp = (StatusCode::UNAUTHORIZED, "").into_response();
            for offer in offers {
                if let Ok(v) = header::HeaderValue::from_str(&offer) {
                    resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
            return resp;
        }
    };
    record.account = Some(account.clone());
    let (status, mut out) = answer(&em, &account, parsed.as_ref(), &mut record);
    if record.prefer_server_affinity
        && let Ok(v) = header::HeaderValue::from_str(&format!(
            "{}={AFFINITY_VALUE}; path=/",
            orb_ews::streaming::AFFINITY_COOKIE
        ))
    {
        out.headers_mut().append(header::SET_COOKIE, v);
    }
    record.status = status.as_u16();
    em.lock().requests.push(record);
    // Deliver notifications the request caused, after answering.
    let delivering = em.clone();
    tokio::spawn(async move { super::push::deliver_due(&delivering).await });
    out
}

fn answer(
    em: &EwsEmulator,
    account: &str,
    parsed: Option<&Element>,
    record: &mut RequestRecord,
) -> (StatusCode, Response) {
    let now = em.now();
    let mut inner = em.lock();
    if inner.knobs.unavailable_count > 0 {
        inner.knobs.unavailable_count -= 1;
        record.response_code = "HTTP 503".into();
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, "").into_response();
        if let Some(secs) = inner.knobs.retry_after_secs
            && let Ok(v) = secs.to_string().parse()
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return (StatusCode::SERVICE_UNAVAILABLE, resp);
    }
    let fail = |f: Fault, record: &mut RequestRecord| {
        record.response_code = f.code.to_owned();
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault_document(&f)),
        )
    };
    if inner.knobs.busy_count > 0 {
        inner.knobs.busy_count -= 1;
        let f = Fault {
            code: "ErrorServerBusy",
            message: "The server cannot service this request right now. Try again later.".into(),
            back_off_ms: Some(inner.knobs.back_off_ms),
        };
        return fail(f, record);
    }
    let Some(env) = parsed.filter(|e| e.is(SOAP, "Envelope")) else {
        return fail(fault("ErrorSchemaValidation", "The request is not a SOAP 1.1 envelope."), record);
    };
    let header = env.find(SOAP, "Header");
    let version =
        header.and_then(|h| h.find(TYPES, "RequestServerVersion")).and_then(|v| v.get_attr("Version"));
    match version {
        Some(v) if VERSIONS.contains(&v) => {}
        _ => {
            return fail(
                fault("ErrorInvalidServerVersion", "The specified server version is invalid."),
                record,
            );
        }
    }
    let mailbox = impersonated(header);
    if let Some(mb) = &mailbox {
        record.mailbox = Some(mb.clone());
        let scope = inner.accounts.get(account).map(|a| a.scope.clone()).unwrap_or(Scope::None);
        if !inner.mailboxes.contains_key(mb) {
            return fail(
                fault("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."),
                record,
            );
        }
        let allowed = match &scope {
            Scope::None => {
                return fail(
                    fault(
                        "ErrorImpersonationDenied",
                        "The server to which the application is connected cannot impersonate the requested user \
                         due to insufficient permission.",
                    ),
                    record,
                );
            }
            Scope::All => true,
            Scope::Mailboxes(set) => set.contains(mb),
        };
        if !allowed {
            return fail(
                fault(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                ),
                record,
            );
        }
    }
    let Some(op) = env.find(SOAP, "Body").and_then(|b| b.children.first()) else {
        return fail(fault("ErrorSchemaValidation", "The SOAP Body is empty."), record);
    };
    let ctx = Ctx { account, mailbox: mailbox.as_deref(), now };
    if op.is(MESSAGES, "GetStreamingEvents") {
        return match super::streaming::open(em, &mut inner, &ctx, op) {
            Ok((resp, code)) => {
                record.response_code = code;
                (StatusCode::OK, resp)
            }
            Err(f) => fail(f, record),
        };
    }
    match ops::dispatch(&mut inner, &ctx, op) {
        Ok(resp) => {
            record.response_code = resp
                .descendants()
                .into_iter()
                .find(|e| e.is(MESSAGES, "ResponseCode"))
                .map(|e| e.text.clone())
                .unwrap_or_else(|| "NoError".into());
            (StatusCode::OK, xml_response(StatusCode::OK, envelope(resp)))
        }
        Err(f) => fail(f, record),
    }
}
