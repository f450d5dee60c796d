import uuid
from typing import Any, ClassVar, TypeAlias

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    def create_user(
        self, username: str | None, email: str = "", password: str | None = None, **extra: Any
    ) -> "User":
        user = self.model(username=username, email=self.normalize_email(email), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(
        self, username: str, email: str = "", password: str | None = None, **extra: Any
    ) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(username, email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. API users are created on first sight of their Supabase token, keep the
    Supabase user id as primary key and have no username or password. Staff accounts (for
    the admin, made with `createsuperuser`) have a username and a password, a fresh UUID,
    and are separate from API users even when the e-mail addresses match."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    username = models.CharField(max_length=150, unique=True, null=True, blank=True)
    email = models.EmailField(blank=True, db_index=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["email"]

    class Meta:
        ordering = ("-date_joined",)

    def __str__(self) -> str:
        return self.email or self.username or str(self.id)


class ApiKeyScope(models.TextChoices):
    """What a key may do. Keys are managed only with a Supabase session, never by a key."""

    CONVERSATIONS_READ = "conversations:read"
    CONVERSATIONS_WRITE = "conversations:write"  # includes sending messages
    USAGE_READ = "usage:read"


class ApiKey(models.Model):
    """A long-lived credential for REST clients (``accounts.keys``). Only a keyed hash of the
    secret is stored; ``prefix`` (its first characters) lets people recognise it."""

    Scope: TypeAlias = ApiKeyScope  # noqa: UP040 (a `type` alias has no members at run time)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: api_key_user_created leads with it.
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="api_keys", db_index=False
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    # HMAC-SHA256 of the secret with API_KEY_PEPPER, hex: what a request's key is looked up by.
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = ArrayField(models.CharField(max_length=32, choices=ApiKeyScope.choices))
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Written at most once a minute (accounts.selectors.api_key_authenticate).
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["user", "-created_at"], name="api_key_user_created")]
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=ApiKeyScope.values),
                name="api_key_scopes_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
