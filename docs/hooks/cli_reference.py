"""MkDocs hook: the CLI reference is generated from fti's own argument parser, so it cannot drift from the code.

A page that holds the marker ``<!-- fti-cli-reference -->`` gets, in its place, one section per subcommand
(``fti COMMAND [ACTION]``) with its help line, its usage and a table of its options.
"""

from __future__ import annotations

import argparse

MARKER = "<!-- fti-cli-reference -->"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _options(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> list[str]:
    rows = []
    for action in parser._actions:
        if action.dest in skip or action.help == argparse.SUPPRESS or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
        choices = f" (one of {', '.join(map(str, action.choices))})" if action.choices else ""
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.option_strings == [] else f" Default: `{default}`."
        rows.append(f"| {name} | {_cell((action.help or '') % vars(action) if action.help else '')}{choices}{shown} |")
    return (["| option | meaning |", "|---|---|", *rows] if rows else [])


def reference() -> str:
    from fti.cli import build_parser

    parser = build_parser()
    lines = ["## Global options", "", "Given before or after the subcommand.", "", *_options(parser), ""]
    helps = _helps(parser)
    common = frozenset(a.dest for a in parser._actions if a.option_strings and a.dest != "help")
    for name, sub in _subparsers(parser).items():
        lines += [f"## fti {name}", "", _cell(helps.get(name, "")), "", "```text", sub.format_usage().strip(), "```", ""]
        nested = _subparsers(sub)
        lines += _options(sub, common) + [""]
        for child, subsub in nested.items():
            lines += [f"### fti {name} {child}", "", _cell(_helps(sub).get(child, "")), "", "```text",
                      subsub.format_usage().strip(), "```", "", *_options(subsub, common), ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (the hook's signature)
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
