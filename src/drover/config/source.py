"""Where config files come from: a plain folder, or one commit of a Git repository.

A source only reads bytes; parsing is the loader's job. `read()` is synchronous because both
backends do blocking file I/O; the server calls it through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from dulwich.errors import NotGitRepository, NotTreeError
from dulwich.object_store import iter_tree_contents, tree_lookup_path
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.objectspec import parse_commit
from dulwich.repo import Repo

from drover.config.errors import ConfigSourceError

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Snapshot:
    """The config files of one revision, exactly as stored."""

    revision: str  # git commit sha, or for a folder "sha256:<12 hex digits>"
    files: dict[str, bytes]  # relative path with "/" -> content; YAML files only


class ConfigSource(Protocol):
    @property
    def description(self) -> str:
        """For people: `git /srv/fleet @ main` or `folder /srv/fleet`."""
        ...

    def read(self) -> Snapshot:
        """The files as they are now. Raises ConfigSourceError when they cannot be read."""
        ...


def is_config_path(path: str) -> bool:
    """A YAML file with no hidden part in its path (`.git/`, `.github/`, editor temp files)."""
    parts = path.split("/")
    return path.endswith(YAML_SUFFIXES) and not any(part.startswith(".") for part in parts)


def snapshot_revision(files: Mapping[str, bytes]) -> str:
    """A content hash standing in for a commit sha: same files, same revision, in any order.

    Each path and content is length-prefixed, so ("a", "bc") and ("ab", "c") never collide.
    """
    digest = hashlib.sha256()
    for path in sorted(files):
        for chunk in (path.encode(), files[path]):
            digest.update(len(chunk).to_bytes(8, "big"))
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:12]


class FolderSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"folder {path}"

    def read(self) -> Snapshot:
        files = self._read_files()
        return Snapshot(revision=snapshot_revision(files), files=files)

    def _read_files(self) -> dict[str, bytes]:
        if not self.path.is_dir():
            reason = "is not a directory" if self.path.exists() else "does not exist"
            raise ConfigSourceError(self.description, reason)
        files: dict[str, bytes] = {}
        try:
            for dirpath, dirnames, filenames in os.walk(self.path, onerror=_reraise):
                # Pruned here so that a large `.git` is never even listed.
                dirnames[:] = [name for name in dirnames if not name.startswith(".")]
                for name in filenames:
                    full = Path(dirpath, name)
                    relative = full.relative_to(self.path).as_posix()
                    if is_config_path(relative):
                        files[relative] = full.read_bytes()
        except OSError as err:
            raise ConfigSourceError(
                self.description, f"cannot read {err.filename}: {err.strerror}"
            ) from err
        return dict(sorted(files.items()))


def _reraise(err: OSError) -> None:
    # os.walk skips unreadable directories silently by default; a half-read config is worse.
    raise err


class GitSource:
    """The tree of the commit `ref` points to, read from the object store, never the worktree.

    The repository is opened afresh on every read, so a branch moved by a push or a fetch is seen
    on the next read, and nothing holds file handles between reads.
    """

    def __init__(self, path: Path, ref: str = "HEAD", subdir: str = "") -> None:
        self.path = path
        self.ref = ref
        self.subdir = _clean_subdir(subdir, f"git {path}")
        self.description = f"git {path} @ {ref}" + (f" in {self.subdir}/" if self.subdir else "")

    def read(self) -> Snapshot:
        try:
            repo = Repo(str(self.path))
        except (NotGitRepository, OSError) as err:
            raise ConfigSourceError(self.description, f"not a git repository: {err}") from err
        with repo:
            commit = self._resolve(repo)
            tree = self._subtree(repo, commit)
            try:
                files = self._read_tree(repo, tree)
            except KeyError as err:  # a damaged or shallow repository
                reason = f"object {err} of commit {commit.id.decode()} is missing"
                raise ConfigSourceError(self.description, reason) from err
        return Snapshot(revision=commit.id.decode("ascii"), files=files)

    def _resolve(self, repo: Repo) -> Commit:
        try:
            return parse_commit(repo, self.ref)
        except (KeyError, ValueError) as err:
            raise ConfigSourceError(self.description, f"ref {self.ref!r} not found") from err

    def _subtree(self, repo: Repo, commit: Commit) -> ObjectID:
        if not self.subdir:
            return ObjectID(commit.tree)
        try:
            mode, sha = tree_lookup_path(
                repo.object_store.__getitem__, commit.tree, self.subdir.encode()
            )
        except (KeyError, NotTreeError) as err:
            raise self._no_subdir(commit) from err
        if not stat.S_ISDIR(mode):
            raise self._no_subdir(commit)
        return sha

    def _no_subdir(self, commit: Commit) -> ConfigSourceError:
        reason = f"no folder {self.subdir!r} in commit {commit.id.decode()}"
        return ConfigSourceError(self.description, reason)

    def _read_tree(self, repo: Repo, tree: ObjectID) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for entry in iter_tree_contents(repo.object_store, tree):
            path = entry.path.decode("utf-8", "replace")
            # Symlinks and submodules have no content of their own to read.
            if not stat.S_ISREG(entry.mode) or not is_config_path(path):
                continue
            blob = repo.object_store[entry.sha]
            if isinstance(blob, Blob):
                files[path] = blob.data
        return files


def _clean_subdir(subdir: str, source: str) -> str:
    """`subdir` as a plain relative path ("" for the root); nothing that could escape the root."""
    path = PurePosixPath(subdir)
    if path.is_absolute() or ".." in path.parts:
        raise ConfigSourceError(source, f"subdir {subdir!r} must be a path inside the repository")
    return "/".join(path.parts)


def _is_git_repository(path: Path) -> bool:
    if (path / ".git").exists():
        return True
    # A bare repository is its own control directory.
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def open_source(path: Path, ref: str | None = None, subdir: str = "") -> ConfigSource:
    """A GitSource for a (bare or non-bare) repository, a FolderSource for anything else."""
    if _is_git_repository(path):
        return GitSource(path, ref or "HEAD", subdir)
    if ref is not None:
        raise ConfigSourceError(
            f"folder {path}", f"ref {ref!r} given, but this is not a git repository"
        )
    clean = _clean_subdir(subdir, f"folder {path}")
    return FolderSource(path / clean if clean else path)
