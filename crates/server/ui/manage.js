// Journey management: Segments (size over time, members), Triggers (the definitions editor with live validation
// and a dry run, lift against the holdout, the delivery log with retries and dead letters) and Monitors (the KPI
// board). Loaded after app.js (its helpers: el, api, fmt, pct, table, svgChart, customerLink, when, go).
"use strict";

/// A line over time: points [{t (µs), v}], an optional band [{t, low, high}], a threshold line, red marks at
/// moments (µs) and the format of the values. The y axis starts at zero for shares and counts, so a small change
/// does not read as a big one.
function timeChart(points, { band = [], threshold = null, marks = [], format = fmt, label = "", share = false } = {}) {
  const width = 820, height = 220, left = 58, right = 14, top = 12, bottom = 28;
  const svg = svgChart(width, height, label);
  const shown = points.filter((p) => p.v !== null && p.v !== undefined);
  if (!shown.length) return el("p", { class: "muted" }, "No reading to draw yet.");
  const t0 = Math.min(...points.map((p) => p.t)), t1 = Math.max(...points.map((p) => p.t));
  const values = [...shown.map((p) => p.v), ...band.flatMap((b) => [b.high]), threshold ?? 0];
  // A round top: the next fifth for shares, else 1, 2 or 5 times a power of ten.
  const top0 = Math.max(...values) * 1.05 || 1;
  const magnitude = Math.pow(10, Math.floor(Math.log10(top0)));
  const yMax = share ? Math.min(1, Math.ceil(top0 * 5) / 5) : [1, 2, 5, 10].map((m) => m * magnitude).find((m) => m >= top0);
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - v / yMax) * (height - top - bottom);
  for (let tick = 0; tick <= 4; tick++) {
    const v = (yMax * tick) / 4;
    svg.append(el("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: "#e2e6ee" }));
    svg.append(el("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6678" }, format(v)));
  }
  const dayUs = 86400e6;
  const span = t1 - t0;
  const step = span > 60 * dayUs ? 14 * dayUs : span > 14 * dayUs ? 7 * dayUs : dayUs;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    svg.append(el("text", { x: x(t), y: height - 8, "text-anchor": "middle", "font-size": 11, fill: "#5d6678" }, when(t).slice(5, 10)));
  }
  const shownBand = band.filter((b) => b.low !== undefined && b.high !== undefined);
  if (shownBand.length) {
    const upper = shownBand.map((b) => `${x(b.t)},${y(Math.min(yMax, Math.max(0, b.high)))}`);
    const lower = shownBand.slice().reverse().map((b) => `${x(b.t)},${y(Math.max(0, b.low))}`);
    svg.append(el("path", { d: `M${upper.join("L")}L${lower.join("L")}Z`, fill: "#2f6fed", "fill-opacity": 0.12, stroke: "none" },
      el("title", {}, "the range the monitor's own history expects")));
  }
  if (threshold !== null && threshold <= yMax) {
    svg.append(el("line", { x1: left, x2: width - right, y1: y(threshold), y2: y(threshold), stroke: "#b91c1c", "stroke-dasharray": "5 4" }));
    svg.append(el("text", { x: width - right, y: y(threshold) - 4, "text-anchor": "end", "font-size": 11, fill: "#b91c1c" }, `threshold ${format(threshold)}`));
  }
  // Gaps where nothing was counted stay gaps.
  let path = "", open = false;
  for (const p of points) {
    if (p.v === null || p.v === undefined) { open = false; continue; }
    path += `${open ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
    open = true;
  }
  svg.append(el("path", { d: path, fill: "none", stroke: "#1b2230", "stroke-width": 1.4 }));
  for (const t of marks) {
    const p = points.find((q) => q.t === t);
    svg.append(el("line", { x1: x(t), x2: x(t), y1: top, y2: height - bottom, stroke: "#b91c1c", "stroke-width": 1 }));
    svg.append(el("circle", { cx: x(t), cy: y(p && p.v !== null ? p.v : 0), r: 5, fill: "#b91c1c" },
      el("title", {}, `fired ${when(t)}${p && p.v !== null ? ": " + format(p.v) : ""}`)));
  }
  return svg;
}

pages.segments = async () => {
  const report = await api("/v1/segments?sample=10");
  const parts = [el("h1", {}, "Segments"),
    el("p", { class: "lead" }, `Customers grouped by a condition on their journey, updated on every event${report.live ? " by the running rules worker" : " (replayed from the stored history for this page: no rules worker runs)"}. Calendar days in ${report.timezone}.`)];
  if (!report.segments.length) {
    parts.push(el("div", { class: "card empty" }, el("p", {}, "No segment is defined."),
      el("p", {}, "Define one under ", el("code", {}, "[[segments]]"), " on the ", el("a", { href: "#/triggers" }, "Triggers"), " page or in ", el("code", {}, "rules.toml"),
        ", e.g. ", el("code", {}, `condition = 'count("Payment Failed", "1d") >= 2'`), ".")));
    return parts;
  }
  for (const segment of report.segments) {
    const where = `segment:${segment.name}=true`;
    const points = segment.days.map((d) => ({ t: Date.parse(d.day + "T23:59:59Z") * 1000, v: d.size }));
    parts.push(el("div", { class: "card", style: "margin-top:14px", "data-segment": segment.name },
      el("h2", {}, segment.name, el("span", { class: "muted" }, ` · ${fmt(segment.members)} members now`)),
      segment.description ? el("p", {}, segment.description) : null,
      el("p", {}, el("code", {}, segment.condition)),
      el("p", { class: "muted" }, `${fmt(segment.entered)} entries and ${fmt(segment.exited)} exits over the history. `,
        el("a", { href: "#/overview?" + new URLSearchParams({ f_where: where }) }, "Filter every page by it"), " (", el("code", {}, where), ")."),
      points.length > 1 ? timeChart(points, { label: `Members of ${segment.name} at the end of each day`, format: fmt }) : null,
      segment.sample.length ? el("p", {}, "Some members: ", ...segment.sample.flatMap((id, i) => [i ? ", " : "", customerLink(id)])) : null));
  }
  return parts;
};

/// PUT or POST the editor's TOML; returns [ok, body].
async function sendRules(method, path, text) {
  const response = await authFetch(path, { method, headers: { "Content-Type": "application/toml" }, body: text });
  const body = await response.json().catch(() => ({}));
  return [response.ok, body];
}

function problemsView(body) {
  const errors = body.errors || [];
  if (!errors.length) return el("p", { class: "error", role: "alert" }, body.message || "refused");
  return el("div", { class: "error", role: "alert" }, el("b", {}, `${errors.length} problem${errors.length === 1 ? "" : "s"}; nothing is applied:`),
    el("ul", {}, errors.map((e) => el("li", {}, el("code", {}, `${e.line ? `line ${e.line}:${e.column} ` : ""}${e.field}`), " ", e.message))));
}

function liftView(lift) {
  if (!lift.triggers.length) return [el("p", { class: "muted" }, "No trigger instance yet: lift is measured once a trigger with a holdout has fired.")];
  return lift.triggers.map((t) => {
    const d = t.goal_rate_difference;
    const rows = [["treated", t.treated], ["held out", t.held_out]].map(([arm, a]) => [arm, fmt(a.customers), fmt(a.reached), pct(a.goal_rate),
      a.median_hours_to_goal === undefined ? "–" : `${a.median_hours_to_goal.toFixed(1)} h`]);
    const parts = [el("p", { class: "headline" }, t.headline),
      table(["arm", "customers", "reached the goal", "goal rate", "median time to it"], rows, [1, 2, 3, 4])];
    if (d) {
      // The difference and its interval on an axis through zero.
      const width = 820, height = 64, left = 20, right = 20;
      const lo = Math.min(0, d.low) - 0.02, hi = Math.max(0, d.high) + 0.02;
      const x = (v) => left + ((v - lo) / (hi - lo)) * (width - left - right);
      const svg = svgChart(width, height, `Goal rate difference ${(d.value * 100).toFixed(1)} points, interval ${(d.low * 100).toFixed(1)} to ${(d.high * 100).toFixed(1)}`);
      svg.append(el("line", { x1: x(0), x2: x(0), y1: 6, y2: 44, stroke: "#5d6678", "stroke-dasharray": "3 3" }));
      svg.append(el("text", { x: x(0), y: 58, "text-anchor": "middle", "font-size": 11, fill: "#5d6678" }, "no difference"));
      const color = d.low > 0 ? "#15803d" : d.high < 0 ? "#b91c1c" : "#5d6678";
      svg.append(el("line", { x1: x(d.low), x2: x(d.high), y1: 25, y2: 25, stroke: color, "stroke-width": 4 }));
      svg.append(el("circle", { cx: x(d.value), cy: 25, r: 6, fill: color }));
      svg.append(el("text", { x: x(d.low), y: 16, "text-anchor": "middle", "font-size": 11, fill: color }, `${(d.low * 100).toFixed(1)}`));
      svg.append(el("text", { x: x(d.high), y: 16, "text-anchor": "middle", "font-size": 11, fill: color }, `${(d.high * 100).toFixed(1)} points`));
      parts.push(svg);
    }
    // A catalogue item (offer:ID) is shown and clicked, not delivered.
    const reached = t.clicked === undefined ? `${fmt(t.delivered)} reached by the actions`
      : `${fmt(t.delivered)} of the offered shown it, ${fmt(t.clicked)} clicked (Promotion Viewed / Clicked events)`;
    const notes = [`holdout ${t.holdout === undefined ? "unknown" : pct(t.holdout)}`, reached];
    if (t.in_flight) notes.push(`${fmt(t.in_flight)} still in their window`);
    if (t.capped) notes.push(`${fmt(t.capped)} only ever capped`);
    if (t.hours_to_goal_difference) notes.push(`time to goal ${t.hours_to_goal_difference.value >= 0 ? "+" : ""}${t.hours_to_goal_difference.value.toFixed(1)} h (p = ${t.hours_to_goal_difference.p_value.toFixed(3)})`);
    parts.push(el("p", { class: "muted" }, notes.join(" · ")));
    return el("div", { class: "lift", "data-trigger": `${t.trigger}.v${t.version}` }, ...parts);
  });
}

function logView(instances) {
  if (!instances.length) return el("p", { class: "muted" }, "No trigger instance yet.");
  return table(["decided", "trigger", "customer", "status", "deliveries", ""], instances.map((logged) => {
    const i = logged.instance;
    const dead = logged.deliveries.some((d) => d.state === "dead");
    const deliveries = logged.deliveries.map((d) => `${d.kind} ${d.state} (${d.attempts} attempt${d.attempts === 1 ? "" : "s"})${d.last_error ? ": " + d.last_error : ""}`).join("; ");
    const replay = dead && isAdmin() ? el("button", { class: "ghost", onclick: async (e) => {
      e.target.disabled = true;
      const response = await authFetch(`/v1/rules/dead-letters/${encodeURIComponent(i.key)}/replay`, { method: "POST" });
      e.target.textContent = response.ok ? "sent again" : "failed";
    } }, "Send again") : "";
    return [when(i.at), `${i.trigger} v${i.version}`, i.customer ? customerLink(i.customer) : "—", i.status + (i.capped_by ? ` (${i.capped_by})` : ""), deliveries || "—", replay];
  }));
}

pages.triggers = async () => {
  const [rules, lift, log] = await Promise.all([api("/v1/rules"), api("/v1/rules/lift", {}).catch((e) => ({ error: e.message })), api("/v1/rules/log?limit=30")]);
  const status = rules.status;
  const parts = [el("h1", {}, "Triggers"),
    el("p", { class: "lead" }, "Segments, triggers and monitors in one definition set: validated as you type, tried against the stored history, applied whole or not at all.")];
  parts.push(el("p", { class: status.running ? "muted" : "notice" }, status.running
    ? `Rules worker running on the ${status.clock} clock: ${fmt(status.events)} events read, ${fmt(status.instances)} instances, ${fmt(status.pending_deliveries)} deliveries pending, ${fmt(status.dead_letters)} dead letters.`
    : "No rules worker runs in this process: definitions can be edited and tried, and fire once `waymark serve` runs them."));
  const editor = el("textarea", { class: "rules-editor", rows: 18, spellcheck: "false", "aria-label": "rules.toml" }, rules.toml);
  const verdict = el("div", { class: "verdict", "aria-live": "polite" });
  const dry = el("div", { class: "dry-run" });
  let timer = null;
  const validate = async () => {
    const [ok, body] = await sendRules("POST", "/v1/rules/validate", editor.value);
    verdict.replaceChildren(ok
      ? el("p", { class: "muted" }, `Valid. ${body.changed.length ? "Saving would give a new version to: " + body.changed.join(", ") + "." : "Saving changes no trigger's version."}`)
      : problemsView(body));
    return ok;
  };
  editor.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(validate, 500); });
  const since = el("select", { "aria-label": "Dry run over" }, ["7d", "30d", "90d"].map((s) => el("option", { value: s }, `last ${s}`)));
  const tryIt = async () => {
    dry.replaceChildren(el("p", { class: "loading" }, "Replaying the history…"));
    const response = await authFetch("/v1/rules/dry-run", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ toml: editor.value, since: since.value }) });
    const body = await response.json();
    if (!response.ok) { dry.replaceChildren(problemsView(body)); return; }
    dry.replaceChildren(el("p", { class: "headline" }, `Over the ${since.value} to ${when(body.until).slice(0, 16)} (${fmt(body.events)} events):`),
      body.triggers.length ? table(["trigger", "would fire", "capped", "held out", "quiet hours", "customers", "some of them"], body.triggers.map((t) =>
        [t.trigger, fmt(t.fired), fmt(t.capped), fmt(t.held_out), fmt(t.quiet), fmt(t.customers), t.sample.slice(0, 3).flatMap((id, i) => [i ? ", " : "", customerLink(id)])]), [1, 2, 3, 4, 5]) : el("p", { class: "muted" }, "No trigger defined."),
      Object.keys(body.segments).length ? el("p", { class: "muted" }, "Segment sizes at the end: " + Object.entries(body.segments).map(([n, s]) => `${n} ${fmt(s)}`).join(", ")) : null,
      body.evaluation_errors ? el("p", { class: "notice" }, `${fmt(body.evaluation_errors)} conditions could not be evaluated for a customer (a missing property, a step never done): false for them.`) : null);
  };
  const save = async () => {
    const [ok, body] = await sendRules("PUT", "/v1/rules", editor.value);
    verdict.replaceChildren(ok ? el("p", { class: "headline" }, `Saved. ${body.changed.length ? "New versions: " + body.changed.map((n) => `${n} v${body.versions[n]}`).join(", ") + "." : "No trigger changed."}`) : problemsView(body));
  };
  parts.push(el("div", { class: "card" }, el("h2", {}, "Definitions ", el("span", { class: "muted" }, "· rules.toml (docs/rules.md)")), editor,
    el("div", { class: "editor-actions" }, isAdmin() ? el("button", { onclick: save }, "Save") : null, el("button", { class: isAdmin() ? "ghost" : null, onclick: validate }, "Validate"),
      el("button", { class: "ghost", onclick: tryIt }, "Dry run"), since,
      isAdmin() ? null : el("span", { class: "muted" }, "Saving needs an admin key; a read key may validate and dry-run.")), verdict, dry));
  parts.push(el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Lift against the holdout"),
    lift.error ? el("p", { class: "muted" }, lift.error) : el("p", { class: "muted" }, `Goal: ${lift.goals.join(" or ")} within ${lift.window} of each customer's first instance; ${pct(lift.confidence)} intervals.`),
    ...(lift.error ? [] : liftView(lift))));
  parts.push(el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Delivery log ", el("span", { class: "muted" }, "· the latest 30 instances")), logView(log.instances)));
  return parts;
};

