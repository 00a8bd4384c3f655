"""The operator's status snapshot: outbox per shard, consumer lag, dead letters and
threshold verdicts. `StatusCollector` takes it; `connectin status`, /ops and the
Prometheus status collector only present it."""

from core.status.collector import StatusCollector, StatusUnavailable
from core.status.model import StatusSnapshot

__all__ = ["StatusCollector", "StatusSnapshot", "StatusUnavailable"]
