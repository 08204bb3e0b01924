// iomt-ids dashboard: polls api/dashboard every 2 s and draws inline SVG charts. No external code.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const POLL_MS = 2000;
  const KEY_STORE = "iomt-ids-api-key";
  const rowsHistory = [];
  let timer = null;

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function fmt(n) { return typeof n === "number" ? n.toLocaleString("en-US") : (n === null || n === undefined ? "–" : String(n)); }
  function num(x, digits) { return typeof x === "number" ? x.toFixed(digits) : "–"; }
  function sci(x) { return typeof x === "number" ? (x !== 0 && Math.abs(x) < 0.01 ? x.toExponential(2) : x.toFixed(4)) : "–"; }

  // The key: from the URL fragment (never sent to the server) or this tab's sessionStorage.
  (function takeKeyFromFragment() {
    const m = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
    if (m) {
      sessionStorage.setItem(KEY_STORE, decodeURIComponent(m[1]));
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  })();

  function barsChart(container, pairs, opts) {
    clear(container);
    if (!pairs.length) { container.appendChild(el("p", { class: "muted" }, "none yet")); return; }
    const rowH = 22, labelW = opts.labelW || 130, width = 560, valueW = 70;
    const height = pairs.length * rowH + 4;
    const max = Math.max(...pairs.map((p) => p[1]), 1);
    const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": opts.title });
    pairs.forEach(([label, value], i) => {
      const y = i * rowH + 2;
      const g = el("svg:g", { class: "bar-row", "data-label": label, "data-value": value });
      g.appendChild(el("svg:text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, label));
      const w = Math.max(1, ((width - labelW - valueW) * value) / max);
      g.appendChild(el("svg:rect", { class: "bar", x: labelW, y: y + 3, width: w, height: rowH - 6, rx: 2 }));
      g.appendChild(el("svg:text", { x: labelW + w + 6, y: y + 15, class: "value" }, fmt(value)));
      svg.appendChild(g);
    });
    container.appendChild(svg);
  }

  function columnsChart(container, points, opts) {
    clear(container);
    if (!points.length) { container.appendChild(el("p", { class: "muted" }, "none yet")); return; }
    const width = 900, height = 180, left = 46, bottom = 22, top = 8;
    const max = Math.max(...points.map((p) => p.value), 1);
    const plotW = width - left - 8, plotH = height - bottom - top;
    const step = plotW / points.length;
    const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": opts.title });
    svg.appendChild(el("svg:line", { class: "axis", x1: left, y1: top + plotH, x2: width - 8, y2: top + plotH }));
    svg.appendChild(el("svg:text", { x: left - 6, y: top + 10, "text-anchor": "end" }, fmt(max)));
    svg.appendChild(el("svg:text", { x: left - 6, y: top + plotH, "text-anchor": "end" }, "0"));
    points.forEach((p, i) => {
      const h = (plotH * p.value) / max;
      const rect = el("svg:rect", {
        class: "bar", x: left + i * step + 1, y: top + plotH - h, width: Math.max(1, step - 2), height: h,
        "data-label": p.label, "data-value": p.value,
      });
      rect.appendChild(el("svg:title", {}, `${p.label}: ${fmt(p.value)}`));
      svg.appendChild(rect);
    });
    const first = points[0].label, last = points[points.length - 1].label;
    svg.appendChild(el("svg:text", { x: left, y: height - 5 }, first));
    if (points.length > 1) svg.appendChild(el("svg:text", { x: width - 8, y: height - 5, "text-anchor": "end" }, last));
    container.appendChild(svg);
  }

  function lineChart(container, values, title) {
    clear(container);
    if (values.length < 2) { container.appendChild(el("p", { class: "muted" }, "collecting…")); return; }
    const width = 560, height = 120, pad = 6;
    const min = Math.min(...values), max = Math.max(...values, min + 1);
    const x = (i) => pad + ((width - 2 * pad) * i) / (values.length - 1);
    const y = (v) => height - pad - ((height - 2 * pad) * (v - min)) / (max - min);
    const d = values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
    svg.appendChild(el("svg:path", { class: "line", d }));
    svg.appendChild(el("svg:text", { x: pad, y: 12 }, `${fmt(min)} … ${fmt(max)}`));
    container.appendChild(svg);
  }

  function dl(node, entries) {
    clear(node);
    for (const [k, v] of entries) {
      if (v === undefined || v === null || v === "") continue;
      node.appendChild(el("dt", {}, k));
      node.appendChild(el("dd", {}, v));
    }
  }

  function renderWarnings(alerts) {
    const box = $("warnings");
    clear(box);
    const stats = alerts && alerts.stats;
    const items = stats ? stats.warnings.slice() : [];
    if (stats && stats.site_adapted === false && !items.length) items.push("model not adapted to this site (iomt-ids adapt)");
    if (!items.length) { box.hidden = true; return; }
    box.appendChild(el("div", {}, "Warnings from the detector" + (stats.timestamp ? ` (${stats.timestamp})` : "")));
    const ul = el("ul", { id: "warning-list" });
    items.forEach((w) => ul.appendChild(el("li", { class: "warning" }, w)));
    box.appendChild(ul);
    box.hidden = false;
  }

  function renderAlerts(a) {
    for (const id of ["alerts-panel", "categories-panel", "sources-panel", "latest-panel"]) $(id).hidden = !a;
    if (!a) return;
    $("alerts-file").textContent = a.exists ? a.file : `${a.file} (waiting for the file)`;
    $("total-alerts").textContent = fmt(a.total_alerts);
    $("alert-lines").textContent = fmt(a.alert_lines);
    $("n-sources").textContent = fmt(a.n_sources);
    $("malformed").textContent = fmt(a.malformed);
    columnsChart($("rate-chart"), a.rate.map((r) => ({ label: r.minute.replace("T", " "), value: r.alerts })),
      { title: "alerts per minute" });
    barsChart($("category-chart"), a.categories, { title: "alerts per category" });
    barsChart($("source-chart"), a.sources, { title: "alerts per source host" });
    const body = $("latest").tBodies[0];
    clear(body);
    for (const r of a.latest) {
      const tr = el("tr", { class: "alert-row" });
      tr.appendChild(el("td", { class: "time" }, r.timestamp));
      const src = r.src_port !== null && r.src_port !== undefined ? `${r.src_ip}:${r.src_port}` : r.src_ip;
      const dst = r.dest_port !== null && r.dest_port !== undefined ? `${r.dest_ip}:${r.dest_port}` : r.dest_ip;
      tr.appendChild(el("td", { class: "flow", "data-src": r.src_ip }, `${src} → ${dst}` + (r.proto ? ` ${r.proto}` : "")));
      tr.appendChild(el("td", { class: "category" }, r.category + (r.summary ? " (summary)" : "")));
      tr.appendChild(el("td", { class: `severity sev${r.severity}` }, r.severity));
      tr.appendChild(el("td", { class: "score" }, num(r.score, 3)));
      tr.appendChild(el("td", { class: "count" }, fmt(r.count)));
      const ex = el("td", { class: "explanation" });
      r.explanation.forEach((line) => ex.appendChild(el("div", {}, line)));
      tr.appendChild(ex);
      body.appendChild(tr);
    }
  }

  function renderTraffic(t) {
    $("traffic-panel").hidden = !t;
    if (!t) return;
    $("requests").textContent = fmt(t.requests);
    $("predict-requests").textContent = fmt(t.predict_requests);
    $("rows-scored").textContent = fmt(t.rows_scored);
    $("errors").textContent = fmt(t.errors);
    rowsHistory.push(t.rows_scored);
    if (rowsHistory.length > 90) rowsHistory.shift();
    lineChart($("rows-chart"), rowsHistory, "rows scored");
  }

  function renderCard(card, last) {
    const panel = $("card-panel");
    if (!card && !last) { panel.hidden = true; return; }
    panel.hidden = false;
    if (!card) {
      dl($("card"), [["model", last.model], ["version", last.model_version], ["task", last.task && `${last.task}-class`],
        ["site", last.site], ["note", "from the latest alert; pass --model DIR for the full card"]]);
      $("site").hidden = true;
      return;
    }
    if (card.error) { dl($("card"), [["error", card.error]]); $("site").hidden = true; return; }
    const metrics = Object.entries(card.metrics || {}).map(([k, v]) => `${k} ${num(v, 4)}`).join(", ");
    dl($("card"), [["model", card.name], ["version", card.version], ["base version", card.base_version],
      ["task", card.task && `${card.task}-class`], ["classes", (card.classes || []).join(", ")],
      ["release", card.release], ["test metrics", metrics]]);
    const site = card.site;
    $("site").hidden = !site;
    if (!site) return;
    dl($("site-summary"), [["calibration", site.calibration_seconds !== null ? `${num(site.calibration_seconds, 1)} s of normal traffic` : null],
      ["false alarms / h target", site.false_alarms_per_hour_target]]);
    const body = $("streams").tBodies[0];
    clear(body);
    for (const [w, s] of Object.entries(site.streams || {})) {
      const tr = el("tr", { class: "stream" });
      for (const v of [`W=${w}`, num(s.threshold, 3), sci(s.alpha_target), sci(s.alpha_bound), fmt(s.false_alarms_per_hour_bound)]) {
        tr.appendChild(el("td", {}, v));
      }
      body.appendChild(tr);
    }
    const rec = site.validation_recall || {};
    const pair = (k) => (rec.before && rec.after ? `${num(rec.before[k], 4)} → ${num(rec.after[k], 4)}` : null);
    dl($("recall"), [["attack recall", pair("attack_recall")], ["benign recall", pair("benign_recall")],
      ["accuracy", pair("accuracy")], ["attack recall drop", rec.attack_recall_drop !== undefined ? num(rec.attack_recall_drop, 4) : null],
      ["", rec.before ? null : "not fine-tuned (no validation recall)"]]);
  }

  async function poll() {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) headers["X-API-Key"] = key;
    try {
      const r = await fetch("api/dashboard", { headers, cache: "no-store" });
      if (r.status === 401) {
        $("keyform").hidden = false;
        setStatus(key ? "wrong API key" : "API key needed", true);
        return;
      }
      if (!r.ok) { setStatus(`error ${r.status}`, true); return; }
      const data = await r.json();
      $("keyform").hidden = true;
      renderWarnings(data.alerts);
      renderAlerts(data.alerts);
      renderTraffic(data.traffic);
      renderCard(data.card, data.alerts && data.alerts.last_alert);
      const behind = data.alerts && data.alerts.behind ? " (catching up with the file…)" : "";
      setStatus(`live · updated ${data.generated}${behind}`, false);
      document.body.setAttribute("data-updated", data.generated);
    } catch (err) {
      setStatus("cannot reach the server; retrying", true);
    }
  }

  function setStatus(text, bad) {
    const s = $("status");
    s.textContent = text;
    s.className = bad ? "status error" : "status";
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("keyform").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY_STORE, $("keyinput").value);
      $("keyinput").value = "";
      poll();
    });
    poll();
    timer = setInterval(poll, POLL_MS);
  });
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();
