"""Role checks for API views: a role that may not take an action at all answers 403
before any object is looked up (objects outside a user's scope answer 404 later)."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


class RolePermission(BasePermission):
    """Reads are open to ``view.read_roles``, writes to ``view.write_roles``."""

    message = "Your role may not take this action."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        roles = getattr(view, "read_roles", ()) if request.method in SAFE_METHODS else getattr(view, "write_roles", ())
        return user.role in roles
