# polynic entry points. `make demo` runs the main job, `make test` every test.
# Both set up whatever is missing first (scripts/setup.sh) and build the test
# kernel into the cache (~/.cache/polynic, or $POLYNIC_CACHE) when needed.

.PHONY: all demo test setup kernel modules bench clean clean-cache

all: modules

demo:
	@scripts/demo.sh

test:
	@scripts/test.sh $(TEST_ARGS)

# EBD vs AoE vs NBD vs the link (out/bench/results.{md,json,png}).
bench:
	@scripts/bench.sh

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/kernel.sh

modules: kernel
	@scripts/modules.sh "$$(scripts/kernel.sh)"

clean:
	rm -rf out userspace/target

# Removes the cached kernel (the next run rebuilds it from scratch).
clean-cache:
	rm -rf "$${POLYNIC_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/polynic}"
