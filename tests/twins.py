"""Run every kernel as one of its twins, whatever the size of the work."""

from __future__ import annotations

from fastcorr._kernels import forced as run_as  # noqa: F401
