from typing import Any

from rest_framework import serializers

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
