"""The ``fti`` command. Each subcommand parses its options and calls one library function.

Global options (accepted before or after the subcommand): ``--project``, ``--system``, ``--conf``,
``--profile``, ``--home``, ``--debug``. Which project a command runs on: :mod:`fti.projects` (with none named
anywhere, the shipped flights example). Errors print one line (and a hint) and exit non-zero; tracebacks only with
``--debug``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import traceback
from typing import Callable, Sequence

from fti.errors import FtiError

log = logging.getLogger("fti")

Handler = Callable[[argparse.Namespace], int]


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--project", default=default, help="project folder (its fti.yaml; also FTI_PROJECT, or the "
                        "current folder when it holds one)")
    parser.add_argument("--system", default=default, help="a shipped example or installed project by name: flights, "
                        "synthetic (default flights when no project is found)")
    parser.add_argument("--conf", default=default, help="YAML config file (default ./conf/<system>.yaml, else the one shipped with fti)")
    parser.add_argument("--profile", default=default, help="config profile: local (default), cluster")
    parser.add_argument("--home", default=default, help="home of all state: a folder, or an s3a://, gs://, abfss:// "
                        "or dbfs:/ URI (default ./lakehouse or FTI_HOME)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="show tracebacks and debug logs")


def _settings(args: argparse.Namespace):
    from fti.config import ensure_home, load_config
    from fti.projects import DEFAULT_EXAMPLE, implicit_project_file

    system = args.system
    if system is None and args.conf is None and args.project is None and implicit_project_file(os.environ) is None:
        system = DEFAULT_EXAMPLE
    settings = load_config(system, project=args.project, conf=args.conf, profile=args.profile, home=args.home)
    ensure_home(settings)
    return settings


def cmd_catalog(args: argparse.Namespace) -> int:
    """List tables, feature groups and models."""
    from fti.catalog import build_catalog
    from fti.report import format_table
    from fti.store import DeltaLog

    settings = _settings(args)
    # Listing reads Delta logs only: no Spark session is needed.
    catalog = build_catalog(settings, DeltaLog(settings.home))
    if args.json:
        print(json.dumps(catalog, indent=2, default=str))
        return 0
    print(f"home: {catalog['home']}\ntracking: {catalog['tracking_uri']}\n")
    print(format_table([(t["name"], _kind(t), t["version"], t["rows"], t["last_commit"]) for t in catalog["tables"]],
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


def _kind(table: dict) -> str:
    """A catalog table's kind as printed (a training set without its manifest is marked)."""
    return table["kind"] + (" (incomplete: no manifest)" if table.get("incomplete") else "")


def _session(args: argparse.Namespace, settings=None):
    """Settings, Spark session and table store for commands that read or write data."""
    from fti.spark import get_spark
    from fti.store import open_store

    settings = settings or _settings(args)
    _check_times(args, settings)
    spark = get_spark(settings)
    return settings, spark, open_store(spark, settings)


def _check_times(args: argparse.Namespace, settings) -> None:
    """Every time argument parses before Spark starts: a typo fails at once, not after a session start."""
    from fti.timeutil import parse_day, parse_instant

    for name in ("as_of", "now"):
        if getattr(args, name, None):
            parse_instant(getattr(args, name), settings.config.timezone, option="--" + name.replace("_", "-"))
    for name in ("start", "end", "through"):
        if getattr(args, name, None):
            parse_day(getattr(args, name), option=f"--{name}")


def _clock(args: argparse.Namespace, settings) -> "dt.datetime | None":
    from fti.timeutil import parse_instant

    return parse_instant(args.now, settings.config.timezone, option="--now") if args.now else None


