from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from accounts.models import ApiKey, ApiKeyScope
from chatapi.serializers import JsonBodySerializer


class CredentialsSerializer(JsonBodySerializer):
    email = serializers.EmailField(max_length=254)
    # GoTrue hashes with bcrypt, which reads at most 72 bytes.
    password = serializers.CharField(min_length=6, max_length=72, trim_whitespace=False)


class RegisterSerializer(CredentialsSerializer):
    user_metadata = serializers.DictField(
        required=False, default=dict, help_text="Free-form profile data kept by Supabase Auth."
    )


class RefreshSerializer(JsonBodySerializer):
    refresh_token = serializers.CharField(max_length=1024)


class LogoutSerializer(JsonBodySerializer):
    scope = serializers.ChoiceField(
        choices=["global", "local", "others"],
        default="local",
        help_text="local: this session; global: every session; others: all but this one.",
    )


class AuthUserSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.UUIDField()
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    email_confirmed_at = serializers.CharField(allow_null=True)
    created_at = serializers.CharField(allow_null=True)
    updated_at = serializers.CharField(allow_null=True)
    user_metadata = serializers.DictField(allow_null=True)


class SessionSerializer(serializers.Serializer[dict[str, Any]]):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()
    expires_at = serializers.IntegerField(allow_null=True)
    refresh_token = serializers.CharField()
    user = AuthUserSerializer()


class RegisterResponseSerializer(serializers.Serializer[dict[str, Any]]):
    user = AuthUserSerializer()
    session = SessionSerializer(allow_null=True, help_text="null when e-mail confirmation is on.")


class MeSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.UUIDField()
    email = serializers.CharField()
    role = serializers.CharField()
    aal = serializers.CharField(allow_null=True)
    session_id = serializers.CharField(allow_null=True)
    is_anonymous = serializers.BooleanField()
    date_joined = serializers.DateTimeField()


class ApiKeyCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=100, help_text="To recognise the key by.")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        default=lambda: list(ApiKeyScope.values),
        help_text="What the key may do; all three by default. conversations:write includes "
        "sending messages.",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="null: never expires."
    )

    def validate_scopes(self, scopes: list[str]) -> list[str]:
        if not scopes:
            raise serializers.ValidationError("Give a key at least one scope.")
        # Stored once each, in the catalog's order, whatever the request's.
        return [scope for scope in ApiKeyScope.values if scope in scopes]

    def validate_expires_at(self, expires_at: datetime | None) -> datetime | None:
        if expires_at is not None and expires_at <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return expires_at


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    """A key as listed: never its secret, nor its hash."""

    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "scopes",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        )
        read_only_fields: tuple[str, ...] = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The secret: shown in this answer only, never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "key")
        read_only_fields = fields
