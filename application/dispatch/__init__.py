"""The relay (outbox → queue) and the reconciler (lost leases, lost queue
entries), one per module."""

from application.dispatch.recover_tasks import RecoverTasks
from application.dispatch.relay_tasks import RelayTasks

__all__ = ["RecoverTasks", "RelayTasks"]
