# Convenience wrappers around the scripts the README names.
.PHONY: demo test bench lint
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check . && .venv/bin/mypy sync edge gateway tui && bash scripts/mypy-firmware-sim.sh
