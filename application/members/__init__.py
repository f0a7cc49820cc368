"""Use cases on a workspace's members, one per module."""

from application.members.add_member import AddMember
from application.members.change_member_role import ChangeMemberRole
from application.members.list_members import ListMembers
from application.members.remove_member import RemoveMember

__all__ = ["AddMember", "ChangeMemberRole", "ListMembers", "RemoveMember"]
