"""CFDI settings (AQUACIS_* variables or the TOML [cloud] table): issuer identity, CSD files, PAC provider and credentials."""

from __future__ import annotations

from cloud.settings import TomlTableSettings


class CfdiSettings(TomlTableSettings):
    """Read like every cloud setting: flags > AQUACIS_* > the `[cloud]` table of the TOML file."""

    # The utility as it appears in its Constancia de Situación Fiscal.
    cfdi_issuer_rfc: str = "CEA980101AAA"
    cfdi_issuer_name: str = "COMISION ESTATAL DE AGUAS"
    cfdi_issuer_regime: str = "603"  # Personas Morales con Fines no Lucrativos
    cfdi_issuer_postal_code: str = "76000"
    cfdi_series: str = "A"
    # CSD (.cer DER, .key PKCS#8 DER encrypted, password). Empty: a throwaway test CSD.
    cfdi_csd_cer: str = ""
    cfdi_csd_key: str = ""
    cfdi_csd_password: str = ""
    # PAC: test (offline double, NOT fiscally valid) | finkok | diverza | prodigia | swsapien
    pac_provider: str = "test"
    pac_production: bool = False  # False: the PAC's test/sandbox environment
    pac_user: str = ""
    pac_password: str = ""
    pac_token: str = ""
    pac_id: str = ""
    pac_rfc: str = ""
    pac_contract: str = ""
    # Retry schedule after a PAC outage: base * 2^(attempt-1), capped.
    pac_retry_base_s: float = 30.0
    pac_retry_max_s: float = 3600.0
    # How often a cancellation awaiting the receiver's acceptance is asked about again.
    pac_cancel_poll_s: float = 900.0
