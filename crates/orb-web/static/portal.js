// ORB portal: the little behaviour the pages need, wired here because the Content-Security-Policy
// allows no inline script or handler attributes.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

// An htmx action the server refused or that failed (htmx 2 swaps nothing on 4xx/5xx, and says nothing):
// the server's message, as text, in an alert next to the form that sent it.
function failureText(detail) {
  const xhr = detail.xhr;
  if (!xhr || !xhr.status) {
    return "The portal could not be reached; check the connection and try again.";
  }
  const type = xhr.getResponseHeader("content-type") || "";
  const body = xhr.responseText || "";
  let text = "";
  if (type.includes("json")) {
    try { text = String(JSON.parse(body).error || ""); } catch (_) { text = ""; }
  } else if (type.includes("html")) {
    // Parsed, never inserted: only its text is used (no script runs, nothing loads).
    const page = new DOMParser().parseFromString(body, "text/html");
    const message = page.querySelector(".error") || page.body;
    text = message ? message.textContent : "";
  } else {
    text = body;
  }
  text = text.replace(/\s+/g, " ").trim();
  return "Not done (" + xhr.status + "): " + (text || xhr.statusText || "the request failed");
}

function showFailure(event) {
  const source = event.detail.elt;
  if (!source || !source.parentNode) { return; }
  let alert = source.nextElementSibling;
  if (!alert || !alert.classList.contains("htmx-failure")) {
    alert = document.createElement("p");
    alert.className = "error htmx-failure";
    alert.setAttribute("role", "alert");
    source.parentNode.insertBefore(alert, source.nextSibling);
  }
  alert.textContent = failureText(event.detail);
}

document.addEventListener("htmx:responseError", showFailure);
document.addEventListener("htmx:sendError", showFailure);
document.addEventListener("htmx:beforeRequest", (event) => {
  const source = event.detail.elt;
  const alert = source && source.nextElementSibling;
  if (alert && alert.classList.contains("htmx-failure")) { alert.remove(); }
});
