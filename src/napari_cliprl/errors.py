"""User-facing error text: one sentence for any failure, shown by the widget and the CLI."""

from __future__ import annotations


class CLIError(Exception):
    """A user error of the command line, reported as one line without a traceback."""


OFFLINE_HINT = "CLIP weights cannot be downloaded offline: set 'CLIP weights' to a local file."


def first_line(exc: BaseException) -> str:
    """The first line of ``str(exc)``, or the exception's type name when it has no text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_error(exc: BaseException, device: str | None = None) -> str:
    """One clear sentence for the user about ``exc`` (model, data, memory or file errors)."""
    text = first_line(exc)
    lowered = text.lower()
    if "out of memory" in lowered or type(exc).__name__ == "OutOfMemoryError":
        where = f" on {device}" if device else ""
        return (
            f"Out of memory{where}: run fewer frames at a time, pick the cpu device, or use a "
            "smaller model."
        )
    offline = any(k in lowered for k in ("offline", "localentrynotfound"))
    if offline and "local file" not in lowered:
        return f"{text.rstrip('.')}. {OFFLINE_HINT}"
    if isinstance(exc, FileExistsError):
        return text
    if isinstance(exc, ValueError | OSError | KeyError | RuntimeError):
        return text if text.endswith(".") else f"{text}."
    return f"{type(exc).__name__}: {text}"
