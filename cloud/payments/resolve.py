"""Which contract and invoice a reference names (batch, one query per 900 contracts)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.billing.tables import invoices
from cloud.payments.ledger import _chunks, among
from cloud.payments.references import InvalidPaymentReference, ParsedReference, parse
from cloud.registry.tables import contracts


@dataclass
class Resolution:
    reference: str
    status: str                       # ok | unmatched | ambiguous
    reason: str = ""
    parsed: ParsedReference | None = None
    contract_id: str | None = None
    municipality: str | None = None
    invoice_id: str | None = None     # None: pay the contract's oldest debt first
    candidates: list[str] | None = None


def resolve_many(conn: Connection, refs: list[str], amounts: list[int | None] | None = None) -> list[Resolution]:
    """Resolve references (with the line amounts, to check store barcodes). See docs/payments.md
    for what is unmatched (bad check digits, unknown contract) and ambiguous (a barcode whose
    amount differs from the money received, an invoice period the contract was never billed)."""
    parsed: list[ParsedReference | InvalidPaymentReference] = []
    for r in refs:
        try:
            parsed.append(parse(r))
        except InvalidPaymentReference as e:
            parsed.append(e)
    cids = sorted({p.contract_id for p in parsed if isinstance(p, ParsedReference)})
    munis: dict[str, str] = {}
    chains: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for part in _chunks(cids):
        for cid, m in conn.execute(sa.select(contracts.c.id, contracts.c.municipality).where(among(conn, contracts.c.id, part))):
            munis[cid] = m
        for inv in conn.execute(sa.select(invoices.c.id, invoices.c.contract_id, invoices.c.period, invoices.c.revision)
                                .where(among(conn, invoices.c.contract_id, part), invoices.c.status == "issued")):
            chains[(inv.contract_id, inv.period)][inv.revision] = inv.id
    printed = _printed_references(conn, [r.strip() for r, p in zip(refs, parsed, strict=True)
                                         if isinstance(p, InvalidPaymentReference) and r and r.strip().isdigit()])
    out: list[Resolution] = []
    for i, (ref, p) in enumerate(zip(refs, parsed, strict=True)):
        if isinstance(p, InvalidPaymentReference):
            hit = printed.get((ref or "").strip())
            if hit is not None:
                # the reference the billing run printed on the invoice (its own format)
                out.append(Resolution(ref, "ok", "invoice's printed reference", None, hit[1], hit[2], hit[0]))
            else:
                out.append(Resolution(ref, "unmatched", str(p)))
            continue
        cid = p.contract_id
        if cid not in munis:
            out.append(Resolution(ref, "unmatched", f"no contract {cid}", p))
            continue
        res = Resolution(ref, "ok", "", p, cid, munis[cid])
        if p.period is not None:
            chain = chains.get((cid, p.period))
            if not chain:
                res.status, res.reason = "ambiguous", f"contract {cid} has no invoice for {p.period}"
                res.candidates = sorted({v for (c, _), revs in chains.items() if c == cid for v in revs.values()})
            else:
                # any revision's reference pays the chain; name the revision it printed on, if known
                res.invoice_id = chain.get(p.revision) or chain[max(chain)]
        amount = amounts[i] if amounts else None
        if res.status == "ok" and p.kind == "store" and amount is not None and amount != p.amount_cents:
            res.status = "ambiguous"
            res.reason = f"barcode is for {p.amount_cents} centavos, {amount} were received"
            res.candidates = [res.invoice_id] if res.invoice_id else []
        out.append(res)
    return out


def resolve_one(conn: Connection, ref: str, amount: int | None = None) -> Resolution:
    return resolve_many(conn, [ref], [amount])[0]


def _printed_references(conn: Connection, refs: list[str]) -> dict[str, tuple[str, str, str]]:
    """`invoices.payment_reference` (the billing run's printed reference) → (invoice id,
    contract id, municipality), for references that are not in our own formats."""
    found: dict[str, tuple[str, str, str]] = {}
    for part in _chunks(sorted(set(refs))):
        for r in conn.execute(sa.select(invoices.c.payment_reference, invoices.c.id, invoices.c.contract_id,
                                        invoices.c.municipality).where(among(conn, invoices.c.payment_reference, part),
                                                                       invoices.c.status == "issued")):
            found[r.payment_reference] = (r.id, r.contract_id, r.municipality)
    return found
