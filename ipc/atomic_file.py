"""Persisted state is written whole or not at all: temp file, fsync, rename. A file that cannot
be read back is set aside, never a reason not to start."""
import errno
import json
import logging
import os
import tempfile
from typing import Any, Callable, NamedTuple, Optional


def write_atomic(path: str, text: str, keep_previous: bool = False) -> None:
    """``keep_previous``: the file replaced is kept as ``<path>.previous`` (for a moment between
    the two renames only that one exists: a reader takes both generations)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(path))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        if keep_previous and os.path.exists(path):
            os.replace(path, path + ".previous")
        os.rename(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _temporary_prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def remove_temporaries(path: str, log: logging.Logger) -> None:
    """Remove the temp files (``.<name>.*``) that a write of ``path`` killed half-way left behind."""
    directory, prefix = os.path.dirname(os.path.abspath(path)), _temporary_prefix(path)
    try:
        names = [name for name in os.listdir(directory) if name.startswith(prefix)]
    except OSError:
        return          # no folder yet, or none we may read: nothing of ours in it
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
            log.warning("removed %s, left by an interrupted write of %s", name, path)
        except OSError as error:
            log.warning("cannot remove %s, left by an interrupted write of %s: %s", name, path, error)


# A read-only or full file system is a state of the storage that may pass (a GX's /data fills
# up and is cleaned): reported while running, never a reason to send no frames.
STORAGE_STATES = (errno.EROFS, errno.ENOSPC, errno.EDQUOT)


def _existing_folder(path: str) -> str:
    """The nearest folder of ``path`` that exists (``write_atomic`` makes the missing ones)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    return folder


def misplaced(path: str) -> Optional[str]:
    """Why ``path`` can never be written where it is configured (it is a folder, it lies under a
    file, no file can be created in its folder by this user), found by creating a nameless file
    beside it; None otherwise, and for a read-only or full file system (``STORAGE_STATES``)."""
    if os.path.isdir(path):
        return "it is a folder"
    folder = _existing_folder(path)
    if not os.path.isdir(folder):
        return "%s is not a folder" % folder
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        if error.errno in STORAGE_STATES:
            return None
        return "no file can be created in %s (%s)" % (folder, error.strerror)
    return None


def unwritable_reason(path: str) -> Optional[str]:
    """Why ``write_atomic`` cannot write ``path``, as far as can be told without writing; None
    when nothing is seen (a folder that does not exist yet is made by the writer)."""
    folder = _existing_folder(path)
    if not os.path.isdir(folder):
        return "%s is not a folder" % folder
    try:
        space = os.statvfs(folder)
    except OSError as error:
        return "%s: %s" % (folder, error.strerror)
    if space.f_flag & os.ST_RDONLY:
        return "%s is on a read-only file system" % folder
    if space.f_bavail == 0 or (space.f_files and space.f_favail == 0):
        return "the file system of %s is full" % folder
    if not os.access(folder, os.W_OK | os.X_OK):
        return "%s is not writable" % folder
    return None


def read_json(path: str) -> Optional[Any]:
    """The JSON document at ``path``, or None when there is none yet (nor its folder)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (FileNotFoundError, NotADirectoryError):
        return None


class Loaded(NamedTuple):
    value: Optional[Any]            # what ``parse`` made of the file; None when none or unreadable
    unreadable: Optional[str]       # why the file was set aside; None when it was read (or absent)


def load_or_set_aside(path: str, parse: Callable[[Any], Any], log: logging.Logger, what: str) -> Loaded:
    """``parse`` of the JSON document at ``path``. A file that cannot be read or parsed (corrupt,
    truncated, empty, refused by ``parse``) is moved to ``<path>.unreadable`` and logged: the
    caller starts without it rather than not at all. Temp files of an interrupted write are
    removed first."""
    remove_temporaries(path, log)
    try:
        document = read_json(path)
        return Loaded(None if document is None else parse(document), None)
    except Exception as error:      # the file is untrusted input: whatever it does to a parser, start
        problem = str(error) or type(error).__name__
    aside = path + ".unreadable"
    try:
        os.replace(path, aside)
        log.error("%s in %s unreadable (%s): kept as %s", what, path, problem, aside)
    except OSError as error:
        log.error("%s in %s unreadable (%s), and it cannot be moved to %s (%s)", what, path, problem, aside, error)
    return Loaded(None, problem)
