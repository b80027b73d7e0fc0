#!/usr/bin/env python3
"""The peer benchmark behind `bench/run`.

For each size: generate the journeys once (`waymark generate --shape zipf`, Parquet), load them into every system,
ask every system the same questions, check that the answers agree, and print (and with --write, append to
BENCHMARKS.md) a table of times, ratios and memory. Each peer runs in its own process so its peak memory is its own.

Questions: Q1 a 5-step funnel with a 7-day window; Q2 the directly-follows graph with counts and mean time per edge;
Q3 the top 20 variants; Q4 flows after a step to depth 4; Q5 customer timeline lookup (p50/p99 over 1,000 ids);
Q6 load; Q7 moments of truth for the goal `step 05` (per step, the customers who did it before their first goal,
among those who reach it and those who do not: PostHog's contingency counts, from which the odds ratios follow; for
Waymark the whole analysis, intervals, q-values and the matched lift included); Q8 first/last/linear attribution over
channels with the goal `step 05` (each goal event closes a path; no lookback, repeats kept). Warm times are the
median of 5 runs after a first (cold) run.
"""
import argparse
import datetime
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

FUNNEL = ["step 00", "step 01", "step 02", "step 03", "step 04"]
WINDOW_US = 7 * 86_400 * 1_000_000
ANCHOR = "step 00"
DEPTH = 4
RUNS = 5
GOAL = "step 05"
PM4PY_MAX_EVENTS = 1_000_000  # above this pm4py takes over 10 minutes on this machine


def parse_size(text):
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def timed(work):
    """(cold seconds, warm median seconds, answer): one cold run, then RUNS warm runs."""
    started = time.perf_counter()
    answer = work()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm), answer


