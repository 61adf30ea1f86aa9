"""Validation as data: a source's parser declared as typed fields, row rules and a uniqueness rule.

A :class:`Validation` is a parser (``parse(raw, *, now, **context) -> DataFrame``, what
:attr:`fti.authoring.Project.parsers` holds) compiled to Spark column expressions: every input row comes out
once, with its typed columns and ``_reason`` (null for a good row, else the first rule it breaks, the text the
quarantine keeps). Rules are judged in this order: missing keys and ``not_null`` of every field, then each
field in declaration order (parses as its type and ``format``, finite, whole, ``between``, ``in_set``,
``matches``, ``not_in_future``), then the :class:`Check` rules in order, then :class:`Unique`. A value that breaks
its field's rule is null in its typed column, so derived columns never see it. A reason names the raw column.

Each rule has a policy (the validation's default unless it names its own):

- ``quarantine``: the row goes to the quarantine with its reason and is left out of every feature;
- ``fail``: the same, and the batch is also rejected when more than ``features.max_bad_share`` of its new rows
  broke a ``fail`` rule (nothing is written until ``fti features accept``; the gate every hand-written parser has);
- ``warn``: the row is kept; the run logs how many rows broke the rule and the report counts them.

Why column expressions and not Great Expectations or pandera: both report per batch (pandera one error per check,
Great Expectations counts and the failing rows' key values collected to the driver, a metric job per expectation);
neither marks each failing row with its reason in the rows themselves. These rules are a few staged projections
(and one window for :class:`Unique`) over the rows the run reads anyway.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fti.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

POLICIES = ("quarantine", "fail", "warn")
DECIMAL = re.compile(r"decimal\(\s*\d+\s*,\s*\d+\s*\)")
TEMPORAL = ("date", "timestamp")
INTEGRAL = ("tinyint", "smallint", "int", "bigint")
FRACTIONAL = ("float", "double")
META = ("ingested_at", "_source", "_batch", "land_day")
POLICY_COL, WARNING_COL = "_policy", "_warning"


@dataclass(frozen=True)
class Field:
    """A typed column of the parsed rows and the rules its values obey.

    Attributes:
        name: The parsed column's name.
        type: Its Spark SQL type: ``string``, ``boolean``, ``int``/``bigint``/``smallint``/``tinyint``,
            ``float``/``double``, ``decimal(p,s)``, ``date`` or ``timestamp``. Text is trimmed, and empty
            text is null.
        column: The raw column it is parsed from (default: ``name``).
        format: For ``date``/``timestamp`` text: the Spark datetime pattern (``"yyyy-MM-dd'T'HH:mm:ss'Z'"``);
            without it Spark's default formats are accepted.
        expected: What the unparseable-value reason says is expected (default: ``format``).
        key: A key column: null or empty is refused with ``null or empty key: <name>``.
        not_null: Null or empty is refused (``null or empty <name>``).
        whole: A number must be whole (implied by the integral types).
        between: ``(low, high)`` bounds, inclusive, either may be None; numbers, or dates/timestamps as ISO text.
        in_set: The allowed values.
        matches: A regular expression the text must match (Java syntax, searched: anchor it with ``^...$``).
        not_in_future: A date/timestamp later than the run's clock is refused.
        policy: This field's rules' policy (default: the validation's).
        description: What the column is.
    """

    name: str
    type: str = "string"
    column: str | None = None
    format: str | None = None
    expected: str | None = None
    key: bool = False
    not_null: bool = False
    whole: bool = False
    between: tuple[Any, Any] | None = None
    in_set: tuple[Any, ...] | None = None
    matches: str | None = None
    not_in_future: bool = False
    policy: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        kind = self.type.lower()
        if kind not in ("string", "boolean", *INTEGRAL, *FRACTIONAL, *TEMPORAL) and not DECIMAL.fullmatch(kind):
            raise ConfigError(f"field {self.name!r}: unknown type {self.type!r}",
                              hint="types: string, boolean, tinyint, smallint, int, bigint, float, double, "
                                   "decimal(p,s), date, timestamp")
        if self.whole and kind not in FRACTIONAL:
            raise ConfigError(f"field {self.name!r}: whole is for float and double fields (integral types are whole)")
        if self.format and self.type not in TEMPORAL:
            raise ConfigError(f"field {self.name!r}: a format is for date and timestamp fields, not {self.type}",
                              hint="drop format=, or make the field's type date or timestamp")
        if self.not_in_future and self.type not in TEMPORAL:
            raise ConfigError(f"field {self.name!r}: not_in_future is for date and timestamp fields, not {self.type}")
        if self.between is not None and len(self.between) != 2:
            raise ConfigError(f"field {self.name!r}: between is (low, high), got {self.between!r}",
                              hint="use None for an open end: between=(0, None)")
        _check_policy(self.policy, f"field {self.name!r}")


@dataclass(frozen=True)
class Check:
    """A rule over a row's parsed columns: a Spark SQL condition that must hold (a row is refused when it is
    false; null passes, so a rule about a missing value is the field's ``not_null``).

    Example: ``Check("hour * 100 + minute = sched_dep_time", "sched_dep_time disagrees with hour/minute")``.
    """

    condition: str
    reason: str
    policy: str | None = None

    def __post_init__(self) -> None:
        _check_policy(self.policy, f"check {self.reason!r}")


@dataclass(frozen=True)
class Unique:
    """One row per key among the rows that passed every other rule: the latest landed wins (``ingested_at``,
    then the landing batch); an earlier copy with the same raw content is a ``duplicate row``, one with other
    content is ``superseded by a later landing of the same key``. Without a key the whole raw row is the key
    (exact duplicates only)."""

    key: tuple[str, ...] = ()
    policy: str | None = None

    def __post_init__(self) -> None:
        _check_policy(self.policy, "unique")


@dataclass(frozen=True)
class Validation:
    """A source's parser as data: typed fields, derived columns, row checks, uniqueness and the batch policy.

    Attributes:
        fields: The typed columns (in output order).
        derive: Columns computed from the typed ones, in order (each may use the ones before): name -> Spark SQL.
        checks: Row rules over the typed and derived columns.
        unique: The uniqueness rule, if any.
        policy: The rules' default policy: ``quarantine`` (default), ``fail`` or ``warn`` (see the module).
        transform: ``(rows, *, now, **context) -> DataFrame``, run last for what SQL cannot say (a join with
            reference data); it must keep ``ingested_at``, ``_reason`` and the ``_``-prefixed columns.
        keep: Output columns (default: every field and derived column), before ``ingested_at`` and ``_reason``.
    """

    fields: tuple[Field, ...]
    derive: Mapping[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    unique: Unique | None = None
    policy: str = "quarantine"
    transform: Callable[..., DataFrame] | None = None
    keep: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_policy(self.policy, "validation")
        names = [f.name for f in self.fields] + list(self.derive)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"validation declares {', '.join(dupes)} more than once",
                              hint="each field and derived column needs a name of its own")
        unknown = [c for c in (self.keep or ()) + (self.unique.key if self.unique else ()) if c not in names]
        if unknown:
            raise ConfigError(f"validation keeps or keys on undeclared column(s) {', '.join(unknown)}",
                              hint=f"declared: {', '.join(names)}")

    def __call__(self, raw: DataFrame, *, now: dt.datetime, **context: Any) -> DataFrame:
        return compile_validation(self, raw, now=now, context=context)

    def policies(self) -> set[str]:
        """The policies its rules have."""
        named = [f.policy for f in self.fields] + [c.policy for c in self.checks] + \
            [self.unique.policy if self.unique else None]
        return {p or self.policy for p in named}


def _check_policy(policy: str | None, what: str) -> None:
    if policy is not None and policy not in POLICIES:
        raise ConfigError(f"{what}: unknown policy {policy!r}", hint=f"policies: {', '.join(POLICIES)}")


def _lit_bound(value: Any, kind: str) -> Column:
    from pyspark.sql import functions as F

    return F.lit(str(value) if isinstance(value, (dt.date, dt.datetime)) else value).cast(kind) \
        if kind in TEMPORAL else F.lit(value)


def _typed(f: Field, raw: Column, is_text: bool) -> tuple[Column, Column | None]:
    """The field's typed value, and (numbers) its value as a double for the finite/whole checks."""
    from pyspark.sql import functions as F

    kind = f.type.lower()
    if not is_text:
        return raw.try_cast(kind), (raw.try_cast("double") if kind in INTEGRAL + FRACTIONAL or f.whole else None)
    if kind in TEMPORAL:
        fn = "try_to_timestamp" if kind == "timestamp" else "try_to_date"
        if f.format:
            return F.call_function(fn, raw, F.lit(f.format)), None
        return raw.try_cast(kind), None
    if kind in INTEGRAL:
        number = raw.try_cast("double")
        # exact first (a bigint past 2^53 is not a double), then "3.0"
        return F.coalesce(raw.try_cast(kind), F.when(number % 1 == 0, number.try_cast(kind))), number
    if kind in FRACTIONAL:
        number = raw.try_cast("double")
        return number.try_cast(kind), number
    return (raw if kind == "string" else raw.try_cast(kind)), None


def _field_rules(f: Field, label: str, kind: str, text: Column, value: Column, number: Column | None, shown: Column,
                 now: dt.datetime) -> list[tuple[Column, Column]]:
    """A field's own rules in order, as ``(broken, reason)``; reasons name the raw column."""
    from pyspark.sql import functions as F

    expected = f.expected or f.format
    numeric = number is not None and kind in FRACTIONAL + INTEGRAL
    parsed = number if numeric else value
    own = [(text.isNotNull() & parsed.isNull(),
            F.concat(F.lit(f"unparseable {label}: '"), shown, F.lit(f"' (expected {expected})" if expected else "'")))]
    if numeric:
        own.append((F.isnan(number) | (F.abs(number) == float("inf")), F.concat(F.lit(f"{label} is not a finite number: "), shown)))
    if number is not None and (f.whole or kind in INTEGRAL):
        own.append(((number % 1) != 0, F.lit(f"{label} is not a whole number")))
    if numeric and kind in INTEGRAL:
        own.append((number.isNotNull() & value.isNull(), F.concat(F.lit(f"{label} does not fit {kind}: "), shown)))
    if f.between is not None:
        lo, hi = f.between
        temporal = kind in TEMPORAL
        low = None if lo is None else _lit_bound(lo, kind)
        high = None if hi is None else _lit_bound(hi, kind)
        if low is not None and high is not None and not temporal:
            own.append(((value < low) | (value > high), F.concat(F.lit(f"{label} out of range [{lo}, {hi}]: "), shown)))
        else:
            if low is not None:
                own.append((value < low, F.lit(f"{label} before {lo}") if temporal
                            else F.concat(F.lit(f"{label} below {lo}: "), shown)))
            if high is not None:
                own.append((value > high, F.lit(f"{label} after {hi}") if temporal
                            else F.concat(F.lit(f"{label} above {hi}: "), shown)))
    if f.in_set is not None:
        own.append((~value.isin(*f.in_set), F.concat(F.lit(f"{label} not one of {', '.join(map(str, f.in_set))}: "), shown)))
    if f.matches is not None:
        own.append((~value.cast("string").rlike(f.matches), F.concat(F.lit(f"{label} does not match {f.matches}: "), shown)))
    if f.not_in_future:
        own.append((value > F.lit(now).cast("timestamp"), F.lit(f"{label} after the run's clock ({now.isoformat()})")))
    return own


def _first(rules: list[tuple[Column, Column]], default: Column | None = None) -> Column:
    from pyspark.sql import functions as F

    expr = default if default is not None else F.lit(None).cast("string")
    for cond, value in reversed(rules):
        expr = F.when(cond, value).otherwise(expr)
    return expr


def compile_validation(v: Validation, raw: DataFrame, *, now: dt.datetime, context: Mapping[str, Any]) -> DataFrame:
    """The rows of ``raw`` parsed and judged by ``v`` (see the module)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    text_cols = {c.name for c in raw.schema.fields if isinstance(c.dataType, StringType)}
    source_cols = [c for c in raw.columns if c not in META and not c.startswith("_")]
    missing = sorted({f.column or f.name for f in v.fields} - set(raw.columns))
    if missing:
        raise ConfigError(f"validation reads column(s) {', '.join(missing)} the raw rows do not have",
                          hint=f"raw columns: {', '.join(source_cols)}")
    # staged projections, each referring to the columns of the one before: one expression per rule (a when-chain
    # that repeated the parse in every branch would pass the JVM's 64 KB method limit for a wide source)
    policies = [f.policy or v.policy for f in v.fields]
    parsed: dict[str, Column] = {}
    for i, f in enumerate(v.fields):
        label = f.column or f.name
        src = F.col(f"`{label}`")
        is_text = label in text_cols
        text = F.when(F.trim(src) != "", F.trim(src)) if is_text else src
        value, number = _typed(f, text, is_text)
        parsed |= {f"_x{i}": text, f"_y{i}": value, **({f"_z{i}": number} if number is not None else {})}
    df = raw.withColumns(parsed)
    judged: dict[str, Column] = {}
    for i, f in enumerate(v.fields):
        label, text = f.column or f.name, F.col(f"_x{i}")
        if f.key or f.not_null:
            judged[f"_k{i}"] = F.when(text.isNull(), F.lit(f"null or empty {'key: ' if f.key else ''}{label}"))
        number = F.col(f"_z{i}") if f"_z{i}" in parsed else None
        judged[f"_e{i}"] = _first(_field_rules(f, label, f.type.lower(), text, F.col(f"_y{i}"), number,
                                               F.coalesce(text.cast("string"), F.lit("null")), now))
    df = df.withColumns(judged)
    # the order rows are judged in: every missing key or value first, then each field's own rules
    order = [(c, policies[int(c[2:])]) for c in judged if c.startswith("_k")] + \
            [(c, policies[int(c[2:])]) for c in judged if c.startswith("_e")]
    stops = [F.col(c) for c, p in order if p != "warn"]
    warns = [F.col(c) for c, p in order if p == "warn"]
    none = F.lit(None).cast("string")
    df = df.withColumns({
        "_reason": F.coalesce(*stops, none),
        POLICY_COL: _first([(F.col(c).isNotNull(), F.lit(p)) for c, p in order if p != "warn"]),
        WARNING_COL: F.coalesce(*warns, none),
        # a value that broke its own (quarantine or fail) rule is null from here on: derived columns never see it
        **{f.name: F.col(f"_y{i}") if policies[i] == "warn" else F.when(F.col(f"_e{i}").isNull(), F.col(f"_y{i}"))
           for i, f in enumerate(v.fields)},
    }).drop(*parsed, *judged)
    for name, sql in v.derive.items():
        df = df.withColumn(name, F.expr(sql))
    if v.checks:
        broken_checks = [(~F.coalesce(F.expr(c.condition), F.lit(True)), F.lit(c.reason), c.policy or v.policy)
                         for c in v.checks]
        df = add_rules(df, broken_checks)
    if v.unique is not None:
        content = F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in source_cols])), 256)
        key = [F.when(F.col("_reason").isNull(), F.col(f"`{k}`")) for k in v.unique.key] or [content]
        order = Window.partitionBy(*key).orderBy(*[F.col(c).desc() for c in ("ingested_at", "_batch") if c in df.columns],
                                                 content.desc())
        later = (F.row_number().over(order) > 1) & F.col("_reason").isNull()
        if v.unique.key:
            later = later & F.col(f"`{v.unique.key[0]}`").isNotNull()
        reason = F.when(content == F.first(content).over(order), F.lit("duplicate row")) \
            .otherwise(F.lit("superseded by a later landing of the same key"))
        df = add_rules(df, [(later, reason, v.unique.policy or v.policy)])
    keep = v.keep or tuple([f.name for f in v.fields] + list(v.derive))
    extra = [c for c in df.columns if c.startswith("_raw_") or c == "_raw_version"]
    warns = "warn" in v.policies()  # no warn rule: no column (and no job counting warnings)
    out = df.select(*[F.col(f"`{c}`") for c in keep], "ingested_at", "_reason", POLICY_COL,
                    *([WARNING_COL] if warns else []), *extra)
    return v.transform(out, now=now, **context) if v.transform else out


def add_rules(df: DataFrame, rules: list[tuple[Column, Column, str]]) -> DataFrame:
    """Judge ``df`` by more rules (``(broken, reason, policy)``), in order: ``_reason``, ``_policy`` and
    ``_warning`` (which ``df`` has) gain the later rules' verdicts; a row keeps the first reason it got."""
    from pyspark.sql import functions as F

    df = df.withColumns({f"_b{j}": F.when(cond, reason) for j, (cond, reason, _) in enumerate(rules)})
    stops = [(F.col(f"_b{j}"), p) for j, (_, _, p) in enumerate(rules) if p != "warn"]
    warns = [F.col(f"_b{j}") for j, (_, _, p) in enumerate(rules) if p == "warn"]
    ok = F.col("_reason").isNull()
    return df.withColumns({
        "_reason": F.coalesce(F.col("_reason"), *[c for c, _ in stops]),
        POLICY_COL: F.when(ok, _first([(c.isNotNull(), F.lit(p)) for c, p in stops])).otherwise(F.col(POLICY_COL)),
        WARNING_COL: F.coalesce(F.col(WARNING_COL), *([F.when(ok, F.coalesce(*warns))] if warns else [])),
    }).drop(*[f"_b{j}" for j in range(len(rules))])
