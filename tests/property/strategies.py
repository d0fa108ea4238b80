"""Hypothesis strategies the property tests share."""

from __future__ import annotations

from hypothesis import strategies as st

from suishen.protocol.codes import Identity

# Identities Identity accepts: every document type, ASCII letters and digits in the number (both
# cases), names of letters and spaces from the whole BMP and beyond (CJK extension B), 1-64.
identities = st.builds(
    Identity,
    idt=st.sampled_from(["RIC", "PP", "HMT", "FPR"]),
    idn=st.text("0123456789ABCDEFGHJKXabcz", min_size=1, max_size=32),
    nat=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    nm=st.text(
        st.characters(categories=["L", "Zs"], max_codepoint=0x2FFFF), min_size=1, max_size=64
    ).filter(lambda s: s.isprintable()),
    dob=st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10),
    st=st.sampled_from(["G", "Y", "R"]),
)
