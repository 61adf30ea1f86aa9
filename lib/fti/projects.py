"""Finding a project: its project file, and the definitions module that builds its :class:`~fti.authoring.Project`.

Where the project file comes from, first match wins: ``--conf FILE``; ``--project DIR`` (``DIR/fti.yaml``);
``--system NAME`` (``./conf/NAME.yaml``, else ``fti.yaml`` beside the installed package that publishes NAME,
else the config shipped with fti); ``FTI_PROJECT``; ``./fti.yaml``. The definitions come from the module the
project file names (``definitions: MODULE``, a module or package in the project's folder), else from the
installed package that publishes the project's name in the ``fti.projects`` entry point group: the shipped
examples publish ``flights`` and ``synthetic`` that way, and a team's wheel does the same::

    # setup.py / pyproject.toml of the team's package
    entry_points={"fti.projects": ["payments = payments_features.definitions"]}

A definitions module has a ``build()`` function that returns the project (or a ``project`` attribute).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from fti.errors import ConfigError

if TYPE_CHECKING:
    from fti.config import Settings
    from fti.features.spec import Project

ENTRY_POINTS = "fti.projects"
PROJECT_FILE = "fti.yaml"
PROJECT_ENV = "FTI_PROJECT"
DEFAULT_EXAMPLE = "flights"  # what the CLI runs when no project is named anywhere


def project_file(folder: str | os.PathLike[str], *, via: str) -> Path:
    """``folder/fti.yaml``, or an error naming the folder and what is missing.

    Args:
        folder: The project's folder.
        via: Where the folder was named (``--project``, ``FTI_PROJECT``), for the message.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"project folder {path} (from {via}) does not exist",
                          hint=f"create one with: fti init {path}")
    file = path / PROJECT_FILE
    if not file.is_file():
        raise ConfigError(f"project folder {path.resolve()} (from {via}) has no project file {PROJECT_FILE}",
                          hint=f"write a starter there with: fti init {path} (or point {via} at the folder that "
                               f"holds {PROJECT_FILE})")
    return file


