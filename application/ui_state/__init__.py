"""Use cases on a user's transient UI state in a workspace, one per module.

Each one checks the caller's membership first (cached, invalidated on every
membership change, so a removed member is refused at once) and touches only
the caller's own entries: the store is always addressed with the caller's
user id, never one from the request. Viewers read; writing needs member.
"""

from application.ui_state.delete_ui_state import DeleteUIState
from application.ui_state.get_ui_state import GetUIState
from application.ui_state.key_cursor import decode_key_cursor, encode_key_cursor
from application.ui_state.list_ui_state import ListUIState
from application.ui_state.put_ui_state import PutUIState

__all__ = [
    "DeleteUIState",
    "GetUIState",
    "ListUIState",
    "PutUIState",
    "decode_key_cursor",
    "encode_key_cursor",
]
