"""The ``fti`` command. Each subcommand parses its options and calls one library function.

Global options (accepted before or after the subcommand): ``--system``, ``--conf``, ``--profile``,
``--home``, ``--debug``. Errors print one line (and a hint) and exit non-zero; tracebacks only with
``--debug``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from typing import Callable, Sequence

from fti.errors import FtiError

log = logging.getLogger("fti")

Handler = Callable[[argparse.Namespace], int]


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--system", default=default, help="example system: flights, synthetic (default flights)")
    parser.add_argument("--conf", default=default, help="YAML config file (default conf/<system>.yaml)")
    parser.add_argument("--profile", default=default, help="config profile: local (default), cluster")
    parser.add_argument("--home", default=default, help="home folder of all state (default ./lakehouse or FTI_HOME)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="show tracebacks and debug logs")


def _settings(args: argparse.Namespace):
    from fti.config import ensure_home, load_config

    settings = load_config(args.system or ("flights" if not args.conf else None), conf=args.conf,
                           profile=args.profile, home=args.home)
    ensure_home(settings)
    return settings


def cmd_catalog(args: argparse.Namespace) -> int:
    """List tables, feature groups and models."""
    from fti.catalog import build_catalog
    from fti.report import format_table
    from fti.store.delta_rs import DeltaRsStore

    settings = _settings(args)
    # Listing reads Delta logs only: no Spark session is needed.
    store = DeltaRsStore(None, settings.home)  # type: ignore[arg-type]
    catalog = build_catalog(settings, store)
    if args.json:
        print(json.dumps(catalog, indent=2, default=str))
        return 0
    print(f"home: {catalog['home']}\ntracking: {catalog['tracking_uri']}\n")
    print(format_table([(t["name"], t["kind"], t["version"], t["rows"], t["last_commit"]) for t in catalog["tables"]],
                       ["table", "kind", "version", "rows", "last commit (UTC)"]))
    if catalog["feature_groups"]:
        print()
        print(format_table(
            [(g["name"], ",".join(g["keys"]), len(g["features"]), g["ttl_seconds"] or "",
              "" if g["freshness_seconds"] is None else f"{g['freshness_seconds'] / 3600:.1f} h")
             for g in catalog["feature_groups"]],
            ["feature group", "keys", "features", "ttl (s)", "freshness"]))
    print()
    print(format_table([(m["name"], ",".join(map(str, m["versions"])),
                         ", ".join(f"{a}={v}" for a, v in sorted(m["aliases"].items()))) for m in catalog["models"]],
                       ["model", "versions", "aliases"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fti`` (also used to document the commands)."""
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    parser = argparse.ArgumentParser(prog="fti", description="Feature, training and inference pipelines on "
                                     "Spark, Delta Lake, Ray and MLflow.")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("catalog", parents=[common], help="list tables, feature groups and registered models")
    p.add_argument("--json", action="store_true", help="print one JSON object (schema_version 1)")
    p.set_defaults(handler=cmd_catalog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fti`` and ``python -m fti``.

    Returns:
        The process exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "urllib3", "alembic", "mlflow", "ray", "filelock", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except FtiError as err:
        if args.debug:
            traceback.print_exc()
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # an unexpected failure: still one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
            print("hint: rerun with --debug for the traceback", file=sys.stderr)
        return 1
