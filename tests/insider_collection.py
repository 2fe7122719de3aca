"""The sample bodies of Insider's Postman collection (`Web Push` folder): the statistics
endpoints' contract.

`tests/data/insider-web-push.postman_collection.json` is a copy of Insider One's public
collection (the mirror `api-evangelist/insider`,
`collections/insider-web-push.postman_collection.json`).
Its statistics samples live in each request's description, after a status line such as
`200 OK`; they are read from there, not retyped.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

COLLECTION = Path(__file__).parent / "data" / "insider-web-push.postman_collection.json"
CAMPAIGN = "Get web push campaign metrics analytics"
OVERALL = "Get web push overall metrics analytics"
TOP = "Get web push top metrics analytics"
_SAMPLE = re.compile(r"\n(\d{3}) [A-Z ]+\n(\{.*?\n\})\n", re.S)


@cache
def _items() -> dict[str, dict[str, Any]]:
    collection = json.loads(COLLECTION.read_text(encoding="utf-8"))
    folders = {folder["name"]: folder for folder in collection["item"]}
    return {item["name"]: item for item in folders["Web Push"]["item"]}


def sample(request: str, status: int) -> Any:
    """The sample body the collection documents for `request` answering `status`."""
    description = _items()[request]["request"]["description"]["content"]
    for found in _SAMPLE.finditer(description):
        if int(found.group(1)) == status:
            return json.loads(found.group(2))
    raise LookupError(f"no {status} sample for {request!r}")


def path(request: str) -> str:
    """The request's path, e.g. `/v1/statistics/campaign-metrics`."""
    return "/" + "/".join(_items()[request]["request"]["url"]["path"])


def sample_request(request: str) -> Any:
    """The JSON body of the request as the collection sends it."""
    return json.loads(_items()[request]["request"]["body"]["raw"])
