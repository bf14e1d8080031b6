"""Blockchain connectors: one client per chain family behind ``base.ChainClient`` (EVM) or its
broadcasting half ``base.BroadcastClient`` (the others).

``evm.EvmJsonRpcClient`` speaks to any EVM node over JSON-RPC; ``bitcoin.BitcoinCoreClient``
to Bitcoin Core's JSON-RPC, ``tron.TronHttpClient`` to a TRON full node's HTTP API and
``solana.SolanaRpcClient`` to Solana's JSON-RPC, relaying transactions signed offline (and
reading TRC-20 and SPL balances); ``aptos.AptosRestClient`` and ``eos.EosChainClient`` read
APT and EOS balances from an Aptos fullnode and an Antelope node (``sandbox_nodes apt|eos``).
``sandbox_chain`` is a local EVM node for development and tests (``bankwallet sandbox-chain``,
extra ``chain-sandbox``); ``sandbox_nodes`` serves checking Bitcoin, TRON and Solana nodes
(``python -m bankwallet.connectors.chains.sandbox_nodes btc|tron|sol --port N``).
``substrate.SubstrateRpcClient`` reads Polkadot and Kusama balances (``System.Account``) from a
Substrate node's JSON-RPC; ``sandbox_substrate`` serves one
(``python -m bankwallet.connectors.chains.sandbox_substrate --chain DOT|KSM --port N``).
"""
