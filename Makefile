# Two commands for a fresh machine: `make demo` and `make test`. Both set up `.venv` first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spine_d2-setup
WHEELS := .cache/wheels
D2_VERSION := 0.7.2
# free disk a new .venv needs, GB: it takes 6.7, torch's CUDA build 5.5 of them
SETUP_GB ?= 7
# pip without compiling: compiling every .py it unpacks took ~85 s of CPU on 2 cores, mostly for
# modules nothing imports. `setup` ends by importing what the tools load (spine_d2.install_check)
# with bytecode writing on, which compiles just those, once, even under PYTHONDONTWRITEBYTECODE.
PIP    := $(PY) -m pip install -q --no-compile

.PHONY: setup test demo clean-venv browser

setup: $(STAMP)

# Re-runs only when the pins or the package description change; a ready venv takes seconds.
$(STAMP): requirements.txt setup.py Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# a full disk would stop pip half-way with Errno 28: say so first, with the numbers
	@$(PY) -c "import torch" 2>/dev/null || { \
	  free=$$(df -Pk $(VENV) | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free" -lt $(SETUP_GB) ]; then \
	    echo "make setup: $(VENV) needs about $(SETUP_GB) GB free (torch's CUDA build alone is 5.5 GB);" \
	         "its disk has $$free GB free. Free some space, or give VENV=<a folder on a larger disk>." >&2; \
	    exit 1; fi; }
	$(PIP) -r requirements.txt
	@# detectron2: keep one that already imports (e.g. built from source); otherwise upstream's
	@# Python code from the sal-detectron2 wheel, tagged cp310 but pure Python for our use.
	@$(PY) -c "import detectron2" 2>/dev/null && echo "detectron2 present: kept" || { \
	  mkdir -p $(WHEELS) && \
	  $(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.10 \
	    sal-detectron2==$(D2_VERSION) -d $(WHEELS) && \
	  cp $(WHEELS)/sal_detectron2-$(D2_VERSION)-cp310-none-any.whl \
	     $(WHEELS)/sal_detectron2-$(D2_VERSION)-py3-none-any.whl && \
	  $(PIP) --no-deps $(WHEELS)/sal_detectron2-$(D2_VERSION)-py3-none-any.whl; }
	$(PIP) --no-deps -e .
	PYTHONDONTWRITEBYTECODE= $(PY) -m spine_d2.install_check
	@touch $(STAMP)

# Headless Chromium for the page's browser test (tests/test_serve_browser.py): Debian's chromium and
# chromium-driver, never a browser download. Installed when missing and we are root; else say how.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
	  echo "chromium present: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
	  echo "chromium missing: the browser test will be skipped. Install it: sudo apt-get install -y chromium chromium-driver"; \
	fi

# Two worker processes (pytest-xdist) sharing the cores (tests/conftest.py): about half the time of
# one on 2 cores. `worksteal` evens out the end-to-end tool runs of 20-50 s each between them.
TEST_WORKERS ?= 2

test: setup browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

# The default phantom needs only these of the pins: `make demo` generates it while the set-up
# installs torch and detectron2 (minutes each on 2 cores); tools/train.py then finds it there.
PHANTOM_NEEDS := numpy opencv-python-headless scipy numba llvmlite tqdm hydra-core omegaconf
DEMO_START := $(shell date +%s)

demo:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import numba, cv2, scipy, hydra, tqdm" 2>/dev/null || \
	  $(PIP) -c requirements.txt $(PHANTOM_NEEDS)
	@echo "phantom: made in the background while the set-up runs (log: $(VENV)/phantom.log)"
	@$(PY) -m spine_d2.synthetic experiment=demo > $(VENV)/phantom.log 2>&1 & gen=$$!; \
	  $(MAKE) --no-print-directory setup || { kill $$gen 2>/dev/null; exit 1; }; \
	  wait $$gen || { tail -n 20 $(VENV)/phantom.log >&2; exit 1; }; \
	  grep -h "^phantom:" $(VENV)/phantom.log
	$(PY) tools/train.py experiment=demo
	@t=$$(( $$(date +%s) - $(DEMO_START) )); echo "make demo: done in $$((t / 60)) min $$((t % 60)) s"

clean-venv:
	rm -rf $(VENV)
