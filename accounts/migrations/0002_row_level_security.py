"""Row Level Security on every user-owned table, with Supabase-style policies.

On Supabase this is what keeps the Data API (PostgREST, reachable with the anon key) from
serving one user's rows to another: requests there run as the `authenticated` role with the
caller's JWT claims, and `auth.uid()` is the caller's id. The service itself connects as the
tables' owner, which RLS does not restrict (the tables are not FORCEd), so it is unaffected.

On plain PostgreSQL (development, CI) the `auth` schema, `auth.uid()` (Supabase's own
definition) and the `authenticated` role are created first when missing, so the policies can
be proved by tests: connected as `authenticated` with one user's claims, select, insert,
update and delete reach only that user's rows.
https://supabase.com/docs/guides/database/postgres/row-level-security
"""

from django.db import migrations

SUPABASE_COMPATIBILITY = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
-- Roles belong to the cluster: two databases migrated at once (the test databases of two
-- pytest-xdist workers on a new cluster) both see it missing, and the second CREATE fails.
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
CREATE SCHEMA IF NOT EXISTS auth;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'auth' AND p.proname = 'uid'
    ) THEN
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $fn$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $fn$;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA auth TO authenticated;
GRANT EXECUTE ON FUNCTION auth.uid() TO authenticated;
GRANT USAGE ON SCHEMA public TO authenticated;
"""

# (table, the policies' condition, commands the user may run on their rows)
OWNED = [
    ("accounts_user", "(select auth.uid()) = id", "SELECT, UPDATE"),
    (
        "conversations_conversation",
        "(select auth.uid()) = owner_id",
        "SELECT, INSERT, UPDATE, DELETE",
    ),
    (
        "messaging_message",
        (
            "EXISTS (SELECT 1 FROM conversations_conversation c"
            " WHERE c.id = conversation_id AND c.owner_id = (select auth.uid()))"
        ),
        "SELECT, INSERT, UPDATE, DELETE",
    ),
    ("messaging_idempotencykey", "(select auth.uid()) = user_id", "SELECT"),
    ("usage_usagerecord", "(select auth.uid()) = user_id", "SELECT"),
    ("usage_usagebudget", "(select auth.uid()) = user_id", "SELECT"),
    ("usage_budgetreservation", "(select auth.uid()) = user_id", "SELECT"),
]
# Readable by any signed-in user: the model catalog and its prices.
SHARED = ["usage_languagemodel", "usage_modelprice"]
# RLS on, no policy: nothing for `authenticated` (the service's own bookkeeping).
PRIVATE = ["messaging_generationworker"]


def _owned_sql(table: str, condition: str, commands: str) -> str:
    statements = [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"GRANT {commands} ON {table} TO authenticated",
    ]
    for command in (c.strip() for c in commands.split(",")):
        name = f"{table}_{command.lower()}_own"
        clause = {
            "SELECT": f"USING ({condition})",
            "INSERT": f"WITH CHECK ({condition})",
            "UPDATE": f"USING ({condition}) WITH CHECK ({condition})",
            "DELETE": f"USING ({condition})",
        }[command]
        statements.append(
            f"CREATE POLICY {name} ON {table} FOR {command} TO authenticated {clause}"
        )
    return ";\n".join(statements) + ";"


FORWARD = "\n".join(
    [
        SUPABASE_COMPATIBILITY,
        *(_owned_sql(*entry) for entry in OWNED),
        *(
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
            f"GRANT SELECT ON {table} TO authenticated;\n"
            f"CREATE POLICY {table}_select_all ON {table} FOR SELECT TO authenticated "
            "USING (true);"
            for table in SHARED
        ),
        *(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;" for table in PRIVATE),
    ]
)

BACKWARD = "\n".join(
    [
        *(
            f"DROP POLICY IF EXISTS {table}_{command.strip().lower()}_own ON {table};\n"
            f"REVOKE ALL ON {table} FROM authenticated;\n"
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            for table, _, commands in OWNED
            for command in commands.split(",")
        ),
        *(
            f"DROP POLICY IF EXISTS {table}_select_all ON {table};\n"
            f"REVOKE ALL ON {table} FROM authenticated;\n"
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            for table in SHARED
        ),
        *(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;" for table in PRIVATE),
    ]
)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("conversations", "0001_initial"),
        ("messaging", "0003_idempotency_keys"),
        ("usage", "0002_seed_catalog"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
