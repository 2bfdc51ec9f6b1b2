#!/usr/bin/env python3
"""Where one call's time goes, from the RPC client's trace-level events.

Run the producer with `RUST_LOG=warn,rabbit_gather::rpc=trace` (its log on stderr),
then `scripts/trace-call.py LOG`: for each call, the time from the request's
publish to each reply, to its publisher confirm and to the end of the call
(median and p90, in microseconds), and in how many calls every reply was in
before the confirm. A call ends without waiting for the confirm once every
expected reply is in, so its confirm event is missing then (its future was
dropped). The first 20 calls are skipped as warm-up. docs/performance.md.
"""

import datetime
import re
import statistics
import sys

EVENT = re.compile(r"(\S+)Z TRACE (.*?) correlation_id=(\w+)")


def main(path: str) -> int:
    events: dict[str, list[tuple[str, float]]] = {}
    with open(path, encoding="utf-8") as log:
        for line in log:
            match = EVENT.match(line)
            if match:
                at = datetime.datetime.fromisoformat(match.group(1)).timestamp()
                events.setdefault(match.group(3), []).append((match.group(2), at))
    rows = []
    for steps in list(events.values())[20:]:
        published = [at for step, at in steps if step == "request published"]
        if not published:
            continue
        since = {step: (at - published[0]) * 1e6 for step, at in steps}
        replies = sorted((at - published[0]) * 1e6 for step, at in steps if step == "reply in")
        if "call done" not in since or not replies:
            continue
        rows.append((replies[0], replies[-1], since.get("request confirmed"), since["call done"]))
    if not rows:
        print("no complete call in the log (was RUST_LOG=rabbit_gather::rpc=trace set?)", file=sys.stderr)
        return 1
    print(f"{len(rows)} calls (first 20 skipped as warm-up), microseconds after the publish:")
    for i, label in enumerate(["first reply", "last reply", "confirm", "call done"]):
        values = sorted(r[i] for r in rows if r[i] is not None)
        if values:
            p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
            print(f"  {label:12s} n={len(values):5d}  p50 {statistics.median(values):8.0f}  p90 {p90:8.0f}")
    before = sum(1 for r in rows if r[2] is None or r[2] > r[1])
    print(f"every reply in before the confirm: {before} of {len(rows)} calls")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
