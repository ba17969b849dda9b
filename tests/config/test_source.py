"""Reading config files from a Git commit or a plain folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drover.config.errors import ConfigSourceError
from drover.config.source import (
    FolderSource,
    GitSource,
    Snapshot,
    is_config_path,
    open_source,
    snapshot_revision,
)

from .gitrepo import GitRepo

HOSTS_V1 = "hosts:\n  web-01: {}\n"
HOSTS_V2 = "hosts:\n  web-02: {}\n"


# -- GitSource ------------------------------------------------------------------------------------


def test_git_source_reads_the_tree_of_head_with_the_commit_sha_as_revision(
    git_repo: GitRepo,
) -> None:
    sha = git_repo.commit({"fleet.yaml": HOSTS_V1, "apps/shop.yml": "applications: {}\n"})

    snapshot = GitSource(git_repo.path).read()

    assert snapshot == Snapshot(
        revision=sha,
        files={"apps/shop.yml": b"applications: {}\n", "fleet.yaml": HOSTS_V1.encode()},
    )


def test_git_source_reads_the_committed_files_not_the_working_tree(git_repo: GitRepo) -> None:
    sha = git_repo.commit({"fleet.yaml": HOSTS_V1})
    git_repo.write({"fleet.yaml": HOSTS_V2, "uncommitted.yaml": HOSTS_V2})

    snapshot = GitSource(git_repo.path, "main").read()

    assert snapshot == Snapshot(revision=sha, files={"fleet.yaml": HOSTS_V1.encode()})


def test_git_source_sees_a_moved_branch_on_the_next_read(git_repo: GitRepo) -> None:
    first = git_repo.commit({"fleet.yaml": HOSTS_V1})
    second = git_repo.commit({"fleet.yaml": HOSTS_V2})
    git_repo.set_ref("refs/heads/deploy", first)
    source = GitSource(git_repo.path, "deploy")
    assert source.read().files == {"fleet.yaml": HOSTS_V1.encode()}

    git_repo.set_ref("refs/heads/deploy", second)

    assert source.read() == Snapshot(revision=second, files={"fleet.yaml": HOSTS_V2.encode()})


def test_git_source_accepts_a_full_sha_and_an_annotated_tag(git_repo: GitRepo) -> None:
    first = git_repo.commit({"fleet.yaml": HOSTS_V1})
    git_repo.commit({"fleet.yaml": HOSTS_V2})
    git_repo.tag("v1", first)

    assert GitSource(git_repo.path, first).read().revision == first
    assert GitSource(git_repo.path, "v1").read().revision == first


def test_git_source_reads_only_the_subdir_with_paths_relative_to_it(git_repo: GitRepo) -> None:
    sha = git_repo.commit({"deploy/fleet/hosts.yaml": HOSTS_V1, "other.yaml": HOSTS_V2})

    snapshot = GitSource(git_repo.path, subdir="deploy/fleet/").read()

    assert snapshot == Snapshot(revision=sha, files={"hosts.yaml": HOSTS_V1.encode()})


def test_git_source_ignores_hidden_and_non_yaml_files(git_repo: GitRepo) -> None:
    git_repo.commit(
        {"fleet.yaml": HOSTS_V1, ".ci/pipeline.yaml": "x", ".x.yaml": "x", "README.md": "x"}
    )

    assert list(GitSource(git_repo.path).read().files) == ["fleet.yaml"]


def test_git_source_reads_a_bare_repository(git_repo: GitRepo, tmp_path: Path) -> None:
    sha = git_repo.commit({"fleet.yaml": HOSTS_V1})
    bare = git_repo.clone_bare(tmp_path / "bare.git")

    source = open_source(bare, "main")

    assert isinstance(source, GitSource)
    assert source.read() == Snapshot(revision=sha, files={"fleet.yaml": HOSTS_V1.encode()})


def test_a_missing_ref_is_a_source_error_naming_the_ref(git_repo: GitRepo) -> None:
    git_repo.commit({"fleet.yaml": HOSTS_V1})

    with pytest.raises(ConfigSourceError, match="'no-such-branch'") as caught:
        GitSource(git_repo.path, "no-such-branch").read()

    assert caught.value.source == f"git {git_repo.path} @ no-such-branch"


def test_a_repository_without_commits_is_a_source_error(git_repo: GitRepo) -> None:
    with pytest.raises(ConfigSourceError, match="ref 'HEAD' not found"):
        GitSource(git_repo.path).read()


def test_a_missing_subdir_is_a_source_error_naming_it(git_repo: GitRepo) -> None:
    git_repo.commit({"fleet.yaml": HOSTS_V1})

    with pytest.raises(ConfigSourceError, match="no folder 'deploy'"):
        GitSource(git_repo.path, subdir="deploy").read()


def test_a_subdir_that_is_a_file_is_a_source_error(git_repo: GitRepo) -> None:
    git_repo.commit({"fleet.yaml": HOSTS_V1})

    with pytest.raises(ConfigSourceError, match=r"no folder 'fleet\.yaml'"):
        GitSource(git_repo.path, subdir="fleet.yaml").read()


def test_a_path_that_is_no_longer_a_repository_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigSourceError, match="not a git repository"):
        GitSource(tmp_path / "gone").read()


# -- FolderSource ---------------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_folder_source_reads_yaml_files_recursively_ignoring_hidden_and_others(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {
            "fleet.yaml": HOSTS_V1,
            "apps/shop.yml": "applications: {}\n",
            ".git/config.yaml": "x",
            "apps/.shop.yaml.swp.yaml": "x",
            "notes.txt": "x",
        },
    )

    snapshot = FolderSource(tmp_path).read()

    assert snapshot.files == {
        "apps/shop.yml": b"applications: {}\n",
        "fleet.yaml": b"hosts:\n  web-01: {}\n",
    }
    assert snapshot.revision == snapshot_revision(snapshot.files)


def test_folder_revision_changes_when_a_file_changes_and_only_then(tmp_path: Path) -> None:
    write(tmp_path, {"fleet.yaml": HOSTS_V1})
    source = FolderSource(tmp_path)
    before = source.read().revision
    write(tmp_path, {"notes.txt": "not config"})
    assert source.read().revision == before

    write(tmp_path, {"fleet.yaml": HOSTS_V2})

    after = source.read().revision
    assert after != before
    assert after.startswith("sha256:")
    assert len(after) == len("sha256:") + 12


def test_a_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigSourceError, match="does not exist") as caught:
        FolderSource(tmp_path / "nope").read()

    assert caught.value.source == f"folder {tmp_path / 'nope'}"


@given(
    files=st.dictionaries(st.text(min_size=1, max_size=8), st.binary(max_size=8), max_size=6),
    data=st.data(),
)
def test_folder_revision_depends_on_the_files_not_their_order(
    files: dict[str, bytes], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(list(files.items())))

    assert snapshot_revision(dict(shuffled)) == snapshot_revision(files)


def test_folder_revision_cannot_be_fooled_by_moving_bytes_between_path_and_content() -> None:
    assert snapshot_revision({"a": b"bc"}) != snapshot_revision({"ab": b"c"})


# -- open_source ----------------------------------------------------------------------------------


def test_open_source_picks_git_for_a_repository_and_head_by_default(git_repo: GitRepo) -> None:
    source = open_source(git_repo.path)

    assert isinstance(source, GitSource)
    assert source.description == f"git {git_repo.path} @ HEAD"


def test_open_source_picks_a_folder_for_anything_else(tmp_path: Path) -> None:
    source = open_source(tmp_path, subdir="fleet")

    assert isinstance(source, FolderSource)
    assert source.description == f"folder {tmp_path / 'fleet'}"


def test_open_source_refuses_a_ref_for_a_plain_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigSourceError, match="'main' given, but this is not a git repository"):
        open_source(tmp_path, ref="main")


@pytest.mark.parametrize("subdir", ["../elsewhere", "/etc", "fleet/../../x"])
def test_a_subdir_may_not_escape_the_root(git_repo: GitRepo, subdir: str) -> None:
    with pytest.raises(ConfigSourceError, match="must be a path inside"):
        open_source(git_repo.path, subdir=subdir)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("fleet.yaml", True),
        ("apps/shop.yml", True),
        ("fleet.json", False),
        (".github/ci.yaml", False),
        ("apps/.draft.yaml", False),
    ],
)
def test_config_paths_are_visible_yaml_files(path: str, expected: bool) -> None:
    assert is_config_path(path) is expected
