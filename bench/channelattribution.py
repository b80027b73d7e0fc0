"""Waymark's Markov attribution against ChannelAttribution's, on the package's own example data.

Waymark solves the absorbing chain exactly; ChannelAttribution estimates the same removal effects by simulating
paths, so the two agree within ChannelAttribution's Monte-Carlo noise. For each order the script runs both, in the
same run, and checks every channel's removal effect: the difference must stay within 4 standard errors of a
simulated estimate, se = sqrt(2 p (1 - p) / N) / p (two simulated conversion rates, with and without the channel,
each from at least N = nsim_start paths; p the rate with every channel). It prints a table and the times, and exits
1 when a channel is outside that band. Usage (bench/attribution-vs-channelattribution runs it):

    python bench/channelattribution.py --binary target/release/waymark --paths ../shared/data/channelattribution/Data.csv
"""

import argparse
import contextlib
import io
import json
import math
import subprocess
import sys
import time

import pandas as pd

with contextlib.redirect_stdout(io.StringIO()):
    import ChannelAttribution as ca


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--paths", required=True)
    parser.add_argument("--orders", default="1,2,3,4")
    parser.add_argument("--nsim", type=float, default=1e6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = pd.read_csv(args.paths, sep=";")
    conversions = data["total_conversions"].sum()
    nulls = data["total_null"].sum()
    p = conversions / (conversions + nulls)
    se = math.sqrt(2 * p * (1 - p) / args.nsim) / p
    failures = 0
    print(f"{len(data)} rows, {conversions} conversions, {nulls} null paths; "
          f"ChannelAttribution nsim_start={args.nsim:.0e}, seed={args.seed}; band = 4 se = {4 * se:.4f}")
    for order in [int(order) for order in args.orders.split(",")]:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            theirs = ca.markov_model(data, "path", "total_conversions", var_value="total_conversion_value",
                                     var_null="total_null", order=order, out_more=True, verbose=False,
                                     flg_pro=False, seed=args.seed, nsim_start=args.nsim)
        their_secs = time.perf_counter() - started
        started = time.perf_counter()
        ours = json.loads(subprocess.run(
            [args.binary, "--json", "attribution", "--paths", args.paths, "--order", str(order)],
            check=True, capture_output=True, text=True).stdout)
        our_secs = time.perf_counter() - started
        ours = {credit["touchpoint"]: credit for credit in ours["touchpoints"]}
        print(f"\norder {order}: ChannelAttribution {their_secs:.2f} s, Waymark {our_secs:.3f} s "
              f"({their_secs / our_secs:.0f}x)")
        print(f"  {'channel':<10} {'CA removal':>11} {'Waymark':>9} {'diff':>8} {'CA conv':>9} {'Waymark':>9}")
        credited = {row.channel_name: row.total_conversions for row in theirs["result"].itertuples()}
        worst = 0.0
        for row in theirs["removal_effects"].itertuples():
            name = row.channel_name
            our = ours[name]
            diff = our["removal_effect"] - row.removal_effects_conversion
            worst = max(worst, abs(diff) / se)
            flag = "" if abs(diff) <= 4 * se else "  <-- outside the band"
            failures += bool(flag)
            print(f"  {name:<10} {row.removal_effects_conversion:>11.4f} {our['removal_effect']:>9.4f} "
                  f"{diff:>+8.4f} {credited[name]:>9.1f} {our['markov']['conversions']:>9.1f}{flag}")
        print(f"  largest difference: {worst:.1f} se")
    if failures:
        print(f"\n{failures} channel(s) outside the Monte-Carlo band")
        sys.exit(1)
    print("\nevery removal effect within ChannelAttribution's Monte-Carlo noise")


if __name__ == "__main__":
    main()
