"""The ``llmkit`` command: argument parsing only; the work lives in the modules it calls.

Introduced in lesson 0 (00_setup_and_replay)::

    llmkit serve --cassette notebooks/cassettes/00_setup_and_replay.json [--port N] [--speed S]
    llmkit cassette import-vcr tests/cassettes/test_chat.yaml notebooks/cassettes/imported.json
    llmkit cassette check notebooks/cassettes/03_function_calling.json [--played play.json]
    llmkit simulate --port 8765 --seed 1 [--profile chat-completions-only] [--error-rate 0.2]

Each subcommand registers itself with an ``_add_<name>(subparsers)`` function and sets ``func``;
``record``, ``bench`` and ``doctor`` are added the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .errors import LlmkitError


def _serve(args: argparse.Namespace) -> int:
    from .replay.server import serve_cassette

    return serve_cassette(args.cassette, port=args.port, speed=args.speed, play_log=args.play_log,
                          quiet=args.quiet)


def _import_vcr(args: argparse.Namespace) -> int:
    from .replay.vcr import import_vcr

    cassette = import_vcr(args.source, name=args.name)
    path = cassette.save(args.target)
    print(f"{path}: {cassette.summary()} from {args.source}")
    for line in cassette.provenance.get("skipped", []):
        print(f"  skipped {line}")
    for field in cassette.provenance.get("scrubbed", []):
        print(f"  scrubbed {field}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .replay.check import check_cassette

    report = check_cassette(args.cassette, args.played)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _serve_chat(args: argparse.Namespace) -> int:
    from .server.serve import serve_chat

    return serve_chat(lesson=args.lesson, cassettes=args.cassettes, port=args.port, redis_url=args.redis,
                      origins=args.origin, speed=args.speed, upstream_via=args.upstream)


def _add_serve_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve-chat", help="run the SSE relay server and its web client (lesson 9)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--lesson", default="09_sse_server", help="whose cassette answers in replay mode")
    p.add_argument("--cassettes", help="the cassette folder (default: notebooks/cassettes)")
    p.add_argument("--speed", type=float, help="replay pacing (default: LLMKIT_SPEED or 1)")
    p.add_argument("--redis", metavar="URL", help="keep events in Redis Streams (redis://127.0.0.1:6379/0)")
    p.add_argument("--origin", action="append", help="a browser origin allowed to call the API (repeatable)")
    p.add_argument("--upstream", choices=("wire", "sdk"), default="wire",
                   help="read the provider with raw HTTP + llmkit.wire (default) or through the official SDKs")
    p.set_defaults(func=_serve_chat)


def _bench(args: argparse.Namespace) -> int:
    from . import bench
    from .errors import ConfigError

    unknown = [s for s in args.suites if s not in bench.SUITES]
    if unknown:
        raise ConfigError(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(bench.SUITES)}")
    if args.full and args.quick:
        raise ConfigError("--full and --quick contradict each other; pick one.")
    if args.full:  # an explicit LLMKIT_BENCH_SCALE_SIZES still wins
        os.environ.setdefault("LLMKIT_BENCH_SCALE_SIZES", "10000,100000,1000000")
    report = bench.run(args.suites or bench.SUITES, quick=args.quick, progress=sys.stderr.isatty())
    print("\n".join(bench.summary(report)))
    path = report.save(args.out)
    print(f"wrote {path}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from . import doctor

    return doctor.main()


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from .bench._run import SUITES

    p = sub.add_parser("bench", help="run the benchmark suites and write their figures as JSON (lesson 10)")
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help=f"suites to run (default: all): {', '.join(SUITES)}")
    p.add_argument("--quick", action="store_true", help="small sizes and few rounds (under two minutes)")
    p.add_argument("--full", action="store_true",
                   help="memory at scale up to 1,000,000 memories on both backends (an hour or more, ~6 GB RAM)")
    p.add_argument("--out", default="results.json", help="where to write the JSON report (default: results.json)")
    p.set_defaults(func=_bench)


def _simulate(args: argparse.Namespace) -> int:
    from .simulate.serve import serve
    from .simulate.settings import SimSettings

    settings = SimSettings(seed=args.seed, profile=args.profile, refusal_rate=args.refusal_rate,
                           cut_rate=args.cut_rate, error_rate=args.error_rate, speed=args.speed)
    return serve(settings, port=args.port, quiet=args.quiet)


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="serve made-up but valid provider answers on 127.0.0.1, for live-mode "
                       "rehearsals (Ctrl-C stops it)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same answers (default: 0)")
    p.add_argument("--profile", choices=("full", "chat-completions-only"), default="full",
                   help="full: OpenAI, Anthropic and Gemini APIs (default); chat-completions-only: only OpenAI "
                   "Chat Completions and the models list, 404 elsewhere, like a local OpenAI-compatible server")
    for name, what in (("refusal", "a refusal"), ("cut", "a max_tokens cut"),
                       ("error", "a retryable error (429 with Retry-After, 500, 503/529)")):
        p.add_argument(f"--{name}-rate", type=float, default=0.0, metavar="R",
                       help=f"probability (0 to 1) that an answer is {what} (default: 0)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="scale of the seeded delays: 0 = none, 1 = as drawn (default), 2 = twice as fast")
    p.add_argument("--quiet", action="store_true", help="do not print a line per request")
    p.set_defaults(func=_simulate)


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check Python, packages, keys, the replay server, PyTorch, system packages, "
                       "disk and the make commands")
    p.set_defaults(func=_doctor)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a cassette on 127.0.0.1 in the foreground (Ctrl-C stops it)")
    p.add_argument("--cassette", required=True, help="the llmkit cassette (JSON) to serve")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="speed: 0 = instant, 1 = as recorded (default), 2 = twice as fast, 0.5 = half as fast")
    p.add_argument("--play-log", metavar="LOG", help="on exit, write which interactions were played here")
    p.add_argument("--quiet", action="store_true", help="do not print a line per request")
    p.set_defaults(func=_serve)


def _add_cassette(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cassette", help="import and check cassettes")
    csub = p.add_subparsers(dest="cassette_command", required=True, metavar="{import-vcr,check}")
    imp = csub.add_parser("import-vcr", help="convert a VCR.py YAML cassette into an llmkit cassette")
    imp.add_argument("source", help="the VCR.py cassette (YAML)")
    imp.add_argument("target", help="the llmkit cassette to write (JSON)")
    imp.add_argument("--name", help="cassette name (default: the source file's stem)")
    imp.set_defaults(func=_import_vcr)
    chk = csub.add_parser("check", help="validate a cassette; fail on anything that looks like a secret")
    chk.add_argument("cassette", help="the llmkit cassette (JSON)")
    chk.add_argument("--played", metavar="LOG", help="a play log (llmkit serve --play-log): list unused interactions")
    chk.set_defaults(func=_check)


def build_parser() -> argparse.ArgumentParser:
    """The ``llmkit`` argument parser with every subcommand registered (lesson 0)."""
    parser = argparse.ArgumentParser(prog="llmkit", description="llmkit: replay server, cassettes and tools "
                                     "for the lessons in notebooks/.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # record registers here too
    for add in (_add_serve, _add_cassette, _add_serve_chat, _add_bench, _add_doctor, _add_simulate):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmkit`` console script; returns the exit status (lesson 0)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LlmkitError as e:
        print(f"llmkit {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
