// Bulk batch page: poll the batch's progress every second, move the bar and the delivery line; reload once its
// rows are all handled (so the result downloads appear) and again once nothing is left on its way. Without JavaScript a <meta refresh> in <noscript> does the same, slower.
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
  var deliveryText = section.querySelector("[data-delivery]");
  var etaText = section.querySelector("[data-delivery-eta]");
  var wasFinished = false;
  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) { if (!response.ok) { throw new Error(String(response.status)); } return response.json(); })
      .then(function (p) {
        bar.setAttribute("aria-valuenow", String(p.percent));
        fill.style.width = p.percent + "%";
        percentText.textContent = p.percent + " %";
        doneText.textContent = String(p.done);
        failedText.textContent = p.failed ? " · " + p.failed + " failed" : "";
        var d = p.delivery;
        if (d && deliveryText) {
          deliveryText.textContent = d.delivered + " delivered, " + d.failed + " failed, " + d.pending + " pending of " + d.total;
          etaText.textContent = d.pending && d.eta_seconds !== null ? "· about " + d.eta_seconds + " s left" : "";
        }
        var reload = (p.finished && !wasFinished && !document.querySelector("[data-testid=results-csv]")) ||
          (p.finished && !p.delivering);
        wasFinished = p.finished;
        if (reload) { window.location.reload(); } else { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
})();
