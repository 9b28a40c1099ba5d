"""SAT's cadena original computed from SAT's own XSLT rules, without running libxslt.

SAT defines the cadena original of a CFDI 4.0 as the output of cadenaoriginal_4_0.xslt. That
stylesheet (and the complements' ones it includes) uses a tiny subset of XSLT: templates that
match an element, `Requerido`/`Opcional` calls on `./@Attr`, and `for-each` / `apply-templates`
/ `if` over child paths. This module *reads those same XSLT files* (shipped in satcfdi) and
compiles that subset into Python steps, which run in a fraction of libxslt's time.

Any construct outside the subset, or an element of a namespace whose stylesheet we did not
compile, makes `fast_cadena` return None, and the caller uses SAT's XSLT proper. Tests assert
both give identical strings over SAT's samples and generated documents.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from lxml import etree

from .validate import CFD, CFDI_NS

XSL = "http://www.w3.org/1999/XSL/Transform"
STYLESHEETS = (
    CFD / "4" / "cadenaoriginal_4_0" / "cadenaoriginal_4_0.xslt",
    CFD / "Pagos" / "Pagos20.xslt",
)
_WS = re.compile(r"[ \t\r\n]+")
_NEEDS = re.compile(r"[\t\r\n]|  |^ | $")  # only then does normalize-space change the value


class Unsupported(Exception):
    pass


def _normalize(value: str) -> str:
    # XPath normalize-space(): only these four characters are whitespace (not NBSP etc.).
    return _WS.sub(" ", value).strip(" \t\r\n")


# A compiled template body is a tuple of ops, run by one loop (no call per attribute):
#   (REQ, attr) | (OPT, attr) | (EACH, path, body) | (APPLY, path) | (IF, path, body)
REQ, OPT, EACH, APPLY, IF = range(5)
Op = tuple  # type: ignore[type-arg]


def _path(select: str, nsmap: dict[str, str]) -> tuple[str, ...]:
    """XPath './a:B/a:C' → ("B", "C") as Clark names; '.' → (); './*' → ("*",); './/a:D' → ("//", "D").

    Walked with lxml's C iterators (iterchildren/iterdescendants): ElementPath's Python-level
    evaluation would cost more than everything else in the cadena.
    """
    if select == ".":
        return ()
    if select == "./*":
        return ("*",)
    if not select.startswith("./"):
        raise Unsupported(select)
    parts = select[2:].split("/")
    out: list[str] = []
    if parts[0] == "":  # './/x'
        if len(parts) != 2:
            raise Unsupported(select)
        out.append("//")
        parts = parts[1:]
    for part in parts:
        prefix, _, local = part.partition(":")
        if not local or prefix not in nsmap or not re.fullmatch(r"[\w]+", local):
            raise Unsupported(select)
        out.append(f"{{{nsmap[prefix]}}}{local}")
    return tuple(out)


def _select(el: etree._Element, path: tuple[str, ...]) -> list[etree._Element]:
    if not path:
        return [el]
    if path[0] == "*":
        return [c for c in el if isinstance(c.tag, str)]
    if path[0] == "//":
        return list(el.iterdescendants(path[1]))
    nodes = [el]
    for tag in path:
        nodes = [c for n in nodes for c in n.iterchildren(tag)]
        if not nodes:
            break
    return nodes


class _Compiler:
    def __init__(self) -> None:
        self.templates: dict[str, tuple[Op, ...]] = {}
        self.namespaces: set[str] = set()

    def add(self, path: Path) -> None:
        root = etree.parse(str(path)).getroot()
        nsmap = {k: v for k, v in root.nsmap.items() if k}
        for t in root.iterfind(f"{{{XSL}}}template"):
            match = t.get("match")
            if not match or match == "/":
                continue
            prefix, _, local = match.partition(":")
            if prefix not in nsmap:
                raise Unsupported(match)
            self.templates[f"{{{nsmap[prefix]}}}{local}"] = self._body(t, nsmap)
            self.namespaces.add(nsmap[prefix])

    def _body(self, parent: etree._Element, nsmap: dict[str, str]) -> tuple[Op, ...]:
        ops: list[Op] = []
        for node in parent:
            if not isinstance(node.tag, str):
                continue  # comments
            if (node.text or "").strip() or (node.tail or "").strip():
                raise Unsupported("literal text in template")
            tag = etree.QName(node).localname
            if tag == "call-template":
                name = node.get("name")
                params = node.findall(f"{{{XSL}}}with-param")
                if name not in ("Requerido", "Opcional") or len(params) != 1:
                    raise Unsupported(f"call-template {name}")
                m = re.fullmatch(r"\./@([\wñÑ]+)", params[0].get("select", ""))
                if not m:
                    raise Unsupported(params[0].get("select"))
                ops.append((REQ if name == "Requerido" else OPT, m.group(1)))
            elif tag == "for-each":
                ops.append((EACH, _path(node.get("select", ""), nsmap), self._body(node, nsmap)))
            elif tag == "apply-templates":
                if len(node):
                    raise Unsupported("apply-templates with children")
                ops.append((APPLY, _path(node.get("select", ""), nsmap)))
            elif tag == "if":
                ops.append((IF, _path(node.get("test", ""), nsmap), self._body(node, nsmap)))
            else:
                raise Unsupported(tag)
        return tuple(ops)

    def run(self, el: etree._Element, ops: tuple[Op, ...], out: list[str]) -> None:
        get, append = el.get, out.append
        for op in ops:
            kind = op[0]
            if kind == REQ:
                v = get(op[1], "")
                append(_normalize(v) if _NEEDS.search(v) else v)
            elif kind == OPT:
                v = get(op[1])
                if v is not None:  # the XSLT tests the attribute node's existence
                    append(_normalize(v) if _NEEDS.search(v) else v)
            elif kind == EACH:
                for child in _select(el, op[1]):
                    self.run(child, op[2], out)
            elif kind == APPLY:
                for child in _select(el, op[1]):
                    self.apply(child, out)
            elif _select(el, op[1]):  # IF
                self.run(el, op[2], out)

    def apply(self, el: etree._Element, out: list[str]) -> None:
        ops = self.templates.get(el.tag)  # type: ignore[arg-type]
        if ops is not None:
            self.run(el, ops, out)
            return
        ns = etree.QName(el).namespace
        if ns != CFDI_NS and ns not in self.namespaces:
            raise Unsupported(f"no compiled template for {el.tag}")
        # XSLT's built-in rule: process children; text nodes would be copied.
        if (el.text or "").strip():
            raise Unsupported("text content")
        for child in el:
            if isinstance(child.tag, str):
                self.apply(child, out)
                if (child.tail or "").strip():
                    raise Unsupported("text content")


@cache
def _compiled() -> _Compiler | None:
    c = _Compiler()
    try:
        for path in STYLESHEETS:
            c.add(path)
    except (Unsupported, OSError):
        return None  # SAT changed its stylesheet beyond our subset: always use libxslt
    return c


def fast_cadena(root: etree._Element) -> str | None:
    """The cadena original of a CFDI 4.0 Comprobante, or None when only libxslt can tell."""
    c = _compiled()
    if c is None or root.tag != f"{{{CFDI_NS}}}Comprobante" or root.get("Version") != "4.0":
        return None
    out: list[str] = []
    try:
        c.apply(root, out)
    except Unsupported:
        return None
    return "||" + "|".join(out) + "||"
