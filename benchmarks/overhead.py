"""What the SDK costs on top of bare aiohttp, per request, in client CPU.

Both sides post the same launch body with the same headers, the same concurrency and a
session of the same settings, to the same minimal aiohttp server running in a separate
process, so ``time.process_time()`` of this process is the client's CPU alone.

- **sdk**: ``WebPushClient.send(push)`` with the limiter lifted (a no-op limiter): validation,
  the codec (the push encoded to bytes once), the request path with its grant at the wire
  and its stage tracking, the response read into a ``LaunchResult``.
- **bare**: ``session.post(url, json=body, headers=...)``, ``await response.read()``, a status
  check and ``json.loads``: the least a caller who wants the campaign id has to do.

Runs alternate A B A B ... (``--rounds`` rounds; each round runs both sides of every
configuration in turn), each on a fresh session warmed up with a few requests first; the
table shows the median of each side, and a ratio is the median of the rounds' ratios (the two
sides of a round ran side by side, so a change in the machine's load between rounds falls on
both). On a busy machine the end-to-end figures move by several percent from run to run (how
many requests one event-loop wake-up serves changes the CPU per request), so each run is also
repeated with no socket (the SDK through a stub transport, bare aiohttp through a stub
session, each answering at once): the difference of the two sides there, ``sdk_own_us``, is
the CPU of the SDK's own code per request with nothing else running (hot caches, so a lower
bound of what it adds end to end).

By default the comparison runs twice. First on asyncio with the stdlib ``json``: the SDK
without the ``speed`` extra (its codec decoding with the standard library) against bare
``json=``. Then, where uvloop and orjson are installed, on uvloop with orjson: the SDK with
the ``speed`` extra (decoding with orjson) against bare aiohttp posting ``orjson.dumps``
bytes as ``data`` with its content type and decoding with orjson, the fastest a caller
writes by hand. ``--uvloop``/``--orjson`` pick one configuration. ``--profile`` prints a
cProfile of the SDK side.

    python benchmarks/overhead.py [--requests 10000] [--concurrency 64] [--rounds 5]

Ends with ``RESULT {json}``: ``sdk_cpu_us``, ``bare_cpu_us``, ``cpu_ratio`` (SDK without
the extra / bare ``json=``), ``sdk_rps``, ``bare_rps`` (and ``sdk_own_us``) for the stdlib
asyncio configuration; ``cpu_ratio_speed`` (the SDK with the extra, on uvloop with orjson /
bare ``json=`` on asyncio) and ``cpu_ratio_speed_rounds``; ``cpu_ratio_ci95`` and
``cpu_ratio_speed_ci95``, each median's 95 % interval ``[low, high]``, two of the rounds'
own ratios (``_spread.median_interval``; null under 6 rounds, so ``--rounds 6`` or more:
see benchmarks/README.md, Definitions); and ``variants`` for the other configurations,
like for like.
``--instructions`` adds ``sdk_instructions``, ``bare_instructions`` and ``instruction_ratio``
(SDK ÷ bare, both on asyncio with ``json``) and, where uvloop and orjson are installed,
``sdk_speed_instructions`` and ``instruction_ratio_speed`` (the SDK with the extra on uvloop ÷
the same bare ``json=``): client instructions per request counted by valgrind's callgrind
(1 280 requests minus 320, at most 16 at once), which, unlike CPU time, does not move with the
machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import importlib.util
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
from _callgrind import per_unit
from _sample import PUSH
from _spread import interval_words, median_interval
from _stubs import ANSWER, NoLimit, StubTransport

from insider_webpush import WebPushClient, codec, push_to_dict
from insider_webpush._version import __version__

# The `speed` extra's encoder and decoder, when installed.
orjson_loads, orjson_dumps = codec._orjson_loads, codec._orjson_dumps

KEY = "bench-key"
PARTNER = "10000001"
WARMUP = 200
STUB_REQUESTS = 50_000


# -- the server, in its own process ---------------------------------------------------------


def serve(use_uvloop: bool) -> None:
    """A minimal launch endpoint: read the body, answer a fixed success. Prints its port."""
    from aiohttp import web

    async def launch(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v2/single/{campaign_id}", launch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
        await runner.cleanup()

    run(main(), use_uvloop)


@contextlib.contextmanager
def serving() -> Iterator[tuple[str, int]]:
    """The minimal launch endpoint (``--serve``) in a child process: its URL and pid; it
    stops when its stdin closes, on the way out."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield f"http://127.0.0.1:{int(server.stdout.readline())}", server.pid
    finally:
        assert server.stdin is not None
        assert server.stdout is not None
        server.stdin.close()
        server.wait(timeout=10)
        server.stdout.close()  # no ResourceWarning under `python -X dev`


