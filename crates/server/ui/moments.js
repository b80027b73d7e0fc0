// Moments of truth and attribution: the pages, and the charts the HTML report reuses. Loaded after app.js (its
// helpers: el, api, fmt, pct, go, keepFilters, stepList, steps, table, tableView, legend, PALETTE).
"use strict";

const points = (x) => (x === null || x === undefined ? "–" : `${x > 0 ? "+" : x < 0 ? "−" : ""}${Math.abs(x * 100).toFixed(1)}`);

/// A forest plot of lifts: one row per moment, its effect in goal-rate points as a dot and its bootstrap interval
/// as a bar, against a zero line. Rows without comparable customers show their odds ratio only.
/// The largest distance from zero any interval reaches: both sides are drawn on this one scale.
const liftBound = (moments) => Math.max(0.05, ...moments.filter((m) => m.lift).flatMap((m) => [Math.abs(m.lift.low ?? m.lift.difference), Math.abs(m.lift.high ?? m.lift.difference)]));

function forestPlot(moments, onRow, bound = liftBound(moments)) {
  const rows = moments.filter((m) => m.lift);
  const labelWidth = 215, plotWidth = 240, right = 175, rowHeight = 24, top = 24;
  const width = labelWidth + plotWidth + right;
  const x = (value) => labelWidth + plotWidth / 2 + (value / bound) * (plotWidth / 2 - 8);
  const svg = el("svg", { class: "chart forest", viewBox: `0 0 ${width} ${top + rows.length * rowHeight + 24}`, role: "img", "aria-label": "Lift of each moment with its interval" },
    el("text", { x: x(0), y: 12, "text-anchor": "middle", "font-size": 11, fill: "#5d6678" }, "no effect"),
    el("text", { x: x(-bound), y: 12, "font-size": 11, fill: "#5d6678" }, `${points(-bound)} pts`),
    el("text", { x: x(bound), y: 12, "text-anchor": "end", "font-size": 11, fill: "#5d6678" }, `${points(bound)} pts`));
  rows.forEach((m, i) => {
    const y = top + i * rowHeight + rowHeight / 2;
    const color = m.lift.difference >= 0 ? "#15803d" : "#c2410c";
    const label = m.label.length > 28 ? m.label.slice(0, 27) + "…" : m.label;
    const low = m.lift.low ?? m.lift.difference, high = m.lift.high ?? m.lift.difference;
    const row = el("g", { class: "bar-click", onclick: () => onRow && onRow(m), tabindex: 0, role: "button" },
      el("title", {}, `${m.label}: ${points(m.lift.difference)} points (${points(low)} to ${points(high)}) against ${fmt(m.lift.controls)} comparable customers; odds ratio ${m.odds_ratio.toFixed(2)}, q ${m.q_value < 1e-4 ? "< 0.0001" : m.q_value.toFixed(4)}${m.significant ? "" : " — not significant"}`),
      el("rect", { x: 0, y: y - rowHeight / 2, width, height: rowHeight, fill: i % 2 ? "#f8fafc" : "#fff" }),
      el("text", { x: labelWidth - 10, y: y + 4, "text-anchor": "end", "font-size": 12, fill: m.significant ? "#1b2230" : "#94a3b8" }, label),
      el("line", { x1: x(low), x2: x(high), y1: y, y2: y, stroke: color, "stroke-width": 3, "stroke-linecap": "round", opacity: m.significant ? 1 : 0.4 }),
      el("circle", { cx: x(m.lift.difference), cy: y, r: 5, fill: color, opacity: m.significant ? 1 : 0.4 }),
      el("text", { x: labelWidth + plotWidth + 10, y: y + 4, "font-size": 12, fill: "#1b2230" },
        `${points(m.lift.difference)} pts · ${m.goals_changed >= 0 ? "+" : "−"}${fmt(Math.abs(Math.round(m.goals_changed)))} goals`));
    svg.append(row);
  });
  // The zero line over the rows' stripes.
  svg.append(el("line", { x1: x(0), x2: x(0), y1: top - 8, y2: top + rows.length * rowHeight, stroke: "#94a3b8", "stroke-dasharray": "3 3", "pointer-events": "none" }));
  return svg;
}

