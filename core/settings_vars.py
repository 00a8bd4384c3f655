"""How a settings field is declared with its environment variable, and the parsers.

Each field of core/settings.py's dataclasses is declared with `setting(...)`: its
variable, default, parser and documentation in one line of the table, from which
`Settings.from_env`, `Settings.to_env` and README's configuration table all come
(core/settings_readme.py), so none of them can forget a variable.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")

# The key of a field's Var in its dataclass field metadata.
_VAR = "connectin.env_var"


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


class Parser(ABC):
    """Text of the environment -> field value, and back (`format`) for a child process.

    `parse` gets the raw value (None when the variable is unset), the field's default
    and the values parsed so far, by variable, for the parsers that `needs` others."""

    def needs(self) -> tuple[str, ...]:
        """Variables this one's default or limits depend on."""
        return ()

    @abstractmethod
    def parse(self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]) -> Any:
        """The field's value; SettingsError naming the variable when `raw` is unusable."""

    def format(self, value: Any) -> str:
        return str(value)

    def show(self, default: Any) -> str:
        """The default as README's table shows it."""
        text = self.format(default)
        return f"`{text}`" if text else "empty"


@dataclass(frozen=True)
class Text(Parser):
    # Empty means "use the default" unless the field may be empty on purpose (a
    # failpoint off, no instance id, no ops token, real Stripe).
    keep_empty: bool = False
    upper: bool = False

    def parse(self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]) -> str:
        value: str = default if raw is None or (raw == "" and not self.keep_empty) else raw
        return value.upper() if self.upper else value


@dataclass(frozen=True)
class Int(Parser):
    minimum: int = 0
    # (variable, factor): the value must be at least factor x that variable, and the
    # default rises to it rather than failing on a variable nobody set.
    floor: tuple[str, int] | None = None

    def needs(self) -> tuple[str, ...]:
        return () if self.floor is None else (self.floor[0],)

    def parse(self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]) -> int:
        minimum = self.minimum
        if self.floor is not None:
            other, factor = self.floor
            minimum = max(minimum, factor * parsed[other])
            default = max(default, minimum)
        if raw is None or raw == "":
            return int(default)
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise SettingsError(f"{name} must be >= {minimum}, got {value}")
        return value


@dataclass(frozen=True)
class Float(Parser):
    def parse(self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]) -> float:
        if raw is None or raw == "":
            return float(default)
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None

    def format(self, value: Any) -> str:
        # repr: the shortest text that parses back to the same float.
        return repr(value)


@dataclass(frozen=True)
class Bool(Parser):
    # The default is False in this environment (CONNECTIN_ENV), True in the others.
    off_in: str | None = None

    def needs(self) -> tuple[str, ...]:
        return () if self.off_in is None else ("CONNECTIN_ENV",)

    def parse(self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]) -> bool:
        if self.off_in is not None:
            default = parsed["CONNECTIN_ENV"] != self.off_in
        if raw is None or raw == "":
            return bool(default)
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def format(self, value: Any) -> str:
        return "true" if value else "false"


@dataclass(frozen=True)
class Choice(Parser):
    choices: tuple[str, ...]

    def parse(self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]) -> str:
        value = (raw or default).strip().lower()
        if value not in self.choices:
            raise SettingsError(
                f"{name} must be one of {', '.join(self.choices)}, got {raw or default!r}"
            )
        return str(value)


@dataclass(frozen=True)
class Items(Parser):
    """Comma-separated; unset is the default, set but empty is no items."""

    def parse(
        self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]
    ) -> tuple[str, ...]:
        if raw is None:
            return tuple(default)
        return tuple(item.strip() for item in raw.split(",") if item.strip())

    def format(self, value: Any) -> str:
        return ",".join(value)


@dataclass(frozen=True)
class Networks(Items):
    """IP addresses or networks, validated and in canonical form (`10.0.0.0/8`)."""

    def parse(
        self, name: str, raw: str | None, default: Any, parsed: Mapping[str, Any]
    ) -> tuple[str, ...]:
        networks: list[str] = []
        for item in super().parse(name, raw, default, parsed):
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise SettingsError(
                    f"{name} must list IP addresses or networks (CIDR), got {item!r}"
                ) from None
        return tuple(networks)


@dataclass(frozen=True)
class Var:
    """One environment variable of the table."""

    name: str
    parser: Parser
    doc: str
    # README's default column, where the value alone would mislead (a default that
    # depends on another variable, a secret only fit for development).
    shown: str | None = None


def setting(name: str, default: Any, parser: Parser, doc: str, *, shown: str | None = None) -> Any:
    """A settings field read from the environment variable `name`."""
    return field(default=default, metadata={_VAR: Var(name, parser, doc, shown)})


@dataclass(frozen=True)
class Declared:
    """A variable where the settings declare it: its dataclass field path and default."""

    var: Var
    path: tuple[str, ...]
    default: Any


def declared(cls: type) -> list[Declared]:
    """Every variable of a settings dataclass and its sections, in declaration order."""
    found: list[Declared] = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        var = f.metadata.get(_VAR)
        if var is not None:
            found.append(Declared(var, (f.name,), f.default))
            continue
        section = hints[f.name]
        if not (isinstance(section, type) and is_dataclass(section)):
            raise TypeError(f"{cls.__name__}.{f.name} is neither a setting nor a section")
        found += [Declared(d.var, (f.name, *d.path), d.default) for d in declared(section)]
    return found


def parse_all(variables: list[Declared], env: Mapping[str, str]) -> dict[str, Any]:
    """Every variable's value, by variable; the ones that depend on others last."""
    parsed: dict[str, Any] = {}
    for d in sorted(variables, key=lambda d: bool(d.var.parser.needs())):
        parsed[d.var.name] = d.var.parser.parse(d.var.name, env.get(d.var.name), d.default, parsed)
    return parsed


def build(cls: type[T], parsed: Mapping[str, Any]) -> T:
    """The dataclass `cls` with each field the parsed value of its variable."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        var = f.metadata.get(_VAR)
        values[f.name] = build(hints[f.name], parsed) if var is None else parsed[var.name]
    return cls(**values)


def values(settings: object) -> Iterator[tuple[Var, Any]]:
    """Each variable of a settings object with the value it holds."""
    for f in fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        var = f.metadata.get(_VAR)
        if var is None:
            yield from values(value)
        else:
            yield var, value
