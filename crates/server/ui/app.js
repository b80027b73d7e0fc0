// Waymark's web UI: one small script, no dependencies. Pages live in the URL hash (#/page?params), so every view —
// filters included — can be shared as a link. Charts are SVG drawn here; each has a table view as its text
// alternative.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f6fed", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0891b2", "#dc2626", "#65a30d", "#ea580c", "#475569"];
const page = document.getElementById("page");

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

function el(tag, attrs, ...children) {
  const svg = ["svg", "g", "rect", "path", "text", "line", "title", "circle", "polyline", "defs", "marker"].includes(tag);
  const node = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const pct = (x) => (x === null || x === undefined ? "–" : x > 0 && x < 0.0005 ? "<0.1%" : (x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0) + "%");
function dur(secs) {
  if (secs === null || secs === undefined) return "–";
  if (secs < 90) return secs.toFixed(0) + "s";
  if (secs < 5400) return (secs / 60).toFixed(0) + "m";
  if (secs < 172800) return (secs / 3600).toFixed(1) + "h";
  return (secs / 86400).toFixed(1) + "d";
}
/// A stored time (µs since the epoch, or RFC 3339 text) as `YYYY-MM-DD HH:MM:SS` UTC.
function when(value) {
  if (value === null || value === undefined || value === "") return "";
  const date = typeof value === "number" ? new Date(value / 1000) : new Date(value);
  return isNaN(date) ? String(value) : date.toISOString().replace("T", " ").slice(0, 19);
}

/// A channel's (or device's) colour: fixed by its name, so it is the same on every page, in the report and whatever
/// a filter leaves out. The usual channel and device names have their own; any other name gets one by a hash of
/// its text (stable across pages and runs).
const FIXED_COLORS = {
  web: "#2f6fed", app: "#16a34a", ios_app: "#16a34a", android_app: "#ea580c", mobile: "#16a34a", email: "#f59e0b",
  call_center: "#db2777", phone: "#db2777", store: "#7c3aed", chat: "#0891b2", sms: "#ea580c", push: "#dc2626",
  social: "#475569", ads: "#a16207", desktop: "#2f6fed", tablet: "#0891b2", iphone: "#16a34a", android: "#65a30d",
  windows_web: "#2f6fed", mac_web: "#7c3aed", linux_web: "#475569",
};
function channelColor(name) {
  const key = String(name || "").toLowerCase();
  if (FIXED_COLORS[key]) return FIXED_COLORS[key];
  let hash = 2166136261;
  for (const c of key) hash = Math.imul(hash ^ c.codePointAt(0), 16777619) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, query] = hash.split("?");
  return { name: name || "overview", params: new URLSearchParams(query || "") };
}

function go(name, params) {
  const query = new URLSearchParams(params);
  for (const [key, value] of [...query]) if (value === "" || value === "undefined") query.delete(key);
  location.hash = "#/" + name + (query.toString() ? "?" + query : "");
}

// Filters shared by every page live in the hash too (f_from, f_to, f_channels, f_where).
function filterFromParams(params) {
  const filter = {};
  if (params.get("f_from")) filter.from = params.get("f_from");
  if (params.get("f_to")) filter.to = params.get("f_to");
  if (params.get("f_channels")) filter.channels = params.get("f_channels").split(",").map((s) => s.trim()).filter(Boolean);
  if (params.get("f_where")) filter.where = params.get("f_where").split(";").map((s) => s.trim()).filter(Boolean).map(parseCondition);
  return filter;
}

function parseCondition(text) {
  for (const [symbol, op] of [["!~", "not_contains"], ["!=", "!="], [">=", ">="], ["<=", "<="], ["=", "="], [">", ">"], ["<", "<"], ["~", "contains"]]) {
    const at = text.indexOf(symbol);
    if (at > 0) {
      const raw = text.slice(at + symbol.length).trim();
      const value = raw !== "" && !isNaN(Number(raw)) ? Number(raw) : raw === "true" ? true : raw === "false" ? false : raw;
      return { property: text.slice(0, at).trim(), op, value };
    }
  }
  if (text.endsWith("?")) return { property: text.slice(0, -1).trim(), op: "is_not_null" };
  return { property: text.replace(/^!/, "").trim(), op: "is_null" };
}

function keepFilters(params) {
  const current = route().params;
  const out = new URLSearchParams(params);
  for (const key of ["f_from", "f_to", "f_channels", "f_where"]) if (current.get(key)) out.set(key, current.get(key));
  return out;
}

// The key the person signed in with: kept for this browser tab's session (sessionStorage), never in the URL.
const KEY_STORAGE = "waymark.key";
// Who is signed in ({role, name, open}), from /v1/session; null until asked.
let session = null;
// Set when a request was refused for its key, even if the page caught that error to show the rest.
let signInProblem = null;

class SignInNeeded extends Error {}

/// fetch() with the signed-in key; a 401 forgets the key and shows the login page.
async function authFetch(path, init = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  const headers = { ...(init.headers || {}) };
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401 && !window.WAYMARK_REPORT) {
    const body = await response.json().catch(() => ({}));
    sessionStorage.removeItem(KEY_STORAGE);
    session = null;
    signInProblem = key ? body.message || "That key is no longer accepted." : "";
    throw new SignInNeeded(signInProblem);
  }
  return response;
}

const isAdmin = () => !!session && session.role === "admin";

async function api(path, body) {
  const response = await authFetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data;
  try { data = JSON.parse(text); } catch { data = { message: text }; }
  if (!response.ok) throw new Error(data.message || response.statusText);
  // What the filter cannot match (a property no event has, a value it never takes) is said above the page.
  (data.filter_notes || []).forEach((note) => filterNotes.add(note));
  return data;
}

/// Notes on the filters from the analyses of the page being drawn.
const filterNotes = new Set();

function showError(error) {
  page.replaceChildren(el("div", { class: "error", role: "alert" }, "Could not load this view: ", error.message));
}

function table(headers, rows, numeric = []) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: numeric.includes(i) ? "num" : null, scope: "col" }, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell, i) => el("td", { class: numeric.includes(i) ? "num" : null }, cell))))));
}

const tableView = (headers, rows, numeric) => el("details", { class: "table" }, el("summary", {}, "Show as a table"), table(headers, rows, numeric));

let stepNames = null;
async function steps() {
  if (!stepNames) {
    const counts = await api("/v1/analyses/step-counts", {});
    stepNames = counts.steps.map((s) => s.step);
  }
  return stepNames;
}

function stepList(id) {
  const list = el("datalist", { id });
  steps().then((names) => names.forEach((name) => list.append(el("option", { value: name }))));
  return list;
}

const customerLink = (id) => (window.WAYMARK_REPORT
  ? el("span", { "data-customer": id }, id)
  : el("a", { href: "#/customer?" + new URLSearchParams({ id }), "data-customer": id }, id));

// ---------------------------------------------------------------------------------------------------------------
// Charts

/// Charts scale with their card, but never below the width at which their smallest text would be under 11 px:
/// there the card scrolls sideways instead. Applied to every chart the page shows, drill-downs included.
function legibleCharts(root) {
  root.querySelectorAll("svg.chart:not([data-fitted])").forEach((svg) => {
    const box = svg.viewBox.baseVal;
    if (!box || !box.width) return;
    let smallest = Infinity;
    svg.querySelectorAll("text").forEach((t) => { smallest = Math.min(smallest, parseFloat(getComputedStyle(t).fontSize) || 16); });
    if (smallest === Infinity) smallest = 11;
    svg.style.minWidth = `${Math.ceil((box.width * 11) / smallest)}px`;
    svg.dataset.fitted = "";
    if (svg.parentElement) svg.parentElement.classList.add("chart-holder");
  });
}
new MutationObserver(() => legibleCharts(page)).observe(page, { childList: true, subtree: true });

