"""Published test vectors, each with where it comes from. Never computed here."""

ABANDON_ABOUT = ("abandon abandon abandon abandon abandon abandon abandon abandon abandon "
                 "abandon abandon about")
# trustwallet/wallet-core tests (HDWalletTests.cpp, TWHDWalletTests.cpp, HDWalletTests.swift).
RIPPLE = ("ripple scissors kick mammal hire column oak again sun offer wealth tomorrow wagon "
          "turn fatal")
# trustwallet/wallet-core tests/common/Keystore/StoredKeyTests.cpp
TEAM_ENGINE = "team engine square letter hero song dizzy scrub tornado fabric divert saddle"
# trustwallet/wallet-core tests/chains/Solana/TWSolanaAddressTests.cpp
SHOOT_ISLAND = "shoot island position soft burden budget tooth cruel issue economy destroy above"

# trezor/python-mnemonic vectors.json, passphrase "TREZOR": (entropy, mnemonic, seed).
TREZOR_ENGLISH = [
    ("00000000000000000000000000000000", ABANDON_ABOUT,
     "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c9"
     "2f2cf141630c7a3c4ab7c81b2f001698e7463b04"),
    ("7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
     "legal winner thank year wave sausage worth useful legal winner thank yellow",
     "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937"
     "a1c1069be3a3a5bd381ee6260e8d9739fce1f607"),
    ("ffffffffffffffffffffffffffffffff", "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
     "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6"
     "f15b11c61dee327651a14c34e18231052e48c069"),
    ("8080808080808080808080808080808080808080808080808080808080808080",
     "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount "
     "doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless",
     "c0c519bd0e91a2ed54357d9d1ebef6f5af218a153624cf4f2da911a0ed8f7a09e2ef61af0aca007096df4300"
     "22f7a2b6fb91661a9589097069720d015e4e982f"),
    ("68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c",
     "hamster diagram private dutch cause delay private meat slide toddler razor book happy "
     "fancy gospel tennis maple dilemma loan word shrug inflict delay length",
     "64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d"
     "415665b8a9030c9ec653d75e65f847d8fc1fc440"),
]
TREZOR_CHINESE = [
    ("00000000000000000000000000000000", "的 的 的 的 的 的 的 的 的 的 的 在",
     "7f7c7f91ef81f0fb6a3b95b346c50e6472c1d554f8ba90637bad8afce4a4de87c322c1acafa2f6f5e9a8f9b2"
     "d2c40e9d389efdc2adbe4445c21a0939fb39e91f"),
    ("80808080808080808080808080808080", "壤 对 据 人 三 谈 我 表 壤 对 据 不",
     "07b6eada2601141ef9748bdf5af296a134f0f9215a946813b84338dcfba93c8247b0c3429a91e0a1b85a93bd"
     "9f1275a9524acecadc9b516c3cf4c8990f44052c"),
    ("7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
     "枪 疫 霉 尝 俩 闹 饿 贤 枪 疫 霉 尝 俩 闹 饿 贤 枪 疫 霉 尝 俩 闹 饿 搭",
     "b1eb831927f1c488e233725f9c409dd9bdb9342324393fa56d958e8842623d222510c322f5ba2899428ae08e"
     "ce8bd87788748c67bdfa73588669ab816c5f3555"),
]

# The private key 0x46..46 across chains: wallet-core tests/common/CoinAddressDerivationTests.cpp
KEY_46 = "46" * 32
KEY_46_ADDRESSES = {
    "ETH": "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F",
    "BSC": "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F",
    "POLYGON": "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F",
    "OKX": "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F",
    "BTC": "bc1qhkfq3zahaqkkzx5mjnamwjsfpq2jk7z00ppggv",
    "EOS": "EOS5TrYnZP1RkDSUMzBY4GanCy6AP68kCMdkAb5EACkAwkdgRLShz",
    "SOL": "H4JcMPicKkHcxxDjkyyrLoQj7Kcibd9t815ak4UvTr9M",
    "TRON": "TQLCsShbQNXMTVCjprY64qZmEA4rBarpQp",
    "APT": "0xce2fd04ac9efa74f17595e5785e847a2399d7e637f5e8179244f76191f653276",
}
# wallet-core derives Polkadot and Kusama with ed25519 keys.
KEY_46_ED25519_ADDRESSES = {
    "DOT": "16PpFrXrC6Ko3pYcyMAx6gPMp3mFFaxgyYMt4G5brkgNcSz8",
    "KSM": "Hy8mqcexg5FMwMYnQvzrUvD723qMxDjMRU9HdNCnTsMAypY",
}

# EIP-712's example (the "Mail" message), signed with keccak256("cow").
EIP712_MAIL = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
               "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}
EIP712_MAIL_DIGEST = "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
EIP712_MAIL_SIGNATURE = ("0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
                         "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
                         "1c")
EIP712_COW_ADDRESS = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"

# EIP-155's example: nonce 9, 20 gwei, 21000 gas, to 0x35..35, 1 ether, chain 1, key 0x46..46.
EIP155_TX = {"nonce": 9, "gasPrice": 20 * 10**9, "gas": 21000,
             "to": "0x3535353535353535353535353535353535353535", "value": 10**18,
             "data": "0x", "chainId": 1}
EIP155_SIGNED = ("0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3"
                 "a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276"
                 "a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83")
