"""The README and docs/ pages stay true to the repository and the CLI: every local link resolves
(file and heading anchor), and every `capsdeploy ...` command in a code block names only flags
that command has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from capsdeploy.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def local_links(page: Path):
    text = FENCE.sub("", page.read_text())
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_local_link_resolves(page):
    broken = []
    for target in local_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(
                f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})"
            )
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{page.name}: broken links: {broken}"


def commands(page: Path):
    """Every `capsdeploy ...` command line in the page's shell code blocks, continuations joined,
    comments dropped, as argument lists."""
    for block in FENCE.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line.startswith("capsdeploy "):
                continue
            line = re.split(r"\s#\s", line)[0]
            yield shlex.split(line)[1:]


def flags_of(argv: list[str]) -> tuple[str, set[str], list[str]]:
    """(command path, the flags it accepts, the flags the line names). Words before the first
    flag walk down groups to the subcommand they name (`capsdeploy bench engines` checks the
    line against `bench engines`' options). Hidden options (a deprecated form kept for a release,
    such as `bench --engines`) are not accepted: the pages show the current form."""
    cmd: click.Command = cli
    path = ["capsdeploy"]
    rest = list(argv)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        assert sub is not None, f"`{' '.join(path)}` has no subcommand {rest[0]!r}"
        cmd, path = sub, [*path, rest.pop(0)]
    accepted = {"--help", "-h"}
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        accepted.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("-"))
    named = [t.split("=")[0] for t in rest if t.startswith("-") and not re.fullmatch(r"-\d[\d.]*", t)]
    return " ".join(path), accepted, named


def all_commands():
    return [(page.name, argv) for page in PAGES for argv in commands(page)]


def test_the_pages_hold_commands():
    found = all_commands()
    assert len(found) >= 20, found  # the check below must have something to check
    assert any(name == "README.md" for name, _ in found)


@pytest.mark.parametrize(("page", "argv"), all_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_commands_name_only_flags_the_cli_has(page, argv):
    path, accepted, named = flags_of(argv)
    unknown = [f for f in named if f not in accepted]
    assert not unknown, f"{page}: `{path}` has no option(s) {unknown}"


def test_the_flag_check_catches_an_unknown_flag():
    path, accepted, named = flags_of(["export", "--checkpoint", "r", "--no-such-flag"])
    assert path == "capsdeploy export"
    assert "--no-such-flag" in named and "--no-such-flag" not in accepted
    assert "--checkpoint" in accepted


def test_the_flag_check_resolves_subcommands_and_catches_their_unknown_flags():
    path, accepted, named = flags_of(["bench", "engines", "--engines", "torch", "--url", "http://x"])
    assert path == "capsdeploy bench engines"
    assert "--engines" in accepted and "--batch-sizes" in accepted
    assert "--url" in named and "--url" not in accepted  # another subcommand's flag
    path, accepted, _ = flags_of(["bench", "http", "--url", "http://x"])
    assert path == "capsdeploy bench http" and "--url" in accepted and "--engines" not in accepted


def test_the_flag_check_refuses_the_deprecated_flag_form():
    """`capsdeploy bench --engines ...` still runs for a release, but the pages must not teach it."""
    path, accepted, named = flags_of(["bench", "--checkpoint", "r", "--engines", "torch"])
    assert path == "capsdeploy bench"
    assert {"--checkpoint", "--engines"} <= set(named) and not ({"--checkpoint", "--engines"} & accepted)


def test_the_flag_check_refuses_an_unknown_subcommand():
    with pytest.raises(AssertionError, match="no subcommand 'bogus'"):
        flags_of(["bench", "bogus", "--url", "x"])


def test_the_link_check_catches_a_broken_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## Some `code` here\n")
    assert anchors(tmp_path / "a.md") == {"title", "some-code-here"}
    assert slug("Benchmarks: `capsdeploy bench`") == "benchmarks-capsdeploy-bench"


def test_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
