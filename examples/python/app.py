"""A tiny application using requests and httpx, made to run without a network.

It prints the library versions and the environment it runs from, then makes one
request with each library against an in-process fake server (httpx.MockTransport
and a requests transport adapter), so it works on an air-gapped target too.
Exits non-zero on failure.
"""

from __future__ import annotations

import json
import sys

import httpx
import requests
import requests.adapters

URL = "http://portpack.example/greeting"


def fake_server(method: str, url: str) -> tuple[int, dict[str, str]]:
    return 200, {"method": method, "url": url, "message": "hello from the packed env"}


class FakeAdapter(requests.adapters.BaseAdapter):
    """Answers every requests call with :func:`fake_server`."""

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def,override]
        status, body = fake_server(request.method, request.url)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def with_requests() -> dict[str, str]:
    with requests.Session() as session:
        session.mount("http://", FakeAdapter())
        response = session.get(URL, timeout=5)
        response.raise_for_status()
        body: dict[str, str] = response.json()
        return body


def with_httpx() -> dict[str, str]:
    def handler(request: httpx.Request) -> httpx.Response:
        status, body = fake_server(request.method, str(request.url))
        return httpx.Response(status, json=body)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = client.get(URL)
        response.raise_for_status()
        body: dict[str, str] = response.json()
        return body


def main() -> int:
    print(f"python   {sys.version.split()[0]}")
    print(f"prefix   {sys.prefix}")
    print(f"requests {requests.__version__}")  # type: ignore[attr-defined]
    print(f"httpx    {httpx.__version__}")
    ok = True
    for name, call in (("requests", with_requests), ("httpx", with_httpx)):
        try:
            body = call()
        except Exception as exc:  # report, and fail at the end
            print(f"{name}: FAILED: {exc!r}")
            ok = False
            continue
        good = body.get("url") == URL and body.get("method") == "GET"
        print(f"{name}: GET {URL} -> {body.get('message')!r}{'' if good else ' (WRONG)'}")
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
