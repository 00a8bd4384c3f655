"""The one error a consumer raises for an event it can never apply as it is."""

from __future__ import annotations


class InvalidEvent(ValueError):
    """The event can never be handled as it is (bad or missing data, a schema version
    this consumer does not read): dead-letter it at once instead of retrying."""
