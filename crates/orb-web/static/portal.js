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
