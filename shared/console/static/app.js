// Excel Async Bridge operations console: plain script, no build step, no other origin (docs/console.md).
// Every call goes to the bridge's own API with the user's credential: the App Service Authentication session
// cookie in Azure (sent by the browser), or a function key / bearer token the user gives, kept in
// sessionStorage only. Data is written with textContent, never as HTML.
"use strict";

(function () {
  const API = location.pathname.replace(/\/console\/?$/, "");
  const STORE = window.sessionStorage;
  const QUERY = new URLSearchParams(location.search);
  const bounded = (name, low, high, fallback) => {
    const n = Number.parseInt(QUERY.get(name) || "", 10);
    return Number.isInteger(n) && n >= low && n <= high ? n : fallback;
  };
  const PAGE_SIZE = bounded("top", 1, 100, 100); // ?top= and ?pages= change how much one load reads
  const MAX_PAGES = bounded("pages", 1, 20, 5); // client-side filters look at up to 500 operations (newest first)
  const STATUS_COLORS = {
    succeeded: "#2e9e44", failed: "#c4314b", timedOut: "#e08a00", canceled: "#8a8886",
    running: "#185abd", notStarted: "#6ba4e7", waiting: "#b4c9e6",
  };
  const $ = (id) => document.getElementById(id);
  const state = { rows: [], next: null, current: null, refreshTimer: null };

  // --- credential --------------------------------------------------------------------------------------
  function takeCredentialFromFragment() {
    // `#key=...&token=...` (a fragment never reaches the server): stored for this tab, then removed from the URL.
    const hash = location.hash.replace(/^#/, "");
    if (!/(^|&)(key|token)=/.test(hash)) return;
    const params = new URLSearchParams(hash);
    if (params.get("key")) STORE.setItem("eab.key", params.get("key"));
    if (params.get("token")) STORE.setItem("eab.token", params.get("token"));
    STORE.setItem("eab.set", "1");
    history.replaceState(null, "", location.pathname + location.search + "#list");
  }

  function headers() {
    const h = { Accept: "application/json" };
    const key = STORE.getItem("eab.key");
    const token = STORE.getItem("eab.token");
    if (key) h["x-functions-key"] = key;
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }

  async function api(method, path) {
    const response = await fetch(API + "/" + path, { method, headers: headers(), credentials: "same-origin" });
    let body = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) body = await response.json();
    if (response.status === 401 || response.status === 403) {
      showSignin(true);
      throw new Error("The API refused the credential (" + response.status + "): give a function key or token.");
    }
    showSignin(false);
    return { status: response.status, body };
  }

  function showSignin(show) {
    $("signin").hidden = !show;
  }

  // --- helpers -----------------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { hour12: false });
  }

  function say(text, isError) {
    const m = $("message");
    m.hidden = !text;
    m.textContent = text || "";
    m.className = isError ? "error" : "";
  }

  function statusBadge(status) {
    return el("span", { class: "status " + status }, status);
  }

  function show(view) {
    for (const name of ["list", "operation", "charts"]) $("view-" + name).hidden = name !== view;
    $("nav-list").className = view === "list" || view === "operation" ? "active" : "";
    $("nav-charts").className = view === "charts" ? "active" : "";
  }

  // --- the list ------------------------------------------------------------------------------------------
  function filters() {
    return {
      status: $("f-status").value,
      action: $("f-action").value,
      workbook: $("f-workbook").value.trim().toLowerCase(),
      from: $("f-from").value ? new Date($("f-from").value).getTime() : null,
      to: $("f-to").value ? new Date($("f-to").value).getTime() : null,
    };
  }

  function matches(op, f) {
    // status is filtered by the API (the owner index holds it); action, workbook and time here, over the pages.
    if (f.action && op.action !== f.action) return false;
    if (f.workbook && !(op.workbook || "").toLowerCase().includes(f.workbook)) return false;
    const created = new Date(op.createdAt).getTime();
    if (f.from !== null && created < f.from) return false;
    if (f.to !== null && created > f.to) return false;
    return true;
  }

  async function fetchPages(status, from, pages) {
    let path = from ? relative(from) : "operations?top=" + PAGE_SIZE + (status ? "&status=" + encodeURIComponent(status) : "");
    const found = [];
    let next = null;
    for (let i = 0; i < pages && path; i++) {
      const { status: code, body } = await api("GET", path);
      if (code !== 200) throw new Error((body && (body.detail || body.title)) || "The list failed (" + code + ")");
      found.push(...body.value);
      next = body.nextLink || null;
      path = next ? relative(next) : null;
    }
    return { found, next };
  }

  function relative(link) {
    // nextLink is absolute; keep the call on this origin and route prefix
    const url = new URL(link, location.href);
    return url.pathname.replace(/^.*?\/operations/, "operations") + url.search;
  }

  async function loadList(more) {
    show("list");
    const f = filters();
    try {
      const { found, next } = await fetchPages(f.status, more ? state.next : null, MAX_PAGES);
      state.rows = more ? state.rows.concat(found) : found;
      state.next = next;
      fillActions(state.rows);
      renderRows(state.rows.filter((op) => matches(op, f)), f);
      say("");
    } catch (exc) {
      say(exc.message, true);
    }
  }

  function fillActions(rows) {
    const select = $("f-action");
    const known = new Set(Array.from(select.options).map((o) => o.value));
    for (const action of new Set(rows.map((r) => r.action).filter(Boolean))) {
      if (!known.has(action)) select.append(el("option", {}, action));
    }
  }

  function renderRows(rows) {
    const body = $("operations").tBodies[0];
    body.replaceChildren();
    for (const op of rows) {
      const tr = el(
        "tr",
        { "data-id": op.id, "data-status": op.status },
        el("td", {}, when(op.createdAt)),
        el("td", {}, statusBadge(op.status)),
        el("td", {}, op.action || "(tracked)"),
        el("td", { class: "workbook", title: op.workbook }, op.workbook),
        el("td", {}, op.pollCount),
        el("td", {}, op.webhook && op.webhook.state !== "none" ? op.webhook.state + " (" + op.webhook.attempts + ")" : ""),
        el("td", {}, when(op.completedAt)),
        el("td", {}, el("code", {}, op.id)),
      );
      tr.addEventListener("click", () => { location.hash = "op=" + op.id; });
      body.append(tr);
    }
    $("list-summary").textContent =
      rows.length + " shown of " + state.rows.length + " loaded" + (state.next ? " (more available)" : "");
    $("more").hidden = !state.next;
  }

  // --- one operation --------------------------------------------------------------------------------------
  async function loadOperation(id) {
    show("operation");
    clearTimeout(state.refreshTimer);
    let answer;
    try {
      answer = await api("GET", "operations/" + encodeURIComponent(id));
    } catch (exc) {
      say(exc.message, true);
      return;
    }
    // failOnError records that failed come back as a problem with the record in `operation`
    const op = answer.body && (answer.body.operation || (answer.body.id ? answer.body : null));
    $("op-found").hidden = !op;
    $("op-notfound").hidden = !!op;
    if (!op) {
      $("op-notfound-id").textContent = id;
      if (answer.status !== 404) say((answer.body && answer.body.title) || "Could not read it (" + answer.status + ")", true);
      else say("");
      return;
    }
    say("");
    state.current = op;
    renderOperation(op);
    const busy = ["waiting", "notStarted", "running"].includes(op.status) || (op.webhook && op.webhook.state === "pending");
    if (busy && location.hash === "#op=" + op.id) state.refreshTimer = setTimeout(() => loadOperation(op.id), 1500);
  }

  function renderOperation(op) {
    $("op-status").replaceChildren(statusBadge(op.status));
    $("op-status").className = "";
    $("op-action").textContent = op.action || "(tracked)";
    $("op-id").textContent = op.id;
    const facts = [
      ["Workbook", op.workbook], ["Owner", op.owner], ["Client reference", op.clientReference],
      ["Created", when(op.createdAt)], ["Updated", when(op.updatedAt)], ["Completed", when(op.completedAt)],
      ["Polls", op.pollCount], ["Expires", when(op.expiresAt)],
      ["Webhook", op.webhook ? op.webhook.state + (op.webhook.attempts ? ", " + op.webhook.attempts + " attempt(s)" : "") : ""],
    ];
    $("op-facts").replaceChildren(...facts.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const active = ["waiting", "notStarted", "running"].includes(op.status);
    $("op-cancel").disabled = !active && !(op.webhook && op.webhook.state === "pending");
    $("op-redeliver").disabled = active || !(op.links && op.links.redeliver) || (op.webhook && op.webhook.state === "pending");
    $("op-timeline").replaceChildren(...timeline(op));
    $("op-outcome").replaceChildren(outcome(op));
  }

  function timeline(op) {
    const items = [{ at: op.createdAt, text: "created (" + (op.action || "tracked") + ")", kind: "created" }];
    for (const e of op.history || []) {
      if (e.type === "status") {
        items.push({ at: e.at, kind: "status", bad: ["failed", "timedOut"].includes(e.status),
          text: "status " + e.status + (e.polls !== undefined ? " after " + e.polls + " poll(s)" : "") + (e.code ? " — " + e.code : "") });
      } else if (e.type === "webhook") {
        items.push({ at: e.at, kind: "webhook", bad: e.outcome !== "delivered",
          text: "webhook attempt " + e.attempt + ": " + e.outcome + (e.statusCode ? " (HTTP " + e.statusCode + ")" : "") +
            (e.error ? " — " + e.error : "") + (e.nextAttemptAt ? "; next at " + when(e.nextAttemptAt) : "") });
      } else if (e.type === "redeliver") {
        items.push({ at: e.at, kind: "redeliver", text: "redelivery requested (attempt " + e.attempt + " queued)" });
      } else if (e.type === "webhookStopped") {
        items.push({ at: e.at, kind: "webhook", bad: true, text: "webhook deliveries stopped by the caller" });
      }
    }
    if (op.webhook && op.webhook.state === "pending" && op.webhook.nextAttemptAt) {
      items.push({ at: op.webhook.nextAttemptAt, kind: "pending", text: "webhook attempt " + (op.webhook.attempts + 1) + " pending" });
    }
    items.push({ at: null, kind: "polls", text: op.pollCount + " poll(s) of Graph so far" });
    return items.map((item) => el("li", { class: (item.bad ? "bad " : "") + "ev-" + item.kind },
      item.at ? el("time", { datetime: item.at }, when(item.at)) : null, item.text));
  }

  function outcome(op) {
    if (op.error) {
      const list = el("ul", { class: "chain" });
      let e = op.error;
      for (let depth = 0; e && depth < 10; depth++) {
        list.append(el("li", {}, el("code", {}, e.code || "error"), " ", e.message || ""));
        e = e.innerError || e.innererror || (Array.isArray(e.details) ? e.details[0] : null);
      }
      return list;
    }
    if (op.result !== null && op.result !== undefined) return el("pre", {}, JSON.stringify(op.result, null, 2));
    return el("p", { class: "muted" }, op.status === "succeeded" ? "No result body." : "Not finished yet.");
  }

  async function act(method, suffix, done) {
    const op = state.current;
    if (!op) return;
    try {
      const { status, body } = await api(method, "operations/" + op.id + suffix);
      if (status >= 400) say((body && (body.title + (body.detail ? ": " + body.detail : ""))) || "Refused (" + status + ")", true);
      else say(done);
    } catch (exc) {
      say(exc.message, true);
    }
    await loadOperation(op.id);
  }

  // --- charts -------------------------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function loadCharts() {
    show("charts");
    try {
      const [durations, ops] = await Promise.all([api("GET", "durations"), fetchPages("", null, MAX_PAGES)]);
      if (durations.status !== 200) throw new Error("Durations could not be read (" + durations.status + ")");
      $("durations").replaceChildren(...durationCharts(durations.body.value));
      $("outcomes").replaceChildren(outcomeChart(ops.found));
      say("");
    } catch (exc) {
      say(exc.message, true);
    }
  }

  function durationCharts(summaries) {
    if (!summaries.length) return [el("p", { class: "muted" }, "No finished operations yet.")];
    const width = 720, height = 64, left = 10, right = 10;
    return summaries.map((s) => {
      const top = Math.max(s.max, 1) * 1.05;
      const x = (v) => left + (v / top) * (width - left - right);
      const chart = svg("svg", { width, height: height + 18, viewBox: "0 0 " + width + " " + (height + 18), role: "img",
        "aria-label": s.action + " durations" });
      chart.append(svg("line", { x1: left, x2: width - right, y1: height, y2: height, stroke: "#c8cdd4" }));
      s.durations.forEach((v, i) => {
        const y = 8 + ((i * 37) % (height - 16)); // spread the dots so equal durations stay visible
        chart.append(svg("circle", { cx: x(v), cy: y, r: 3.5, fill: "#185abd", "fill-opacity": 0.55 }, undefined));
      });
      for (const [name, v, color] of [["p50", s.p50, "#2e9e44"], ["p90", s.p90, "#c4314b"]]) {
        chart.append(svg("line", { x1: x(v), x2: x(v), y1: 2, y2: height, stroke: color, "stroke-width": 2 }));
        chart.append(svg("text", { x: x(v) + 3, y: 12 + (name === "p90" ? 12 : 0) }, name + " " + v + " s"));
      }
      chart.append(svg("text", { x: left, y: height + 14 }, "0 s"));
      chart.append(svg("text", { x: width - right - 60, y: height + 14 }, top.toFixed(1) + " s"));
      const title = s.action + (s.workbookKey ? " · workbook " + s.workbookKey.slice(0, 8) : " · all workbooks") +
        " — " + s.count + " run(s), sample of " + s.durations.length;
      return el("div", { class: "chart durations", "data-action": s.action }, el("h4", {}, title), chart);
    });
  }

  function outcomeChart(ops) {
    if (!ops.length) return el("p", { class: "muted" }, "No operations yet.");
    const buckets = new Map();
    for (const op of ops) {
      const hour = op.createdAt.slice(0, 13); // YYYY-MM-DDTHH (UTC)
      const bucket = buckets.get(hour) || {};
      bucket[op.status] = (bucket[op.status] || 0) + 1;
      buckets.set(hour, bucket);
    }
    const hours = Array.from(buckets.keys()).sort();
    const statuses = Object.keys(STATUS_COLORS);
    const peak = Math.max(...hours.map((h) => Object.values(buckets.get(h)).reduce((a, b) => a + b, 0)));
    const width = 720, height = 160, bottom = 30, bar = Math.min(48, (width - 40) / hours.length - 6);
    const chart = svg("svg", { width, height, viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "outcomes" });
    hours.forEach((hour, i) => {
      let y = height - bottom;
      const x0 = 30 + i * (bar + 6);
      for (const status of statuses) {
        const n = buckets.get(hour)[status] || 0;
        if (!n) continue;
        const h = (n / peak) * (height - bottom - 14);
        y -= h;
        const rect = svg("rect", { x: x0, y, width: bar, height: h, fill: STATUS_COLORS[status], "data-status": status });
        rect.append(svg("title", {}, hour + ":00Z " + status + ": " + n));
        chart.append(rect);
      }
      chart.append(svg("text", { x: x0, y: height - bottom + 14 }, hour.slice(5, 10) + " " + hour.slice(11) + "h"));
    });
    chart.append(svg("text", { x: 2, y: 12 }, String(peak)));
    const legend = el("div", { class: "legend" }, ...statuses.map((s) => {
      const swatch = el("i", {});
      swatch.style.backgroundColor = STATUS_COLORS[s];
      return el("span", {}, swatch, s);
    }));
    return el("div", { class: "chart outcomes" }, chart, legend);
  }

  // --- routing ------------------------------------------------------------------------------------------
  function route() {
    const hash = location.hash.replace(/^#/, "");
    if (hash.startsWith("op=")) loadOperation(decodeURIComponent(hash.slice(3)));
    else if (hash === "charts") loadCharts();
    else loadList(false);
  }

  document.addEventListener("DOMContentLoaded", () => {
    takeCredentialFromFragment();
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      STORE.setItem("eab.key", $("signin-key").value.trim());
      STORE.setItem("eab.token", $("signin-token").value.trim());
      $("signin-key").value = $("signin-token").value = "";
      showSignin(false);
      route();
    });
    $("signout").addEventListener("click", () => {
      STORE.removeItem("eab.key");
      STORE.removeItem("eab.token");
      state.rows = [];
      state.next = null;
      state.current = null;
      clearTimeout(state.refreshTimer);
      $("operations").tBodies[0].replaceChildren(); // nothing read with the forgotten credential stays on screen
      $("op-found").hidden = true;
      showSignin(true);
    });
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      if (location.hash !== "#list") location.hash = "list";
      else loadList(false);
    });
    $("f-open-go").addEventListener("click", () => {
      const id = $("f-open").value.trim();
      if (id) location.hash = "op=" + encodeURIComponent(id);
    });
    $("more").addEventListener("click", () => loadList(true));
    $("op-refresh").addEventListener("click", () => state.current && loadOperation(state.current.id));
    $("op-cancel").addEventListener("click", () => act("DELETE", "", "Canceled."));
    $("op-redeliver").addEventListener("click", () => act("POST", "/webhook/redeliver", "Webhook queued for redelivery."));
    window.addEventListener("hashchange", () => {
      if (/(^#|&)(key|token)=/.test(location.hash)) {
        takeCredentialFromFragment(); // replaces the hash with #list without another hashchange
        showSignin(false);
      }
      route();
    });
    route();
  });
})();
