"""Conversations: create, list, read, change, delete; search; share links and the page they
open."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from accounts.models import ApiKeyScope
from accounts.permissions import scopes_read_write
from accounts.rls import CallerAPIView
from chatapi.dispatch import APIView
from chatapi.errors import NotFoundError, RateLimitedError
from chatapi.pagination import (
    PageParams,
    PageQuerySerializer,
    page_body,
    page_schema,
    simple_page_query,
)
from chatapi.ratelimits import SharedReadThrottle
from conversations.export import (
    ConversationExportQuerySerializer,
    ConversationExportSerializer,
    transcript_export,
)
from conversations.markdown import markdown_html
from conversations.models import Conversation, Message
from conversations.selectors import (
    SearchFilters,
    conversation_get_for_user,
    conversation_list,
    conversation_transcript,
    message_tree,
    search,
    share_get_in_conversation,
    share_list,
    shared_conversation_get,
)
from conversations.serializers import (
    ConversationCreateSerializer,
    ConversationListQuerySerializer,
    ConversationSerializer,
    ConversationUpdateSerializer,
    ForkSerializer,
    MessageTreeNodeSerializer,
    SearchHitSerializer,
    SearchQuerySerializer,
    ShareCreateSerializer,
    SharedConversationSerializer,
    ShareSerializer,
    search_page_body,
)
from conversations.services import (
    conversation_create,
    conversation_delete,
    conversation_fork,
    conversation_update,
    share_create,
    share_delete,
)

NOT_FOUND_RESPONSE = OpenApiResponse(
    description="No conversation with this id belongs to the caller, or the id is malformed "
    "(error envelope, not_found_error)."
)
INVALID_RESPONSE = OpenApiResponse(
    description="Validation failed (error envelope, invalid_request_error, with the "
    "problems per field in error.details.fields)."
)

_CONVERSATION_EXAMPLE = {
    "id": "0b9c3f0e-7d3c-4a53-9d3e-2f1a6f4e8b21",
    "title": "Trip to Lisbon",
    "model": "openai/gpt-oss-20b",
    "system_prompt": "You are a concise travel assistant.",
    "temperature": 0.7,
    "max_output_tokens": 4096,
    "reasoning_effort": "low",
    "metadata": {"client": "web"},
    "archived": False,
    "created_at": "2026-11-26T12:00:00.000000Z",
    "updated_at": "2026-11-26T12:00:00.000000Z",
    "last_message_at": None,
    "current_leaf_id": None,
}


# What an API key needs on the conversation routes (and the message routes under them).
CONVERSATION_SCOPES = scopes_read_write(
    read=ApiKeyScope.CONVERSATIONS_READ, write=ApiKeyScope.CONVERSATIONS_WRITE
)


# Subclasses inherit this description of the path parameter.
@extend_schema(
    parameters=[
        OpenApiParameter(
            "conversation_id",
            OpenApiTypes.UUID,
            OpenApiParameter.PATH,
            description="The conversation's id.",
        )
    ]
)
class ConversationScopedView(CallerAPIView):
    """Base class of every view under ``/conversations/{conversation_id}``.

    The caller's conversation is resolved once, after authentication and before the handler
    runs, and handed over as ``self.conversation``: a subclass never checks ownership itself.
    Handlers take ``conversation_id`` from the URL and ignore it.
    """

    conversation: Conversation
    api_key_scopes = CONVERSATION_SCOPES

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.conversation = conversation_get_for_user(
            user=request_user(request), conversation_id=kwargs["conversation_id"]
        )


class ConversationListView(CallerAPIView):
    api_key_scopes = CONVERSATION_SCOPES

    @extend_schema(
        operation_id="conversations_list",
        tags=["conversations"],
        summary="List conversations",
        description="The caller's conversations, most recent activity (creation or last "
        "message) first. Keyset pagination: pass a page's last_id as after_id for the next "
        "page, its first_id as before_id for the previous one.",
        parameters=[ConversationListQuerySerializer],
        responses={
            200: page_schema("ConversationList", ConversationSerializer),
            400: INVALID_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "page",
                value={
                    "data": [_CONVERSATION_EXAMPLE],
                    "has_more": True,
                    "first_id": _CONVERSATION_EXAMPLE["id"],
                    "last_id": _CONVERSATION_EXAMPLE["id"],
                },
                response_only=True,
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        params = simple_page_query(request.query_params.dict())
        if params is None:
            query = ConversationListQuerySerializer(data=request.query_params.dict())
            query.is_valid(raise_exception=True)
            params = query.validated_data
        page = conversation_list(
            user=request_user(request),
            page=PageParams.from_query(params),
            archived=params.get("archived"),
            q=params.get("q", ""),
        )
        return Response(page_body(page, ConversationSerializer))

    @extend_schema(
        operation_id="conversations_create",
        tags=["conversations"],
        summary="Create a conversation",
        description=(
            "Starts an empty conversation owned by the caller; send messages to it with POST "
            "/conversations/{conversation_id}/messages. Every field is optional: `model` "
            "defaults to the server's default model (GET /models lists the others), an empty "
            "`title` is filled in from the first message, and null temperature, "
            "max_output_tokens and reasoning_effort use the model's defaults."
        ),
        request=ConversationCreateSerializer,
        responses={201: ConversationSerializer, 400: INVALID_RESPONSE},
        examples=[
            OpenApiExample(
                "minimal",
                summary="Defaults for everything",
                value={"title": "Trip to Lisbon"},
                request_only=True,
            ),
            OpenApiExample(
                "full",
                summary="Every setting",
                value={
                    "title": "Trip to Lisbon",
                    "model": "openai/gpt-oss-20b",
                    "system_prompt": "You are a concise travel assistant.",
                    "temperature": 0.7,
                    "max_output_tokens": 4096,
                    "reasoning_effort": "low",
                    "metadata": {"client": "web"},
                },
                request_only=True,
            ),
            OpenApiExample(
                "created",
                value=_CONVERSATION_EXAMPLE,
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ConversationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = conversation_create(owner=request_user(request), **serializer.validated_data)
        return Response(ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailView(ConversationScopedView):
    @extend_schema(
        operation_id="conversations_retrieve",
        tags=["conversations"],
        summary="Get a conversation",
        description=(
            "One of the caller's conversations with its settings; its messages are at GET "
            "/conversations/{conversation_id}/messages. Another user's conversation is a 404, "
            "as a missing one is."
        ),
        responses={200: ConversationSerializer, 404: NOT_FOUND_RESPONSE},
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        return Response(ConversationSerializer(self.conversation).data)

    @extend_schema(
        operation_id="conversations_update",
        tags=["conversations"],
        summary="Change a conversation",
        description="Changes only the fields sent; null resets temperature, "
        "max_output_tokens and reasoning_effort to the defaults. current_leaf_id switches "
        "branch: any message of the conversation becomes the end of the branch the messages "
        "list shows, and the next send appends after it.",
        request=ConversationUpdateSerializer,
        responses={200: ConversationSerializer, 400: INVALID_RESPONSE, 404: NOT_FOUND_RESPONSE},
        examples=[
            OpenApiExample("rename", value={"title": "Lisbon, 3 days"}, request_only=True),
            OpenApiExample("archive", value={"archived": True}, request_only=True),
            OpenApiExample(
                "switch branch",
                value={"current_leaf_id": "6a1b3d2f-4c5e-4f70-9bac-1d2e3f4a5b6c"},
                request_only=True,
            ),
        ],
    )
    def patch(self, request: Request, conversation_id: str) -> Response:
        serializer = ConversationUpdateSerializer(
            self.conversation, data=request.data, partial=True
        )
        serializer.is_valid(raise_exception=True)
        conversation = conversation_update(
            conversation=self.conversation, data=serializer.validated_data
        )
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(
        operation_id="conversations_delete",
        tags=["conversations"],
        summary="Delete a conversation",
        description="Deletes the conversation and its messages, for good.",
        responses={204: None, 404: NOT_FOUND_RESPONSE},
    )
    def delete(self, request: Request, conversation_id: str) -> Response:
        conversation_delete(conversation=self.conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationTreeView(ConversationScopedView):
    @extend_schema(
        operation_id="conversations_tree",
        tags=["conversations"],
        summary="List every message of every branch",
        description="The conversation's whole tree, oldest first: each message's id, "
        "parent_id, role, status, model, created_at and a preview of its text, enough to draw "
        "the tree and switch branch (PATCH current_leaf_id). Keyset pagination: pass a page's "
        "last_id as after_id for the next page, its first_id as before_id for the previous one.",
        parameters=[PageQuerySerializer],
        responses={
            200: page_schema("MessageTree", MessageTreeNodeSerializer),
            400: INVALID_RESPONSE,
            404: NOT_FOUND_RESPONSE,
        },
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        query = PageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        page = message_tree(
            conversation=self.conversation, page=PageParams.from_query(query.validated_data)
        )
        return Response(page_body(page, MessageTreeNodeSerializer))


class ConversationForkView(ConversationScopedView):
    @extend_schema(
        operation_id="conversations_fork",
        tags=["conversations"],
        summary="Fork a conversation at a message",
        description="A new conversation of the same owner with the same settings (title, "
        "model, system prompt, generation settings, metadata) whose history is a copy of the "
        "branch that ends at message_id, which becomes its current leaf. The copies keep their "
        "text, status and times; token counts and costs are not copied (the usage ledger "
        "stays with the calls that were made). 409 when that branch holds an answer still "
        "being generated.",
        request=ForkSerializer,
        responses={
            201: ConversationSerializer,
            400: INVALID_RESPONSE,
            404: NOT_FOUND_RESPONSE,
            409: OpenApiResponse(description="An answer on the branch is being generated."),
        },
        examples=[
            OpenApiExample(
                "fork",
                value={"message_id": "6a1b3d2f-4c5e-4f70-9bac-1d2e3f4a5b6c"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        serializer = ForkSerializer(instance=self.conversation, data=request.data)
        serializer.is_valid(raise_exception=True)
        fork = conversation_fork(
            conversation=self.conversation, message_id=serializer.validated_data["message_id"]
        )
        return Response(ConversationSerializer(fork).data, status=status.HTTP_201_CREATED)


class ConversationExportView(ConversationScopedView):
    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # ?format= names the export's format here, not one of DRF's renderers; errors
        # are JSON envelopes whatever the format asked for.
        return JSONRenderer(), "application/json"

    @extend_schema(
        operation_id="conversations_export",
        tags=["conversations"],
        summary="Export a conversation",
        description="The conversation and all its messages as a file to download "
        "(Content-Disposition: attachment). format=json (the default): the conversation "
        "and each message of every branch in the shapes the API returns them (with their "
        "parent_id), oldest first, plus totals. format=markdown: a readable transcript of the "
        "current branch, saying how many other branches there are, reasoning in collapsed "
        "<details> blocks, with each answer's model, tokens, cost, latency and time to first "
        "token.",
        parameters=[ConversationExportQuerySerializer],
        responses={
            (200, "application/json"): ConversationExportSerializer,
            (200, "text/markdown"): OpenApiResponse(
                OpenApiTypes.STR, description="With format=markdown."
            ),
            400: INVALID_RESPONSE,
            404: NOT_FOUND_RESPONSE,
        },
    )
    def get(self, request: Request, conversation_id: str) -> HttpResponse:
        query = ConversationExportQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        return transcript_export(
            transcript=conversation_transcript(conversation=self.conversation),
            export_format=query.validated_data["format"],
        ).as_response()


# --- search ----------------------------------------------------------------------------------


class SearchView(CallerAPIView):
    @extend_schema(
        operation_id="search",
        tags=["search"],
        summary="Search conversations and messages",
        description="Full-text search over the caller's conversation titles and the text of "
        "their messages (both roles). The query reads like a web search: `lisbon tram` "
        '(both words), `"night tram"` (a phrase), `tram or metro`, `tram -night`. Results '
        "come most relevant first, then newest; each names its conversation, its message "
        "(null when the title matched) and a snippet with the matched words in <mark>. "
        "Keyset pagination as in the other lists: a page's last_id as after_id for the next.",
        parameters=[SearchQuerySerializer],
        responses={200: page_schema("SearchResults", SearchHitSerializer), 400: INVALID_RESPONSE},
        examples=[
            OpenApiExample(
                "page",
                value={
                    "data": [
                        {
                            "id": "6c1f4c3e-9a0b-4d5e-8f71-2b3c4d5e6f70",
                            "conversation": {
                                "id": _CONVERSATION_EXAMPLE["id"],
                                "title": "Trip to Lisbon",
                            },
                            "message": {
                                "id": "6c1f4c3e-9a0b-4d5e-8f71-2b3c4d5e6f70",
                                "role": "assistant",
                            },
                            "created_at": "2026-11-26T12:00:03.000000Z",
                            "snippet": "Take the <mark>night</mark> <mark>tram</mark> 28 "
                            "from Martim Moniz",
                        }
                    ],
                    "has_more": False,
                    "first_id": "6c1f4c3e-9a0b-4d5e-8f71-2b3c4d5e6f70",
                    "last_id": "6c1f4c3e-9a0b-4d5e-8f71-2b3c4d5e6f70",
                },
                response_only=True,
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        query = SearchQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        found = search(
            user=request_user(request),
            q=query.validated_data["q"],
            filters=SearchFilters(
                conversation_id=query.validated_data.get("conversation_id"),
                created_after=query.validated_data.get("created_after"),
                created_before=query.validated_data.get("created_before"),
            ),
            page=PageParams.from_query(query.validated_data),
        )
        return Response(search_page_body(found))


# --- share links -----------------------------------------------------------------------------

SHARE_NOT_FOUND_RESPONSE = OpenApiResponse(
    description="No share with this id in this conversation, or no such conversation of the "
    "caller's (error envelope, not_found_error)."
)
_SHARE_EXAMPLE = {
    "id": "3d5e7f90-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
    "token": "q3Vx0kqQy1y6XbqfJ5mN0o2Lr8s7T4uW9zA1bC2dE3f",
    "url": "https://chat.example.com/s/q3Vx0kqQy1y6XbqfJ5mN0o2Lr8s7T4uW9zA1bC2dE3f",
    "api_url": "https://chat.example.com/api/v1/shared/q3Vx0kqQy1y6XbqfJ5mN0o2Lr8s7T4uW9zA1bC2dE3f",
    "message_count": 2,
    "created_at": "2026-11-26T12:05:00.000000Z",
    "expires_at": None,
}


class ConversationShareListView(ConversationScopedView):
    @extend_schema(
        operation_id="conversations_shares_list",
        tags=["shares"],
        summary="List a conversation's share links",
        description="The conversation's share links, newest first, expired ones included "
        "(revoked ones are gone).",
        parameters=[PageQuerySerializer],
        responses={
            200: page_schema("ShareList", ShareSerializer),
            400: INVALID_RESPONSE,
            404: NOT_FOUND_RESPONSE,
        },
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        query = PageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        page = share_list(
            conversation=self.conversation, page=PageParams.from_query(query.validated_data)
        )
        serializer = ShareSerializer(context={"request": request})
        return Response(
            {
                "data": [serializer.to_representation(share) for share in page.items],
                "has_more": page.has_more,
                "first_id": str(page.items[0].pk) if page.items else None,
                "last_id": str(page.items[-1].pk) if page.items else None,
            }
        )

    @extend_schema(
        operation_id="conversations_shares_create",
        tags=["shares"],
        summary="Share a conversation",
        description="A read-only link to the conversation as it is now: its messages so far "
        "(an answer still being generated is left out), never those added later. Anyone with "
        "the link can open `url` (a web page) or `api_url` (JSON) without an account; neither "
        "shows who you are. Revoke it with DELETE; deleting the conversation revokes it too.",
        request=ShareCreateSerializer,
        responses={201: ShareSerializer, 400: INVALID_RESPONSE, 404: NOT_FOUND_RESPONSE},
        examples=[
            OpenApiExample("until revoked", value={"expires_at": None}, request_only=True),
            OpenApiExample(
                "for a week", value={"expires_at": "2026-12-03T12:00:00Z"}, request_only=True
            ),
            OpenApiExample(
                "created", value=_SHARE_EXAMPLE, response_only=True, status_codes=["201"]
            ),
        ],
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        serializer = ShareCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        share = share_create(
            conversation=self.conversation, expires_at=serializer.validated_data["expires_at"]
        )
        return Response(
            ShareSerializer(share, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class ConversationShareDetailView(ConversationScopedView):
    @extend_schema(
        operation_id="conversations_shares_delete",
        tags=["shares"],
        summary="Revoke a share link",
        description="The link answers 404 from now on, as if it had never existed.",
        parameters=[
            OpenApiParameter(
                "share_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The share's id."
            )
        ],
        responses={204: None, 404: SHARE_NOT_FOUND_RESPONSE},
    )
    def delete(self, request: Request, conversation_id: str, share_id: str) -> Response:
        share = share_get_in_conversation(conversation=self.conversation, share_id=share_id)
        share_delete(share=share)
        return Response(status=status.HTTP_204_NO_CONTENT)


_TOKEN_PARAMETER = OpenApiParameter(
    "token", OpenApiTypes.STR, OpenApiParameter.PATH, description="The share link's token."
)


class SharedConversationView(APIView):
    """A share link's snapshot as JSON, for anyone holding the token."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (SharedReadThrottle,)

    @extend_schema(
        operation_id="shared_retrieve",
        tags=["shares"],
        summary="Read a shared conversation",
        description="The snapshot a share link points at, without authentication: the title "
        "and the messages as they were when the link was made. A revoked, expired or unknown "
        "token is the same 404. Rate limited per client address (429 with Retry-After).",
        auth=[],
        parameters=[_TOKEN_PARAMETER],
        responses={
            200: SharedConversationSerializer,
            404: OpenApiResponse(
                description="No such link, or it was revoked or has expired (not_found_error)."
            ),
            429: OpenApiResponse(description="Too many reads from this address (Retry-After)."),
        },
    )
    def get(self, request: Request, token: str) -> Response:
        return Response(SharedConversationSerializer(shared_conversation_get(token=token)).data)


def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    """/s/{token}: a share link's snapshot as a read-only page. Rate limited with the JSON
    route, per client address; a revoked, expired or unknown token is the same 404 page."""
    try:
        SharedReadThrottle().allow_request(Request(request), None)
        shared = shared_conversation_get(token=token)
    except RateLimitedError as limited:
        response = render(
            request,
            "conversations/shared_unavailable.html",
            {"heading": "Too many requests", "text": limited.detail},
            status=429,
        )
        for name, value in limited.headers.items():
            response[name] = value
        return response
    except NotFoundError:
        return render(
            request,
            "conversations/shared_unavailable.html",
            {
                "heading": "Link not found",
                "text": "This link does not exist, was revoked by its owner, or has expired.",
            },
            status=404,
        )
    messages = [
        {
            "role": message.role,
            "model": message.model,
            "status": message.status,
            "created_at": message.created_at,
            # A user's text is shown as typed; an answer is Markdown.
            "html": markdown_html(message.content)
            if message.role == Message.Role.ASSISTANT
            else None,
            "text": message.content,
        }
        for message in shared.messages
    ]
    return render(request, "conversations/shared.html", {"shared": shared, "messages": messages})
