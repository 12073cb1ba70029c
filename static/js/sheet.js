// Error sheet: the server renders the rows, ticks and totals; this makes the table a
// keyboard grid (arrows move, Space ticks, Enter or typing edits a comment, Escape leaves
// it) and saves every change at once through the sheet API. Ticks are rows on the server,
// so people tagging together never overwrite each other; a comment save names the
// comment_version it edited and a stale one is refused (409), shown here with the other
// person's text. Data reaches the page only as text (textContent), never as markup.
(function () {
  "use strict";
  const table = document.getElementById("sheet");
  if (!table) return;
  const $ = function (id) { return document.getElementById(id); };
  const canEdit = table.dataset.canEdit === "1";
  const caseUrl = table.dataset.caseUrl;
  const totalsUrl = table.dataset.totalsUrl;
  const rows = Array.from(table.tBodies[0].rows).filter(function (tr) { return tr.dataset.case; });
  const active = { r: 0, c: 0 };
  let editing = null;  // {cell, input, before}
  let queue = Promise.resolve();  // saves run one after another, in the order made

  // ------------------------------------------------------------------ saving
  function cookie(name) {
    const found = document.cookie.split("; ").find(function (c) { return c.indexOf(name + "=") === 0; });
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function api(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": cookie("csrftoken") },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) { return { status: r.status, ok: r.ok, json: json }; });
    });
  }

  function status(text, kind) {
    const node = $("sheet-status");
    node.textContent = text;
    node.className = kind || "hint";
  }

  function errorText(res) {
    const error = res.json && res.json.error;
    return error && error.message ? error.message : "The server answered " + res.status + ".";
  }

  // data-pending on the table counts saves not yet answered (0: everything is saved and
  // the totals are current), for people leaving the page and for the browser tests.
  let pending = 0;
  function setPending(delta) {
    pending += delta;
    table.dataset.pending = String(pending);
  }
  setPending(0);

  function enqueue(work) {
    status("Saving…");
    setPending(1);
    queue = queue.then(work)
      .catch(function () { status("Not saved: the server could not be reached.", "error"); })
      .then(function () { setPending(-1); });
    return queue;
  }

  window.addEventListener("beforeunload", function (ev) {
    if (pending > 0) { ev.preventDefault(); ev.returnValue = ""; }
  });

  function applyCase(tr, data) {
    // The server's view of the case: ticks made by others meanwhile show up too.
    const tags = new Set(data.tags);
    tr.querySelectorAll("td.tick").forEach(function (td) {
      td.querySelector("input").checked = tags.has(Number(td.dataset.tag));
    });
    tr.dataset.commentVersion = String(data.comment_version);
    if (!editing || editing.cell.parentElement !== tr) {
      tr.querySelector(".comment-text").textContent = data.comment;
    }
    markMislabeled(tr);
  }

  function markMislabeled(tr) {
    const head = table.tHead.rows[0];
    let ticked = false;
    tr.querySelectorAll("td.tick").forEach(function (td) {
      const th = head.querySelector('th[data-tag="' + td.dataset.tag + '"]');
      if (th && th.textContent.trim() === "incorrectly labeled" && td.querySelector("input").checked) ticked = true;
    });
    tr.classList.toggle("mislabeled", ticked);
  }

  function saveTick(td) {
    const tr = td.parentElement;
    const box = td.querySelector("input");
    const on = box.checked;
    const body = on ? { add_tags: [Number(td.dataset.tag)] } : { remove_tags: [Number(td.dataset.tag)] };
    markMislabeled(tr);
    enqueue(function () {
      return api("PATCH", caseUrl + tr.dataset.case + "/", body).then(function (res) {
        if (!res.ok) {
          box.checked = !on;
          markMislabeled(tr);
          status("Not saved: " + errorText(res), "error");
          return;
        }
        applyCase(tr, res.json);
        status("Saved · case " + tr.dataset.case);
        return refreshTotals();
      });
    });
  }

  function showConflict(tr, res, mine) {
    const details = (res.json.error && res.json.error.details) || {};
    const node = $("sheet-conflict");
    node.textContent = errorText(res) + " Your text was: “" + mine + "”.";
    node.hidden = false;
    if (typeof details.comment === "string") {
      tr.querySelector(".comment-text").textContent = details.comment;
      tr.dataset.commentVersion = String(details.comment_version);
    }
    status("Comment not saved: someone else changed it.", "error");
  }

  function saveComment(tr, text) {
    enqueue(function () {
      const body = { comment: text, comment_version: Number(tr.dataset.commentVersion) };
      return api("PATCH", caseUrl + tr.dataset.case + "/", body).then(function (res) {
        if (res.status === 409) { showConflict(tr, res, text); return; }
        if (!res.ok) { status("Comment not saved: " + errorText(res), "error"); return; }
        $("sheet-conflict").hidden = true;
        applyCase(tr, res.json);
        status("Saved · case " + tr.dataset.case);
      });
    });
  }

  // ------------------------------------------------------------------ totals
  function percent(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }

  function refreshTotals() {
    return api("GET", totalsUrl).then(function (res) {
      if (!res.ok) return;
      const t = res.json;
      $("totals-errors").textContent = String(t.errors);
      $("totals-untagged").textContent = String(t.untagged);
      t.tags.forEach(function (tag) {
        const cell = table.tFoot.querySelector('td.total[data-tag="' + tag.tag_id + '"]');
        if (cell) {
          cell.querySelector(".count").textContent = String(tag.count);
          cell.querySelector(".share").textContent = percent(tag.share);
          cell.querySelector(".ceiling").textContent = "≤ " + percent(tag.ceiling);
        }
        const line = document.querySelector('#ceilings li[data-tag="' + tag.tag_id + '"]');
        if (line) {
          line.querySelector(".sentence").textContent = tag.sentence;
          line.querySelector(".count").textContent = String(tag.count);
          line.querySelector(".errors").textContent = String(t.errors);
          line.querySelector(".share").textContent = percent(tag.share);
        }
      });
    });
  }

  // ------------------------------------------------------------------ the grid
  function cellsOf(tr) { return Array.from(tr.querySelectorAll("td.cell")); }

  function cellAt(r, c) {
    const tr = rows[r];
    return tr ? cellsOf(tr)[c] : undefined;
  }

  function activate(r, c, focus) {
    if (!rows.length) return;
    r = Math.min(Math.max(r, 0), rows.length - 1);
    c = Math.min(Math.max(c, 0), cellsOf(rows[r]).length - 1);
    const old = cellAt(active.r, active.c);
    if (old) { old.classList.remove("active"); old.tabIndex = -1; }
    active.r = r; active.c = c;
    const cell = cellAt(r, c);
    cell.classList.add("active");
    cell.tabIndex = 0;
    if (focus !== false) cell.focus({ preventScroll: false });
  }

  function toggle(td) {
    if (!canEdit || !td.classList.contains("tick")) return;
    const box = td.querySelector("input");
    box.checked = !box.checked;
    saveTick(td);
  }

  function startEdit(td, initial) {
    if (!canEdit || !td.classList.contains("comment") || editing) return;
    const text = td.querySelector(".comment-text");
    const input = document.createElement("textarea");
    input.className = "comment-editor";
    input.rows = 2;
    input.value = initial === undefined ? text.textContent : initial;
    editing = { cell: td, input: input, before: text.textContent };
    text.hidden = true;
    td.appendChild(input);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    input.addEventListener("keydown", editorKey);
    input.addEventListener("blur", function () { if (editing && editing.input === input) finishEdit(true); });
  }

  function finishEdit(save) {
    const e = editing;
    if (!e) return;
    editing = null;
    const text = e.cell.querySelector(".comment-text");
    const value = e.input.value;
    e.input.remove();
    text.hidden = false;
    if (save && value !== e.before) {
      text.textContent = value;
      saveComment(e.cell.parentElement, value);
    }
    e.cell.focus();
  }

  function editorKey(ev) {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      finishEdit(true);
      activate(active.r + 1, active.c);
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      finishEdit(false);
    } else if (ev.key === "Tab") {
      ev.preventDefault();
      finishEdit(true);
      activate(active.r, active.c + (ev.shiftKey ? -1 : 1));
    }
    ev.stopPropagation();
  }

  const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

  table.addEventListener("keydown", function (ev) {
    if (editing || !rows.length) return;
    const cell = cellAt(active.r, active.c);
    if (MOVES[ev.key]) {
      ev.preventDefault();
      if (document.activeElement === table && !table.querySelector("td.cell.active")) { activate(0, 0); return; }
      activate(active.r + MOVES[ev.key][0], active.c + MOVES[ev.key][1]);
    } else if (ev.key === " " || ev.key === "Spacebar") {
      ev.preventDefault();
      if (cell) toggle(cell);
    } else if (ev.key === "Enter") {
      if (cell && cell.classList.contains("comment")) { ev.preventDefault(); startEdit(cell); }
    } else if (ev.key.length === 1 && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      if (cell && cell.classList.contains("comment")) { ev.preventDefault(); startEdit(cell, ev.key); }
    }
  });

  table.addEventListener("focus", function () {
    if (!table.querySelector("td.cell.active") && rows.length) activate(0, 0);
  });

  rows.forEach(function (tr, r) {
    cellsOf(tr).forEach(function (td, c) {
      td.addEventListener("mousedown", function () { activate(r, c, false); });
      td.addEventListener("click", function (ev) {
        activate(r, c);
        if (ev.target.tagName === "INPUT") return;  // the checkbox's own change saves it
        if (td.classList.contains("tick")) toggle(td);
      });
      td.addEventListener("dblclick", function () { if (td.classList.contains("comment")) startEdit(td); });
      const box = td.querySelector("input[type=checkbox]");
      if (box) {
        // Keep the focus on the cell, so Space is the grid's (not also the checkbox's).
        box.addEventListener("mousedown", function (ev) { ev.preventDefault(); });
        box.addEventListener("change", function () { saveTick(td); });
      }
    });
  });

  // ------------------------------------------------------------------ columns
  const addForm = $("add-tag");
  if (addForm) {
    addForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const name = $("new-tag-name").value;
      api("POST", addForm.dataset.url, { name: name }).then(function (res) {
        if (!res.ok) { status("Column not added: " + errorText(res), "error"); return; }
        window.location.reload();
      });
    });
  }

  document.querySelectorAll("#tag-columns tr[data-tag]").forEach(function (tr) {
    const url = "/api/v1/error-tags/" + tr.dataset.tag + "/";
    const action = tr.querySelector(".tag-action");
    const note = tr.querySelector(".tag-note");
    const remove = tr.querySelector(".tag-delete");
    function patch(body) {
      enqueue(function () {
        return api("PATCH", url, body).then(function (res) {
          status(res.ok ? "Saved · column" : "Not saved: " + errorText(res), res.ok ? "hint" : "error");
        });
      });
    }
    if (action) action.addEventListener("change", function () { patch({ action: action.value }); });
    if (note) note.addEventListener("change", function () { patch({ note: note.value }); });
    if (remove) {
      remove.addEventListener("click", function () {
        const name = tr.querySelector("a").textContent;
        if (!window.confirm("Delete the column “" + name + "” and all its ticks?")) return;
        api("DELETE", url).then(function (res) {
          if (!res.ok) { status("Not deleted: " + errorText(res), "error"); return; }
          window.location.reload();
        });
      });
    }
  });

  // Others tag too: keep the totals current while the page is open.
  window.setInterval(function () { if (!document.hidden) refreshTotals(); }, 30000);
})();