def cmd_ingest(args: argparse.Namespace) -> int:
    """Land raw data: a file into a source, or the project's own loader (``--through DAY``)."""
    from pathlib import Path

    from fti.ingest import land_file, load_through
    from fti.projects import load_project
    from fti.report import format_table
    from fti.timeutil import UTC, parse_day

    settings, spark, store = _session(args)
    now = _clock(args, settings)
    if args.file:
        system = load_project(settings)
        if not args.source or args.source not in system.sources:
            raise FtiError(f"--file needs --source, one of: {', '.join(system.sources)}")
        result = land_file(spark, store, settings.system, system.sources[args.source], Path(args.file),
                           now=now or dt.datetime.now(UTC))
        print(f"landed {result.rows} rows of {args.file} into {settings.system}/{args.source} "
              f"(version {result.version})")
        return 0
    if not args.through:
        raise FtiError("fti ingest needs --through DAY (the project's loader) or --source S --file PATH")
    batches = load_through(store, settings, through=parse_day(args.through, option="--through"), batch=args.batch,
                           now=now, entities=args.entities, events_per_day=args.events_per_day)
    if not batches:
        print(f"already landed through {args.through}: nothing to do")
        return 0
    names = list(batches[0].counts)
    print(format_table([(b.first_day, b.last_day, b.now.isoformat(), *(b.counts.get(n, 0) for n in names), b.version)
                        for b in batches], ["first day", "last day", "landed at (UTC)", *names, "raw version"]))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """Run the feature pipeline (incremental, or a backfill), or accept a rejected batch."""
    from fti.features import pipeline, quarantine
    from fti.report import format_table
    from fti.timeutil import parse_day

    settings, spark, store = _session(args)
    if args.action == "accept":
        if not args.source:
            raise FtiError("fti features accept needs --source SOURCE (the raw source whose batch was rejected)")
        version = quarantine.accept_rejected(store, settings, source=args.source)
        print(f"accepted the rejected batch of {args.source} up to raw version {version}: the next feature run "
              "featurizes its good rows (its bad rows stay in the quarantine)")
        return 0
    report = pipeline.run(
        store, settings, now=_clock(args, settings),
        start=parse_day(args.start, option="--start") if args.start else None,
        end=parse_day(args.end, option="--end") if args.end else None,
        groups=args.group or None,
    )
    for source, new in report.new_rows.items():
        if new:
            print(f"{source}: {new} new raw rows, {report.bad_rows[source]} quarantined")
    for o in report.outputs:
        if o.quarantined:
            print(f"{o.table}: {o.quarantined} computed rows quarantined by its checks")
    for line in report.unattributed_hints(settings.system):
        print(line, file=sys.stderr)
    if report.up_to_date:
        print(f"up to date (raw versions {report.raw_versions}): nothing committed")
        return 0
    print(format_table([(o.table, o.status, o.version, o.rows, o.days,
                         f"{o.first_day}..{o.last_day}" if o.first_day else "", f"{o.seconds:.1f}")
                        for o in report.outputs],
                       ["table", "status", "version", "rows", "days", "window", "seconds"]))
    print(f"run {report.run_id} in {report.seconds:.1f} s")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """What ``fti features`` with the same arguments would do; it changes nothing. Exit 1 on a breaking change."""
    from fti.features import pipeline
    from fti.report import format_table
    from fti.timeutil import parse_day

    settings, spark, store = _session(args)
    planned = pipeline.plan(store, settings, start=parse_day(args.start, option="--start") if args.start else None,
                            end=parse_day(args.end, option="--end") if args.end else None, groups=args.group or None)
    print(format_table([(s.source, s.version, "-" if s.watermark is None else s.watermark, s.new_rows, s.days,
                         s.unattributed_rows or "") for s in planned.sources],
                       ["source", "version", "processed through", "new rows", "their days", "rows without a day"]))
    print()
    print(format_table([(o.table, o.definition, len(o.days), f"{o.days[0]}..{o.days[-1]}" if o.days else "up to date",
                         o.input_days or "", o.state) for o in planned.outputs],
                       ["table", "definition", "days", "rewrites", "reads days", "state"]))
    for o in planned.breaking:
        print(f"error: {o.table}: {o.definition}; a run refuses it\nhint: {o.hint}", file=sys.stderr)
    if planned.breaking:
        return 1
    print("nothing changed: this is what `fti features` would do with the same arguments")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Remove an entity from every table that has its key column, and keep it out of every later run."""
    from fti.forget import forget

    settings, spark, store = _session(args)
    result = forget(store, settings, where=args.where)
    for table, rows in sorted(result.deleted.items()):
        print(f"{table}: {rows} row(s) removed (version {result.versions[table]})")
    print(result.message)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write a runnable starter project (an example's config and definitions) into a folder."""
    from fti.projects import init_project

    written = init_project(args.folder, example=args.example)
    print("\n".join(f"wrote {path}" for path in written))
    print(f"\nnext: cd {args.folder} && fti ingest --through 2024-02-29 && fti features && fti train && fti score"
          if args.example == "synthetic" else
          f"\nnext: cd {args.folder} && fti demo   (or fti ingest --through DAY, fti features, fti train, fti score)")
    return 0


