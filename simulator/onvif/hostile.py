"""Hostile SOAP replies, for testing that clients refuse them within bounded time and memory.

Each reply is shaped like the answer the client asked for, so that only the hostile part can make it fail:
'entities' (billion laughs), 'dtd' (a DOCTYPE with an internal subset), 'external' (external entities pointing
at file:///etc/passwd and at http://198.18.0.1/x), 'huge' (a reply of HUGE_BYTES, streamed).
"""

from __future__ import annotations

from collections.abc import Iterator

from simulator.onvif.soap import NS

KINDS = frozenset({"entities", "dtd", "external", "huge"})
HUGE_BYTES = 50 * 1024 * 1024 + 4096
"""A little over 50 MiB, so a client that reads it all has read at least 50 MB."""
_CHUNK = 256 * 1024

_OPEN = (
    '<env:Envelope xmlns:env="{env}" xmlns:tds="{tds}" xmlns:trt="{trt}" xmlns:tt="{tt}">'
    '<env:Body><ns:{op}Response xmlns:ns="{ns}">'
)
_CLOSE = "</ns:{op}Response></env:Body></env:Envelope>"


def _frame(operation: str, namespace: str) -> tuple[str, str]:
    opening = _OPEN.format(op=operation, ns=namespace, **NS)
    return opening, _CLOSE.format(op=operation)


def small_body(kind: str, operation: str, namespace: str) -> bytes:
    """The whole body for 'entities', 'dtd' and 'external'."""
    opening, closing = _frame(operation, namespace)
    if kind == "entities":
        levels = ['<!ENTITY lol0 "lol">']
        levels += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
        doctype = f"<!DOCTYPE env:Envelope [{''.join(levels)}]>"
        payload = "<tt:Name>&lol9;</tt:Name>"
    elif kind == "dtd":
        doctype = (
            '<!DOCTYPE env:Envelope [<!ELEMENT env:Envelope ANY><!ATTLIST env:Envelope injected CDATA "from-the-dtd">]>'
        )
        payload = "<tt:Name>dtd</tt:Name>"
    elif kind == "external":
        doctype = (
            "<!DOCTYPE env:Envelope ["
            '<!ENTITY file SYSTEM "file:///etc/passwd">'
            '<!ENTITY net SYSTEM "http://198.18.0.1/x">'
            "]>"
        )
        payload = "<tt:Name>&file;</tt:Name><tt:Model>&net;</tt:Model>"
    else:
        raise ValueError(f"not a small hostile kind: {kind!r}")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n{opening}{payload}{closing}'.encode()


def huge_chunks(operation: str, namespace: str, total: int = HUGE_BYTES) -> Iterator[bytes]:
    """A well-formed reply of exactly `total` bytes, in chunks: the size is what is hostile."""
    opening, closing = _frame(operation, namespace)
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n{opening}<tt:Padding>'.encode()
    tail = f"</tt:Padding>{closing}".encode()
    yield head
    remaining = total - len(head) - len(tail)
    block = b"A" * _CHUNK
    while remaining > 0:
        size = min(remaining, _CHUNK)
        yield block[:size]
        remaining -= size
    yield tail