def lookups(fetch, ids):
    times = []
    answer = []
    for index, customer in enumerate(ids):
        started = time.perf_counter()
        rows = fetch(customer)
        times.append(time.perf_counter() - started)
        if index < 10:
            answer.append(rows)
    times.sort()
    return {"p50_ms": 1e3 * times[len(times) // 2], "p99_ms": 1e3 * times[int(len(times) * 0.99) - 1], "answer": answer}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------------------
# The systems. Each returns {"load_s", "questions": {q: {cold, warm, answer}}, "rss_mb"}.

def run_waymark(binary, parquet, work, ids):
    store = os.path.join(work, "waymark-store")
    shutil.rmtree(store, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([binary, "--data", store, "--json", "import", parquet], check=True, capture_output=True)
    load = time.perf_counter() - started
    server = subprocess.Popen([binary, "--data", store, "--json", "serve", "--listen", "127.0.0.1:0", "--write-key", "bench", "--no-warm-up"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"].rstrip("/")

        def post(path, body):
            request = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request) as response:
                return json.load(response)

        def q1():
            return [step["count"] for step in post("/v1/analyses/funnel", {"steps": FUNNEL, "window": "7d"})["steps"]]

        def q2():
            return {f"{e['from']}>{e['to']}": (e["count"], e["mean_secs"]) for e in post("/v1/analyses/process-map", {})["edges"]}

        def q3():
            return [(">".join(v["steps"]), v["count"]) for v in post("/v1/analyses/variants", {"top": 20})["variants"]]

        def q4():
            report = post("/v1/analyses/flows", {"anchor": ANCHOR, "depth": DEPTH, "top": 1000})
            return {f"{n['level']}:{n['step']}": n["count"] for n in report["nodes"] if n["level"] > 0 and n["kind"] == "step"}

        def q7():
            # PostHog's semantics: every event before the first goal, no minimum support, every step listed.
            report = post("/v1/analyses/moments", {"goals": [GOAL], "no_window": True, "settled_share": 0.0, "min_customers": 0,
                                                    "min_share": 0.0, "include_insignificant": True, "top": 100000, "bootstrap": 0})
            counts = {m["step"]: (m["reached_with"], m["not_reached_with"]) for m in report["positive"] + report["negative"]}
            return {"reached": report["reached"], "not_reached": report["not_reached"], "counts": counts}

        def q8():
            report = post("/v1/analyses/attribution", {"goals": [GOAL], "lookback": "none", "keep_repeats": True, "value_property": ""})
            return {t["touchpoint"]: (t["first_touch"]["conversions"], t["last_touch"]["conversions"], t["linear"]["conversions"]) for t in report["touchpoints"]}

        def fetch(customer):
            with urllib.request.urlopen(f"{url}/v1/customers/{customer}") as response:
                return len(json.load(response)["events"])

        questions = {"Q2": timed(q2), "Q1": timed(q1), "Q3": timed(q3), "Q4": timed(q4), "Q7": timed(q7), "Q8": timed(q8)}
        q5 = lookups(fetch, ids)
        with open(f"/proc/{server.pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    finally:
        server.terminate()
        server.wait()
    return {"load_s": load, "questions": {q: {"cold": c, "warm": w, "answer": a} for q, (c, w, a) in questions.items()}, "Q5": q5, "rss_mb": rss}


def run_duckdb(parquet, work, ids):
    import duckdb
    path = os.path.join(work, "duckdb.db")
    for stale in (path, path + ".wal"):
        if os.path.exists(stale):
            os.remove(stale)
    con = duckdb.connect(path)
    started = time.perf_counter()
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{parquet}') ORDER BY customer_id, timestamp")
    con.execute("CHECKPOINT")
    load = time.perf_counter() - started

    def q2():
        rows = con.execute("""
            SELECT step, nxt, count(*), avg(epoch_us(nts) - epoch_us(ts)) / 1e6 FROM (
              SELECT step, timestamp AS ts, lead(step) OVER w AS nxt, lead(timestamp) OVER w AS nts FROM events
              WINDOW w AS (PARTITION BY customer_id ORDER BY timestamp))
            WHERE nxt IS NOT NULL GROUP BY ALL""").fetchall()
        return {f"{a}>{b}": (c, m) for a, b, c, m in rows}

    def q3():
        return [tuple(row) for row in con.execute("""
            SELECT v, count(*) AS c FROM (SELECT string_agg(step, '>' ORDER BY timestamp) AS v FROM events GROUP BY customer_id)
            GROUP BY v ORDER BY c DESC, v LIMIT 20""").fetchall()]

    def q4():
        rows = con.execute(f"""
            WITH numbered AS (SELECT customer_id, step, row_number() OVER (PARTITION BY customer_id ORDER BY timestamp) AS rn FROM events),
                 anchors AS (SELECT customer_id, min(rn) AS a FROM numbered WHERE step = '{ANCHOR}' GROUP BY customer_id)
            SELECT n.rn - a.a AS level, n.step, count(*) FROM numbered n JOIN anchors a USING (customer_id)
            WHERE n.rn > a.a AND n.rn <= a.a + {DEPTH} GROUP BY ALL""").fetchall()
        return {f"{level}:{step}": count for level, step, count in rows}

    def q7():
        rows = con.execute(f"""
            WITH numbered AS (SELECT customer_id, step, row_number() OVER (PARTITION BY customer_id ORDER BY timestamp) AS rn FROM events),
                 goals AS (SELECT customer_id, min(rn) AS g FROM numbered WHERE step = '{GOAL}' GROUP BY customer_id),
                 customers AS (SELECT DISTINCT customer_id FROM events),
                 seen AS (SELECT DISTINCT n.customer_id, n.step, g.g IS NOT NULL AS reached FROM numbered n LEFT JOIN goals g USING (customer_id)
                          WHERE n.step <> '{GOAL}' AND (g.g IS NULL OR n.rn < g.g))
            SELECT step, count(*) FILTER (WHERE reached), count(*) FILTER (WHERE NOT reached),
                   (SELECT count(*) FROM goals), (SELECT count(*) FROM customers) FROM seen GROUP BY step""").fetchall()
        reached = rows[0][3] if rows else 0
        total = rows[0][4] if rows else 0
        # Waymark lists every step whose odds ratio is not exactly 1; the same cut here.
        def ratio(s, f):
            return ((s + 1) * (total - reached - f + 1)) / ((reached - s + 1) * (f + 1))
        return {"reached": reached, "not_reached": total - reached,
                "counts": {step: (s, f) for step, s, f, _, _ in rows if ratio(s, f) != 1.0}}

    def q8():
        rows = con.execute(f"""
            WITH numbered AS (SELECT customer_id, step, channel, row_number() OVER (PARTITION BY customer_id ORDER BY timestamp) AS rn FROM events),
                 marked AS (SELECT *, sum(CASE WHEN step = '{GOAL}' THEN 1 ELSE 0 END) OVER (PARTITION BY customer_id ORDER BY rn ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM numbered),
                 paths AS (SELECT customer_id, coalesce(before, 0) AS path, channel, rn, step FROM marked),
                 closed AS (SELECT customer_id, path FROM paths WHERE step = '{GOAL}'),
                 touches AS (SELECT p.customer_id, p.path, p.channel, p.rn,
                                    row_number() OVER (PARTITION BY p.customer_id, p.path ORDER BY p.rn) AS first,
                                    row_number() OVER (PARTITION BY p.customer_id, p.path ORDER BY p.rn DESC) AS last,
                                    count(*) OVER (PARTITION BY p.customer_id, p.path) AS n
                             FROM paths p JOIN closed c USING (customer_id, path) WHERE p.step <> '{GOAL}')
            SELECT channel, sum(CASE WHEN first = 1 THEN 1 ELSE 0 END), sum(CASE WHEN last = 1 THEN 1 ELSE 0 END), sum(1.0 / n)
            FROM touches GROUP BY channel""").fetchall()
        return {channel: (float(a), float(b), float(c)) for channel, a, b, c in rows}

    def fetch(customer):
        return len(con.execute("SELECT timestamp, step, channel FROM events WHERE customer_id = ? ORDER BY timestamp", [customer]).fetchall())

    questions = {"Q2": timed(q2), "Q3": timed(q3), "Q4": timed(q4), "Q7": timed(q7), "Q8": timed(q8)}
    q5 = lookups(fetch, ids)
    return {"load_s": load, "questions": {q: {"cold": c, "warm": w, "answer": a} for q, (c, w, a) in questions.items()}, "Q5": q5, "rss_mb": peak_rss_mb()}


def run_chdb(parquet, work, ids):
    from chdb import session
    path = os.path.join(work, "chdb")
    shutil.rmtree(path, ignore_errors=True)
    sess = session.Session(path)

    def query(sql):
        output = sess.query(sql, "JSONCompact").bytes()
        return json.loads(output)["data"] if output.strip() else []

    query("CREATE DATABASE IF NOT EXISTS b")
    query("""CREATE TABLE b.events (customer_id String, timestamp DateTime64(6, 'UTC'), step LowCardinality(String),
             channel LowCardinality(String)) ENGINE = MergeTree ORDER BY (customer_id, timestamp)""")
    started = time.perf_counter()
    query(f"INSERT INTO b.events SELECT * FROM file('{parquet}', Parquet)")
    query("OPTIMIZE TABLE b.events FINAL")
    load = time.perf_counter() - started
    conditions = ", ".join(f"step = '{step}'" for step in FUNNEL)

    def q1():
        rows = query(f"""SELECT level, count() FROM (SELECT customer_id, windowFunnel({WINDOW_US})(toUInt64(toUnixTimestamp64Micro(timestamp)), {conditions}) AS level
                         FROM b.events GROUP BY customer_id) GROUP BY level""")
        by_level = {int(level): int(count) for level, count in rows}
        return [sum(count for level, count in by_level.items() if level >= k) for k in range(1, len(FUNNEL) + 1)]

    def q2():
        rows = query("""SELECT step, nxt, count(), avg(dt) / 1e6 FROM (
                          SELECT step, leadInFrame(step) OVER w AS nxt,
                                 toUnixTimestamp64Micro(leadInFrame(timestamp) OVER w) - toUnixTimestamp64Micro(timestamp) AS dt,
                                 row_number() OVER (PARTITION BY customer_id ORDER BY timestamp) AS rn,
                                 count() OVER (PARTITION BY customer_id) AS n
                          FROM b.events WINDOW w AS (PARTITION BY customer_id ORDER BY timestamp ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING))
                        WHERE rn < n GROUP BY step, nxt""")
        return {f"{a}>{b}": (int(c), float(m)) for a, b, c, m in rows}

    def q3():
        rows = query("""SELECT v, count() AS c FROM (SELECT arrayStringConcat(arrayMap(x -> x.2, arraySort(x -> x.1, groupArray((timestamp, step)))), '>') AS v
                        FROM b.events GROUP BY customer_id) GROUP BY v ORDER BY c DESC, v LIMIT 20""")
        return [(v, int(c)) for v, c in rows]

    def q4():
        rows = query(f"""SELECT level, step, count() FROM (
                           SELECT arrayMap(x -> x.2, arraySort(x -> x.1, groupArray((timestamp, step)))) AS s, indexOf(s, '{ANCHOR}') AS a
                           FROM b.events GROUP BY customer_id HAVING a > 0)
                         ARRAY JOIN arraySlice(s, a + 1, {DEPTH}) AS step, arrayEnumerate(arraySlice(s, a + 1, {DEPTH})) AS level
                         GROUP BY level, step""")
        return {f"{int(level)}:{step}": int(count) for level, step, count in rows}

    def fetch(customer):
        return len(query(f"SELECT timestamp, step, channel FROM b.events WHERE customer_id = '{customer}' ORDER BY timestamp"))

    questions = {"Q1": timed(q1), "Q2": timed(q2), "Q3": timed(q3), "Q4": timed(q4)}
    q5 = lookups(fetch, ids)
    return {"load_s": load, "questions": {q: {"cold": c, "warm": w, "answer": a} for q, (c, w, a) in questions.items()}, "Q5": q5, "rss_mb": peak_rss_mb()}


def run_pm4py(parquet, work, ids):
    import pandas as pd
    import pm4py
    started = time.perf_counter()
    frame = pd.read_parquet(parquet)
    frame = pm4py.format_dataframe(frame, case_id="customer_id", activity_key="step", timestamp_key="timestamp")
    load = time.perf_counter() - started

    def q2():
        counts, _, _ = pm4py.discover_dfg(frame)
        performance, _, _ = pm4py.discover_performance_dfg(frame)
        return {f"{a}>{b}": (int(count), float(performance[(a, b)]["mean"])) for (a, b), count in counts.items()}

    def q3():
        variants = pm4py.get_variants(frame)
        ranked = sorted(((">".join(v), int(c if isinstance(c, int) else len(c))) for v, c in variants.items()), key=lambda item: (-item[1], item[0]))
        return ranked[:20]

    questions = {"Q2": timed(q2), "Q3": timed(q3)}
    return {"load_s": load, "questions": {q: {"cold": c, "warm": w, "answer": a} for q, (c, w, a) in questions.items()}, "rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------------------------------------------------------
# Agreement

def agree(question, ours, theirs):
    """None when the answers agree, else what differs."""
    if question == "Q1" or question == "Q4":
        return None if ours == theirs else f"{question}: {ours if question == 'Q1' else len(ours)} vs {theirs if question == 'Q1' else len(theirs)}"
    if question == "Q2":
        if set(ours) != set(theirs):
            return f"Q2: {len(set(ours) ^ set(theirs))} edges differ"
        for edge, (count, mean) in ours.items():
            other_count, other_mean = theirs[edge]
            if count != other_count or abs(mean - other_mean) > 1e-6 * max(1.0, abs(mean)):
                return f"Q2 {edge}: ({count}, {mean}) vs ({other_count}, {other_mean})"
        return None
    if question == "Q3":
        if [c for _, c in ours] != [c for _, c in theirs]:
            return f"Q3 counts: {[c for _, c in ours]} vs {[c for _, c in theirs]}"
        cut = ours[-1][1] if ours else 0
        strictly = lambda answer: {v for v, c in answer if c > cut}
        return None if strictly(ours) == strictly(theirs) else "Q3: the variants above the cut differ"
    if question == "Q5":
        return None if ours == theirs else f"Q5 timelines: {ours} vs {theirs}"
    if question == "Q7":
        if (ours["reached"], ours["not_reached"]) != (theirs["reached"], theirs["not_reached"]):
            return f"Q7 classes: {ours['reached']}/{ours['not_reached']} vs {theirs['reached']}/{theirs['not_reached']}"
        theirs_counts = {step: tuple(counts) for step, counts in theirs["counts"].items()}
        ours_counts = {step: tuple(counts) for step, counts in ours["counts"].items()}
        return None if ours_counts == theirs_counts else f"Q7: {len(set(ours_counts.items()) ^ set(theirs_counts.items()))} steps differ"
    if question == "Q8":
        if set(ours) != set(theirs):
            return f"Q8 channels: {sorted(ours)} vs {sorted(theirs)}"
        for channel, credit in ours.items():
            if any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(credit, theirs[channel])):
                return f"Q8 {channel}: {credit} vs {theirs[channel]}"
        return None
    return None


def peer_main(args):
    ids = json.load(open(args.ids))
    runner = {"duckdb": run_duckdb, "chdb": run_chdb, "pm4py": run_pm4py}[args.peer]
    print(json.dumps(runner(args.parquet, args.work, ids)))


def run_size(args, size_text):
    events = parse_size(size_text)
    work = os.path.join(args.dir, size_text)
    os.makedirs(work, exist_ok=True)
    parquet = os.path.join(work, "events.parquet")
    if not os.path.exists(parquet):
        subprocess.run([args.binary, "generate", "--shape", "zipf", "--events", str(events), "--out", parquet], check=True)
    import pyarrow.parquet as pq
    customers = pq.read_table(parquet, columns=["customer_id"]).column(0).unique().to_pylist()
    ids = random.Random(42).sample(customers, min(1000, len(customers)))
    ids_path = os.path.join(work, "ids.json")
    json.dump(ids, open(ids_path, "w"))
    print(f"== {size_text}: {events:,} events, {len(customers):,} customers", file=sys.stderr)
    results = {"waymark": run_waymark(args.binary, parquet, work, ids)}
    print("   waymark done", file=sys.stderr)
    for peer in ["duckdb", "chdb", "pm4py"]:
        if peer == "pm4py" and events > PM4PY_MAX_EVENTS:
            results[peer] = {"skipped": f"over {PM4PY_MAX_EVENTS:,} events pm4py takes over 10 minutes"}
            continue
        out = subprocess.run([sys.executable, __file__, "--peer", peer, "--parquet", parquet, "--work", work, "--ids", ids_path],
                             check=True, capture_output=True, text=True)
        results[peer] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"   {peer} done", file=sys.stderr)
    problems = []
    for peer, result in results.items():
        if peer == "waymark" or "skipped" in result:
            continue
        for question, answer in result["questions"].items():
            problem = agree(question, results["waymark"]["questions"][question]["answer"], answer["answer"])
            if problem:
                problems.append(f"{peer} {problem}")
        if "Q5" in result:
            problem = agree("Q5", results["waymark"]["Q5"]["answer"], result["Q5"]["answer"])
            if problem:
                problems.append(f"{peer} {problem}")
    return events, len(customers), results, problems


def table(all_results):
    lines = []
    names = {"Q1": "Q1 funnel, 5 steps, 7 d", "Q2": "Q2 DFG, counts + mean time", "Q3": "Q3 top 20 variants", "Q4": "Q4 flows, depth 4",
             "Q7": "Q7 moments of truth (odds-ratio counts)", "Q8": "Q8 attribution, first/last/linear"}
    lines.append("| size | question | Waymark | DuckDB | chDB | pm4py | fastest peer / Waymark |")
    lines.append("|---|---|---|---|---|---|---|")
    for size_text, (events, customers, results, _) in all_results.items():
        def cell(peer, question):
            result = results[peer]
            if "skipped" in result:
                return "skipped"
            if question not in result["questions"]:
                return "n/a"
            return f"{result['questions'][question]['warm'] * 1e3:,.0f} ms"
        for question in ["Q1", "Q2", "Q3", "Q4", "Q7", "Q8"]:
            ours = results["waymark"]["questions"][question]["warm"]
            peers = [results[p]["questions"][question]["warm"] for p in ["duckdb", "chdb", "pm4py"] if "questions" in results[p] and question in results[p]["questions"]]
            ratio = f"{min(peers) / ours:,.1f}×" if peers else "–"
            cold = results["waymark"]["questions"][question]["cold"] * 1e3
            lines.append(f"| {size_text} | {names[question]} | {ours * 1e3:,.0f} ms (cold {cold:,.0f}) | {cell('duckdb', question)} | {cell('chdb', question)} | {cell('pm4py', question)} | {ratio} |")
        q5 = lambda p: (f"{results[p]['Q5']['p50_ms']:.2f} / {results[p]['Q5']['p99_ms']:.2f} ms" if "Q5" in results[p] else ("skipped" if "skipped" in results[p] else "n/a"))
        lines.append(f"| {size_text} | Q5 timeline lookup p50 / p99 | {q5('waymark')} | {q5('duckdb')} | {q5('chdb')} | {q5('pm4py')} | |")
        load = lambda p: (f"{results[p]['load_s']:.1f} s" if "load_s" in results[p] else "skipped")
        peers = [results[p]["load_s"] for p in ["duckdb", "chdb"] if "load_s" in results[p]]
        lines.append(f"| {size_text} | Q6 load ({events:,} events, {customers:,} customers) | {load('waymark')} | {load('duckdb')} | {load('chdb')} | {load('pm4py')} | {min(peers) / results['waymark']['load_s']:.2f}× |")
        mem = lambda p: (f"{results[p]['rss_mb']:,.0f} MB" if "rss_mb" in results[p] else "skipped")
        lines.append(f"| {size_text} | peak memory | {mem('waymark')} | {mem('duckdb')} | {mem('chdb')} | {mem('pm4py')} | |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary")
    parser.add_argument("--size", action="append")
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    parser.add_argument("--dir", default=os.environ.get("WAYMARK_BENCH_DIR", os.path.expanduser("~/.cache/waymark-bench")))
    parser.add_argument("--peer")
    parser.add_argument("--parquet")
    parser.add_argument("--work")
    parser.add_argument("--ids")
    args = parser.parse_args()
    if args.peer:
        return peer_main(args)
    sizes = args.size or ["1M"]
    all_results = {size: run_size(args, size) for size in sizes}
    from importlib.metadata import version as installed
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    version = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    header = (f"`bench/run {' '.join('--size ' + s for s in sizes)}` on {platform.machine()}, {os.cpu_count()} cores, "
              f"{datetime.date.today()}, commit {commit}; {version}, DuckDB {installed('duckdb')}, chDB {installed('chdb')}, "
              f"pm4py {installed('pm4py')}. Warm = median of {RUNS} after a cold run; Waymark answers over HTTP from `waymark serve`.")
    text = header + "\n\n" + table(all_results)
    problems = [p for _, (_, _, _, ps) in all_results.items() for p in ps]
    print(text)
    if problems:
        print("\nANSWERS DIFFER — these speed numbers do not count:\n" + "\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print("\nAll systems agree on every question they answer.")
    if args.write:
        with open("BENCHMARKS.md", "a") as out:
            out.write("\n### Peer run\n\n" + text + "\n")


if __name__ == "__main__":
    main()
