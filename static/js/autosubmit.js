// A <select data-autosubmit> submits its form when changed (no inline handlers: the
// Content-Security-Policy allows scripts from this site's files only).
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
