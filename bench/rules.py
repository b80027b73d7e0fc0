"""The cost of journey management on the ingest path, in one run (issue 20, acceptance 4):

1. HTTP ingest at full speed (wrk, bench/ingest.lua) without rules, then with 100 active triggers and 20 segments;
   the rules worker's evaluation time per event from its Prometheus histogram (waymark_rules_event_seconds).
2. Ingest paced at a fixed rate (default 10,000 events/s) with a webhook trigger on 1 % of the events: the time
   from each event's acknowledgement to its webhook's arrival at a loopback receiver.

Usage (through bench/rules): python bench/rules.py --binary target/release/waymark [--seconds 20] [--rate 10000]
"""

import argparse
import base64
import http.client
import http.server
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time

STEPS = ["Product Viewed", "Added to Cart", "Checkout Started", "Login Attempted", "Reviews Read", "Searched",
         "Help Article Viewed", "Feedback Submitted", "Order Completed", "Call Started"]
AUTH = "Basic " + base64.b64encode(b"bench-key:").decode()


def definitions(receiver_url):
    """100 triggers and 20 segments over the benchmark's steps: event triggers with conditions on the event and on
    windowed counts, absence waits, segment entries; segments on counts, recency and properties."""
    out = []
    for s in range(20):
        step, other = STEPS[s % 10], STEPS[(s + 3) % 10]
        condition = [
            f'count("{step}", "1h") >= {1 + s % 3}',
            f'did("{step}") && !did("{other}")',
            f'count("{step}") >= 2 && count("{other}", "1d") == 0',
            f'last_step == "{step}"',
        ][s % 4]
        out.append(f"[[segments]]\nname = \"seg-{s}\"\ncondition = '{condition}'\n")
    for t in range(100):
        step, other = STEPS[t % 10], STEPS[(t + 1) % 10]
        kind = t % 10
        if kind < 6:
            condition = [
                "event.properties.price > 200.0",
                f'count("{step}", "1h") >= 3',
                f'in_segment("seg-{t % 20}")',
                'event.channel == "web" && event.properties.step_index > 50',
                f'!did("{other}")',
                f'count("{other}", "30m") == 0 && event.properties.path.startsWith("/products")',
            ][kind]
            body = f'on = "event"\nstep = "{step}"\ncondition = \'{condition}\'\n'
        elif kind < 9:
            body = f'on = "absence"\nafter = "{step}"\nmissing = "{other}"\nwithin = "{30 * (1 + t % 4)}m"\n'
        else:
            body = f'on = "segment_entry"\nsegment = "seg-{t % 20}"\n'
        out.append(f"[[triggers]]\nname = \"trig-{t}\"\n{body}cap_per_customer_per_day = 2\nreentry = \"every_time\"\n")
    out.append(f"""[[triggers]]
name = "checkout-failed"
on = "event"
step = "Checkout Failed"
reentry = "every_time"
expect_steps = ["Checkout Failed"]
[[triggers.actions]]
type = "webhook"
url = "{receiver_url}"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
""")
    return "\n".join(out)


def start_server(binary, data, extra=()):
    ready = open(os.path.join(data, "ready"), "w+")
    process = subprocess.Popen([binary, "--data", data, "--json", "serve", "--listen", "127.0.0.1:0",
                                "--write-key", "bench-key", *extra], stdout=ready, stderr=subprocess.DEVNULL)
    for _ in range(200):
        ready.seek(0)
        line = ready.readline()
        if line:
            return process, json.loads(line)["url"].rstrip("/")
        time.sleep(0.05)
    sys.exit("the server did not start")


def get(url, path):
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", path)
    return connection.getresponse().read().decode()


def histogram(metrics, name):
    """(count, {bound: cumulative}) of a Prometheus histogram."""
    buckets, count = {}, 0
    for row in metrics.splitlines():
        if row.startswith(name + "_bucket"):
            bound = row.split('le="')[1].split('"')[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(row.split()[-1])
        elif row.startswith(name + "_count"):
            count = float(row.split()[-1])
    return count, buckets


def quantile_bound(buckets, q):
    total = max(buckets.values()) if buckets else 0
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound
    return float("nan")


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", "bench/ingest.lua", url],
                         capture_output=True, text=True, check=True).stdout
    line = next(row for row in out.splitlines() if row.startswith("WRK"))
    fields = dict(item.split("=") for item in line.split()[1:])
    ok = int(fields["requests"]) - int(fields["non2xx"]) - int(fields["errors"])
    return ok * 100 / float(fields["seconds"])


def throughput(binary, work, seconds, rules):
    data = os.path.join(work, "with-rules" if rules else "without-rules")
    os.makedirs(data)
    if rules:
        with open(os.path.join(data, "rules.toml"), "w") as f:
            f.write(definitions("http://127.0.0.1:9/unused"))
    server, url = start_server(binary, data)
    try:
        rate = wrk(url, seconds)
        result = {"events_per_sec": rate}
        if rules:
            # The worker may still be reading the backlog: wait until it has read every stored event.
            stored = json.loads(get(url, "/v1/stats"))["events"]
            behind_from = time.time()
            deadline = time.time() + 600
            while json.loads(get(url, "/v1/rules/status"))["events"] < stored and time.time() < deadline:
                time.sleep(0.5)
            caught_up = time.time() - behind_from
            status = json.loads(get(url, "/v1/rules/status"))
            count, buckets = histogram(get(url, "/metrics"), "waymark_rules_event_seconds")
            result.update(rules_events=status["events"], stored=stored, triggers=status["triggers"],
                          segments=status["segments"], instances=status["instances"],
                          worker_rate=count / (seconds + caught_up) if count else float("nan"), caught_up=caught_up,
                          p50_us=quantile_bound(buckets, 0.5) * 1e6, p99_us=quantile_bound(buckets, 0.99) * 1e6,
                          p999_us=quantile_bound(buckets, 0.999) * 1e6)
        return result
    finally:
        server.terminate()
        server.wait()


