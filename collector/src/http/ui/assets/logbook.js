// logbook's page script: the run waterfall (virtualized), the live tail of the
// records page, and the CSRF header of requests made in place. No framework; every
// text from the store goes into the page as text (textContent), never as HTML.
"use strict";

(function () {
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  // htmx's requests carry the CSRF token (state-changing ones need it).
  document.addEventListener("htmx:configRequest", function (e) {
    if (csrf) e.detail.headers["X-CSRF-Token"] = csrf;
  });

  // Loads a server-rendered fragment (escaped on the server) into `target`.
  function loadInto(target, url) {
    target.setAttribute("aria-busy", "true");
    var done = function () { target.removeAttribute("aria-busy"); };
    if (window.htmx) {
      return window.htmx.ajax("GET", url, { target: target, swap: "innerHTML" }).then(done);
    }
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { target.innerHTML = html; done(); });
  }

  function fmtDuration(us) {
    if (us < 0) return "running";
    if (us < 1000) return us + "µs";
    if (us < 1e6) return (us / 1000).toFixed(1) + "ms";
    if (us < 6e7) return (us / 1e6).toFixed(3) + "s";
    return Math.floor(us / 6e7) + "m" + String(Math.floor(us / 1e6) % 60).padStart(2, "0") + "s";
  }

  // ---- The waterfall ----------------------------------------------------------
  function waterfall() {
    var root = document.getElementById("waterfall");
    var data = document.getElementById("outline");
    if (!root || !data) return;
    var outline = JSON.parse(data.textContent);
    var rows = outline.rows;
    var n = rows.length;
    var ROW = 24;
    // Columns of a row.
    var PARENT = 0, KIND = 1, START = 2, DUR = 3, STATUS = 4, CRIT = 5, NAME = 6, CAT = 7, ID = 8, LEVEL = 9;

    var depth = new Int32Array(n), kids = new Int32Array(n), size = new Int32Array(n);
    var end = 0;
    for (var i = 0; i < n; i++) {
      var p = rows[i][PARENT];
      depth[i] = p < 0 ? 0 : depth[p] + 1;
      if (p >= 0) kids[p]++;
      var e = rows[i][START] + Math.max(rows[i][DUR], 0);
      if (e > end) end = e;
    }
    // Running spans reach the last thing seen.
    // size[i]: rows in i's subtree, itself included (rows are in tree order).
    for (i = n - 1; i >= 0; i--) {
      size[i] += 1;
      p = rows[i][PARENT];
      if (p >= 0) size[p] += size[i];
    }
    // Errors and their ancestors, for "errors only".
    var errPath = new Uint8Array(n);
    for (i = n - 1; i >= 0; i--) {
      if (rows[i][STATUS] === 1) errPath[i] = 1;
      p = rows[i][PARENT];
      if (errPath[i] && p >= 0) errPath[p] = 1;
    }
    var total = Math.max(end, 1);
    var collapsed = new Uint8Array(n);
    var errorsOnly = false;
    var visible = [];
    var hiddenCount = 0;

    function rebuild() {
      visible = [];
      hiddenCount = 0;
      var i = 0;
      while (i < n) {
        if (errorsOnly && !errPath[i]) { i += size[i]; continue; }
        visible.push(i);
        if (collapsed[i] && size[i] > 1) {
          hiddenCount += size[i] - 1;
          i += size[i];
        } else {
          i++;
        }
      }
      spacer.style.height = visible.length * ROW + "px";
      var hidden = document.getElementById("wf-hidden");
      if (hidden) {
        var parts = [];
        if (hiddenCount) parts.push(hiddenCount + " hidden under collapsed spans");
        if (errorsOnly) parts.push("showing errors and their parents only");
        hidden.textContent = parts.join("; ");
      }
    }

    // The axis.
    var axis = document.createElement("div");
    axis.className = "wf-axis";
    axis.setAttribute("aria-hidden", "true");
    var axisName = document.createElement("div");
    axisName.textContent = "  span";
    var ticks = document.createElement("div");
    ticks.className = "ticks";
    for (var t = 0; t <= 4; t++) {
      var tick = document.createElement("span");
      tick.className = "tick";
      tick.style.left = (t * 25) + "%";
      if (t === 4) { tick.style.left = "auto"; tick.style.right = "4px"; }
      tick.textContent = fmtDuration(Math.round(total * t / 4));
      ticks.appendChild(tick);
    }
    axis.appendChild(axisName);
    axis.appendChild(ticks);
    root.appendChild(axis);
    var spacer = document.createElement("div");
    spacer.className = "wf-spacer";
    root.appendChild(spacer);

    var active = n ? 0 : -1; // index into rows
    var drawn = Object.create(null);

    function rowEl(idx, pos) {
      var r = rows[idx];
      var el = document.createElement("div");
      var cls = "wf-row";
      if (r[KIND] === "e") cls += " ev";
      if (r[STATUS] === 1) cls += " err";
      if (r[STATUS] === 2) cls += " running";
      if (r[CRIT]) cls += " crit";
      if (r[CAT]) cls += " cat-" + r[CAT].replace(/[^a-z_]/g, "");
      if (idx === active) cls += " active";
      el.className = cls;
      el.id = "wf-" + idx;
      el.setAttribute("role", "treeitem");
      el.setAttribute("aria-level", String(depth[idx] + 1));
      el.setAttribute("aria-selected", idx === active ? "true" : "false");
      if (size[idx] > 1) el.setAttribute("aria-expanded", collapsed[idx] ? "false" : "true");
      el.style.top = pos * ROW + "px";
      el.dataset.i = idx;
      var name = document.createElement("div");
      name.className = "wf-name";
      name.style.paddingLeft = (4 + Math.min(depth[idx], 40) * 14) + "px";
      var toggle = document.createElement("span");
      toggle.className = "wf-toggle";
      toggle.setAttribute("aria-hidden", "true");
      toggle.textContent = size[idx] > 1 ? (collapsed[idx] ? "▸" : "▾") : "";
      name.appendChild(toggle);
      var label = document.createElement("span");
      label.className = "wf-label";
      label.textContent = r[NAME] || "(unnamed)";
      name.appendChild(label);
      if (collapsed[idx] && size[idx] > 1) {
        var more = document.createElement("span");
        more.className = "wf-hidden-n";
        more.textContent = "+" + (size[idx] - 1);
        name.appendChild(more);
      }
      el.title = (r[NAME] || "") + " — " + (r[KIND] === "e" ? r[LEVEL] : fmtDuration(r[DUR])) + (r[CRIT] ? " — critical path" : "") + (r[STATUS] === 1 ? " — error" : "");
      var track = document.createElement("div");
      track.className = "wf-track";
      var bar = document.createElement("div");
      bar.className = "wf-barline";
      var left = r[START] / total * 100;
      var dur = r[DUR] < 0 ? total - r[START] : r[DUR];
      bar.style.left = left + "%";
      if (r[KIND] !== "e") bar.style.width = Math.max(dur / total * 100, 0.15) + "%";
      track.appendChild(bar);
      if (r[KIND] !== "e") {
        var d = document.createElement("span");
        d.className = "wf-dur";
        d.textContent = fmtDuration(r[DUR]);
        var right = left + dur / total * 100;
        if (right < 80) d.style.left = "calc(" + right + "% + 4px)";
        else d.style.right = "calc(" + (100 - left) + "% + 4px)";
        track.appendChild(d);
      }
      el.appendChild(name);
      el.appendChild(track);
      return el;
    }

    function draw() {
      var top = root.scrollTop;
      var height = root.clientHeight;
      var first = Math.max(0, Math.floor((top - 20) / ROW) - 10);
      var last = Math.min(visible.length, Math.ceil((top + height) / ROW) + 10);
      var keep = Object.create(null);
      for (var pos = first; pos < last; pos++) {
        var idx = visible[pos];
        var key = idx + ":" + pos + ":" + collapsed[idx] + ":" + (idx === active);
        keep[key] = true;
        if (!drawn[key]) {
          var el = rowEl(idx, pos);
          spacer.appendChild(el);
          drawn[key] = el;
        }
      }
      for (var k in drawn) {
        if (!keep[k]) { drawn[k].remove(); delete drawn[k]; }
      }
      if (active >= 0) root.setAttribute("aria-activedescendant", "wf-" + active);
    }

    function redrawAll() {
      for (var k in drawn) drawn[k].remove();
      drawn = Object.create(null);
      rebuild();
      draw();
    }

    function posOf(idx) { return visible.indexOf(idx); }

    function scrollTo(idx) {
      var pos = posOf(idx);
      if (pos < 0) return;
      // Rows sit below the 20px axis.
      var y = pos * ROW;
      if (y < root.scrollTop) root.scrollTop = y;
      else if (y + ROW + 20 > root.scrollTop + root.clientHeight) root.scrollTop = y + ROW + 20 - root.clientHeight;
    }

    var detail = document.getElementById("detail");
    // The events a span holds (its direct children in the outline).
    function eventsOf(idx) {
      var out = [];
      for (var i = idx + 1; i < idx + size[idx]; i += size[i]) {
        if (rows[i][KIND] === "e") out.push(i);
      }
      return out;
    }
    function open(idx) {
      var id = rows[idx][ID];
      if (!id || !detail) return;
      var events = rows[idx][KIND] === "s" ? eventsOf(idx) : [];
      loadInto(detail, "/records/" + id).then(function () {
        if (!events.length) return;
        var section = document.createElement("section");
        section.className = "span-events";
        var h = document.createElement("h3");
        h.textContent = "Events in this span (" + events.length + ")";
        section.appendChild(h);
        var list = document.createElement("ol");
        events.forEach(function (e) {
          var li = document.createElement("li");
          var badge = document.createElement("span");
          badge.className = "badge level-" + String(rows[e][LEVEL]).toLowerCase();
          badge.textContent = rows[e][LEVEL];
          var a = document.createElement("a");
          a.href = "/records/" + rows[e][ID];
          a.textContent = rows[e][NAME];
          li.appendChild(badge);
          li.appendChild(document.createTextNode(" +" + fmtDuration(rows[e][START] - rows[idx][START]) + " "));
          li.appendChild(a);
          list.appendChild(li);
        });
        section.appendChild(list);
        var article = detail.querySelector("article.record");
        (article || detail).insertBefore(section, article ? article.querySelector("dl.facts:not(.usage)") : null);
      });
    }

    function setActive(idx, andOpen) {
      if (idx < 0 || idx >= n) return;
      active = idx;
      scrollTo(idx);
      for (var k in drawn) drawn[k].remove();
      drawn = Object.create(null);
      draw();
      if (andOpen) open(idx);
    }

    function toggle(idx, collapse) {
      if (size[idx] <= 1) return false;
      var want = collapse === undefined ? !collapsed[idx] : collapse;
      if (collapsed[idx] === (want ? 1 : 0)) return false;
      collapsed[idx] = want ? 1 : 0;
      redrawAll();
      return true;
    }

    spacer.addEventListener("click", function (e) {
      var el = e.target.closest(".wf-row");
      if (!el) return;
      var idx = Number(el.dataset.i);
      if (e.target.classList.contains("wf-toggle")) { toggle(idx); setActive(idx, false); return; }
      root.focus({ preventScroll: true });
      setActive(idx, true);
    });
    spacer.addEventListener("dblclick", function (e) {
      var el = e.target.closest(".wf-row");
      if (el) toggle(Number(el.dataset.i));
    });
    root.addEventListener("keydown", function (e) {
      if (active < 0) return;
      var pos = posOf(active);
      switch (e.key) {
        case "ArrowDown": if (pos + 1 < visible.length) setActive(visible[pos + 1], false); break;
        case "ArrowUp": if (pos > 0) setActive(visible[pos - 1], false); break;
        case "PageDown": setActive(visible[Math.min(visible.length - 1, pos + Math.floor(root.clientHeight / ROW))], false); break;
        case "PageUp": setActive(visible[Math.max(0, pos - Math.floor(root.clientHeight / ROW))], false); break;
        case "Home": setActive(visible[0], false); break;
        case "End": setActive(visible[visible.length - 1], false); break;
        case "ArrowRight":
          if (!toggle(active, false) && size[active] > 1) setActive(active + 1, false);
          break;
        case "ArrowLeft":
          if (!toggle(active, true) && rows[active][PARENT] >= 0) setActive(rows[active][PARENT], false);
          break;
        case "Enter": case " ": open(active); break;
        default: return;
      }
      e.preventDefault();
    });
    var pending = false;
    root.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; draw(); });
    });
    window.addEventListener("resize", draw);
    var expand = document.getElementById("wf-expand");
    var collapse = document.getElementById("wf-collapse");
    var errors = document.getElementById("wf-errors");
    if (expand) expand.addEventListener("click", function () { collapsed.fill(0); redrawAll(); });
    if (collapse) collapse.addEventListener("click", function () {
      for (var i = 0; i < n; i++) collapsed[i] = depth[i] >= 1 && size[i] > 1 ? 1 : 0;
      redrawAll();
    });
    if (errors) errors.addEventListener("change", function () { errorsOnly = errors.checked; redrawAll(); });

    rebuild();
    draw();
    // The time from navigation until the waterfall is drawn (the benchmark reads it).
    requestAnimationFrame(function () {
      performance.mark("waterfall-drawn");
      root.dataset.drawn = "true";
    });
  }

  // ---- The live tail ----------------------------------------------------------
  function liveTail() {
    var box = document.getElementById("live");
    var tbody = document.getElementById("record-rows");
    var status = document.getElementById("live-status");
    if (!box || !tbody) return;
    var source = null;
    var received = 0;

    function cell(text, cls) {
      var td = document.createElement("td");
      if (cls) td.className = cls;
      td.textContent = text;
      return td;
    }

    function row(r) {
      var tr = document.createElement("tr");
      tr.className = "level-" + String(r.level).toLowerCase() + " fresh";
      var time = document.createElement("td");
      time.className = "time";
      var a = document.createElement("a");
      a.href = "/records/" + r.id;
      a.textContent = String(r.ts).slice(5, 10) + " " + String(r.ts).slice(11, 23);
      a.title = r.ts;
      a.addEventListener("click", function (e) {
        var detail = document.getElementById("detail");
        if (!detail) return;
        e.preventDefault();
        loadInto(detail, a.getAttribute("href"));
      });
      time.appendChild(a);
      tr.appendChild(time);
      var lv = document.createElement("td");
      var badge = document.createElement("span");
      badge.className = "badge level-" + String(r.level).toLowerCase();
      badge.textContent = r.level;
      lv.appendChild(badge);
      tr.appendChild(lv);
      var kind = { event: "event", span_start: "start", span_end: "end" }[r.kind] || r.kind;
      tr.appendChild(cell(kind, "opt"));
      tr.appendChild(cell(r.name || ""));
      tr.appendChild(cell(r.target || "", "opt"));
      var msg = r.message || "";
      if (msg.length > 300) msg = msg.slice(0, 300) + "…";
      tr.appendChild(cell(msg, "message-cell"));
      tr.appendChild(cell(r.duration_ns != null ? fmtDuration(Math.round(r.duration_ns / 1000)) : "", "num"));
      var run = (r.scope && r.scope.run_id) || r.run_id || "";
      var runCell = cell("", "opt id");
      if (run) {
        var ra = document.createElement("a");
        ra.href = "/runs/" + encodeURIComponent(run);
        ra.textContent = run;
        runCell.appendChild(ra);
      }
      tr.appendChild(runCell);
      return tr;
    }

    function start() {
      source = new EventSource(box.dataset.stream, { withCredentials: true });
      status.textContent = "connecting…";
      source.addEventListener("ready", function () { status.textContent = "live: new records appear at the top"; });
      source.addEventListener("record", function (e) {
        var r;
        try { r = JSON.parse(e.data); } catch (err) { return; }
        // The reader's place is kept: the browser anchors the scroll position to what
        // is on screen, so rows added above it do not move it.
        tbody.insertBefore(row(r), tbody.firstChild);
        received++;
        status.textContent = "live: " + received + " new";
        while (tbody.children.length > 1000) tbody.removeChild(tbody.lastChild);
      });
      source.addEventListener("end", function (e) {
        try { status.textContent = "stream ended: " + JSON.parse(e.data).message; } catch (err) { /* keep */ }
      });
      source.onerror = function () { status.textContent = "reconnecting…"; };
    }

    function stop() {
      if (source) source.close();
      source = null;
      status.textContent = "";
    }

    box.addEventListener("change", function () { if (box.checked) start(); else stop(); });
    if (box.checked) start();
  }

  // ---- Charts (uPlot) ----------------------------------------------------------
  var COLORS = { all: "#6b95c9", warn: "#c98e3c", error: "#b3261e", errors: "#b3261e", runs: "#1f5f99",
    "input tokens": "#1f5f99", "output tokens": "#8e6bc9", cost: "#1f7a3a", p50: "#1f5f99", p95: "#c4410c" };
  function charts() {
    var box = document.querySelector(".charts[data-src]");
    if (!box || !window.uPlot) return;
    var made = [];
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (list) {
        list.forEach(function (data) {
          var fig = document.createElement("figure");
          fig.className = "chart";
          fig.id = data.id;
          var cap = document.createElement("figcaption");
          cap.textContent = data.title;
          if (data.empty) {
            var none = document.createElement("span");
            none.className = "muted";
            none.textContent = " (nothing in this range)";
            cap.appendChild(none);
          }
          var plot = document.createElement("div");
          plot.className = "chart-plot";
          plot.setAttribute("role", "img");
          plot.setAttribute("aria-label", data.title);
          fig.appendChild(cap);
          fig.appendChild(plot);
          box.appendChild(fig);
          var series = [{}].concat(data.labels.map(function (label) {
            var c = COLORS[label] || "#555";
            return { label: label, stroke: c, width: 1.5, fill: label === "all" || label === "runs" ? c + "22" : undefined };
          }));
          var u = new window.uPlot({
            width: Math.max(plot.clientWidth, 200), height: 150, series: series,
            axes: [{ stroke: "#5c6166" }, { stroke: "#5c6166", size: 56 }],
            cursor: { drag: { x: false, y: false } }
          }, [data.t].concat(data.series), plot);
          made.push([u, plot]);
        });
        box.dataset.drawn = "true";
      })
      .catch(function (e) { box.textContent = "The charts could not be loaded (" + e + ")."; });
    window.addEventListener("resize", function () {
      made.forEach(function (m) { m[0].setSize({ width: Math.max(m[1].clientWidth, 200), height: 150 }); });
    });
  }

  // Exception trends: each hour's bar as tall as its share of the busiest hour.
  function bars() {
    document.querySelectorAll(".bars .bar[data-h]").forEach(function (b) {
      b.style.height = Math.min(Number(b.dataset.h) || 0, 100) + "%";
    });
  }

  function ready() {
    bars();
    waterfall();
    liveTail();
    charts();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
