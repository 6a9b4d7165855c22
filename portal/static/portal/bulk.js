// Bulk batch page: poll the batch's progress every second and move the bar; reload once it has finished,
// so the result downloads appear. Without JavaScript a <meta refresh> in <noscript> does the same, slower.
(function () {
  "use strict";
  var section = document.getElementById("bulk-progress");
  if (!section || section.getAttribute("data-finished") === "true") { return; }
  var url = section.getAttribute("data-progress-url");
  var bar = section.querySelector("[role=progressbar]");
  var fill = section.querySelector(".progress-fill");
  var percentText = section.querySelector("[data-progress-percent]");
  var doneText = section.querySelector("[data-progress-done]");
  var failedText = section.querySelector("[data-progress-failed]");
  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) { if (!response.ok) { throw new Error(String(response.status)); } return response.json(); })
      .then(function (p) {
        bar.setAttribute("aria-valuenow", String(p.percent));
        fill.style.width = p.percent + "%";
        percentText.textContent = p.percent + " %";
        doneText.textContent = String(p.done);
        failedText.textContent = p.failed ? " · " + p.failed + " failed" : "";
        if (p.finished) { window.location.reload(); } else { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
})();
