"""Settings declared once: every variable reaches a child process through to_env, and
README's configuration table is the one the declarations generate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from core.settings import DatabaseUrl, Settings
from core.settings_readme import README, with_table
from core.settings_vars import (
    Bool,
    Choice,
    Declared,
    Float,
    Int,
    Items,
    Networks,
    Parser,
    Text,
    declared,
    setting,
)


def _sample(d: Declared) -> str:
    """A valid value for the variable that differs from its default."""
    parser: Parser = d.var.parser
    if isinstance(parser, DatabaseUrl):
        return "postgresql://u:p@db.example:5433/other?sslmode=require"
    if isinstance(parser, Choice):
        return [c for c in parser.choices if c != d.default][-1]
    if isinstance(parser, Networks):
        return "10.0.0.0/8, 2001:db8::/32"
    if isinstance(parser, Items):
        return "a.example,b.example"
    if isinstance(parser, Bool):
        # In the sample's environment (test) a default that depends on it is True.
        return "false"
    if isinstance(parser, Int):
        return str(d.default + 1)
    if isinstance(parser, Float):
        return str(d.default + 0.5)
    if isinstance(parser, Text):
        return "warning" if parser.upper else f"sample-{d.var.name.lower()}"
    raise AssertionError(f"no sample for {type(parser).__name__}: add one")


def _sample_env() -> dict[str, str]:
    return {d.var.name: _sample(d) for d in declared(Settings)}


def test_every_variable_is_declared_once() -> None:
    names = [d.var.name for d in declared(Settings)]
    assert len(names) == len(set(names))
    assert set(Settings().to_env()) == set(names)


def test_to_env_round_trips_every_variable() -> None:
    """A child process rebuilds exactly the parent's settings, and leaving out any one
    variable would change them: none is carried by accident of its default."""
    env = _sample_env()
    s = Settings.from_env(env)
    child_env = s.to_env()
    assert Settings.from_env(child_env) == s
    for name in child_env:
        without = {k: v for k, v in child_env.items() if k != name}
        assert Settings.from_env(without) != s, f"{name} does not reach a child process"


def test_defaults_round_trip() -> None:
    assert Settings.from_env(Settings().to_env()) == Settings() == Settings.from_env({})


def test_readme_configuration_table_is_generated_from_the_declarations() -> None:
    readme = README.read_text()
    assert with_table(readme) == readme, "run: python -m core.settings_readme"
    for d in declared(Settings):
        assert f"| `{d.var.name}` |" in readme


@dataclass(frozen=True)
class _Section:
    declared_one: int = setting("X_DECLARED", 1, Int(), "declared")
    forgotten: int = 2


@dataclass(frozen=True)
class _Top:
    section: _Section = field(default_factory=_Section)


def test_a_field_without_a_variable_is_refused() -> None:
    with pytest.raises(TypeError, match="forgotten"):
        declared(_Top)


def test_the_table_needs_its_markers() -> None:
    with pytest.raises(ValueError, match="marker"):
        with_table("# a README without the table\n")


@pytest.mark.parametrize(
    ("env", "field_value"),
    [
        ({"RELAY_LOCK_CHECK_MS": "4000"}, ("relay", "lease_timeout_ms", 8000)),
        ({"CONNECTIN_ENV": "development"}, ("api", "cookie_secure", False)),
        ({"CONNECTIN_ENV": "development", "COOKIE_SECURE": "yes"}, ("api", "cookie_secure", True)),
        ({"CORS_ORIGINS": ""}, ("api", "cors_origins", ())),
        ({"JWT_SECRET": ""}, ("auth", "jwt_secret", Settings().auth.jwt_secret)),
        ({"OPS_TOKEN": ""}, ("api", "ops_token", "")),
    ],
)
def test_defaults_that_depend_on_other_variables_or_on_emptiness(
    env: dict[str, str], field_value: tuple[str, str, Any]
) -> None:
    section, name, expected = field_value
    assert getattr(getattr(Settings.from_env(env), section), name) == expected
