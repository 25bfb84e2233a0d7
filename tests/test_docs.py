"""README.md and docs/*.md agree with the CLI: every `azjobs ...` command and flag they show exists,
and no --help text sends the reader to a README section.

Read: code spans, and fenced blocks tagged as shell (```sh, bash, shell, console, zsh). Untagged
blocks are taken as program output (`azjobs plays 4`) or file trees and are not read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from azjobs.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(?:```|~~~)\s*(\w*)")
SHELL = {"sh", "bash", "shell", "console", "zsh"}
SPAN = re.compile(r"(`+)(.+?)\1")
ALTERNATIVE = "\x00"  # an escaped pipe inside a table's code span: `bench search\|net`
SEPARATORS = re.compile(r"\|\||&&|[|;&()`]|\$\(")  # the shell's: each side is a command of its own
INVOCATION = re.compile(r"(?:^|\s|['\"])azjobs\s+(.*)")
NAME = re.compile(r"^[a-z][a-z0-9-]*$")
FLAG = re.compile(r"^--?[a-zA-Z][a-zA-Z0-9-]*$")
HELP_FLAGS = {"--help", "-h"}


def code_pieces(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, code, inline) for each shell line (continuations joined) and each code span."""
    fenced, shell, pending, start = False, False, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            fenced, shell, pending = not fenced, not fenced and fence.group(1) in SHELL, ""
            continue
        if fenced:
            if not shell:
                continue
            start = start if pending else number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield start, pending + line, False
            pending = ""
        else:
            for span in SPAN.finditer(line):
                yield number, span.group(2), True


def invocations(code: str, inline: bool) -> Iterator[list[str]]:
    """The words after `azjobs` of each azjobs command in a piece of code."""
    if inline:
        code = code.replace("\\|", ALTERNATIVE)
    else:
        code = re.sub(r"(^|\s)#.*", "", code)  # a shell comment
    for part in SEPARATORS.split(code):
        found = INVOCATION.search(part)
        if found:
            yield [word.strip("[]{}\"',.:") for word in found.group(1).split()]


def flags_of(command: click.Command) -> set[str]:
    names = set(HELP_FLAGS)
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts, param.secondary_opts)
    return names


def problems(words: list[str]) -> list[str]:
    """What `azjobs WORDS` names that the CLI lacks: commands, subcommands, flags (`a\\|b`: both)."""
    found: list[str] = []
    current: list[tuple[str, click.Command]] = [("azjobs", main)]
    naming = True  # still at (sub)command names
    for word in words:
        options = [option for option in word.split(ALTERNATIVE) if option]
        if not options:
            continue
        if options[0].startswith("-"):
            for flag in (option.split("=", 1)[0] for option in options):
                if FLAG.match(flag):
                    found += [f"`{path}` has no {flag}" for path, cmd in current if flag not in flags_of(cmd)]
            continue
        if not naming or not all(isinstance(cmd, click.Group) for _, cmd in current):
            naming = False  # arguments and option values from here on
            continue
        if not all(NAME.match(option) for option in options):
            break  # a placeholder such as <command>: nothing more to check
        below = []
        for path, group in current:
            for name in options:
                sub = group.commands.get(name)  # type: ignore[attr-defined]
                if sub is None:
                    found.append(f"`{path}` has no command {name}")
                else:
                    below.append((f"{path} {name}", sub))
        if not below:
            break
        current = below
    return found


