// The send result page reloads itself while rewards are still being delivered ([data-poll] in ms).
(function () {
  "use strict";
  var element = document.querySelector("[data-poll]");
  if (!element) { return; }
  window.setTimeout(function () { window.location.reload(); }, parseInt(element.getAttribute("data-poll"), 10) || 3000);
})();
