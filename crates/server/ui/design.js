// Designed journeys and what customers say: the Blueprint page (the design against the journeys taken) and the
// Feedback page (satisfaction on each rated step, with the comments). Loaded after app.js (its helpers: el, api,
// fmt, pct, dur, when, go, keepFilters, table, tableView, hbars, svgChart, customerLink).
"use strict";

const DEVIATION_KINDS = {
  skipped: "skipped", unexpected: "not in the design", out_of_order: "out of order", repeated: "repeated",
  off_channel: "off channel", over_standard_time: "over standard time", dead_end: "dead end",
};

async function savedBlueprints() {
  return (await api("/v1/blueprints")).blueprints;
}

/// The design as a strip of stages, each with who entered it, who stopped there, and its time against standard.
function stageStrip(report) {
  const stages = report.stages;
  const gap = 26, boxWidth = 190, height = 150, width = stages.length * (boxWidth + gap);
  const svg = svgChart(width, height, "The designed stages with the journeys that entered each and stopped there");
  const first = Math.max(1, stages[0]?.entered || 1);
  stages.forEach((stage, i) => {
    const x = i * (boxWidth + gap);
    const slow = stage.standard_time_secs && stage.over_standard > 0;
    const share = stage.entered / first;
    svg.append(el("g", {},
      el("title", {}, `${stage.name}: ${fmt(stage.entered)} journeys entered, ${fmt(stage.ended_here)} went no further` +
        (stage.standard_time_secs ? `; ${fmt(stage.over_standard)} took longer than the standard ${dur(stage.standard_time_secs)}` : "")),
      el("rect", { x, y: 8, width: boxWidth, height: height - 16, rx: 8, fill: "#fff", stroke: slow ? "#c2410c" : "#94a3b8", "stroke-width": slow ? 2 : 1 }),
      el("rect", { x, y: height - 8 - 10, width: boxWidth * share, height: 10, rx: 0, fill: "#2f6fed", opacity: 0.8 }),
      el("text", { x: x + 10, y: 30, "font-size": 14, "font-weight": 600 }, stage.name.length > 22 ? stage.name.slice(0, 21) + "…" : stage.name),
      el("text", { x: x + 10, y: 52, "font-size": 12 }, `${fmt(stage.entered)} entered (${pct(share)})`),
      i + 1 === stages.length
        ? el("text", { x: x + 10, y: 70, "font-size": 12, fill: "#15803d" }, `${fmt(stage.ended_here)} completed the design`)
        : el("text", { x: x + 10, y: 70, "font-size": 12, fill: stage.ended_here ? "#991b1b" : "#5d6678" }, `${fmt(stage.ended_here)} went no further`),
      el("text", { x: x + 10, y: 88, "font-size": 12, fill: "#5d6678" }, `median ${dur(stage.median_secs)} · p90 ${dur(stage.p90_secs)}`),
      stage.standard_time_secs
        ? el("text", { x: x + 10, y: 106, "font-size": 12, fill: slow ? "#c2410c" : "#15803d" }, `standard ${dur(stage.standard_time_secs)}: ${fmt(stage.over_standard)} over`)
        : null));
    if (i + 1 < stages.length) {
      const y = height / 2;
      svg.append(el("path", { d: `M${x + boxWidth + 4},${y} L${x + boxWidth + gap - 6},${y} M${x + boxWidth + gap - 12},${y - 5} L${x + boxWidth + gap - 6},${y} L${x + boxWidth + gap - 12},${y + 5}`, stroke: "#64748b", fill: "none", "stroke-width": 1.5 }));
    }
  });
  // The flows customers took between the stages, over the design: forward skips arc above, returns below.
  const index = Object.fromEntries(stages.map((st, i) => [st.name, i]));
  const moves = (report.stage_flows || []).filter((f) => f.kind === "skip" || f.kind === "back");
  const most = Math.max(1, ...moves.map((f) => f.journeys));
  const arcs = svgChart(width, 150, "Journeys that skipped a stage (above) or went back to an earlier one (below)");
  moves.forEach((f) => {
    const a = index[f.from] * (boxWidth + gap) + boxWidth / 2, b = index[f.to] * (boxWidth + gap) + boxWidth / 2;
    const up = f.kind === "skip", y = 75, lift = 22 + 10 * Math.abs(index[f.to] - index[f.from]);
    const peak = up ? y - lift : y + lift;
    arcs.append(el("path", { d: `M${a},${y} Q${(a + b) / 2},${peak} ${b},${y}`, fill: "none", stroke: up ? "#b45309" : "#7c3aed", "stroke-width": 1 + 5 * Math.sqrt(f.journeys / most), opacity: 0.7 },
      el("title", {}, `${fmt(f.journeys)} journeys went from ${f.from} ${up ? "straight to" : "back to"} ${f.to}`)));
    arcs.append(el("text", { x: (a + b) / 2, y: up ? (y + peak) / 2 - 4 : (y + peak) / 2 + 12, "text-anchor": "middle", "font-size": 11, fill: up ? "#b45309" : "#7c3aed" }, fmt(f.journeys)));
  });
  for (const [i, st] of stages.entries()) arcs.append(el("circle", { cx: i * (boxWidth + gap) + boxWidth / 2, cy: 75, r: 3, fill: "#64748b" }, el("title", {}, st.name)));
  return el("div", { style: "overflow-x:auto" }, svg,
    moves.length ? el("div", {}, el("p", { class: "muted", style: "margin:6px 0 0" }, el("span", { style: "color:#b45309" }, "▬ skipped ahead"), " · ", el("span", { style: "color:#7c3aed" }, "▬ went back"), " — between the stages above"), arcs) : null);
}

