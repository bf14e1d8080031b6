"""The crypto wallet's JSON API: ``/api/v1/chains``. Another customer's wallet is 404 here."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from bankwallet.chains import evm_signing, service
from bankwallet.chains.schemas import (
    AddressBookEntryCreate,
    AddressBookEntryRead,
    AddressBookRead,
    AddressList,
    AddressRead,
    BackupCheckAnswer,
    BackupCheckRead,
    BackupCheckResult,
    BroadcastIn,
    HoldingRead,
    MessageSign,
    MessageSignatureRead,
    MnemonicImport,
    NewWalletCreate,
    NodeList,
    NodeRead,
    OwnAddressRead,
    PinIn,
    PortfolioRead,
    PrivateKeyImport,
    RelayedRead,
    RevealRead,
    SendCreate,
    SendIn,
    SendPreviewRead,
    TransactionList,
    TransactionRead,
    TypedDataIn,
    TypedDataPreviewRead,
    TypedDataSign,
    TypedDataSignatureRead,
    WalletCreate,
    WalletCreated,
    WalletList,
    WalletRead,
)
from bankwallet.core import idempotency
from bankwallet.core.deps import DbSession, client_info
from bankwallet.identity.deps import Auth
from bankwallet.identity.service import RequestInfo

router = APIRouter(prefix="/api/v1/chains", tags=["chains"])
Info = Annotated[RequestInfo, Depends(client_info)]
NO_STORE = {"Cache-Control": "no-store"}


def chain_config(request: Request) -> service.ChainConfig:
    """Built once per app from its settings."""
    config = getattr(request.app.state, "chains_config", None)
    if config is None:
        config = service.ChainConfig.from_settings(request.app.state.settings)
        request.app.state.chains_config = config
    return config


Config = Annotated[service.ChainConfig, Depends(chain_config)]


@router.get("/wallets")
async def list_wallets(auth: Auth, session: DbSession) -> WalletList:
    views = await service.list_wallets(session, auth.user.id)
    return WalletList(wallets=[WalletRead.of(v) for v in views])


@router.post("/wallets", status_code=201, response_model=WalletCreated)
async def create_wallet(body: WalletCreate, auth: Auth, session: DbSession, config: Config,
                        info: Info) -> JSONResponse:
    """A new wallet (``kind: new``, needs a fresh second factor: the words come back once)
    or an imported one: ``mnemonic``, ``private_key`` or ``watch_only`` addresses."""
    user_id, mnemonic = auth.user.id, None
    if isinstance(body, NewWalletCreate):
        view, mnemonic = await service.create_wallet(
            session, auth, name=body.name, word_count=body.word_count, language=body.language,
            passphrase=body.passphrase.get_secret_value(), pin=body.pin.get_secret_value(),
            config=config, info=info)
    elif isinstance(body, MnemonicImport):
        view = await service.import_mnemonic(
            session, user_id, name=body.name, phrase=body.mnemonic.get_secret_value(),
            passphrase=body.passphrase.get_secret_value(), pin=body.pin.get_secret_value(),
            config=config, info=info)
    elif isinstance(body, PrivateKeyImport):
        view = await service.import_private_key(
            session, user_id, name=body.name, chain=body.chain,
            key_text=body.private_key.get_secret_value(), pin=body.pin.get_secret_value(),
            config=config, info=info)
    else:
        view = await service.import_watch_only(
            session, user_id, name=body.name,
            addresses=[(a.chain, a.address) for a in body.addresses], info=info)
    created = WalletCreated(**WalletRead.of(view).model_dump(),
                            mnemonic=list(mnemonic.words) if mnemonic else None)
    return JSONResponse(created.model_dump(mode="json"), status_code=201, headers=NO_STORE)


@router.get("/wallets/{wallet_id}")
async def get_wallet(wallet_id: uuid.UUID, auth: Auth, session: DbSession) -> WalletRead:
    return WalletRead.of(await service.get_wallet(session, auth.user.id, wallet_id))


@router.get("/wallets/{wallet_id}/addresses")
async def addresses(wallet_id: uuid.UUID, auth: Auth, session: DbSession) -> AddressList:
    view = await service.get_wallet(session, auth.user.id, wallet_id)
    return AddressList(addresses=[AddressRead.of(a) for a in view.addresses])


@router.post("/wallets/{wallet_id}/reveal", response_model=RevealRead)
async def reveal(wallet_id: uuid.UUID, body: PinIn, auth: Auth, session: DbSession,
                 config: Config, info: Info) -> JSONResponse:
    """The recovery phrase (or imported key): a fresh second factor and the PIN."""
    shown = await service.reveal(session, auth, wallet_id, pin=body.pin.get_secret_value(),
                                 config=config, info=info)
    read = RevealRead(mnemonic=list(shown.words) if shown.words else None,
                      language=shown.language, private_key=shown.private_key_hex)
    return JSONResponse(read.model_dump(mode="json"), headers=NO_STORE)


@router.post("/wallets/{wallet_id}/backup-checks", status_code=201)
async def start_backup_check(wallet_id: uuid.UUID, auth: Auth,
                             session: DbSession) -> BackupCheckRead:
    return BackupCheckRead.of(await service.start_backup_check(session, auth.user.id, wallet_id))


@router.post("/wallets/{wallet_id}/backup-checks/{check_id}")
async def answer_backup_check(wallet_id: uuid.UUID, check_id: uuid.UUID,
                              body: BackupCheckAnswer, auth: Auth, session: DbSession,
                              config: Config, info: Info) -> BackupCheckResult:
    wallet = await service.answer_backup_check(
        session, auth.user.id, wallet_id, check_id,
        words=[w.get_secret_value() for w in body.words], pin=body.pin.get_secret_value(),
        config=config, info=info)
    return BackupCheckResult(backed_up=wallet.backed_up_at is not None)


@router.get("/wallets/{wallet_id}/portfolio")
async def portfolio(wallet_id: uuid.UUID, auth: Auth, session: DbSession,
                    config: Config) -> PortfolioRead:
    holdings = await service.portfolio(session, auth.user.id, wallet_id, config=config)
    return PortfolioRead(wallet_id=wallet_id, chains=[HoldingRead.of(h) for h in holdings])


@router.post("/wallets/{wallet_id}/send/preview")
async def send_preview(wallet_id: uuid.UUID, body: SendIn, auth: Auth, session: DbSession,
                       config: Config) -> SendPreviewRead:
    """What a send would sign: recipient, amount, nonce, gas and the most it can cost."""
    plan = await service.plan_send(session, auth.user.id, wallet_id, chain=body.chain,
                                   to=body.to, amount_minor=body.amount_minor,
                                   token=body.token, config=config)
    return SendPreviewRead.of(plan)


@router.post("/wallets/{wallet_id}/send", status_code=201, response_model=TransactionRead)
async def send(request: Request, wallet_id: uuid.UUID, body: SendCreate, auth: Auth,
               session: DbSession, config: Config, info: Info) -> Response:
    """Sign with the PIN and broadcast; needs an ``Idempotency-Key``. ``status`` is
    ``pending`` once the network has it (``signed``: it is sent again shortly)."""
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    # The PIN is checked before the key is claimed: a wrong PIN is counted, and never
    # stored as this key's answer. The PIN is not part of the request's fingerprint.
    secret = await service.unlock(session, auth.user.id, wallet_id,
                                  body.pin.get_secret_value(), config=config, info=info)

    async def work() -> TransactionRead:
        row = await service.send(session, auth.user.id, wallet_id, chain=body.chain,
                                 to=body.to, amount_minor=body.amount_minor, token=body.token,
                                 secret=secret, idempotency_key=key, config=config,
                                 max_fee_wei=body.max_fee_wei, info=info)
        return TransactionRead.of(row)

    return await idempotency.run(request, session, scope=f"chains.send:{auth.user.id}",
                                 body=body.fingerprint_body(), work=work, status=201)


@router.get("/wallets/{wallet_id}/transactions")
async def transactions(wallet_id: uuid.UUID, auth: Auth, session: DbSession) -> TransactionList:
    rows = await service.list_transactions(session, auth.user.id, wallet_id)
    return TransactionList(transactions=[TransactionRead.of(r) for r in rows])


@router.get("/wallets/{wallet_id}/transactions/{tx_id}")
async def transaction(wallet_id: uuid.UUID, tx_id: uuid.UUID, auth: Auth, session: DbSession,
                      config: Config) -> TransactionRead:
    """The transaction, its receipt looked up first while it is open."""
    row = await service.get_transaction(session, auth.user.id, wallet_id, tx_id, config=config)
    return TransactionRead.of(row)


@router.post("/wallets/{wallet_id}/sign-message")
async def sign_message(wallet_id: uuid.UUID, body: MessageSign, auth: Auth, session: DbSession,
                       config: Config, info: Info) -> MessageSignatureRead:
    """EIP-191 ``personal_sign``."""
    await service.check_signing_wallet(session, auth.user.id, wallet_id)
    message = service.decode_message(body.message, body.encoding)
    secret = await service.unlock(session, auth.user.id, wallet_id,
                                  body.pin.get_secret_value(), config=config, info=info)
    signed = await service.sign_message(session, auth.user.id, wallet_id, message=message,
                                        secret=secret, info=info)
    return MessageSignatureRead(address=signed.address, signature=signed.signature)


@router.post("/wallets/{wallet_id}/sign-typed-data/preview")
async def typed_data_preview(wallet_id: uuid.UUID, body: TypedDataIn, auth: Auth,
                             session: DbSession) -> TypedDataPreviewRead:
    """What EIP-712 typed data asks to sign, flattened, with warnings (token allowances,
    unlimited amounts, no chain id)."""
    await service.check_signing_wallet(session, auth.user.id, wallet_id)
    return TypedDataPreviewRead.of(evm_signing.preview_typed_data(body.typed_data))


@router.post("/wallets/{wallet_id}/sign-typed-data")
async def sign_typed_data(wallet_id: uuid.UUID, body: TypedDataSign, auth: Auth,
                          session: DbSession, config: Config,
                          info: Info) -> TypedDataSignatureRead:
    await service.check_signing_wallet(session, auth.user.id, wallet_id)
    evm_signing.preview_typed_data(body.typed_data)  # refuse bad data before the PIN counts
    secret = await service.unlock(session, auth.user.id, wallet_id,
                                  body.pin.get_secret_value(), config=config, info=info)
    signed = await service.sign_typed_data(session, auth.user.id, wallet_id,
                                           typed_data=body.typed_data, secret=secret, info=info)
    return TypedDataSignatureRead(address=signed.signer, digest=signed.digest,
                                  signature=signed.signature)


@router.get("/address-book")
async def address_book(auth: Auth, session: DbSession) -> AddressBookRead:
    own, saved = await service.address_book(session, auth.user.id)
    return AddressBookRead(
        own=[OwnAddressRead(wallet_id=o.wallet_id, wallet_name=o.wallet_name, chain=o.chain,
                            address=o.address) for o in own],
        saved=[AddressBookEntryRead.of(e) for e in saved])


@router.post("/address-book", status_code=201)
async def add_address(body: AddressBookEntryCreate, auth: Auth,
                      session: DbSession) -> AddressBookEntryRead:
    entry = await service.add_address_book_entry(session, auth.user.id, chain=body.chain,
                                                 address=body.address, label=body.label)
    return AddressBookEntryRead.of(entry)


@router.delete("/address-book/{entry_id}", status_code=204)
async def remove_address(entry_id: uuid.UUID, auth: Auth, session: DbSession) -> Response:
    await service.remove_address_book_entry(session, auth.user.id, entry_id)
    return Response(status_code=204)


@router.get("/nodes")
async def nodes(auth: Auth, config: Config) -> NodeList:
    """Which chains' transactions signed offline the bank can relay (a node is configured)."""
    return NodeList(nodes=[NodeRead(chain=c, configured=config.relay_configured(c))
                           for c in service.RELAYED_CHAINS])


@router.post("/nodes/{chain}/broadcast")
async def broadcast(chain: str, body: BroadcastIn, auth: Auth, session: DbSession,
                    config: Config, info: Info) -> RelayedRead:
    """Relay a BTC, TRON or SOL transaction signed offline; 409
    ``chain_network_not_configured`` where the bank has no node for that chain. Sending the
    same bytes again answers the same txid (``already_known``)."""
    relayed = await service.relay(session, auth.user.id, chain=chain, signed=body.signed,
                                  config=config, info=info)
    return RelayedRead.of(relayed)


@router.get("/nodes/{chain}/transactions/{txid}")
async def relayed_transaction(chain: str, txid: str, auth: Auth,
                              config: Config) -> RelayedRead:
    """A relayed transaction's status as the node sees it (unknown to it: ``pending``)."""
    return RelayedRead.of(await service.relayed_status(chain=chain, txid=txid, config=config))
