"""Checkpoints in fewer bytes: values deflated against a dictionary of the run state's own
shape (and short channel versions, agentrt.store.versions).

SqliteSaver writes every channel's whole value into every checkpoint (a superstep's
checkpoint repeats the goal, the principal, the budget, the usage...), with a 49-character
version per channel and per node that ran. Most of those bytes are the same few key names
and versions again; the preset dictionary below holds them, so a checkpoint deflates to
about a quarter of its msgpack (bench/storage.py measures it).

Both read back what SqliteSaver wrote before: a value stored as plain msgpack loads as it
always did, and a version SqliteSaver made sorts below every version made here.
"""

from __future__ import annotations

import zlib
from typing import Any

from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

__all__ = ["CODEC", "CompactSerializer", "Deflate"]

CODEC = "z1"
"""The name stored after a value's type (``msgpack+z1``): deflate with ``_DICTIONARY``.
A value written with it can only be read with that dictionary, byte for byte: a new
dictionary is a new name, and this one stays readable."""

# msgpack of the run state's usual keys and values (RunState, Usage, Budget, Plan,
# PolicyVerdict, Outcome, events; LangGraph's checkpoint fields and channel names), the
# most frequent last, where deflate reaches them in fewest bits. Frozen: see CODEC.
_DICTIONARY = (
    b"\xdc\x00\x1f\xa7pending\xa7running\xb1awaiting_approval\xadwaiting_retry\xa9succeeded"
    b"\xa6failed\xa9cancelled\xafbudget_exceeded\xacinvalid_args\xa6denied\xa8rejected\xa7expi"
    b"red\xa5error\xa9transient\xa9permanent\xa7timeout\xa7skipped\xb0require_approval\xa4deny"
    b"\xa8approval\xaepolicy_changed\xa6finish\xa6commit\xabbudget_gate\xa9reconcile\xad__inte"
    b"rrupt__\xb2branch:to:approval\xb0branch:to:commit\xb5branch:to:budget_gate\xb3branch:to:"
    b"reconcile\xb0branch:to:finish\x86\xa4stop\x82\xa6status\xa6failed\xa6reason\xa0\xabover_"
    b"budget\xc0\xa4gate\x91\x82\xa6action\x80\xa7verdict\x80\xa8answered\xa0\xa6output\xc0"
    b"\xa5error\xc0\x81\xa6budget\x88\xaamax_tokens\xc0\xacmax_cost_usd\xc0\xaemax_tool_calls"
    b"\xc0\xa9max_steps\xc0\xb2max_active_seconds\xc0\xa8deadline\xc0\xa9on_exceed\xc0\xadappr"
    b"over_role\xc0\x81\xa9principal\x84\xa2id\xa0\xa5roles\x90\xa6tenant\xc0\xa6scopes\x90"
    b"\x84\xa1v\x04\xa2ts\xd9 2026-01-01T00:00:00.000000+00:00\xa2id\xd9$1f000000-0000-6000-80"
    b"00-000000000000\xaechannel_values\x82\xa9thread_id\xd9 00000000000000000000000000000000"
    b"\xa4goal\xa0\x83\xa9__input__\x80\xa9__start__\x81\xa9__start__\xa2a1\xb0updated_channel"
    b"s\x9c\xaebranch:to:plan\xb0branch:to:policy\xaebranch:to:tool\xb0branch:to:verify\xa6cur"
    b"sor\xa6events\xa7outcome\xa4plan\xa5route\xa6status\xa5usage\xa7verdict\x82\xa4type\xa4p"
    b"lan\xa4data\x83\xa8revision\x01\xa7content\xa0\xa7actions\x91\x84\xa7step_id\xa31.0\xa7c"
    b"all_id\xa8call_1_0\xa4tool\xa0\xa4args\x80\x81\xa4plan\x84\xa8revision\x01\xa7content"
    b"\xa0\xa7actions\x91\x84\xa7step_id\xa31.0\xa7call_id\xa8call_1_0\xa4tool\xa0\xa4args\x80"
    b"\xa5final\xc0\x83\xa4type\xabobservation\xa7step_id\xa31.0\xa4data\x85\xa7step_id\xa31.0"
    b"\xa7call_id\xa8call_1_0\xa4tool\xa0\xa4kind\xa2ok\xa7content\xa0\x81\xa7outcome\x86\xa7s"
    b"tep_id\xa31.0\xa5phase\xa7preview\xa4kind\xa2ok\xa7content\xa0\xa4data\x80\xa7retries"
    b"\x00\x83\xa4type\xa6policy\xa7step_id\xa31.0\xa4data\x80\x81\xa7verdict\x8d\xa7step_id"
    b"\xa31.0\xa7outcome\xa5allow\xa7rule_id\xc0\xa7matched\x90\xa6reason\xd9,no rule matched;"
    b" the policy default is allow\xadrequired_role\xc0\xaerequired_roles\x90\xa9four_eyes\xc2"
    b"\xaaexpires_in\xc0\xa9on_expiry\xa6reject\xabescalate_to\xc0\xa6policy\xa9allow-all\xaep"
    b"olicy_version\xb00000000000000000\x81\xb0channel_versions\xde\x00\x19\xa9__start__\xa2a1"
    b"\xa9thread_id\xa2a2\xa4goal\xa2a2\xa9principal\xa2a2\xa6budget\xa2a2\xa6status\xa3b10"
    b"\xa4plan\xa3b10\xa6cursor\xa3b10\xa7verdict\xa3b10\xa7outcome\xa3b10\xa5usage\xa3b10\xa6"
    b"output\xa2a2\xa5error\xa2a2\xa4stop\xa2a2\xabover_budget\xa2a2\xa6events\xa3b10\xaebranc"
    b"h:to:plan\xa3b10\xa5route\xa3b10\xb0branch:to:policy\xa3b10\xa4gate\xa3b10\xa8checking"
    b"\xa3b10\xa8rechecks\xa3b10\xa8answered\xa3b10\xaebranch:to:tool\xa3b10\xb0branch:to:veri"
    b"fy\xa3b10\x81\xadversions_seen\x84\xa4plan\x81\xaebranch:to:plan\xa3b10\xa6policy\x81"
    b"\xb0branch:to:policy\xa3b10\xa4tool\x81\xaebranch:to:tool\xa3b10\xa6verify\x81\xb0branch"
    b":to:verify\xa3b10\x88\xa6status\xa7running\xa7verdict\xc0\xa4gate\xc0\xa7outcome\xc0\xa6"
    b"cursor\x00\xa8checking\xa31.0\xa8rechecks\x00\xa5route\xa6policy\x81\xa5usage\x86\xacinp"
    b"ut_tokens\x00\xadoutput_tokens\x00\xa8cost_usd\xcb\x00\x00\x00\x00\x00\x00\x00\x00\xaato"
    b"ol_calls\x00\xa5steps\x00\xaeactive_seconds\xcb\x00\x00\x00\x00\x00\x00\x00\x00"
)

