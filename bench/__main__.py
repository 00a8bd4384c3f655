"""`python -m bench NAME [options]` (what `make bench` runs; `all` runs everything)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench import (
    api_write,
    common,
    e2e_latency,
    everything,
    growth,
    hop_cost,
    mark_cost,
    memory,
    relay_drain,
    relay_latency,
    scaling,
    summary,
    txn_cost,
    wakeup,
)
from bench.procs import API_WORKERS, foreign_activity
from bench.profile import summarize
from bench.warmup import warm_broker
from core.settings import Settings


def _ints(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",")]


def refuse_noise(allow: bool) -> None:
    """Figures taken beside other relays, consumers, APIs or test runs measure them as
    much as us: refuse (exit 2, naming them), or with --allow-noise mark every result
    of the run noisy."""
    others = foreign_activity()
    if not others:
        return
    if not allow:
        print(
            "bench: refusing to measure beside other platform processes or test runs"
            " (stop them, or pass --allow-noise to mark the results noisy):",
            *others,
            sep="\n  ",
            file=sys.stderr,
        )
        raise SystemExit(2)
    common.NOISE[:] = others
    common.progress(f"--allow-noise: every result is marked noisy; running beside {others}")


def main() -> None:
    noise = argparse.ArgumentParser(add_help=False)
    noise.add_argument(
        "--allow-noise",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run even beside other relays/consumers/APIs/tests; results say noisy: true",
    )
    parser = argparse.ArgumentParser(prog="python -m bench", parents=[noise])
    sub = parser.add_subparsers(dest="name", required=True)

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        # --allow-noise is accepted before or after the benchmark's name.
        return sub.add_parser(name, parents=[noise], **kwargs)

    drain = command("relay-drain", help="outbox drain vs raw transactional producer")
    drain.add_argument("--events", type=int, default=200_000)
    drain.add_argument("--keys", type=int, default=5_000)
    drain.add_argument("--repeat", type=int, default=3)
    drain.add_argument("--shards", type=int, default=4)
    drain.add_argument("--processes", type=int, default=1)
    latency = command("relay-latency", help="commit-to-Kafka latency at steady rates")
    latency.add_argument("--rates", default="100,1000,5000")
    latency.add_argument("--seconds", type=float, default=15)
    latency.add_argument(
        "--accumulate-ms",
        default="",
        help="RELAY_ACCUMULATE_MS values to compare, e.g. 0,10",
    )
    latency.add_argument("--shards", default="", help="RELAY_SHARDS values to compare, e.g. 4,1")
    latency.add_argument(
        "--partitions",
        default="",
        help="TOPIC_PARTITIONS values to compare (at the default shards and accumulation)",
    )
    txn = command("txn-cost", help="a Kafka transaction's cost by the partitions it touches")
    txn.add_argument("--transactions", type=int, default=300)
    txn.add_argument("--events", type=int, default=25)
    txn.add_argument("--partitions", default="1,2,6,12,24")
    txn.add_argument("--repeat", type=int, default=2)
    wake = command("wakeup", help="LISTEN/NOTIFY vs polling: writer cost, idle cost")
    mark = command("mark-cost", help="the relay's mark vs a layout that never rewrites rows")
    mark.add_argument("--events", type=int, default=100_000)
    wake.add_argument("--transactions", type=int, default=3000)
    wake.add_argument("--repeat", type=int, default=3)
    grow = command("growth", help="relay query and drain as the outbox grows")
    grow.add_argument("--sizes", default="0,100000,1000000")
    grow.add_argument("--backlog", type=int, default=20_000)
    e2e = command("e2e-latency", help="API commit -> consumer effect at steady rates")
    e2e.add_argument("--rates", default="100,1000,5000")
    e2e.add_argument("--seconds", type=float, default=15)
    e2e.add_argument("--warmup", type=float, default=3)
    e2e.add_argument("--api-workers", type=int, default=API_WORKERS)
    api = command("api-write", help="outbox vs domain-only vs dual write; Kafka down")
    api.add_argument("--seconds", type=float, default=8)
    api.add_argument("--repeat", type=int, default=3)
    api.add_argument("--outage-seconds", type=float, default=10, help="0: skip the outage")
    api.add_argument("--api-workers", type=int, default=API_WORKERS)
    scale = command("scaling", help="relay processes and shards; consumer processes")
    scale.add_argument("--events", type=int, default=100_000)
    scale.add_argument("--consumer-events", type=int, default=40_000)
    scale.add_argument("--repeat", type=int, default=3)
    cons = command("consumers", help="consumer throughput, 1 and 2 processes")
    cons.add_argument("--events", type=int, default=40_000)
    cons.add_argument("--repeat", type=int, default=3)
    cons.add_argument("--workload", choices=sorted(scaling.WORKLOADS), default="welcome")
    hop = command("hop-cost", help="a Postgres round trip and a socket ping-pong, no platform")
    hop.add_argument("--repeat", type=int, default=3)
    command("memory", help="peak RSS and queue bounds, from the result files")
    command("summary", help="bench/results/summary.json from the result files")
    every = command("all", help="every benchmark above, then memory and summary")
    size = every.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller runs, ~3 minutes")
    size.add_argument("--full", action="store_true", help="growth up to 5 M rows as well")
    prof = command("profile-summary", help="summarize a raw py-spy file")
    prof.add_argument("path")
    args = parser.parse_args()
    if args.name not in ("memory", "summary", "profile-summary"):
        refuse_noise(getattr(args, "allow_noise", False))
    # `wakeup`, `mark-cost` and `hop-cost` measure no Kafka; `all` warms the broker
    # before each of its steps.
    no_broker = ("memory", "summary", "profile-summary", "all", "wakeup", "mark-cost", "hop-cost")
    if args.name not in no_broker:
        warm_broker(Settings.from_env())
    if args.name == "relay-drain":
        relay_drain.main(args.events, args.keys, args.repeat, args.shards, args.processes)
    elif args.name == "relay-latency":
        accumulate = _ints(args.accumulate_ms) if args.accumulate_ms else None
        shards = _ints(args.shards) if args.shards else None
        partitions = _ints(args.partitions) if args.partitions else None
        relay_latency.main(_ints(args.rates), args.seconds, accumulate, shards, partitions)
    elif args.name == "txn-cost":
        txn_cost.main(args.transactions, args.events, _ints(args.partitions), args.repeat)
    elif args.name == "wakeup":
        wakeup.main(args.transactions, args.repeat)
    elif args.name == "mark-cost":
        mark_cost.main(args.events)
    elif args.name == "growth":
        growth.main(_ints(args.sizes), args.backlog)
    elif args.name == "e2e-latency":
        e2e_latency.main(_ints(args.rates), args.seconds, args.warmup, args.api_workers)
    elif args.name == "api-write":
        api_write.main(args.seconds, args.repeat, args.outage_seconds, args.api_workers)
    elif args.name == "scaling":
        scaling.main(args.events, args.consumer_events, args.repeat)
    elif args.name == "consumers":
        scaling.consumers_main(args.events, args.repeat, args.workload)
    elif args.name == "hop-cost":
        hop_cost.main(args.repeat)
    elif args.name == "memory":
        memory.main()
    elif args.name == "summary":
        summary.main()
    elif args.name == "all":
        everything.main(quick=args.quick, full=args.full)
    elif args.name == "profile-summary":
        import json
        from pathlib import Path

        print(json.dumps(summarize(Path(args.path)), indent=2))


main()
