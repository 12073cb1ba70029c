// Job page: poll the job's API row while it runs and draw its progress; once it has
// finished, reload so the server draws the summary (escaped by the template, never built
// here from data).
(function () {
  "use strict";
  const box = document.getElementById("job");
  if (!box) return;
  const statusEl = document.getElementById("job-status");
  const bar = document.getElementById("job-bar");
  const message = document.getElementById("job-message");
  const error = document.getElementById("job-error");
  const ACTIVE = ["queued", "running"];

  function render(job) {
    statusEl.textContent = job.status;
    statusEl.className = "status s-" + job.status;
    bar.style.width = Math.round(job.progress * 100) + "%";
    message.textContent = job.message || "";
    if (job.error) { error.hidden = false; error.textContent = job.error; }
    const cancel = document.getElementById("cancel-form");
    if (cancel && ACTIVE.indexOf(job.status) < 0) cancel.remove();
  }

  function poll() {
    fetch(box.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        render(job);
        if (ACTIVE.indexOf(job.status) >= 0) setTimeout(poll, 1000);
        else if (box.dataset.active === "1") window.location.reload();
      })
      .catch(function () { setTimeout(poll, 3000); });
  }

  if (box.dataset.active === "1") poll();
})();