def run(coro: Awaitable[Any], use_uvloop: bool) -> Any:
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    return asyncio.run(coro)  # type: ignore[arg-type]


# -- the two clients -----------------------------------------------------------------------------


class _StubResponse:
    status = 200
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only

    async def read(self) -> bytes:
        return ANSWER

    async def __aenter__(self) -> _StubResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class StubSession:
    """Answers every request at once, with no socket: what is left is each side's own code."""

    closed = False
    _response = _StubResponse()

    def request(self, method: str, url: str, **kwargs: Any) -> _StubResponse:
        return self._response

    def post(self, url: str, **kwargs: Any) -> _StubResponse:
        return self._response

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StubSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def new_session(use_orjson: bool, stub: bool) -> Any:
    if stub:
        return StubSession()
    if not use_orjson:
        return aiohttp.ClientSession()
    import orjson

    def dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()

    return aiohttp.ClientSession(json_serialize=dumps)


async def drive(
    send: Callable[[], Awaitable[None]], n: int, concurrency: int
) -> tuple[float, float]:
    """``n`` calls of ``send`` by ``concurrency`` workers: (CPU seconds, wall seconds)."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await send()

    await asyncio.gather(*(worker(WARMUP // concurrency + 1) for _ in range(concurrency)))
    share, extra = divmod(n, concurrency)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
    return time.process_time() - cpu, time.perf_counter() - wall


async def run_sdk(
    url: str, n: int, concurrency: int, use_orjson: bool, stub: bool = False
) -> tuple[float, float]:
    # The SDK makes its own session (its WireConnector observes the wire) and encodes each
    # push to bytes itself; a stub run swaps the wire for a transport that answers at once.
    transport = StubTransport() if stub else None
    # With the `speed` extra the codec encodes and decodes with orjson; without it, the
    # standard library.
    codec._orjson_loads = orjson_loads if use_orjson else None
    codec._orjson_dumps = orjson_dumps if use_orjson else None
    async with WebPushClient(
        KEY, partner_id=PARTNER, base_url=url, limiter=NoLimit(), transport=transport
    ) as client:

        async def send() -> None:
            await client.send(PUSH)

        return await drive(send, n, concurrency)


async def run_bare(
    url: str, n: int, concurrency: int, use_orjson: bool, stub: bool = False
) -> tuple[float, float]:
    body = push_to_dict(PUSH, partner_id=PARTNER)
    endpoint = url + "/v2/single/campaign_id"
    headers = {"Authorization": f"Bearer {KEY}", "User-Agent": f"insider-webpush/{__version__}"}
    if use_orjson:  # the body encoded to bytes by orjson, sent as data with its type
        import orjson

        loads: Callable[[bytes], Any] = orjson.loads
        data: dict[str, Any] = {"data": orjson.dumps(body)}
        headers["Content-Type"] = "application/json"
    else:  # json=: aiohttp encodes it with json.dumps
        loads = json.loads
        data = {"json": body}
    async with new_session(use_orjson, stub) as session:

        async def send() -> None:
            async with session.post(endpoint, **data, headers=headers) as response:
                raw = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                loads(raw)["campaign_id"]

        return await drive(send, n, concurrency)


SIDES = {"sdk": run_sdk, "bare": run_bare}


Config = tuple[bool, bool]  # (uvloop, orjson)


def config_name(config: Config) -> str:
    return f"{'uvloop' if config[0] else 'asyncio'} + {'orjson' if config[1] else 'json'}"


def compare(
    url: str,
    n: int,
    concurrency: int,
    rounds: int,
    configs: list[Config],
    stub_n: int = STUB_REQUESTS,
) -> tuple[dict[str, dict[str, Any]], list[dict[Config, dict[str, float]]]]:
    """Each round runs every side of every configuration once, in turn (A B A B ...), so a
    change in the machine's load between rounds falls on all of them alike."""
    per_round: list[dict[Config, dict[str, float]]] = []
    samples: dict[Config, dict[str, list[tuple[float, float]]]] = {
        c: {side: [] for side in SIDES} for c in configs
    }
    own: dict[Config, dict[str, list[float]]] = {c: {side: [] for side in SIDES} for c in configs}
    for _ in range(rounds):
        this_round: dict[Config, dict[str, float]] = {}
        for config in configs:
            use_uvloop, use_orjson = config
            this_round[config] = {}
            for side, fn in SIDES.items():
                cpu_wall = run(fn(url, n, concurrency, use_orjson), use_uvloop)
                samples[config][side].append(cpu_wall)
                this_round[config][side] = cpu_wall[0]
                stubbed = run(fn(url, stub_n, concurrency, use_orjson, True), use_uvloop)
                own[config][side].append(stubbed[0])
        per_round.append(this_round)
    results: dict[str, dict[str, Any]] = {}
    for config in configs:
        figures: dict[str, Any] = {}
        for side, runs in samples[config].items():
            figures[f"{side}_cpu_us"] = round(statistics.median(c for c, _ in runs) / n * 1e6, 1)
            figures[f"{side}_rps"] = round(statistics.median(n / w for _, w in runs))
        # The median of each round's ratio: the two sides of a round ran side by side.
        figures["cpu_ratio"] = round(
            statistics.median(r[config]["sdk"] / r[config]["bare"] for r in per_round), 3
        )
        figures["cpu_ratio_rounds"] = [
            round(r[config]["sdk"] / r[config]["bare"], 3) for r in per_round
        ]
        figures["cpu_ratio_ci95"] = median_interval(figures["cpu_ratio_rounds"])
        figures["rps_ratio"] = round(figures["sdk_rps"] / figures["bare_rps"], 3)
        # The same calls through a stub session: the CPU the SDK's own code adds per request.
        sdk_own, bare_own = (statistics.median(own[config][side]) / stub_n * 1e6 for side in SIDES)
        figures["sdk_own_us"] = round(sdk_own - bare_own, 2)
        results[config_name(config)] = figures
    return results, per_round


