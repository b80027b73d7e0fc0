"""Next best action latency at a paced request rate (issue 18, acceptance 5), in one run:

1. A demo store (`waymark demo --no-serve`, the retailer with its catalogue) and a read key.
2. `waymark serve` on loopback; a warm-up pass, then each endpoint paced at RATE requests a second for SECONDS
   seconds over four kept-alive connections, customers drawn at random (seeded), placements in turn:
   - GET /v1/customers/{id}/next-best-action?placement=…  (the decision)
   - GET /healthz                                         (the same server's HTTP floor)
   - GET /v1/customers/{id}                               (the customer's timeline: one store lookup)
   Latency is measured from each request's scheduled start (so a slow answer delays what follows and counts
   against it: no coordinated omission).

Usage (through bench/nba): python bench/nba.py --binary target/release/waymark [--seconds 30] [--rate 100]
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PLACEMENTS = ["home", "account", "app", "support", "email"]


def start_server(binary, data):
    ready = open(os.path.join(data, "ready"), "w+")
    process = subprocess.Popen([binary, "--data", data, "--json", "serve", "--listen", "127.0.0.1:0", "--no-warm-up",
                                "--rate-limit-read", "0"], stdout=ready, stderr=subprocess.DEVNULL)
    for _ in range(600):
        ready.seek(0)
        line = ready.readline()
        if line:
            return process, json.loads(line)["url"].rstrip("/")
        time.sleep(0.05)
    sys.exit("the server did not start")


def paced(url, key, paths, rate, seconds, connections=4):
    """Sends paths[i % len] at `rate` a second over `connections` connections; latencies in ms from schedule."""
    host, port = url.split("//")[1].split(":")
    interval = connections / rate
    latencies, errors, lock = [], [], threading.Lock()
    start = time.perf_counter() + 0.1

    def worker(offset):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Authorization": f"Bearer {key}"}
        n = 0
        while True:
            scheduled = start + (offset / rate) + n * interval
            if scheduled - start > seconds:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            path = paths[(n * connections + offset) % len(paths)]
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - scheduled) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    errors.append((response.status, body[:200]))
            n += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def known_customers(url, key, candidates):
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    known = []
    for customer in candidates:
        connection.request("GET", f"/v1/customers/{customer}", headers={"Authorization": f"Bearer {key}"})
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            known.append(customer)
    connection.close()
    return known


def summary(latencies):
    ordered = sorted(latencies)
    q = lambda p: ordered[min(len(ordered) - 1, int(p * len(ordered)))]
    return {"requests": len(ordered), "p50_ms": round(statistics.median(ordered), 3), "p90_ms": round(q(0.90), 3),
            "p99_ms": round(q(0.99), 3), "max_ms": round(ordered[-1], 3)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--customers", type=int, default=50000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="waymark-nba-") as data:
        print(f"generating the demo retailer at {args.customers} customers …", file=sys.stderr)
        subprocess.run([args.binary, "--data", data, "--json", "demo", "--customers", str(args.customers), "--no-serve"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        key = json.loads(subprocess.run([args.binary, "--data", data, "--json", "keys", "create", "--role", "read",
                                         "--name", "bench"], check=True, capture_output=True, text=True).stdout)["key"]
        server, url = start_server(args.binary, data)
        try:
            rng = random.Random(7)
            candidates = [f"cust-{rng.randrange(args.customers):06d}" for _ in range(6000)]
            # Customers who never signed in have no user id: keep the ids a customer has (one lookup each, which
            # also warms the pages those lookups read).
            ids = known_customers(url, key, candidates)[:5000]
            nba = [f"/v1/customers/{c}/next-best-action?placement={PLACEMENTS[i % len(PLACEMENTS)]}"
                   for i, c in enumerate(ids)]
            timeline = [f"/v1/customers/{c}" for c in ids]
            # Warm-up: the catalogue compiled, the offers log opened.
            paced(url, key, nba[:400], 200, 2)
            results = {}
            for name, paths in [("healthz", ["/healthz"]), ("next_best_action", nba), ("timeline", timeline)]:
                latencies, errors = paced(url, key, paths, args.rate, args.seconds)
                if errors:
                    sys.exit(f"{name}: {len(errors)} failed requests, e.g. {errors[0]}")
                results[name] = summary(latencies)
            results["next_best_action"]["p99_vs_healthz"] = round(
                results["next_best_action"]["p99_ms"] / results["healthz"]["p99_ms"], 2)
            results["next_best_action"]["p99_vs_timeline"] = round(
                results["next_best_action"]["p99_ms"] / results["timeline"]["p99_ms"], 2)
        finally:
            server.terminate()
            server.wait()
    report = {"customers": args.customers, "rate_per_s": args.rate, "seconds": args.seconds, **results}
    print(json.dumps(report, indent=2))
    nba_p99 = results["next_best_action"]["p99_ms"]
    print(f"next best action p99 {nba_p99:.2f} ms at {args.rate:.0f} requests/s "
          f"({'meets' if nba_p99 <= 5 else 'MISSES'} the 5 ms target); /healthz p99 {results['healthz']['p99_ms']:.2f} ms, "
          f"timeline p99 {results['timeline']['p99_ms']:.2f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
