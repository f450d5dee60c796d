"""What DB_RLS_PER_REQUEST needs from the database (accounts/rls.py): the service's own role
must be able to ``SET ROLE authenticated``.

The table grants the API's queries need as `authenticated` are those of 0002 (select,
insert, update and delete on conversations and messages, select and update on the user row,
select on the rest; the tables users write have uuid keys, so no sequence is involved).
Supabase grants more by default; RLS is what limits them.

A superuser (plain PostgreSQL in development and CI) may set any role. Supabase's `postgres`
is a member of `authenticated` already. Any other role is granted membership here when
missing; a role that may not grant it gets a warning, and the setting fails at its first
request with "permission denied to set role" until an administrator runs
``GRANT authenticated TO <the service's role>``.
"""

from django.db import migrations

FORWARD = """
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'authenticated', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT authenticated TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'DB_RLS_PER_REQUEST needs: GRANT authenticated TO %', current_user;
        END;
    END IF;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_row_level_security")]

    # Backwards: nothing to undo that another part of the database may not rely on.
    operations = [migrations.RunSQL(FORWARD, migrations.RunSQL.noop)]