class Receiver(http.server.BaseHTTPRequestHandler):
    arrivals = {}
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        now = time.monotonic()
        message = json.loads(body)["data"]["cause"]["message_id"]
        with Receiver.lock:
            Receiver.arrivals.setdefault(message, now)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def receive(port_out, stop, arrivals_out):
    """The webhook receiver, in a process of its own: the senders' work never delays its clock readings
    (time.monotonic is one system-wide clock, so readings compare across processes)."""
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port_out.put(receiver.server_address[1])
    stop.wait()
    receiver.shutdown()
    arrivals_out.put(dict(Receiver.arrivals))


def send(url, sender, senders, per_batch, interval, seconds, acked_out):
    """One paced sender, in a process of its own; reports when each `Checkout Failed` event was acknowledged."""
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    acked = {}
    start, n = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        events, failed = [], []
        for i in range(per_batch):
            customer = (n * per_batch + i) * senders + sender
            message = f"p{sender}-{n}-{i}"
            step = "Checkout Failed" if i == 42 else STEPS[i % 10]
            if i == 42:
                failed.append(message)
            events.append({"type": "track", "messageId": message, "userId": f"cust-{customer % 50000:06d}",
                           "event": step, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "properties": {"product": "Smart Lock", "price": 229.0, "path": "/products/x",
                                          "step_index": i}, "context": {"channel": "web"}})
        connection.request("POST", "/v1/batch", json.dumps({"batch": events}),
                           {"Content-Type": "application/json", "Authorization": AUTH})
        response = connection.getresponse()
        response.read()
        now = time.monotonic()
        if response.status == 200:
            for message in failed:
                acked[message] = now
        n += 1
        pause = start + n * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    acked_out.put(acked)


def latency(binary, work, seconds, rate):
    context = multiprocessing.get_context("fork")
    port_queue, arrivals_queue, stop = context.Queue(), context.Queue(), context.Event()
    receiver = context.Process(target=receive, args=(port_queue, stop, arrivals_queue))
    receiver.start()
    port = port_queue.get()
    data = os.path.join(work, "latency")
    os.makedirs(data)
    with open(os.path.join(data, "rules.toml"), "w") as f:
        f.write(definitions(f"http://127.0.0.1:{port}/hook"))
    server, url = start_server(binary, data)
    senders, per_batch = 2, 100
    interval = senders * per_batch / rate
    acked_queue = context.Queue()
    processes = [context.Process(target=send, args=(url, s, senders, per_batch, interval, seconds, acked_queue))
                 for s in range(senders)]
    began = time.monotonic()
    for process in processes:
        process.start()
    acked = {}
    for _ in processes:
        acked.update(acked_queue.get())
    for process in processes:
        process.join()
    elapsed = time.monotonic() - began
    time.sleep(3)
    server.terminate()
    server.wait()
    stop.set()
    arrivals = arrivals_queue.get()
    receiver.join()
    delays = sorted((arrivals[m] - t) * 1e3 for m, t in acked.items() if m in arrivals)
    pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] if delays else float("nan")
    sent = len(acked) * per_batch
    return {"events_per_sec": sent / elapsed, "webhooks_expected": len(acked), "webhooks_received": len(delays),
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": delays[-1] if delays else float("nan")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--latency-only", action="store_true", help="only the paced acknowledgement-to-webhook run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.latency_only:
            paced = latency(args.binary, work, args.seconds, args.rate)
        else:
            plain = throughput(args.binary, work, args.seconds, rules=False)
            ruled = throughput(args.binary, work, args.seconds, rules=True)
            paced = latency(args.binary, work, args.seconds, args.rate)
    if not args.latency_only:
        report_throughput(plain, ruled)
    print(f"paced ingest {paced['events_per_sec']:,.0f} events/s: {paced['webhooks_received']} of "
          f"{paced['webhooks_expected']} webhooks arrived; acknowledgement to arrival p50 {paced['p50_ms']:.1f} ms, "
          f"p99 {paced['p99_ms']:.1f} ms, max {paced['max_ms']:.1f} ms")


def report_throughput(plain, ruled):
    print(f"ingest without rules: {plain['events_per_sec']:,.0f} events/s")
    print(f"ingest with {ruled['triggers']} triggers and {ruled['segments']} segments: "
          f"{ruled['events_per_sec']:,.0f} events/s; the worker read {ruled['rules_events']:,} of {ruled['stored']:,} "
          f"events, {ruled['instances']:,} instances, {ruled['caught_up']:.0f} s after ingest stopped "
          f"(~{ruled['worker_rate']:,.0f} events/s); evaluation per event p50 <= {ruled['p50_us']:.0f} us, "
          f"p99 <= {ruled['p99_us']:.0f} us, p99.9 <= {ruled['p999_us']:.0f} us (histogram bucket bounds)")



if __name__ == "__main__":
    main()