function svgChart(width, height, label) {
  return el("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
}

/// Stacked bars of events per day by channel (or by device: `key` picks the breakdown of each day).
function dayChart(days, channels, key = "channels", label = "Events per day by channel") {
  const width = 820, height = 240, left = 56, bottom = 28, top = 10;
  const svg = svgChart(width, height, label);
  const totals = days.map((day) => Object.values(day[key]).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const barWidth = (width - left - 10) / Math.max(1, days.length);
  for (let tick = 0; tick <= 4; tick++) {
    const y = top + (height - top - bottom) * (1 - tick / 4);
    svg.append(el("line", { x1: left, x2: width - 10, y1: y, y2: y, stroke: "#e2e6ee" }));
    svg.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6678" }, fmt(Math.round((max * tick) / 4))));
  }
  days.forEach((day, i) => {
    let y = height - bottom;
    for (const channel of channels) {
      const value = day[key][channel] || 0;
      if (!value) continue;
      const h = ((height - top - bottom) * value) / max;
      y -= h;
      svg.append(el("rect", { x: left + i * barWidth, y, width: Math.max(1, barWidth - 1), height: h, fill: channelColor(channel) },
        el("title", {}, `${day.day} · ${channel}: ${fmt(value)} events`)));
    }
    if (i % Math.ceil(days.length / 8) === 0) {
      svg.append(el("text", { x: left + i * barWidth, y: height - 8, "font-size": 11, fill: "#5d6678" }, day.day.slice(5)));
    }
  });
  return svg;
}

function legend(names) {
  return el("div", { class: "legend" }, names.map((name) => el("span", {}, el("span", { class: "dot", style: `background:${channelColor(name)}` }), name)));
}

/// Horizontal bars: [{label, value, title}].
function hbars(items, label, format = fmt, left = 170) {
  const width = 350 + left, row = 26, fits = Math.floor(left / 6.6);
  const svg = svgChart(width, items.length * row + 6, label);
  const max = Math.max(1, ...items.map((item) => item.value));
  items.forEach((item, i) => {
    const y = i * row + 4;
    svg.append(el("text", { x: left - 8, y: y + 15, "text-anchor": "end", "font-size": 12 }, item.label.length > fits ? item.label.slice(0, fits - 1) + "…" : item.label));
    svg.append(el("rect", { x: left, y, width: ((width - left - 70) * item.value) / max, height: row - 8, rx: 3, fill: item.color || "#2f6fed" }, el("title", {}, item.title || `${item.label}: ${format(item.value)}`)));
    svg.append(el("text", { x: left + ((width - left - 70) * item.value) / max + 6, y: y + 15, "font-size": 12, fill: "#5d6678" }, format(item.value)));
  });
  return svg;
}

/// Sankey of a flows report: columns are levels, node height is customers, links are bands.
function sankey(report, onNode) {
  const width = 1320, height = 560, nodeWidth = 14, pad = 10, top = 24;
  const levels = report.depth + 1;
  const columnX = (level) => 20 + (level * (width - 260)) / Math.max(1, levels - 1);
  const svg = svgChart(width, height + top, "Flows: customers from step to step, with drop-off");
  const byLevel = [];
  for (const node of report.nodes) (byLevel[node.level] ||= []).push(node);
  const total = Math.max(1, report.customers);
  const position = {};
  byLevel.forEach((nodes, level) => {
    const usable = height - pad * (nodes.length - 1);
    let y = top;
    nodes.sort((a, b) => (a.kind === "drop_off") - (b.kind === "drop_off") || (a.kind === "other") - (b.kind === "other") || b.count - a.count);
    for (const node of nodes) {
      const h = Math.max(2, (usable * node.count) / total);
      position[node.id] = { x: columnX(level), y, h, out: y, in: y, node };
      y += h + pad;
    }
  });
  for (const link of report.links) {
    const source = position[link.source], target = position[link.target];
    if (!source || !target) continue;
    const h = Math.max(1, (source.h * link.count) / Math.max(1, source.node.count));
    const x0 = source.x + nodeWidth, x1 = target.x, y0 = source.out + h / 2, y1 = target.in + h / 2;
    source.out += h; target.in += h;
    const mid = (x0 + x1) / 2;
    const dropped = target.node.kind === "drop_off";
    svg.append(el("path", {
      d: `M${x0},${y0} C${mid},${y0} ${mid},${y1} ${x1},${y1}`, fill: "none",
      stroke: dropped ? "#fca5a5" : "#93c5fd", "stroke-opacity": 0.55, "stroke-width": h,
    }, el("title", {}, `${source.node.step} → ${target.node.step}: ${fmt(link.count)} customers (${pct(link.count / Math.max(1, source.node.count))} of ${source.node.step})`)));
  }
  for (const { x, y, h, node } of Object.values(position)) {
    const color = node.kind === "drop_off" ? "#dc2626" : node.kind === "other" ? "#94a3b8" : "#1d4ed8";
    const clickable = node.kind === "step";
    const group = el("g", { class: clickable ? "bar-click" : null, tabindex: clickable ? 0 : null, role: clickable ? "button" : null,
      "aria-label": clickable ? `Anchor the map on ${node.step}` : null,
      onclick: clickable ? () => onNode(node) : null, onkeydown: clickable ? (e) => e.key === "Enter" && onNode(node) : null });
    group.append(el("rect", { x, y, width: nodeWidth, height: h, fill: color, rx: 2 },
      el("title", {}, `${node.step}: ${fmt(node.count)} customers (${pct(node.count / total)} of those at the anchor)`)));
    if (h >= 11) {
      group.append(el("text", { x: x + nodeWidth + 5, y: y + Math.min(h / 2 + 4, 13), "font-size": 12, fill: "#1b2230" },
        `${node.step.length > 30 ? node.step.slice(0, 29) + "…" : node.step} · ${fmt(node.count)}`));
    }
    svg.append(group);
  }
  return svg;
}

/// Width of `text` in px at `font` (a CSS font shorthand), measured by the browser.
const textWidth = (() => {
  const context = document.createElement("canvas").getContext("2d");
  return (text, font) => {
    context.font = font + " " + getComputedStyle(document.body).fontFamily;
    return context.measureText(text).width;
  };
})();

/// The process map, laid out by dagre (vendor/dagre.js: a Sugiyama-style layered layout — ranks by network simplex,
/// crossings reduced by barycentre sweeps, coordinates by Brandes–Köpf). Steps run top to bottom in the order
/// customers first reach them (each transition's `precedence`), so the main path runs straight down and loops come back up as dashed
/// back edges; labels are laid out as nodes of their own, so no label overlaps a step or another label. Edge width
/// by frequency, colour by median time.
function processMap(map, shownEdges) {
  const edges = connected(map, shownEdges);
  const names = new Set();
  edges.forEach((e) => { names.add(e.from); names.add(e.to); });
  const maxCount = Math.max(1, ...edges.map((e) => e.count));
  const medians = edges.map((e) => e.median_secs).sort((a, b) => a - b);
  const slow = medians[Math.floor(medians.length * 0.9)] || 1;
  const colour = (secs) => {
    const t = Math.min(1, Math.log1p(secs) / Math.log1p(slow));
    return `hsl(${Math.round(140 - 140 * t)}, 70%, 36%)`;
  };
  const labelled = new Set([...edges].sort((x, y) => y.count - x.count).slice(0, 24));
  const graph = new dagre.graphlib.Graph({ multigraph: false });
  graph.setGraph({ rankdir: "TB", nodesep: 36, ranksep: 34, edgesep: 18, marginx: 20, marginy: 16, acyclicer: "greedy", ranker: "network-simplex" });
  // The greedy acyclicer breaks what cycles remain (precedence is not transitive) at their least frequent edges.
  graph.setDefaultEdgeLabel(() => ({}));
  const info = {};
  for (const n of names) {
    const count = map.steps[n] || 0;
    // Satisfaction on the step, when it is rated: the node says how many found it unhelpful.
    const rated = (map.feedback || {})[n];
    const unhelpful = rated && rated.helpful_rate !== undefined && rated.helpful_rate < 0.5;
    const satisfaction = rated ? [rated.helpful_rate !== undefined ? `${pct(rated.helpful_rate)} helpful` : null, rated.csat !== undefined ? `CSAT ${rated.csat.toFixed(0)}%` : null].filter(Boolean).join(" · ") : "";
    const sub = fmt(count) + (satisfaction ? " · " + satisfaction : "");
    const width = Math.ceil(Math.max(120, textWidth(n, "600 12px"), textWidth(sub, "12px")) + 22);
    info[n] = { count, rated, unhelpful, satisfaction, sub };
    graph.setNode(n, { width, height: 42 });
  }
  // A transition back to a step customers usually reach first (its `precedence` below one half) is laid out as its
  // reverse and drawn back up, so loops never bend the main path.
  const backwards = (e) => e.from !== e.to && e.precedence !== undefined && (e.precedence < 0.5 || (e.precedence === 0.5 && e.from > e.to));
  const reversed = new Set(edges.filter(backwards));
  // A pair drawn both ways is laid out once: the more frequent direction decides.
  const laidPairs = new Map();
  for (const e of edges) {
    const [v, w] = reversed.has(e) ? [e.to, e.from] : [e.from, e.to];
    const key = v + "\u0000" + w;
    (laidPairs.get(key) || laidPairs.set(key, []).get(key)).push(e);
  }
  for (const [key, pair] of laidPairs) {
    const [v, w] = key.split("\u0000");
    const texts = pair.filter((e) => labelled.has(e)).map((e) => `${reversed.has(e) ? "↑ " : ""}${fmt(e.count)} · ${dur(e.median_secs)}`);
    const text = texts.join("   ");
    const count = pair.reduce((a, e) => a + e.count, 0);
    // Frequent transitions weigh more: they are kept short and straight. A loop on one step keeps room beside it.
    const loop = v === w;
    graph.setEdge(v, w, { pair, weight: 1 + Math.round(100 * count / maxCount), minlen: 1, text,
      width: (text ? Math.ceil(textWidth(text, "12px")) + 8 : 0) + (loop ? 34 : 0), height: text || loop ? 16 : 0, labelpos: "r", labeloffset: 4 });
  }
  dagre.layout(graph);
  const size = graph.graph();
  // A loop's label is drawn beside its step, which may be further right than the layout reaches.
  let extent = size.width;
  for (const key of graph.edges()) {
    const laid = graph.edge(key);
    if (key.v !== key.w || !laid.text) continue;
    const node = graph.node(key.v);
    extent = Math.max(extent, node.x + node.width / 2 + 30 + textWidth(laid.text, "12px") + 6);
  }
  const svg = svgChart(Math.ceil(extent), Math.ceil(size.height), "Process map: steps and the transitions between them");
  svg.append(el("defs", {}, el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" },
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#64748b" }))));
  const labels = [];
  for (const key of graph.edges()) {
    const laid = graph.edge(key);
    if (!laid.pair || !laid.points) continue;
    if (key.v === key.w) {
      // A repeat of one step: a loop on the step's right side, its label beyond it.
      const e = laid.pair[0], node = graph.node(key.v), right = node.x + node.width / 2, y = node.y;
      svg.append(el("path", { d: `M${right},${y - 9} C${right + 30},${y - 18} ${right + 30},${y + 18} ${right},${y + 9}`, fill: "none", stroke: colour(e.median_secs),
        "stroke-width": 1 + 5 * Math.sqrt(e.count / maxCount), "stroke-opacity": 0.75, "marker-end": "url(#arrow)", "data-edge": `${e.from} → ${e.to}` },
        el("title", {}, `${e.from} again: ${fmt(e.count)} times, median ${dur(e.median_secs)}, mean ${dur(e.mean_secs)}, p90 ${dur(e.p90_secs)}`)));
      if (laid.text) labels.push(el("text", { x: right + 30, y: y + 4, "font-size": 12, fill: "#334155", class: "edge-label" }, laid.text));
      continue;
    }
    laid.pair.forEach((e, i) => {
      // Both directions of a pair share the route, side by side; a back edge runs it the other way.
      const shift = laid.pair.length > 1 ? (i === 0 ? -3 : 3) : 0;
      const points = laid.points.map((p) => ({ x: p.x + shift, y: p.y }));
      const w = 1 + 7 * Math.sqrt(e.count / maxCount);
      svg.append(el("path", { d: curve(reversed.has(e) ? points.reverse() : points), fill: "none", stroke: colour(e.median_secs), "stroke-width": w, "stroke-opacity": 0.75,
        "stroke-dasharray": reversed.has(e) ? "6 3" : null, "marker-end": "url(#arrow)", "data-edge": `${e.from} → ${e.to}` },
        el("title", {}, `${e.from} → ${e.to}: ${fmt(e.count)} times, median ${dur(e.median_secs)}, mean ${dur(e.mean_secs)}, p90 ${dur(e.p90_secs)}${reversed.has(e) ? " (back to an earlier step)" : ""}`)));
    });
    if (laid.text) labels.push(el("text", { x: laid.x, y: laid.y + 4, "text-anchor": "middle", "font-size": 12, fill: "#334155", class: "edge-label" }, laid.text));
  }
  for (const n of names) {
    const laid = graph.node(n), { count, rated, unhelpful, satisfaction, sub } = info[n];
    const x = laid.x - laid.width / 2, y = laid.y - laid.height / 2;
    svg.append(el("g", { "data-step": n, "data-y": Math.round(laid.y) },
      el("rect", { x, y, width: laid.width, height: laid.height, rx: 7, fill: unhelpful ? "#fff4ed" : "#fff", stroke: unhelpful ? "#c2410c" : "#1d4ed8", "stroke-width": 1.3 },
        el("title", {}, `${n}: ${fmt(count)} events` + (rated ? `; ${fmt(rated.responses)} answers rate it: ${satisfaction}` : ""))),
      el("text", { x: laid.x, y: y + 17, "text-anchor": "middle", "font-size": 12, "font-weight": 600 }, n),
      el("text", { x: laid.x, y: y + 33, "text-anchor": "middle", "font-size": 12, fill: unhelpful ? "#c2410c" : "#5d6678" }, sub)));
  }
  // Labels last: over the edges, on a white halo so a crossing edge does not run through the text.
  labels.forEach((label) => { label.setAttribute("paint-order", "stroke"); label.setAttribute("stroke", "#fff"); label.setAttribute("stroke-width", 4); svg.append(label); });
  return svg;
}

/// The transitions to draw: `shown`, and for every step they reach that journeys do not start at, its most frequent
/// transition from a step customers usually reach before it (by precedence), so no step floats unconnected at the top of the map —
/// the way Disco's path slider keeps every activity reachable.
function connected(map, shown) {
  const edges = [...shown], have = new Set(edges);
  const forward = (e) => e.from !== e.to && (e.precedence === undefined || e.precedence > 0.5);
  const incoming = new Map();
  for (const e of map.edges) {
    if (forward(e) && (!incoming.has(e.to) || incoming.get(e.to).count < e.count)) incoming.set(e.to, e);
  }
  const reached = (name) => edges.some((e) => e.to === name && forward(e));
  for (let changed = true; changed;) {
    changed = false;
    const names = new Set(edges.flatMap((e) => [e.from, e.to]));
    for (const name of names) {
      const steps = map.steps[name] || 0, starts = (map.start || {})[name] || 0;
      if (starts * 2 >= steps || reached(name)) continue;
      const e = incoming.get(name);
      if (e && !have.has(e)) { edges.push(e); have.add(e); changed = true; }
    }
  }
  return edges;
}

/// A smooth path through dagre's edge points (a Catmull-Rom spline as cubic Béziers).
function curve(points) {
  if (points.length < 3) return `M${points[0].x},${points[0].y} L${points[points.length - 1].x},${points[points.length - 1].y}`;
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 0; i < points.length - 1; i++) {
    const p0 = points[Math.max(0, i - 1)], p1 = points[i], p2 = points[i + 1], p3 = points[Math.min(points.length - 1, i + 2)];
    const c1 = { x: p1.x + (p2.x - p0.x) / 6, y: p1.y + (p2.y - p0.y) / 6 }, c2 = { x: p2.x - (p3.x - p1.x) / 6, y: p2.y - (p3.y - p1.y) / 6 };
    d += ` C${c1.x},${c1.y} ${c2.x},${c2.y} ${p2.x},${p2.y}`;
  }
  return d;
}

// ---------------------------------------------------------------------------------------------------------------
// Pages

const pages = {};

pages.overview = async ({ filter }) => {
  const [overview, friction] = await Promise.all([
    api("/v1/analyses/overview", { filter }),
    api("/v1/analyses/friction", { filter, top: 5 }).catch(() => null),
  ]);
  const channels = overview.channels.map((c) => c.channel);
  const devices = overview.devices.map((d) => d.device);
  const busiest = overview.days.reduce((best, day) => (day.customers > (best ? best.customers : -1) ? day : best), null);
  const stat = (value, label, id) => el("div", { class: "card stat", "data-stat": id }, el("b", {}, value), el("span", {}, label));
  return [
    el("h1", {}, "Overview"),
    el("p", { class: "lead" }, "Who your customers are, where they interact, and where they get stuck."),
    el("div", { class: "grid cols-4" },
      stat(fmt(overview.customers), "customers", "customers"),
      stat(fmt(overview.events), "events", "events"),
      stat(overview.goals.length ? pct(overview.goal_rate) : "–", overview.goals.length ? `reach ${overview.goals.join(" or ")} (${fmt(overview.goal_customers)})` : "no goal step found (Order Completed, Purchase, Signed Up, …)", "goal-rate"),
      stat(fmt(channels.length), "channels", "channels")),
    el("div", { class: "grid cols-2", style: "margin-top:14px" },
      el("div", { class: "card" }, el("h2", {}, "Events per day by channel"), legend(channels), dayChart(overview.days, channels),
        tableView(["day", "active customers", ...channels], overview.days.map((d) => [d.day, fmt(d.customers), ...channels.map((c) => fmt(d.channels[c] || 0))]), channels.map((_, i) => i + 1).concat([channels.length + 1])),
        devices.length ? [el("h2", { style: "margin-top:12px" }, "Events per day by device"), legend(devices), dayChart(overview.days, devices, "devices", "Events per day by device"),
          tableView(["day", ...devices], overview.days.map((d) => [d.day, ...devices.map((v) => fmt(d.devices[v] || 0))]), devices.map((_, i) => i + 1))] : null,
        busiest ? el("p", { class: "muted" }, `Busiest day: ${busiest.day}, ${fmt(busiest.customers)} active customers.`) : null),
      el("div", { class: "card" },
        el("h2", {}, "Customers by channel"),
        hbars(overview.channels.map((c) => ({ label: c.channel, value: c.customers, color: channelColor(c.channel) })), "Customers by channel"),
        tableView(["channel", "customers", "events"], overview.channels.map((c) => [c.channel, fmt(c.customers), fmt(c.events)]), [1, 2]),
        el("h2", { style: "margin-top:12px" }, "Customers by device"),
        overview.devices.length ? [hbars(overview.devices.map((d) => ({ label: d.device, value: d.customers })), "Customers by device"),
          tableView(["device", "customers"], overview.devices.map((d) => [d.device, fmt(d.customers)]), [1])] : el("p", { class: "muted" }, "No device information in these events."))),
    el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Top friction"),
      friction && friction.findings.length ? findings(friction.findings.slice(0, 5), friction.findings[0].impact) :
        el("p", { class: "empty" }, friction ? "No friction found." : ["Friction needs a goal: ", el("a", { href: "#/friction" }, "pick the step that is success"), "."])),
  ];
};

function findings(list, maxImpact) {
  return el("div", {}, list.map((f, i) => el("article", { class: "finding", "data-finding": f.kind },
    el("div", { class: "rank" }, i + 1),
    el("div", {},
      el("h3", {}, el("span", { class: "kind" }, f.kind.replace(/_/g, " ")), f.headline),
      el("p", {}, f.explanation),
      el("div", { class: "chips" }, el("span", { class: "muted" }, "customers: "),
        f.example_customers.slice(0, 6).map((id) => el("span", { class: "chip" }, customerLink(id))))),
    el("div", { class: "harm" }, el("div", { class: "muted legend-hint", title: HARM_LEGEND }, f.harm ? `harm ${fmt(Math.round(f.impact))}` : "no measurable harm"),
      el("div", { class: "impact", role: "img", "aria-label": `harm ${Math.round(f.impact)}`, title: HARM_LEGEND }, el("i", { style: `width:${(100 * f.impact) / Math.max(1, maxImpact)}%` })),
      el("div", { class: "muted", style: "margin-top:6px" }, `${fmt(f.customers)} customers${f.after_goal ? " · after the goal" : ""}`)))));
}

const HARM_LEGEND = "Harm = goals lost against comparable customers (those at the same step without it) + assisted contacts beyond theirs + customers affected beyond what is typical for this kind of signal. The bar compares findings.";

pages.friction = async ({ filter, params }) => {
  const goal = params.get("goal") || "";
  const segments = params.get("segment_by") || "";
  const request = { filter, top: Number(params.get("top") || 15) };
  if (goal) request.goals = [goal];
  if (segments) request.segment_by = segments.split(",").map((s) => s.trim()).filter(Boolean);
  let report = null, problem = null;
  try { report = await api("/v1/analyses/friction", request); } catch (error) { problem = error.message; }
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("friction", keepFilters(Object.fromEntries(new FormData(e.target)))); } },
    el("label", {}, "Goal", el("input", { name: "goal", value: goal || (report ? report.goals.join("") : ""), list: "friction-steps", size: 24, placeholder: "the step that is success" })),
    el("label", {}, "Where it concentrates (properties or traits)", el("input", { name: "segment_by", value: segments, size: 28, placeholder: "device, OS, region, country, plan" })),
    el("button", { type: "submit" }, "Show"), stepList("friction-steps"));
  if (!report) return [el("h1", {}, "Friction"), el("p", { class: "lead" }, "Friction is measured against a goal: type the step that counts as success above."), form, el("div", { class: "error", role: "alert" }, problem)];
  return [
    el("h1", {}, "Friction"),
    el("p", { class: "lead" }, `Where ${fmt(report.customers)} customers get stuck, ranked by harm (goal: ${report.goals.join(" or ")}; ${pct(report.goal_rate)} reach it). ${report.candidates} candidate findings; friction after the goal (delivery, activation, support) costs contacts and days, not goals.`),
    form,
    el("div", { class: "card" }, report.findings.length ? findings(report.findings, report.findings[0].impact) : el("p", { class: "empty" }, "No friction found for this selection.")),
  ];
};

