"""The in-toto Statement we sign: built with in-toto-attestation, the predicate verbatim."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

from release.attest.sign import statement
from release.digest import Digest
from release.errors import UsageError

DIGEST = Digest("sha256:" + "ab" * 32)


def test_statement_bytes_are_the_canonical_in_toto_v1_json() -> None:
    pred = {"n": 1, "x": 1.0, "big": 2**60, "s": "grüße", "l": [0.5, None, True], "o": {}}
    got = statement("registry.example/app", DIGEST, "https://example.com/p/v1", pred)
    want = (
        '{"_type":"https://in-toto.io/Statement/v1",'
        '"predicate":{"big":1152921504606846976,"l":[0.5,null,true],"n":1,"o":{},'
        '"s":"grüße","x":1.0},'
        '"predicateType":"https://example.com/p/v1",'
        '"subject":[{"digest":{"sha256":"' + "ab" * 32 + '"},"name":"registry.example/app"}]}'
    ).encode()
    assert got == want


def test_the_library_reads_our_statement_back_as_valid() -> None:
    raw = statement("app", DIGEST, "https://example.com/p/v1", {"passed": True, "n": 3})
    pb = json_format.Parse(raw, statement_pb2.Statement())  # type: ignore[attr-defined]
    st = Statement.copy_from_pb(pb)
    st.validate()
    assert st.pb.subject[0].digest["sha256"] == "ab" * 32
    assert st.pb.predicate_type == "https://example.com/p/v1"
    # integers stay integers in what we sign (a Struct would have made 3 -> 3.0)
    assert json.loads(raw)["predicate"]["n"] == 3 and b'"n":3' in raw


def test_an_empty_predicate_or_type_is_refused() -> None:
    with pytest.raises(UsageError, match="Predicate object required"):
        statement("app", DIGEST, "https://example.com/p/v1", {})
    with pytest.raises(UsageError, match="Predicate type required"):
        statement("app", DIGEST, "", {"a": 1})
