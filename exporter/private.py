"""Directories that hold the session and the InfluxDB queue: private to the exporter's user.

``Path.mkdir(parents=True, mode=0o700)`` applies the mode to the last directory only; its parents get the
umask's 0755. The session directory is the queue directory's parent, so whichever of the two made it first
decided whether other users could list it. Here every directory made on the way is 0700.
"""

from __future__ import annotations

import errno
from pathlib import Path


def make_private_directory(path: Path) -> None:
    """Create ``path`` and any missing parents, each 0700; existing directories are left as they are."""
    missing = []
    ancestor = path
    while not ancestor.exists() and ancestor.parent != ancestor:
        missing.append(ancestor)
        ancestor = ancestor.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)  # mkdir's mode is masked by the umask
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(path))