pages.journeys = async ({ filter, params }) => {
  const names = await steps();
  const anchor = params.get("anchor") || names.find((n) => /login|start|search/i.test(n)) || names[0];
  const direction = params.get("direction") || "forward";
  const depth = Number(params.get("depth") || 4), top = Number(params.get("top") || 6);
  const report = await api("/v1/analyses/flows", { anchor, direction, depth, top, filter });
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); const d = new FormData(e.target); go("journeys", keepFilters(Object.fromEntries(d))); } },
    el("label", {}, "Anchor step", el("input", { name: "anchor", value: anchor, list: "steps-list", size: 28 })),
    el("label", {}, "Direction", el("select", { name: "direction" }, ["forward", "backward"].map((d) => el("option", { value: d, selected: d === direction }, d === "forward" ? "after the anchor" : "before the anchor")))),
    el("label", {}, "Depth", el("input", { name: "depth", type: "number", min: 1, max: 10, value: depth, style: "width:70px" })),
    el("label", {}, "Steps per level", el("input", { name: "top", type: "number", min: 1, max: 20, value: top, style: "width:70px" })),
    el("button", { type: "submit" }, "Show"), stepList("steps-list"));
  const onNode = (node) => go("journeys", keepFilters({ anchor: node.step, direction, depth, top }));
  return [
    el("h1", {}, "Journey map"),
    el("p", { class: "lead" }, `${fmt(report.customers)} customers ${direction === "forward" ? "after their first" : "before their last"} “${anchor}”. Click a step to anchor the map on it; red is where journeys end.`),
    ...(report.warnings || []).map((warning) => el("p", { class: "notice" }, warning)),
    form,
    el("div", { class: "card" }, report.customers ? sankey(report, onNode) : el("p", { class: "empty" }, `No customer has the step “${anchor}” in this selection.`),
      tableView(["level", "step", "customers"], report.nodes.map((n) => [n.level, n.step, fmt(n.count)]), [0, 2])),
  ];
};

