#!/usr/bin/env bash
# Recompile the Solidity contracts in src/bankwallet/connectors/chains/contracts/ into the JSON
# artifacts committed beside them (ABI + bytecode), so tests and the app never need Node.
#
# Needs node and npm, and reaches only the npm registry: solc-js (the `solc` package, a
# WebAssembly build of the real compiler) is installed into a throw-away directory, never into
# the repository. Usage: tools/compile_contracts.sh   (then commit the changed *.json)
set -euo pipefail

SOLC_VERSION="0.8.37"  # pinned: a new version changes the bytecode
EVM_VERSION="paris"    # no PUSH0 etc., so the bytecode also runs on chains behind mainnet
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONTRACTS_DIR="$ROOT/src/bankwallet/connectors/chains/contracts"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm init -y >/dev/null \
   && npm install --silent --no-audit --no-fund "solc@$SOLC_VERSION" >/dev/null)

cat >"$WORK/compile.js" <<'JS'
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require("solc");

const [contractsDir, evmVersion] = process.argv.slice(2);
const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion,
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
for (const file of fs.readdirSync(contractsDir).filter((f) => f.endsWith(".sol")).sort()) {
  const source = fs.readFileSync(path.join(contractsDir, file), "utf8");
  const input = { language: "Solidity", sources: { [file]: { content: source } }, settings };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);
  for (const [name, contract] of Object.entries(output.contracts[file])) {
    const artifact = {
      contractName: name,
      sourceName: file,
      sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
      compiler: { name: "solc", version: solc.version(), settings: {
        optimizer: settings.optimizer, evmVersion } },
      abi: contract.abi,
      bytecode: "0x" + contract.evm.bytecode.object,
      deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
    };
    const out = path.join(contractsDir, `${name}.json`);
    fs.writeFileSync(out, JSON.stringify(artifact, null, 2) + "\n");
    console.log(`wrote ${path.relative(process.cwd(), out)} (solc ${solc.version()})`);
  }
}
JS

NODE_PATH="$WORK/node_modules" node "$WORK/compile.js" "$CONTRACTS_DIR" "$EVM_VERSION"
