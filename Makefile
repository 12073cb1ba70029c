# The two commands: `make run` (the app with its demo) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install lint typecheck bench bench-detector bench-faces bench-face-verifiers bench-face-portraits bench-calibration bench-labeling bench-labeling-speed bench-label-errors bench-training clean

run: $(STAMP)
	$(PY) scripts/run.py

test: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(PY) scripts/test.py

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch and torchvision first, pinned, so nothing resolves a different multi-GB build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

# Benchmarks are not tests: they print tables of ratios against baselines run alongside.
# Run as modules: `python bench/x.py` would put bench/ (not the repository) on sys.path.
bench: bench-detector bench-faces bench-face-verifiers bench-face-portraits bench-calibration bench-labeling bench-labeling-speed bench-label-errors bench-training

bench-detector: $(STAMP)
	$(PY) -m bench.detector --ours demo/models/detector-bccd.safetensors

# The shipped face models (load_demo's names); override to compare other checkpoints.
FACE_DETECTOR ?= demo/models/face-detector.safetensors
FACE_VERIFIER ?= demo/models/verifier-orl.safetensors

bench-faces: $(STAMP)
	$(PY) -m bench.faces --ours-detector $(FACE_DETECTOR) --ours-verifier $(FACE_VERIFIER)

# Verifiers on people they never saw: ours with each backbone against dlib alone (ORL folds).
bench-face-verifiers: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m bench.face_verifiers

# A face found in every portrait? The shipped face detector against a baseline checkpoint
# (default: the one shipped before it, from git history).
FACE_DETECTOR_BASELINE ?= /tmp/face-detector-baseline.safetensors
bench-face-portraits: $(STAMP)
	test -f $(FACE_DETECTOR_BASELINE) || git show 35fc47d:demo/models/face-detector.safetensors > $(FACE_DETECTOR_BASELINE)
	OMP_NUM_THREADS=1 $(PY) -m bench.face_portraits --ours $(FACE_DETECTOR) --baseline $(FACE_DETECTOR_BASELINE)

# The shipped detector's calibrated confidence on BCCD's test split (calibration fitted on val).
bench-calibration: $(STAMP)
	$(PY) -m bench.calibration --model demo/models/detector-bccd.safetensors

# Import and export speed on bccd and coco128, and our YOLO export trained by Ultralytics.
bench-labeling: $(STAMP)
	$(PY) -m bench.import_export

# Label errors injected into BCCD's val split: does the ranking of possible label errors find them?
bench-label-errors: $(STAMP)
	$(PY) -m bench.label_errors --model demo/models/detector-bccd.safetensors

# Keystrokes and actions to label a BCCD image in the browser: the annotation page vs a plain form.
bench-labeling-speed: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest bench/test_labeling_speed.py -s -p no:cacheprovider

# A random search of 8 trials against the default config at the same CPU budget, and the same
# search on one and on two Celery workers (real Redis, its own PostgreSQL database).
TRAINING_MINUTES ?= 6
bench-training: $(STAMP)
	$(PY) -m bench.training --minutes $(TRAINING_MINUTES) --trials 8

clean:
	rm -rf var/media var/db.sqlite3 .pytest_cache .mypy_cache .ruff_cache
