"""The model catalog and the caller's usage: statistics and a daily series."""

import uuid
from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from accounts.models import ApiKeyScope, User
from accounts.permissions import scopes_all
from accounts.rls import CallerAPIView
from accounts.selectors import api_key_get_for_user
from usage.catalog import chat_models
from usage.selectors import usage_daily, usage_stats
from usage.serializers import (
    ChatModelSerializer,
    UsageDailyQuerySerializer,
    UsageDailySerializer,
    UsageStatsQuerySerializer,
    UsageStatsSerializer,
)

_INVALID_QUERY = OpenApiResponse(
    description="A malformed from/to/tz, or from after to (error envelope, "
    "invalid_request_error, with the problems per field in error.details.fields)."
)

_KEY_NOT_FOUND = OpenApiResponse(
    description="api_key_id names no API key of the caller's (error envelope, not_found_error)."
)

_MODEL_EXAMPLE = {
    "id": "openai/gpt-oss-20b",
    "type": "model",
    "display_name": "GPT-OSS 20B",
    "provider": "groq",
    "context_window": 131072,
    "max_output_tokens": 65536,
    "reasoning": True,
    "pricing": {
        "input_usd_per_mtok": "0.075",
        "cached_input_usd_per_mtok": None,
        "output_usd_per_mtok": "0.3",
        "effective_from": "2026-08-01T00:00:00Z",
    },
}

_MODEL_LIST = inline_serializer(
    "ModelList",
    {
        "data": ChatModelSerializer(many=True),
        "has_more": serializers.BooleanField(help_text="Always false: one page."),
        "first_id": serializers.CharField(allow_null=True),
        "last_id": serializers.CharField(allow_null=True),
    },
)

_STATS_EXAMPLE = {
    "from": "2026-11-01T00:00:00Z",
    "to": "2026-12-01T00:00:00Z",
    "total_conversations": 3,
    "total_messages": 12,
    "requests": 12,
    "input_tokens": 5400,
    "output_tokens": 2100,
    "reasoning_tokens": 600,
    "total_tokens": 7500,
    "cost_usd": "0.0010350000",
    "cost_estimate_usd": "0.0010350000",
    "unpriced_requests": 0,
    "models_used": ["openai/gpt-oss-20b"],
    "by_model": [
        {
            "model": "openai/gpt-oss-20b",
            "requests": 12,
            "input_tokens": 5400,
            "output_tokens": 2100,
            "reasoning_tokens": 600,
            "total_tokens": 7500,
            "cost_usd": "0.0010350000",
            "unpriced_requests": 0,
        }
    ],
}


def _owned_api_key_id(user: User, api_key_id: str | None) -> uuid.UUID | None:
    """The ``api_key_id`` filter, once the key is known to be the caller's (else 404)."""
    if api_key_id is None:
        return None
    return api_key_get_for_user(user=user, api_key_id=api_key_id).pk


class ModelListView(CallerAPIView):
    api_key_scopes = scopes_all(None)  # the catalog: any key

    @extend_schema(
        operation_id="models_list",
        tags=["models"],
        summary="List the models",
        description="The models a conversation or a message may use, with their context "
        "window, output limit and the prices in force now (USD per million tokens, as "
        "decimal strings).",
        responses={200: _MODEL_LIST},
        examples=[
            OpenApiExample(
                "models",
                value={
                    "data": [_MODEL_EXAMPLE],
                    "has_more": False,
                    "first_id": _MODEL_EXAMPLE["id"],
                    "last_id": _MODEL_EXAMPLE["id"],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        models = chat_models()
        return Response(
            {
                "data": ChatModelSerializer(models, many=True).data,
                "has_more": False,
                "first_id": models[0].id if models else None,
                "last_id": models[-1].id if models else None,
            }
        )


class UsageModelListView(ModelListView):
    """The older path of the model list."""

    @extend_schema(
        operation_id="usage_models_list",
        tags=["models"],
        summary="List the models (older path)",
        description="Same as GET /models.",
        deprecated=True,
        responses={200: _MODEL_LIST},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class UsageStatsView(CallerAPIView):
    api_key_scopes = scopes_all(ApiKeyScope.USAGE_READ)

    @extend_schema(
        operation_id="usage_stats",
        tags=["usage"],
        summary="Your usage: tokens, cost, by model",
        description="Totals over the usage ledger (every upstream call, also of deleted "
        "conversations) from `from` to `to`. Costs are exact decimal strings at the price in "
        "force at each call; calls of a model without a price are counted in "
        "unpriced_requests and not in cost_usd. cost_estimate_usd is the older name of "
        "cost_usd.",
        parameters=[UsageStatsQuerySerializer],
        responses={200: UsageStatsSerializer, 400: _INVALID_QUERY, 404: _KEY_NOT_FOUND},
        examples=[OpenApiExample("stats", value=_STATS_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request) -> Response:
        query = UsageStatsQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        start, end = query.validated_data["start"], query.validated_data["end"]
        user = request_user(request)
        stats = usage_stats(
            user=user,
            start=start,
            end=end,
            api_key_id=_owned_api_key_id(user, query.validated_data["api_key_id"]),
        )
        body: dict[str, Any] = {
            **asdict(stats),
            "models_used": stats.models_used,
            "start": start,
            "end": end,
        }
        return Response(UsageStatsSerializer(body).data)


class UsageDailyView(CallerAPIView):
    api_key_scopes = scopes_all(ApiKeyScope.USAGE_READ)

    @extend_schema(
        operation_id="usage_daily",
        tags=["usage"],
        summary="Your usage per day",
        description="A gap-free daily series for charts: one entry per calendar day of `tz` "
        "from `from` to `to` (both included, at most 366 days), zeros on days without usage.",
        parameters=[UsageDailyQuerySerializer],
        responses={200: UsageDailySerializer, 400: _INVALID_QUERY, 404: _KEY_NOT_FOUND},
        examples=[
            OpenApiExample(
                "two days",
                value={
                    "from": "2026-11-01",
                    "to": "2026-11-02",
                    "tz": "Europe/Lisbon",
                    "data": [
                        {
                            "date": "2026-11-01",
                            "requests": 2,
                            "input_tokens": 900,
                            "output_tokens": 300,
                            "total_tokens": 1200,
                            "cost_usd": "0.0001575000",
                        },
                        {
                            "date": "2026-11-02",
                            "requests": 0,
                            "input_tokens": 0,
                            "output_tokens": 0,
                            "total_tokens": 0,
                            "cost_usd": "0.0000000000",
                        },
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = UsageDailyQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        first_day = query.validated_data["first_day"]
        last_day = query.validated_data["last_day"]
        zone = query.validated_data["tz"]
        user = request_user(request)
        series = usage_daily(
            user=user,
            first_day=first_day,
            last_day=last_day,
            zone=zone,
            api_key_id=_owned_api_key_id(user, query.validated_data["api_key_id"]),
        )
        body = {
            "first_day": first_day,
            "last_day": last_day,
            "tz": zone,
            "data": [asdict(day) for day in series],
        }
        return Response(UsageDailySerializer(body).data)
