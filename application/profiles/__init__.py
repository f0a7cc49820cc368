"""Use cases about the caller's own profile, one per module."""

from application.profiles.get_me import GetMe, Me
from application.profiles.register_caller import RegisterCaller

__all__ = ["GetMe", "Me", "RegisterCaller"]
