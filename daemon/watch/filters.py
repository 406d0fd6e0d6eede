"""Which names in a hot folder are work: its include and exclude globs, plus the built-in litter.

Shared by the folder watchers and ``hotmatte process`` folder walks, so both skip the same files.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from pathlib import PurePath

from daemon.config import Folder


class GlobFilter:
    """True when a name (or a relative path, for patterns with ``/``) matches one of the globs.

    Matching ignores case: studios mix ``.JPG`` and ``.jpg``, and Windows-made litter such as
    ``thumbs.db`` varies in case too.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        by_name = [fnmatch.translate(p.lower()) for p in self.patterns if "/" not in p]
        by_path = [fnmatch.translate(p.lower()) for p in self.patterns if "/" in p]
        self._name = re.compile("|".join(by_name)) if by_name else None
        self._path = re.compile("|".join(by_path)) if by_path else None

    def __call__(self, relative: PurePath) -> bool:
        if self._name is not None and self._name.match(relative.name.lower()):
            return True
        return self._path is not None and bool(self._path.match(relative.as_posix().lower()))


class FolderFilter:
    """Which files of a hot folder are work: included, not excluded, and not inside an excluded folder."""

    def __init__(self, include: Iterable[str], exclude: Iterable[str]) -> None:
        self.include = GlobFilter(include)
        self.exclude = GlobFilter(exclude)

    def accepts_directory(self, relative: PurePath) -> bool:
        return not self.exclude(relative)

    def excludes(self, relative: PurePath) -> bool:
        """The name, or a folder it is in, is excluded (litter, or the folder's ``exclude``)."""
        parents = relative.parents
        if any(self.exclude(parents[i]) for i in range(len(parents) - 1)):
            return True
        return self.exclude(relative)

    def accepts_link(self, relative: PurePath) -> bool:
        """A symbolic link is reported (as a failure) unless excluded, whatever ``include`` says:
        a link to a folder has no photo's name, and it must still be seen not to be followed."""
        return not self.excludes(relative)

    def __call__(self, relative: PurePath) -> bool:
        return self.include(relative) and not self.excludes(relative)

    @classmethod
    def for_folder(cls, folder: Folder) -> FolderFilter:
        return cls(folder.include, folder.all_excludes)