pages.process = async ({ filter, params }) => {
  // Page and screen views are browsing, not process: hidden by default (one click shows them).
  const views = params.get("views") === "show" ? "show" : "hide";
  const scoped = views === "hide" ? { ...filter, step_rules: [{ match: "page:*", exclude: true }, { match: "screen:*", exclude: true }] } : filter;
  const map = await api("/v1/analyses/process-map", { filter: scoped, feedback: true, precedence: true });
  const coverage = Number(params.get("coverage") || 80);
  const total = map.edges.reduce((a, e) => a + e.count, 0);
  const kept = [];
  let covered = 0;
  for (const e of map.edges) { if (kept.length >= 4 && (100 * covered) / Math.max(1, total) >= coverage) break; kept.push(e); covered += e.count; }
  const shown = kept.slice(0, 60);
  const slider = el("input", { type: "range", min: 10, max: 100, step: 5, value: coverage, "aria-label": "Share of transitions shown",
    onchange: (e) => go("process", keepFilters({ coverage: e.target.value, views })) });
  const toggle = el("label", { style: "flex-direction:row;align-items:center" },
    el("input", { type: "checkbox", checked: views === "hide", onchange: (e) => go("process", keepFilters({ coverage, views: e.target.checked ? "hide" : "show" })) }),
    "Hide page and screen views");
  return [
    el("h1", {}, "Process map"),
    el("p", { class: "lead" }, `${fmt(map.cases)} journeys, ${fmt(map.events)} events, ${Object.keys(map.steps).length} steps, ${map.edges.length} transitions. Showing the ${shown.length} most frequent transitions (${pct(covered / Math.max(1, total))} of all).`),
    el("div", { class: "controls" }, el("label", {}, `Transitions shown: ${coverage}% coverage`, slider), toggle,
      el("div", { class: "legend" }, el("span", {}, "edge width = frequency"), el("span", { style: "color:hsl(140,70%,42%)" }, "■ fast"), el("span", { style: "color:hsl(70,70%,42%)" }, "■ medium"), el("span", { style: "color:hsl(0,70%,42%)" }, "■ slow (median time)"))),
    el("div", { class: "card", style: "overflow-x:auto" }, shown.length ? processMap(map, shown) : el("p", { class: "empty" }, "No transitions in this selection."),
      tableView(["from", "to", "count", "median", "mean", "p90"], map.edges.slice(0, 200).map((e) => [e.from, e.to, fmt(e.count), dur(e.median_secs), dur(e.mean_secs), dur(e.p90_secs)]), [2, 3, 4, 5])),
    await satisfactionCard(filter, views),
  ];
};