function momentsTable(moments) {
  return tableView(["moment", "customers", "goal rate if done", "if not", "odds ratio (interval)", "q", "lift, points (interval)", "goals changed"],
    moments.map((m) => [m.label, fmt(m.reached_with + m.not_reached_with), pct(m.goal_rate_with), pct(m.goal_rate_without),
      `${m.odds_ratio.toFixed(2)} (${m.odds_ratio_low.toFixed(2)}–${m.odds_ratio_high.toFixed(2)})`, m.q_value < 1e-4 ? "< 0.0001" : m.q_value.toFixed(4),
      m.lift ? `${points(m.lift.difference)} (${points(m.lift.low)} to ${points(m.lift.high)})` : "no comparable customers",
      m.goals_changed === null ? "–" : fmt(Math.round(m.goals_changed))]), [1, 2, 3, 5, 7]);
}

/// Both sides of a moments report side by side, each a forest plot, plus the steps that settle the outcome.
function momentsView(report, onRow) {
  const bound = liftBound([...report.positive, ...report.negative]);
  const side = (title, moments, empty) => el("div", { class: "card" }, el("h2", {}, title),
    moments.length ? [forestPlot(moments, onRow, bound), momentsTable(moments)] : el("p", { class: "empty" }, empty));
  return [
    el("div", { class: "grid cols-even" },
      side("Raise the goal rate", report.positive, "No significant moment raises the goal rate."),
      side("Lower the goal rate", report.negative, "No significant moment lowers the goal rate.")),
    report.settled.length ? el("details", { class: "card settled" }, el("summary", {}, `${report.settled.length} steps all but settle the outcome (the goal's own path, or giving up)`),
      table(["step", "customers", "goal rate if done", "if not"], report.settled.map((m) => [m.label, fmt(m.reached_with + m.not_reached_with), pct(m.goal_rate_with), pct(m.goal_rate_without)]), [1, 2, 3])) : null,
  ];
}

pages.moments = async ({ filter, params }) => {
  const names = await steps();
  const goal = params.get("goal") || "";
  const entry = params.get("entry") || "";
  const properties = params.get("properties") || "";
  const request = { filter };
  if (goal) request.goals = [goal];
  if (entry) request.entry = entry;
  if (properties) request.properties = properties.split(",").map((p) => p.trim()).filter(Boolean);
  if (params.get("segment_by")) request.segment_by = params.get("segment_by");
  const report = await api("/v1/analyses/moments", request);
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("moments", keepFilters(Object.fromEntries(new FormData(e.target)))); } },
    el("label", {}, "Goal", el("input", { name: "goal", value: goal || report.goals.join(""), list: "moment-steps", size: 24 })),
    el("label", {}, "Journeys start at (optional)", el("input", { name: "entry", value: entry, list: "moment-steps", size: 24, placeholder: "the first event" })),
    el("label", {}, "Also split steps by (properties)", el("input", { name: "properties", value: properties, size: 24, placeholder: "e.g. context.device.type" })),
    el("label", {}, "Compare within segment", el("input", { name: "segment_by", value: params.get("segment_by") || "", size: 18, placeholder: "e.g. traits.plan" })),
    el("button", { type: "submit" }, "Show"), stepList("moment-steps"));
  const drill = el("div", { class: "drill" });
  const onRow = (m) => drill.replaceChildren(el("div", { class: "card" }, el("h2", {}, `Customers who did “${m.label}”`),
    el("p", { class: "muted" }, `${fmt(m.reached_with)} of them reached the goal, ${fmt(m.not_reached_with)} did not. The first few:`),
    el("ul", {}, m.example_customers.map((id) => el("li", {}, el("a", { href: "#/customer?id=" + encodeURIComponent(id) }, id))))));
  const watched = report.window_secs ? ` within ${dur(report.window_secs)} of the start` : "";
  return [
    el("h1", {}, "Moments of truth"),
    el("p", { class: "lead" }, report.customers
      ? `Of ${fmt(report.customers)} customers, ${fmt(report.reached)} (${pct(report.goal_rate)}) reached ${report.goals.join(" or ")}${watched}. ${report.tested} steps tested, ${report.significant} make a difference beyond chance (false-discovery rate ${pct(report.fdr)}). Each dot is the goal-rate change against comparable customers who did not do it (matched on ${report.lift_matched_on}), the bar its ${pct(report.confidence)} interval; click a row for the customers behind it.`
      : "No customer in this selection."),
    ...(report.warnings || []).map((warning) => el("p", { class: "notice" }, warning)),
    form,
    ...momentsView(report, onRow),
    drill,
  ];
};

