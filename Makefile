# `make demo` and `make test` are the README's two commands: each builds .venv when it is
# missing or older than the pinned requirements, so a fresh machine needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast venv clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	@echo "installing the pinned requirements into $(VENV) (about 2 minutes on a fresh machine; pip's progress follows)"
	$(VENV)/bin/python -m pip install --progress-bar on -r requirements.txt -c constraints.txt
	$(VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lightseg pipeline --config experiments/quickstart.yaml

# Two workers (one file each at a time): TF conversions and Python glue leave a core idle, so
# the suite takes about 9 min instead of 14 on the 2-core CI machine.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile -m "not slow"

clean:
	rm -rf $(VENV) runs build *.egg-info
