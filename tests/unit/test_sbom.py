"""SBOM licences: SPDX `license.id` or one `expression` wherever the licence is SPDX
(Debian copyright-format short names translated), a free-text `license.name` only for
what is not; every shape valid CycloneDX 1.6. The copyright files below are excerpts of
the real ones in Debian bookworm (/usr/share/doc/NAME/copyright), cut short."""

from __future__ import annotations

import json
from typing import Any

import pytest

from release import sbom
from release.image.fs import MergedFS

DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"

#: libexpat1: an SPDX id as it is
EXPAT = (
    DEP5
    + """Upstream-Name: expat

Files: *
Copyright:
 1998-2000 Thai Open Source Software Center Ltd and Clark Cooper
License: MIT

Files: debian/*
Copyright:
 2001      Ardo van Rangelrooij <ardo@debian.org>
License: MIT

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining
"""
)

#: liblz4-1: Debian's spelling of an SPDX id, a `+` suffix and an `or` expression
LZ4 = (
    DEP5
    + """Upstream-Name: lz4
Source: https://github.com/lz4/lz4

Files: *
Copyright: 2011-2020, Yann Collet.
License: BSD-2-clause

Files: programs/bench.c
 programs/bench.h
Copyright: Yann Collet 2011-2020
License: GPL-2+

Files: tests/abiTest.c
Copyright: 2020, Yann Collet.
License: GPL-2+ or BSD-2-clause

License: GPL-2+
 This program is free software; you can redistribute it and/or modify
"""
)

#: libdb5.3: an `and` expression (a Debian short name, and Sleepycat as SPDX spells it)
DB = (
    DEP5
    + """Upstream-Name: Berkeley DB

Files: *
Copyright: 1990-2011, Oracle and/or its affiliates.
License: Sleepycat and BSD-3-clause

Files: lang/perl/*
Copyright: 1997-2011, Paul Marquess.
License: GPL-1+ or Artistic, and Expat
"""
)

#: libsqlite3-0: a free-text name (public-domain is no SPDX licence) beside an SPDX id
SQLITE = (
    DEP5
    + """Upstream-Name: sqlite3

Files: *
Copyright: D. Richard Hipp <drh@hwaci.com>
License: public-domain

Files: debian/*
Copyright: 2006-     Laszlo Boszormenyi (GCS) <gcs@debian.org>,
License: GPL-2+
"""
)

#: libgpg-error0: an `or` expression beside a licence that is not SPDX
GPG_ERROR = (
    DEP5
    + """Upstream-Name: libgpg-error

Files: *
Copyright: 2001-2004, 2010, 2012-2018, g10 Code GmbH
License: LGPL-2.1+

Files: src/estream-printf.h src/estream-printf.c src/estream.c
Copyright: 2004-2012, 2014-2017 g10 Code GmbH
License: LGPL-2.1+ or BSD-3-clause

Files: src/gpg-error-config.in
Copyright: 1999, 2002, 2003 Free Software Foundation, Inc.
License: g10-permissive
"""
)

#: libpam0g: a GPL without a version ("any version ever published": 1.0 or later)
PAM = (
    DEP5
    + """Upstream-Name: Linux-PAM

Files: *
Copyright:
 Copyright (C) 1994, 1995, 1996 Olaf Kirch, <okir@monad.swb.de>
License: BSD-3-clause or GPL
 Unless otherwise *explicitly* stated the following text describes the

Files: modules/pam_rhosts/pam_rhosts.c
Copyright: 1983, 1993, 1994 The Regents of the University of California.
License: BSD-4-clause
"""
)

#: libc6: not machine-readable
LIBC = """This is the Debian prepackaged version of the GNU C Library version 2.23.

It was put together by the GNU Libc Maintainers <debian-glibc@lists.debian.org>
"""


def _packages(copyrights: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """`licenses` of each dpkg package of a merged filesystem holding these copyright files."""
    status = "\n".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n"
        for name in copyrights
    )
    data = {f"usr/share/doc/{n}/copyright": t.encode() for n, t in copyrights.items()}
    data[sbom.DPKG_STATUS] = status.encode()
    data["etc/os-release"] = b'ID=debian\nVERSION_ID="12"\n'
    _, comps, _ = sbom.os_packages(MergedFS(layers=[], data=data))
    return {c["name"]: c.get("licenses", []) for c in comps}


def _valid(licenses: list[dict[str, Any]]) -> None:
    """One component with these `licenses` in a CycloneDX 1.6 document: schema-valid."""
    sbom.validate(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "version": 1,
            "components": [{"type": "library", "name": "x", "licenses": licenses}],
        }
    )


