"""Every environment variable the settings read is documented: in the configuration table of
docs/configuration.md and in .env.example."""

import re

from testsupport.servers import REPO

# Older names, accepted but not advertised as settings of their own.
ALIASES = {"JWT_SECRET_KEY"}


def settings_variables() -> set[str]:
    source = (REPO / "chatapi" / "settings.py").read_text()
    return set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', source))


def test_the_settings_read_variables() -> None:
    assert {"CHATAPI_ENV", "DATABASE_URL", "LOG_FORMAT", "METRICS_TOKEN"} <= settings_variables()


def test_every_variable_is_in_the_configuration_table() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    documented = {
        name
        for line in page.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z0-9_]+)`", line.split("|")[1])
    }

    assert settings_variables() - documented == set()


def test_every_variable_is_in_env_example() -> None:
    example = (REPO / ".env.example").read_text()
    assigned = set(re.findall(r"^([A-Z0-9_]+)=", example, flags=re.MULTILINE))

    assert settings_variables() - ALIASES - assigned == set()
    for alias in ALIASES:
        assert re.search(rf"\b{alias}\b", example)