def _quality(report) -> str:
    """A training report's promotion metric on test (and validation), as the demo prints it."""
    name = "AUC" if report.metric == "auc" else report.metric
    return (f"test {name} {report.metrics['test_' + report.metric]:.4f} "
            f"(validation {report.metrics['val_' + report.metric]:.4f})")


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole FTI cycle on a project with a ``demo`` section (the real flights data by default)."""
    from fti.catalog import build_catalog
    from fti.demo import run_demo
    from fti.inference.monitoring import realized_text
    from fti.progress import StageProgress
    from fti.report import format_table

    settings, spark, store = _session(args)
    if not args.debug:  # the progress lines below say what happens; --debug shows every log line
        logging.getLogger("fti").setLevel(logging.WARNING)
    with StageProgress() as progress:
        report = run_demo(store, settings, progress=progress)
    landed = sum(next(iter(b.counts.values()), 0) for b in report.batches)
    what = next(iter(report.batches[0].counts), "rows") if report.batches else "rows"
    print(f"\nlanded {len(report.batches)} new batch(es), {landed} {what}; "
          f"{len(report.feature_runs)} feature run(s) in {report.seconds['ingest+features']:.0f} s")
    if report.train is not None:
        t = report.train
        print(f"trained {t.model_name}/{t.version} -> {t.alias}: {_quality(t)} on {t.rows['train']} training rows in {report.seconds['train']:.0f} s"
              f"\n  {t.reason}")
    else:
        print(f"model version {report.trained_version} is already trained on the current inputs: not retrained")
    sc = report.score
    print(f"scored {sc.scored} entities (population {sc.population}, {sc.without_features} without group features) "
          f"as of {sc.as_of.isoformat()} with {sc.model}/{sc.model_version} in {report.seconds['score']:.0f} s")
    for r in report.monitor["runs"]:
        print(f"monitor {r['model']} @ {r['as_of']}: score PSI {r.get('score_psi') or 0:.4f}, realized "
              f"{realized_text(r)}, drift: {', '.join(r['drifted']) or 'none'}")
    catalog = build_catalog(settings, store)
    print()
    print(format_table([(t["name"], _kind(t), t["version"], t["rows"]) for t in catalog["tables"]],
                       ["table", "kind", "version", "rows"]))
    print(f"\nhome: {settings.home}\nMLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri} "
          f"--port 5000\nmonitoring reports: {settings.home / settings.system / 'monitoring_reports'}\n"
          f"catalog: fti catalog --home {settings.home}")
    return 0


def _print_leakage(report: dict) -> None:
    from fti.report import format_table

    print(format_table([(g, f"{r['matched']:.3f}", r["median_age_s"], r["max_age_s"], r["ttl_excluded"],
                         r["bitemporal_excluded"]) for g, r in report.items()],
                       ["group", "matched", "median age (s)", "max age (s)", "ttl excluded", "bitemporal excluded"]))


def cmd_training_set(args: argparse.Namespace) -> int:
    """Build a point-in-time training set, or rebuild one from its manifest and compare hashes."""
    from fti.store.feature_store import FeatureStore
    from fti.timeutil import parse_day

    settings, spark, store = _session(args)
    fs = FeatureStore(store, settings)
    if args.action == "build":
        ts = fs.get_training_set(None, args.view, bitemporal=args.bitemporal,
                                 start=parse_day(args.start, option="--start") if args.start else None,
                                 end=parse_day(args.end, option="--end") if args.end else None)
        ts = fs.materialize(ts)
        out = ts.manifest.output
        print(f"training set {out.table} (version {out.version}): {out.rows} rows, "
              f"{len(ts.feature_columns)} features\nsha256 {out.sha256}\nmanifest {ts.manifest_file}\n")
        _print_leakage(ts.manifest.leakage_report)
        return 0
    if bool(args.manifest) == bool(args.model):
        raise FtiError("fti training-set rebuild needs --manifest PATH or --model NAME@alias|NAME/VERSION")
    if args.model:
        from fti.registry import ModelRef, manifest_of_model

        manifest = manifest_of_model(settings, ModelRef.parse(args.model))
    else:
        from fti.store.manifest import TrainingSetManifest

        manifest = TrainingSetManifest.read(args.manifest)
    result = fs.rebuild(manifest)
    verdict = "MATCHES" if result["matches"] else "DIFFERS"
    print(f"rebuilt {result['table']}: {result['rows']} rows\nexpected {result['expected']}\n"
          f"actual   {result['actual']}\nhash {verdict}")
    return 0 if result["matches"] else 4


def cmd_train(args: argparse.Namespace) -> int:
    """Train, register and gate a model of the system's feature view."""
    from fti.report import format_table
    from fti.training.pipeline import preflight
    from fti.training.pipeline import run as train

    settings = _settings(args)
    preflight(settings)  # an unreachable MLflow or Ray fails before Spark starts
    settings, spark, store = _session(args, settings)
    if args.reproduce:
        from fti.training.pipeline import reproduce

        r = reproduce(store, settings, args.reproduce)
        print(format_table([("model", r.model), ("training set", f"{r.training_set}: {r.rows} rows"),
                            ("trained", r.workers),
                            (f"test {r.metric}", f"{r.reproduced:.6f} (recorded {r.recorded:.6f})"),
                            ("test predictions", f"largest difference {r.max_score_diff:.3g}"),
                            ("booster", "IDENTICAL bytes" if r.identical else "DIFFERS"),
                            ("seconds", f"{r.seconds:.0f}")], ["", ""]))
        return 0 if r.identical else 4
    report = train(store, settings, view=args.view,
                   exclude_features=args.exclude_feature if args.exclude_feature else None)
    m = report.metrics
    champ = "none" if report.champion_metric is None else f"{report.champion_metric:.4f}"
    if report.objective == "binary":
        quality = [("test AUC", f"{m['test_auc']:.4f} (champion {champ})"), ("validation AUC", f"{m['val_auc']:.4f}"),
                   ("test log loss", f"{m['test_log_loss']:.4f}"),
                   ("threshold (F1 on validation)", f"{report.threshold:.4f}"),
                   ("test precision/recall", f"{m['test_precision']:.3f}/{m['test_recall']:.3f}"),
                   ("test calibration error", f"{m['test_calibration_error']:.4f}")]
    else:
        from fti.objectives import METRICS

        quality = [(f"test {report.metric} (promotion)", f"{m['test_' + report.metric]:.4f} (champion {champ})"),
                   *[(f"test / validation {k}", f"{m['test_' + k]:.4f} / {m['val_' + k]:.4f}")
                     for k in METRICS[report.objective] if k != report.metric]]
    print(format_table([
        ("training set", f"{report.training_set} ({'reused' if report.reused_training_set else 'built'})"),
        ("rows train/val/test", f"{report.rows['train']}/{report.rows['validation']}/{report.rows['test']}"),
        ("features", len(report.features)),
        ("objective", report.objective),
        *quality,
        ("registered", f"{report.model_name}/{report.version} -> {report.alias}"),
        ("trained", report.workers),
        ("why", report.reason),
        ("seconds (set/fit/total)", f"{report.seconds['training_set']:.0f}/{report.seconds['fit']:.0f}/"
                                    f"{report.seconds['total']:.0f}"),
        ("mlflow", report.experiment_url),
    ], ["", "value"]))
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    """Re-point the champion alias: promote a version, or roll back to the previous champion."""
    from fti.registry import ModelRef, resolve_version
    from fti.training.promotion import promote, rollback

    settings = _settings(args)
    if args.action == "promote":
        ref = ModelRef.parse(args.ref)
        version = int(resolve_version(settings, ref).version)
        print(promote(settings, ref.name, version, reason=args.reason or "promoted by hand"))
    else:
        print(rollback(settings, args.ref, reason=args.reason or "rolled back by hand"))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score the population of one prediction time."""
    from fti.inference.pipeline import model_ref
    from fti.inference.pipeline import run as score
    from fti.registry import resolve_version
    from fti.report import format_table
    from fti.timeutil import parse_instant

    if not args.as_of:
        raise FtiError("fti score needs --as-of T (a prediction time, e.g. 2013-12-01T00:00)")
    settings = _settings(args)
    _check_times(args, settings)  # bad arguments and a wrong model fail before Spark starts
    resolve_version(settings, model_ref(settings, args.model))
    settings, spark, store = _session(args, settings)
    report = score(store, settings, as_of=parse_instant(args.as_of, settings.config.timezone, option="--as-of"),
                   model=args.model)
    print(format_table([
        ("model", f"{report.model}/{report.model_version}"),
        ("as of (UTC)", report.as_of.isoformat()),
        ("population", report.population),
        ("predictions", report.scored),
        ("scored without any group feature", report.without_features),
        *([("predicted positive", report.positives)] if report.objective == "binary" else []),
        ("feature versions", json.dumps(report.feature_versions, sort_keys=True)),
        ("table", f"{report.table} v{report.version}"),
        ("seconds", f"{report.seconds:.1f}"),
    ], ["", "value"]))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    """Walk a model or a prediction back to raw table versions."""
    from fti.inference.lineage import format_chain, model_lineage, prediction_lineage
    from fti.registry import ModelRef
    from fti.timeutil import parse_instant

    if bool(args.model) == bool(args.prediction):
        raise FtiError("fti lineage needs --model NAME@alias|NAME/VERSION or --prediction KEY --as-of T")
    if args.model:
        from fti.store import DeltaLog

        settings = _settings(args)
        chain = model_lineage(DeltaLog(settings.home), settings, ModelRef.parse(args.model))
    else:
        if not args.as_of:
            raise FtiError("--prediction needs --as-of T")
        settings, spark, store = _session(args)
        chain = prediction_lineage(store, settings, args.prediction,
                                   parse_instant(args.as_of, settings.config.timezone, option="--as-of"))
    print(json.dumps(chain, indent=2, default=str) if args.json else format_chain(chain))
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """Drift of each scoring run against the training set, and realized quality once outcomes arrived."""
    from fti.inference.monitoring import realized_text
    from fti.inference.monitoring import run as monitor
    from fti.report import format_table

    settings, spark, store = _session(args)
    result = monitor(store, settings)

    def num(v):
        return "" if v is None else f"{v:.4f}"

    print(format_table([(r["model"], r["as_of"], num(r.get("score_psi")), realized_text(r),
                         num(r.get("outcomes_arrived")), ", ".join(r["drifted"]) or "none") for r in result["runs"]],
                       ["model", "as of", "score PSI", "realized", "outcomes", "drift flagged"]))
    references = sorted({r["reference"] for r in result["runs"]})
    print(f"\n{len(result['runs'])} scoring run(s) monitored, {result['up_to_date']} already up to date; "
          f"{result['table']} v{result['version']}" + "".join(f"\nreference: {r}" for r in references)
          + "".join(f"\nnot testable in {r['model']}@{r['as_of']} (too few distinct values or rows): "
                    f"{', '.join(r['not_testable'])}" for r in result["runs"] if r["not_testable"])
          + "".join(f"\nreport: {r['png']}" for r in result["runs"]))
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    """Delete data files no version within the retention needs, keeping the versions registered models pin."""
    from fti.features.maintenance import vacuum_tables
    from fti.registry import pins
    from fti.store import DeltaLog

    settings = _settings(args)
    log_reader = DeltaLog(settings.home)  # vacuum reads and edits the log only: no Spark session
    tables = args.table or log_reader.list_tables()
    results = vacuum_tables(log_reader, tables, retention_hours=args.retention_hours, pins=pins(settings),
                            force=args.force, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for res in results:
        print(f"{res['table']}: {verb} {len(res['deleted'])} file(s)")
        for pin in res["kept_pins"]:
            print(f"  kept the files of version {pin.version}, pinned by model {pin.owner} (--force deletes them)")
        for pin in res["broken_pins"]:
            print(f"  model {pin.owner} can no longer rebuild its training set ({pin.table} version {pin.version})")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """Run Spark SQL over the home's tables, registered by name (``<system>.<table>``)."""
    from fti.report import format_table

    settings, spark, store = _session(args)
    names = store.register_names(catalog=settings.config.delta.catalog or "")
    if not args.query:
        print("\n".join(names))
        return 0
    result = spark.sql(args.query)
    rows = result.limit(args.limit + 1).collect()
    print(format_table([tuple(r) for r in rows[:args.limit]], result.columns))
    if len(rows) > args.limit:
        print(f"(first {args.limit} rows; --limit N shows more)")
    return 0


