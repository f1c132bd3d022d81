# Two commands for a fresh clone: `make demo` and `make test`. Both build .venv once and reuse it.
VENV   := .venv
PY     := $(VENV)/bin/python
UDLC   := $(VENV)/bin/udlc
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-all bench bench-gpu schema docs figures clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# constraints.txt pins torch to the local CPU wheel; the package itself only asks for a range.
	$(PY) -m pip install -q -c constraints.txt -e '.[train,dev,serve]'
	touch $(STAMP)

demo: $(STAMP)
	$(UDLC) check examples/*.yaml
	$(UDLC) summary examples/digits-cnn.yaml
	$(PY) -m udlc.demo

# Two workers (pytest-xdist): the in-process tests on both cores, beside the training subprocesses.
# `make test` leaves out the longer tier (tests marked `long`: real kills, example runs, whole-model exports);
# `make test-all` runs everything, as CI does.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not long"

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	$(PY) bench/check_speed.py
	$(PY) bench/train_speed.py
	$(PY) bench/lm_speed.py
	$(PY) bench/zoo_speed.py
	$(PY) bench/serve_speed.py
	$(PY) bench/gan_eval_speed.py
	$(PY) bench/dense_examples.py
	$(PY) bench/optimizers.py
	$(PY) bench/feedback_speed.py
	$(PY) bench/weights_load.py
	$(PY) bench/boosting_example.py
	$(PY) bench/audio_example.py
	$(PY) bench/text_augment_example.py
	$(PY) bench/transfer_example.py

bench-gpu: $(STAMP)  # on a machine with a CUDA GPU: udlc's default path against hand-tuned loops
	$(PY) bench/gpu.py

schema: $(STAMP)
	$(UDLC) schema > spec/udlc.schema.json

# The docs site: the reference regenerated from the registries, then mkdocs (Material) into site/, offline and strict.
docs: $(STAMP)
	$(PY) tools/reference.py
	$(PY) tools/figures.py --drawings
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The docs' pictures: trains each family page's example (minutes); committed, so `make docs` does not retrain.
figures: $(STAMP)
	$(PY) tools/figures.py

clean:
	rm -rf $(VENV) runs .pytest_cache site
