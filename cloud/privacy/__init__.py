"""Personal data duties of the LGPDPPP: ARCO requests, the access log, opposition, blocking and anonymisation (docs/privacy.md)."""
