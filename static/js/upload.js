// Upload page: drag and drop, many files, one progress bar and one verdict per file.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  // form.dataset would be the <select name="dataset">, not the data-* attributes.
  const endpoint = form.getAttribute("data-endpoint");
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const list = document.getElementById("upload-list");
  const summary = document.getElementById("upload-summary");
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const counts = { ok: 0, rejected: 0 };
  const queue = [];
  let active = 0;
  const PARALLEL = 3;

  function row(file) {
    const li = document.createElement("li");
    li.className = "upload";
    li.dataset.filename = file.name;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const verdict = document.createElement("span");
    verdict.className = "verdict";
    verdict.textContent = "waiting…";
    li.append(name, bar, verdict);
    list.appendChild(li);
    return li;
  }

  function finish(li, ok, text, link) {
    li.classList.add(ok ? "ok" : "rejected");
    const verdict = li.querySelector(".verdict");
    verdict.textContent = text;
    if (link) {
      const a = document.createElement("a");
      a.href = link; a.textContent = " view";
      verdict.appendChild(a);
    }
    counts[ok ? "ok" : "rejected"] += 1;
    summary.textContent = counts.ok + " uploaded, " + counts.rejected + " rejected";
    active -= 1;
    pump();
  }

  function send(file, li) {
    const data = new FormData();
    data.append("file", file);
    const dataset = document.getElementById("dataset").value;
    if (dataset) data.append("dataset", dataset);
    data.append("source", document.getElementById("source").value || "upload");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", endpoint);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    const bar = li.querySelector("progress");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
    xhr.onload = function () {
      bar.value = 100;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if (xhr.status === 201) {
        finish(li, true, "uploaded (" + body.width + "×" + body.height + ")", "/images/" + body.id + "/");
      } else {
        const message = body && body.error ? body.error.message : "Server answered " + xhr.status;
        const link = body && body.error && body.error.details && body.error.details.image_id
          ? "/images/" + body.error.details.image_id + "/" : null;
        finish(li, false, "rejected: " + message, link);
      }
    };
    xhr.onerror = function () { finish(li, false, "rejected: the connection failed", null); };
    li.querySelector(".verdict").textContent = "uploading…";
    xhr.send(data);
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      const item = queue.shift();
      active += 1;
      send(item.file, item.li);
    }
  }

  function add(files) {
    for (const file of files) queue.push({ file: file, li: row(file) });
    pump();
  }

  input.addEventListener("change", function () { add(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (e) { add(e.dataTransfer.files); });
  zone.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") input.click(); });
})();
