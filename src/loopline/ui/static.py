"""The UI's own files (``static/ui.css``, ``static/ui.js``) and plotly.js, served locally.

``plotly.min.js`` is the file the plotly package ships (found without importing plotly);
without the package, pages still work and their charts say what to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

_HERE = Path(__file__).parent / "static"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_OWN = ("ui.css", "ui.js")
PLOTLY = "plotly.min.js"


@cache
def _read(name: str) -> tuple[bytes, str] | None:
    if name in _OWN:
        path: Path | None = _HERE / name
    elif name == PLOTLY:
        path = plotly_file()
    else:
        path = None
    if path is None or not path.is_file():
        return None
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


def plotly_file() -> Path | None:
    """Where the plotly package keeps its bundled ``plotly.min.js`` (None: not installed)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "package_data" / PLOTLY
        if candidate.is_file():
            return candidate
    return None


def version(name: str) -> str:
    """A short hash of the file, for URLs that can be cached for long."""
    found = _read(name)
    return "none" if found is None else found[1]


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    found = _read(name)
    if found is None:
        hint = " (install the plotly package: pip install 'loopline[ui]')" if name == PLOTLY else ""
        return Response(f"no file {name}{hint}\n", status_code=404, media_type="text/plain")
    data, tag = found
    etag = f'"{tag}"'
    headers = {"etag": etag, "cache-control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media = _TYPES.get(Path(name).suffix, "application/octet-stream")
    return Response(data, media_type=media, headers=headers)
