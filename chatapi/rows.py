"""Hand-written INSERTs and UPDATEs with the ORM's values, and queries compiled once: for the
hot paths that do in one statement what the ORM would do in several (a turn's two messages
and its conversation, a ledger row and its rollups), or that run the same read on every
request (the caller's conversation). Values are prepared by the models' own fields, as
``save()`` prepares them. Inserted rows travel as one JSON parameter (``json_rows``) that
PostgreSQL turns into rows of the table's type, and an UPDATE's values likewise
(``update_values``)."""

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection, models
from django.db.models import signals
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.db.models.sql.compiler import SQLCompiler

type Field = models.Field[Any, Any]


@functools.cache
def _fields(model: type[models.Model]) -> tuple[Field, ...]:
    return tuple(
        field
        for field in model._meta.concrete_fields
        # An automatic primary key is the database's to number.
        if not (field.primary_key and isinstance(field, models.AutoField))
    )


def _field(model: type[models.Model], name: str) -> Field:
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.concrete:
        raise ValueError(f"{model.__name__}.{name} is not a column.")
    return field


def _column(field: Field) -> str:
    return connection.ops.quote_name(field.column or field.attname)


# A string literal (kept as it is), or a run of white space (one space will do).
_LITERAL_OR_SPACE = re.compile(r"('(?:[^']|'')*')|\s+")


def compact_sql(sql: str) -> str:
    """``sql`` with each run of white space outside string literals made one space: long
    hand-written statements kept under psycopg's limit for caching their parsing (it
    re-parses statements longer than 4 kB, or with more than 50 parameters, on every
    execution). The SQL must have no ``--`` comments."""
    if "--" in sql:
        raise ValueError("compact_sql would join a -- comment with the lines after it.")
    return _LITERAL_OR_SPACE.sub(lambda match: match.group(1) or " ", sql).strip()


@functools.cache
def insert_columns(model: type[models.Model]) -> str:
    """The columns an INSERT of ``model`` names, comma-separated."""
    return ", ".join(_column(field) for field in _fields(model))


@functools.cache
def insert_rows_sql(model: type[models.Model], param: str) -> str:
    """An INSERT of the rows ``json_rows`` wrote into the named parameter ``param``: one
    parameter whatever the rows and columns, so the statement stays short and psycopg
    converts it once (it re-parses statements longer than 4 kB or with more than 50
    parameters on every execution). PostgreSQL casts each value to its column's type.
    A WHERE may follow, to insert conditionally."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = insert_columns(model)
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608 - names only
        f"FROM jsonb_populate_recordset(NULL::{table}, %({param})s::jsonb)"
    )


def json_rows(*instances: models.Model) -> str:
    """``instances`` (of one model) as the JSON array ``insert_rows_sql`` reads: each column's
    value as ``save()`` would send it, a JSON field's value as JSON. A field left to its
    database default (``db_default``) must be given a value instead: the statement names
    every column."""
    rows = []
    for instance in instances:
        row = {}
        for field in _fields(type(instance)):
            value = getattr(instance, field.attname)
            if isinstance(value, models.expressions.DatabaseDefault):
                raise ValueError(f"{field.name} needs a value: the INSERT names every column.")
            row[field.column] = _prepared(field, value)
        rows.append(row)
    return orjson.dumps(rows, default=_json_default).decode()


def _prepared(field: Field, value: Any) -> Any:
    if value is not None and not isinstance(field, models.JSONField):
        return field.get_db_prep_save(value, connection)
    return value


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form for a row.")


def update_assignments(model: type[models.Model], names: Iterable[str], param: str) -> str:
    """``(<column>, ...) = (SELECT <column>, ... FROM jsonb_populate_record(...))`` for the
    fields ``names`` of ``model``: the SET list of a hand-written UPDATE whose values travel
    as the one JSON parameter ``param``, written by ``update_values`` (as ``insert_rows_sql``
    does for rows). PostgreSQL casts each value to its column's type."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(_column(_field(model, name)) for name in names)
    return (
        f"({columns}) = (SELECT {columns} "  # noqa: S608 - names only
        f"FROM jsonb_populate_record(NULL::{table}, %({param})s::jsonb))"
    )


