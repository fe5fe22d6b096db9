"""Running a real Asterisk (from the chroot built by scripts/install.sh) with the project's own configs."""

from .runner import AsteriskError, AsteriskInstance, render_configs

__all__ = ["AsteriskError", "AsteriskInstance", "render_configs"]
