"""`connectin up`: services, migrations, then every process in the foreground with
prefixed logs. Ctrl-C (or SIGTERM) stops them all; if one dies, the rest are stopped
too, so a broken platform never looks half alive."""

from __future__ import annotations

import os
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO

import httpx

from core.settings import DEVELOPMENT, Settings
from devenv.common import CACHE_DIR
from devenv.services import ensure_up
from migrations import upgrade

STOP_GRACE_S = 15.0
LOCALSTRIPE_WAIT_S = 30.0
WEBHOOK_ID = "connectin"
# This checkout's Stripe objects, kept across runs like its database: not localstripe's
# default file, which every localstripe on the machine would share.
LOCALSTRIPE_STATE = CACHE_DIR / "localstripe" / "state.pickle"


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]


def platform_processes(api_port: int, stripe_port: int, api_workers: int = 1) -> list[ProcessSpec]:
    bin_dir = os.path.dirname(sys.executable)
    connectin = os.path.join(bin_dir, "connectin")
    return [
        ProcessSpec(
            "localstripe",
            [
                *(sys.executable, "-m", "devenv.localstripe_server", str(LOCALSTRIPE_STATE)),
                *("--port", str(stripe_port)),
            ],
        ),
        ProcessSpec(
            "api",
            [
                *(connectin, "api", "--host", "127.0.0.1", "--port", str(api_port)),
                *("--workers", str(api_workers)),
            ],
        ),
        ProcessSpec("relay", [connectin, "relay"]),
        ProcessSpec("consumers", [connectin, "consumers"]),
    ]


def register_webhook(stripe_base: str, api_url: str, secret: str) -> bool:
    """Tell localstripe where to deliver its signed events (it has no dashboard): our
    webhook, signed with STRIPE_WEBHOOK_SECRET. Retries while localstripe starts."""
    url = f"{api_url.rstrip('/')}/api/v1/payments/webhook"
    deadline = time.monotonic() + LOCALSTRIPE_WAIT_S
    while True:
        try:
            response = httpx.post(
                f"{stripe_base}/_config/webhooks/{WEBHOOK_ID}",
                json={"url": url, "secret": secret},
                timeout=5,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                print(f"[up] could not register the localstripe webhook: {exc}", flush=True)
                return False
            time.sleep(0.3)
            continue
        print(f"[up] localstripe delivers webhooks to {url}", flush=True)
        return True


def platform_env(settings: Settings, services: dict[str, str], stripe_port: int) -> Settings:
    """What every child gets. In development without OPS_TOKEN, a fresh random one per
    run: a fixed or derived token would be one more published default, and the page
    only needs it pasted once per tab."""
    env = {**settings.to_env(), **services}
    if not settings.stripe.api_base:
        env["STRIPE_API_BASE"] = f"http://127.0.0.1:{stripe_port}"
    if settings.environment == DEVELOPMENT and not settings.api.ops_token:
        env["OPS_TOKEN"] = secrets.token_urlsafe(32)
    return Settings.from_env(env)


def run_all(
    settings: Settings, api_port: int = 8000, stripe_port: int = 8420, api_workers: int = 1
) -> int:
    child = platform_env(settings, ensure_up(settings), stripe_port)
    env = {**os.environ, **child.to_env()}
    print(f"[up] CONNECTIN_ENV={child.environment}", flush=True)
    if child.environment == DEVELOPMENT:
        # The token made up for this run is printed so a newcomer can open the page at
        # once; one the user set is never echoed, whatever the environment.
        invented = child.api.ops_token != settings.api.ops_token
        token = child.api.ops_token if invented else "the OPS_TOKEN you set"
        print(
            f"[up] operator page: http://127.0.0.1:{api_port}/ops  token (OPS_TOKEN): {token}",
            flush=True,
        )
    upgrade(child.database.url)
    print("[up] database migrated", flush=True)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        print(f"[up] {signal.Signals(signum).name}: stopping all processes", flush=True)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    selector = selectors.DefaultSelector()
    running: dict[str, subprocess.Popen[bytes]] = {}
    LOCALSTRIPE_STATE.parent.mkdir(parents=True, exist_ok=True)
    for spec in platform_processes(api_port, stripe_port, api_workers):
        proc = subprocess.Popen(
            spec.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        running[spec.name] = proc
        assert proc.stdout is not None
        selector.register(proc.stdout, selectors.EVENT_READ, spec.name)
        print(f"[up] started {spec.name} (pid {proc.pid})", flush=True)
    stripe_base = f"http://127.0.0.1:{stripe_port}"
    if child.stripe.api_base.rstrip("/") == stripe_base:
        threading.Thread(
            target=register_webhook,
            args=(stripe_base, f"http://127.0.0.1:{api_port}", child.stripe.webhook_secret),
            daemon=True,
        ).start()
    width = max(len(name) for name in running)
    exit_code = 0
    while not stopping:
        for key, _ in selector.select(timeout=0.5):
            stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
            line = stream.readline()
            if line:
                sys.stdout.write(f"{key.data:<{width}} | {line.decode(errors='replace')}")
                sys.stdout.flush()
        dead = [name for name, proc in running.items() if proc.poll() is not None]
        if dead:
            print(f"[up] {', '.join(dead)} exited; stopping the rest", flush=True)
            exit_code = 1
            break
    for proc in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for name, proc in running.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[up] {name} did not stop in time; killing it", flush=True)
            proc.kill()
            proc.wait()
        _forward_rest(name, proc, width)
        print(f"[up] {name} exited with {proc.returncode}", flush=True)
    return exit_code


def _forward_rest(name: str, proc: subprocess.Popen[bytes], width: int) -> None:
    """What a child wrote while stopping (the line saying why) is still in its pipe once
    the loop above has ended. Read without blocking: a grandchild may hold the pipe."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    rest = proc.stdout.read() or b""
    for line in rest.decode(errors="replace").splitlines():
        sys.stdout.write(f"{name:<{width}} | {line}\n")
    sys.stdout.flush()
