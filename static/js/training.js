// Training run page: poll the run's API while it runs; draw its trials and learning curves
// with DOM nodes (never markup from data); reload once it finishes to show the report.
(function () {
  "use strict";
  const box = document.getElementById("run");
  if (!box) return;
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2557d6", "#e6194b", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
  const W = 640, H = 260, L = 44, R = 10, T = 10, B = 30;

  function svgEl(name, attrs, parent) {
    const n = document.createElementNS(NS, name);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(n);
    return n;
  }

  function metricOf(epoch) {
    const keys = ["map50", "eer"];
    for (const k of keys) if (typeof epoch[k] === "number") return epoch[k];
    return null;
  }

  function drawCurves(trials) {
    const svg = document.getElementById("curves");
    svg.replaceChildren();
    const epochs = Math.max(1, ...trials.map(function (t) { return t.curves.length; }));
    const x = function (e) { return L + (W - L - R) * (epochs === 1 ? 0.5 : (e - 1) / (epochs - 1)); };
    const y = function (v) { return T + (H - T - B) * (1 - v); };
    svgEl("path", { d: "M" + L + " " + T + "V" + (H - B) + "H" + (W - R), "class": "axes" }, svg);
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      const t = svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "class": "tick" }, svg);
      t.textContent = v.toFixed(2);
    });
    const label = svgEl("text", { x: (W + L) / 2, y: H - 6, "text-anchor": "middle", "class": "axis-label" }, svg);
    label.textContent = "epoch (1–" + epochs + ")";
    trials.forEach(function (t, i) {
      // By position: an ensemble verifier's members train one after another.
      const pts = t.curves.map(function (e, j) { const m = metricOf(e); return m === null ? null : x(j + 1) + "," + y(m); }).filter(Boolean);
      if (!pts.length) return;
      svgEl("polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2, "data-trial": t.number }, svg);
    });
  }

  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

  function drawTrials(trials) {
    const body = document.querySelector("#trials tbody");
    body.replaceChildren.apply(body, trials.map(function (t) {
      const tr = document.createElement("tr");
      tr.dataset.trial = t.number;
      const settings = Object.keys(t.params).map(function (k) { const v = t.params[k]; return k + "=" + (typeof v === "number" ? Number(v.toPrecision(3)) : v); }).join(", ") || "defaults";
      tr.append(cell(t.number), cell(t.round), cell(settings), cell(t.status + (t.status === "running" ? " " + Math.round(t.progress * 100) + "%" : "")),
        cell(t.objective === null ? "—" : t.objective.toFixed(3)),
        cell(t.satisficing.latency_ms ? t.satisficing.latency_ms + " ms" : "—"),
        cell(t.satisficing.size_mb ? t.satisficing.size_mb + " MB" : "—"), cell(t.message || ""));
      return tr;
    }));
  }

  function render(run) {
    const status = document.getElementById("run-status");
    status.textContent = run.status;
    status.className = "status s-" + run.status;
    document.getElementById("run-message").textContent = run.message || "";
    document.getElementById("run-bar").style.width = Math.round(run.progress * 100) + "%";
    drawTrials(run.trials);
    drawCurves(run.trials);
  }

  function poll() {
    fetch(box.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (run) {
        render(run);
        const finished = ["done", "failed", "cancelled", "skipped"].indexOf(run.status) >= 0;
        if (!finished) setTimeout(poll, 2000);
        else if (box.dataset.finished === "0") window.location.reload();
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  render(JSON.parse(document.getElementById("run-data").textContent));
  if (box.dataset.finished === "0") poll();
})();
