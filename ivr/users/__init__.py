"""Users (agent, supervisor, admin), their login sessions and API tokens: the pure rules (``model``), the
store (``store``) and the account operations the web layer calls (``accounts``)."""

from .accounts import Accounts, AuthPolicy, LoginRefused
from .model import ROLES, ApiToken, Session, User, UserError
from .store import SqliteUserStore, UserStore

__all__ = ["ROLES", "Accounts", "ApiToken", "AuthPolicy", "LoginRefused", "Session", "SqliteUserStore",
           "User", "UserError", "UserStore"]
