// Faces pages: drop photos onto the file pickers, preview them before sending, say that
// the page is working while the server waits for the model, and confirm deletions.
// The forms work without this script; it only makes them nicer to use.
(function () {
  "use strict";

  function showChoice(zone, input) {
    const name = zone.querySelector(".file-name");
    const img = zone.querySelector(".local-preview");
    const files = Array.from(input.files || []);
    if (name) name.textContent = files.map(function (f) { return f.name; }).join(", ");
    if (!img) return;
    if (img.src) URL.revokeObjectURL(img.src);
    img.hidden = true;
    if (files.length !== 1) return;
    // Browsers cannot show every accepted format (PGM, TIFF): then only the name is shown.
    img.onload = function () { img.hidden = false; };
    img.onerror = function () { img.hidden = true; };
    img.src = URL.createObjectURL(files[0]);
  }

  document.querySelectorAll(".face-drop").forEach(function (zone) {
    const input = zone.querySelector("input[type=file]");
    if (!input) return;
    input.addEventListener("change", function () { showChoice(zone, input); });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      const dropped = e.dataTransfer && e.dataTransfer.files;
      if (!dropped || !dropped.length) return;
      const keep = new DataTransfer();
      Array.from(dropped).slice(0, input.multiple ? dropped.length : 1).forEach(function (f) { keep.items.add(f); });
      input.files = keep.files;
      showChoice(zone, input);
    });
    zone.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  document.querySelectorAll("form[data-busy]").forEach(function (form) {
    form.addEventListener("submit", function () {
      const button = form.querySelector("button[type=submit]");
      if (!button) return;
      // Disabled after the submit event has been handled, so the form still sends.
      setTimeout(function () { button.disabled = true; button.textContent = form.getAttribute("data-busy"); }, 0);
    });
  });
})();