_SMALLEST = 24
"""Values shorter than this stay as they are: deflate's header and checksum would not pay."""


class Deflate:
    """zlib with the preset dictionary, as LangGraph's EncryptedSerializer takes a cipher."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS, 9, zdict=_DICTIONARY)
        return CODEC, packer.compress(plaintext) + packer.flush()

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        if ciphername != CODEC:
            raise ValueError(
                f"a checkpoint value is stored as {ciphername!r}, which this agentrt cannot "
                f"read (it reads {CODEC!r}); open the database with the agentrt that wrote it"
            )
        # zlib's own header names the dictionary and its checksum covers the value: a
        # wrong dictionary fails here rather than reading back as something else.
        unpacker = zlib.decompressobj(zlib.MAX_WBITS, zdict=_DICTIONARY)
        return unpacker.decompress(ciphertext) + unpacker.flush()


class CompactSerializer(EncryptedSerializer):
    """LangGraph's serializer, each value deflated when that makes it shorter; values
    stored without (small ones, and everything written before) load as they are."""

    def __init__(self) -> None:
        super().__init__(Deflate(), JsonPlusSerializer())

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        type_, data = self.serde.dumps_typed(obj)
        if len(data) < _SMALLEST:
            return type_, data
        codec, packed = self.cipher.encrypt(data)
        if len(packed) >= len(data):
            return type_, data
        return f"{type_}+{codec}", packed
