"""Collections: debt and ageing, late fees, payment agreements (convenios), debt-status rules."""