/// Goals lost as a person reads it: a count, or "none" when these journeys did as well or better.
function goalsLost(lost) {
  if (lost === undefined || lost === null) return "–";
  if (Math.round(lost) >= 1) return fmt(Math.round(lost));
  return el("span", { class: "muted", title: `These journeys reached the goal more often than the rest (${fmt(Math.round(-lost))} more goals)` }, "none");
}

pages.blueprint = async ({ filter, params }) => {
  const saved = await savedBlueprints();
  const parts = [el("h1", {}, "Blueprint")];
  if (!saved.length) {
    parts.push(el("p", { class: "lead" }, "A blueprint is the journey the business designed: stages, the steps each expects, their channels and standard times, and the goal."),
      el("p", { class: "empty" }, "No blueprint is saved yet. Save one with `waymark blueprint save purchase.toml` or PUT /v1/blueprints/NAME (docs in the README)."));
    return parts;
  }
  const name = saved.some((b) => b.name === params.get("name")) ? params.get("name") : saved[0].name;
  const report = await api("/v1/analyses/conformance", { blueprint: name, top: 50, filter });
  const f = report.fitness;
  const left = report.journeys - f.fitting_journeys;
  const chooser = el("form", { class: "controls", onsubmit: (e) => e.preventDefault() },
    el("label", {}, "Blueprint", el("select", { name: "name", onchange: (e) => go("blueprint", keepFilters({ name: e.target.value })) },
      saved.map((b) => el("option", { value: b.name, selected: b.name === name }, `${b.name} — ${b.stages.join(" → ")}`)))));
  const lost = report.deviations.filter((d) => (d.goals_lost || 0) >= 1);
  parts.push(
    el("p", { class: "lead" }, `${pct(left / Math.max(1, report.journeys))} of ${fmt(report.journeys)} journeys left the design` +
      (report.goal_rate_deviating !== undefined ? `; they reached ${report.goal} ${pct(report.goal_rate_deviating)} of the time, against ${pct(report.goal_rate_fitting)} for journeys that fit.` : ".")),
    chooser,
    el("div", { class: "grid cols-4" },
      el("div", { class: "card stat" }, el("b", {}, pct(f.fitting_share)), el("span", {}, "journeys fit the design")),
      el("div", { class: "card stat", title: "Token-replay fitness as pm4py computes it: 1 when every journey replays on the design's Petri net with no token missing or left over" }, el("b", {}, f.log_fitness.toFixed(3)), el("span", {}, "fitness (token replay)")),
      el("div", { class: "card stat" }, el("b", {}, fmt(report.n_deviations)), el("span", {}, "kinds of deviation")),
      el("div", { class: "card stat", title: "Goals the deviating journeys would have reached at the rate of the journeys in the same stage without the deviation" },
        el("b", {}, fmt(Math.round(lost.reduce((a, d) => a + d.goals_lost, 0)))), el("span", {}, "goals lost to the top deviations"))),
    el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "The design, as customers went through it"), stageStrip(report),
      tableView(["from", "to", "journeys", "how"], (report.stage_flows || []).map((f) => [f.from, f.to || "(ended)", fmt(f.journeys), f.kind]), [2]),
      tableView(["stage", "entered", "went no further", "goal rate", "median", "p90", "standard", "over standard"],
        report.stages.map((s) => [s.name, fmt(s.entered), fmt(s.ended_here), pct(s.goal_rate), dur(s.median_secs), dur(s.p90_secs), s.standard_time_secs ? dur(s.standard_time_secs) : "–", fmt(s.over_standard)]), [1, 2, 3, 4, 5, 6, 7])),
    el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Where journeys left the design, by goals lost"),
      el("p", { class: "muted" }, "Goals lost: how many more of these journeys would have reached the goal at the rate of the journeys in the same stage without the deviation."),
      table(["finding", "kind", "stage", "journeys", "goals lost"], report.deviations.map((d) => [d.headline, DEVIATION_KINDS[d.kind] || d.kind, d.stage || "–", fmt(d.journeys), goalsLost(d.goals_lost)]), [3, 4])),
  );
  if (report.unknown_steps?.length) parts.push(el("p", { class: "notice" }, `No event has the designed steps ${report.unknown_steps.join(", ")}: a misspelling, or a step not tracked yet.`));
  const traceForm = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("customer", { id: new FormData(e.target).get("id"), blueprint: name }); } },
    el("label", {}, "Trace one customer against this design", el("input", { name: "id", placeholder: "a user id or anonymous id", size: 30 })),
    el("button", { type: "submit" }, "Trace"));
  parts.push(el("div", { class: "card", style: "margin-top:14px" }, traceForm));
  return parts;
};

