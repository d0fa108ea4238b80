"""Reason codes: the one vocabulary for why a scan was not let through (DESIGN §3)."""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Every reason a code can be rejected, by verification or by site policy."""

    # Verification: the code itself.
    MALFORMED_PREFIX = "malformed_prefix"
    MALFORMED_BASE45 = "malformed_base45"
    MALFORMED_ZLIB = "malformed_zlib"
    OVERSIZE = "oversize"
    MALFORMED_COSE = "malformed_cose"
    UNSUPPORTED_ALG = "unsupported_alg"
    UNKNOWN_KID = "unknown_kid"
    KEY_NOT_VALID = "key_not_valid"
    ISSUER_NOT_TRUSTED = "issuer_not_trusted"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    VALIDITY_TOO_LONG = "validity_too_long"
    MALFORMED_CLAIMS = "malformed_claims"
    # Site policy.
    REPLAY = "replay"
    STATUS_RED = "status_red"
    STATUS_YELLOW = "status_yellow"
    WATCHLIST = "watchlist"
    NOT_REGISTERED = "not_registered"
    CAPACITY_FULL = "capacity_full"
    ANTI_PASSBACK = "anti_passback"
    MINOR_UNACCOMPANIED = "minor_unaccompanied"
    FORMAT_NOT_ACCEPTED = "format_not_accepted"
    NOT_INVITED = "not_invited"  # a building admitting visitors only by invitation
    OUTSIDE_HOURS = "outside_hours"  # outside the lane's or the roster group's time profile
    # The lane itself.
    LANE_BUSY = "lane_busy"  # the scan waited too long for a busy lane (or was dropped)
    GATE_DOWN = "gate_down"  # allowed, but the lane's gate is not connected: failed closed
    INTERNAL_ERROR = "internal_error"  # an unexpected fault in deciding: failed closed


VERIFICATION_REASONS = frozenset(
    {
        Reason.MALFORMED_PREFIX,
        Reason.MALFORMED_BASE45,
        Reason.MALFORMED_ZLIB,
        Reason.OVERSIZE,
        Reason.MALFORMED_COSE,
        Reason.UNSUPPORTED_ALG,
        Reason.UNKNOWN_KID,
        Reason.KEY_NOT_VALID,
        Reason.ISSUER_NOT_TRUSTED,
        Reason.BAD_SIGNATURE,
        Reason.NOT_YET_VALID,
        Reason.EXPIRED,
        Reason.VALIDITY_TOO_LONG,
        Reason.MALFORMED_CLAIMS,
    }
)
