"""Hand-written INSERTs and UPDATEs with the ORM's values, and queries compiled once: for the
hot paths that do in one statement what the ORM would do in several (a turn's two messages
and its conversation, a ledger row and its rollups), or that run the same read on every
request (the caller's conversation). Values are prepared by the models' own fields, as
``save()`` prepares them. Inserted rows travel as one JSON parameter (``json_rows``) that
PostgreSQL turns into rows of the table's type; an UPDATE's placeholders are cast to their
columns' types."""

import functools
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection, models

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


def _placeholder(field: Field, prefix: str) -> str:  # a parameter cast to the column's type
    return f"%({prefix}_{field.attname})s::{field.db_type(connection)}"


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
            if value is not None and not isinstance(field, models.JSONField):
                value = field.get_db_prep_save(value, connection)
            row[field.column] = value
        rows.append(row)
    return orjson.dumps(rows, default=_json_default).decode()


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form for a row.")


def update_assignments(model: type[models.Model], names: Iterable[str], prefix: str) -> str:
    """``<column> = %(<prefix>_<field>)s::<type>, ...`` for the fields ``names`` of
    ``model``: the SET list of a hand-written UPDATE, filled by ``update_values``."""
    return ", ".join(
        f"{_column(field)} = {_placeholder(field, prefix)}"
        for field in (_field(model, name) for name in names)
    )


def update_values(model: type[models.Model], values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The parameters of ``update_assignments(model, values, prefix)``: each value as
    ``save()`` would send it."""
    prepared = {}
    for name, value in values.items():
        field = _field(model, name)
        prepared[f"{prefix}_{field.attname}"] = field.get_db_prep_save(value, connection)
    return prepared


class CompiledQuery[M: models.Model]:
    """A queryset's SQL compiled once, run again with other values: for the reads every
    request makes (the caller's conversation), where building and compiling the queryset
    costs more than the database's answer. ``build`` makes the queryset from keyword
    arguments; it is called once, with a distinct probe value per argument (``probes``),
    and each probe's place among the SQL's parameters is where that argument goes. Rows
    become instances as the ORM makes them (the fields' converters applied)."""

    def __init__(self, build: Callable[..., "QuerySet[M]"], **probes: Any) -> None:
        self._build = build
        self._probes = probes

    @functools.cached_property
    def _compiled(self) -> tuple[str, list[str], "SQLCompiler", Any, type[M], list[str]]:
        queryset = self._build(**self._probes)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        order = []
        for param in params:
            names = [name for name, probe in self._probes.items() if probe == param]
            if len(names) != 1:
                raise ValueError(f"A parameter of the query is no probe's: {param!r}.")
            order.append(names[0])
        selected = [column for column, _, _ in compiler.select]
        converters = compiler.get_converters(selected)
        names = [column.target.attname for column in selected]
        return sql, order, compiler, converters, queryset.model, names

    def first(self, **values: Any) -> M | None:
        """The first row for these values, as an instance, or None."""
        sql, order, compiler, converters, model, names = self._compiled
        with connection.cursor() as cursor:
            cursor.execute(sql, [values[name] for name in order])
            row = cursor.fetchone()
        if row is None:
            return None
        if converters:
            row = next(iter(compiler.apply_converters([list(row)], converters)))
        return model.from_db(connection.alias, names, row)