def cmd_connector(args: argparse.Namespace) -> int:
    """Install or show the Delta Spark connector's jars (and Hadoop's S3A connector, for s3a:// homes)."""
    from fti import connector

    want = connector.expected()
    if args.action == "install":
        jars = connector.install(force=args.force)
        print(f"{want.coordinates}: {len(jars)} jar(s) in {connector.jars_dir()}")
        s3a = connector.install_object_store(force=args.force)
        print(f"{connector.object_store_coordinates()}: {len(s3a)} jar(s) in {connector.object_store_jars_dir()}")
        return 0
    conf, origin = connector.session_conf()
    print(f"connector:  {want.coordinates if want else '(delta-spark is not installed)'}")
    print(f"jars:       {connector.jars_dir()} ({'installed' if origin == 'installed' else 'not installed'})")
    s3a = "installed" if connector.installed_object_store_jars() else "not installed"
    print(f"s3a:        {connector.object_store_coordinates()} in {connector.object_store_jars_dir()} ({s3a})")
    print(f"a session fti builds loads it from: {origin}")
    if origin != "none":
        print("spark-submit flags: " + " ".join(connector.spark_submit_args()))
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

    p = sub.add_parser("ingest", parents=[common], help="land raw data: a file into a source, or the project's own loader up to a day")
    p.add_argument("--through", help="replay up to this day (inclusive, system time zone), YYYY-MM-DD")
    p.add_argument("--batch", choices=["day", "week", "month"], help="replay batch size (default from config)")
    p.add_argument("--now", help="landing clock, ISO-8601 (default: the end of each batch; for --file: now)")
    p.add_argument("--source", help="raw source to land --file into (the project's source names)")
    p.add_argument("--file", help="CSV (with header), JSON lines (.jsonl) or parquet file to land")
    p.add_argument("--entities", type=int, help="passed to the project's loader (the synthetic example: number of entities)")
    p.add_argument("--events-per-day", type=int, help="passed to the project's loader (the synthetic example: events per entity and day)")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("features", parents=[common], help="run the feature pipeline (or: features accept)")
    p.add_argument("action", nargs="?", choices=["accept"], help="accept: accept the rejected batch of --source")
    p.add_argument("--source", help="accept: the raw source whose rejected batch is accepted")
    p.add_argument("--now", help="the run's clock, ISO-8601 (default: wall clock)")
    p.add_argument("--start", help="backfill from this day (inclusive)")
    p.add_argument("--end", help="backfill up to this day (exclusive)")
    p.add_argument("--group", action="append", help="only this feature group (repeatable)")
    p.set_defaults(handler=cmd_features)

    p = sub.add_parser("plan", parents=[common], help="what a feature run would do (tables to create, changed "
                       "definitions, state to rebuild, unprocessed source versions); changes nothing")
    p.add_argument("--start", help="plan a backfill from this day (inclusive)")
    p.add_argument("--end", help="plan a backfill up to this day (exclusive)")
    p.add_argument("--group", action="append", help="only this feature group (repeatable)")
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser("forget", parents=[common], help="remove an entity from every table, for good (data "
                       "protection)")
    p.add_argument("--where", required=True, help="KEY=VALUE of an entity key, e.g. carrier=UA")
    p.set_defaults(handler=cmd_forget)

    p = sub.add_parser("training-set", parents=[common], help="build a point-in-time training set, or rebuild one")
    p.add_argument("action", choices=["build", "rebuild"])
    p.add_argument("--view", help="feature view (default: the config's first)")
    p.add_argument("--start", help="first prediction day (inclusive)")
    p.add_argument("--end", help="last prediction day (exclusive)")
    p.add_argument("--bitemporal", action="store_true", help="only use feature rows stored by the prediction time")
    p.add_argument("--manifest", help="rebuild: path of a training_set.json")
    p.add_argument("--model", help="rebuild: the training set of NAME@alias or NAME/VERSION")
    p.set_defaults(handler=cmd_training_set)

    p = sub.add_parser("train", parents=[common], help="train on Ray, log to MLflow, register, promotion gate")
    p.add_argument("--view", help="feature view (default: training.feature_view)")
    p.add_argument("--exclude-feature", action="append", help="leave a feature out (repeatable)")
    p.add_argument("--reproduce", metavar="NAME/VERSION",
                   help="retrain a registered version from its recorded manifest and config and say whether the "
                        "booster matches, byte for byte (exit 4 when it differs); registers nothing")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("model", parents=[common], help="promote NAME/VERSION or roll back NAME")
    p.add_argument("action", choices=["promote", "rollback"])
    p.add_argument("ref", help="promote: NAME/VERSION or NAME@alias; rollback: NAME")
    p.add_argument("--reason", help="why (recorded as a tag)")
    p.set_defaults(handler=cmd_model)

    p = sub.add_parser("score", parents=[common], help="score the population of a prediction time")
    p.add_argument("--as-of", help="prediction time, ISO-8601 (system time zone without an offset)")
    p.add_argument("--model", help="NAME@alias or NAME/VERSION (default: <model>@champion)")
    p.set_defaults(handler=cmd_score)

    p = sub.add_parser("lineage", parents=[common], help="prediction/model -> training set -> features -> raw")
    p.add_argument("--model", help="NAME@alias or NAME/VERSION")
    p.add_argument("--prediction", help="key of a prediction row (e.g. a flight_id)")
    p.add_argument("--as-of", help="prediction time of --prediction")
    p.add_argument("--json", action="store_true", help="print the chain as JSON")
    p.set_defaults(handler=cmd_lineage)

    p = sub.add_parser("monitor", parents=[common], help="feature/score drift per scoring run, realized AUC")
    p.set_defaults(handler=cmd_monitor)

    p = sub.add_parser("vacuum", parents=[common],
                       help="delete old data files (keeps the versions registered models pin)")
    p.add_argument("--table", action="append", help="table name, e.g. flights/carrier_delay (default: all)")
    p.add_argument("--retention-hours", type=float, help="keep files removed less than this long ago "
                   "(default: the table's retention, 365 days)")
    p.add_argument("--force", action="store_true", help="also delete the pinned versions' files (the models named "
                   "lose the rebuild of their training sets)")
    p.add_argument("--dry-run", action="store_true", help="only list the files")
    p.set_defaults(handler=cmd_vacuum)

    p = sub.add_parser("sql", parents=[common], help="Spark SQL over the home's tables by name, e.g. "
                       "\"SELECT * FROM flights.carrier_delay\" (no query: list the names)")
    p.add_argument("query", nargs="?", help="the SQL query")
    p.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    p.set_defaults(handler=cmd_sql)

    p = sub.add_parser("connector", parents=[common], help="install (make setup does) or show the Delta Spark "
                       "connector's jars")
    p.add_argument("action", choices=["install", "show"])
    p.add_argument("--force", action="store_true", help="install: fetch again")
    p.set_defaults(handler=cmd_connector)

    p = sub.add_parser("init", help="write a runnable starter project (fti.yaml + definitions) into a folder")
    p.add_argument("folder", help="the project folder (created; must not hold a project yet)")
    p.add_argument("--example", default="synthetic", choices=["flights", "synthetic"],
                   help="which shipped example to start from (default synthetic: its own seeded generator)")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("demo", parents=[common], help="the whole FTI cycle on a project with a demo section (default: the real flights data)")
    p.set_defaults(handler=cmd_demo)
    return parser


class RetriedPy4jCommand(logging.Filter):
    """Drops py4j's "Exception while sending command." at INFO: py4j logs it, traceback and all, on the ROOT
    logger when a pooled connection went stale and it retries the command (which then succeeds). A command that
    fails for good is logged at ERROR and raised, and still shows; ``--debug`` shows both."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and record.levelno < logging.WARNING
                    and record.getMessage().startswith("Exception while sending command"))


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
    if not args.debug:
        for handler in logging.getLogger().handlers:
            handler.addFilter(RetriedPy4jCommand())
    had_session = _active_spark() is not None
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
            first = str(err).strip().splitlines()[0][:400] if str(err).strip() else ""
            print(f"error: {type(err).__name__}: {first}", file=sys.stderr)
            print("hint: rerun with --debug for the traceback", file=sys.stderr)
        return 1
    finally:
        if not had_session:
            _stop_spark()


def _active_spark():
    if "pyspark" not in sys.modules:
        return None
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def _stop_spark() -> None:
    """Stop the session this command started (not one given by spark-submit, a notebook or the caller:
    those exit themselves)."""
    session = _active_spark()
    if session is not None and os.environ.get("SPARK_ENV_LOADED") is None:
        try:
            session.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
