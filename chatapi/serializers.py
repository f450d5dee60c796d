from datetime import datetime, tzinfo
from typing import Any

from rest_framework import serializers

# The JSON types a body field accepts, by field class (the first match wins): DRF on its own
# reads 0 as "0", "1" as 1 and "yes" as true, which the OpenAPI document does not promise.
_JSON_TYPES: tuple[tuple[type[serializers.Field[Any, Any, Any, Any]], tuple[type, ...]], ...] = (
    (serializers.BooleanField, (bool,)),
    (serializers.IntegerField, (int,)),
    (serializers.FloatField, (int, float)),
    (serializers.CharField, (str,)),
)


class StrictSerializer(serializers.Serializer[Any]):
    """A serializer that rejects fields it does not declare, naming them, instead of
    silently dropping a client's typo."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class JsonBodySerializer(StrictSerializer):
    """A JSON request body: also each value must have its field's JSON type (a string for a
    string field, a number for a number field, true or false for a boolean), as documented."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            return super().to_internal_value(data)
        wrong_type = {
            name: [field.error_messages["invalid"]]
            for name, field in self.fields.items()
            if data.get(name) is not None and not _has_json_type(field, data[name])
        }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if wrong_type and isinstance(error.detail, dict):
                raise serializers.ValidationError({**error.detail, **wrong_type}) from None
            raise
        if wrong_type:
            raise serializers.ValidationError(wrong_type)
        return value


class JsonStringField(serializers.CharField):
    """A string that must be a JSON string, where ``JsonBodySerializer``'s check does not
    reach (the items of a list): DRF's CharField alone reads 0 as "0"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _has_json_type(field: serializers.Field[Any, Any, Any, Any], value: Any) -> bool:
    for field_class, types in _JSON_TYPES:
        if isinstance(field, field_class):
            return isinstance(value, types) and (bool in types or not isinstance(value, bool))
    return True


def datetime_json(value: datetime | None, zone: tzinfo) -> str | None:
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in ``zone``, the current time
    zone; ``Z`` for UTC), without its per-field machinery: the lists write hundreds."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
