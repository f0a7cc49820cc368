"""Use cases on workspaces, one per module: create, list, read, rename, delete."""

from application.workspaces.create_workspace import CreateWorkspace, WorkspaceLimits
from application.workspaces.delete_workspace import DeleteWorkspace
from application.workspaces.get_workspace import GetWorkspace
from application.workspaces.list_workspaces import ListWorkspaces
from application.workspaces.names import MAX_NAME_LENGTH, clean_name
from application.workspaces.rename_workspace import RenameWorkspace

__all__ = [
    "MAX_NAME_LENGTH",
    "CreateWorkspace",
    "DeleteWorkspace",
    "GetWorkspace",
    "ListWorkspaces",
    "RenameWorkspace",
    "WorkspaceLimits",
    "clean_name",
]
