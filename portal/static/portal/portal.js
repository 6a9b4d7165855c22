// Light interactivity for the portal: the mobile navigation, the user menu and confirmations. No library.
(function () {
  "use strict";
  function toggle(button, target, open) {
    var isOpen = open === undefined ? button.getAttribute("aria-expanded") !== "true" : open;
    button.setAttribute("aria-expanded", String(isOpen));
    if (button.getAttribute("data-toggle") === "menu") { target.hidden = !isOpen; }
    else { target.classList.toggle("open", isOpen); }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-toggle]");
    document.querySelectorAll("[data-toggle=menu][aria-expanded=true]").forEach(function (open) {
      if (open !== button && !event.target.closest(".user-menu-panel")) {
        toggle(open, document.getElementById(open.getAttribute("aria-controls")), false);
      }
    });
    if (button) {
      toggle(button, document.getElementById(button.getAttribute("aria-controls")));
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    document.querySelectorAll("[data-toggle=menu][aria-expanded=true]").forEach(function (open) {
      toggle(open, document.getElementById(open.getAttribute("aria-controls")), false);
      open.focus();
    });
  });
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
})();
