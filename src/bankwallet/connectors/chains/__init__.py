"""Blockchain connectors: one client per chain family behind ``base.ChainClient``.

``evm.EvmJsonRpcClient`` speaks to any EVM node over JSON-RPC; ``sandbox_chain`` is a local EVM
node for development and tests (``bankwallet sandbox-chain``, extra ``chain-sandbox``).
"""
