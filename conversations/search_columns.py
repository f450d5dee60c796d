"""The stored search vectors: a ``tsvector`` generated column with a GIN index on each text
that search reads (message contents, conversation titles).

They are declared here in SQL rather than as model fields because their text search
configuration is a setting (``SEARCH_CONFIG``): a ``GeneratedField`` would write the
configuration into the migration, and a deployment that sets another one would then need a
migration of its own. The columns are not in the models' state, so the ORM never selects or
writes them; ``conversations.selectors.search`` reads them in SQL.
"""

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True, slots=True)
class SearchColumn:
    table: str
    text_column: str
    index: str


COLUMNS = (
    SearchColumn(table="messaging_message", text_column="content", index="message_search"),
    SearchColumn(
        table="conversations_conversation", text_column="title", index="conversation_search"
    ),
)
VECTOR = "search_vector"


def _quoted(config: str) -> str:
    # The setting's pattern admits only [a-z0-9_.] names; quoting still keeps it a literal.
    return "'" + config.replace("'", "''") + "'"


def search_columns_add_sql(config: str) -> list[str]:
    """Add the columns and their indexes, built with text search configuration ``config``.
    Adding a stored generated column rewrites the table (computing every row's vector)."""
    statements = []
    for column in COLUMNS:
        statements += [
            (
                f"ALTER TABLE {column.table} ADD COLUMN {VECTOR} tsvector GENERATED ALWAYS AS "
                f"(to_tsvector({_quoted(config)}::regconfig, {column.text_column})) STORED"
            ),
            f"CREATE INDEX {column.index} ON {column.table} USING gin ({VECTOR})",
        ]
    return statements


def search_columns_drop_sql() -> list[str]:
    return [f"ALTER TABLE {column.table} DROP COLUMN {VECTOR}" for column in COLUMNS]


def search_columns_config(connection: BaseDatabaseWrapper) -> list[str]:
    """The configuration each column is built with now, as PostgreSQL prints its expression
    (``to_tsvector('simple'::regconfig, content)``): one entry per column."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
            "JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
            "WHERE a.attname = %s AND d.adrelid = ANY(%s::regclass[]) ORDER BY d.adrelid",
            [VECTOR, [column.table for column in COLUMNS]],
        )
        return [row[0] for row in cursor.fetchall()]


def search_columns_built_with(connection: BaseDatabaseWrapper, config: str) -> bool:
    expressions = search_columns_config(connection)
    wanted = f"to_tsvector({_quoted(config)}::regconfig"
    return len(expressions) == len(COLUMNS) and all(e.startswith(wanted) for e in expressions)