/// One customer's journey against a blueprint, for the customer page.
async function conformanceCard(id, wanted) {
  const saved = await savedBlueprints().catch(() => []);
  if (!saved.length) return null;
  const name = saved.some((b) => b.name === wanted) ? wanted : saved[0].name;
  const traced = await api(`/v1/customers/${encodeURIComponent(id)}/conformance?blueprint=${encodeURIComponent(name)}`).catch(() => null);
  if (!traced) return null;
  const first = traced.left_design_at;
  return el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, `Against the ${name} blueprint`),
    el("p", {}, traced.fits ? "This journey fits the design." :
      `Left the design ${first ? `at ${when(first.at_us)}: ${DEVIATION_KINDS[first.kind] || first.kind} — ${first.step || "time"}${first.stage ? " (" + first.stage + ")" : ""}` : ""}. ` +
      `${traced.reached_goal ? "Reached" : "Did not reach"} the goal.`),
    traced.stages.length ? table(["stage", "entered", "time in stage"], traced.stages.map((s) => [s.stage, when(s.entered_us), dur(s.duration_us / 1e6)]), [2]) : null,
    traced.deviations.length ? el("details", { class: "table" }, el("summary", {}, `All ${traced.deviations.length} deviations`),
      table(["when", "kind", "stage", "step"], traced.deviations.map((d) => [when(d.at_us), DEVIATION_KINDS[d.kind] || d.kind, d.stage || "–", d.step + (d.channel ? " on " + d.channel : "") + (d.took_us ? ` (${dur(d.took_us / 1e6)} against ${dur(d.standard_us / 1e6)})` : "")]))) : null);
}

const score = (x) => (x === null || x === undefined ? "–" : x.toFixed(0));

