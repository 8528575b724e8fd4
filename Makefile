# Isotope's make targets. `make test` is the command CI runs.
GO       ?= go
BIN      := bin/isotope
PKGS     := ./...
# The race detector on 2 cores with wazero compiles is slow: give the
# suite room, per package.
TEST_TIMEOUT ?= 20m

.PHONY: all build test test-short vet fmt-check demo bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/isotope

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test, with the race detector: unit, integration and end-to-end
# (the e2e tests build the real binary and drive it through the CLI).
test: fmt-check vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

# Start the platform on its embedded default and serve the example function.
demo: build
	./examples/demo.sh

# Every benchmark in bench/, one table of figures and ratios.
bench: build
	./bench/run

clean:
	rm -rf bin
