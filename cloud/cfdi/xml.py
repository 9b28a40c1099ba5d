"""Serialise the satcfdi Comprobante objects our builders make into lxml, faster.

satcfdi's `to_xml` is generic: it walks the whole object twice to collect namespaces and
schema locations and builds every node as a free element before appending it. For the
documents we issue most (Ingreso/Egreso of the cfdi namespace only: no complement, addenda,
terceros, aduana, predial, partes) this writes the same tree directly with the same value
formatting (satcfdi's `fmt_decimal` and `strcode`) and attribute order. Anything else returns
None and the caller uses satcfdi. Tests assert byte equality with satcfdi's output.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree
from satcfdi.transform.helpers import fmt_decimal, strcode

from .cadena import _NEEDS, _normalize
from .validate import CFDI_NS

XSI = "http://www.w3.org/2001/XMLSchema-instance"
C = f"{{{CFDI_NS}}}"
NSMAP = {"cfdi": CFDI_NS, "xsi": XSI}
SCHEMA_LOCATION = f"{CFDI_NS} http://www.sat.gob.mx/sitio_internet/cfd/4/cfdv40.xsd"
_ROOT_KEYS = {
    "Version", "Serie", "Folio", "Fecha", "Sello", "FormaPago", "NoCertificado", "Certificado",
    "CondicionesDePago", "SubTotal", "Descuento", "Moneda", "TipoCambio", "Total", "TipoDeComprobante",
    "Exportacion", "MetodoPago", "LugarExpedicion", "Confirmacion", "InformacionGlobal", "CfdiRelacionados",
    "Emisor", "Receptor", "Conceptos", "Impuestos",
}
_CONCEPTO_KEYS = {"ClaveProdServ", "NoIdentificacion", "Cantidad", "ClaveUnidad", "Unidad", "Descripcion",
                  "ValorUnitario", "Importe", "Descuento", "ObjetoImp", "Impuestos"}


class _Fallback(Exception):
    pass


def _present(d: dict[str, Any], allowed: set[str]) -> None:
    for k in d.keys() - allowed:  # set difference in C; usually empty
        if d[k] is not None:
            raise _Fallback(k)


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _traslado(parent: etree._Element, tag: str, t: dict[str, Any], out: list[str]) -> None:
    """A Concepto's or the Comprobante's Traslado/Retencion (Base, Impuesto, TipoFactor, TasaOCuota,
    Importe — also their cadena order)."""
    a: dict[str, str] = {}
    if (v := t.get("Base")) is not None:
        a["Base"] = fmt_decimal(v)
    a["Impuesto"] = strcode(t["Impuesto"])
    if (v := t.get("TipoFactor")) is not None:
        a["TipoFactor"] = strcode(v)
    if (v := t.get("TasaOCuota")) is not None:
        a["TasaOCuota"] = fmt_decimal(v)
    if (v := t.get("Importe")) is not None:
        a["Importe"] = fmt_decimal(v)
    # Attributes gathered in a dict and handed to lxml at once (one call, not one per attribute).
    etree.SubElement(parent, tag, a)
    out.extend(a.values())


def _concepto(parent: etree._Element, c: dict[str, Any], out: list[str]) -> None:
    _present(c, _CONCEPTO_KEYS)
    a: dict[str, str] = {"ClaveProdServ": strcode(c["ClaveProdServ"])}
    if (v := c.get("NoIdentificacion")) is not None:
        a["NoIdentificacion"] = v
    a["Cantidad"] = fmt_decimal(c["Cantidad"])
    a["ClaveUnidad"] = strcode(c["ClaveUnidad"])
    if (v := c.get("Unidad")) is not None:
        a["Unidad"] = v
    a["Descripcion"] = c["Descripcion"]
    a["ValorUnitario"] = fmt_decimal(c["ValorUnitario"])
    a["Importe"] = fmt_decimal(c["Importe"])
    if (v := c.get("Descuento")) is not None:
        a["Descuento"] = fmt_decimal(v)
    a["ObjetoImp"] = strcode(c["ObjetoImp"])
    el = etree.SubElement(parent, C + "Concepto", a)
    out.extend(a.values())  # in the cadena the taxes follow the concepto's own attributes
    imp = c.get("Impuestos")
    if imp is not None:
        _present(imp, {"Traslados", "Retenciones"})
        ie = etree.SubElement(el, C + "Impuestos")
        if imp.get("Traslados") is not None:
            st = etree.SubElement(ie, C + "Traslados")
            for t in _items(imp["Traslados"]):
                _traslado(st, C + "Traslado", t, out)
        if imp.get("Retenciones") is not None:
            st = etree.SubElement(ie, C + "Retenciones")
            for t in _items(imp["Retenciones"]):
                _traslado(st, C + "Retencion", t, out)


def comprobante_xml(doc: Any) -> etree._Element | None:
    """The lxml tree satcfdi's `to_xml()` would produce, or None when outside our subset."""
    got = comprobante_xml_and_cadena(doc)
    return got[0] if got else None