pages.feedback = async ({ filter, params }) => {
  const search = params.get("search") || "";
  const report = await api("/v1/analyses/feedback", { search: search || undefined, comments: 5, filter });
  const o = report.overall;
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("feedback", keepFilters({ search: new FormData(e.target).get("search") })); } },
    el("label", {}, "Search comments", el("input", { name: "search", value: search, size: 30, placeholder: "e.g. password" })),
    el("button", { type: "submit" }, "Search"));
  const rated = report.steps.filter((s) => s.helpful_rate !== undefined).sort((a, b) => a.helpful_rate - b.helpful_rate);
  const worst = rated[0];
  const parts = [
    el("h1", {}, "Feedback"),
    el("p", { class: "lead" }, o.responses
      ? (worst ? `“${worst.step}” is rated not helpful in ${pct(1 - worst.helpful_rate)} of its ${fmt(worst.helpful + worst.not_helpful)} answers. ` : "") +
        `${fmt(o.responses)} answers on ${fmt(report.n_steps)} steps.`
      : "No feedback in this selection."),
    (report.missing_properties || []).length
      ? el("p", { class: "notice" }, `No event has the feedback field${report.missing_properties.length > 1 ? "s" : ""} ${report.missing_properties.map((n) => `“${n}”`).join(", ")}: what ${report.missing_properties.length > 1 ? "they measure stays" : "it measures stays"} empty here.`)
      : null,
    form,
    el("div", { class: "grid cols-4" },
      el("div", { class: "card stat" }, el("b", {}, pct(o.helpful_rate)), el("span", {}, `helpful (${fmt(o.helpful + o.not_helpful)} answers)`)),
      el("div", { class: "card stat", title: report.definitions }, el("b", {}, o.csat === undefined ? "–" : score(o.csat) + "%"), el("span", {}, `CSAT (${fmt(o.ratings)} ratings)`)),
      el("div", { class: "card stat", title: report.definitions }, el("b", {}, score(o.nps)), el("span", {}, `NPS (${fmt(o.nps_answers)} answers)`)),
      el("div", { class: "card stat" }, el("b", {}, fmt(o.comments)), el("span", {}, "comments"))),
  ];
  if (rated.length) {
    parts.push(el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Not helpful, by rated step (worst first)"),
      hbars(rated.slice(0, 15).map((s) => ({ label: s.step, value: 1 - s.helpful_rate, color: s.helpful_rate < 0.5 ? "#c2410c" : "#94a3b8",
        title: `${s.step}: ${fmt(s.not_helpful)} of ${fmt(s.helpful + s.not_helpful)} said not helpful` })), "Share of answers saying not helpful, per step", pct, 240)));
  }
  parts.push(el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, "Every rated step"),
    el("p", { class: "muted" }, report.definitions),
    table(["rated step", "answers", "helpful", "CSAT", "mean rating", "NPS", search ? `comments with “${search}”` : "comments"],
      report.steps.map((s) => [s.step, fmt(s.responses), pct(s.helpful_rate), s.csat === undefined ? "–" : score(s.csat) + "%", s.mean_rating === undefined ? "–" : s.mean_rating.toFixed(1), score(s.nps), fmt(s.matching_comments)]), [1, 2, 3, 4, 5, 6])));
  const withComments = report.steps.filter((s) => s.latest_comments.length);
  if (withComments.length) {
    parts.push(el("div", { class: "card", style: "margin-top:14px" }, el("h2", {}, search ? `Comments with “${search}”` : "Latest comments"),
      withComments.map((s) => el("div", { class: "comments" }, el("h3", {}, s.step),
        el("ul", {}, s.latest_comments.map((c) => el("li", {}, `“${c.text}” `, el("span", { class: "muted" }, "— "), customerLink(c.customer), el("span", { class: "muted" }, ` · ${when(c.at)}`))))))));
  }
  return parts;
};

pages.personas = async ({ filter, params }) => {
  const k = params.get("k") || "";
  const report = await api("/v1/analyses/personas", { k: k ? Number(k) : undefined, examples: 5, filter });
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("personas", keepFilters({ k: new FormData(e.target).get("k") })); } },
    el("label", {}, "Personas", el("select", { name: "k" }, ["", 2, 3, 4, 5, 6, 7, 8].map((n) => el("option", { value: n, selected: String(n) === k }, n === "" ? "best separated (3–8)" : String(n))))),
    el("button", { type: "submit" }, "Show"));
  const worst = [...report.personas].filter((p) => p.goal_rate !== undefined).sort((a, b) => a.goal_rate - b.goal_rate)[0];
  return [
    el("h1", {}, "Personas"),
    el("p", { class: "lead" }, `${report.k} personas among ${fmt(report.customers)} customers, from the shape of their journeys (steps, channels, length).` +
      (worst ? ` The largest group that misses the goal most: “${worst.name}”, ${fmt(worst.customers)} customers, ${pct(worst.goal_rate)} reach it.` : "")),
    form,
    el("p", { class: "muted", title: "Mean silhouette: how much closer customers are to their own persona than to the next one (−1 to 1; above 0.25 the personas are distinct)" },
      `Separation (silhouette): ${report.silhouette.toFixed(2)}`),
    el("div", { class: "grid cols-even" }, report.personas.map((p) => el("div", { class: "card persona" },
      el("h2", {}, `${p.id}. ${p.name}`),
      el("p", {}, el("b", {}, fmt(p.customers)), ` customers (${pct(p.share)})`, p.goal_rate !== undefined ? ` · goal ${pct(p.goal_rate)}` : "",
        ` · median ${fmt(p.median_events)} events over ${dur(p.median_days * 86400)}`),
      el("p", { class: "muted" }, "Channels: " + p.channels.slice(0, 4).map(([c, s]) => `${c} ${pct(s)}`).join(", ")),
      el("p", {}, el("span", { class: "muted" }, `Most common path (${fmt(p.typical_path_customers)} of ${fmt(p.customers)}): `), p.typical_path.join(" → ")),
      p.distinctive_steps.length ? table(["sets it apart", "in persona", "overall"], p.distinctive_steps.map((d) => [d.step, pct(d.share), pct(d.share_overall)]), [1, 2]) : null,
      el("p", { class: "muted" }, "For example: ", p.examples.flatMap((id, i) => [i ? ", " : "", customerLink(id)])),
      p.segment ? personaSegment(p) : null))),
  ];
};