/// Satisfaction on every rated step ("was this helpful?", CSAT), least helpful first — page views included even
/// when the map hides them.
async function satisfactionCard(filter, views) {
  const report = await api("/v1/analyses/feedback", { filter, comments: 0, top: 40 }).catch(() => null);
  const rated = (report ? report.steps : []).map((s) => [s.step, s]).sort((a, b) => (a[1].helpful_rate ?? 2) - (b[1].helpful_rate ?? 2) || b[1].responses - a[1].responses);
  if (!rated.length) return null;
  const hidden = views === "hide" ? rated.filter(([step]) => /^(page|screen):/.test(step)).length : 0;
  return el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Satisfaction at each rated step, least helpful first"),
    hidden ? el("p", { class: "muted" }, `${hidden} of these are page or screen views, hidden from the map above (untick “Hide page and screen views” to place them).`) : null,
    table(["rated step", "answers", "helpful", "CSAT", "NPS"], rated.map(([step, m]) => [step, fmt(m.responses),
      m.helpful_rate === undefined ? "–" : el("span", { class: m.helpful_rate < 0.5 ? "badge bad" : null }, pct(m.helpful_rate)),
      m.csat === undefined ? "–" : m.csat.toFixed(0) + "%", m.nps === undefined ? "–" : m.nps.toFixed(0)]), [1, 2, 3, 4]),
    el("p", { class: "muted" }, el("a", { href: "#/feedback" }, "Comments and the measures' definitions on the Feedback page ›")));
}

pages.funnel = async ({ filter, params }) => {
  const names = await steps();
  const defaults = ["Added to Cart", "Checkout Started", "Order Completed"].filter((s) => names.includes(s));
  const chosen = (params.get("steps") || (defaults.length >= 2 ? defaults : names.slice(0, 3)).join(",")).split(",").map((s) => s.trim()).filter(Boolean);
  const windowText = params.get("window") || "7d", mode = params.get("mode") || "", breakdown = params.get("breakdown") || "";
  const body = { steps: chosen, window: windowText, modes: mode ? [mode] : [], filter };
  if (breakdown) body.breakdown = { property: breakdown };
  const report = await api("/v1/analyses/funnel", body);
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("funnel", keepFilters(Object.fromEntries(new FormData(e.target)))); } },
    el("label", {}, "Steps, in order (comma-separated)", el("input", { name: "steps", value: chosen.join(", "), size: 60, list: "steps-list" })),
    el("label", {}, "Window", el("input", { name: "window", value: windowText, size: 5 })),
    el("label", {}, "Mode", el("select", { name: "mode" }, ["", "strict_order", "strict_once", "strict_increase", "strict_deduplication", "any_order"].map((m) => el("option", { value: m, selected: m === mode }, m || "ordered")))),
    el("label", {}, "Breakdown by property", el("input", { name: "breakdown", value: breakdown, placeholder: "e.g. context.device.type", size: 22 })),
    el("button", { type: "submit" }, "Show"), stepList("steps-list"));
  const n = report.steps.length;
  const drill = el("div", { class: "drill", id: "drill" });
  const svg = funnelChart(report, (i) => go("funnel", keepFilters({ ...Object.fromEntries(params), drop: i + 1 })));
  const dropAt = Number(params.get("drop") || 0);
  if (dropAt >= 1 && dropAt <= n && report.steps[dropAt - 1].dropped > 0) showDrop(drill, report.steps[dropAt - 1], dropAt - 1, report.steps);
  const last = report.steps[n - 1];
  const histogram = timeHistogram(last);
  const parts = [

    el("h1", {}, "Funnels"),
    el("p", { class: "lead" }, `${fmt(report.total)} ${report.units}; ${fmt(report.steps[0].count)} reach step 1 and ${fmt(last.count)} convert (${pct(last.conversion)}) within ${windowText}. Click a drop-off to see who stopped and what they did next.`),
    ...(report.warnings || []).map((warning) => el("p", { class: "notice" }, warning)),
    form,
    el("div", { class: "grid cols-2" },
      el("div", { class: "card" }, svg, tableView(["step", "reached", "of step 1", "from previous", "dropped", "median time"], report.steps.map((s) => [s.name, fmt(s.count), pct(s.conversion), pct(s.step_conversion), fmt(s.dropped), s.time_to_convert ? dur(s.time_to_convert.median_secs) : "–"]), [1, 2, 3, 4, 5]), drill),
      el("div", { class: "card" }, el("h2", {}, `Time to convert (step 1 → ${last.name})`),
        last.time_to_convert ? el("p", { class: "muted" }, `median ${dur(last.time_to_convert.median_secs)} · mean ${dur(last.time_to_convert.mean_secs)} · p90 ${dur(last.time_to_convert.p90_secs)}`) : null, histogram)),
  ];
  if (report.breakdown) {
    parts.push(el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, `By ${report.breakdown.property}`),
      table(["value", ...report.steps.map((s) => s.name), "conversion"], report.breakdown.groups.map((g) => [g.value, ...g.counts.map(fmt), pct(g.conversion)]), report.steps.map((_, i) => i + 1).concat([n + 1]))));
  }
  return parts;
};

/// Funnel bars with conversion labels and a clickable drop-off under each step that loses customers.
function funnelChart(report, onDrop) {
  const width = 1000, height = 300, left = 20, barGap = 24;
  const n = report.steps.length;
  const barWidth = (width - left - barGap * n) / n;
  const first = Math.max(1, report.steps[0].count);
  const svg = svgChart(width, height + 40, "Funnel: customers reaching each step");
  report.steps.forEach((s, i) => {
    const x = left + i * (barWidth + barGap);
    const h = (height - 40) * (s.count / first);
    svg.append(el("rect", { x, y: 30 + (height - 40 - h), width: barWidth, height: h, rx: 4, fill: "#2f6fed" }, el("title", {}, `${s.name}: ${fmt(s.count)} (${pct(s.conversion)} of step 1)`)));
    svg.append(el("text", { x: x + barWidth / 2, y: 24 + (height - 40 - h), "text-anchor": "middle", "font-size": 13, "font-weight": 600 }, `${fmt(s.count)} · ${pct(s.conversion)}`));
    svg.append(el("text", { x: x + barWidth / 2, y: height + 8, "text-anchor": "middle", "font-size": 12 }, s.name.length > 26 ? s.name.slice(0, 25) + "…" : s.name));
    if (s.dropped > 0) {
      const group = el("g", { class: onDrop ? "bar-click" : null, tabindex: onDrop ? 0 : null, role: onDrop ? "button" : null,
        "aria-label": `${s.dropped} customers stopped after ${s.name}`,
        onclick: onDrop ? () => onDrop(i) : null, onkeydown: onDrop ? (e) => e.key === "Enter" && onDrop(i) : null });
      group.append(el("rect", { x: x + barWidth * 0.15, y: height + 16, width: barWidth * 0.7, height: 20, rx: 10, fill: "#fee2e2" }));
      group.append(el("text", { x: x + barWidth / 2, y: height + 30, "text-anchor": "middle", "font-size": 12, fill: "#991b1b" }, `${fmt(s.dropped)} stop here${onDrop ? " ▸" : ""}`));
      svg.append(group);
    }
  });
  return svg;
}

