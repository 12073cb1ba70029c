// Job page: poll the job's API row until it finishes; draw progress and the result.
(function () {
  "use strict";
  const box = document.getElementById("job");
  if (!box) return;
  const statusEl = document.getElementById("job-status");
  const bar = document.getElementById("job-bar");
  const message = document.getElementById("job-message");
  const error = document.getElementById("job-error");
  const result = document.getElementById("job-result");
  const ACTIVE = ["queued", "running"];

  function swatch(rgb) {
    const c = rgb.map(function (v) { return Math.round(v * 255); });
    return '<span class="swatch" style="background: rgb(' + c.join(",") + ')"></span>';
  }

  function renderResult(data) {
    if (!data) return;
    result.hidden = false;
    if (data.mean && data.std) {
      const fmt = function (v) { return v.toFixed(4); };
      result.innerHTML =
        "<h2>Image statistics</h2><p>" + data.images + " images, " + data.pixels.toLocaleString() + " pixels " + swatch(data.mean) + "</p>" +
        '<table class="table" id="stats-table"><thead><tr><th></th><th>R</th><th>G</th><th>B</th></tr></thead><tbody>' +
        "<tr><th>mean</th><td>" + data.mean.map(fmt).join("</td><td>") + "</td></tr>" +
        "<tr><th>std</th><td>" + data.std.map(fmt).join("</td><td>") + "</td></tr></tbody></table>" +
        (data.skipped && data.skipped.length ? "<p class='warning'>Skipped: " + data.skipped.join("; ") + "</p>" : "");
    } else {
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(data, null, 2);
      result.replaceChildren(pre);
    }
  }

  function render(job) {
    statusEl.textContent = job.status;
    statusEl.className = "status s-" + job.status;
    bar.style.width = Math.round(job.progress * 100) + "%";
    message.textContent = job.message || "";
    if (job.error) { error.hidden = false; error.textContent = job.error; }
    if (job.status === "done") renderResult(job.result);
    const cancel = document.getElementById("cancel-form");
    if (cancel && ACTIVE.indexOf(job.status) < 0) cancel.remove();
  }

  function poll() {
    fetch(box.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        render(job);
        if (ACTIVE.indexOf(job.status) >= 0) setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }

  const initial = JSON.parse(document.getElementById("job-result-data").textContent);
  renderResult(initial);
  poll();
})();
