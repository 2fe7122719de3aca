"""Pushes back to a file: what `write_pushes` writes each item as."""

from __future__ import annotations

import json
import re
from typing import Any

from ..codec import (
    INCLUDE_UNENGAGED_WIRE_KEY,
    TARGET_KEY,
    push_to_dict,
)
from ..errors import ValidationError
from ..models import WebPush, check_campaign_id
from ._records import (
    CAMPAIGN_ID_KEY,
    CSV_COLUMNS,
    CSV_TARGET_COLUMNS,
    CSV_VALUE_SEPARATOR,
    DEDUPE_KEY_KEY,
    PushFileError,
)


def _record_of(item: object, number: int) -> dict[str, Any]:
    from ..batch import Launch  # the batch imports nothing of pushfile

    campaign_id: object = None
    dedupe_key: str | None = None
    push = item
    if isinstance(item, Launch):
        campaign_id, push, dedupe_key = item.campaign_id, item.push, item.dedupe_key
    elif isinstance(item, tuple) and len(item) == 2:
        campaign_id, push = item
    if not isinstance(push, WebPush):
        raise PushFileError(
            f"item {number} is not a WebPush, a Launch or a (campaign_id, WebPush) pair",
            field="push",
        )
    try:
        check_campaign_id(campaign_id)  # what read_pushes would refuse is never written
    except ValidationError as exc:
        raise PushFileError(f"item {number}: {exc.message}", field=exc.field) from None
    data: dict[str, Any] = {} if campaign_id is None else {CAMPAIGN_ID_KEY: campaign_id}
    if dedupe_key is not None:
        data[DEDUPE_KEY_KEY] = dedupe_key
    data.update(push_to_dict(push))
    data["ttl"] = push.ttl  # a number, as a file would give it (the wire's string reads too)
    return data


def _json_text(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False)
    # A lone surrogate can't be written as UTF-8: that record keeps JSON's \u escapes.
    return json.dumps(data) if _SURROGATE.search(text) else text


_SURROGATE = re.compile("[\ud800-\udfff]")


def _csv_row(data: dict[str, Any], number: int) -> list[str]:
    target = data.pop(TARGET_KEY, None)
    if target is not None:
        values = target["values"]
        if any(CSV_VALUE_SEPARATOR in value for value in values):
            raise PushFileError(
                f"item {number}: a value holds {CSV_VALUE_SEPARATOR!r}, which separates CSV "
                "values; write JSONL instead",
                field="target.values",
            )
        data[CSV_TARGET_COLUMNS[0]] = target["attribute"]
        data[CSV_TARGET_COLUMNS[1]] = CSV_VALUE_SEPARATOR.join(values)
    for key, value in data.items():
        if isinstance(value, str) and value != value.strip():
            raise PushFileError(
                f"item {number}: it starts or ends with a space, which CSV drops; write "
                "JSONL instead",
                field=key,
            )
    flag = data.get(INCLUDE_UNENGAGED_WIRE_KEY)
    if isinstance(flag, bool):
        data[INCLUDE_UNENGAGED_WIRE_KEY] = "true" if flag else "false"
    return ["" if data.get(column) is None else str(data[column]) for column in CSV_COLUMNS]
