"""Page latency of every UI page in a real browser, on an idle store and while events arrive (issue 22, point 7).

1. A demo store (`waymark demo --no-serve --customers N`) served by `waymark serve` with a write key.
2. Headless Chromium through chromedriver opens every page of the navigation in turn; a page's latency is what
   the page itself records (`data-ms`: from its address to its rendered view — every API request it makes, then
   drawing).
3. Per page, back to back: SAMPLES visits on the idle store, then SAMPLES visits while wrk posts RATE events a
   second to the collector (`bench/ingest.lua`, paced: batches of 100 Segment events, each acknowledged only once
   durable; a failed request fails the run). Back to back because the store grows by RATE events a second while
   loaded: a page's loaded visits compared with idle visits made minutes earlier, on a store a fraction of the
   size, would measure the growth rather than the ingest.

Prints one table: per page the median and p95 idle, the same under ingest, and the p95 ratio; then the ingest
rate achieved and how many journey views were extended rather than rebuilt.

Usage (through bench/ui-latency-under-ingest): python bench/ui_latency.py --binary target/release/waymark
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


class Browser:
    def __init__(self, width):
        port = free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        options = {"binary": "/usr/bin/chromium", "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--window-size={width},1000"]}
        for _ in range(100):
            try:
                session = call("POST", f"{self.base}/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}})
                self.session = session["value"]["sessionId"]
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("chromedriver did not start")

    def script(self, text):
        return call("POST", f"{self.base}/session/{self.session}/execute/sync", {"script": text, "args": []})["value"]

    def open(self, url):
        call("POST", f"{self.base}/session/{self.session}/url", {"url": url})

    def page_ms(self, url, timeout=120):
        """Opens `url` (a hash route of the UI already loaded) and returns the page's own latency."""
        self.script(f"location.hash = {json.dumps(url.split('#', 1)[1])}")
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            state = self.script("const p = document.getElementById('page'); return [p.dataset.state, p.dataset.hash === location.hash, p.dataset.ms]")
            if state[0] == "ready" and state[1]:
                return float(state[2])
            if state[0] == "error":
                raise SystemExit(f"{url}: the page shows an error")
            time.sleep(0.005)
        raise SystemExit(f"{url}: not ready after {timeout} s")

    def close(self):
        try:
            call("DELETE", f"{self.base}/session/{self.session}")
        finally:
            self.driver.kill()


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def route_of(page):
    return {"customer": "customer?id=cust-000010", "process": "process?views=show"}.get(page, page)


def visit(browser, url, page, tag):
    # A parameter of its own per visit, so each visit renders the page anew.
    route = route_of(page)
    separator = "&" if "?" in route else "?"
    return browser.page_ms(f"{url}/#/{route}{separator}bench={tag}")


def start_wrk(url, rate, run):
    env = dict(os.environ, WAYMARK_BENCH_RATE=str(rate), WAYMARK_BENCH_RUN=run)
    return subprocess.Popen(["wrk", "-t1", "-c8", "-d3600s", "-s", "bench/ingest.lua", url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def stop_wrk(wrk):
    wrk.send_signal(signal.SIGINT)  # wrk prints its summary (and the script's failure count) on an interrupt
    output, _ = wrk.communicate(timeout=30)
    return output


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--rate", type=int, default=10000, help="events per second while loaded")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of ingest before a page's loaded visits")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="waymark-ui-latency-")
    data = os.path.join(work, "data")
    subprocess.run([args.binary, "--data", data, "--json", "demo", "--no-serve", "--customers", str(args.customers)],
                   check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([args.binary, "--data", data, "serve", "--listen", f"127.0.0.1:{port}", "--write-key", "bench-key"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk = None
    browser = None
    try:
        for _ in range(300):
            try:
                call("GET", f"{url}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        before = call("GET", f"{url}/v1/stats")["events"]
        browser = Browser(args.width)
        browser.open(f"{url}/#/overview")
        browser.page_ms(f"{url}/#/overview?bench=first")
        pages = browser.script("return [...document.querySelectorAll('.top nav a')].map((a) => a.dataset.page)")
        # One warm-up pass: the views every page reads are built once.
        for page in pages:
            visit(browser, url, page, "warm")
        # Per page, idle then under ingest, back to back: the store grows by RATE events a second while loaded, so
        # comparing a page's loaded visits with idle visits made minutes earlier would measure the growth, not the
        # ingest. Each loaded phase starts wrk afresh (its own message ids), lets it settle, and is discarded
        # through one visit, as the idle phase is.
        idle, loaded, growth = {}, {}, {}
        stored, loaded_seconds = 0, 0.0
        for index, page in enumerate(pages):
            visit(browser, url, page, f"idle-warm-{index}")
            idle_events = call("GET", f"{url}/v1/stats")["events"]
            idle[page] = [visit(browser, url, page, f"idle-{index}-{sample}") for sample in range(args.samples)]
            wrk = start_wrk(url, args.rate, f"ui{index}-")
            started = time.monotonic()
            at_start = call("GET", f"{url}/v1/stats")["events"]
            time.sleep(args.settle)
            visit(browser, url, page, f"load-warm-{index}")
            loaded[page] = [visit(browser, url, page, f"load-{index}-{sample}") for sample in range(args.samples)]
            at_end = call("GET", f"{url}/v1/stats")["events"]
            loaded_seconds += time.monotonic() - started
            stored += at_end - at_start
            output = stop_wrk(wrk)
            wrk = None
            if "WRK" in output and "non2xx=0 errors=0" not in output:
                raise SystemExit(f"{page}: the collector failed requests under load: {output.strip()}")
            growth[page] = (at_end - idle_events) / max(1, idle_events)
            time.sleep(1)
        after = call("GET", f"{url}/v1/stats")["events"]
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    finally:
        if wrk:
            wrk.kill()
        if browser:
            browser.close()
        server.terminate()
        server.wait(timeout=60)
    print(f"{args.customers:,} demo customers ({before:,} events at the start, {after:,} at the end); {args.samples} visits "
          f"per page idle and as many under ingest, back to back, Chromium at {args.width} px.")
    print(f"Under ingest: {stored / loaded_seconds:,.0f} events/s stored while loaded ({args.rate:,}/s offered by wrk); "
          f"a page's store grew at most {100 * max(growth.values()):.1f} % from its idle visits to its last loaded one.")
    for line in metrics.splitlines():
        if line.startswith("waymark_journey_views"):
            print(line)
    print()
    print("| page | idle p50 (ms) | idle p95 (ms) | under ingest p50 (ms) | under ingest p95 (ms) | p95 ratio |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for page in pages:
        ratio = p95(loaded[page]) / max(1.0, p95(idle[page]))
        worst = max(worst, ratio)
        print(f"| {page} | {statistics.median(idle[page]):.0f} | {p95(idle[page]):.0f} | "
              f"{statistics.median(loaded[page]):.0f} | {p95(loaded[page]):.0f} | {ratio:.2f} |")
    print()
    print(f"Worst p95 ratio: {worst:.2f} (target: within 2x of idle)")


if __name__ == "__main__":
    sys.exit(main())
