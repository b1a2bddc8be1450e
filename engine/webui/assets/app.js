// saker web UI. Every piece of event content (rules, outputs, field values, hostnames, tags)
// is attacker-controlled: it is only ever inserted with textContent or as attribute values
// through the DOM API, never as HTML. The Content-Security-Policy allows this script only.
"use strict";

const PRIORITIES = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];
const RANGES = [["5m", "5 minutes"], ["15m", "15 minutes"], ["1h", "1 hour"], ["6h", "6 hours"], ["24h", "24 hours"],
  ["7d", "7 days"], ["30d", "30 days"], ["", "everything"]];
const FILTERS = ["priority", "rule", "source", "hostname", "tags", "filter", "since"];

/** el builds an element; children are nodes or strings (inserted as text). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

function prioClass(p) { return "p-" + String(p || "").toLowerCase().replace(/[^a-z]/g, ""); }

function fmtTime(t) {
  const d = new Date(t);
  if (isNaN(d)) return String(t || "");
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

function setMain(...nodes) {
  const m = document.getElementById("main");
  m.replaceChildren(...nodes);
}

function showError(err) {
  setMain(el("p", { class: "error", role: "alert" }, "Error: " + (err && err.message ? err.message : err)));
}

// ---- dashboard ----------------------------------------------------------------------

function bars(title, results, linkParam, since, top) {
  const entries = Object.entries(results || {}).sort((a, b) => b[1] - a[1]).slice(0, top || 10);
  const max = entries.length ? entries[0][1] : 1;
  const list = el("ul", { class: "bars" });
  for (const [name, n] of entries) {
    const bar = el("span", { class: "bar" });
    bar.style.width = Math.max(1, Math.round(100 * n / max)) + "%";
    const href = "/ui/events" + query({ [linkParam]: name, since });
    const label = el("a", { class: "label" + (linkParam === "priority" ? " badge " + prioClass(name) : ""), href, title: name }, name || "(none)");
    list.append(el("li", {}, bar, label, el("span", { class: "n" }, n.toLocaleString())));
  }
  if (!entries.length) list.append(el("li", { class: "muted" }, "no events"));
  return el("section", { class: "card" }, el("h2", {}, title), list);
}

function timeline(data) {
  const buckets = data.buckets || [];
  let max = 1;
  for (const b of buckets) {
    let s = 0;
    for (const n of Object.values(b.counts)) s += n;
    max = Math.max(max, s);
  }
  const chart = el("div", { class: "timeline", role: "img", "aria-label": "events over time by priority" });
  for (const b of buckets) {
    const col = el("div", { class: "col" });
    let total = 0;
    for (const p of PRIORITIES.slice().reverse()) {
      const n = b.counts[p] || 0;
      if (!n) continue;
      total += n;
      const seg = el("div", { class: "seg " + prioClass(p) });
      seg.style.height = (100 * n / max) + "%";
      col.append(seg);
    }
    col.title = fmtTime(b.start) + ": " + total + " events";
    chart.append(col);
  }
  const legend = el("div", { class: "legend" }, PRIORITIES.map((p) => el("span", { class: prioClass(p) }, p)));
  const first = buckets.length ? fmtTime(buckets[0].start) : "";
  return el("section", { class: "card wide" }, el("h2", {}, "Timeline by priority"), chart,
    el("div", { class: "muted" }, first ? "from " + first : ""), legend);
}

async function dashboard() {
  const params = new URLSearchParams(location.search);
  const since = params.has("since") ? params.get("since") : "24h";
  const select = el("select", { id: "range", "aria-label": "time range" },
    RANGES.map(([v, label]) => el("option", { value: v, selected: v === since }, label)));
  select.addEventListener("change", () => {
    history.replaceState(null, "", "/ui/?since=" + encodeURIComponent(select.value));
    render();
  });
  const body = el("div", { class: "grid" }, el("p", { class: "muted" }, "Loading…"));
  const total = el("span", { class: "muted" });
  setMain(el("h1", {}, "Dashboard ", total), el("form", { class: "filters" }, el("label", {}, "Time range", select)), body);
  async function render() {
    const s = select.value;
    const q = query({ since: s });
    try {
      const [prio, rule, source, host, tags, tl] = await Promise.all([
        api("/api/v1/events/count/priority" + q), api("/api/v1/events/count/rule" + q),
        api("/api/v1/events/count/source" + q), api("/api/v1/events/count/hostname" + q),
        api("/api/v1/events/count/tags" + q), api("/api/v1/events/timeline" + query({ since: s, buckets: 60 }))]);
      total.textContent = "— " + (prio.statistics.all || 0).toLocaleString() + " events";
      body.replaceChildren(timeline(tl), bars("By priority", prio.results, "priority", s, 8),
        bars("Top rules", rule.results, "rule", s, 10), bars("By source", source.results, "source", s, 10),
        bars("By hostname", host.results, "hostname", s, 10), bars("By tag", tags.results, "tags", s, 15));
    } catch (err) {
      body.replaceChildren(el("p", { class: "error", role: "alert" }, "Error: " + err.message));
    }
  }
  await render();
  // Live: the counts follow new events (polling keeps no connection open).
  setInterval(() => { if (!document.hidden) render(); }, 10000);
}

// ---- events -------------------------------------------------------------------------

function eventRow(e) {
  const link = el("a", { href: "/ui/events/" + encodeURIComponent(e.uuid || "") }, fmtTime(e.time));
  return el("tr", { class: "ev" },
    el("td", { class: "time" }, link),
    el("td", { class: "badge " + prioClass(e.priority) }, e.priority),
    el("td", {}, e.rule),
    el("td", { class: "hide-narrow" }, e.source),
    el("td", { class: "hide-narrow" }, e.hostname),
    el("td", { class: "output" }, e.output),
    el("td", { class: "hide-narrow" }, (e.tags || []).join(", ")));
}

async function events() {
  const params = new URLSearchParams(location.search);
  const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  const limit = Math.min(1000, Math.max(1, parseInt(params.get("limit") || "50", 10) || 50));
  const inputs = {};
  const field = (name, label, attrs) => {
    inputs[name] = el("input", Object.assign({ name, value: params.get(name) || "", autocomplete: "off" }, attrs || {}));
    return el("label", {}, label, inputs[name]);
  };
  const prio = el("select", { name: "priority" }, el("option", { value: "" }, "any"),
    PRIORITIES.map((p) => el("option", { value: p.toLowerCase(), selected: (params.get("priority") || "").toLowerCase() === p.toLowerCase() }, p)));
  inputs.priority = prio;
  const since = el("select", { name: "since" },
    RANGES.map(([v, label]) => el("option", { value: v, selected: (params.get("since") || "") === v }, label)));
  inputs.since = since;
  const form = el("form", { class: "filters", role: "search" },
    el("label", {}, "Priority", prio), field("rule", "Rule"), field("source", "Source"), field("hostname", "Hostname"),
    field("tags", "Tags"), field("filter", "Text", { type: "search", placeholder: "words…" }),
    el("label", {}, "Since", since), el("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = {};
    for (const k of FILTERS) next[k] = inputs[k].value.trim();
    location.assign("/ui/events" + query(next));
  });
  const filters = {};
  for (const k of FILTERS) filters[k] = params.get(k) || "";
  const status = el("p", { class: "muted", role: "status" }, "Loading…");
  const tbody = el("tbody");
  const table = el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ["Time", "Priority", "Rule", "Source", "Hostname", "Output", "Tags"].map((h, i) =>
      el("th", { scope: "col", class: [3, 4, 6].includes(i) ? "hide-narrow" : "" }, h)))), tbody));
  const exp = el("span", {}, "Export: ",
    el("a", { href: "/api/v1/events/export" + query(Object.assign({ format: "jsonl" }, filters)), download: "saker-events.jsonl" }, "JSON lines"), " · ",
    el("a", { href: "/api/v1/events/export" + query(Object.assign({ format: "csv" }, filters)), download: "saker-events.csv" }, "CSV"));
  const live = el("input", { type: "checkbox", id: "live" });
  const pager = el("nav", { class: "pager", "aria-label": "pages" });
  setMain(el("h1", {}, "Events"), form, el("div", { class: "pager" }, status, exp,
    el("label", {}, live, " live")), table, pager);
  try {
    const res = await api("/api/v1/events/search" + query(Object.assign({}, filters, { page, limit })));
    const all = res.statistics.all || 0;
    status.textContent = all.toLocaleString() + (res.statistics.partial ? "+" : "") + " events" +
      (all ? ", " + ((page - 1) * limit + 1) + "–" + ((page - 1) * limit + (res.results || []).length) : "");
    for (const e of res.results || []) tbody.append(eventRow(e));
    if (!(res.results || []).length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No event matches.")));
    const pages = Math.max(1, Math.ceil(all / limit));
    const go = (p) => "/ui/events" + query(Object.assign({}, filters, { page: p, limit: limit === 50 ? "" : limit }));
    if (page > 1) pager.append(el("a", { href: go(page - 1), rel: "prev" }, "← newer"));
    pager.append(el("span", { class: "muted" }, "page " + page + " of " + pages));
    if (page < pages) pager.append(el("a", { href: go(page + 1), rel: "next" }, "older →"));
  } catch (err) {
    status.textContent = "";
    status.append(el("span", { class: "error", role: "alert" }, "Error: " + err.message));
  }
  // Live: new events matching nothing narrower than the page are prepended (only on page 1
  // without filters, where they belong).
  let stream = null;
  live.addEventListener("change", () => {
    if (live.checked && !stream) {
      stream = new EventSource("/api/v1/events/stream");
      stream.addEventListener("event", (m) => {
        let e;
        try { e = JSON.parse(m.data); } catch (_) { return; }
        const filtered = FILTERS.some((k) => k !== "since" && filters[k]);
        if (page === 1 && !filtered) tbody.prepend(eventRow(e));
      });
    } else if (!live.checked && stream) {
      stream.close();
      stream = null;
    }
  });
}

// ---- one event ----------------------------------------------------------------------

async function detail(uuid) {
  try {
    const res = await api("/api/v1/events/" + encodeURIComponent(uuid));
    const e = res.event || {};
    const fields = el("dl", { class: "fields" });
    const add = (k, v) => fields.append(el("dt", {}, k), el("dd", {}, v));
    add("uuid", e.uuid);
    add("time", fmtTime(e.time));
    add("stored", fmtTime(res.stored));
    fields.append(el("dt", {}, "priority"), el("dd", { class: "badge " + prioClass(e.priority) }, e.priority));
    add("rule", e.rule);
    add("source", e.source);
    add("hostname", e.hostname);
    add("tags", (e.tags || []).join(", "));
    add("outputs", (res.outputs || []).join(", ") || "none");
    const of = el("dl", { class: "fields" });
    for (const [k, v] of Object.entries(e.output_fields || {}).sort()) {
      of.append(el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v)));
    }
    setMain(el("p", {}, el("a", { href: "/ui/events" }, "← events")),
      el("h1", {}, e.rule),
      el("section", { class: "card" }, el("h2", {}, "Output"), el("p", {}, e.output)),
      el("div", { class: "grid" },
        el("section", { class: "card" }, el("h2", {}, "Event"), fields),
        el("section", { class: "card" }, el("h2", {}, "Output fields"), of)),
      el("section", { class: "card" }, el("h2", {}, "JSON"), el("pre", {}, JSON.stringify(e, null, 2))));
  } catch (err) {
    showError(err);
  }
}

// ---- outputs ------------------------------------------------------------------------

async function outputs() {
  const tbody = el("tbody");
  const store = el("p", { class: "muted" });
  setMain(el("h1", {}, "Outputs"), el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ["Output", "State", "Queue", "In flight", "Delivered", "Failed", "Retried", "Dead-lettered", "Redelivered", "Last success", "Last error"]
      .map((h) => el("th", { scope: "col" }, h)))), tbody)), store);
  async function render() {
    try {
      const res = await api("/api/v1/outputs");
      tbody.replaceChildren(...(res.outputs || []).map((o) => el("tr", {},
        el("td", {}, o.name), el("td", { class: "state-" + o.state }, o.state),
        el("td", {}, o.queue_depth + " / " + o.queue_size), el("td", {}, o.in_flight),
        el("td", {}, o.delivered), el("td", {}, o.failed), el("td", {}, o.retried), el("td", {}, o.dead_lettered), el("td", {}, o.redelivered),
        el("td", { class: "time" }, o.last_success ? fmtTime(o.last_success) : "never"),
        el("td", { class: "output" }, o.last_error ? (o.last_error_at ? fmtTime(o.last_error_at) + ": " : "") + o.last_error : ""))));
      const s = res.store || {};
      store.textContent = "Event store: " + (s.events || 0).toLocaleString() + " events, " + (s.queued || 0) +
        " queued, " + (s.dropped || 0) + " not stored (queue full)" + (s.oldest_ms ? ", oldest " + fmtTime(s.oldest_ms) : "");
    } catch (err) {
      store.textContent = "Error: " + err.message;
    }
  }
  await render();
  setInterval(() => { if (!document.hidden) render(); }, 5000);
}

// ---- routing ------------------------------------------------------------------------

function route() {
  const path = location.pathname.replace(/\/+$/, "");
  let page = "dashboard";
  let run = dashboard;
  const m = path.match(/^\/ui\/events\/([^/]+)$/);
  if (m) { page = "events"; run = () => detail(decodeURIComponent(m[1])); }
  else if (path === "/ui/events") { page = "events"; run = events; }
  else if (path === "/ui/outputs") { page = "outputs"; run = outputs; }
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  run().catch(showError);
}

route();
