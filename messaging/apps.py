from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chatapi.startup import startup_hook_register
        from messaging.sweeper import worker_ensure_running
        from messaging.webhook_worker import webhook_worker_ensure_running

        # Every server process heartbeats and sweeps from start-up, even one that only
        # answers health checks: a dead process's answers must not wait for it to get work.
        startup_hook_register(worker_ensure_running)
        # And sends the webhook outbox: rows left by any process, including one that died.
        startup_hook_register(webhook_worker_ensure_running)
