"""Work orders: creation, assignment, the status lattice, automatic opening from edge
anomalies, and completion effects on metering and the service state."""
