"""`/v1/keys`: the admin creates, lists and revokes API keys over HTTP, like `ragbridge keys`."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ragbridge.api.deps import get_store
from ragbridge.api.security import require_admin
from ragbridge.errors import NotFound
from ragbridge.service.api_keys import create_key
from ragbridge.store.base import Store

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[Depends(require_admin)])


class KeyCreate(BaseModel):
    """A new key's name, collection scope (omit for all) and per-minute limits (omit: none)."""

    name: str = Field(min_length=1, max_length=64)
    collections: list[str] | None = None
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)


class KeyInfo(BaseModel):
    """A key as listed (read from its `ApiKeyRecord`): never the key itself, never its hash."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    collections: list[str] | None
    rpm: int | None
    tpm: int | None
    created_at: float
    revoked: bool


class CreatedKey(KeyInfo):
    """A new key, with its secret: shown this once only."""

    key: str


class KeyList(BaseModel):
    object: str = "list"
    data: list[KeyInfo]


class RevokedKey(BaseModel):
    name: str
    revoked: bool = True


@router.post("", status_code=201)
async def create(body: KeyCreate, store: Store = Depends(get_store)) -> CreatedKey:
    """Create a key; the response is the only place its secret ever appears."""
    new = await create_key(store, **body.model_dump())
    return CreatedKey(**KeyInfo.model_validate(new.record).model_dump(), key=new.secret)


@router.get("")
async def list_keys(store: Store = Depends(get_store)) -> KeyList:
    """Every key, live and revoked."""
    return KeyList(data=[KeyInfo.model_validate(r) for r in await store.list_api_keys()])


@router.delete("/{name}")
async def revoke(name: str, store: Store = Depends(get_store)) -> RevokedKey:
    """Revoke a key at once; requests with it get 401 from now on."""
    if not await store.revoke_api_key(name):
        raise NotFound(f"No live API key named '{name}'.", param="name", code="not_found")
    return RevokedKey(name=name)
