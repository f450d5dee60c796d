"""The stored search vectors: a ``tsvector`` generated column on each text that search reads
(message contents, conversation titles), with a GIN index on the owner and the vector.

The owner leads the index so that a search reads only the caller's entries: with the vector
alone, the index finds every user's matches and each is fetched from the table only to be
dropped by the owner condition (ten times the caller's rows in the benchmark, and most of its
time). Messages carry no owner, so ``search_owner`` copies their conversation's, set by a
trigger when a message is stored (a conversation never changes owner). The index needs the
``btree_gin`` extension (in PostgreSQL's contrib, trusted, and offered by Supabase); where the
server does not ship it (the embedded development server), the index holds the vector alone:
the same results, slower for a user among many.

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
    owner_column: str
    index: str


COLUMNS = (
    SearchColumn(
        table="messaging_message",
        text_column="content",
        owner_column="search_owner",
        index="message_search",
    ),
    SearchColumn(
        table="conversations_conversation",
        text_column="title",
        owner_column="owner_id",
        index="conversation_search",
    ),
)

MESSAGE_OWNER_ADD_SQL = [
    "ALTER TABLE messaging_message ADD COLUMN search_owner uuid",
    """
    CREATE FUNCTION message_search_owner() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        SELECT owner_id INTO NEW.search_owner
        FROM conversations_conversation WHERE id = NEW.conversation_id;
        RETURN NEW;
    END
    $$
    """,
    (
        "CREATE TRIGGER message_search_owner BEFORE INSERT OR UPDATE OF conversation_id "
        "ON messaging_message FOR EACH ROW EXECUTE FUNCTION message_search_owner()"
    ),
    (
        "UPDATE messaging_message m SET search_owner = c.owner_id "
        "FROM conversations_conversation c WHERE c.id = m.conversation_id"
    ),
]
MESSAGE_OWNER_DROP_SQL = [
    "DROP TRIGGER message_search_owner ON messaging_message",
    "DROP FUNCTION message_search_owner()",
    "ALTER TABLE messaging_message DROP COLUMN search_owner",
]
VECTOR = "search_vector"


def _quoted(config: str) -> str:
    # The setting's pattern admits only [a-z0-9_.] names; quoting still keeps it a literal.
    return "'" + config.replace("'", "''") + "'"


def owner_led_index_available(connection: BaseDatabaseWrapper) -> bool:
    """Create ``btree_gin`` if the server ships it; whether it is there."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gin'")
        if cursor.fetchone() is None:
            return False
        cursor.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    return True


def search_columns_add_sql(config: str, *, owner_led: bool) -> list[str]:
    """Add the columns and their indexes, built with text search configuration ``config``;
    ``owner_led``: the index starts with the owner (needs ``btree_gin``). Adding a stored
    generated column rewrites the table (computing every row's vector)."""
    statements = []
    for column in COLUMNS:
        indexed = f"{column.owner_column}, {VECTOR}" if owner_led else VECTOR
        statements += [
            (
                f"ALTER TABLE {column.table} ADD COLUMN {VECTOR} tsvector GENERATED ALWAYS AS "
                f"(to_tsvector({_quoted(config)}::regconfig, {column.text_column})) STORED"
            ),
            (f"CREATE INDEX {column.index} ON {column.table} USING gin ({indexed})"),
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
