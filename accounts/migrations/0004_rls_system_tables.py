"""Row Level Security on Django's own tables and the service's bookkeeping, with no policy:
on Supabase, whose default grants give `anon` and `authenticated` every table of the public
schema, the Data API (PostgREST, reachable with the anon key) would otherwise serve the admin's
sessions, its change log, the permission tables and the migration history.

The service connects as the tables' owner (or a superuser), which RLS does not restrict (the
tables are not FORCEd), so Django, its admin and its migrations are unaffected. Tables of the
apps' own data have policies (0002); messaging_generationworker has RLS without one there.
"""

from django.db import migrations

SYSTEM_TABLES = [
    "django_migrations",
    "django_content_type",
    "django_session",
    "django_admin_log",
    "auth_permission",
    "auth_group",
    "auth_group_permissions",
    "accounts_user_groups",
    "accounts_user_user_permissions",
]

ANON_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
-- Roles belong to the cluster: two databases migrated at once (the test databases of two
-- pytest-xdist workers on a new cluster) both see it missing, and the second CREATE fails.
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_rls_role_membership"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("sessions", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            ANON_ROLE
            + "\n".join(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;" for t in SYSTEM_TABLES),
            "\n".join(f"ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;" for t in SYSTEM_TABLES),
        )
    ]
