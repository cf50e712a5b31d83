"""Error types of the raw-data readers, in one place so that no reader imports another for them.

Taught in notebook 12. Each is a :class:`joimternet_lite.errors.UserError`: its message starts with
the file at fault and ends with what to do. Callers that skip bad inputs (``prepare``,
``build_cache``) catch :class:`ImageReadError` and count the file; the others end the command.
"""

from __future__ import annotations

from ..errors import UserError


class SourceError(UserError, ValueError):
    """A raw source file or folder (report, CSV, archive) that cannot be read as it is."""


class ImageReadError(UserError, ValueError):
    """An image that cannot be read; the message names the file, the problem and the fix."""


class DicomError(ImageReadError):
    """A DICOM file that cannot be turned into an image; the message names the file and the fix."""
