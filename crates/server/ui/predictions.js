// Predictions: each saved model's evaluation (accuracy against the baselines measured in the same run, a
// calibration plot), what drives it, and the customers it scores highest now. Loaded after app.js (its helpers:
// el, api, fmt, pct, go, table, tableView, hbars, svgChart, customerLink, when).
"use strict";

/// A horizon in words: "1 day", "7 days", "2 hours".
function spanText(us) {
  const hours = us / 3.6e9;
  if (hours >= 24 && Number.isInteger(hours / 24)) return hours === 24 ? "1 day" : `${hours / 24} days`;
  if (Number.isInteger(hours)) return hours === 1 ? "1 hour" : `${hours} hours`;
  return dur(us / 1e6);
}
const horizonText = (model) => (model.horizon_us ? ` within ${spanText(model.horizon_us)}` : "");

/// Bars in HTML (text stays at the page's size whatever the width): [{label, value, title, model}].
function barList(items, format, label) {
  const max = Math.max(1e-9, ...items.map((item) => Math.abs(item.value)));
  return el("div", { class: "barlist", role: "list", "aria-label": label }, items.map((item) =>
    el("div", { class: "barrow", role: "listitem", title: item.title || `${item.label}: ${format(item.value)}` },
      el("span", { class: "barlabel" }, item.label),
      el("span", { class: "bartrack" }, el("i", { class: item.model === false ? "base" : null, style: `width:${(100 * Math.abs(item.value)) / max}%` })),
      el("span", { class: "barvalue" }, format(item.value)))));
}

/// What a model predicts, in words: "P(stuck within 1d)".
function modelTitle(model) {
  switch (model.spec.target) {
    case "goal": return `P(goal${horizonText(model)})`;
    case "stuck": return `P(stuck${horizonText(model)})`;
    case "remaining_time": return "remaining time";
    default: return "next step";
  }
}

const days = (x) => (x === null || x === undefined ? "–" : `${x.toFixed(x < 10 ? 2 : 1)} d`);
const three = (x) => (x === null || x === undefined ? "–" : x.toFixed(3));