def profile(url: str, n: int, concurrency: int, use_uvloop: bool, use_orjson: bool) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run(run_sdk(url, n, concurrency, use_orjson), use_uvloop)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats("insider_webpush", 20)


def count_instructions(
    url: str, small: int, large: int, concurrency: int, speed: bool
) -> dict[str, Any]:
    """Client instructions per request of each side, counted by valgrind's callgrind: the
    difference between a run of ``large`` and one of ``small`` requests (start-up and
    warm-up cancel out), divided by ``large - small``. Unlike CPU time, the count does not
    move with the machine's load. Both sides on asyncio with ``json``; with ``speed``, also
    the SDK with the extra on uvloop with orjson."""

    def argv(side: str, uvloop_orjson: bool, n: int) -> list[str]:
        return [
            *(sys.executable, __file__, "--client", side, "--url", url),
            *("--requests", str(n), "--concurrency", str(concurrency)),
            *(["--uvloop", "--orjson"] if uvloop_orjson else []),
        ]

    per_request = {
        side: per_unit(functools.partial(argv, side, False), small, large) for side in SIDES
    }
    counted: dict[str, Any] = {
        "sdk_instructions": round(per_request["sdk"]),
        "bare_instructions": round(per_request["bare"]),
        "instruction_ratio": round(per_request["sdk"] / per_request["bare"], 3),
    }
    if speed:
        sdk_speed = per_unit(functools.partial(argv, "sdk", True), small, large)
        counted["sdk_speed_instructions"] = round(sdk_speed)
        # As cpu_ratio_speed: the SDK with the extra on uvloop / bare json= on asyncio.
        counted["instruction_ratio_speed"] = round(sdk_speed / per_request["bare"], 3)
    counted["instruction_requests"] = [small, large]
    return counted