def text_problems(text: str) -> list[tuple[int, str]]:
    return [
        (number, problem)
        for number, code, inline in code_pieces(text)
        for words in invocations(code, inline)
        for problem in problems(words)
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_and_flag_the_docs_show_exists(page: Path) -> None:
    found = text_problems(page.read_text())
    assert not found, "\n".join(f"{page.relative_to(ROOT)}:{number}: {problem}" for number, problem in found)


POSITIONS = re.compile(r"(--(?:eval-)?positions)[ =]+([^\s`\\|;&)\]]+)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_|-]*$|[<>]")  # FILE, NAME|FILE, <file>


def positions_problems(text: str) -> list[tuple[int, str]]:
    """Labelled positions that a command shown cannot find from a fresh clone: neither a bundled set's
    name nor a file of the repository."""
    from azjobs.eval.positions import BUNDLED

    found = []
    for number, code, _ in code_pieces(text):
        for flag, value in POSITIONS.findall(code):
            value = value.strip("\"'")
            if PLACEHOLDER.search(value) or value in BUNDLED or (ROOT / value).is_file():
                continue
            found.append(
                (number, f"{flag} {value}: neither a bundled set ({', '.join(BUNDLED)}) nor a file of the repository")
            )
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_labelled_positions_the_docs_use_are_in_the_repository(page: Path) -> None:
    found = positions_problems(page.read_text())
    assert not found, "\n".join(f"{page.relative_to(ROOT)}:{number}: {problem}" for number, problem in found)


def test_the_positions_check_finds_what_a_clone_lacks() -> None:
    text = "\n".join(
        [
            "`azjobs bench strength --positions connect4` and `--positions FILE`, `--positions NAME|FILE`",
            "```sh",
            "azjobs bench strength --run-dir r --positions c4_public.jsonl --minutes 10",
            "azjobs run --eval-positions=tests/eval/data/c4_sample.jsonl; azjobs run --eval-positions nope",
            "```",
        ]
    )
    assert positions_problems(text) == [
        (3, "--positions c4_public.jsonl: neither a bundled set (connect4) nor a file of the repository"),
        (4, "--eval-positions nope: neither a bundled set (connect4) nor a file of the repository"),
    ]


CHECKED = r"""Run `azjobs run --minutes 5 --net-blocks 8` or `azjobs bench search\|net [--game G \| --seconds S]`;
`azjobs <command> --help`, `python -m azjobs --version`, `azjobs bestmove --redis-url URL`.
```sh
AZJOBS_RUN_DIR=r azjobs status --watch | head  # azjobs nonsense --here
azjobs bench strength --positions connect4 \
    --no-such-flag 1 && azjobs frobnicate --x
$ azjobs bench search --seconds 5 --bogus; ssh gpu 'azjobs gpu-serve --run-dir r --no-reuse-tree'
```
```
azjobs plays 4 (output, not a command)
```
`azjobs play --sims 4 --secnd` and `azjobs bench search\|nope\|net --seconds 1`
"""


def test_the_check_finds_what_does_not_exist() -> None:
    """The checker itself: made-up commands and flags are found; real ones, alternatives, comments,
    placeholders and output are not."""
    assert text_problems(CHECKED) == [
        (5, "`azjobs bench strength` has no --no-such-flag"),
        (5, "`azjobs` has no command frobnicate"),
        (7, "`azjobs bench search` has no --bogus"),
        (7, "`azjobs gpu-serve` has no --no-reuse-tree"),
        (12, "`azjobs play` has no --secnd"),
        (12, "`azjobs bench` has no command nope"),
    ]


def help_texts(command: click.Command, path: str) -> Iterator[tuple[str, str]]:
    """(where, text) of every help text of the command tree, hidden parts included."""
    for text in (command.help, command.short_help, command.epilog):
        if text:
            yield path, text
    for param in command.params:
        if isinstance(param, click.Option) and param.help:
            yield f"{path} {param.opts[0]}", param.help
    for name, sub in getattr(command, "commands", {}).items():
        yield from help_texts(sub, f"{path} {name}")


def test_no_help_text_points_at_the_readme() -> None:
    """The README is a short introduction; help texts say it themselves or name docs/<page>.md."""
    texts = list(help_texts(main, "azjobs"))
    assert len(texts) > 100  # the walk reaches every command's options
    assert [where for where, text in texts if "README" in text] == []


def test_bestmove_and_play_hide_the_redis_url_they_ignore() -> None:
    for name in ("bestmove", "play"):
        [option] = [p for p in main.commands[name].params if "--redis-url" in getattr(p, "opts", ())]
        assert option.hidden, name
        assert "--redis-url" not in main.commands[name].get_help(click.Context(main.commands[name]))


def test_the_design_lists_every_redis_key() -> None:
    """docs/design.md's key table has a row for each key of azjobs/keys.py (placeholders as `<run>`)
    and for no other."""
    import inspect

    from azjobs import keys

    design = (ROOT / "docs" / "design.md").read_text()
    placeholders = {
        "run": "<run>",
        "client_id": "<client>",
        "version": "<version>",
        "role": "<role>",
        "process_id": "<id>",
    }
    named = []
    for name, function in inspect.getmembers(keys, inspect.isfunction):
        if function.__module__ != keys.__name__ or name == "prefix":
            continue
        args = [placeholders[p] for p in inspect.signature(function).parameters]
        key = function(*args)
        named.append(key)
        assert f"| `{key}` |" in design, f"docs/design.md has no row for {key} (keys.{name})"
    rows = re.findall(r"^\| `(azjobs:[^`]+)` \|", design, flags=re.MULTILINE)
    assert sorted(rows) == sorted(named)  # and no row for a key the code no longer has


def test_the_design_names_the_format_versions() -> None:
    from azjobs import wire
    from azjobs.storage import shards

    design = (ROOT / "docs" / "design.md").read_text()
    assert f"## Wire format (version {wire.FORMAT_VERSION})" in design
    assert f"## Replay shards (format {shards.FORMAT_VERSION})" in design
    assert f"`format_version` ({shards.FORMAT_VERSION})" in design
