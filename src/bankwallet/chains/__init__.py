"""Multi-chain crypto wallet keys: mnemonics, derivation, addresses, signing, PIN sealing.

Pure functions without a database; services that store wallets build on these.
"""
