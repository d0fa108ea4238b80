"""Mutation score per module from mutmut's results (`make mutate` runs it after mutmut).

    python -m bench.mutation_score [--survivors]

Reads mutants/**/*.meta (run from the project root, after `mutmut run`) and prints, per
mutated module, killed/total with and without message-text mutants: mutants that only change
the text of an error message or rejection detail (a literal or f-string argument of an error
constructor, or a detail= argument), which no test should pin word for word. Timeouts and
type-check catches count as killed; "no tests" and survivors do not; unchecked mutants are
left out and reported. --survivors lists the surviving non-text mutants with their diffs.
"""

from __future__ import annotations

import ast
import difflib
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
# Calls whose arguments (from the given position on, or only that one) are message text.
MESSAGE_ARGS = {
    "_bad_claims": slice(0, None),
    "_malformed": slice(0, None),
    "_fail": slice(0, None),
    "ValueError": slice(0, None),
    "TypeError": slice(0, None),
    "DecodeError": slice(1, None),  # (reason, message)
    "CodeRejected": slice(1, None),
    "_time_claim": slice(2, 3),  # (claims, label, name): name only words the message
}
MESSAGE_KEYWORDS = {"detail", "message"}


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}
    return [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]


Span = tuple[tuple[int, int], tuple[int, int]]  # (line, col) start and end


def _message_spans(source: str) -> list[Span]:
    """Where `source` holds error messages or rejection details: the message arguments of
    error constructors, detail= / message= keyword values, and values assigned to detail."""
    spans: list[Span] = []

    def mark(node: ast.expr) -> None:
        end = (node.end_lineno or node.lineno, node.end_col_offset or 0)
        spans.append(((node.lineno, node.col_offset), end))

    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Tuple)
            and isinstance(node.value, ast.Tuple)
        ):  # reason, detail = Reason.X, "text"
            for target, value in zip(node.targets[0].elts, node.value.elts, strict=False):
                if isinstance(target, ast.Name) and target.id in MESSAGE_KEYWORDS:
                    mark(value)
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        for arg in node.args[MESSAGE_ARGS.get(name, slice(0))]:
            mark(arg)
        for keyword in node.keywords:
            if keyword.arg in MESSAGE_KEYWORDS:
                mark(keyword.value)
    return spans


def is_text_mutant(original: str, mutant: str) -> bool:
    """True if `mutant` only changes message expressions of `original` (their text, or the
    whole message replaced by another value), and leaves every other token alone."""
    try:
        a, b = _tokens(original), _tokens(mutant)
        spans = _message_spans(original)
    except (tokenize.TokenError, SyntaxError):
        return False

    def inside(token: tokenize.TokenInfo) -> bool:
        return any(start <= token.start and token.end <= end for start, end in spans)

    matcher = difflib.SequenceMatcher(
        a=[t.string for t in a], b=[t.string for t in b], autojunk=False
    )
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    return bool(changes) and all(
        i1 < i2 and all(inside(t) for t in a[i1:i2]) for _, i1, i2, _, _ in changes
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