def update_values(model: type[models.Model], values: dict[str, Any]) -> str:
    """The JSON parameter of ``update_assignments(model, values, param)``: each value as
    ``save()`` would send it, a JSON field's value as JSON."""
    row = {}
    for name, value in values.items():
        field = _field(model, name)
        row[field.column] = _prepared(field, value)
    return orjson.dumps(row, default=_json_default).decode()


class CompiledQuery[M: models.Model]:
    """A queryset's SQL compiled once, run again with other values: for the reads every
    request makes (the caller's conversation, the first page of a list), where building and
    compiling the queryset costs more than the database's answer. ``build`` makes the
    queryset from keyword arguments; it is called once, with a distinct probe value per
    argument (``probes``), and each probe's place among the SQL's parameters is where that
    argument goes. Rows become instances as the ORM makes them (the fields' converters
    applied, annotations set as attributes)."""

    def __init__(self, build: Callable[..., "QuerySet[M]"], **probes: Any) -> None:
        self._build = build
        self._probes = probes

    @functools.cached_property
    def _compiled(self) -> "_Compiled[M]":
        queryset = self._build(**self._probes)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        order = []
        for param in params:
            names = [
                name
                for name, probe in self._probes.items()
                if type(probe) is type(param) and probe == param
            ]
            if len(names) != 1:
                raise ValueError(f"A parameter of the query is no probe's: {param!r}.")
            order.append(names[0])
        expressions = [column for column, _, _ in compiler.select]
        klass_info = compiler.klass_info or {}
        fields = klass_info.get("select_fields", [])
        if fields != list(range(len(fields))):
            raise ValueError("The query must select its model's columns first.")
        names = [expressions[index].target.attname for index in fields]
        return _Compiled(
            sql=sql,
            order=order,
            compiler=compiler,
            converters=compiler.get_converters(expressions),
            model=queryset.model,
            names=names,
            annotations=list(compiler.annotation_col_map.items()),
            plain=_plainly_made(queryset.model, names),
        )

    def first(self, **values: Any) -> M | None:
        """The first row for these values, as an instance, or None."""
        rows = self._rows(values, many=False)
        return rows[0] if rows else None

    def all(self, **values: Any) -> list[M]:
        """Every row for these values, as instances."""
        return self._rows(values, many=True)

    def _rows(self, values: dict[str, Any], *, many: bool) -> list[M]:
        compiled = self._compiled
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, [values[name] for name in compiled.order])
            rows = cursor.fetchall() if many else cursor.fetchmany(1)
        if compiled.converters:
            rows = compiled.compiler.apply_converters(
                [list(row) for row in rows], compiled.converters
            )
        model, names, alias = compiled.model, compiled.names, connection.alias
        width = len(names)
        instances = []
        for row in rows:
            if compiled.plain:
                # What from_db makes (its __init__ sets each attribute, as here: see
                # _plainly_made), without the field-by-field machinery.
                instance = model.__new__(model)
                state = instance._state = ModelState()
                state.adding = False
                state.db = alias
                instance.__dict__.update(zip(names, row[:width], strict=True))
            else:
                instance = model.from_db(alias, names, row[:width])
            for name, index in compiled.annotations:
                setattr(instance, name, row[index])
            instances.append(instance)
        return instances


def _plainly_made(model: type[models.Model], names: list[str]) -> bool:
    """Whether an instance of ``model`` with the columns ``names`` can be made by filling
    its ``__dict__``, as ``from_db`` would fill it: every concrete field selected, nothing
    listening to its pre_init or post_init, and no column whose attribute does more when set
    than store the value (a foreign key's id only clears a cached related object, which a
    new instance has none of; a file field would wrap its value)."""
    if names != [field.attname for field in model._meta.concrete_fields]:
        return False
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return False
    for name in names:
        descriptor = getattr(model, name, None)
        if hasattr(descriptor, "__set__") and not isinstance(
            descriptor, ForeignKeyDeferredAttribute
        ):
            return False
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled[M: models.Model]:
    sql: str
    order: list[str]  # the argument of each SQL parameter, in order
    compiler: "SQLCompiler"
    converters: Any
    model: type[M]
    names: list[str]  # the model's columns, first in each row
    annotations: list[tuple[str, int]]  # (attribute, index in the row)
    plain: bool  # instances made by filling __dict__ (_plainly_made)
