"""Model instances as the values of hand-written INSERTs and UPDATEs, for the hot paths that
write in one statement what the ORM would write in several (a turn's two messages and its
conversation, a ledger row and its rollups). The values are prepared by the model's own
fields, exactly as ``save()`` prepares them; the placeholders are cast to the columns' types,
so they also hold in ``INSERT ... SELECT``, where PostgreSQL would take a NULL or a string
parameter for text."""

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

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


def _placeholder(field: Field, prefix: str) -> str:
    return f"%({prefix}_{field.attname})s::{field.db_type(connection)}"


@functools.cache
def insert_columns(model: type[models.Model]) -> str:
    """The columns an INSERT of ``model`` names, comma-separated."""
    return ", ".join(_column(field) for field in _fields(model))


@functools.cache
def insert_placeholders(model: type[models.Model], prefix: str) -> str:
    """``%(<prefix>_<field>)s::<type>, ...`` for ``insert_columns(model)``: the named
    parameters ``insert_values(instance, prefix)`` fills."""
    return ", ".join(_placeholder(field, prefix) for field in _fields(model))


def insert_values(instance: models.Model, prefix: str) -> dict[str, Any]:
    """The parameters of ``insert_placeholders(type(instance), prefix)``: every column's
    value as ``save()`` would send it. A field left to its database default (``db_default``)
    must be given a value instead: the statement names every column."""
    values = {}
    for field in _fields(type(instance)):
        value = getattr(instance, field.attname)
        if isinstance(value, models.expressions.DatabaseDefault):
            raise ValueError(f"{field.name} needs a value: the INSERT names every column.")
        values[f"{prefix}_{field.attname}"] = field.get_db_prep_save(value, connection)
    return values


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
