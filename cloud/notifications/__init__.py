"""Customer notifications as an outbox: enqueue in the business transaction, send later, retry."""
