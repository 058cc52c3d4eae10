"""A loopback HTTP server that misbehaves on purpose, for tests of the remote reader: failing a
share of requests (503 or reset), a 404 once, a stalled response, wrong answers to Range
requests, refused credentials.  It is chunkatlas's server with one aiohttp middleware added."""

from __future__ import annotations

import asyncio
import base64
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chunkatlas.study._http import aiohttp_serving, argument_parser, serve_forever, served_file
from chunkatlas.study._network import MARK_PREFIX, network_from


@dataclass
class Faults:
    """Deliberate misbehaviour of the test server."""

    fail_rate: float = 0.0  # share of requests that fail
    # A path fails at most this many times running, fewer than the reader's attempts, so a
    # test of recovery never fails by the luck of the draw (0.2**6 per request adds up).
    max_failures_running: int = 2
    fail_mode: str = "503"  # "503" or "reset"
    missing_once: set[str] = field(default_factory=set)  # paths answered 404 the first time
    stall: set[str] = field(default_factory=set)  # paths whose response never comes
    bad_range: str = ""  # "full": 200 with the whole file; "short": 206 with too few bytes
    require_auth: str = ""  # "user:password" for HTTP basic auth; others get 401
    seed: int = 0

    def arguments(self) -> list[str]:
        args = ["--fail-rate", str(self.fail_rate), "--fail-mode", self.fail_mode]
        args += ["--bad-range", self.bad_range, "--seed", str(self.seed)]
        args += ["--require-auth", self.require_auth]
        for path in sorted(self.missing_once):
            args += ["--missing-once", path]
        for path in sorted(self.stall):
            args += ["--stall", path]
        return args


def fault_middleware(faults: Faults):
    from aiohttp import web

    rng = random.Random(faults.seed)
    seen_missing: set[str] = set()
    failures_running: dict[str, int] = {}

    @web.middleware
    async def misbehave(request, handler):
        path = request.path
        if path.startswith(MARK_PREFIX):
            return await handler(request)
        if faults.require_auth:
            expected = "Basic " + base64.b64encode(faults.require_auth.encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.Response(status=401)
        if path in faults.stall:
            await asyncio.sleep(3600)
        if path in faults.missing_once and path not in seen_missing:
            seen_missing.add(path)
            return web.Response(status=404)
        fails = faults.fail_rate and rng.random() < faults.fail_rate
        fails = fails and failures_running.get(path, 0) < faults.max_failures_running
        failures_running[path] = failures_running.get(path, 0) + 1 if fails else 0
        if fails:
            if faults.fail_mode == "reset":
                request.app["record"](request, 0, 0)
                request.transport.abort()
                raise ConnectionResetError("deliberate reset")
            return web.Response(status=503)
        byte_range = request.http_range
        target = served_file(request)
        ranged = byte_range.start is not None or byte_range.stop is not None
        if faults.bad_range and ranged and target is not None:
            body = target.read_bytes()
            if faults.bad_range == "full":
                return web.Response(body=body, status=200)
            part = body[byte_range][:-1]  # one byte short, consistently declared
            first, last = byte_range.start, byte_range.start + len(part) - 1
            return web.Response(
                body=part,
                status=206,
                headers={"Content-Range": f"bytes {first}-{last}/{len(body)}"},
            )
        return await handler(request)

    return misbehave


@contextmanager
def faulty_serving(root, log_path, faults: Faults) -> Iterator[str]:
    """Serve ``root`` with ``faults`` from a subprocess on loopback; yield its base URL."""
    program = (sys.executable, str(Path(__file__).resolve()))
    with aiohttp_serving(root, log_path, program=program, extra_args=faults.arguments()) as url:
        yield url


def main(argv=None) -> None:
    parser = argument_parser("faulty_server.py")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-mode", choices=("503", "reset"), default="503")
    parser.add_argument("--missing-once", action="append", default=[])
    parser.add_argument("--stall", action="append", default=[])
    parser.add_argument("--bad-range", choices=("", "full", "short"), default="")
    parser.add_argument("--require-auth", default="")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    faults = Faults(
        fail_rate=args.fail_rate,
        fail_mode=args.fail_mode,
        missing_once=set(args.missing_once),
        stall=set(args.stall),
        bad_range=args.bad_range,
        require_auth=args.require_auth,
        seed=args.seed,
    )
    serve_forever(args.root, args.log, args.port, [fault_middleware(faults)], network_from(args))


if __name__ == "__main__":
    main()
