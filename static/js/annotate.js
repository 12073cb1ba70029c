// Annotation page: draw, move, resize and delete boxes; classes by number key; zoom and
// pan; undo and redo; model suggestions to accept or reject; review. Every change is saved
// at once with the labels version it edited, so a stale save is refused (409) and shown,
// never silently overwriting someone else's work. Data reaches the page only as text
// (textContent, attributes), never as markup.
(function () {
  "use strict";
  const dataNode = document.getElementById("annotate-data");
  if (!dataNode) return;
  const page = JSON.parse(dataNode.textContent);
  const NS = "http://www.w3.org/2000/svg";
  const W = page.image.width;
  const H = page.image.height;
  const canEdit = page.can_edit;
  const $ = function (id) { return document.getElementById(id); };
  const svg = $("stage");

  // ------------------------------------------------------------------ state
  let classes = page.classes.slice();
  let drawClass = classes.length ? classes[0].id : null;
  let version = page.labels.version;
  let nextKey = 1;
  let labels = page.labels.boxes.map(fromServer);
  let suggestions = page.labels.suggestions.map(fromServer);
  let resolved = new Set();  // suggestion ids accepted or rejected since the page loaded
  let selected = null;  // {kind: "label" | "suggestion", key}
  let showSuggestions = true;
  let minScore = page.suggestion_score;
  const undoStack = [];
  const redoStack = [];
  let view = { x: 0, y: 0, w: W, h: H };
  let drag = null;
  let spaceDown = false;
  const save = { timer: null, inFlight: false, dirty: false, conflict: false };

  function fromServer(b) {
    return {
      key: nextKey++, id: b.id, label_class: b.label_class, x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2,
      score: b.score, model_version: b.model_version,
      suggested_by: b.suggested_by, suggested_score: b.suggested_score,
    };
  }

  function classOf(id) {
    return classes.find(function (c) { return c.id === id; }) || { id: id, name: "?", color: "#888888" };
  }

  function clamp(v, lo, hi) { return Math.min(Math.max(v, lo), hi); }

  function clampBox(b) {
    // Keep the box inside the image and at least one pixel wide and high.
    const w = clamp(b.x2 - b.x1, 1, W);
    const h = clamp(b.y2 - b.y1, 1, H);
    b.x1 = clamp(b.x1, 0, W - w); b.y1 = clamp(b.y1, 0, H - h);
    b.x2 = b.x1 + w; b.y2 = b.y1 + h;
    return b;
  }

  function round2(v) { return Math.round(v * 100) / 100; }

  function visibleSuggestions() {
    if (!showSuggestions) return [];
    return suggestions.filter(function (s) { return !resolved.has(s.id) && s.score >= minScore; });
  }

  function find(kind, key) {
    const list = kind === "label" ? labels : suggestions;
    return list.find(function (b) { return b.key === key; }) || null;
  }

  // ------------------------------------------------------------------ history
  function snapshot() {
    return { labels: labels.map(function (b) { return Object.assign({}, b); }), resolved: Array.from(resolved) };
  }

  function restore(s) {
    labels = s.labels.map(function (b) { return Object.assign({}, b); });
    resolved = new Set(s.resolved);
    if (selected && !find(selected.kind, selected.key)) selected = null;
  }

  function commit(before) {
    undoStack.push(before);
    if (undoStack.length > 200) undoStack.shift();
    redoStack.length = 0;
    render();
    scheduleSave();
  }

  function undo() {
    if (!undoStack.length || !canEdit) return;
    redoStack.push(snapshot());
    restore(undoStack.pop());
    render(); scheduleSave();
  }

  function redo() {
    if (!redoStack.length || !canEdit) return;
    undoStack.push(snapshot());
    restore(redoStack.pop());
    render(); scheduleSave();
  }

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

  function setSaveState(text, kind) {
    const node = $("save-state");
    node.textContent = text;
    node.className = kind ? kind : "hint";
  }

  function scheduleSave() {
    if (!canEdit || save.conflict) return;
    save.dirty = true;
    setSaveState("Saving…");
    clearTimeout(save.timer);
    save.timer = setTimeout(flush, 250);
  }

  function payload() {
    return {
      version: version,
      boxes: labels.map(function (b) {
        const out = { label_class: b.label_class, x1: round2(b.x1), y1: round2(b.y1), x2: round2(b.x2), y2: round2(b.y2) };
        if (b.suggested_by) { out.suggested_by = b.suggested_by; out.suggested_score = b.suggested_score; }
        return out;
      }),
      resolved_suggestions: Array.from(resolved),
    };
  }

  // Saves run one at a time; edits made meanwhile are saved right after, with the new version.
  function flush() {
    clearTimeout(save.timer);
    if (save.conflict) return Promise.resolve(false);
    if (save.inFlight) return save.inFlight.then(flush);
    if (!save.dirty) return Promise.resolve(true);
    save.dirty = false;
    save.inFlight = api("PUT", page.urls.boxes, payload()).then(function (r) {
      save.inFlight = false;
      if (r.status === 409) {
        save.conflict = true;
        const message = (r.json.error && r.json.error.message) || "Someone else changed these labels.";
        $("conflict-message").textContent = message;
        $("conflict").hidden = false;
        setSaveState("Not saved: conflict", "error");
        return false;
      }
      if (!r.ok) {
        const why = (r.json.error && r.json.error.message) || ("HTTP " + r.status);
        setSaveState("Not saved: " + why, "error");
        return false;
      }
      version = r.json.version;
      r.json.boxes.forEach(function (b, i) { if (labels[i]) labels[i].id = b.id; });
      if (save.dirty) return flush();
      setSaveState("Saved · version " + version);
      return true;
    }, function () {
      save.inFlight = false;
      save.dirty = true;
      setSaveState("Not saved: the server does not answer; retrying…", "error");
      save.timer = setTimeout(flush, 3000);
      return false;
    });
    return save.inFlight;
  }

  window.addEventListener("beforeunload", function (event) {
    if (save.dirty || save.inFlight) { flush(); event.preventDefault(); event.returnValue = ""; }
  });

  // ------------------------------------------------------------------ drawing the stage
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  const imageLayer = el("image", { href: page.image.url, x: 0, y: 0, width: W, height: H, preserveAspectRatio: "none" }, svg);
  imageLayer.setAttribute("class", "photo");
  const suggestionLayer = el("g", { "class": "suggestions" }, svg);
  const labelLayer = el("g", { "class": "labels" }, svg);
  const handleLayer = el("g", { "class": "handles" }, svg);
  const draft = el("rect", { "class": "draft", visibility: "hidden" }, svg);

  function pixelSize() {
    // Image pixels per screen pixel, so strokes, text and handles keep their screen size.
    const ctm = svg.getScreenCTM();
    return ctm && ctm.a ? 1 / ctm.a : 1;
  }

  function setView(next) {
    const minW = Math.max(8, W / 64);
    next.w = clamp(next.w, minW, W * 4);
    next.h = next.w * (H / W);
    view = next;
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    $("zoom-level").textContent = Math.round((W / view.w) * 100) + "%";
    render();
  }

  function zoomAt(factor, cx, cy) {
    const w = view.w / factor;
    const h = w * (H / W);
    setView({ x: cx - (cx - view.x) * (w / view.w), y: cy - (cy - view.y) * (h / view.h), w: w, h: h });
  }

  function fit() { setView({ x: 0, y: 0, w: W, h: H }); }

  function drawBox(layer, b, kind) {
    const c = classOf(b.label_class);
    const px = pixelSize();
    const isSelected = selected && selected.kind === kind && selected.key === b.key;
    const g = el("g", { "class": "box " + kind + (isSelected ? " selected" : ""), "data-kind": kind, "data-key": b.key }, layer);
    // A pale halo under the coloured outline keeps thin and dashed boxes visible on any photo.
    el("rect", { x: b.x1, y: b.y1, width: b.x2 - b.x1, height: b.y2 - b.y1, "class": "halo" }, g);
    el("rect", {
      x: b.x1, y: b.y1, width: b.x2 - b.x1, height: b.y2 - b.y1, stroke: c.color,
      "fill": kind === "label" ? c.color : "none", "data-kind": kind, "data-key": b.key,
    }, g);
    const tag = el("text", { x: b.x1 + 2 * px, y: Math.max(b.y1 - 4 * px, 12 * px), fill: c.color, "font-size": 12 * px, "stroke-width": 3 * px }, g);
    tag.textContent = kind === "label" ? c.name : "◇ " + c.name + " " + b.score.toFixed(2);
    return g;
  }

  function drawHandles(b) {
    const px = pixelSize();
    const s = 8 * px;
    const xs = { w: b.x1, c: (b.x1 + b.x2) / 2, e: b.x2 };
    const ys = { n: b.y1, m: (b.y1 + b.y2) / 2, s: b.y2 };
    ["nw", "n", "ne", "e", "se", "s", "sw", "w"].forEach(function (h) {
      const x = h.indexOf("w") >= 0 ? xs.w : h.indexOf("e") >= 0 ? xs.e : xs.c;
      const y = h.indexOf("n") >= 0 ? ys.n : h.indexOf("s") >= 0 ? ys.s : ys.m;
      el("rect", { x: x - s / 2, y: y - s / 2, width: s, height: s, "class": "handle h-" + h, "data-handle": h, "data-key": b.key }, handleLayer);
    });
  }

  function render() {
    suggestionLayer.replaceChildren();
    labelLayer.replaceChildren();
    handleLayer.replaceChildren();
    svg.style.setProperty("--px", pixelSize());
    visibleSuggestions().forEach(function (s) { drawBox(suggestionLayer, s, "suggestion"); });
    labels.forEach(function (b) { drawBox(labelLayer, b, "label"); });
    if (selected && selected.kind === "label" && !selected.fresh && canEdit) {
      const b = find("label", selected.key);
      if (b) drawHandles(b);
    }
    renderLists();
    drawFaces();  // faces keep their screen-sized labels at every zoom
  }

  // ------------------------------------------------------------------ the side panel
  function swatch(color, dashed) {
    const s = document.createElement("span");
    s.className = "swatch" + (dashed ? " dashed" : "");
    s.style.background = dashed ? "transparent" : color;
    s.style.borderColor = color;
    return s;
  }

  function renderClasses() {
    const list = $("class-list");
    list.replaceChildren();
    classes.forEach(function (c, i) {
      const li = document.createElement("li");
      li.dataset.classId = c.id;
      if (c.id === drawClass) li.className = "current";
      const key = document.createElement("kbd");
      key.textContent = i < 9 ? String(i + 1) : "";
      li.append(key, swatch(c.color, false), " " + c.name);
      li.addEventListener("click", function () { setClass(c.id); });
      list.appendChild(li);
    });
    const current = classOf(drawClass);
    $("draw-class").textContent = drawClass ? "Drawing: " + current.name : "Add a class to draw boxes";
  }

  function boxRow(b, kind) {
    const li = document.createElement("li");
    li.dataset.kind = kind;
    li.dataset.key = b.key;
    if (selected && selected.kind === kind && selected.key === b.key) li.className = "selected";
    const c = classOf(b.label_class);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    const origin = document.createElement("span");
    origin.className = "origin " + kind;
    if (kind === "label") {
      origin.textContent = b.suggested_by ? "label · from model #" + b.suggested_by + " " + (b.suggested_score || 0).toFixed(2) : "label";
    } else {
      origin.textContent = "suggestion " + b.score.toFixed(2);
    }
    li.append(swatch(c.color, kind !== "label"), name, origin);
    if (kind === "suggestion" && canEdit) {
      const yes = document.createElement("button");
      yes.type = "button"; yes.className = "small accept"; yes.textContent = "✓"; yes.title = "Accept (A)";
      yes.addEventListener("click", function (e) { e.stopPropagation(); accept([b]); });
      const no = document.createElement("button");
      no.type = "button"; no.className = "small secondary reject"; no.textContent = "✗"; no.title = "Reject (R)";
      no.addEventListener("click", function (e) { e.stopPropagation(); reject(b); });
      li.append(yes, no);
    }
    li.addEventListener("click", function () { select(kind, b.key); });
    return li;
  }

  function renderLists() {
    $("label-list").replaceChildren.apply($("label-list"), labels.map(function (b) { return boxRow(b, "label"); }));
    const shown = visibleSuggestions();
    $("suggestion-list").replaceChildren.apply($("suggestion-list"), shown.map(function (s) { return boxRow(s, "suggestion"); }));
    $("label-count").textContent = "(" + labels.length + ")";
    const open = suggestions.filter(function (s) { return !resolved.has(s.id); }).length;
    $("suggestion-count").textContent = "(" + shown.length + " shown of " + open + ")";
    $("suggestion-score-value").textContent = minScore.toFixed(2);
    $("undo").disabled = !undoStack.length; $("redo").disabled = !redoStack.length;
  }

  // ------------------------------------------------------------------ editing actions
  function select(kind, key) {
    selected = key === null ? null : { kind: kind, key: key };
    render();
    const row = document.querySelector('.box-list li[data-kind="' + kind + '"][data-key="' + key + '"]');
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  function setClass(id) {
    drawClass = id;
    const b = selected && selected.kind === "label" ? find("label", selected.key) : null;
    if (b && b.label_class !== id && canEdit) {
      const before = snapshot();
      b.label_class = id;
      commit(before);
    } else {
      render();
    }
    renderClasses();
  }

  function addLabel(box) {
    const b = clampBox(Object.assign({ key: nextKey++, id: null, suggested_by: null, suggested_score: null }, box));
    labels.push(b);
    return b;
  }

  function accept(list) {
    if (!canEdit || !list.length) return;
    const before = snapshot();
    let last = null;
    list.forEach(function (s) {
      last = addLabel({ label_class: s.label_class, x1: s.x1, y1: s.y1, x2: s.x2, y2: s.y2, suggested_by: s.model_version, suggested_score: s.score });
      resolved.add(s.id);
    });
    selected = { kind: "label", key: last.key };
    commit(before);
  }

  function reject(s) {
    if (!canEdit) return;
    const before = snapshot();
    resolved.add(s.id);
    if (selected && selected.kind === "suggestion" && selected.key === s.key) selected = null;
    commit(before);
  }

  function deleteSelected() {
    if (!selected || !canEdit) return;
    if (selected.kind === "suggestion") { reject(find("suggestion", selected.key)); return; }
    const before = snapshot();
    labels = labels.filter(function (b) { return b.key !== selected.key; });
    selected = null;
    commit(before);
  }

  function nudge(dx, dy) {
    const b = selected && selected.kind === "label" ? find("label", selected.key) : null;
    if (!b || !canEdit) return;
    const before = snapshot();
    b.x1 += dx; b.x2 += dx; b.y1 += dy; b.y2 += dy;
    clampBox(b);
    commit(before);
  }

  function cycle(step) {
    const all = labels.map(function (b) { return { kind: "label", key: b.key }; })
      .concat(visibleSuggestions().map(function (s) { return { kind: "suggestion", key: s.key }; }));
    if (!all.length) return;
    let i = selected ? all.findIndex(function (x) { return x.kind === selected.kind && x.key === selected.key; }) : -1;
    i = (i + step + all.length) % all.length;
    select(all[i].kind, all[i].key);
  }

  function copy() {
    const chosen = selected && selected.kind === "label" ? [find("label", selected.key)] : labels;
    const items = chosen.filter(Boolean).map(function (b) {
      return { label: classOf(b.label_class).name, label_class: b.label_class, x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 };
    });
    sessionStorage.setItem("annotate-clipboard", JSON.stringify(items));
    setSaveState("Copied " + items.length + " box" + (items.length === 1 ? "" : "es"));
  }

  function classNamed(item) {
    const byId = classes.find(function (c) { return c.id === item.label_class; });
    const byName = classes.find(function (c) { return c.name === item.label; });
    return (byId || byName || classOf(drawClass)).id;
  }

  function paste(items) {
    if (!canEdit || !items.length || !drawClass) return;
    const before = snapshot();
    let last = null;
    items.forEach(function (item) {
      last = addLabel({ label_class: classNamed(item), x1: item.x1, y1: item.y1, x2: item.x2, y2: item.y2 });
    });
    selected = { kind: "label", key: last.key };
    commit(before);
  }

  function pasteClipboard() {
    try { paste(JSON.parse(sessionStorage.getItem("annotate-clipboard") || "[]")); } catch (e) { /* nothing copied */ }
  }

  function copyPrevious() {
    if (!page.previous || !canEdit) return;
    api("GET", "/api/v1/images/" + page.previous + "/boxes/").then(function (r) {
      if (!r.ok) return;
      paste(r.json.boxes.map(function (b) { return { label: b.label, label_class: b.label_class, x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 }; }));
      setSaveState("Copied " + r.json.boxes.length + " labels from the previous image");
    });
  }

  function bestSuggestion() {
    const shown = visibleSuggestions();
    return shown.length ? shown.reduce(function (a, b) { return b.score > a.score ? b : a; }) : null;
  }

  // ------------------------------------------------------------------ pointer
  function point(event) {
    const p = svg.createSVGPoint();
    p.x = event.clientX; p.y = event.clientY;
    const q = p.matrixTransform(svg.getScreenCTM().inverse());
    return { x: q.x, y: q.y };
  }

  svg.addEventListener("contextmenu", function (e) { e.preventDefault(); });

  svg.addEventListener("pointerdown", function (event) {
    svg.focus();
    const p = point(event);
    const target = event.target;
    if (event.button === 1 || event.button === 2 || spaceDown) {
      drag = { mode: "pan", start: { x: event.clientX, y: event.clientY }, view: Object.assign({}, view) };
    } else if (target.dataset && target.dataset.handle && canEdit && selected && !selected.fresh) {
      const b = find("label", Number(target.dataset.key));
      drag = { mode: "resize", handle: target.dataset.handle, box: b, before: snapshot(), start: p, orig: Object.assign({}, b) };
    } else if (target.dataset && target.dataset.kind) {
      // On the selected label a drag moves it. On any other box a click selects it and a
      // drag draws a new box: dense images (cells, crowds) start new boxes inside old ones.
      const kind = target.dataset.kind;
      const key = Number(target.dataset.key);
      const isSelected = selected && !selected.fresh && selected.kind === kind && selected.key === key;
      if (isSelected && kind === "label" && canEdit) {
        const b = find("label", key);
        drag = { mode: "move", box: b, before: snapshot(), start: p, orig: Object.assign({}, b) };
      } else {
        drag = { mode: "press", kind: kind, key: key, start: p, screen: { x: event.clientX, y: event.clientY } };
      }
    } else if (canEdit && drawClass && p.x >= 0 && p.y >= 0 && p.x <= W && p.y <= H) {
      drag = { mode: "draw", start: p };
      selected = null;
    } else {
      select(null, null);
    }
    if (drag) svg.setPointerCapture(event.pointerId);
  });

  svg.addEventListener("pointermove", function (event) {
    if (!drag) return;
    const p = point(event);
    if (drag.mode === "pan") {
      const scale = view.w / svg.getBoundingClientRect().width;
      setView({ x: drag.view.x - (event.clientX - drag.start.x) * scale, y: drag.view.y - (event.clientY - drag.start.y) * scale, w: view.w, h: view.h });
      return;
    }
    if (drag.mode === "press") {
      const moved = Math.abs(event.clientX - drag.screen.x) + Math.abs(event.clientY - drag.screen.y);
      if (moved < 4) return;
      if (!canEdit || !drawClass) { drag = null; return; }
      drag = { mode: "draw", start: drag.start };
      selected = null;
    }
    if (drag.mode === "draw") {
      const x1 = clamp(Math.min(drag.start.x, p.x), 0, W), x2 = clamp(Math.max(drag.start.x, p.x), 0, W);
      const y1 = clamp(Math.min(drag.start.y, p.y), 0, H), y2 = clamp(Math.max(drag.start.y, p.y), 0, H);
      drag.rect = { x1: x1, y1: y1, x2: x2, y2: y2 };
      draft.setAttribute("visibility", "visible");
      draft.setAttribute("x", x1); draft.setAttribute("y", y1);
      draft.setAttribute("width", x2 - x1); draft.setAttribute("height", y2 - y1);
      draft.setAttribute("stroke", classOf(drawClass).color);
      return;
    }
    const dx = p.x - drag.start.x, dy = p.y - drag.start.y, o = drag.orig, b = drag.box;
    if (drag.mode === "move") {
      b.x1 = o.x1 + dx; b.x2 = o.x2 + dx; b.y1 = o.y1 + dy; b.y2 = o.y2 + dy;
      clampBox(b);
    } else {
      const h = drag.handle;
      if (h.indexOf("w") >= 0) b.x1 = clamp(o.x1 + dx, 0, W);
      if (h.indexOf("e") >= 0) b.x2 = clamp(o.x2 + dx, 0, W);
      if (h.indexOf("n") >= 0) b.y1 = clamp(o.y1 + dy, 0, H);
      if (h.indexOf("s") >= 0) b.y2 = clamp(o.y2 + dy, 0, H);
    }
    drag.changed = true;
    render();
  });

  function endDrag(cancel) {
    if (!drag) return;
    const d = drag;
    drag = null;
    draft.setAttribute("visibility", "hidden");
    if (d.mode === "press") { if (!cancel) select(d.kind, d.key); return; }
    if (d.mode === "draw") {
      const r = d.rect;
      if (!cancel && r && r.x2 - r.x1 >= 2 && r.y2 - r.y1 >= 2) {
        const before = snapshot();
        const b = addLabel({ label_class: drawClass, x1: r.x1, y1: r.y1, x2: r.x2, y2: r.y2 });
        // "Fresh": number keys and Delete act on it, but a drag on it draws the next box
        // (cells and crowds touch); a click makes it editable, with handles.
        selected = { kind: "label", key: b.key, fresh: true };
        commit(before);
      } else {
        render();
      }
    } else if (d.mode === "move" || d.mode === "resize") {
      if (cancel) { restore(d.before); render(); return; }
      const b = d.box;
      const x1 = Math.min(b.x1, b.x2), x2 = Math.max(b.x1, b.x2), y1 = Math.min(b.y1, b.y2), y2 = Math.max(b.y1, b.y2);
      Object.assign(b, { x1: x1, x2: x2, y1: y1, y2: y2 });
      clampBox(b);
      if (d.changed) commit(d.before); else render();
    }
  }

  svg.addEventListener("pointerup", function () { endDrag(false); });
  svg.addEventListener("pointercancel", function () { endDrag(true); });

  svg.addEventListener("wheel", function (event) {
    event.preventDefault();
    const p = point(event);
    zoomAt(event.deltaY < 0 ? 1.2 : 1 / 1.2, p.x, p.y);
  }, { passive: false });

  // ------------------------------------------------------------------ review, navigation
  function go(imageId) {
    if (!imageId) { setSaveState(page.queue ? "Nothing left in this queue" : "No more images"); return; }
    flush().then(function (ok) {
      if (ok === false) return;
      const params = new URLSearchParams();
      if (page.queue) params.set("queue", page.queue);
      if (page.detector) params.set("model_version", page.detector);
      window.location.href = page.urls.annotate + imageId + "/" + (params.toString() ? "?" + params : "");
    });
  }

  function review(action, comment) {
    return flush().then(function (ok) {
      if (ok === false) return null;
      return api("POST", page.urls.review, { action: action, comment: comment || "" }).then(function (r) {
        if (!r.ok) { setSaveState((r.json.error && r.json.error.message) || "Not done", "error"); return null; }
        $("image-status").textContent = r.json.status.replace("_", " ");
        $("image-status").className = "status s-" + r.json.status;
        return r.json;
      });
    });
  }

  function finish() {
    const action = page.queue === "review" && page.can_review ? "approve" : "done";
    review(action).then(function (done) { if (done) go(page.next); });
  }

  $("go-previous").addEventListener("click", function () { go(page.previous); });
  $("go-next").addEventListener("click", function () { go(page.next); });
  $("mark-done").addEventListener("click", function () { review("done").then(function (r) { if (r) go(page.next); }); });
  $("approve").addEventListener("click", function () { review("approve").then(function (r) { if (r) go(page.next); }); });
  $("send-back").addEventListener("click", function () { $("needs-fix-form").hidden = false; $("needs-fix-comment").focus(); });
  $("needs-fix-cancel").addEventListener("click", function () { $("needs-fix-form").hidden = true; });
  $("needs-fix-form").addEventListener("submit", function (e) {
    e.preventDefault();
    review("needs_fix", $("needs-fix-comment").value).then(function (r) { if (r) go(page.next); });
  });
  $("review-tools").hidden = !page.can_review;
  $("mark-done").hidden = !canEdit;
  $("reload").addEventListener("click", function () { save.dirty = false; window.location.reload(); });
  if (page.image.review_comment && page.image.status === "needs_fix") {
    $("review-comment").textContent = "Needs fix: " + page.image.review_comment;
    $("review-comment").hidden = false;
  }

  // ------------------------------------------------------------------ suggestions
  const detector = $("detector");
  page.detectors.forEach(function (d) {
    const option = document.createElement("option");
    option.value = d.id;
    option.textContent = d.name + (d.serving ? " · serves this dataset" : d.own ? " · trained on this dataset" : "");
    option.selected = d.id === page.detector;
    detector.appendChild(option);
  });
  if (!page.detectors.length) {
    const option = document.createElement("option");
    option.textContent = "no detector yet";
    detector.appendChild(option);
    detector.disabled = true;
    $("get-suggestions").disabled = true;
  }
  detector.addEventListener("change", function () {
    page.detector = Number(detector.value);
    go(page.image.id);
  });
  const scoreInput = $("suggestion-score");
  scoreInput.value = minScore;
  scoreInput.addEventListener("input", function () { minScore = parseFloat(scoreInput.value); render(); });
  $("show-suggestions").addEventListener("change", function (e) { showSuggestions = e.target.checked; render(); });
  $("accept-all").addEventListener("click", function () { accept(visibleSuggestions()); });
  $("get-suggestions").addEventListener("click", runDetector);

  function runDetector() {
    if (!page.detector || !canEdit) return;
    const note = $("suggestion-note");
    note.textContent = "Running the detector…";
    api("POST", page.urls.detect, { image_ids: [page.image.id], model_version: page.detector, min_confidence: 0.01 }).then(function (r) {
      if (!r.ok || !r.json.job) { note.textContent = (r.json.error && r.json.error.message) || "The detector did not start."; return; }
      const poll = function () {
        api("GET", page.urls.jobs + r.json.job.id + "/").then(function (j) {
          if (j.json.status === "done") { loadSuggestions(); note.textContent = ""; }
          else if (j.json.status === "failed" || j.json.status === "cancelled") note.textContent = "Detection " + j.json.status + ": " + (j.json.error || "");
          else { note.textContent = "Running the detector… " + Math.round((j.json.progress || 0) * 100) + "%"; setTimeout(poll, 500); }
        });
      };
      poll();
    });
  }

  function loadSuggestions() {
    api("GET", page.urls.boxes + "?model_version=" + page.detector).then(function (r) {
      if (!r.ok) return;
      suggestions = r.json.suggestions.map(fromServer);
      render();
    });
  }

  // ------------------------------------------------------------------ classes
  const newClass = $("new-class");
  if (newClass) {
    newClass.addEventListener("submit", function (e) {
      e.preventDefault();
      const name = $("new-class-name").value.trim();
      if (!name) return;
      api("POST", "/api/v1/datasets/" + page.image.dataset + "/classes/", { name: name }).then(function (r) {
        if (!r.ok) { setSaveState((r.json.error && r.json.error.message) || "Class not added", "error"); return; }
        classes.push(r.json);
        classes.sort(function (a, b) { return a.name.localeCompare(b.name); });
        $("new-class-name").value = "";
        renderClasses();
        setClass(r.json.id);
      });
    });
  }

  // ------------------------------------------------------------------ faces
  // Found faces are drawn on their own layer and named in the side panel: a person of this
  // dataset (or a new one), someone unknown, or not a face. Naming one in the recognition
  // gallery's dataset enrols it.
  const faceLayer = el("g", { "class": "faces" }, svg);
  let faces = { faces: [], subjects: [] };

  function drawFaces() {
    faceLayer.replaceChildren();
    const px = pixelSize();
    faces.faces.forEach(function (f, i) {
      const b = f.box || [0, 0, W, H];
      const g = el("g", { "class": "face-box " + f.label, "data-face": f.id }, faceLayer);
      el("rect", { x: b[0], y: b[1], width: b[2] - b[0], height: b[3] - b[1] }, g);
      const tag = el("text", { x: b[0] + 2 * px, y: b[3] + 14 * px, "font-size": 12 * px, "stroke-width": 3 * px }, g);
      tag.textContent = (i + 1) + " " + (f.subject ? f.subject.name : f.label === "pending" ? "?" : f.label.replace("_", " "));
    });
  }

  function faceButton(text, title, onClick) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "small secondary"; b.textContent = text; b.title = title;
    b.disabled = !canEdit;
    b.addEventListener("click", onClick);
    return b;
  }

  function labelFace(face, body) {
    api("PATCH", page.urls.faces + face.id + "/", body).then(function (r) {
      if (!r.ok) { $("face-note").textContent = (r.json.error && r.json.error.message) || "Not saved"; return; }
      $("face-note").textContent = "";
      faces = r.json;
      renderFaces();
    });
  }

  function faceRow(f, i) {
    const li = document.createElement("li");
    li.dataset.face = f.id;
    const head = document.createElement("div");
    head.className = "face-head";
    const name = document.createElement("strong");
    name.textContent = (i + 1) + ". " + (f.subject ? f.subject.name : f.label === "pending" ? "not labelled" : f.label.replace("_", " "));
    head.appendChild(name);
    li.appendChild(head);
    if (f.suggestion && f.suggestion.candidates && f.suggestion.candidates.length && !f.subject) {
      const best = f.suggestion.candidates[0];
      const chip = faceButton("looks like " + best.subject.name + " " + Math.round(best.similarity * 100) + "%", "Accept this person", function () {
        labelFace(f, { label: "person", subject: best.subject.id });
      });
      chip.className = "small suggestion-chip";
      li.appendChild(chip);
    }
    const pick = document.createElement("select");
    pick.disabled = !canEdit;
    const none = document.createElement("option");
    none.value = ""; none.textContent = "Person…";
    pick.appendChild(none);
    faces.subjects.forEach(function (s) {
      const o = document.createElement("option");
      o.value = s.id; o.textContent = s.name;
      o.selected = f.subject && f.subject.id === s.id;
      pick.appendChild(o);
    });
    pick.addEventListener("change", function () { if (pick.value) labelFace(f, { label: "person", subject: Number(pick.value) }); });
    const fresh = document.createElement("input");
    fresh.placeholder = "or a new name"; fresh.maxLength = 255; fresh.disabled = !canEdit;
    fresh.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && fresh.value.trim()) labelFace(f, { label: "person", new_subject: fresh.value.trim() });
    });
    const row = document.createElement("div");
    row.className = "face-actions";
    row.append(pick, fresh,
      faceButton("Unknown", "Someone we do not know", function () { labelFace(f, { label: "unknown" }); }),
      faceButton("Not a face", "The detector was wrong", function () { labelFace(f, { label: "not_face" }); }));
    li.appendChild(row);
    return li;
  }

  function renderFaces() {
    $("face-list").replaceChildren.apply($("face-list"), faces.faces.map(faceRow));
    $("face-count").textContent = "(" + faces.faces.length + ")";
    drawFaces();
  }

  function loadFaces() {
    api("GET", page.urls.faces).then(function (r) { if (r.ok) { faces = r.json; renderFaces(); } });
  }

  if (page.faces) {
    $("faces-section").hidden = false;
    $("find-faces").disabled = !canEdit;
    $("find-faces").addEventListener("click", function () {
      $("face-note").textContent = "Finding faces…";
      api("POST", page.urls.faces + "find/?wait=60").then(function (r) {
        $("face-note").textContent = r.ok ? (r.json.added === undefined ? "Still running; reload in a moment." : r.json.added + " new face(s) found.")
          : ((r.json.error && r.json.error.message) || "No faces found.");
        loadFaces();
      });
    });
    loadFaces();
  }

  // ------------------------------------------------------------------ keyboard
  document.addEventListener("keydown", function (event) {
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key;
    const step = event.shiftKey ? 10 : 1;
    const handled = (function () {
      if (ctrl && (key === "z" || key === "Z")) { if (event.shiftKey) redo(); else undo(); return true; }
      if (ctrl && (key === "y" || key === "Y")) { redo(); return true; }
      if (ctrl && (key === "c" || key === "C")) { copy(); return true; }
      if (ctrl && (key === "v" || key === "V")) { pasteClipboard(); return true; }
      if (ctrl && key === "Enter") { finish(); return true; }
      if (ctrl) return false;
      if (key === " ") { spaceDown = true; return true; }
      if (/^[1-9]$/.test(key)) { const c = classes[Number(key) - 1]; if (c) setClass(c.id); return true; }
      if (key === "Delete" || key === "Backspace") { deleteSelected(); return true; }
      if (key === "ArrowLeft") { nudge(-step, 0); return true; }
      if (key === "ArrowRight") { nudge(step, 0); return true; }
      if (key === "ArrowUp") { nudge(0, -step); return true; }
      if (key === "ArrowDown") { nudge(0, step); return true; }
      if (key === "Tab") { cycle(event.shiftKey ? -1 : 1); return true; }
      if (key === "Escape") { if (drag) endDrag(true); else select(null, null); return true; }
      const lower = key.toLowerCase();
      if (lower === "a") {
        if (event.shiftKey) { accept(visibleSuggestions()); return true; }
        const s = selected && selected.kind === "suggestion" ? find("suggestion", selected.key) : bestSuggestion();
        if (s) accept([s]);
        return true;
      }
      if (lower === "r") { if (selected && selected.kind === "suggestion") reject(find("suggestion", selected.key)); return true; }
      if (lower === "s") { showSuggestions = !showSuggestions; $("show-suggestions").checked = showSuggestions; render(); return true; }
      if (lower === "g") { runDetector(); return true; }
      if (lower === "p") { copyPrevious(); return true; }
      if (lower === "d") { go(page.previous); return true; }
      if (lower === "f") { go(page.next); return true; }
      if (key === "+" || key === "=") { zoomAt(1.25, view.x + view.w / 2, view.y + view.h / 2); return true; }
      if (key === "-") { zoomAt(1 / 1.25, view.x + view.w / 2, view.y + view.h / 2); return true; }
      if (key === "0") { fit(); return true; }
      return false;
    })();
    if (handled) event.preventDefault();
  });
  document.addEventListener("keyup", function (event) { if (event.key === " ") spaceDown = false; });

  $("zoom-in").addEventListener("click", function () { zoomAt(1.25, view.x + view.w / 2, view.y + view.h / 2); });
  $("zoom-out").addEventListener("click", function () { zoomAt(1 / 1.25, view.x + view.w / 2, view.y + view.h / 2); });
  $("zoom-fit").addEventListener("click", fit);
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  window.addEventListener("resize", render);

  // ------------------------------------------------------------------ start
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  renderClasses();
  fit();
  if (canEdit && page.detector && !suggestions.length && !labels.length) runDetector();
  window.annotate = { state: function () { return { version: version, labels: labels, suggestions: suggestions, resolved: Array.from(resolved), selected: selected, view: view }; }, flush: flush };
})();
