"""Parsing untrusted XML (device replies, SOAP requests): no DTD, no entities, no network, no huge trees, a size cap."""

from __future__ import annotations

from lxml import etree


class UnsafeXml(ValueError):
    """The document was refused: too large, not well-formed, or carrying a DTD or entity declarations."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=False,
    )


def parse(data: bytes, max_bytes: int) -> etree._Element:
    """The root element of `data`; UnsafeXml when it is larger than `max_bytes`, malformed or has a DOCTYPE."""
    if len(data) > max_bytes:
        raise UnsafeXml(f"document of {len(data)} bytes exceeds the {max_bytes}-byte cap")
    # A DOCTYPE is the only way to declare entities or point at external ones: refuse it before parsing.
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise UnsafeXml("document carries a DTD or entity declarations")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"not well-formed XML: {exc.msg}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise UnsafeXml("document carries a DTD")
    return root