pages.monitors = async () => {
  const board = await api("/v1/monitors");
  const parts = [el("h1", {}, "KPI monitors"),
    el("p", { class: "lead" }, `Each metric over its sliding window, read along the history to ${when(board.data_end).slice(0, 16)}; a red mark is a moment it fired.`)];
  if (!board.monitors.length) {
    parts.push(el("div", { class: "card empty" }, el("p", {}, "No monitor is defined."),
      el("p", {}, "Add one under ", el("code", {}, "[[monitors]]"), " on the ", el("a", { href: "#/triggers" }, "Triggers"), " page: a step's failure rate, a funnel's conversion, average feedback, against a threshold or its own history.")));
    return parts;
  }
  for (const m of board.monitors) {
    const share = /per|share/.test(m.metric);
    const format = share ? pct : (v) => (Math.abs(v) >= 100 ? fmt(Math.round(v)) : v.toFixed(2));
    const points = m.readings.map((r) => ({ t: r.at, v: r.value ?? null }));
    const band = m.readings.filter((r) => r.expected !== undefined).map((r) => ({ t: r.at, low: r.low, high: r.high }));
    const threshold = /^(above|below) /.test(m.test) ? Number(m.test.split(" ")[1]) : null;
    parts.push(el("div", { class: "card", style: "margin-top:14px", "data-monitor": m.name },
      el("h2", {}, m.name, m.alert ? el("span", { class: "badge bad" }, "in alert") : el("span", { class: "badge good" }, "ok")),
      el("p", { class: "headline" }, m.headline),
      el("p", { class: "muted" }, `${m.description ? m.description + " · " : ""}${m.metric}, read every ${m.every}; fires ${m.test}.`),
      timeChart(points, { band, threshold, marks: m.fired, format, share, label: `${m.name} over time` }),
      m.fired.length ? el("p", {}, "Fired: ", m.fired.map((t) => when(t).slice(0, 16)).join(", ")) : el("p", { class: "muted" }, "Never fired over the history.")));
  }
  return parts;
};
