"""`python -m consumers [--instance-id ID]`: the consumers process without the CLI
(the crash tests run and kill it like this)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace

from consumers.main import run
from core.logging import configure_logging
from core.secrets import startup_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumers")
    parser.add_argument("--instance-id", help="Kafka static membership id of this process")
    args = parser.parse_args(argv)
    settings = startup_settings("consumers")
    if args.instance_id:
        settings = replace(
            settings, consumers=replace(settings.consumers, instance_id=args.instance_id)
        )
    configure_logging(settings.log_level, process="consumers")
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
