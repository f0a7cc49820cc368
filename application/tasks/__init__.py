"""Use cases on tasks over HTTP, one per module: create (idempotent), list,
read, cancel.

Cancelling a queued task is published as a task event after it committed
(`task.queued` comes from the relay, before the queue can hand the task to a
worker, so it always precedes `task.started`). If the event bus is down the
change stands and the event is logged as lost: streams end from the
database's state.
"""

from application.tasks.cancel_task import CancelTask
from application.tasks.create_task import Accepted, CreateTask
from application.tasks.get_task import GetTask
from application.tasks.list_tasks import ListTasks

__all__ = ["Accepted", "CancelTask", "CreateTask", "GetTask", "ListTasks"]