/// The reliability curve: each bin's mean predicted probability against the share observed, the diagonal a
/// perfectly calibrated model would follow, dots sized by the prefixes in the bin.
function calibrationPlot(bins) {
  const size = 300, left = 46, bottom = 38, top = 12, right = 14;
  const plot = size - left - right;
  const x = (p) => left + p * plot;
  const y = (p) => top + (1 - p) * plot;
  const svg = svgChart(size, top + plot + bottom, "Calibration: predicted probability against the share observed");
  for (let tick = 0; tick <= 4; tick++) {
    const p = tick / 4;
    svg.append(el("line", { x1: x(0), x2: x(1), y1: y(p), y2: y(p), stroke: "#e2e6ee" }));
    svg.append(el("text", { x: left - 6, y: y(p) + 4, "text-anchor": "end", "font-size": 11, fill: "#5d6678" }, pct(p)));
    svg.append(el("text", { x: x(p), y: top + plot + 16, "text-anchor": "middle", "font-size": 11, fill: "#5d6678" }, pct(p)));
  }
  svg.append(el("text", { x: x(0.5), y: top + plot + 33, "text-anchor": "middle", "font-size": 12, fill: "#1b2230" }, "predicted"));
  svg.append(el("text", { x: 12, y: y(0.5), "text-anchor": "middle", "font-size": 12, fill: "#1b2230", transform: `rotate(-90 12 ${y(0.5)})` }, "observed"));
  svg.append(el("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), stroke: "#94a3b8", "stroke-dasharray": "4 4" }));
  const shown = bins.filter((bin) => bin.prefixes > 0);
  const most = Math.max(1, ...shown.map((bin) => bin.prefixes));
  svg.append(el("polyline", { points: shown.map((bin) => `${x(bin.mean_predicted)},${y(bin.observed)}`).join(" "), fill: "none", stroke: "#2f6fed", "stroke-width": 2 }));
  for (const bin of shown) {
    svg.append(el("circle", { cx: x(bin.mean_predicted), cy: y(bin.observed), r: 3 + 6 * Math.sqrt(bin.prefixes / most), fill: "#2f6fed", "fill-opacity": 0.75 },
      el("title", {}, `${pct(bin.from)}–${pct(bin.to)} predicted: ${fmt(bin.prefixes)} prefixes, mean prediction ${pct(bin.mean_predicted)}, observed ${pct(bin.observed)}`)));
  }
  return svg;
}

/// The model and its baselines as bars of one measure, with which direction is better said in the title.
function measureBars(title, rows, format, lowerIsBetter) {
  const best = lowerIsBetter ? Math.min(...rows.map((r) => r.value)) : Math.max(...rows.map((r) => r.value));
  return el("div", {}, el("h3", { class: "measure" }, title, el("span", { class: "muted" }, lowerIsBetter ? " · lower is better" : " · higher is better")),
    barList(rows.map((row) => ({ label: row.label, value: row.value, model: !!row.model, title: `${row.label}: ${format(row.value)}${row.value === best ? " (best)" : ""}` })), format, title));
}

/// The evaluation of one model: its headline, the measures beside the baselines, the calibration.
function evaluationView(model) {
  const e = model.evaluation;
  const split = `${fmt(e.train_journeys)} journeys trained on, ${fmt(e.test_journeys)} later ones tested (${fmt(e.prefixes)} prefixes)`;
  if (e.kind === "outcome") {
    const lift = e.model.auc - e.baseline_current_step.auc;
    const headline = e.model.auc <= e.baseline_current_step.auc
      ? `Ranks customers no better than their current step alone (AUC ${three(e.model.auc)} against ${three(e.baseline_current_step.auc)}): do not act on these scores.`
      : `Ranks a customer who will ${model.spec.target === "stuck" ? "get stuck" : "reach the goal"} above one who will not ${pct(e.model.auc)} of the time — the current step alone does it ${pct(e.baseline_current_step.auc)} of the time (+${(lift * 100).toFixed(1)} points).`;
    return [
      el("p", { class: "headline" }, headline),
      el("p", { class: "muted" }, `${split}; ${pct(e.base_rate)} of training prefixes had the outcome. Calibration error ${pct(e.calibration_error)}: the mean gap between predicted and observed.`),
      el("div", { class: "grid cols-even" },
        el("div", {},
          measureBars("AUC", [{ label: "this model", value: e.model.auc, model: true }, { label: "current step's rate", value: e.baseline_current_step.auc }, { label: "base rate", value: e.baseline_base_rate.auc }], three, false),
          measureBars("Brier score", [{ label: "this model", value: e.model.brier, model: true }, { label: "current step's rate", value: e.baseline_current_step.brier }, { label: "base rate", value: e.baseline_base_rate.brier }], three, true)),
        el("div", { class: "calibration" }, el("h3", { class: "measure" }, "Calibration", el("span", { class: "muted" }, " · on the diagonal: a 30 % score happens 30 % of the time")), calibrationPlot(e.calibration),
          tableView(["predicted", "prefixes", "mean predicted", "observed"], e.calibration.map((b) => [`${pct(b.from)}–${pct(b.to)}`, fmt(b.prefixes), pct(b.mean_predicted), pct(b.observed)]), [1, 2, 3]))),
    ];
  }
  if (e.kind === "remaining_time") {
    return [
      el("p", { class: "headline" }, `Off by ${days(e.mae_days)} on average — the current step's typical remaining time is off by ${days(e.baseline_current_step_mae_days)}, one median for everyone by ${days(e.baseline_median_mae_days)}.`),
      el("p", { class: "muted" }, split + "."),
      measureBars("Mean absolute error", [{ label: "this model", value: e.mae_days, model: true }, { label: "current step's median", value: e.baseline_current_step_mae_days }, { label: "one median", value: e.baseline_median_mae_days }], days, true),
    ];
  }
  const rows = [{ label: "n-gram (order " + e.order + ")", value: e.model.accuracy_at_1, model: true }];
  if (e.boosted) rows.push({ label: "boosted trees", value: e.boosted.accuracy_at_1, model: true });
  rows.push({ label: "most frequent next", value: e.baseline.accuracy_at_1 });
  const best = e.boosted && e.boosted.accuracy_at_1 > e.model.accuracy_at_1 ? e.boosted : e.model;
  return [
    el("p", { class: "headline" }, `The first guess is wrong for ${pct(1 - best.accuracy_at_1)} of prefixes, the top three miss ${pct(1 - best.accuracy_at_3)} — the most frequent next step is wrong ${pct(1 - e.baseline.accuracy_at_1)} of the time.`),
    el("p", { class: "muted" }, split + "; the journey's end counts as a step to predict."),
    el("div", { class: "grid cols-even" },
      measureBars("Accuracy of the first guess", rows, pct, false),
      measureBars("Accuracy of the top three", rows.map((r, i) => ({ ...r, value: [e.model, e.boosted, e.baseline].filter(Boolean)[i].accuracy_at_3 })), pct, false)),
  ];
}

/// What moves a score: the model-wide share of the trees' gain per feature.
const featuresView = (model) => (model.features.length
  ? [el("p", { class: "muted" }, "Share of the model's total gain: how much each feature separates the outcomes across all journeys."),
    barList(model.features.map((f) => ({ label: f.feature, value: f.effect, title: `${f.feature}: ${pct(f.effect)} of the gain` })), pct, "Features that matter most")]
  : [el("p", { class: "muted" }, "This model counts steps (an n-gram): its score follows from the last steps, not from weighted features.")]);

const scoreText = (score) => (score.kind === "probability" ? pct(score.probability)
  : score.kind === "remaining_time" ? days(score.days)
  : score.next.map(([step, p]) => `${step} ${pct(p)}`).join(" · "));

const driversText = (drivers) => (drivers || []).slice(0, 2).map((d) => `${d.feature} (${d.effect >= 0 ? "+" : "−"}${Math.abs(d.effect).toFixed(2)})`).join("; ");

/// The customers the model scores highest now.
function scoresView(model, scores) {
  const header = model.spec.target === "stuck" ? "Most likely to get stuck now"
    : model.spec.target === "goal" ? "Most likely to reach the goal (not there yet)"
    : model.spec.target === "remaining_time" ? "Longest still to go" : "Most certain next step";
  const idle = model.horizon_us ? [el("p", { class: "muted" }, scores.length
    ? `${scores.length >= 15 ? "The top 15 of the customers" : scores.length === 1 ? "The one customer" : `All ${fmt(scores.length)} customers`} active in the ${spanText(model.horizon_us)} before the latest event, highest score first; journeys idle for longer already have their answer.`
    : `No customer was active in the ${spanText(model.horizon_us)} before the latest event; journeys idle for longer already have their answer.`)] : [];
  return [el("h2", {}, header), ...idle,
    scores.length ? table(["customer", "score", "last step", "steps", "last event", "what drove it (log-odds)"],
      scores.map((s) => [customerLink(s.customer_id), scoreText(s), s.last_step, fmt(s.steps), when(s.last_event), driversText(s.drivers)]), [1, 3])
      : el("p", { class: "empty" }, "No customer to score.")];
}

pages.predictions = async ({ params }) => {
  const { models, live } = await api("/v1/models");
  const parts = [el("h1", {}, "Predictions"),
    el("p", { class: "lead" }, "What in-flight journeys will do: each model measured on journeys it never saw, beside simple baselines, and the customers it flags now — re-scored as their events arrive.")];
  const training = (live.training || []).map((t) => `${t.name} (${t.phase}${t.total ? ` ${Math.round((100 * t.done) / t.total)} %` : ""})`);
  if (training.length) parts.push(el("p", { class: "notice" }, `Training now: ${training.join(", ")} — reload in a moment to see ${training.length === 1 ? "it" : "them"}.`));
  if (!models.length) {
    parts.push(el("div", { class: "card empty" },
      el("p", {}, training.length ? "No model is saved yet." : "No model is trained yet."),
      el("p", {}, "Train one on the journeys in this store, for example ", el("code", {}, "waymark model train at-risk --target stuck"),
        " or ", el("code", {}, "waymark model train will-buy --target goal --goal \"Order Completed\""),
        "; this page and each customer's page show its scores within seconds, without a restart.")));
    return parts;
  }
  const name = params.get("model") && models.some((m) => m.name === params.get("model")) ? params.get("model") : models[0].name;
  const model = models.find((m) => m.name === name);
  const { scores } = await api(`/v1/models/${encodeURIComponent(name)}/scores?top=15`);
  parts.push(el("div", { class: "tabs", role: "tablist" }, models.map((m) =>
    el("a", { href: "#/predictions?" + new URLSearchParams({ model: m.name }), class: m.name === name ? "tab active" : "tab", role: "tab", "aria-selected": m.name === name ? "true" : "false" },
      el("b", {}, m.name), " · ", modelTitle(m)))));
  const goals = model.spec.goals && model.spec.goals.length ? ` · goal ${model.spec.goals.join(" or ")}` : "";
  parts.push(el("p", { class: "muted" }, `${modelTitle(model)}${goals} · trained ${when(model.trained_at)} in ${model.training_seconds.toFixed(1)} s on ${fmt(model.window.journeys)} journeys (${fmt(model.window.events)} events, ${when(model.window.from).slice(0, 10)} to ${when(model.window.to).slice(0, 10)})`
    + (live.ready ? ` · live: ${fmt(live.customers)} customers scored, ${fmt(live.rescored)} re-scored since start` : " · live scores are being computed")));
  parts.push(el("div", { class: "card", "data-model": name }, el("h2", {}, "How well it predicts"), evaluationView(model)));
  const probability = model.spec.target === "goal" || model.spec.target === "stuck";
  const where = `score:${name}${probability ? ">0.7" : ">0"}`;
  parts.push(el("div", { class: "card", style: "margin-top:14px" }, scoresView(model, scores),
    el("p", { class: "muted" }, "Every page takes this score as a customer property: ",
      el("a", { href: "#/overview?" + new URLSearchParams({ f_where: where }) }, el("code", {}, where)),
      " in Where filters any analysis; ", el("code", {}, `score-band:${name}`), " breaks one down by tenths.")));
  parts.push(el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "What drives it"), featuresView(model)));
  return parts;
};

/// The customer page's card: every model's live score of this customer and what drove it.
function customerScores(scores) {
  if (!scores || !scores.length) return null;
  return el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Predictions"),
    table(["model", "predicts", "score", "what drove it (log-odds)"],
      scores.map((s) => [el("a", { href: "#/predictions?" + new URLSearchParams({ model: s.model }), style: "white-space:nowrap" }, s.model),
        { goal: "reaching the goal", stuck: "getting stuck", remaining_time: "time still to go", next_step: "the next step" }[s.target] || s.target,
        scoreText(s.score), driversText(s.score.drivers)]), [2]));
}
