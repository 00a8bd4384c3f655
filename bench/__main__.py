"""`python -m bench NAME [options]` (what `make bench` runs)."""

from __future__ import annotations

import argparse

from bench import growth, relay_drain, relay_latency, wakeup


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="name", required=True)
    drain = sub.add_parser("relay-drain", help="outbox drain vs raw transactional producer")
    drain.add_argument("--events", type=int, default=200_000)
    drain.add_argument("--keys", type=int, default=5_000)
    drain.add_argument("--repeat", type=int, default=3)
    drain.add_argument("--shards", type=int, default=4)
    drain.add_argument("--processes", type=int, default=1)
    latency = sub.add_parser("relay-latency", help="commit-to-Kafka latency at steady rates")
    latency.add_argument("--rates", default="100,1000")
    latency.add_argument("--seconds", type=float, default=15)
    wake = sub.add_parser("wakeup", help="LISTEN/NOTIFY vs polling: writer cost, idle cost")
    wake.add_argument("--transactions", type=int, default=3000)
    wake.add_argument("--repeat", type=int, default=3)
    grow = sub.add_parser("growth", help="relay query and drain as the outbox grows")
    grow.add_argument("--sizes", default="0,100000,1000000")
    grow.add_argument("--backlog", type=int, default=20_000)
    args = parser.parse_args()
    if args.name == "relay-drain":
        relay_drain.main(args.events, args.keys, args.repeat, args.shards, args.processes)
    elif args.name == "relay-latency":
        relay_latency.main([int(r) for r in args.rates.split(",")], args.seconds)
    elif args.name == "wakeup":
        wakeup.main(args.transactions, args.repeat)
    elif args.name == "growth":
        growth.main([int(n) for n in args.sizes.split(",")], args.backlog)


main()
