"""The committed artifact matches its Solidity source and is a standard ERC-20's ABI."""

from __future__ import annotations

import hashlib
from importlib import resources

from bankwallet.connectors.chains.contracts import load_artifact


def test_artifact_was_compiled_from_the_committed_source() -> None:
    artifact = load_artifact("BankwalletToken")
    source = resources.files("bankwallet.connectors.chains.contracts").joinpath(
        artifact["sourceName"]).read_bytes()
    assert hashlib.sha256(source).hexdigest() == artifact["sourceSha256"], (
        "the .sol changed since the .json was compiled: run tools/compile_contracts.sh")
    assert artifact["bytecode"].startswith("0x60") and len(artifact["bytecode"]) > 1000


def test_artifact_has_the_erc20_interface() -> None:
    abi = load_artifact("BankwalletToken")["abi"]
    signatures = {f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"
                  for e in abi if e["type"] in ("function", "event")}
    assert {"name()", "symbol()", "decimals()", "totalSupply()", "balanceOf(address)",
            "transfer(address,uint256)", "approve(address,uint256)",
            "allowance(address,address)", "transferFrom(address,address,uint256)",
            "Transfer(address,address,uint256)",
            "Approval(address,address,uint256)"} <= signatures