# Whether any value of a "|"-joined list may need normalize-space(): a value's leading or
# trailing space sits next to a "|" (or the ends) once joined. A false alarm (a "| " inside a
# value) only sends the list to the per-value check; no value that needs it is missed.
_ANY_NEEDS = re.compile(r"[\t\r\n]|  |\| | \||^ | $")


def _cadena(values: list[str]) -> str:
    # normalize-space() of each value, as SAT's utilerias.xslt does; one scan of the joined
    # text first, since almost no document has a value that needs it.
    joined = "|".join(values)
    if _ANY_NEEDS.search(joined):
        joined = "|".join(_normalize(v) if _NEEDS.search(v) else v for v in values)
    return "||" + joined + "||"


def comprobante_xml_and_cadena(doc: Any) -> tuple[etree._Element, str] | None:
    """The tree satcfdi's `to_xml()` would produce and, in the same pass, its cadena original.

    Within this subset (cfdi namespace only) SAT's cadenaoriginal_4_0.xslt lists each node's
    attributes in the same order as the XSD (hence as written here), Sello and Certificado
    excluded, children after their parent; tests assert equality with SAT's XSLT.
    """
    if getattr(doc, "tag", None) != C + "Comprobante" or doc.get("Version") != "4.0":
        return None
    try:
        _present(doc, _ROOT_KEYS)
        for part in ("InformacionGlobal", "Emisor", "Receptor"):
            if part in doc and doc[part] is not None and doc[part].get("_nsmap") is not None:
                raise _Fallback("_nsmap")
        root = etree.Element(C + "Comprobante", nsmap=NSMAP)
        body: list[str] = []  # cadena values after the Comprobante's own attributes
        if (ig := doc.get("InformacionGlobal")) is not None:
            g = etree.SubElement(root, C + "InformacionGlobal", {
                "Periodicidad": strcode(ig["Periodicidad"]), "Meses": strcode(ig["Meses"]), "Año": str(ig["Año"])})
            body.extend(g.attrib.values())
        for rel in _items(doc.get("CfdiRelacionados")):
            re_ = etree.SubElement(root, C + "CfdiRelacionados")
            uuids = [str(u) for u in _items(rel["CfdiRelacionado"])]
            for u in uuids:
                etree.SubElement(re_, C + "CfdiRelacionado", {"UUID": u})
            re_.attrib["TipoRelacion"] = strcode(rel["TipoRelacion"])
            body.append(re_.attrib["TipoRelacion"])
            body.extend(uuids)
        em = doc["Emisor"]
        _present(em, {"Rfc", "Nombre", "RegimenFiscal", "FacAtrAdquirente"})
        e = etree.SubElement(root, C + "Emisor", {"Rfc": str(em["Rfc"]), "Nombre": em["Nombre"],
                                                  "RegimenFiscal": strcode(em["RegimenFiscal"])})
        if (v := em.get("FacAtrAdquirente")) is not None:
            e.attrib["FacAtrAdquirente"] = v
        body.extend(e.attrib.values())
        rc = doc["Receptor"]
        _present(rc, {"Rfc", "Nombre", "DomicilioFiscalReceptor", "ResidenciaFiscal", "NumRegIdTrib",
                      "RegimenFiscalReceptor", "UsoCFDI"})
        r = etree.SubElement(root, C + "Receptor", {"Rfc": str(rc["Rfc"]), "Nombre": rc["Nombre"],
                                                    "DomicilioFiscalReceptor": rc["DomicilioFiscalReceptor"]})
        if (v := rc.get("ResidenciaFiscal")) is not None:
            r.attrib["ResidenciaFiscal"] = strcode(v)
        if (v := rc.get("NumRegIdTrib")) is not None:
            r.attrib["NumRegIdTrib"] = v
        r.attrib["RegimenFiscalReceptor"] = strcode(rc["RegimenFiscalReceptor"])
        r.attrib["UsoCFDI"] = strcode(rc["UsoCFDI"])
        body.extend(r.attrib.values())
        cs = etree.SubElement(root, C + "Conceptos")
        for c in _items(doc["Conceptos"]):
            _concepto(cs, c, body)
        if (imp := doc.get("Impuestos")) is not None:
            _present(imp, {"Retenciones", "Traslados", "TotalImpuestosRetenidos", "TotalImpuestosTrasladados"})
            ie = etree.SubElement(root, C + "Impuestos")
            if imp.get("Retenciones") is not None:
                st = etree.SubElement(ie, C + "Retenciones")
                for t in _items(imp["Retenciones"]):
                    ret = etree.SubElement(st, C + "Retencion", {"Impuesto": strcode(t["Impuesto"]),
                                                                 "Importe": fmt_decimal(t["Importe"])})
                    body.extend(ret.attrib.values())
            if (v := imp.get("TotalImpuestosRetenidos")) is not None:
                body.append(fmt_decimal(v))
            if imp.get("Traslados") is not None:
                st = etree.SubElement(ie, C + "Traslados")
                for t in _items(imp["Traslados"]):
                    _traslado(st, C + "Traslado", t, body)
            if (v := imp.get("TotalImpuestosRetenidos")) is not None:
                ie.attrib["TotalImpuestosRetenidos"] = fmt_decimal(v)
            if (v := imp.get("TotalImpuestosTrasladados")) is not None:
                ie.attrib["TotalImpuestosTrasladados"] = fmt_decimal(v)
                body.append(ie.attrib["TotalImpuestosTrasladados"])
        a = root.attrib
        a["Version"] = doc["Version"]
        if (v := doc.get("Serie")) is not None:
            a["Serie"] = v
        if (v := doc.get("Folio")) is not None:
            a["Folio"] = v
        a["Fecha"] = doc["Fecha"].isoformat(timespec="seconds")
        a["Sello"] = doc["Sello"]
        if (v := doc.get("FormaPago")) is not None:
            a["FormaPago"] = strcode(v)
        a["NoCertificado"] = doc["NoCertificado"]
        a["Certificado"] = doc["Certificado"]
        if (v := doc.get("CondicionesDePago")) is not None:
            a["CondicionesDePago"] = v
        a["SubTotal"] = fmt_decimal(doc["SubTotal"])
        if (v := doc.get("Descuento")) is not None:
            a["Descuento"] = fmt_decimal(v)
        a["Moneda"] = strcode(doc["Moneda"])
        if (v := doc.get("TipoCambio")) is not None:
            a["TipoCambio"] = fmt_decimal(v)
        a["Total"] = fmt_decimal(doc["Total"])
        a["TipoDeComprobante"] = strcode(doc["TipoDeComprobante"])
        a["Exportacion"] = strcode(doc["Exportacion"])
        if (v := doc.get("MetodoPago")) is not None:
            a["MetodoPago"] = strcode(v)
        a["LugarExpedicion"] = strcode(doc["LugarExpedicion"])
        if (v := doc.get("Confirmacion")) is not None:
            a["Confirmacion"] = v
        head = [v for k, v in a.items() if k not in ("Sello", "Certificado")]
        a[f"{{{XSI}}}schemaLocation"] = SCHEMA_LOCATION
        return root, _cadena(head + body)
    except (_Fallback, KeyError, TypeError, AttributeError):
        return None
