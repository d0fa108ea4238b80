"""Identity documents: PRC identity numbers (:mod:`.cnid`) and ICAO 9303 MRZs (:mod:`.mrz`).

Pure functions over text; expected bad input yields a typed rejection value.
"""

from suishen.protocol.identity.cnid import (
    CnidNumber,
    CnidReason,
    CnidRejection,
    IdKind,
    age_at,
    cnid_check_digit,
    parse_cnid,
    upgrade_15_to_18,
)
from suishen.protocol.identity.mrz import (
    Mrz,
    MrzCheck,
    MrzFormat,
    MrzReason,
    MrzRejection,
    mrz_check_digit,
    parse_mrz,
)

__all__ = [
    "CnidNumber",
    "CnidReason",
    "CnidRejection",
    "IdKind",
    "Mrz",
    "MrzCheck",
    "MrzFormat",
    "MrzReason",
    "MrzRejection",
    "age_at",
    "cnid_check_digit",
    "mrz_check_digit",
    "parse_cnid",
    "parse_mrz",
    "upgrade_15_to_18",
]