const MODELS = [["first_touch", "first touch"], ["last_touch", "last touch"], ["linear", "linear"], ["position_based", "position-based"], ["time_decay", "time decay"], ["markov", "Markov"]];

/// Conversions credited to each touchpoint by each model, as grouped horizontal bars.
function attributionChart(report, rows = 12) {
  const touchpoints = report.touchpoints.slice(0, rows);
  const models = MODELS.filter(([key]) => touchpoints.some((t) => t[key]));
  const max = Math.max(1, ...touchpoints.flatMap((t) => models.map(([key]) => (t[key] ? t[key].conversions : 0))));
  const labelWidth = 180, barArea = 560, right = 70, bar = 7, gap = 12;
  const group = models.length * bar + gap;
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${labelWidth + barArea + right} ${touchpoints.length * group + 8}`, role: "img", "aria-label": "Conversions credited per touchpoint and model" });
  touchpoints.forEach((t, i) => {
    const y0 = i * group + 4;
    svg.append(el("text", { x: labelWidth - 10, y: y0 + (models.length * bar) / 2 + 4, "text-anchor": "end", "font-size": 12 }, t.touchpoint.length > 26 ? t.touchpoint.slice(0, 25) + "…" : t.touchpoint));
    models.forEach(([key, name], m) => {
      const value = t[key] ? t[key].conversions : 0;
      const w = (value / max) * barArea;
      svg.append(el("rect", { x: labelWidth, y: y0 + m * bar, width: Math.max(w, 0.5), height: bar - 1, fill: PALETTE[m] },
        el("title", {}, `${t.touchpoint} — ${name}: ${value.toFixed(1)} conversions`)));
      if (key === "markov") svg.append(el("text", { x: labelWidth + w + 6, y: y0 + m * bar + bar - 1, "font-size": 11, fill: "#5d6678" }, value.toFixed(0)));
    });
  });
  const key = el("div", { class: "legend" }, models.map(([, name], m) => el("span", {}, el("span", { class: "dot", style: `background:${PALETTE[m]}` }), name)));
  return [key, svg];
}

pages.attribution = async ({ filter, params }) => {
  await steps();
  const by = params.get("by") === "step" ? "step" : "channel";
  const goal = params.get("goal") || "";
  const lookback = params.get("lookback") || "30d";
  const order = Math.min(Math.max(Number(params.get("order") || 1), 1), 4);
  const request = { by, lookback, order, filter };
  if (goal) request.goals = [goal];
  const report = await api("/v1/analyses/attribution", request);
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("attribution", keepFilters(Object.fromEntries(new FormData(e.target)))); } },
    el("label", {}, "Goal", el("input", { name: "goal", value: goal, list: "attribution-steps", size: 24, placeholder: "the usual goal" })),
    el("label", {}, "Touchpoints", el("select", { name: "by" }, [["channel", "channels"], ["step", "steps"]].map(([value, text]) => el("option", { value, selected: value === by }, text)))),
    el("label", {}, "Lookback", el("input", { name: "lookback", value: lookback, size: 6 })),
    el("label", {}, "Markov order", el("input", { name: "order", type: "number", min: 1, max: 4, value: order, style: "width:70px" })),
    el("button", { type: "submit" }, "Show"), stepList("attribution-steps"));
  return [
    el("h1", {}, "Attribution"),
    el("p", { class: "lead" }, report.conversions
      ? `${fmt(report.conversions)} conversions after ${fmt(report.paths)} distinct ${by === "step" ? "step" : "channel"} paths (${fmt(report.null_paths)} paths did not convert), credited by six models. The Markov model credits each touchpoint with the conversions lost without it (removal effect).${report.unattributed_conversions ? ` ${fmt(report.unattributed_conversions)} conversions had no touchpoint within ${lookback} and are credited to nothing.` : ""}`
      : "No conversion with a touchpoint before it in this selection."),
    ...(report.warnings || []).map((warning) => el("p", { class: "notice" }, warning)),
    form,
    el("div", { class: "card" }, report.touchpoints.length ? attributionChart(report) : el("p", { class: "empty" }, "Nothing to credit."),
      tableView([by, ...MODELS.map(([, name]) => name), "removal effect"],
        report.touchpoints.map((t) => [t.touchpoint, ...MODELS.map(([key]) => (t[key] ? t[key].conversions.toFixed(1) : "–")), pct(t.removal_effect)]), [1, 2, 3, 4, 5, 6, 7])),
  ];
};
