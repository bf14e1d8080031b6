"""Solidity sources and their compiled artifacts (see README.md; tools/compile_contracts.sh)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_artifact(contract_name: str) -> dict[str, Any]:
    """The compiled artifact: ``abi``, ``bytecode`` (0x hex), ``sourceSha256``, ``compiler``."""
    assert contract_name.isidentifier(), contract_name
    text = resources.files(__name__).joinpath(f"{contract_name}.json").read_text("utf-8")
    artifact: dict[str, Any] = json.loads(text)
    assert artifact["contractName"] == contract_name
    return artifact
