"""Licence ids: the SPDX identifiers datasets use most, and ``LicenseRef-…`` for any other.

A short list shipped with dshub rather than the full SPDX list (~600 ids, and a parser
of licence expressions, in the ``license-expression`` package): a dataset's licence is
one id nearly always, the common ones are few and stable, and a licence that is not
here can still be given as ``LicenseRef-<name>``, as SPDX itself provides.
"""

from __future__ import annotations

import difflib
import re

COMMON_IDS = (
    "CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0", "CC-BY-3.0", "CC-BY-SA-3.0", "CC-PDDC", "ODbL-1.0", "ODC-By-1.0", "PDDL-1.0",
    "CDLA-Permissive-1.0", "CDLA-Permissive-2.0", "CDLA-Sharing-1.0", "OGL-UK-3.0", "etalab-2.0",
    "NLOD-2.0", "DL-DE-BY-2.0", "DL-DE-ZERO-2.0", "MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause",
    "0BSD", "ISC", "Zlib", "BSL-1.0", "MPL-2.0", "EPL-2.0", "Artistic-2.0", "OFL-1.1", "Unlicense",
    "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "LGPL-2.1-only",
    "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "AGPL-3.0-only", "AGPL-3.0-or-later",
)
_BY_LOWER = {i.lower(): i for i in COMMON_IDS}
_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]{1,80}")


def check_license(text: str) -> str:
    """The SPDX id ``text`` names, in its canonical spelling; ValueError saying what would be valid."""
    value = text.strip()
    if _REF.fullmatch(value):
        return value
    found = _BY_LOWER.get(value.lower())
    if found:
        return found
    close = difflib.get_close_matches(value.lower(), list(_BY_LOWER), n=3, cutoff=0.6)
    maybe = f"did you mean {', '.join(_BY_LOWER[c] for c in close)}? " if close else ""
    raise ValueError(
        f"unknown licence {text!r}: {maybe}give an SPDX id such as CC-BY-4.0, CC0-1.0, ODbL-1.0 or MIT, "
        "or LicenseRef-<name> for another licence"
    )