def pin(server_pid: int) -> tuple[int, int] | None:
    """The client on one CPU, the server on another (where there are two): neither waits for
    the other's core, and each keeps its caches. Returns ``(client_cpu, server_cpu)``."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    os.sched_setaffinity(0, {cpus[0]})
    # Every thread of the server (Linux pins one thread at a time), not only its first.
    try:
        threads = [int(tid) for tid in os.listdir(f"/proc/{server_pid}/task")]
    except OSError:
        threads = [server_pid]
    for tid in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(tid, {cpus[1]})
    return cpus[0], cpus[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10000, help="per run (default 10000)")
    parser.add_argument(
        "--stub-requests", type=int, default=STUB_REQUESTS, help="per stub run (default 50000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight at once (default 64)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="one configuration on uvloop (with --orjson: uvloop + orjson; alone: uvloop + json)",
    )
    parser.add_argument(
        "--orjson",
        action="store_true",
        help="one configuration with orjson (with --uvloop: uvloop + orjson; alone: asyncio + "
        "orjson, what the speed extra gives a program started with asyncio.run)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the SDK side")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the client to one CPU and the server to another (pinned by default, "
        "where there are two CPUs or more, on Linux)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count client instructions per request under valgrind (slow, load-proof)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    has_orjson = importlib.util.find_spec("orjson") is not None
    if args.serve:
        serve(has_uvloop)
        return
    if args.client:  # one side alone, for --instructions
        fast = args.uvloop and args.orjson
        run(SIDES[args.client](args.url, args.requests, args.concurrency, fast), fast)
        return

    if args.uvloop or args.orjson:
        if (args.uvloop and not has_uvloop) or (args.orjson and not has_orjson):
            parser.error("uvloop/orjson is not installed")
        configs = [(args.uvloop, args.orjson)]
    else:
        configs = [(False, False)]
        if has_uvloop and has_orjson:
            configs.append((True, True))

    # The server runs on uvloop when it is installed, for every configuration: it only has
    # to be fast and the same for both sides.
    with serving() as (url, server_pid):
        pinned = pin(server_pid) if args.pin else None
        if args.profile:
            profile(url, args.requests, args.concurrency, *configs[0])
            return
        results, per_round = compare(
            url, args.requests, args.concurrency, args.rounds, configs, args.stub_requests
        )
        counted = (
            count_instructions(url, 320, 1280, min(16, args.concurrency), (True, True) in configs)
            if args.instructions
            else None
        )

    print(
        f"overhead: {args.requests} requests per run, concurrency {args.concurrency}, "
        f"{args.rounds} run(s) of each side alternated, medians; server in another process"
    )
    header = (
        f"{'configuration':<18} {'sdk µs/req':>11} {'bare µs/req':>12} {'cpu ratio':>10} "
        f"{'sdk req/s':>10} {'bare req/s':>11} {'SDK own µs':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<18} {r['sdk_cpu_us']:>11.1f} {r['bare_cpu_us']:>12.1f} "
            f"{r['cpu_ratio']:>9.3f}x {r['sdk_rps']:>10} {r['bare_rps']:>11} "
            f"{r['sdk_own_us']:>10.2f}"
        )
    for name, r in results.items():
        print(f"{name}: cpu ratio's " + interval_words(r["cpu_ratio_ci95"]))
    first, *rest = results
    result = {k: v for k, v in results[first].items() if k != "rps_ratio"}
    speed = results.get("uvloop + orjson")
    if first == "asyncio + json" and speed is not None:
        # The SDK with the `speed` extra (uvloop, orjson) against plain aiohttp `json=` on
        # asyncio, what a caller without the SDK writes: the median of each round's ratio.
        speed_rounds = [r[(True, True)]["sdk"] / r[(False, False)]["bare"] for r in per_round]
        result["cpu_ratio_speed"] = round(statistics.median(speed_rounds), 3)
        result["cpu_ratio_speed_rounds"] = [round(r, 3) for r in speed_rounds]
        result["cpu_ratio_speed_ci95"] = median_interval(result["cpu_ratio_speed_rounds"])
        print(
            f"with the speed extra: SDK {speed['sdk_cpu_us']:.1f} µs / bare json= "
            f"{results[first]['bare_cpu_us']:.1f} µs; the median of the rounds' own ratios "
            f"(not the ratio of those two medians) {result['cpu_ratio_speed']:.3f}x, "
            + interval_words(result["cpu_ratio_speed_ci95"])
        )
    result["configuration"] = first
    result["variants"] = {name: results[name] for name in rest}
    result.update(requests=args.requests, concurrency=args.concurrency, rounds=args.rounds)
    result["pinned_cpus"] = list(pinned) if pinned is not None else None
    if counted is not None:
        print(
            f"instructions (callgrind, asyncio + json): SDK {counted['sdk_instructions']} / "
            f"bare {counted['bare_instructions']} per request = "
            f"{counted['instruction_ratio']:.3f}x"
        )
        if "instruction_ratio_speed" in counted:
            print(
                f"instructions with the speed extra (uvloop + orjson): SDK "
                f"{counted['sdk_speed_instructions']} / bare json= on asyncio "
                f"{counted['bare_instructions']} = {counted['instruction_ratio_speed']:.3f}x"
            )
        result.update(counted)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
