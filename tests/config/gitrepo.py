"""A real Git repository, made with dulwich, for tests of GitSource."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from dulwich import porcelain
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

IDENTITY = b"Drover Test <test@example.com>"


class GitRepo:
    """A non-bare repository whose default branch is `main`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with porcelain.init(path) as repo:
            repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/main"))

    def write(self, files: Mapping[str, str]) -> None:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        """Write, stage and commit `files` on the current branch; the new commit's sha."""
        self.write(files)
        porcelain.add(self.path, paths=[self.path / name for name in files])
        sha = porcelain.commit(self.path, message, author=IDENTITY, committer=IDENTITY)
        return sha.decode("ascii")

    def set_ref(self, name: str, sha: str) -> None:
        with Repo(str(self.path)) as repo:
            repo.refs[Ref(name.encode())] = ObjectID(sha.encode())

    def tag(self, name: str, sha: str) -> None:
        porcelain.tag_create(
            self.path, name, author=IDENTITY, message="release", annotated=True, objectish=sha
        )

    def clone_bare(self, target: Path) -> Path:
        porcelain.clone(str(self.path), target, bare=True, errstream=io.BytesIO()).close()
        return target
