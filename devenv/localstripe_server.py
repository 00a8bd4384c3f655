"""`python -m devenv.localstripe_server STATE_FILE --port N`: localstripe with a state
file of its own, for `connectin up` (state under the checkout's `.cache/`) and each test.

localstripe 1.15 keeps its store in the hard-coded /tmp/localstripe.pickle and rewrites
that file on every change, so every server on the machine (each test's, other runs',
other checkouts') would share one state. Here its two disk methods use the given file
instead; the server itself is localstripe's, unchanged.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

from localstripe import resources, server


def use_state_file(path: Path) -> None:
    def load(store: Any) -> None:
        if path.exists():
            with path.open("rb") as f:
                store.clear()
                store.update(pickle.load(f))

    def dump(store: Any) -> None:
        with path.open("wb") as f:
            pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump


if __name__ == "__main__":
    use_state_file(Path(sys.argv.pop(1)))
    server.start()
