from django.urls import path

from conversations import views

urlpatterns = [
    path("conversations", views.ConversationListView.as_view(), name="conversation-list"),
    # str, not uuid: a malformed id reaches the ownership check and gets its 404 body.
    path(
        "conversations/<str:conversation_id>",
        views.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<str:conversation_id>/tree",
        views.ConversationTreeView.as_view(),
        name="conversation-tree",
    ),
    path(
        "conversations/<str:conversation_id>/fork",
        views.ConversationForkView.as_view(),
        name="conversation-fork",
    ),
    path(
        "conversations/<str:conversation_id>/export",
        views.ConversationExportView.as_view(),
        name="conversation-export",
    ),
    path(
        "conversations/<str:conversation_id>/shares",
        views.ConversationShareListView.as_view(),
        name="conversation-share-list",
    ),
    path(
        "conversations/<str:conversation_id>/shares/<str:share_id>",
        views.ConversationShareDetailView.as_view(),
        name="conversation-share-detail",
    ),
    path("search", views.SearchView.as_view(), name="search"),
    path("shared/<str:token>", views.SharedConversationView.as_view(), name="shared"),
]
