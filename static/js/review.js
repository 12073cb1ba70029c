// Review page: draw labelled and predicted boxes over the image; the confidence slider
// hides predictions below it without a round trip; per-class counts follow the slider.
// Predictions shown are those of the detector chosen in the page's select.
(function () {
  "use strict";
  const data = document.getElementById("boxes-data");
  if (!data) return;
  const boxes = JSON.parse(data.textContent);
  const svg = document.getElementById("overlay");
  const conf = document.getElementById("conf");
  const confValue = document.getElementById("conf-value");
  const showHuman = document.getElementById("show-human");
  const showModel = document.getElementById("show-model");
  const counts = document.querySelector("#class-counts tbody");
  const chosen = document.getElementById("model-version");
  const NS = "http://www.w3.org/2000/svg";

  function visible(b) {
    if (b.origin === "human") return showHuman.checked;
    if (chosen && chosen.value && String(b.model_version) !== chosen.value) return false;
    return showModel.checked && b.score >= parseFloat(conf.value);
  }

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }

  function draw() {
    confValue.textContent = parseFloat(conf.value).toFixed(2);
    svg.replaceChildren();
    const perClass = {};
    boxes.forEach(function (b) {
      perClass[b.label] = perClass[b.label] || { color: b.color, human: 0, model: 0 };
      if (!visible(b)) return;
      perClass[b.label][b.origin] += 1;
      const [x1, y1, x2, y2] = b.box;
      const g = el("g", { "class": "box " + b.origin, "data-label": b.label, "data-score": b.score === null ? "" : b.score });
      g.appendChild(el("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: b.color,
        "stroke-dasharray": b.origin === "model" ? "" : "6 3", fill: "none", "vector-effect": "non-scaling-stroke" }));
      const text = b.origin === "model" ? b.label + " " + b.score.toFixed(2) : b.label;
      const label = el("text", { x: x1 + 2, y: Math.max(y1 - 3, 10), fill: b.color });
      label.textContent = text;
      g.appendChild(label);
      svg.appendChild(g);
    });
    counts.replaceChildren();
    Object.keys(perClass).sort().forEach(function (name) {
      const row = document.createElement("tr");
      row.dataset.label = name;
      const label = document.createElement("td");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = perClass[name].color;
      label.append(swatch, " ", name);
      const human = document.createElement("td");
      human.className = "n-human";
      human.textContent = perClass[name].human;
      const model = document.createElement("td");
      model.className = "n-model";
      model.textContent = perClass[name].model;
      row.append(label, human, model);
      counts.appendChild(row);
    });
  }

  [conf, showHuman, showModel, chosen].forEach(function (input) {
    if (input) input.addEventListener("input", draw);
  });

  // After "Run detection", wait for the job and reload to show its boxes.
  const job = new URLSearchParams(window.location.search).get("job");
  if (job) {
    const note = document.getElementById("job-note");
    note.hidden = false;
    note.textContent = "Detecting…";
    const poll = function () {
      fetch("/api/v1/jobs/" + job + "/", { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          if (j.status === "done") {
            const keep = new URLSearchParams(window.location.search);
            keep.delete("job");
            window.location.replace(window.location.pathname + (keep.toString() ? "?" + keep : ""));
          }
          else if (j.status === "failed" || j.status === "cancelled") { note.textContent = "Detection " + j.status + ": " + (j.error || ""); }
          else { note.textContent = "Detecting… " + Math.round(j.progress * 100) + "%"; setTimeout(poll, 500); }
        });
    };
    poll();
  }
  draw();
})();
