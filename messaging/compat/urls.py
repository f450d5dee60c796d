from django.urls import path

from messaging.compat import anthropic, catalog, openai

# Mounted at the site root (chatapi/urls.py): the SDKs' base URLs are the server's (Anthropic)
# and the server's /v1 (OpenAI).
urlpatterns = [
    path("v1/messages", anthropic.AnthropicMessagesView.as_view(), name="compat-messages"),
    path(
        "v1/messages/count_tokens",
        anthropic.AnthropicCountTokensView.as_view(),
        name="compat-messages-count-tokens",
    ),
    path(
        "v1/chat/completions",
        openai.ChatCompletionsView.as_view(),
        name="compat-chat-completions",
    ),
    path("v1/models", catalog.CompatModelListView.as_view(), name="compat-models"),
    # Model ids contain slashes (openai/gpt-oss-20b).
    path("v1/models/<path:model_id>", catalog.CompatModelDetailView.as_view(), name="compat-model"),
]
