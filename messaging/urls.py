from django.urls import path

from messaging import views, webhook_views

urlpatterns = [
    # str, not uuid: a malformed id reaches the ownership check and gets its 404 body.
    # The routes that stream first (chatapi/urls.py says why).
    path(
        "conversations/<str:conversation_id>/messages",
        views.ConversationMessagesView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<str:conversation_id>/messages/stream",
        views.ConversationMessagesStreamView.as_view(),
        name="conversation-messages-stream",
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/stream",
        views.ConversationMessageStreamView.as_view(),
        name="conversation-message-stream",
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/regenerate",
        views.ConversationMessageRegenerateView.as_view(),
        name="conversation-message-regenerate",
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/cancel",
        views.ConversationMessageCancelView.as_view(),
        name="conversation-message-cancel",
    ),
    # After messages/stream, which this pattern would take.
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>",
        views.ConversationMessageDetailView.as_view(),
        name="conversation-message-detail",
    ),
    path("webhooks", webhook_views.WebhookListView.as_view(), name="webhook-list"),
    path(
        "webhooks/<str:endpoint_id>",
        webhook_views.WebhookDetailView.as_view(),
        name="webhook-detail",
    ),
    path(
        "webhooks/<str:endpoint_id>/deliveries",
        webhook_views.WebhookDeliveriesView.as_view(),
        name="webhook-deliveries",
    ),
]
