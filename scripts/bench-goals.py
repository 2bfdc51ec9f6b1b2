#!/usr/bin/env python3
"""Turns the JSON lines scripts/bench.sh recorded (target/bench/records/)
into the tables of docs/performance.md and the performance goals, each as
measured, met or not.

    python3 scripts/bench-goals.py target/bench/records > goals.md

Reads only what the runs wrote; a goal whose runs are missing says so.
"""

import json
import statistics
import sys
from pathlib import Path


def load(directory):
    runs = {}
    for path in sorted(Path(directory).glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        runs[path.stem] = lines
    return runs


def rows(lines, lane):
    return [r for r in lines if r.get("lane") == lane and "rps" in r]


def kind(lines, name):
    found = [r for r in lines if r.get("kind") == name]
    return found[-1] if found else None


def med(values):
    return statistics.median(values) if values else float("nan")


def rng(values, fmt="{:,.0f}"):
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def ms(us):
    return us / 1000.0


def verdict(ok):
    return "**met**" if ok else "**not met**"


def per_call_table(runs, out):
    out.append("## Per call: system, ceiling and peers")
    out.append("")
    out.append("Median of the alternating system/ceiling pairs; peers once each. "
               "Ratios are the system's over the other lane (throughput) or the "
               "system's p50 over the ceiling's.")
    out.append("")
    out.append("| broker | reply queue | in flight | system calls/s | ceiling calls/s | "
               "system/ceiling (pairs) | p50 system / ceiling ms | p50 ratio | lost+errors |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for name, lines in runs.items():
        summary = kind(lines, "compare")
        if summary is None:
            continue
        broker, mode, load = name.split("-")[:3]
        system, ceiling = rows(lines, "system"), rows(lines, "ceiling")
        pairs = " ".join(f"{r:.2f}" for r in summary["throughput_ratios"])
        lost = sum(r["lost"] + r["errors"] for r in system + ceiling)
        out.append(
            f"| {broker} | {mode} | {load[1:]} | {rng([r['rps'] for r in system])} | "
            f"{rng([r['rps'] for r in ceiling])} | **{summary['median_throughput_ratio']:.2f}** ({pairs}) | "
            f"{med([ms(r['p50_us']) for r in system]):.2f} / {med([ms(r['p50_us']) for r in ceiling]):.2f} | "
            f"{summary['median_p50_ratio']:.2f} | {lost} |")
    out.append("")
    out.append("| broker | reply queue | in flight | lane | guarantees | calls/s | p50 ms | system over it |")
    out.append("|---|---|---|---|---|---|---|---|")
    guarantees = {
        "ceiling-unconfirmed": "the ceiling lane's, but requests neither confirmed nor mandatory",
        "seed-py": "the system's (persistent, confirmed, mandatory requests; replies confirmed before the ack)",
        "ruststream": "its defaults: transient, unconfirmed, non-mandatory requests; replies unconfirmed",
        "ruststream-confirmed": "persistent expiring requests, replies confirmed before the ack; "
                                "requests neither confirmed nor mandatory (its API has neither)",
    }
    for name, lines in runs.items():
        summary = kind(lines, "compare")
        if summary is None:
            continue
        broker, mode, load = name.split("-")[:3]
        system_rps = summary["system_rps_median"]
        others = rows(lines, "ceiling-unconfirmed") + [
            r for r in lines if r.get("lane") in ("seed-py", "ruststream", "ruststream-confirmed")]
        for r in others:
            out.append(
                f"| {broker} | {mode} | {load[1:]} | {r['lane']} | {guarantees.get(r['lane'], '')} | "
                f"{r['rps']:,.0f} | {ms(r['p50_us']):.2f} | {system_rps / r['rps']:.2f}x |")
    out.append("")


def batching_table(runs, out):
    lines = runs.get("batching")
    if not lines:
        return
    out.append("## Bulk: producer stdin, names/s by batch size (RabbitMQ 3.10)")
    out.append("")
    out.append("| --batch | names | names/s | seconds | producer CPU s | consumers CPU s | "
               "producer RSS MB at 10% / 95% | consumers RSS MB at 10% / 95% |")
    out.append("|---|---|---|---|---|---|---|---|")
    for r in rows_bulk(lines):
        out.append(
            f"| {r['batch']} | {r['names']:,} | {r['names_per_s']:,.0f} | {r['elapsed_s']:.2f} | "
            f"{r['producer_cpu_s']:.1f} | {r['consumers_cpu_s']:.1f} | "
            f"{r['producer_rss_kib_at_10'] / 1024:.1f} / {r['producer_rss_kib_at_95'] / 1024:.1f} | "
            f"{r['consumers_rss_kib_at_10'] / 1024:.1f} / {r['consumers_rss_kib_at_95'] / 1024:.1f} |")
    one = [r for r in lines if r.get("lane") == "one-in-flight"]
    summary = kind(lines, "batching")
    if one and summary:
        p50 = {b: [ms(r["p50_us"]) for r in one if r["batch"] == b] for b in (1, 100)}
        ratios = " ".join(f"{x:.2f}" for x in summary["one_in_flight_p50_ratios_batch_100_over_1"])
        out.append("")
        out.append(f"One name in flight: p50 {rng(p50[1], '{:.3f}')} ms at --batch 1, "
                   f"{rng(p50[100], '{:.3f}')} ms at --batch 100; ratio per pair {ratios}, "
                   f"median **{summary['median_one_in_flight_p50_ratio']:.2f}**.")
    out.append("")


def rows_bulk(lines):
    return [r for r in lines if r.get("lane") == "batching"]


def stock_table(runs, out):
    stock = runs.get("stock")
    greetings = runs.get("3.10-exclusive-c64")
    if not stock:
        return
    out.append("## The second application beside greetings (RabbitMQ 3.10, 64 in flight, prefetch 1)")
    out.append("")
    out.append("| application | responders | rule | calls/s | p50 ms | p99 ms |")
    out.append("|---|---|---|---|---|---|")
    if greetings:
        for r in rows(greetings, "system"):
            out.append(f"| greetings | 2 consumer processes | all expected words | {r['rps']:,.0f} | "
                       f"{ms(r['p50_us']):.2f} | {ms(r['p99_us']):.2f} |")
    for lane, rule in (("stk-all", "Until::All"), ("stk-live", "Until::Live (roll call per call)")):
        for r in rows(stock, lane):
            out.append(f"| stock | 2 warehouses in the bench process | {rule} | {r['rps']:,.0f} | "
                       f"{ms(r['p50_us']):.2f} | {ms(r['p99_us']):.2f} |")
    out.append("")


def goals(runs, out):
    out.append("## Goals")
    out.append("")
    out.append("| goal | measured | result |")
    out.append("|---|---|---|")
    for name in ("3.10-exclusive-c1", "3.10-exclusive-c64", "3.10-direct-c1", "3.10-direct-c64",
                 "4.0-exclusive-c1", "4.0-exclusive-c64", "4.0-direct-c1", "4.0-direct-c64"):
        summary = kind(runs.get(name, []), "compare")
        if summary is None:
            out.append(f"| throughput >= 1.0x ceiling ({name}) | not run | - |")
            continue
        ratio = summary["median_throughput_ratio"]
        out.append(f"| throughput >= 1.0x ceiling ({name}) | {ratio:.2f} | {verdict(ratio >= 1.0)} |")
        if name.endswith("-c1"):
            p50 = summary["median_p50_ratio"]
            out.append(f"| p50 <= 1.05x ceiling ({name}) | {p50:.2f} | {verdict(p50 <= 1.05)} |")
    for name in ("3.10-exclusive-c1", "3.10-exclusive-c64"):
        lines = runs.get(name, [])
        summary = kind(lines, "compare")
        if summary is None:
            continue
        system = summary["system_rps_median"]
        ceiling = med([r["rps"] for r in rows(lines, "ceiling")])
        peers = {r["lane"]: r for r in lines if r.get("lane") in ("seed-py", "ruststream-confirmed")}
        weak = rows(lines, "ceiling-unconfirmed")
        if "seed-py" in peers:
            ratio = system / peers["seed-py"]["rps"]
            out.append(f"| >= 1.0x the seed-py peer, equal guarantees ({name}) | {ratio:.2f}x | "
                       f"{verdict(ratio >= 1.0)} |")
        if "ruststream-confirmed" in peers and weak:
            peer = peers["ruststream-confirmed"]["rps"]
            discount = ceiling / weak[0]["rps"]
            ratio = system / peer
            out.append(
                f"| >= 1.0x ruststream-confirmed ({name}) | {ratio:.2f}x as run; its requests are "
                f"unconfirmed: the ceiling lane runs {1 / discount:.2f}x faster without request "
                f"confirms, so at equal guarantees about {system / (peer * discount):.2f}x | "
                f"{verdict(ratio >= 1.0)} as run; {verdict(system / (peer * discount) >= 1.0)} at equal "
                f"guarantees (estimated) |")
    lines = runs.get("batching", [])
    bulk = rows_bulk(lines)
    summary = kind(lines, "batching")
    long_runs = [r for r in bulk if r["names"] >= 1_000_000]
    if long_runs:
        r = long_runs[-1]
        out.append(f"| >= 250,000 names/s at --batch {r['batch']} over {r['names']:,} names | "
                   f"{r['names_per_s']:,.0f} | {verdict(r['names_per_s'] >= 250_000)} |")
        growth = r["producer_rss_kib_at_95"] / max(r["producer_rss_kib_at_10"], 1)
        out.append(f"| memory flat over that run (producer RSS at 95% within 10% of 10%) | "
                   f"{r['producer_rss_kib_at_10'] / 1024:.1f} -> {r['producer_rss_kib_at_95'] / 1024:.1f} MB | "
                   f"{verdict(growth <= 1.10)} |")
    if summary and summary.get("long_run_over_batch_1") is not None:
        ratio = summary["long_run_over_batch_1"]
        out.append(f"| --batch 1000 >= 150x --batch 1, same run | {ratio:.0f}x | {verdict(ratio >= 150)} |")
    out.append("")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench-goals.py RECORDS_DIR")
    runs = load(sys.argv[1])
    if not runs:
        sys.exit(f"bench-goals: no records in {sys.argv[1]}: run scripts/bench.sh first")
    out = []
    goals(runs, out)
    per_call_table(runs, out)
    batching_table(runs, out)
    stock_table(runs, out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
