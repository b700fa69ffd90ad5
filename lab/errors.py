"""Exceptions lab raises. Each message names the item at fault and how to fix it."""

__all__ = ["LabError", "ModelNotAvailable", "UnsafeCheckpoint", "BadInput", "WorkerTimeout", "error_text"]


class LabError(Exception):
    """Base class of every error lab raises on purpose."""


class ModelNotAvailable(LabError):
    """A model could not be resolved or loaded (offline, unknown name, missing file)."""


class UnsafeCheckpoint(LabError):
    """A checkpoint needs arbitrary-code unpickling and the user did not opt in."""


class BadInput(LabError, ValueError):
    """An image or text could not be used; the message names the item."""


class WorkerTimeout(LabError, TimeoutError):
    """Worker processes gave no result within their deadline; the message names the batch and what
    was kept."""


def error_text(e: Exception) -> str:
    """What a failed item's row says (the same words in every engine: lab.core.encoding's workers,
    lab.core.device_decode, lab.dist's workers)."""
    return str(e) if isinstance(e, (ValueError, OSError, TypeError)) else f"{type(e).__name__}: {e}"
