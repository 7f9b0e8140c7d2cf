"""The `wattscale` command: one entry point for the operator, its tools and its demo.

Subcommands are small functions; the heavy lifting lives in the packages they call. Every user
error ends in a readable message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from wattscale import __version__
from wattscale.cli_operator import add_operator_parsers
from wattscale.cli_signals import add_signals_parser
from wattscale.cli_simulate import add_simulate_parser

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A mistake in what the user asked for: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message.splitlines()[0]} (see --help)\n")


def _cmd_crds(args: argparse.Namespace) -> int:
    from wattscale.api.crdgen import write_crds

    for path in write_crds(Path(args.output_dir)):
        print(f"wrote {path}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from wattscale.api import InvalidObjectError, parse_object
    from wattscale.api.documents import DocumentError, read_documents

    failed = unreadable = 0
    for name in args.files:
        try:
            docs = read_documents(Path(name))
        except DocumentError as err:
            unreadable += 1
            print(f"wattscale validate: {err}", file=sys.stderr)
            continue
        if not docs:
            unreadable += 1
            print(
                f"wattscale validate: {name}: no objects (the file is empty or holds only `---`)",
                file=sys.stderr,
            )
            continue
        for index, doc in enumerate(docs):
            label = f"{name}#{index}"
            try:
                obj = parse_object(doc)
            except InvalidObjectError as err:
                failed += 1
                for problem in err.problems:
                    print(f"{label}: {problem}")
                continue
            meta_name = obj.metadata.get("name", "?")
            print(f"{label}: {obj.kind}/{meta_name} is valid")
    if unreadable:
        return 2
    return 1 if failed else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The "try it in one command" path: the API, the examples, then days of real prices."""
    from wattscale.api.crdgen import crds
    from wattscale.cli_simulate import main as simulate_main

    root = Path(__file__).resolve().parents[2]
    examples = sorted((root / "examples").glob("*.yaml"))
    print(f"wattscale {__version__}: the API ({len(crds())} CRDs)")
    for name, doc in crds().items():
        versions = doc["spec"]["versions"][0]
        cols = ", ".join(c["name"] for c in versions["additionalPrinterColumns"])
        print(f"  {doc['spec']['names']['kind']:<20} {name:<42} columns: {cols}")
    if examples:
        print("\nValidating examples/:")
        if _cmd_validate(argparse.Namespace(files=[str(p) for p in examples])) != 0:
            return 1
    print(
        "\nReplaying bundled days of real US prices and carbon through the planner, against the"
        " baselines and the offline optimum (the embedded default of `wattscale simulate`):"
    )
    return simulate_main([])


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="wattscale",
        description="Serve LLMs with vLLM at the lowest energy cost the latency SLO allows.",
    )
    parser.add_argument("--version", action="version", version=f"wattscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("crds", help="write the CRD YAML generated from the API models")
    p.add_argument("--output-dir", required=True, help="directory to write the CRDs into")
    p.set_defaults(handler=_cmd_crds)

    p = sub.add_parser("validate", help="check Region/InferenceDeployment YAML files offline")
    p.add_argument("files", nargs="+", help="YAML files (several documents each allowed)")
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser("demo", help="the main job on the embedded default")
    p.set_defaults(handler=_cmd_demo)

    add_operator_parsers(sub)
    add_simulate_parser(sub)
    add_signals_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Subcommands from their own modules register `func`; the small ones here `handler`.
    handler: Handler | None = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except UsageError as err:
        print(f"wattscale {args.command}: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # the last guard: a line, never a traceback
        # Every known bad input has its own message; this is for the ones nobody foresaw.
        detail = str(err).splitlines()[0][:200] if str(err) else ""
        print(
            f"wattscale {args.command}: unexpected {type(err).__name__}: {detail} "
            "(please report this input)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
