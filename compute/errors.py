"""What can go wrong, as types both processes know: nothing here imports torch, so the web server can read an error
the compute process sends back.

- :class:`UserError` (and its kinds below) is a mistake in what the user asked for: a wrong layer name, a file that
  is not an image, a value out of range. Its message says how to fix it and is shown as it is; retrying the same
  request cannot help. It subclasses ``ValueError`` so that code calling the algorithms from a notebook can catch
  it the usual way.
- :class:`JobFailed` is anything else: a bug. The compute process logs it with its traceback where it happened and
  sends this instead (its own class might not be importable in the web server), and the page says "something went
  wrong" with retry.
- :class:`Cancelled` is raised by a job's progress callback once nobody waits for it any more.
"""
from __future__ import annotations


class UserError(ValueError):
    """A mistake in a request, with a message that says how to fix it."""


class DataError(UserError):
    """A data set that cannot be loaded or used (an unknown name, a missing folder, unreadable images)."""


class ModelError(UserError):
    """A model that cannot be built or loaded, or that does not fit the data."""


class LayerError(UserError):
    """A layer name the model does not have."""


class OutOfRange(UserError, IndexError):
    """A sample index, channel or class outside what exists (an IndexError too, for code that indexes)."""


class UploadError(UserError):
    """An uploaded file that cannot be used."""


class Cancelled(Exception):
    """Raised by a job's progress callback once the job has been superseded or its page closed."""


class JobFailed(RuntimeError):
    """A job that failed for a reason that is not the user's (a bug): its error's type and message, and the
    traceback the compute process logged."""

    def __init__(self, job: str, kind: str, message: str, traceback: str = ""):
        super().__init__(job, kind, message, traceback)
        self.job, self.kind, self.message, self.traceback = job, kind, message, traceback

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" if self.message else self.kind
