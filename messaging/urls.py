from django.urls import path

from messaging import views

urlpatterns = [
    # str, not uuid: a malformed id reaches the ownership check and gets its 404 body.
    path(
        "conversations/<str:conversation_id>/messages",
        views.ConversationMessagesView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/stream",
        views.ConversationMessageStreamView.as_view(),
        name="conversation-message-stream",
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/cancel",
        views.ConversationMessageCancelView.as_view(),
        name="conversation-message-cancel",
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/regenerate",
        views.ConversationMessageRegenerateView.as_view(),
        name="conversation-message-regenerate",
    ),
    path(
        "conversations/<str:conversation_id>/messages/stream",
        views.ConversationMessagesStreamView.as_view(),
        name="conversation-messages-stream",
    ),
]
