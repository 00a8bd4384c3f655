"""`python -m relay`: the relay process, configured from the environment."""

import asyncio
import sys

from core.logging import configure_logging
from core.settings import Settings
from relay.main import run

settings = Settings.from_env()
configure_logging(settings.log_level, process="relay")
sys.exit(asyncio.run(run(settings)))