def implicit_project_file(env: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    """The project file named by ``FTI_PROJECT``, else ``./fti.yaml`` when the current folder holds one."""
    if env.get(PROJECT_ENV):
        return project_file(env[PROJECT_ENV], via=f"{PROJECT_ENV}={env[PROJECT_ENV]}")
    here = (cwd or Path.cwd()) / PROJECT_FILE
    return here if here.is_file() else None


def published() -> dict[str, metadata.EntryPoint]:
    """The projects installed packages publish (entry point group ``fti.projects``), by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINTS)}


def published_conf(name: str) -> Path | None:
    """``fti.yaml`` beside the module that publishes project ``name``, if that package ships one."""
    ep = published().get(name)
    if ep is None:
        return None
    spec = importlib.util.find_spec(ep.module)
    if spec is None or spec.origin is None:
        return None
    file = Path(spec.origin).parent / PROJECT_FILE
    return file if file.is_file() else None


_DEFINED: dict[str, Project] = {}


def define(project: Project, name: str) -> Project:
    """Make a project built in this process (in notebook cells) the definitions of system ``name``: every
    pipeline of this process that loads ``name``'s definitions gets it (a project file's ``definitions`` module
    still wins). Returns the project, named."""
    named = dataclasses.replace(project, name=name)
    _DEFINED[name] = named
    return named


def load_project(settings: Settings) -> Project:
    """The definitions of the project ``settings`` describe, named after its ``system``.

    Raises:
        ConfigError: The module is missing, fails to import, or builds no project; the message names the
            folder, the file and the missing piece.
    """
    from fti.features.spec import Project

    module_name = settings.config.definitions
    if not module_name and settings.system in _DEFINED:  # defined in this process (notebook cells)
        return _DEFINED[settings.system]
    if module_name:
        folder = settings.source.parent
        module = _import_from_folder(module_name, folder, settings.source)
        where = f"module {module_name} of {folder}"
        built = _build(module, None, where, settings.source)
    else:
        ep = published().get(settings.system)
        if ep is None:
            known = ", ".join(sorted(published())) or "none"
            raise ConfigError(
                f"{settings.source} names no definitions module, and no installed package publishes a project "
                f"{settings.system!r} (entry point group {ENTRY_POINTS})",
                hint=f"add 'definitions: MODULE' to {settings.source} (a module in its folder), or install the "
                     f"package that publishes it; published projects: {known}")
        try:
            module = importlib.import_module(ep.module)
        except Exception as exc:
            raise ConfigError(f"project {settings.system!r}: the module {ep.module} that publishes it does not import: "
                              f"{type(exc).__name__}: {exc}") from exc
        where = f"entry point {ep.name} = {ep.value}"
        built = _build(module, ep.attr, where, settings.source)
    if not isinstance(built, Project):
        raise ConfigError(f"{where} built a {type(built).__name__}, not an fti.authoring.Project",
                          hint="build() must return fti.authoring.Project(sources=..., parsers=..., groups=..., "
                               "labels=...)")
    return dataclasses.replace(built, name=settings.system)


def _build(module: Any, attr: str | None, where: str, source: Path) -> Any:
    target: Any
    if attr:
        target = getattr(module, attr, None)
        if target is None:
            raise ConfigError(f"{where}: {module.__name__} has no attribute {attr!r}")
    elif callable(getattr(module, "build", None)):
        target = module.build
    elif getattr(module, "project", None) is not None:
        return module.project
    else:
        raise ConfigError(f"{where} ({getattr(module, '__file__', module.__name__)}) has neither a build() function "
                          "nor a 'project' attribute",
                          hint=f"define 'def build() -> fti.authoring.Project' there (the project file is {source})")
    return target() if callable(target) else target


def _import_from_folder(name: str, folder: Path, source: Path) -> Any:
    """Import module ``name`` (or ``name.py``) from the project folder, and have Spark pickle its functions by value
    (executors do not have the folder on their path)."""
    name = name[:-3] if name.endswith(".py") else name
    if not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError(f"definitions: {name!r} in {source} is not a Python module name",
                          hint="name a module or package in the project folder, e.g. definitions: my_features")
    top = name.split(".")[0]
    if not ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
        raise ConfigError(f"{source} names definitions module {name}, but {folder} has neither {top}.py nor "
                          f"{top}/__init__.py", hint="write the module there, or fix 'definitions' in the project file")
    loaded = sys.modules.get(top)
    if loaded is not None and not str(getattr(loaded, "__file__", "") or "").startswith(str(folder.resolve())):
        for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:  # another project's module
            del sys.modules[key]
    if str(folder.resolve()) not in sys.path:
        sys.path.insert(0, str(folder.resolve()))
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise ConfigError(f"definitions module {name} in {folder} (from {source}) does not import: "
                          f"{type(exc).__name__}: {exc}") from exc
    try:
        from pyspark import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[top])
    except ImportError:  # no Spark in this environment: nothing is pickled
        pass
    return module


EXAMPLES = ("flights", "synthetic")
STARTER = "synthetic"  # the smallest runnable example: its own seeded generator, two groups, a view


def init_project(folder: str | os.PathLike[str], *, example: str = STARTER) -> list[Path]:
    """Write a runnable starter project into ``folder``: ``fti.yaml`` (the example's config, naming its
    definitions) and the example's definitions package, copied from fti's wheel. Returns the files written.

    Raises:
        ConfigError: An unknown example, or a folder that already holds a project file (nothing is written).
    """
    from fti.config import PACKAGED_CONF

    if example not in EXAMPLES:
        raise ConfigError(f"no example project {example!r}", hint=f"examples: {', '.join(EXAMPLES)}")
    target = Path(folder).expanduser()
    if (target / PROJECT_FILE).exists() or (target / example).exists():
        clash = target / PROJECT_FILE if (target / PROJECT_FILE).exists() else target / example
        raise ConfigError(f"{clash} already exists: fti init writes only into a folder without a project",
                          hint="pick an empty folder, or edit the project that is there")
    package = Path(importlib.import_module(f"fti.examples.{example}").__file__).parent
    config = (PACKAGED_CONF / f"{example}.yaml").read_text()
    lines = config.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("system:")) + 1
    lines.insert(at, f"definitions: {example}   # the module (package) in this folder that builds the project\n")
    (target / example).mkdir(parents=True)
    written = [target / PROJECT_FILE]
    written[0].write_text("".join(lines))
    for source in sorted(package.glob("*.py")):
        dest = target / example / source.name
        dest.write_text(source.read_text())
        written.append(dest)
    return written
