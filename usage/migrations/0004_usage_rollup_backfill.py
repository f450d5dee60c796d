"""Fill the usage rollups (UsageDaily, UsageHourly, UsageConversationDay) from the ledger
rows written before them. The ledger takes no new rows meanwhile (SHARE lock until the
commit). Rows a process of the previous release writes after this ran are added by
``manage.py usage_rollup_rebuild``."""

from django.db import migrations

BACKFILL = """
LOCK TABLE usage_usagerecord IN SHARE MODE;
WITH added AS (
    SELECT * FROM usage_usagerecord WHERE TRUE
),
daily AS (
    INSERT INTO usage_usagedaily AS d (user_id, day, kind, model, requests, input_tokens,
        output_tokens, reasoning_tokens, cached_input_tokens, cost_usd, unpriced_requests,
        estimated_requests)
    SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, kind, model, COUNT(*),
        SUM(input_tokens), SUM(output_tokens), COALESCE(SUM(reasoning_tokens), 0),
        COALESCE(SUM(cached_input_tokens), 0), SUM(cost_usd),
        COUNT(*) FILTER (WHERE price_unknown), COUNT(*) FILTER (WHERE usage_estimated)
    FROM added
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, day, model, kind) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests,
        input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens,
        reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens,
        cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens,
        cost_usd = COALESCE(d.cost_usd + EXCLUDED.cost_usd, d.cost_usd, EXCLUDED.cost_usd),
        unpriced_requests = d.unpriced_requests + EXCLUDED.unpriced_requests,
        estimated_requests = d.estimated_requests + EXCLUDED.estimated_requests
),
hourly AS (
    INSERT INTO usage_usagehourly AS h (user_id, hour, requests, input_tokens, output_tokens,
        cost_usd)
    SELECT user_id, date_trunc('hour', created_at, 'UTC'), COUNT(*), SUM(input_tokens),
        SUM(output_tokens), SUM(cost_usd)
    FROM added
    WHERE user_id IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (user_id, hour) DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        input_tokens = h.input_tokens + EXCLUDED.input_tokens,
        output_tokens = h.output_tokens + EXCLUDED.output_tokens,
        cost_usd = COALESCE(h.cost_usd + EXCLUDED.cost_usd, h.cost_usd, EXCLUDED.cost_usd)
)
INSERT INTO usage_usageconversationday (user_id, day, conversation_id)
SELECT DISTINCT user_id, (created_at AT TIME ZONE 'UTC')::date, conversation_id
FROM added
WHERE user_id IS NOT NULL AND conversation_id IS NOT NULL
ORDER BY 1, 2, 3
ON CONFLICT (user_id, day, conversation_id) DO NOTHING;
"""


class Migration(migrations.Migration):
    dependencies = [("usage", "0003_usage_rollup")]

    operations = [migrations.RunSQL(BACKFILL, migrations.RunSQL.noop)]
