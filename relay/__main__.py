"""`python -m relay`: the relay process, configured from the environment."""

import asyncio
import sys

from core.logging import configure_logging
from core.secrets import startup_settings
from relay.main import run

settings = startup_settings("relay")
configure_logging(settings.log_level, process="relay")
sys.exit(asyncio.run(run(settings)))