def test_debian_copyright_licences_are_spdx_where_they_can_be() -> None:
    got = _packages(
        {
            "libexpat1": EXPAT,
            "liblz4-1": LZ4,
            "libdb5.3": DB,
            "libsqlite3-0": SQLITE,
            "libgpg-error0": GPG_ERROR,
            "libpam0g": PAM,
            "libc6": LIBC,
        }
    )
    assert got == {
        "libexpat1": [{"license": {"id": "MIT"}}],
        # every stanza applies: the terms ANDed, each `or` choice kept
        "liblz4-1": [
            {
                "expression": "BSD-2-Clause AND GPL-2.0-or-later AND (GPL-2.0-or-later OR BSD-2-Clause)"
            }
        ],
        # Debian's `, and` binds loosest; Artistic is Perl's, Expat is MIT
        "libdb5.3": [
            {
                "expression": "((GPL-1.0-or-later OR Artistic-1.0-Perl) AND MIT) "
                "AND (Sleepycat AND BSD-3-Clause)"
            }
        ],
        "libsqlite3-0": [
            {"license": {"id": "GPL-2.0-or-later"}},
            {"license": {"name": "public-domain"}},
        ],
        # no expression beside a name (CycloneDX 1.6): the ids the `or` names, then the name
        "libgpg-error0": [
            {"license": {"id": "BSD-3-Clause"}},
            {"license": {"id": "LGPL-2.1-or-later"}},
            {"license": {"name": "g10-permissive"}},
        ],
        "libpam0g": [{"expression": "(BSD-3-Clause OR GPL-1.0-or-later) AND BSD-4-Clause"}],
        "libc6": [],
    }
    for licenses in got.values():
        if licenses:
            _valid(licenses)


@pytest.mark.parametrize(
    ("terms", "want"),
    [
        (["MIT"], [{"license": {"id": "MIT"}}]),
        (["apache-2.0"], [{"license": {"id": "Apache-2.0"}}]),
        (["MIT OR AFL-2.1"], [{"expression": "MIT OR AFL-2.1"}]),
        # Debian copyright-format short names
        (
            ["GPL-2+", "Expat"],
            [{"license": {"id": "GPL-2.0-or-later"}}, {"license": {"id": "MIT"}}],
        ),
        (
            ["LGPL-2.1+", "BSD-3-clause"],
            [{"license": {"id": "BSD-3-Clause"}}, {"license": {"id": "LGPL-2.1-or-later"}}],
        ),
        (
            ["Apache-2", "Artistic-2"],
            [{"license": {"id": "Apache-2.0"}}, {"license": {"id": "Artistic-2.0"}}],
        ),
        (
            ["GFDL-NIV-1.3", "GFDL-NIV-1.3+", "GFDL-1.2+"],
            [
                {"license": {"id": "GFDL-1.2-or-later"}},
                {"license": {"id": "GFDL-1.3-no-invariants-only"}},
                {"license": {"id": "GFDL-1.3-no-invariants-or-later"}},
            ],
        ),
        # no version: the licence's own "any version ever published"
        (
            ["GPL", "LGPL"],
            [{"license": {"id": "GPL-1.0-or-later"}}, {"license": {"id": "LGPL-2.0-or-later"}}],
        ),
        (["Perl"], [{"expression": "GPL-1.0-or-later OR Artistic-1.0-Perl"}]),
        (
            ["GPL-1+ or Artistic", "GPL-2"],
            [{"expression": "(GPL-1.0-or-later OR Artistic-1.0-Perl) AND GPL-2.0-only"}],
        ),
        # parentheses kept: `and` would bind tighter without them
        (
            ["(GPL-2+ or Artistic) and MIT"],
            [{"expression": "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND MIT"}],
        ),
        # not SPDX: free text, only then
        (
            ["public-domain", "MIT"],
            [{"license": {"id": "MIT"}}, {"license": {"name": "public-domain"}}],
        ),
        (
            ["GPL-2+ with Autoconf exception"],
            [{"license": {"name": "GPL-2+ with Autoconf exception"}}],
        ),
        (["BSD-3-clause and/or GPL-3+"], [{"license": {"name": "BSD-3-clause and/or GPL-3+"}}]),
        (
            ["GPL-1+ or Artistic, and Unicode"],
            [{"license": {"name": "GPL-1+ or Artistic, and Unicode"}}],
        ),
        # an expression beside free text: its ids, then the name (never an expression as a name)
        (
            ["Sleepycat and BSD-3-clause", "TCL-like"],
            [
                {"license": {"id": "BSD-3-Clause"}},
                {"license": {"id": "Sleepycat"}},
                {"license": {"name": "TCL-like"}},
            ],
        ),
    ],
)
def test_licences_are_spdx_where_they_can_be(terms: list[str], want: list[dict[str, Any]]) -> None:
    got = sbom.licence_entries(terms)
    assert got == want
    _valid(got)


def test_no_name_is_spdx() -> None:
    """Whatever the terms, a `license.name` is never an SPDX id or expression."""
    from cyclonedx.spdx import fixup_id, is_expression

    terms = ["GPL", "Expat or GPL-1+ or Artistic", "Ms-PL", "MIT/X11", "BSL-1", "permissive"]
    for entry in sbom.licence_entries(terms):
        name = entry.get("license", {}).get("name")
        assert name is None or not (fixup_id(name) or is_expression(name)), name
    assert json.dumps(sbom.licence_entries(terms)) == json.dumps(sbom.licence_entries(terms[::-1]))
