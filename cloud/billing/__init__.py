"""Billing engine: billing runs claimed in chunks by workers, invoices, invoice PDFs.

`tables` (schema), `inputs` (contracts and consumption read from the registry and readings),
`runs` (create, claim, process, progress), `worker` (the loop behind `aquacis cloud
billing-worker`), `pdf` (the customer's invoice), `api` (the /api/v2 router).
"""
