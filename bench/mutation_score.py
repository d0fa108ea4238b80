"""Mutation score per module from mutmut's results (`make mutate` runs it after mutmut).

    python -m bench.mutation_score [--survivors]

Reads mutants/**/*.meta (run from the project root, after `mutmut run`) and prints, per
mutated module, killed/total with and without message-text mutants: mutants that only change
the text of an error message or rejection detail (a string literal inside a raise, an error
constructor or a detail= argument), which no test should pin word for word. Timeouts and
type-check catches count as killed; "no tests" and survivors do not; unchecked mutants are
left out and reported. --survivors lists the surviving non-text mutants with their diffs.
"""

from __future__ import annotations

import ast
import io
import json
import sys
import textwrap
import tokenize
from pathlib import Path

import libcst as cst
from mutmut.mutation.diff_apply import (
    get_diff_for_mutant,
    read_mutant_function,
    read_mutants_module,
    read_original_function,
)
from mutmut.stats import status_by_exit_code

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
# Calls whose string arguments are messages, not behaviour.
MESSAGE_CALLS = {
    "_bad_claims",
    "_malformed",
    "_fail",
    "DecodeError",
    "CodeRejected",
    "ValueError",
    "TypeError",
    "Rejection",
    "PolicyError",
}
MESSAGE_KEYWORDS = {"detail", "message"}


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}
    return [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]


def _message_lines(source: str) -> set[int]:
    """Lines of `source` holding a string literal that is an error message or detail."""
    lines: set[int] = set()

    def mark(node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Constant | ast.JoinedStr):
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            mark(node.exc)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in MESSAGE_CALLS:
                for arg in node.args:
                    mark(arg)
            for keyword in node.keywords:
                if keyword.arg in MESSAGE_KEYWORDS:
                    mark(keyword.value)
    return lines


def is_text_mutant(original: str, mutant: str) -> bool:
    """True if `mutant` differs from `original` only in string literals that are messages."""
    try:
        a, b = _tokens(original), _tokens(mutant)
        message_lines = _message_lines(original)
    except (tokenize.TokenError, SyntaxError):
        return False
    if len(a) != len(b):
        return False
    diffs = [(x, y) for x, y in zip(a, b, strict=True) if x.string != y.string]
    return bool(diffs) and all(
        x.type == y.type == tokenize.STRING
        and set(range(x.start[0], x.end[0] + 1)) <= message_lines
        for x, y in diffs
    )


def main(argv: list[str]) -> int:
    def source(function: cst.CSTNode) -> str:
        return textwrap.dedent(cst.Module([function]).code)

    show_survivors = "--survivors" in argv
    metas = sorted(Path("mutants").rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    print(
        f"{'module':<34} {'all killed/total':>18} {'%':>6}   {'non-text':>14} {'%':>6}  unchecked"
    )
    for meta in metas:
        path = meta.relative_to("mutants").with_suffix("")
        results = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        counts = {"all": [0, 0], "code": [0, 0]}
        unchecked = 0
        survivors = []
        module = read_mutants_module(path)
        for name, code in sorted(results.items()):
            status = status_by_exit_code[code]
            if code is None:
                unchecked += 1
                continue
            killed = status in KILLED
            text = is_text_mutant(
                source(read_original_function(module, name)),
                source(read_mutant_function(module, name)),
            )
            for group in ("all",) if text else ("all", "code"):
                counts[group][0] += killed
                counts[group][1] += 1
            if not killed and not text:
                survivors.append(name)
        (ka, ta), (kc, tc) = counts["all"], counts["code"]
        print(
            f"{path!s:<34} {f'{ka}/{ta}':>18} {100 * ka / max(ta, 1):>5.1f}%"
            f"   {f'{kc}/{tc}':>14} {100 * kc / max(tc, 1):>5.1f}%  {unchecked}"
        )
        if show_survivors:
            for name in survivors:
                print(f"# {name}: {status_by_exit_code[results[name]]}")
                print(get_diff_for_mutant(name, path=path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