function timeHistogram(step) {
  return step.time_to_convert
    ? hbars(step.time_to_convert.histogram.filter((b) => b.count).map((b) => ({ label: b.le_secs ? "≤ " + dur(b.le_secs) : "longer", value: b.count })), "Time to convert histogram")
    : el("p", { class: "muted" }, "Nobody converted in this selection.");
}

function showDrop(container, step, index, steps) {
  const next = steps[index + 1], last = steps[steps.length - 1];
  const hints = [
    step.next_step_later && next ? `${fmt(step.next_step_later)} of them did ${next.name} later, outside the window or the funnel's order.` : null,
    step.last_step_later && index + 2 < steps.length ? `${fmt(step.last_step_later)} of them reached ${last.name} another way; the funnel does not count them as converted.` : null,
  ].filter(Boolean);
  container.replaceChildren(
    el("h2", {}, `${fmt(step.dropped)} customers stopped after step ${index + 1}, ${step.name}, within the window`),
    hints.length ? el("p", { class: "notice", "data-drop-hints": index + 1 }, hints.join(" ")) : null,
    el("p", { class: "muted" }, "Their next event:"),
    el("div", { class: "chips" }, step.next_steps.map((s) => el("span", { class: "chip" }, `${s.step} · ${fmt(s.count)}`))),
    el("p", { class: "muted", style: "margin-top:8px" }, "Some of them:"),
    el("div", { class: "chips", "data-dropped": index + 1 }, step.dropped_customers.map((id) => el("span", { class: "chip" }, customerLink(id)))));
  requestAnimationFrame(() => container.scrollIntoView({ block: "nearest" }));
}

/// The step rules a page's URL holds: `rules` (lines of PATTERN=NEW) and `exclude` (comma-separated patterns), as
/// the CLI's --step-rule and --exclude-step take them.
function stepRulesFromParams(params) {
  const rules = [];
  for (const pattern of (params.get("exclude") || "").split(",").map((p) => p.trim()).filter(Boolean)) rules.push({ match: pattern, exclude: true });
  for (const line of (params.get("rules") || "").split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.lastIndexOf("=");
    if (at > 0) rules.push({ match: line.slice(0, at).trim(), step: line.slice(at + 1).trim() });
  }
  return rules;
}

pages.variants = async ({ filter, params }) => {
  // Defaults that make web-scale data readable, each one click away: page and screen views hidden, repeats
  // collapsed, and as many variants as cover half of the journeys.
  const views = params.get("views") || "hide";
  const repeats = params.get("repeats") || "collapse";
  const coverage = Math.min(100, Math.max(5, Number(params.get("coverage") || 50)));
  const rules = stepRulesFromParams(params);
  const viewRules = views === "hide" ? [{ match: "page:*", exclude: true }, { match: "screen:*", exclude: true }]
    : views === "group" ? [{ regex: "^(page|screen):([^:]+):.*$", step: "$1:$2" }] : [];
  const scoped = { ...filter, step_rules: [...rules, ...viewRules], collapse_repeats: repeats === "collapse" };
  const [report, everyone] = await Promise.all([
    api("/v1/analyses/variants", { top: 200, coverage: coverage / 100, filter: scoped }),
    api("/v1/analyses/variants", { top: 1, filter }).catch(() => null),
  ]);
  const state = { views, repeats, coverage, rules: params.get("rules") || "", exclude: params.get("exclude") || "" };
  const change = (patch) => go("variants", keepFilters({ ...state, ...patch }));
  const covered = report.variants.length ? report.variants[report.variants.length - 1].coverage : 0;
  const left = everyone ? everyone.cases - report.cases : 0;
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); const data = new FormData(e.target); change({ rules: data.get("rules"), exclude: data.get("exclude") }); } },
    el("label", {}, `Variants shown: until ${coverage}% of journeys are covered`,
      el("input", { type: "range", min: 5, max: 100, step: 5, value: coverage, "aria-label": "Share of journeys the variants shown cover", onchange: (e) => change({ coverage: e.target.value }) })),
    el("label", {}, "Page and screen views",
      el("select", { name: "views", onchange: (e) => change({ views: e.target.value }) },
        [["hide", "hidden"], ["group", "grouped by section (text before the first “:”)"], ["show", "each page on its own"]].map(([v, t]) => el("option", { value: v, selected: v === views }, t)))),
    el("label", { style: "flex-direction:row;align-items:center" },
      el("input", { type: "checkbox", checked: repeats === "collapse", onchange: (e) => change({ repeats: e.target.checked ? "collapse" : "keep" }) }), "Collapse repeats (A A B reads A B)"),
    el("label", {}, "Leave out steps (patterns, comma-separated)", el("input", { name: "exclude", value: state.exclude, size: 26, placeholder: "Email Opened, page:Blog*" })),
    el("label", {}, "Step rules (one PATTERN=NEW per line)", el("textarea", { name: "rules", rows: 2, cols: 34, placeholder: "page:Product: *=Product page" }, state.rules)),
    el("button", { type: "submit" }, "Apply"));
  return [
    el("h1", {}, "Variants"),
    el("p", { class: "lead", "data-coverage": covered.toFixed(3) }, `${fmt(report.cases)} journeys follow ${fmt(report.n_variants)} distinct paths; the ${fmt(report.variants.length)} most frequent cover ${pct(covered)}.` +
      (left > 0 ? ` ${fmt(left)} journeys have no step left under these rules (only page views, say) and are not counted.` : "")),
    form,
    el("div", { class: "card" }, report.variants.length ? table(["#", "path", "journeys", "share", "coverage"], report.variants.map((v, i) => [i + 1,
      el("div", { class: "chips" }, v.steps.flatMap((s, j) => (j ? [el("span", { class: "chip arrow" }, "→"), el("span", { class: "chip" }, s)] : [el("span", { class: "chip" }, s)]))),
      fmt(v.count), pct(v.share), pct(v.coverage)]), [0, 2, 3, 4]) : el("p", { class: "empty" }, "No journeys in this selection."),
      report.variants.length >= 200 && covered < coverage / 100 ? el("p", { class: "muted" }, `The 200 most frequent variants cover ${pct(covered)}: collapse repeats, group or hide page views, or add step rules to merge similar steps.`) : null),
  ];
};

