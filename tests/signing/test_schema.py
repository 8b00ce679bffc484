"""Our ML-DSA bundles validate against the OMS v1.0 JSON schemas (tests/vectors/oms-schemas, with provenance)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import qsafe
from qsafe import keys

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

SCHEMAS = VECTORS / "oms-schemas" / "v1.0"


def _validator(name: str) -> Draft202012Validator:
    docs = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
    )
    return Draft202012Validator(docs[name], registry=registry)


@pytest.mark.parametrize("alg", ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87", "ml-dsa-65-ed25519"])
def test_bundle_and_statement_validate(model_dir: Path, alg: str) -> None:
    qsafe.sign(model_dir, keys.generate(alg))
    bundle = json.loads((model_dir / "model.sig").read_text())
    _validator("bundle.schema.json").validate(bundle)
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    _validator("statement.schema.json").validate(statement)
    resources = statement["predicate"]["resources"]
    assert any("annotations" in r for r in resources)  # tensor digests ride along, schema-valid


def test_schema_is_not_vacuous(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    statement = json.loads(base64.b64decode(json.loads((model_dir / "model.sig").read_text())["dsseEnvelope"]["payload"]))
    statement["predicate"]["extra"] = 1
    assert list(_validator("statement.schema.json").iter_errors(statement))
