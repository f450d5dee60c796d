"""Row Level Security on the usage rollups, as on the ledger they sum
(accounts/migrations/0002_row_level_security.py): a signed-in user of the Supabase Data API
reads their own rows, and writes none."""

from django.db import migrations

TABLES = ["usage_usagedaily", "usage_usagehourly", "usage_usageconversationday"]

FORWARD = "\n".join(
    f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
    f"GRANT SELECT ON {table} TO authenticated;\n"
    f"CREATE POLICY {table}_select_own ON {table} FOR SELECT TO authenticated "
    "USING ((select auth.uid()) = user_id);"
    for table in TABLES
)

BACKWARD = "\n".join(
    f"DROP POLICY IF EXISTS {table}_select_own ON {table};\n"
    f"REVOKE ALL ON {table} FROM authenticated;\n"
    f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
    for table in TABLES
)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_row_level_security"),
        ("usage", "0004_usage_rollup_backfill"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