pages.retention = async ({ filter, params }) => {
  const names = await steps();
  const start = params.get("start") || names[0] || "";
  const returning = params.get("return") || start;
  const period = ["day", "week", "month"].includes(params.get("period")) ? params.get("period") : "week";
  const periods = Math.min(Math.max(Number(params.get("periods") || 8), 1), 52);
  const mode = params.get("mode") === "recurring" ? "recurring" : "first_time";
  const report = await api("/v1/analyses/retention", { start, return: returning, period, periods, mode, filter });
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("retention", keepFilters(Object.fromEntries(new FormData(e.target)))); } },
    el("label", {}, "Cohort step (first time)", el("input", { name: "start", value: start, list: "retention-steps", size: 28 })),
    el("label", {}, "Coming back means", el("input", { name: "return", value: returning, list: "retention-steps", size: 28 })),
    el("label", {}, "Period", el("select", { name: "period" }, ["day", "week", "month"].map((p) => el("option", { value: p, selected: p === period }, p)))),
    el("label", {}, "Periods", el("input", { name: "periods", type: "number", min: 1, max: 52, value: periods, style: "width:70px" })),
    el("label", { title: "First time: each customer in the cohort of their first start. Recurring (PostHog's default): each period's cohort is everyone who did the start step in it." }, "Cohorts",
      el("select", { name: "mode" }, [["first_time", "by first time"], ["recurring", "recurring (every period)"]].map(([v, t]) => el("option", { value: v, selected: v === mode }, t)))),
    el("button", { type: "submit" }, "Show"), stepList("retention-steps"));
  const offsets = Array.from({ length: report.periods + 1 }, (_, k) => k);
  // Period 0 is the cohort's own period, after the start step; the later columns are the ones that show loss.
  // The furthest period some cohort has reached, and how many did not come back in it.
  const reached = report.overall.map((rate, k) => [rate, k]).filter(([rate, k]) => k > 0 && rate !== null);
  const [lastRate, lastK] = reached.length ? reached[reached.length - 1] : [null, 0];
  const cell = (rate, customers, observed = true) => {
    if (!observed) return el("td", { class: "num muted", title: "this period has not happened yet in the data" }, "");
    if (rate === undefined || rate === null) return el("td", { class: "num muted", title: "no cohort has reached this period yet" }, "–");
    const shade = `rgba(47,111,237,${(0.08 + 0.8 * rate).toFixed(2)})`;
    return el("td", { class: "num heat", style: `background:${shade};color:${rate > 0.55 ? "#fff" : "inherit"}`, title: `${pct(rate)} of ${fmt(customers)} customers` }, pct(rate));
  };
  const matrix = el("table", { class: "retention", "data-retention": report.cohorts.length },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "cohort"), el("th", { class: "num", scope: "col" }, "customers"),
      offsets.map((k) => el("th", { class: "num", scope: "col" }, k ? `+${k} ${period}${k > 1 ? "s" : ""}` : "same " + period)))),
    el("tbody", {},
      report.cohorts.map((c) => el("tr", {}, el("th", { scope: "row" }, c.cohort), el("td", { class: "num" }, fmt(c.customers)), offsets.map((k) => cell(c.rates[k], c.customers, k <= c.observed_periods)))),
      el("tr", { class: "all" }, el("th", { scope: "row" }, "all cohorts"), el("td", { class: "num" }, fmt(report.customers)), offsets.map((k) => cell(report.overall[k], report.customers)))));
  return [
    el("h1", {}, "Retention"),
    el("p", { class: "lead" }, report.customers
      ? `${fmt(report.customers)} customers did “${start}” in ${report.cohorts.length} ${period}ly cohorts. ${lastK ? `${pct(1 - lastRate)} of the cohorts old enough did not come back (“${returning}”) in ${period} +${lastK}.` : ""}`
      : `No customer did “${start}” in this selection.`),
    ...(report.warnings || []).map((warning) => el("p", { class: "notice" }, warning)),
    form,
    el("div", { class: "card" }, report.cohorts.length ? [el("div", { class: "scroll" }, matrix), el("p", { class: "muted" }, `Each cell: the share of the cohort that did “${returning}” in that ${period} after its own (UTC; weeks start on Monday). Blank: the data does not reach that ${period} yet; “all cohorts” counts only the cohorts it reaches.`)] : el("p", { class: "empty" }, "No cohorts in this selection.")),
  ];
};

pages.customer = async ({ params }) => {
  const id = params.get("id") || "";
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("customer", keepFilters({ id: new FormData(e.target).get("id") })); } },
    el("label", {}, "Any identifier (user id or anonymous id)", el("input", { name: "id", value: id, size: 40, autofocus: true })),
    el("button", { type: "submit" }, "Find"));
  const parts = [el("h1", {}, "Customer"), el("p", { class: "lead" }, "One customer's journey across channels and devices, with feedback, identity links and what the models predict."), form];
  if (!id) return parts;
  let customer;
  try {
    customer = await api("/v1/customers/" + encodeURIComponent(id));
  } catch (error) {
    parts.push(el("p", { class: "error", role: "alert" }, error.message));
    return parts;
  }
  const devices = new Set(customer.events.map((e) => e.device).filter(Boolean));
  const [design, nba] = await Promise.all([conformanceCard(customer.customer_id, params.get("blueprint")), nbaCard(customer.customer_id, params.get("placement"))]);
  parts.push(el("div", { class: "grid cols-2" },
    el("div", { class: "card" }, el("h2", {}, `Timeline — ${fmt(customer.events.length)} events`),
      legend([...new Set(customer.events.map((e) => e.channel))]),
      el("ol", { class: "timeline", "data-customer-id": customer.customer_id }, customer.events.map((e) => {
        const p = e.properties || {};
        const feedback = feedbackBadges(e.feedback);
        return el("li", {}, el("span", { class: "muted" }, when(e.time)),
          el("span", {}, el("span", { class: "dot", style: `background:${channelColor(e.channel)}` }), e.channel),
          el("span", {}, el("b", {}, e.step), feedback, e.device ? el("span", { class: "muted" }, " · " + e.device) : null,
            e.feedback && e.feedback.rated_step ? el("span", { class: "muted" }, " · rates " + e.feedback.rated_step) : null,
            eventProperties(e.event_type === "identify" ? e.traits : p)));
      }))),
    el("div", {}, el("div", { class: "card" }, el("h2", {}, "Identity"),
      el("p", {}, el("b", {}, customer.customer_id), el("span", { class: "muted" }, ` · ${devices.size} device${devices.size === 1 ? "" : "s"}`)),
      table(["identifier"], customer.identifiers.map((i) => [typeof i === "string" ? i : `${i.kind}:${i.value}`])),
      el("h2", { style: "margin-top:12px" }, "Merges"),
      customer.merges.length ? table(["edge", "linked", "by", "when"], customer.merges.map((m) => [m.id, `${m.a} ↔ ${m.b}`, `${String(m.reason).replace(/_/g, " ")}${m.message_id ? " (event " + m.message_id.slice(0, 12) + ")" : ""}${m.unmerged_at ? " — undone" : ""}`, when(m.at)]), [0])
        : el("p", { class: "muted" }, "No merges: one identifier."),
      customer.warnings.length ? el("p", { class: "error" }, customer.warnings.map((w) => w.message || JSON.stringify(w)).join("; ")) : null),
    nba, design, customerScores(customer.scores), customerData(customer))));
  return parts;
};

/// The answer an event carries, as badges: helpful or not, the rating on its scale, NPS, and the comment.
function feedbackBadges(f) {
  if (!f) return null;
  const badges = [];
  if (f.helpful !== undefined) badges.push(el("span", { class: `badge ${f.helpful ? "good" : "bad"}`, "data-feedback": f.helpful ? "helpful" : "not-helpful" }, f.helpful ? "helpful" : "not helpful"));
  if (f.rating !== undefined) badges.push(el("span", { class: `badge ${f.rating >= 0.8 * f.rating_scale ? "good" : f.rating <= 0.4 * f.rating_scale ? "bad" : ""}`, "data-feedback": "rating" }, `rated ${f.rating} of ${f.rating_scale}`));
  if (f.nps !== undefined) badges.push(el("span", { class: `badge ${f.nps >= 9 ? "good" : f.nps <= 6 ? "bad" : ""}`, "data-feedback": "nps" }, `would recommend ${f.nps}/10`));
  if (f.comment) badges.push(el("span", { class: "muted", "data-feedback": "comment" }, ` “${f.comment.length > 120 ? f.comment.slice(0, 119) + "…" : f.comment}”`));
  return badges;
}

/// An event's properties (an identify call's traits) under its step: the first few as `name: value`, all of them
/// on a click. Nested objects are flattened to dotted names, so a Segment `context` reads like the filters' names.
function eventProperties(properties) {
  const flat = [];
  const walk = (value, prefix) => {
    if (value && typeof value === "object" && !Array.isArray(value)) Object.entries(value).forEach(([k, v]) => walk(v, prefix ? `${prefix}.${k}` : k));
    else flat.push([prefix, Array.isArray(value) ? JSON.stringify(value) : String(value)]);
  };
  walk(properties || {}, "");
  if (!flat.length) return null;
  const text = (pairs) => pairs.map(([k, v]) => `${k}: ${v.length > 60 ? v.slice(0, 59) + "…" : v}`).join(" · ");
  const shown = flat.slice(0, 4);
  return el("div", { class: "props", "data-properties": flat.length },
    flat.length > shown.length
      ? el("details", {}, el("summary", {}, text(shown) + ` · ${flat.length - shown.length} more`), el("div", {}, text(flat.slice(shown.length))))
      : text(shown));
}

