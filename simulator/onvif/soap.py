"""SOAP 1.2 envelopes: parsing requests with a hardened parser, building replies and faults.

Requests are untrusted input: the parser resolves no entities, loads no DTD, never touches the network, and
anything with a DOCTYPE or larger than `MAX_REQUEST_BYTES` is refused before lxml sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from common import safexml

MAX_REQUEST_BYTES = 64 * 1024
"""No ONVIF request this simulator answers comes near this size."""

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
}
ENV = NS["env"]
CONTENT_TYPE = "application/soap+xml; charset=utf-8"


class SoapParseError(ValueError):
    """The request is not a SOAP 1.2 envelope this simulator accepts."""


def parse_xml(data: bytes, *, limit: int = MAX_REQUEST_BYTES) -> etree._Element:
    """The root element of `data`, refusing DTDs, entity declarations and oversized input."""
    try:
        return safexml.parse(data, limit)
    except safexml.UnsafeXml as exc:
        raise SoapParseError(str(exc)) from None


@dataclass(frozen=True)
class SoapRequest:
    """An incoming SOAP call: the operation (first body child) and the envelope's header."""

    operation: str
    namespace: str
    body: etree._Element
    header: etree._Element | None


def parse_request(data: bytes) -> SoapRequest:
    root = parse_xml(data)
    if root.tag != f"{{{ENV}}}Envelope":
        raise SoapParseError(f"root element is {root.tag!r}, not a SOAP 1.2 Envelope")
    header = root.find(f"{{{ENV}}}Header")
    body = root.find(f"{{{ENV}}}Body")
    if body is None:
        raise SoapParseError("envelope has no Body")
    children = [child for child in body if isinstance(child.tag, str)]
    if not children:
        raise SoapParseError("Body is empty")
    qname = etree.QName(children[0])
    return SoapRequest(operation=qname.localname, namespace=qname.namespace or "", body=children[0], header=header)


def element(tag: str, *children: etree._Element | str | None, **attrs: str) -> etree._Element:
    """A namespaced element, `tag` as 'prefix:Local'; strings become text, None children are skipped."""
    prefix, local = tag.split(":", 1)
    node = etree.Element(f"{{{NS[prefix]}}}{local}", attrib=attrs or None, nsmap=None)
    for child in children:
        if child is None:
            continue
        if isinstance(child, str):
            node.text = (node.text or "") + child
        else:
            node.append(child)
    return node


def text(tag: str, value: object) -> etree._Element:
    """A leaf element whose text is `value` (booleans written the XML Schema way)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return element(tag, str(value))


def envelope(*body: etree._Element) -> bytes:
    """A serialized SOAP 1.2 envelope with `body` inside."""
    root = etree.Element(f"{{{ENV}}}Envelope", nsmap=NS)
    etree.SubElement(root, f"{{{ENV}}}Header")
    body_node = etree.SubElement(root, f"{{{ENV}}}Body")
    for node in body:
        body_node.append(node)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def fault(code: str, subcode: str, reason: str) -> bytes:
    """A SOAP 1.2 fault: `code` is env:Sender or env:Receiver, `subcode` an ONVIF ter: code."""
    return envelope(
        element(
            "env:Fault",
            element(
                "env:Code",
                element("env:Value", code),
                element("env:Subcode", element("env:Value", subcode)),
            ),
            element("env:Reason", element("env:Text", reason, **{"{http://www.w3.org/XML/1998/namespace}lang": "en"})),
        )
    )


class SoapFault(Exception):
    """Raised by an operation to answer with a SOAP fault and an HTTP status."""

    def __init__(self, subcode: str, reason: str, *, code: str = "env:Sender", status: int = 400) -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.status = status

    def body(self) -> bytes:
        return fault(self.code, self.subcode, self.reason)