/// A persona as a live segment: its condition, how well it agrees with the persona, and (admin keys) saving it.
function personaSegment(p) {
  const rule = p.segment;
  const name = `persona-${p.name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}`.slice(0, 64).replace(/-$/, "");
  const status = el("span", { class: "muted", role: "status" });
  const save = isAdmin() ? el("button", { class: "ghost", "data-action": "save-segment", onclick: async (e) => {
    e.target.disabled = true;
    const response = await authFetch(`/v1/segments/${encodeURIComponent(name)}`, { method: "PUT", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ condition: rule.condition, description: `Persona “${p.name}” (${pct(rule.recall)} of its customers, ${pct(rule.precision)} precise when saved)` }) });
    const body = await response.json();
    status.textContent = response.ok ? ` Saved as segment “${name}”: followed live, a filter and a breakdown in every analysis.` : ` Not saved: ${body.message}`;
    e.target.disabled = response.ok;
  } }, "Save as segment") : null;
  return el("div", { class: "persona-segment" },
    el("p", {}, el("span", { class: "muted" }, "As a live segment: "), el("code", {}, rule.condition)),
    el("p", { class: "muted" }, `Picks ${pct(rule.recall)} of this persona's customers; ${pct(rule.precision)} of those it picks are in it.`, isAdmin() ? "" : " Saving it needs an admin key."),
    save, status);
}

/// The customer page's card: what next best action would offer this customer now, at a placement, and why
/// (a preview: nothing is recorded as an offer).
async function nbaCard(id, wanted) {
  const catalogue = await api("/v1/catalogue").catch(() => null);
  if (!catalogue || !catalogue.catalogue.items.length) return null;
  const placements = [...new Set(catalogue.catalogue.items.flatMap((item) => item.placements || []))].sort();
  // The placement asked for, else the one most items are for (the home page, usually).
  const count = (p) => catalogue.catalogue.items.filter((item) => (item.placements || []).includes(p)).length;
  const busiest = placements.slice().sort((a, b) => count(b) - count(a) || a.localeCompare(b))[0] || "";
  const placement = placements.includes(wanted) ? wanted : busiest;
  const query = new URLSearchParams({ explain: "true", preview: "true" });
  if (placement) query.set("placement", placement);
  const nba = await api(`/v1/customers/${encodeURIComponent(id)}/next-best-action?${query}`).catch(() => null);
  if (!nba) return null;
  const select = placements.length ? el("label", {}, "Placement ", el("select", { name: "placement", "data-nba-placement": "", onchange: (e) => {
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    params.set("placement", e.target.value);
    go("customer", Object.fromEntries(params));
  } }, placements.map((p) => el("option", { value: p, selected: p === placement }, p)))) : null;
  const known = Object.entries(nba.attributes).filter(([, values]) => values.length).map(([name, values]) => `${name}: ${values.join(", ")}`);
  if (nba.current_stage) known.unshift(`stage: ${nba.current_stage}`);
  const reasons = (offer) => offer.reasons.length
    ? offer.reasons.map((r) => `${r.text} (${r.points > 0 ? "+" : ""}${Math.round(r.points * 10) / 10})`).join("; ")
    : "no points: shown because it is eligible";
  return el("div", { class: "card", style: "margin-top:14px", "data-nba": nba.items.map((o) => o.id).join(",") },
    el("h2", {}, "Next best action"),
    el("div", { class: "controls" }, select),
    el("p", { class: "muted" }, known.length ? `What the catalogue knows: ${known.join(" · ")}` : "The catalogue knows no attribute of this customer yet."),
    nba.items.length
      ? table(["#", "item", "points", "why"], nba.items.map((o) => [String(o.rank), el("span", {}, el("b", {}, o.title), el("span", { class: "muted" }, ` · ${o.kind} ${o.id}`)), (Math.round(o.points * 10) / 10).toString(), reasons(o)]), [0, 2])
      : el("p", { class: "empty" }, `Nothing to offer ${placement ? "at " + placement : ""}: no item is eligible.`),
    nba.held_out.length ? el("p", { class: "muted" }, `Held out for this customer (never shown, to measure lift): ${nba.held_out.map((h) => `${h.id} (would rank ${h.rank})`).join(", ")}.`) : null,
    nba.excluded.length ? el("details", { class: "table" }, el("summary", {}, `${nba.excluded.length} item${nba.excluded.length === 1 ? "" : "s"} left out, and why`),
      table(["item", "why"], nba.excluded.map((e) => [e.id, e.why]))) : null,
    el("p", { class: "muted" }, "A preview: looking here records no offer. Offers shown to the customer are measured against their holdout on the Triggers page's lift report."));
}