/// The customer's rights: everything held about it as one JSON file, and (admin keys) deletion everywhere.
function customerData(customer) {
  const status = el("p", { class: "muted", role: "status" });
  const download = el("button", { class: "ghost", "data-action": "export", onclick: async () => {
    const response = await authFetch(`/v1/customers/${encodeURIComponent(customer.customer_id)}/export`);
    if (!response.ok) { status.textContent = `Export failed: ${(await response.json()).message}`; return; }
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `customer-${customer.customer_id}.json` });
    link.click();
    URL.revokeObjectURL(link.href);
    status.textContent = "Downloaded everything held about this customer.";
  } }, "Export all data (JSON)");
  const remove = isAdmin() ? el("button", { class: "danger", "data-action": "delete", onclick: async (e) => {
    if (!confirm(`Delete ${customer.customer_id} everywhere? Its ${customer.events.length} events, identifiers, merges, segment history and trigger deliveries are removed for good, and events with its identifiers are not stored again.`)) return;
    e.target.disabled = true;
    const response = await authFetch(`/v1/customers/${encodeURIComponent(customer.customer_id)}`, { method: "DELETE" });
    const body = await response.json();
    if (!response.ok) { status.textContent = `Not deleted: ${body.message}`; e.target.disabled = false; return; }
    page.replaceChildren(el("h1", {}, "Customer deleted"),
      el("p", { class: "lead", role: "status" }, `${body.store.customer_id} is deleted: ${fmt(body.store.events)} events, ${body.store.identifiers.length} identifiers, ${fmt(body.rules.trigger_instances)} trigger instances and ${fmt(body.rules.segment_changes)} segment changes removed. Events with its identifiers will not be stored again.`));
  } }, "Delete this customer") : null;
  return el("div", { class: "card", style: "margin-top:12px" }, el("h2", {}, "Data rights"),
    el("p", { class: "muted" }, isAdmin() ? "Export everything Waymark holds about this person, or delete it everywhere (it does not come back on re-import)." : "Export everything Waymark holds about this person. Deleting needs an admin key."),
    el("div", { class: "editor-actions" }, download, remove), status);
}

/// The one-file report (`waymark report`): the data is embedded, the pages are stacked, nothing is fetched.
function renderReport(data) {
  document.body.classList.add("report");
  const channels = data.overview.channels.map((c) => c.channel);
  const last = data.funnel.steps[data.funnel.steps.length - 1];
  const section = (title, lead, ...body) => el("section", { class: "card", style: "margin-top:14px" }, el("h2", {}, title), lead ? el("p", { class: "lead" }, lead) : null, ...body);
  page.replaceChildren(
    el("h1", {}, "Customer journeys — report"),
    el("p", { class: "lead" }, `Generated ${when(data.generated_at)} from ${fmt(data.overview.events)} events of ${fmt(data.overview.customers)} customers; ${(data.overview.goals || []).length ? `${pct(data.overview.goal_rate)} reach ${data.overview.goals.join(" or ")}` : "no goal step found"}.`),
    section("Events per day by channel", null, legend(channels), dayChart(data.overview.days, channels)),
    section("Top friction", `Goal: ${data.friction.goals.join(" or ")}.`, findings(data.friction.findings, data.friction.findings.length ? data.friction.findings[0].impact : 1)),
    section("Moments of truth", `Goal-rate change against comparable customers, with its interval (${data.moments.significant} of ${data.moments.tested} steps tested make a difference beyond chance).`, ...momentsView(data.moments, null)),
    section("Attribution by channel", `${fmt(data.attribution.conversions)} conversions credited by six models.`, ...attributionChart(data.attribution)),
    section(`Journey map after “${data.flows_anchor}”`, `${fmt(data.flows.customers)} customers.`, sankey(data.flows, () => {})),
    section("Process map", `${fmt(data.process_map.cases)} journeys; the most frequent transitions.`, processMap(data.process_map, data.process_map.edges.slice(0, 30))),
    section(`Funnel: ${data.funnel.steps.map((s) => s.name).join(" → ")}`, `${fmt(last.count)} of ${fmt(data.funnel.steps[0].count)} convert (${pct(last.conversion)}) within ${data.funnel_window}.`, funnelChart(data.funnel, null),
      el("h3", {}, `Time to convert (step 1 → ${last.name})`),
      last.time_to_convert ? el("p", { class: "muted" }, `median ${dur(last.time_to_convert.median_secs)} · mean ${dur(last.time_to_convert.mean_secs)} · p90 ${dur(last.time_to_convert.p90_secs)}`) : null,
      el("div", { style: "max-width:760px" }, timeHistogram(last))));
  // The footer's links are the server's; a report is a file, so it says where it came from instead.
  document.querySelector(".foot").replaceChildren(`Waymark report, generated ${when(data.generated_at)} — a snapshot; the live pages are on the Waymark server that made it.`);
  page.dataset.state = "ready";
}

// ---------------------------------------------------------------------------------------------------------------
// Wiring

/// The login page: one field for a read or admin key, kept for this tab's session.
function showLogin(problem) {
  showSession();
  const input = el("input", { type: "password", name: "key", id: "login-key", autocomplete: "current-password", required: "", placeholder: "wm_read_…", size: "44" });
  const form = el("form", { class: "card login", id: "login" },
    el("h1", {}, "Sign in to Waymark"),
    el("p", { class: "muted" }, "This server holds customer data: reading it needs a read or admin key. An admin creates one with ", el("code", {}, "waymark keys create --role read --name NAME"), "."),
    problem ? el("p", { class: "error", role: "alert" }, problem) : null,
    el("label", { for: "login-key" }, "Key"), input,
    el("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    session = null;
    render();
  });
  page.replaceChildren(form);
  document.getElementById("filters").hidden = true;
  document.querySelector(".top nav").hidden = true;
  input.focus();
}

/// The signed-in key's name and a way out, in the header; the footer's direct links need no key only when open.
function showSession() {
  const filters = document.getElementById("filters");
  filters.hidden = !session;
  document.querySelector(".top nav").hidden = !session;
  let box = document.getElementById("session");
  if (!box) {
    box = el("span", { id: "session", class: "session" });
    document.querySelector(".top").append(box);
  }
  const signOut = el("button", { type: "button", class: "ghost small" }, "Sign out");
  signOut.addEventListener("click", () => { sessionStorage.removeItem(KEY_STORAGE); session = null; render(); });
  box.replaceChildren(...(session && !session.open ? [el("span", {}, `${session.name} · ${session.role}`), signOut] : []));
  document.querySelectorAll(".foot .needs-key").forEach((a) => { a.hidden = !session || !session.open; });
}

/// Renders started so far: a render whose address has changed since it began (a click on the next page while a
/// slow one loads) drops its answer rather than drawing over the newer page.
let renders = 0;

async function render() {
  const generation = ++renders;
  const { name, params } = route();
  const view = pages[name] ? name : "overview";
  document.querySelectorAll(".top nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === view));
  document.querySelectorAll(".top nav a").forEach((a) => a.setAttribute("href", "#/" + a.dataset.page + (keepFilters({}).toString() ? "?" + keepFilters({}) : "")));
  const form = document.getElementById("filters");
  form.from.value = params.get("f_from") || "";
  form.to.value = params.get("f_to") || "";
  form.channels.value = params.get("f_channels") || "";
  form.where.value = params.get("f_where") || "";
  const active = ["f_from", "f_to", "f_channels", "f_where"].filter((k) => params.get(k)).length;
  document.getElementById("filter-note").textContent = active ? `${active} filter${active > 1 ? "s" : ""} active` : "";
  page.dataset.page = view;
  page.dataset.state = "loading";
  // How long the page took, from its address to its view (bench/ui-latency reads it).
  const started = performance.now();
  // Which address the page shows once ready (the hash changes before this render starts).
  const hash = location.hash;
  page.replaceChildren(el("p", { class: "loading" }, "Loading…"));
  try {
    if (!session) {
      session = await api("/v1/session");
      if (session.role === "write") {
        sessionStorage.removeItem(KEY_STORAGE);
        session = null;
        throw new SignInNeeded("That is a write key: it only sends events. The UI needs a read or admin key.");
      }
      showSession();
    }
    signInProblem = null;
    filterNotes.clear();
    const parts = await pages[view]({ params, filter: filterFromParams(params) });
    if (generation !== renders) return;
    if (signInProblem !== null) throw new SignInNeeded(signInProblem);
    const notes = filterNotes.size ? el("div", { class: "notice", role: "status", "data-filter-notes": filterNotes.size },
      el("b", {}, "The filter cannot match everything it names: "), el("ul", {}, [...filterNotes].map((note) => el("li", {}, note)))) : null;
    page.replaceChildren(...(notes ? [notes] : []), ...parts);
    page.dataset.hash = hash;
    page.dataset.ms = (performance.now() - started).toFixed(1);
    page.dataset.state = "ready";
  } catch (error) {
    if (generation !== renders) return;
    if (error instanceof SignInNeeded) {
      showLogin(error.message);
      page.dataset.state = "login";
    } else {
      showError(error);
      page.dataset.state = "error";
    }
  }
  document.title = `Waymark — ${document.querySelector(".top nav a.active")?.textContent || "Overview"}`;
}

